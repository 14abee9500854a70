//! `wasm-cargo`: the `cargo` that trybuild runs for swarm's ui tests.
//!
//! trybuild builds its cases by running `$CARGO ... --target <host>`, always naming the host
//! target on the command line (unless trybuild itself was compiled with `--cfg
//! trybuild_no_target`), and a `--target` flag beats `CARGO_BUILD_TARGET` and every config file.
//! swarm's generated code only builds for `wasm32-wasip1` (its runtime is Lunatic), so
//! `tests/ui.rs` points `CARGO` at this program, which replaces every `--target` with
//! `$SWARM_UI_TARGET` (default `wasm32-wasip1`) and runs the real cargo (`$SWARM_UI_REAL_CARGO`,
//! default `cargo`) with everything else unchanged.

use std::env;
use std::ffi::OsString;
use std::process::{self, Command};

fn main() {
    let cargo = env::var_os("SWARM_UI_REAL_CARGO").unwrap_or_else(|| "cargo".into());
    let target = env::var_os("SWARM_UI_TARGET").unwrap_or_else(|| "wasm32-wasip1".into());

    let mut args: Vec<OsString> = Vec::new();
    let mut given = env::args_os().skip(1);
    while let Some(arg) = given.next() {
        if arg == "--target" {
            given.next();
            args.push(arg);
            args.push(target.clone());
        } else if arg.to_str().is_some_and(|a| a.starts_with("--target=")) {
            let mut replaced = OsString::from("--target=");
            replaced.push(&target);
            args.push(replaced);
        } else {
            args.push(arg);
        }
    }

    let mut command = Command::new(&cargo);
    command.args(&args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = command.exec();
        eprintln!("wasm-cargo: cannot run {}: {err}", cargo.to_string_lossy());
        process::exit(127);
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) => process::exit(status.code().unwrap_or(1)),
        Err(err) => {
            eprintln!("wasm-cargo: cannot run {}: {err}", cargo.to_string_lossy());
            process::exit(127);
        }
    }
}
