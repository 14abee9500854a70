//! The command line: global options, commands and their arguments (clap derive), and the help
//! text that documents the exit codes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the call or operation failed (the agent answered an error, no answer in time)
  2  bad input: unknown kind or handler, arguments not a JSON object or not matching the
     handler's schema, a bad key, namespace or option (also the node's invalid_key,
     unknown_handler and bad_arguments answers)
  3  cannot connect: no NATS server at --server, or it refused the credentials";

/// Lists, calls and watches the agents of a swarm through NATS.
///
/// Nodes, kinds, handlers and counts come from the NATS services API ($SRV.INFO and $SRV.STATS of
/// service `swarm-<namespace>`); calls go through the front door `<namespace>.<kind>.<key>.<handler>`.
#[derive(Debug, Parser)]
#[command(name = "swarm", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// NATS server URL (several: comma-separated).
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub server: String,
    /// A NATS credentials file (user JWT and nkey seed).
    #[arg(long, global = true, env = "NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// The swarm namespace: the first token of the agents' subjects.
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SWARM_NAMESPACE",
        default_value = "swarm"
    )]
    pub namespace: String,
    /// Machine output: JSON on stdout, no tables, no colour.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the server and for a call's answer (500ms, 10s, 1m).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The nodes serving the namespace: id, version, kinds.
    Nodes,
    /// The agent kinds served in the namespace, with their handlers.
    Kinds,
    /// The handlers of every kind, or of one: whether each answers, and its argument schema.
    Handlers {
        /// Only this kind.
        kind: Option<String>,
    },
    /// Calls a handler of one agent and prints its answer.
    ///
    /// Checks first that the kind and handler exist, that the arguments are a JSON object and,
    /// when the handler publishes a JSON Schema of its arguments, that they match it.
    Call {
        /// The agent kind, such as chat-room.
        kind: String,
        /// The agent's key (A-Z a-z 0-9 _ -).
        key: String,
        /// The handler.
        handler: String,
        /// The arguments as a JSON object by name ('{"author": "ada"}'); `-` reads stdin;
        /// none is `{}`.
        arguments: Option<String>,
    },
    /// Requests, errors and average processing time per node, kind and handler.
    Stats,
    /// Creates a crate of agents that `cargo run` builds for Lunatic and runs, and whose
    /// `#[lunatic::test]` tests `cargo test` runs (no NATS server needed).
    New {
        /// The crate's name (letters, digits, - and _).
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// swarm's crate directory in a checkout, or a version from crates.io (default: the
        /// checkout this binary was built from).
        #[arg(long, value_name = "PATH|VERSION")]
        swarm: Option<String>,
    },
    /// Serves the dashboard: a page that shows the namespace's nodes, kinds, live agents,
    /// supervision trees and live calls/s, and calls handlers, talking to NATS over WebSocket.
    ///
    /// The page connects to the NATS server itself, through its WebSocket listener (a
    /// nats-server needs a `websocket { listen: "host:port", no_tls: true }` block).
    Dashboard {
        /// Where to serve the page (port 0 picks a free one, printed).
        #[arg(long, default_value = "127.0.0.1:8090", value_name = "HOST:PORT")]
        listen: String,
        /// The NATS server's WebSocket URL as the browser reaches it.
        #[arg(long, env = "NATS_WS_URL", value_name = "URL")]
        ws: String,
    },
    /// Calls/s and errors/s, live, from successive STATS.
    Watch {
        /// Time between two readings.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many readings (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a plain number of seconds; never zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it as 500ms, 2s or 1m"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unit `{other}` of `{text}` is not one of ms, s, m (500ms, 2s, 1m)"
            ))
        }
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 86_400.0) {
        return Err(format!(
            "`{text}` is out of range: give more than 0 and less than a day"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_the_units_of_other_tools() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").unwrap_err().contains("more than 0"));
        assert!(parse_duration("1h").unwrap_err().contains("`h`"));
        assert!(parse_duration("soon").unwrap_err().contains("500ms"));
    }
}
