//! The SQLite store: one database per store, in WAL mode with `synchronous=FULL`, through
//! Lunatic's host SQLite API.
//!
//! One store process per database owns the connection (Lunatic's SQLite connections belong to a
//! process, and SQLite takes one writer at a time anyway); agents send it operations.
//!
//! The host API opens whatever path it is given, so the store keeps paths inside the directory
//! the user configured itself: the database is a plain file name inside that directory, never a
//! path. (Lunatic only lets it open files under a directory granted to the node, such as the
//! working directory or one passed with `lunatic run --dir`.)

use std::path::{Path, PathBuf};

use lunatic::sqlite::{Query, SqliteClient, Value};
use serde::{Deserialize, Serialize};

use super::server::{Backend, StoreAnswer, StoreClient, StoreOp};
use super::{Store, StoreError};

/// Largest value the SQLite store accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 256 << 20;

/// A handle to the store process of one SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    client: StoreClient<SqliteBackend>,
}

impl SqliteStore {
    /// Opens (creating it when missing) the database `file` inside `dir`.
    pub fn open(dir: &Path, file: &str) -> Result<Self, StoreError> {
        validate_file_name(file)?;
        std::fs::create_dir_all(dir).map_err(|err| {
            StoreError::backend("sqlite", format!("cannot create {}: {err}", dir.display()))
        })?;
        let path = dir.join(file);
        let path_text = path
            .to_str()
            .ok_or_else(|| StoreError::Config(format!("the path {} is not UTF-8", path.display())))?
            .to_owned();
        let client = StoreClient::get_or_start(
            &format!("swarm/store/sqlite/{path_text}"),
            SqliteArg { path },
        )?;
        Ok(SqliteStore { client })
    }
}

fn validate_file_name(file: &str) -> Result<(), StoreError> {
    let refuse = |why: &str| {
        Err(StoreError::Config(format!(
            "SQLite file name {file:?}: {why}"
        )))
    };
    if file.is_empty() || file == "." || file == ".." {
        return refuse("must be a plain file name");
    }
    if let Some(c) = file
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '\0') || c.is_control())
    {
        return refuse(&format!(
            "{c:?} is not allowed: the database stays inside its directory"
        ));
    }
    Ok(())
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.client.get(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.client.put(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.client.list(prefix)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SqliteArg {
    path: PathBuf,
}

/// The connection, inside the store process.
pub(crate) struct SqliteBackend {
    db: SqliteClient,
}

impl SqliteBackend {
    fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.db
            .execute(sql)
            .map_err(|err| StoreError::backend("sqlite", format!("{sql}: {err:?}")))
    }
}

impl Backend for SqliteBackend {
    const NAME: &'static str = "sqlite";
    const MAX_VALUE_LEN: usize = MAX_VALUE_LEN;
    type Arg = SqliteArg;

    fn open(arg: SqliteArg) -> Result<Self, StoreError> {
        let path = arg.path.to_str().unwrap_or_default();
        let db = SqliteClient::connect(path).map_err(|err| {
            StoreError::backend(
                "sqlite",
                format!(
                    "cannot open {path}: {err:?} (under Lunatic the directory must be granted to \
                     the node: the working directory, or `lunatic run --dir`)"
                ),
            )
        })?;
        let backend = SqliteBackend { db };
        backend.execute("PRAGMA journal_mode=WAL")?;
        backend.execute("PRAGMA synchronous=FULL")?;
        backend.execute(
            "CREATE TABLE IF NOT EXISTS swarm_records (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
        )?;
        Ok(backend)
    }

    /// Group commit: every put of the batch in one transaction, so one fsync (WAL,
    /// `synchronous=FULL`) makes them all durable. A statement that fails panics inside Lunatic's
    /// SQLite API, which ends this process before `COMMIT`: the transaction is rolled back and no
    /// caller of the batch is told its write was saved.
    fn apply_puts(
        &mut self,
        puts: &mut dyn Iterator<Item = (String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        self.execute("BEGIN IMMEDIATE")?;
        for (key, value) in puts {
            self.db
                .prepare_query("INSERT OR REPLACE INTO swarm_records (key, value) VALUES (?1, ?2)")
                .bind(key)
                .bind(value)
                .execute();
        }
        if let Err(err) = self.execute("COMMIT") {
            let _rolled_back_or_never_begun = self.execute("ROLLBACK");
            return Err(err);
        }
        Ok(())
    }

    fn apply(&mut self, op: StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(match op {
            StoreOp::Get(key) => {
                let rows = self
                    .db
                    .prepare_query("SELECT value FROM swarm_records WHERE key = ?1")
                    .bind(key)
                    .execute();
                StoreAnswer::Value(rows.into_iter().next().and_then(|row| {
                    match row.into_iter().next() {
                        Some(Value::Blob(bytes)) => Some(bytes),
                        _ => None,
                    }
                }))
            }
            StoreOp::Put(key, value) => {
                self.db
                    .prepare_query(
                        "INSERT OR REPLACE INTO swarm_records (key, value) VALUES (?1, ?2)",
                    )
                    .bind(key)
                    .bind(value)
                    .execute();
                StoreAnswer::Done
            }
            StoreOp::Delete(key) => {
                self.db
                    .prepare_query("DELETE FROM swarm_records WHERE key = ?1")
                    .bind(key)
                    .execute();
                StoreAnswer::Done
            }
            StoreOp::Barrier => StoreAnswer::Done,
            StoreOp::List(prefix) => {
                // Every key character is below U+007F, so the keys starting with `prefix` are
                // exactly the range [prefix, prefix + U+007F): a scan of the primary key.
                let upper = format!("{prefix}\u{7f}");
                let rows = self
                    .db
                    .prepare_query(
                        "SELECT key FROM swarm_records WHERE key >= ?1 AND key < ?2 ORDER BY key",
                    )
                    .bind(prefix.clone())
                    .bind(upper)
                    .execute();
                StoreAnswer::Keys(
                    rows.into_iter()
                        .filter_map(|row| match row.into_iter().next() {
                            Some(Value::Text(key)) => Some(key),
                            _ => None,
                        })
                        .take_while(|key| key.starts_with(&prefix))
                        .collect(),
                )
            }
        })
    }
}
