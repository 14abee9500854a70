//! Embeds the dashboard's page (`dashboard/dist`, built by scripts/setup with esbuild from
//! `dashboard/src` and the NATS JavaScript client) into `swarm dashboard`. Without it (a checkout
//! where setup has not run) the binary still builds, and `swarm dashboard` says how to get it.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dashboard_built)");
    // The directory cargo runs this for (not `env!`, fixed when this script was compiled: a
    // target dir shared by two checkouts would then look in the other one).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest).join("../dashboard/dist");
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
