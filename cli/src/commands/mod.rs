//! One module per command; each takes the connection and the global options and returns what
//! went wrong, if anything.

pub mod call;
pub mod dashboard;
pub mod listing;
pub mod new;
pub mod stats;
pub mod watch;

use async_nats::Client;

use crate::catalog::Catalog;
use crate::failure::Failure;
use crate::output::Output;
use crate::services::{self, Info, Stats, Window};

/// What every command needs: the connection, the namespace and its service name, the output.
pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub service: String,
    pub output: Output,
    pub timeout: std::time::Duration,
}

impl Context {
    /// Every node's INFO answer within `window` (at most `--timeout`).
    pub async fn infos(&self, mut window: Window) -> Result<Vec<Info>, Failure> {
        window.max = window.max.min(self.timeout);
        let mut infos: Vec<Info> =
            services::gather(&self.client, "INFO", &self.service, window).await?;
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    /// Every node's STATS answer within `window` (at most `--timeout`).
    pub async fn stats(&self, mut window: Window) -> Result<Vec<Stats>, Failure> {
        window.max = window.max.min(self.timeout);
        let mut stats: Vec<Stats> =
            services::gather(&self.client, "STATS", &self.service, window).await?;
        stats.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(stats)
    }

    /// The namespace's kinds and handlers, from every node that answers within the INFO window.
    pub async fn catalog(&self) -> Result<Catalog, Failure> {
        let infos = self.infos(Window::full(services::INFO_WINDOW)).await?;
        Ok(Catalog::from_infos(&self.namespace, &infos))
    }
}
