//! The file store: one file per record, replaced atomically.
//!
//! `<dir>/<kind>/<key>.rec` holds the record for storage key `<kind>/<key>`. A record is written
//! to a temporary file in the same directory, which is renamed over the record, so after a crash
//! (of the agent, the node or the machine) a reader finds either the old record or the new one,
//! whole. (Inside Lunatic, WASI cannot fsync a directory; see `sync_dir` for what that leaves.)
//!
//! **Group commit** (inside Lunatic): agents do not write records themselves. One store process
//! per node and directory takes every save queued in its mailbox, appends them all to the
//! directory's journal with one write and one fsync, then writes their records and answers each
//! caller: a hundred agents saving at once share one fsync instead of paying one each, and a save
//! is answered only once it is durable (in the journal). Opening the store replays the journal
//! before anything is read; see `journal.rs`. Reads go straight to the record files, which
//! are written before a save is answered. Natively (tools, tests) a `put` writes and fsyncs its
//! record itself, and `open` replays what a node left in the journal: open natively only a
//! directory that no running node writes.
//!
//! A write interrupted by a crash (the agent killed, the node killed) leaves its temporary file
//! behind, never a damaged record. Opening a store removes those leftovers: inside Lunatic, once
//! per node and directory, in the store process as it starts, while every other opener waits (so
//! no live write's temporary file is ever taken for a leftover); natively, at every `open`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::journal::{self, Entry, JOURNAL_NAME};
use super::{validate_prefix, validate_storage_key, Store, StoreError};

/// Largest value the file store accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 256 << 20;

const RECORD_SUFFIX: &str = ".rec";
const TEMP_MARK: &str = ".tmp-";

/// A store of one file per record under a directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// The node's store process for this directory, which makes every write (group commit).
    #[cfg(target_arch = "wasm32")]
    writer: super::server::StoreClient<writer::FileBackend>,
}

impl FileStore {
    /// Opens (creating it when missing) the store in `dir`: removes the temporary files of
    /// interrupted writes and replays the journal first (inside Lunatic, once per node).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|err| {
            io_error(
                format!("cannot create the store directory {}", dir.display()),
                err,
            )
        })?;
        #[cfg(not(target_arch = "wasm32"))]
        {
            recover(&dir)?;
            Ok(FileStore { dir })
        }
        #[cfg(target_arch = "wasm32")]
        {
            // One store process per directory, however its path is spelled (`data`, `./data/`).
            let normal: PathBuf = dir
                .components()
                .filter(|part| !matches!(part, std::path::Component::CurDir))
                .collect();
            let name = format!("swarm/file-store/{}", normal.display());
            let writer = super::server::StoreClient::get_or_start(&name, dir.clone())?;
            // Started by another opener: wait until its recovery is over.
            writer.barrier()?;
            Ok(FileStore { dir, writer })
        }
    }

    /// Removes the temporary files that interrupted writes left under the store's directory
    /// (never a record); returns how many it removed.
    pub fn remove_leftovers(&self) -> Result<usize, StoreError> {
        remove_leftovers(&self.dir)
    }
}

/// Where the record of `key` lives under `dir`.
fn record_path(dir: &Path, key: &str) -> PathBuf {
    let mut path = dir.join(key);
    path.as_mut_os_string().push(RECORD_SUFFIX);
    path
}

fn check_value(key: &str, value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::TooLarge {
            key: key.into(),
            size: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_storage_key(key)?;
        read_record(&self.dir, key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        check_value(key, value)?;
        #[cfg(target_arch = "wasm32")]
        return self.writer.put(key, value);
        #[cfg(not(target_arch = "wasm32"))]
        return write_record(&self.dir, key, value, Durable::OnItsOwn).map(drop);
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        #[cfg(target_arch = "wasm32")]
        return self.writer.delete(key);
        #[cfg(not(target_arch = "wasm32"))]
        return delete_record(&self.dir, key, Durable::OnItsOwn);
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        list_keys(&self.dir, prefix)
    }
}

fn read_record(dir: &Path, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let path = record_path(dir, key);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(format!("cannot read {}", path.display()), err)),
    }
}

fn list_keys(dir: &Path, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    collect_keys(dir, "", &mut keys)?;
    keys.retain(|key| key.starts_with(prefix));
    keys.sort();
    Ok(keys)
}

/// Whether a record write makes itself durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// fsync the temporary file before the rename, and the directory after it: the write is
    /// durable on its own.
    OnItsOwn,
    /// Neither: the journal already holds the write durably, and a checkpoint fsyncs the record
    /// before the journal lets go of it. (Only the Lunatic store process journals.)
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    ByJournal,
}

/// Writes the record of `key` (temporary file, rename); returns its path.
fn write_record(dir: &Path, key: &str, value: &[u8], sync: Durable) -> Result<PathBuf, StoreError> {
    let path = record_path(dir, key);
    let parent = path.parent().unwrap_or(dir).to_path_buf();
    fs::create_dir_all(&parent)
        .map_err(|err| io_error(format!("cannot create {}", parent.display()), err))?;
    let temp = temp_path_for(&path);
    let written = write_file(&temp, value, sync == Durable::OnItsOwn)
        .and_then(|()| fs::rename(&temp, &path))
        .map_err(|err| io_error(format!("cannot write {}", path.display()), err));
    if written.is_err() {
        // The record itself is untouched; do not leave a half-written temp file behind.
        let _ = fs::remove_file(&temp);
    }
    written?;
    if sync == Durable::OnItsOwn {
        sync_dir(&parent)?;
    }
    Ok(path)
}

fn delete_record(dir: &Path, key: &str, sync: Durable) -> Result<(), StoreError> {
    let path = record_path(dir, key);
    match fs::remove_file(&path) {
        Ok(()) if sync == Durable::OnItsOwn => sync_dir(path.parent().unwrap_or(dir)),
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(format!("cannot delete {}", path.display()), err)),
    }
}

/// Makes the store in `dir` whole after a crash, before anything reads or writes it: removes
/// the temporary files of interrupted writes, then replays the journal (each whole frame written
/// to its record with its own fsync, in order) and empties it.
fn recover(dir: &Path) -> Result<(), StoreError> {
    report_leftovers(dir, remove_leftovers(dir)?);
    let path = dir.join(JOURNAL_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error(format!("cannot read {}", path.display()), err)),
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let (entries, torn) = journal::decode(&bytes);
    for entry in &entries {
        // The writer checked every key before journaling it; a key that fails now was not
        // written by swarm, and is not followed out of the directory.
        let key = match entry {
            Entry::Put(key, _) | Entry::Delete(key) => key,
        };
        if let Err(err) = validate_storage_key(key) {
            crate::log::error(
                "store.journal_entry_skipped",
                &[("backend", "file"), ("dir", &dir.display().to_string())],
                &format!("journal entry skipped: {err}"),
            );
            continue;
        }
        match entry {
            Entry::Put(key, value) => write_record(dir, key, value, Durable::OnItsOwn).map(drop)?,
            Entry::Delete(key) => delete_record(dir, key, Durable::OnItsOwn)?,
        }
    }
    // Replaying is the normal start (the journal is emptied at an open and every 8 MiB, not at
    // each exit), so only a crash's trace is worth a line.
    if torn {
        crate::log::warn(
            "store.journal_replayed",
            &[("backend", "file"), ("dir", &dir.display().to_string())],
            &format!(
                "replayed {} journaled write(s); the last one was cut short by a crash (never \
                 acknowledged) and is dropped",
                entries.len()
            ),
        );
    }
    empty_journal(&path)
}

/// Empties the journal at `path`, durably: what it held is in the records, fsynced.
fn empty_journal(path: &Path) -> Result<(), StoreError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| {
            file.set_len(0)?;
            file.sync_all()
        })
        .map_err(|err| io_error(format!("cannot empty {}", path.display()), err))
}

/// The node's file store process for one directory: recovery when it starts, then every write,
/// journaled in groups (see the module's documentation and `journal.rs`).
#[cfg(target_arch = "wasm32")]
mod writer {
    use std::collections::BTreeSet;
    use std::fs::{self, File};
    use std::io::Write;
    use std::path::PathBuf;

    use super::super::server::{Backend, StoreAnswer, StoreOp};
    use super::super::StoreError;
    use super::journal::{self, Entry, CHECKPOINT_BYTES, JOURNAL_NAME};
    use super::{
        delete_record, io_error, list_keys, read_record, recover, write_record, Durable,
        MAX_VALUE_LEN,
    };

    pub(crate) struct FileBackend {
        dir: PathBuf,
        journal: File,
        /// The journal's length after its last whole, fsynced group.
        journal_len: u64,
        /// Records written since the journal was last emptied: fsynced before it is emptied.
        unsynced: BTreeSet<PathBuf>,
        /// Set when a failed journal write could not be cut back: a later group appended after a
        /// torn frame would be lost to the replay, so this process writes nothing more.
        broken: Option<String>,
    }

    impl FileBackend {
        /// Appends `entries` to the journal and fsyncs it: once this returns `Ok`, they are
        /// durable. On an error the journal is cut back to where it was.
        fn journal(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
            if let Some(why) = &self.broken {
                return Err(StoreError::backend("file", why.clone()));
            }
            let mut bytes = Vec::new();
            for entry in entries {
                journal::encode(entry, &mut bytes);
            }
            let path = self.dir.join(JOURNAL_NAME);
            let written = self
                .journal
                .write_all(&bytes)
                .and_then(|()| self.journal.sync_all());
            if let Err(err) = written {
                let error = io_error(format!("cannot write {}", path.display()), err);
                if let Err(cut) = self
                    .journal
                    .set_len(self.journal_len)
                    .and_then(|()| self.journal.sync_all())
                {
                    self.broken = Some(format!(
                        "the journal {} could not be cut back after a failed write ({cut}); \
                         restart the node to recover the store",
                        path.display()
                    ));
                }
                return Err(error);
            }
            self.journal_len += bytes.len() as u64;
            Ok(())
        }

        /// Once the journal is long enough: fsyncs every record written since the last time,
        /// then empties the journal. A failure leaves the journal as it is (it still holds
        /// every write), to be tried again after the next group.
        fn checkpoint_if_due(&mut self) {
            if self.journal_len < CHECKPOINT_BYTES {
                return;
            }
            for path in &self.unsynced {
                let synced = fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|file| file.sync_all());
                match synced {
                    Ok(()) => {}
                    // Deleted since: the journal's delete frame is the last word on it.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        crate::log::error(
                            "store.checkpoint_put_off",
                            &[
                                ("backend", "file"),
                                ("dir", &self.dir.display().to_string()),
                            ],
                            &format!("checkpoint put off, cannot fsync {}: {err}", path.display()),
                        );
                        return;
                    }
                }
            }
            let emptied = self
                .journal
                .set_len(0)
                .and_then(|()| self.journal.sync_all());
            match emptied {
                Ok(()) => {
                    self.journal_len = 0;
                    self.unsynced.clear();
                }
                Err(err) => crate::log::error(
                    "store.checkpoint_put_off",
                    &[
                        ("backend", "file"),
                        ("dir", &self.dir.display().to_string()),
                    ],
                    &format!("checkpoint put off, cannot empty the journal: {err}"),
                ),
            }
        }
    }

    impl Backend for FileBackend {
        const NAME: &'static str = "file";
        const MAX_VALUE_LEN: usize = MAX_VALUE_LEN;
        type Arg = PathBuf;

        fn open(dir: PathBuf) -> Result<Self, StoreError> {
            recover(&dir)?;
            let path = dir.join(JOURNAL_NAME);
            let journal = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|err| io_error(format!("cannot open {}", path.display()), err))?;
            let journal_len = journal
                .metadata()
                .map_err(|err| io_error(format!("cannot read {}", path.display()), err))?
                .len();
            Ok(FileBackend {
                dir,
                journal,
                journal_len,
                unsynced: BTreeSet::new(),
                broken: None,
            })
        }

        fn apply(&mut self, op: StoreOp) -> Result<StoreAnswer, StoreError> {
            match op {
                StoreOp::Get(key) => read_record(&self.dir, &key).map(StoreAnswer::Value),
                StoreOp::Put(key, value) => {
                    self.apply_puts(&mut std::iter::once((key, value)))?;
                    Ok(StoreAnswer::Done)
                }
                StoreOp::Delete(key) => {
                    self.journal(&[Entry::Delete(key.clone())])?;
                    delete_record(&self.dir, &key, Durable::ByJournal)?;
                    self.checkpoint_if_due();
                    Ok(StoreAnswer::Done)
                }
                StoreOp::List(prefix) => list_keys(&self.dir, &prefix).map(StoreAnswer::Keys),
                StoreOp::Barrier => Ok(StoreAnswer::Done),
            }
        }

        /// Group commit: the whole group in the journal with one write and one fsync, then each
        /// record written (no fsync of its own). An error answers every caller of the group: if
        /// the journal write failed, nothing was saved; if a record write failed, its save may
        /// still come back from the journal at the next start (it was never acknowledged).
        fn apply_puts(
            &mut self,
            puts: &mut dyn Iterator<Item = (String, Vec<u8>)>,
        ) -> Result<(), StoreError> {
            let entries: Vec<Entry> = puts.map(|(key, value)| Entry::Put(key, value)).collect();
            self.journal(&entries)?;
            for entry in entries {
                if let Entry::Put(key, value) = entry {
                    let path = write_record(&self.dir, &key, &value, Durable::ByJournal)?;
                    self.unsynced.insert(path);
                }
            }
            self.checkpoint_if_due();
            Ok(())
        }
    }
}

fn collect_keys(dir: &Path, key_prefix: &str, keys: &mut Vec<String>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error(format!("cannot list {}", dir.display()), err)),
    };
    for entry in entries {
        let entry = entry.map_err(|err| io_error(format!("cannot list {}", dir.display()), err))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let file_type = entry
            .file_type()
            .map_err(|err| io_error(format!("cannot list {}", dir.display()), err))?;
        if file_type.is_dir() {
            collect_keys(&entry.path(), &format!("{key_prefix}{name}/"), keys)?;
        } else if let Some(stem) = name.strip_suffix(RECORD_SUFFIX) {
            let key = format!("{key_prefix}{stem}");
            // Temp files and foreign files are not records.
            if !name.contains(TEMP_MARK) && validate_storage_key(&key).is_ok() {
                keys.push(key);
            }
        }
    }
    Ok(())
}

/// Whether a file name is one of this store's temporary files: `<key>.rec.tmp-<unique>`. A
/// record's name ends in `.rec` and keys have no dots, so no record can look like one.
fn is_temp_name(name: &str) -> bool {
    name.split_once(TEMP_MARK)
        .is_some_and(|(record, _)| record.ends_with(RECORD_SUFFIX))
}

fn remove_leftovers(dir: &Path) -> Result<usize, StoreError> {
    remove_leftovers_older_than(dir, now_nanos())
}

/// Removes the temporary files under `dir` that were made before `started` (nanoseconds since
/// the epoch, the time their names carry): a temporary file made since belongs to a write in
/// progress (another store whose directory is inside this one, say), not to a crash.
fn remove_leftovers_older_than(dir: &Path, started: u128) -> Result<usize, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(io_error(format!("cannot list {}", dir.display()), err)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|err| io_error(format!("cannot list {}", dir.display()), err))?;
        let file_type = entry
            .file_type()
            .map_err(|err| io_error(format!("cannot list {}", dir.display()), err))?;
        if file_type.is_dir() {
            removed += remove_leftovers_older_than(&entry.path(), started)?;
            continue;
        }
        let Some(made) = entry.file_name().to_str().and_then(temp_file_time) else {
            continue;
        };
        if made >= started {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(io_error(
                    format!("cannot remove {}", entry.path().display()),
                    err,
                ))
            }
        }
    }
    Ok(removed)
}

/// When the temporary file `name` was made (the nanoseconds its name carries), if it is one of
/// this store's temporary files; a temporary name without a readable time counts as old.
fn temp_file_time(name: &str) -> Option<u128> {
    if !is_temp_name(name) {
        return None;
    }
    let (_, unique) = name.split_once(TEMP_MARK)?;
    let nanos = unique.split('-').next().unwrap_or_default();
    Some(u128::from_str_radix(nanos, 16).unwrap_or(0))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn report_leftovers(dir: &Path, removed: usize) {
    if removed > 0 {
        crate::log::warn(
            "store.temporary_files_removed",
            &[("backend", "file"), ("dir", &dir.display().to_string())],
            &format!("removed {removed} temporary file(s) left by interrupted writes"),
        );
    }
}

fn temp_path_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = now_nanos();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_MARK}{nanos:x}-{unique}"));
    path.with_file_name(name)
}

fn write_file(path: &Path, value: &[u8], sync: bool) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(value)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    match File::open(dir).and_then(|handle| handle.sync_all()) {
        Ok(()) => Ok(()),
        // Lunatic 0.13's WASI layer (wasi-common) refuses `fd_sync` on directories with EBADF: a
        // guest cannot fsync a directory at all. The renamed record is then durable against a
        // crash of the agent or of the node (the host kernel has the rename), but not against
        // power loss; the SQLite store, which syncs on the host side, is the one for that.
        Err(err) if cfg!(target_os = "wasi") && err.raw_os_error() == Some(WASI_EBADF) => Ok(()),
        Err(err) => Err(io_error(
            format!("cannot fsync the directory {}", dir.display()),
            err,
        )),
    }
}

/// `EBADF` as WASI numbers it.
const WASI_EBADF: i32 = 8;

fn io_error(context: String, err: io::Error) -> StoreError {
    StoreError::backend("file", format!("{context}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("swarm-file-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn put_get_delete_list() {
        let dir = scratch("basic");
        let store = FileStore::open(&dir).unwrap();
        assert_eq!(store.get("k/a").unwrap(), None);
        store.put("k/a", b"one").unwrap();
        store.put("k/b", b"two").unwrap();
        store.put("other/c", b"three").unwrap();
        store.put("k/a", b"uno").unwrap();
        assert_eq!(store.get("k/a").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!(store.list("k/").unwrap(), vec!["k/a", "k/b"]);
        assert_eq!(store.list("").unwrap(), vec!["k/a", "k/b", "other/c"]);
        store.delete("k/a").unwrap();
        store.delete("k/a").unwrap();
        assert_eq!(store.get("k/a").unwrap(), None);
        assert_eq!(store.list("k").unwrap(), vec!["k/b"]);
        // No temp files are left behind by successful writes.
        let names: Vec<_> = fs::read_dir(dir.join("k"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("b.rec")]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_keys_that_would_escape_the_directory() {
        let dir = scratch("escape");
        let store = FileStore::open(&dir).unwrap();
        for key in ["../x", "/etc/passwd", "a/./b", "a b"] {
            assert!(
                matches!(store.put(key, b"x"), Err(StoreError::InvalidKey { .. })),
                "{key}"
            );
            assert!(
                matches!(store.get(key), Err(StoreError::InvalidKey { .. })),
                "{key}"
            );
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn opening_removes_temp_files_left_by_a_crash_and_keeps_every_record() {
        let dir = scratch("leftovers");
        let store = FileStore::open(&dir).unwrap();
        store.put("k/a", b"whole").unwrap();
        store.put("k/deep/b", b"also whole").unwrap();
        // What a write killed between creating its temp file and the rename leaves behind.
        fs::write(dir.join("k").join("a.rec.tmp-18f2a-0"), b"half").unwrap();
        fs::write(dir.join("k").join("c.rec.tmp-18f2b-7"), b"never renamed").unwrap();
        fs::write(dir.join("k").join("deep").join("b.rec.tmp-1-1"), b"").unwrap();
        // Not ours: left alone.
        fs::write(dir.join("k").join("notes.txt"), b"user file").unwrap();
        let reopened = FileStore::open(&dir).unwrap();
        let mut names: Vec<String> = walk(&dir);
        names.sort();
        assert_eq!(names, vec!["k/a.rec", "k/deep/b.rec", "k/notes.txt"]);
        assert_eq!(reopened.get("k/a").unwrap().as_deref(), Some(&b"whole"[..]));
        assert_eq!(
            reopened.get("k/deep/b").unwrap().as_deref(),
            Some(&b"also whole"[..])
        );
        assert_eq!(reopened.remove_leftovers().unwrap(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                found.extend(
                    walk(&entry.path())
                        .into_iter()
                        .map(|n| format!("{name}/{n}")),
                );
            } else {
                found.push(name);
            }
        }
        found
    }

    #[test]
    fn a_sweep_keeps_temp_files_made_after_it_started() {
        let dir = scratch("live-temp");
        fs::create_dir_all(dir.join("k")).unwrap();
        let started = now_nanos();
        // A write in progress (made after the sweep began) and a leftover (made before).
        let live = format!("a.rec{TEMP_MARK}{:x}-3", started + 1_000_000);
        let old = format!("b.rec{TEMP_MARK}{:x}-4", started - 1_000_000);
        fs::write(dir.join("k").join(&live), b"in progress").unwrap();
        fs::write(dir.join("k").join(&old), b"left by a crash").unwrap();
        assert_eq!(remove_leftovers_older_than(&dir, started).unwrap(), 1);
        assert!(dir.join("k").join(&live).exists());
        assert!(!dir.join("k").join(&old).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    /// The journal a node left when it was killed: `entries` journaled (acknowledged), and
    /// maybe a last group cut short.
    fn leave_journal(dir: &Path, entries: &[Entry], torn_tail: bool) {
        let mut bytes = Vec::new();
        for entry in entries {
            journal::encode(entry, &mut bytes);
        }
        if torn_tail {
            let mut tail = Vec::new();
            journal::encode(
                &Entry::Put("k/a".into(), b"never acknowledged".to_vec()),
                &mut tail,
            );
            bytes.extend_from_slice(&tail[..tail.len() - 3]);
        }
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(JOURNAL_NAME), bytes).unwrap();
    }

    #[test]
    fn opening_replays_the_journal_a_killed_node_left() {
        let dir = scratch("replay");
        let store = FileStore::open(&dir).unwrap();
        store.put("k/a", b"old").unwrap();
        store.put("k/gone", b"to be deleted").unwrap();
        // The node journaled these, answered them, and was killed before (or while) writing
        // their records.
        leave_journal(
            &dir,
            &[
                Entry::Put("k/a".into(), b"first".to_vec()),
                Entry::Put("k/b".into(), b"new record".to_vec()),
                Entry::Delete("k/gone".into()),
                Entry::Put("k/a".into(), b"last".to_vec()),
            ],
            true,
        );
        let reopened = FileStore::open(&dir).unwrap();
        assert_eq!(reopened.get("k/a").unwrap().as_deref(), Some(&b"last"[..]));
        assert_eq!(
            reopened.get("k/b").unwrap().as_deref(),
            Some(&b"new record"[..])
        );
        assert_eq!(reopened.get("k/gone").unwrap(), None);
        assert_eq!(reopened.list("").unwrap(), vec!["k/a", "k/b"]);
        assert_eq!(fs::read(dir.join(JOURNAL_NAME)).unwrap(), b"", "emptied");
        // Replayed once: opening again changes nothing.
        let again = FileStore::open(&dir).unwrap();
        assert_eq!(again.get("k/a").unwrap().as_deref(), Some(&b"last"[..]));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_journal_entry_with_a_key_that_escapes_is_not_followed() {
        let dir = scratch("replay-escape");
        leave_journal(
            &dir,
            &[
                Entry::Put("../outside".into(), b"x".to_vec()),
                Entry::Put("k/a".into(), b"kept".to_vec()),
            ],
            false,
        );
        let store = FileStore::open(&dir).unwrap();
        assert_eq!(store.get("k/a").unwrap().as_deref(), Some(&b"kept"[..]));
        assert!(!dir.parent().unwrap().join("outside.rec").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_names_are_never_record_names() {
        assert!(is_temp_name("a.rec.tmp-18f2a-0"));
        assert!(!is_temp_name("a.rec"));
        assert!(!is_temp_name("a.tmp-1"));
        assert!(!is_temp_name("notes.txt"));
    }

    #[test]
    fn ignores_temp_files_left_by_a_crash() {
        let dir = scratch("temp");
        let store = FileStore::open(&dir).unwrap();
        store.put("k/a", b"whole").unwrap();
        fs::write(dir.join("k").join("a.rec.tmp-dead-0"), b"half").unwrap();
        assert_eq!(store.list("").unwrap(), vec!["k/a"]);
        assert_eq!(store.get("k/a").unwrap().as_deref(), Some(&b"whole"[..]));
        fs::remove_dir_all(dir).unwrap();
    }
}
