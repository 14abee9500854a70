//! Compile-time tests of swarm's macros, run by trybuild for `wasm32-wasip1`.
//!
//! - `ui/fail/*.rs`: each is one mistake; it must fail to compile with exactly the errors in the
//!   `.stderr` file next to it.
//! - `ui/pass/*.rs`: correct agents; each must compile and link for `wasm32-wasip1`. They are not
//!   run (see `build_for_wasm`): their `main` is empty, and a `usage` function type-checks the
//!   caller's side of the generated API.
//!
//! See `ui-tests/README.md` for how this reaches wasm32 and how to bless new `.stderr` files.

use std::env;
use std::sync::Once;

/// Makes every cargo that trybuild starts build for `wasm32-wasip1`.
///
/// `CARGO_BUILD_TARGET` alone is not enough: trybuild passes `--target <host>` on the command line,
/// which beats the environment. trybuild runs `$CARGO`, so we point that at our `wasm-cargo`,
/// which swaps the target and runs the real cargo.
fn build_for_wasm() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let real_cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        env::set_var("SWARM_UI_REAL_CARGO", real_cargo);
        env::set_var("SWARM_UI_TARGET", "wasm32-wasip1");
        env::set_var("CARGO", env!("CARGO_BIN_EXE_wasm-cargo"));
        // Also right if trybuild ever stops passing `--target` (or is built with
        // `--cfg trybuild_no_target`): then cargo reads this.
        env::set_var("CARGO_BUILD_TARGET", "wasm32-wasip1");
        // trybuild runs each pass case after building it (`cargo run`). Under Lunatic that would
        // prove nothing more: `lunatic run` (0.13) exits 0 even when `main` panics or calls
        // `exit(1)`, so agents' behaviour is tested in `tests/` with Lunatic's test harness
        // instead. This runner (overriding the workspace's `scripts/lunatic-runner`) succeeds
        // without running the `.wasm`, so a pass case passes when it builds.
        env::set_var("CARGO_TARGET_WASM32_WASIP1_RUNNER", "true");
    });
}

#[test]
fn ui_fail() {
    build_for_wasm();
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}

#[test]
fn ui_pass() {
    build_for_wasm();
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
}
