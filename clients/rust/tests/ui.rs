//! Compile-fail cases of the native client: what a caller sees when its code no longer fits the
//! agent's definition. (The macros' own misuse cases, built for Lunatic, are in `ui-tests/`.)
//!
//! Each case in `tests/ui/` is a bin of the `ui-cases` package of this workspace, which has this
//! package's dependencies with the same features; it is built with `cargo build` in the target
//! dir these tests were built in, so that only the case itself is compiled. (trybuild compiled the
//! whole tokio and async-nats stack once more, in its own target dir and with its own flags: about
//! two minutes of every run.) What the case must print is in `<case>.stderr`: rustc's errors in
//! short form, one line each, `$DIR` standing for `tests/ui`. `UI=overwrite` writes what was
//! printed instead.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn native_client_misuse() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases_dir = manifest_dir.join("tests/ui");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .expect("tests/ui is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", cases_dir.display());
    let overwrite = std::env::var("UI").as_deref() == Ok("overwrite");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let errors = build_errors(manifest_dir, &name);
        let expected_path = case.with_extension("stderr");
        if overwrite {
            std::fs::write(&expected_path, &errors).expect("the .stderr file is writable");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if errors.trim() != expected.trim() {
            failures.push(format!(
                "{name}:\n  expected ({}):\n{}\n  got:\n{}",
                expected_path.display(),
                indent(&expected),
                indent(&errors)
            ));
        } else {
            println!("{name}: ok");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases did not fail as expected (UI=overwrite records what they print):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The errors `cargo build` prints for case `name` in short form, one per line, the case's path
/// written `$DIR/<name>.rs`. A case that builds is a failure of its own.
fn build_errors(manifest_dir: &Path, name: &str) -> String {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // What cargo sets for this test process (the package's name, version, manifest) would reach
    // the build scripts that watch such variables (ring's does) and rebuild them.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|prefix| var.starts_with(prefix))
            || var == "CARGO_TARGET_TMPDIR"
        {
            cargo.env_remove(var.as_ref());
        }
    }
    let output = cargo
        .current_dir(manifest_dir)
        .args([
            "build",
            "--quiet",
            "--message-format",
            "short",
            "--color",
            "never",
        ])
        .args(["-p", "swarm-native-client-ui-cases", "--bin", name])
        .arg("--target-dir")
        .arg(target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        !output.status.success(),
        "case {name} compiled, but it must not: it stands for code that no longer fits the agent"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .filter_map(|line| {
            let at = line.find("tests/ui/")?;
            Some(format!("$DIR/{}\n", &line[at + "tests/ui/".len()..]))
        })
        .collect()
}

/// The target dir this test binary was built in (`<target>/debug/deps/ui-<hash>`), whatever
/// `--target-dir` or `CARGO_TARGET_DIR` said.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lies in <target>/<profile>/deps")
        .to_path_buf()
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}
