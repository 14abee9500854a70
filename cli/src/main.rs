//! `swarm`: the command line of a running swarm, over NATS. `cli.rs` says what it takes,
//! `commands/` what each command does; this file connects them and turns the outcome into an
//! exit code (see `failure.rs`).

mod catalog;
mod cli;
mod commands;
mod connect;
mod failure;
mod input;
mod output;
mod rates;
mod services;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::Context;
use failure::{Exit, Failure};
use output::Output;

fn main() -> ExitCode {
    // A bug of ours must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("swarm: internal error ({info}); please report it");
    }));
    // clap prints usage errors itself and exits 2 (0 for --help and --version).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return exit(Failure::failed(format!(
                "cannot start the async runtime: {err}"
            )))
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit(failure),
    }
}

fn exit(failure: Failure) -> ExitCode {
    if failure.exit != Exit::Quiet {
        eprintln!("swarm: {failure}");
    }
    ExitCode::from(failure.exit as u8)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let Cli { global, command } = cli;
    // The one command that talks to no server.
    if let Command::New { name, path, swarm } = &command {
        let dir = path.clone().unwrap_or_else(|| name.into());
        let swarm = commands::new::SwarmSource::resolve(swarm.as_deref())?;
        return commands::new::new(name, &dir, &swarm);
    }
    // The page connects to NATS itself; this only serves it.
    if let Command::Dashboard { listen, ws } = &command {
        services::service_name(&global.namespace)?;
        commands::dashboard::check_listen(listen)?;
        return commands::dashboard::dashboard(listen, ws, &global.namespace).await;
    }
    // Bad input is found before any connection is tried.
    let service = services::service_name(&global.namespace)?;
    if let Command::Call { key, arguments, .. } = &command {
        input::check_key(key)?;
        if arguments.as_deref() != Some("-") {
            input::read_arguments(arguments.as_deref())?;
        }
    }
    let context = Context {
        client: connect::connect(&global).await?,
        namespace: global.namespace.clone(),
        service,
        output: Output::detect(global.json),
        timeout: global.timeout,
    };
    match &command {
        Command::Nodes => commands::listing::nodes(&context).await,
        Command::Kinds => commands::listing::kinds(&context).await,
        Command::Handlers { kind } => commands::listing::handlers(&context, kind.as_deref()).await,
        Command::Call {
            kind,
            key,
            handler,
            arguments,
        } => commands::call::call(&context, kind, key, handler, arguments.as_deref()).await,
        Command::Stats => commands::stats::stats(&context).await,
        Command::Watch { interval, count } => {
            commands::watch::watch(&context, *interval, *count).await
        }
        Command::New { .. } | Command::Dashboard { .. } => {
            unreachable!("handled before connecting")
        }
    }
}
