//! Embeds the dashboard's page (`dashboard/dist`, built by scripts/setup with esbuild from
//! `dashboard/src` and the NATS JavaScript client) into `swarm dashboard`. Without it (a checkout
//! where setup has not run) the binary still builds, and `swarm dashboard` says how to get it.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dashboard_built)");
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/dist");
    let files = ["index.html", "dashboard.js", "style.css"];
    // Built later (setup after a first build): look again then. include_bytes! tracks the
    // files themselves once they are embedded.
    println!("cargo::rerun-if-changed={}", dist.display());
    for file in files {
        println!("cargo::rerun-if-changed={}", dist.join(file).display());
    }
    if files.iter().all(|file| dist.join(file).is_file()) {
        let dist = dist.canonicalize().expect("dashboard/dist exists");
        println!("cargo::rustc-env=SWARM_DASHBOARD_DIST={}", dist.display());
        println!("cargo::rustc-cfg=dashboard_built");
    }
}
