//! The file store: one file per record, replaced atomically.
//!
//! `<dir>/<kind>/<key>.rec` holds the record for storage key `<kind>/<key>`. A write goes to a
//! temporary file in the same directory, is fsynced, renamed over the record, and then the
//! directory is fsynced, so after a crash (of the agent, the node or the machine) a reader finds
//! either the old record or the new one, whole, and a write that returned `Ok` is on disk.
//! (Inside Lunatic, WASI cannot fsync a directory; see `sync_dir` for what that leaves.)
//!
//! A write interrupted by a crash (the agent killed, the node killed) leaves its temporary file
//! behind, never a damaged record. Opening a store removes those leftovers: inside Lunatic, once
//! per node and directory, by the first agent that opens it, while every other opener waits (so no
//! live write's temporary file is ever taken for a leftover); natively, at every `open`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{validate_prefix, validate_storage_key, Store, StoreError};

/// Largest value the file store accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 256 << 20;

const RECORD_SUFFIX: &str = ".rec";
const TEMP_MARK: &str = ".tmp-";

/// A store of one file per record under a directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating it when missing) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|err| {
            io_error(
                format!("cannot create the store directory {}", dir.display()),
                err,
            )
        })?;
        sweep_once_per_node(&dir)?;
        Ok(FileStore { dir })
    }

    /// Removes the temporary files that interrupted writes left under the store's directory
    /// (never a record); returns how many it removed.
    pub fn remove_leftovers(&self) -> Result<usize, StoreError> {
        remove_leftovers(&self.dir)
    }

    fn record_path(&self, key: &str) -> PathBuf {
        let mut path = self.dir.join(key);
        path.as_mut_os_string().push(RECORD_SUFFIX);
        path
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_storage_key(key)?;
        let path = self.record_path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(format!("cannot read {}", path.display()), err)),
        }
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        let path = self.record_path(key);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|err| io_error(format!("cannot create {}", parent.display()), err))?;
        let temp = temp_path_for(&path);
        let written = write_synced(&temp, value)
            .and_then(|()| fs::rename(&temp, &path))
            .map_err(|err| io_error(format!("cannot write {}", path.display()), err));
        if written.is_err() {
            // The record itself is untouched; do not leave a half-written temp file behind.
            let _ = fs::remove_file(&temp);
        }
        written?;
        sync_dir(&parent)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_storage_key(key)?;
        let path = self.record_path(key);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.dir)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(format!("cannot delete {}", path.display()), err)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        let mut keys = Vec::new();
        collect_keys(&self.dir, "", &mut keys)?;
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        Ok(keys)
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

/// Natively, `open` is the caller's own explicit step: sweep every time.
#[cfg(not(target_arch = "wasm32"))]
fn sweep_once_per_node(dir: &Path) -> Result<(), StoreError> {
    report_leftovers(dir, remove_leftovers(dir)?);
    Ok(())
}

/// Inside Lunatic every agent opens its store when it starts: the sweep runs once per node and
/// directory, in a process registered under the directory's name. Lunatic's atomic "get or
/// spawn" lets exactly one opener start it; every opener (that one included) then asks it a
/// question that it answers only once the sweep is over, so no write starts in the directory
/// during the sweep. The process stays, answering later openers at once.
#[cfg(target_arch = "wasm32")]
fn sweep_once_per_node(dir: &Path) -> Result<(), StoreError> {
    use crate::runtime::mailbox::{call, process_exists, WaitError};
    use crate::runtime::process::{spawn_named, Named};

    // One sweep per directory, however its path is spelled (`data`, `./data/`).
    let normal: PathBuf = dir
        .components()
        .filter(|part| !matches!(part, std::path::Component::CurDir))
        .collect();
    let name = format!("swarm/file-store/{}", normal.display());
    let sweeper = match spawn_named(&name, dir.display().to_string(), run_sweeper) {
        Ok(Named::Started(id) | Named::Found(id)) => id,
        Err(err) => {
            return Err(StoreError::backend(
                "file",
                format!("cannot start the sweep of {}: {err}", dir.display()),
            ))
        }
    };
    if !process_exists(sweeper) {
        // It was killed after (or while) sweeping: leftovers, if any, are only untidy.
        return Ok(());
    }
    match call::<(), ()>(sweeper, (), None) {
        Ok(()) | Err(WaitError::ServerGone) => Ok(()),
        Err(err) => Err(StoreError::backend(
            "file",
            format!("the sweep of {} did not finish: {err:?}", dir.display()),
        )),
    }
}

#[cfg(target_arch = "wasm32")]
fn run_sweeper(dir: String) {
    use crate::runtime::host::{self, Received};
    use crate::runtime::mailbox::Envelope;

    let dir = PathBuf::from(dir);
    match remove_leftovers(&dir) {
        Ok(removed) => report_leftovers(&dir, removed),
        Err(err) => eprintln!("swarm: {err}"),
    }
    loop {
        if host::receive(&[], None) != Received::Data {
            continue;
        }
        if let Ok(Envelope {
            reply_to: Some(reply_to),
            ..
        }) = crate::runtime::mailbox::decode_envelope::<()>(host::tag())
        {
            reply_to.send(());
        }
    }
}

fn report_leftovers(dir: &Path, removed: usize) {
    if removed > 0 {
        eprintln!(
            "swarm: file store {}: removed {removed} temporary file(s) left by interrupted writes",
            dir.display()
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

fn write_synced(path: &Path, value: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(value)?;
    file.sync_all()
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
