//! `swarm new NAME`: a crate that builds its agents for Lunatic with a plain `cargo run` and runs
//! their `#[lunatic::test]` tests with `cargo test` — the target, the runner and the settings a
//! user would otherwise copy from this repository by hand, an agent, and a test of it.
//!
//! The only command that needs no NATS server.

use std::fs;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// Where the generated crate takes swarm from.
pub enum SwarmSource {
    /// A checkout's `swarm/` directory (the default when this binary was built from one).
    Path(PathBuf),
    /// crates.io, at this version requirement.
    Version(String),
}

impl SwarmSource {
    /// `--swarm` as given (a path to a checkout's `swarm/` crate, or a version), else the
    /// checkout this binary was built from, when it is still there.
    pub fn resolve(given: Option<&str>) -> Result<SwarmSource, Failure> {
        let checkout = || Path::new(env!("CARGO_MANIFEST_DIR")).join("../swarm");
        match given {
            Some(text) if text.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
                Ok(SwarmSource::Version(text.to_owned()))
            }
            Some(path) => crate_dir(Path::new(path)).map(SwarmSource::Path),
            None if checkout().join("Cargo.toml").is_file() => {
                crate_dir(&checkout()).map(SwarmSource::Path)
            }
            None => Ok(SwarmSource::Version(env!("CARGO_PKG_VERSION").to_owned())),
        }
    }

    fn dependency(&self) -> String {
        match self {
            // TOML basic strings escape `\` and `"`; a path has no other special character.
            SwarmSource::Path(path) => format!(
                "{{ path = \"{}\" }}",
                path.display()
                    .to_string()
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
            ),
            SwarmSource::Version(version) => format!("\"{version}\""),
        }
    }
}

fn crate_dir(path: &Path) -> Result<PathBuf, Failure> {
    let dir = path.canonicalize().map_err(|err| {
        Failure::usage(format!(
            "--swarm {}: {err}; give the swarm crate's directory (swarm/ in a checkout) or a version such as 0.1",
            path.display()
        ))
    })?;
    if !dir.join("Cargo.toml").is_file() {
        return Err(Failure::usage(format!(
            "--swarm {}: no Cargo.toml there; give the swarm crate's directory (swarm/ in a checkout)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Checks `name` as a crate name: ASCII letters, digits, `-` and `_`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), Failure> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "`{name}` is not a crate name: use ASCII letters, digits, - and _, starting with a letter (such as my-agents)"
        )))
    }
}

/// Writes the crate `name` into `dir` (which must not exist yet).
pub fn new(name: &str, dir: &Path, swarm: &SwarmSource) -> Result<(), Failure> {
    check_name(name)?;
    if dir.exists() {
        return Err(Failure::usage(format!(
            "{} exists already; choose another name or --path",
            dir.display()
        )));
    }
    let library = name.replace('-', "_");
    let files = [
        ("Cargo.toml", cargo_toml(name, swarm)),
        (".cargo/config.toml", CARGO_CONFIG.to_owned()),
        ("lunatic-runner", RUNNER.to_owned()),
        (".gitignore", "/target\n/agent-data\n".to_owned()),
        ("src/lib.rs", LIB_RS.to_owned()),
        ("src/main.rs", MAIN_RS.replace("{library}", &library)),
        ("tests/counter.rs", TEST_RS.replace("{library}", &library)),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        let written = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&path, text));
        if let Err(err) = written {
            return Err(Failure::failed(format!("writing {}: {err}", path.display())));
        }
    }
    make_executable(&dir.join("lunatic-runner"))?;
    println!(
        "created {name} in {}\n\n  cd {}\n  cargo run     # builds for wasm32-wasip1 and runs it under Lunatic\n  cargo test    # its #[lunatic::test] tests, under Lunatic too\n\n\
         It needs the wasm32-wasip1 target and the lunatic runtime 0.13 on PATH \
         (swarm's scripts/setup installs both).",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|err| Failure::failed(format!("making {} executable: {err}", path.display())))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<(), Failure> {
    Ok(())
}

fn cargo_toml(name: &str, swarm: &SwarmSource) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[dependencies]
swarm = {swarm}
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
# `#[lunatic::test]`: the tests run inside Lunatic, where agents live.
lunatic = "=0.14.1"
"#,
        swarm = swarm.dependency()
    )
}

const CARGO_CONFIG: &str = r#"# Agents are WebAssembly processes run by the Lunatic VM: `cargo run` and `cargo test` build for
# wasm32-wasip1 and run the result under Lunatic, through ./lunatic-runner (it says why it is more
# than `lunatic run`).
[build]
target = "wasm32-wasip1"

[target.wasm32-wasip1]
runner = "./lunatic-runner"
"#;

const RUNNER: &str = r#"#!/usr/bin/env bash
# Cargo's runner for wasm32-wasip1 (see .cargo/config.toml): runs a program or a test binary under
# the Lunatic VM, with access to this directory (the file store keeps its records here).
#
# Why not plain `lunatic run`:
# - lunatic 0.13 runs a binary's #[lunatic::test] tests only when its path matches
#   `target/wasm32-wasi/<profile>/deps/*.wasm`; built for wasm32-wasip1 the path says
#   `wasm32-wasip1`, and `cargo test` would report 0 tests. The test binary is linked (not copied)
#   under a `wasm32-wasi` path of this crate's target/ first.
# - RUST_BACKTRACE=1 makes Lunatic about 20x slower (it captures a backtrace on every message);
#   RUST_LIB_BACKTRACE=0 turns that off and keeps panic messages.
set -euo pipefail
wasm="$1"
shift
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE-0}"
case "$wasm" in
  */wasm32-wasip1/*/deps/*.wasm)
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    profile="$(basename "$(dirname "$(dirname "$wasm")")")"
    linked="$here/target/wasm32-wasi/$profile/deps/$(basename "$wasm")"
    mkdir -p "$(dirname "$linked")"
    ln -f "$wasm" "$linked" 2>/dev/null || cp -f "$wasm" "$linked"
    wasm="$linked"
    ;;
esac
# The wasm file stays the argument right after `run`: that is how lunatic recognises a test.
exec lunatic run "$wasm" --dir . "$@"
"#;

const LIB_RS: &str = r#"//! This crate's agents. Each runs as an isolated Lunatic process; `#[persist]` fields are saved
//! before a request is answered and come back when the agent starts again.

use swarm::prelude::*;

/// Counts, per key; the total survives crashes and restarts.
#[agent(kind = "counter")]
pub struct Counter {
    #[key]
    name: String,
    #[persist]
    total: u64,
}

#[agent]
impl Counter {
    /// Adds `n`; answers the new total.
    #[handler]
    pub fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }

    /// The total so far.
    #[handler]
    pub fn total(&self) -> u64 {
        self.total
    }
}
"#;

const MAIN_RS: &str = r#"use swarm::prelude::*;
use {library}::Counter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Records go to files under agent-data/ (the runner grants this directory).
    swarm::set_default_store(StoreConfig::file("agent-data"))?;
    let visits = Counter::get_or_start("visits")?;
    let total = visits.add(1)?;
    println!("visits: {total} (run it again: the count is kept in agent-data/)");
    Ok(())
}
"#;

const TEST_RS: &str = r#"use swarm::prelude::*;
use {library}::Counter;

#[lunatic::test]
fn the_total_survives_a_crash() {
    let counter = Counter::launcher()
        .store(StoreConfig::memory("test"))
        .get_or_start("a")
        .unwrap();
    assert_eq!(counter.add(2).unwrap(), 2);
    assert_eq!(counter.add(3).unwrap(), 5);
    // Killed from outside: the next handle starts it again, with what it saved.
    counter.kill();
    let again = Counter::launcher()
        .store(StoreConfig::memory("test"))
        .get_or_start("a")
        .unwrap();
    assert_eq!(again.total().unwrap(), 5);
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names() {
        for good in ["agents", "my-agents", "a_1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "my agents", "../x", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_crate_is_written_once() {
        let root = std::env::temp_dir().join(format!("swarm-new-{}", std::process::id()));
        let dir = root.join("my-agents");
        let swarm = SwarmSource::Version("0.1".into());
        new("my-agents", &dir, &swarm).unwrap();
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-agents\""));
        assert!(manifest.contains("swarm = \"0.1\""));
        let main = fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains("use my_agents::Counter;"));
        assert!(dir.join(".cargo/config.toml").is_file());
        assert!(fs::read_to_string(dir.join("lunatic-runner"))
            .unwrap()
            .contains("wasm32-wasi/$profile/deps"));
        // A second time, it refuses to overwrite anything.
        let again = new("my-agents", &dir, &swarm).unwrap_err();
        assert!(again.message.contains("exists already"), "{}", again.message);
        fs::remove_dir_all(&root).unwrap();
    }
}
