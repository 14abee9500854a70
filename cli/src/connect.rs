//! Reaching the NATS server: options from the command line, and a connection failure turned into
//! a line that says what to check (exit 3), or into a usage error when the input itself is wrong.

use async_nats::{Client, ConnectErrorKind, ConnectOptions};

use crate::cli::Global;
use crate::failure::Failure;

/// Connects to `--server` with `--creds`, waiting at most `--timeout`.
pub async fn connect(global: &Global) -> Result<Client, Failure> {
    let options = match &global.creds {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|err| {
                Failure::usage(format!(
                    "cannot use credentials file {}: {err}; give a .creds file (user JWT and \
                     nkey seed) with --creds or NATS_CREDS",
                    path.display()
                ))
            })?,
        None => ConnectOptions::new(),
    };
    let options = options
        .name("swarm-cli")
        .connection_timeout(global.timeout)
        .request_timeout(Some(global.timeout));
    let server = &global.server;
    options.connect(server.as_str()).await.map_err(|err| {
        match err.kind() {
            ConnectErrorKind::ServerParse => Failure::usage(format!(
                "--server `{server}` is not a NATS URL; write it as nats://host:4222 (or set NATS_URL)"
            )),
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                Failure::connect(format!(
                    "the NATS server at {server} refused us ({err}); check --creds / NATS_CREDS"
                ))
            }
            _ => Failure::connect(format!(
                "cannot connect to a NATS server at {server} ({err}); start one, or point \
                 --server / NATS_URL at it"
            )),
        }
    })
}
