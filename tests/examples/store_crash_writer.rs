//! A node that saves as fast as it can, for `tests/support/crash_store.py`, which SIGKILLs it
//! mid-write and counts what survives.
//!
//! `store_crash_writer MODE write DIR` keeps saving and prints `acked <key> <count>` after each
//! save that was acknowledged (so durable); `store_crash_writer MODE check DIR` opens the same
//! store, prints `loaded <key> <count>` for every key, then `checked`, and exits.
//!
//! Modes:
//! - `file`: four processes put 4 MiB values into the file store, the count in the first 8
//!   bytes. The values are large and prepared once, so most of the time goes to writing them and
//!   a kill usually lands in the middle of a write (leaving a temporary file, which the next open
//!   must remove).
//! - `sqlite`: 100 agents with a `#[persist]` counter in the SQLite store, each driven by its own
//!   process, all saving at once: their saves share commits (group commit), and a kill lands in
//!   the middle of a batch.

use swarm::prelude::*;

const FILE_KEYS: [&str; 4] = ["a", "b", "c", "d"];
const VALUE_LEN: usize = 4 << 20;
const AGENTS: usize = 100;

#[agent(kind = "ledger")]
pub struct Ledger {
    #[key]
    name: String,
    #[persist]
    count: u64,
}

#[agent]
impl Ledger {
    #[handler]
    pub fn save(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    #[handler]
    pub fn count(&self) -> u64 {
        self.count
    }
}

fn storage_key(key: &str) -> String {
    format!("ledger/{key}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(action), Some(dir)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: store_crash_writer file|sqlite write|check DIR");
        std::process::exit(2);
    };
    match (mode.as_str(), action.as_str()) {
        ("file", "check") => check_file(dir),
        ("file", "write") => write_file(dir),
        ("sqlite", "check") => check_agents(dir),
        ("sqlite", "write") => write_agents(dir),
        _ => {
            eprintln!("usage: store_crash_writer file|sqlite write|check DIR");
            std::process::exit(2);
        }
    }
}

fn count_of(value: Option<Vec<u8>>) -> u64 {
    value.map_or(0, |value| {
        u64::from_le_bytes(value[..8].try_into().unwrap())
    })
}

fn check_file(dir: &str) {
    let store = StoreConfig::file(dir).open().expect("the store opens");
    for key in FILE_KEYS {
        let count = count_of(store.get(&storage_key(key)).unwrap());
        println!("loaded {key} {count}");
    }
    println!("checked");
}

fn write_file(dir: &str) {
    let config = StoreConfig::file(dir);
    let _opened = config.open().expect("the store opens");
    for key in FILE_KEYS {
        lunatic::Process::spawn(
            (key.to_owned(), config.clone()),
            |(key, config), _: lunatic::Mailbox<()>| {
                let store = config.open().expect("the store opens");
                let mut value = vec![b'x'; VALUE_LEN];
                let mut count = count_of(store.get(&storage_key(&key)).unwrap());
                loop {
                    count += 1;
                    value[..8].copy_from_slice(&count.to_le_bytes());
                    store.put(&storage_key(&key), &value).unwrap();
                    println!("acked {key} {count}");
                }
            },
        );
    }
    idle();
}

fn sqlite(dir: &str) -> StoreConfig {
    StoreConfig::sqlite(dir, "ledgers.db")
}

fn check_agents(dir: &str) {
    swarm::set_default_store(sqlite(dir)).unwrap();
    for i in 0..AGENTS {
        let ledger = Ledger::get_or_start(format!("l{i}")).expect("starts");
        println!("loaded l{i} {}", ledger.count().unwrap());
    }
    println!("checked");
}

fn write_agents(dir: &str) {
    swarm::set_default_store(sqlite(dir)).unwrap();
    for i in 0..AGENTS {
        let ledger = Ledger::get_or_start(format!("l{i}")).expect("starts");
        lunatic::Process::spawn((i, ledger), |(i, ledger), _: lunatic::Mailbox<()>| loop {
            let count = ledger.save().unwrap();
            println!("acked l{i} {count}");
        });
    }
    idle();
}

fn idle() {
    loop {
        lunatic::sleep(std::time::Duration::from_secs(60));
    }
}
