//! `swarm-node`: runs a swarm (a wasm32-wasip1 binary) like `lunatic run`, on the same Lunatic 0.13.2
//! runtime embedded as a library, but with a wasmtime configuration tuned for many small processes.
//!
//! Usage (the same arguments as `lunatic run`; the leading `run` is optional so that
//! `LUNATIC=swarm-node scripts/lunatic-runner ...` works unchanged):
//!
//! ```text
//! swarm-node [run] [--dir DIR]... [--no-cwd] [--bench] FILE.wasm [GUEST_ARGS]...
//! ```
//!
//! Why: lunatic 0.13's engine config (`lunatic_process::runtimes::wasmtime::default_config()`)
//! forces *static* memories: every process reserves 4 GiB + 2 GiB guard (+ 2 GiB guard before)
//! of address space, so 128 TiB of user address space caps a node near 16K processes, and each
//! process costs several memory maps. Here every linear memory is *dynamic*: it reserves only its
//! current size plus a small growth reserve (bounds checks are compiled into the code instead of
//! relying on guard pages). Every preopened directory costs one open file per process (spawned
//! processes inherit and reopen it): `--no-cwd` skips lunatic's implicit preopen of `.`.
//! See README.md for the measurements.
//!
//! Tuning knobs (environment variables, all optional; sizes in bytes, suffix k/m/g allowed):
//! - `SWARM_NODE_CONFIG=stock`    use lunatic's stock config (for A/B measurements)
//! - `SWARM_NODE_GROWTH_RESERVE`  address space reserved past a memory's size (default 32m; 0 =
//!   densest, but every memory.grow then moves the memory)
//! - `SWARM_NODE_GUARD`           guard region after a dynamic memory (default 0)
//! - `SWARM_NODE_ASYNC_STACK`     fiber stack per process (default 1m)
//! - `SWARM_NODE_WASM_STACK`      max wasm stack, must be < the fiber stack (default 512k)
//! - `SWARM_NODE_COW=0|1`         map initial memory images copy-on-write (default 1)
//! - `SWARM_NODE_VERBOSE=1`       print the configuration used on stderr

use std::{path::PathBuf, sync::Arc};

use anyhow::{anyhow, bail, Context, Result};
use lunatic_process::{
    env::{Environment, Environments, LunaticEnvironments},
    runtimes::{self, wasmtime::WasmtimeRuntime, RawWasm},
    wasm::spawn_wasm,
};
use lunatic_process_api::ProcessConfigCtx;
use lunatic_runtime::{DefaultProcessConfig, DefaultProcessState};

struct Args {
    dir: Vec<PathBuf>,
    no_cwd: bool,
    path: PathBuf,
    wasm_args: Vec<String>,
}

const USAGE: &str = "usage: swarm-node [run] [--dir DIR]... [--no-cwd] [--bench] FILE.wasm [GUEST_ARGS]...
  --dir DIR   grant the guest access to DIR (like lunatic run)
  --no-cwd    do not preopen the current directory (lunatic always does); every preopened
              directory costs one open file per process, inherited by every spawned process";

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1).peekable();
    if it.peek().map(String::as_str) == Some("run") {
        it.next();
    }
    let mut dir = Vec::new();
    let mut bench = false;
    let mut no_cwd = false;
    let mut path = None;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => dir.push(PathBuf::from(
                it.next().ok_or_else(|| anyhow!("--dir needs a DIRECTORY\n{USAGE}"))?,
            )),
            "--bench" => bench = true,
            "--no-cwd" => no_cwd = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("swarm-node {} (lunatic-runtime 0.13.2)", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--" => {
                path = it.next().map(PathBuf::from);
                break;
            }
            s if s.starts_with("--dir=") => dir.push(PathBuf::from(&s["--dir=".len()..])),
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            _ => {
                path = Some(PathBuf::from(arg));
                break;
            }
        }
    }
    let path = path.ok_or_else(|| anyhow!("missing the .wasm file\n{USAGE}"))?;
    let mut wasm_args: Vec<String> = it.collect();
    if bench {
        // Like `lunatic run --bench`: tell the guest.
        wasm_args.push("--bench".to_owned());
    }
    Ok(Args { dir, no_cwd, path, wasm_args })
}

fn size_var(name: &str, default: u64) -> Result<u64> {
    let Ok(v) = std::env::var(name) else { return Ok(default) };
    let v = v.trim().to_ascii_lowercase();
    let (num, mul) = match v.chars().last() {
        Some('k') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m') => (&v[..v.len() - 1], 1 << 20),
        Some('g') => (&v[..v.len() - 1], 1 << 30),
        _ => (&v[..], 1),
    };
    let n: u64 = num.parse().with_context(|| format!("{name}={v}: not a size"))?;
    Ok(n * mul)
}

/// The engine configuration: lunatic's own settings (async, fuel, features, on-demand
/// allocation), except for memories and stacks.
fn node_config() -> Result<(wasmtime::Config, String)> {
    if std::env::var("SWARM_NODE_CONFIG").as_deref() == Ok("stock") {
        return Ok((runtimes::wasmtime::default_config(), "stock lunatic config".into()));
    }
    let reserve = size_var("SWARM_NODE_GROWTH_RESERVE", 32 << 20)?;
    let guard = size_var("SWARM_NODE_GUARD", 0)?;
    let async_stack = size_var("SWARM_NODE_ASYNC_STACK", 1 << 20)?;
    let wasm_stack = size_var("SWARM_NODE_WASM_STACK", 512 << 10)?;
    let cow = std::env::var("SWARM_NODE_COW").as_deref() != Ok("0");
    if wasm_stack >= async_stack {
        bail!("SWARM_NODE_WASM_STACK ({wasm_stack}) must be smaller than SWARM_NODE_ASYNC_STACK ({async_stack})");
    }

    let mut config = runtimes::wasmtime::default_config();
    config
        // Dynamic memories: a memory reserves its current size + `reserve`, not 4 GiB + guards.
        .static_memory_forced(false)
        .static_memory_maximum_size(0)
        .static_memory_guard_size(guard)
        .dynamic_memory_guard_size(guard)
        .guard_before_linear_memory(false)
        .dynamic_memory_reserved_for_growth(reserve)
        // Fiber stack of each (suspended) process: address space, touched lazily.
        .async_stack_size(async_stack as usize)
        .max_wasm_stack(wasm_stack as usize)
        .memory_init_cow(cow);
    let desc = format!(
        "dynamic memories, growth reserve {reserve}, guard {guard}, no guard before; async stack {async_stack}, max wasm stack {wasm_stack}; copy-on-write images {cow}"
    );
    Ok((config, desc))
}

/// Every Lunatic process holds at least one file descriptor (the preopened current directory,
/// which each child process inherits through its config), so the open-files limit caps the
/// node: raise the soft limit to the hard one, and (as root) both to `fs.nr_open`.
fn raise_nofile_limit() {
    let nr_open: libc::rlim_t = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if nr_open > lim.rlim_max {
            let want = libc::rlimit { rlim_cur: nr_open, rlim_max: nr_open };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return;
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> Result<()> {
    // Before any thread exists. RUST_BACKTRACE=1 alone makes the runtime capture a backtrace for
    // an internal anyhow error on every message (~20x slower); RUST_LIB_BACKTRACE=0 turns that off
    // and keeps panic backtraces. A value the user set wins.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // Like `lunatic run`: the runtime reports failed processes through `log`.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    raise_nofile_limit();
    let args = parse_args()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let (wasmtime_config, desc) = node_config()?;
    if std::env::var("SWARM_NODE_VERBOSE").as_deref() == Ok("1") {
        eprintln!("swarm-node: {desc}");
    }
    let runtime = WasmtimeRuntime::new(&wasmtime_config)?;
    let envs = Arc::new(LunaticEnvironments::default());
    let env = envs.create(1).await;

    // From here on: lunatic-runtime 0.13.2's src/mode/common.rs (run_wasm), without distribution.
    let mut config = DefaultProcessConfig::default();
    // Allow the initial process to compile modules, create configurations and spawn processes.
    config.set_can_compile_modules(true);
    config.set_can_create_configs(true);
    config.set_can_spawn_processes(true);

    let path = args.path;
    let filename = path.file_name().unwrap_or_default().to_string_lossy().to_string();
    let mut wasi_args = vec![filename];
    wasi_args.extend(args.wasm_args);
    config.set_command_line_arguments(wasi_args);
    config.set_environment_variables(std::env::vars().collect());
    // Like lunatic: preopen the current directory, unless --no-cwd. Each preopened directory is
    // opened again for every process spawned with this (inherited) config: one fd per process.
    if !args.no_cwd {
        config.preopen_dir(".");
    }
    for dir in args.dir {
        if let Some(s) = dir.as_os_str().to_str() {
            config.preopen_dir(s);
        }
    }

    let module = std::fs::read(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => anyhow!("Module '{}' not found", path.display()),
        _ => err.into(),
    })?;
    let module: RawWasm = module.into();
    let module = Arc::new(runtime.compile_module::<DefaultProcessState>(module)?);
    let state = DefaultProcessState::new(
        env.clone(),
        None,
        runtime.clone(),
        module.clone(),
        Arc::new(config),
        Default::default(),
    )?;

    env.can_spawn_next_process().await?;
    let (task, _) = spawn_wasm(env, runtime, &module, state, "_start", Vec::new(), None)
        .await
        .with_context(|| format!("Failed to spawn process from {}::_start()", path.display()))?;
    task.await.map(|_| ()).map_err(|e| anyhow!(e.to_string()))
}
