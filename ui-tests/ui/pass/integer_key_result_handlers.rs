//! An integer `#[key]`, handlers that answer `Result`s (the caller gets
//! `Result<Result<T, E>, CallError>`), arguments of several kinds, and the qualified
//! `#[swarm::agent]` / `#[swarm::handler]` spelling.

use serde::{Deserialize, Serialize};
use swarm::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankError {
    Insufficient { balance: i64, wanted: i64 },
    Frozen,
}

#[swarm::agent(kind = "account", passivate_after = "30s", message_budget = "2s", max_memory = "64MiB", mailbox = 1000)]
pub struct Account {
    #[swarm::key]
    number: u64,
    #[persist]
    balance: i64,
    #[persist]
    frozen: bool,
}

#[swarm::agent]
impl Account {
    #[swarm::handler]
    pub fn deposit(&mut self, amount: i64) -> Result<i64, BankError> {
        if self.frozen {
            return Err(BankError::Frozen);
        }
        self.balance += amount;
        Ok(self.balance)
    }

    #[handler]
    pub fn withdraw(&mut self, mut amount: i64, allow_overdraft: bool) -> Result<i64, BankError> {
        if self.frozen {
            return Err(BankError::Frozen);
        }
        if amount > self.balance && !allow_overdraft {
            return Err(BankError::Insufficient {
                balance: self.balance,
                wanted: amount,
            });
        }
        amount = amount.abs();
        self.balance -= amount;
        Ok(self.balance)
    }

    #[handler]
    pub fn freeze(&mut self, reasons: Vec<String>, until: Option<u64>) -> Result<(), String> {
        if reasons.is_empty() && until.is_none() {
            return Err("say why".into());
        }
        self.frozen = true;
        Ok(())
    }

    #[handler]
    pub fn balance(&self) -> i64 {
        self.balance
    }
}

/// Never run (pass cases are only built, see tests/ui.rs): an integer key goes in as the integer,
/// and a `Result`-returning handler answers `Result<Result<T, E>, CallError>`.
fn usage() -> Result<(), CallError> {
    let account: AccountRef = Account::launcher()
        .store(StoreConfig::memory("ui-pass"))
        .get_or_start(42u64)
        .expect("started");
    let _: Option<AccountRef> = Account::lookup(42u64);
    let deposited: Result<i64, BankError> = account.deposit(10)?;
    let _: Result<i64, BankError> = account.withdraw(15, false)?;
    let _: Result<(), String> = account.freeze(vec!["audit".into()], Some(7))?;
    let _: i64 = account.balance()?;
    if let Err(BankError::Insufficient { balance, wanted }) = deposited {
        let _ = (balance, wanted);
    }
    Ok(())
}

fn main() {
    let _ = usage;
}
