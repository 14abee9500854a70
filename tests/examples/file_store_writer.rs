//! A node that writes to the file store as fast as it can, for `tests/support/crash_file_store.py`,
//! which SIGKILLs it mid-write and counts what the kills leave behind.
//!
//! `file_store_writer write DIR`: four processes each put a 4 MiB value under their own key, over
//! and over, the count in its first 8 bytes; after each acknowledged put (`put` returned `Ok`, so
//! it is durable) it prints `acked <key> <count>`. The values are large and prepared once, so
//! most of the time goes to writing them, and a kill usually lands in the middle of a write.
//! `file_store_writer check DIR`: opens the store (which removes leftover temporary files),
//! prints `loaded <key> <count>` for each key, then `checked`, and exits.

use swarm::prelude::*;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];
const VALUE_LEN: usize = 4 << 20;

fn storage_key(key: &str) -> String {
    format!("ledger/{key}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: file_store_writer write|check DIR");
        std::process::exit(2);
    };
    let config = StoreConfig::file(dir);
    let store = config.open().expect("the store opens");
    if mode == "check" {
        for key in KEYS {
            let count = store.get(&storage_key(key)).unwrap().map_or(0, |value| {
                u64::from_le_bytes(value[..8].try_into().unwrap())
            });
            println!("loaded {key} {count}");
        }
        println!("checked");
        return;
    }
    for key in KEYS {
        lunatic::Process::spawn(
            (key.to_owned(), config.clone()),
            |(key, config), _: lunatic::Mailbox<()>| {
                let store = config.open().expect("the store opens");
                let mut value = vec![b'x'; VALUE_LEN];
                let mut count: u64 = store.get(&storage_key(&key)).unwrap().map_or(0, |value| {
                    u64::from_le_bytes(value[..8].try_into().unwrap())
                });
                loop {
                    count += 1;
                    value[..8].copy_from_slice(&count.to_le_bytes());
                    store.put(&storage_key(&key), &value).unwrap();
                    println!("acked {key} {count}");
                }
            },
        );
    }
    loop {
        lunatic::sleep(std::time::Duration::from_secs(60));
    }
}
