//! # caucus-server
//!
//! The Caucus hub: live sessions with a plenary and two private caucus rooms, served
//! over WebSockets. A caucus's content reaches only that caucus's current members, on
//! every path; see `docs/ARCHITECTURE.md` for how that is built in.
//!
//! # Layout
//!
//! - [`config`]: settings from defaults, a TOML file, `CAUCUS_*` variables and flags.
//! - [`auth`]: JWT issue and verify, and the origin allowlist.
//! - [`session`]: the heart. `session::state` is the pure session state machine;
//!   `session::actor` is the task that owns one session and fans its events out.
//! - [`hub`]: live sessions by id and invite code.
//! - [`connection`]: one WebSocket: hello, read loop, bounded outbound queue, closes.
//! - [`http`]: the axum router: `/ws`, `/api/...`, `/healthz`, the web client.
//! - [`store`]: where events are kept (`Store` trait; in memory for now).
//! - [`clock`]: Unix-millisecond session time tied to tokio's clock.
//!
//! [`Server`] puts them together: bind, run, and shut down gracefully.

pub mod auth;
pub mod clock;
pub mod config;
pub mod connection;
pub mod http;
pub mod hub;
pub mod session;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::auth::{Auth, KeyError};
use crate::config::Config;
use crate::hub::Hub;
use crate::store::{MemoryStore, Store};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    hub: Arc<Hub>,
}

impl Server {
    /// Binds the configured address with the in-memory store.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        Self::bind_with_store(config, Arc::new(MemoryStore::default())).await
    }

    /// Binds the configured address with `store`.
    pub async fn bind_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        let auth = Auth::from_config(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    address: config.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: config.listen,
            source,
        })?;
        let public_url = config.public_url(address);
        let hub = Arc::new(Hub::new(config, auth, store, public_url));
        Ok(Self {
            listener,
            address,
            hub,
        })
    }

    /// The address actually bound, with the real port when the config asked for 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The hub, for minting tokens and looking at sessions.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Cancelling this token shuts the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.hub.shutdown_token()
    }

    /// Serves until the shutdown token is cancelled. Then every connection gets close
    /// 1001, and the server waits up to `timeouts.shutdown_secs` for them to finish.
    pub async fn run(self) -> std::io::Result<()> {
        let shutdown = self.hub.shutdown_token();
        let grace = Duration::from_secs(self.hub.config().timeouts.shutdown_secs);
        let listener = self.listener.tap_io(|tcp| {
            // Chat frames are small; waiting to coalesce them only adds latency.
            let _ = tcp.set_nodelay(true);
        });
        let app = http::router(self.hub.clone());
        info!(address = %self.address, "listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await?;
        let tracker = self.hub.tracker();
        tracker.close();
        info!(tasks = tracker.len(), "shutting down: closing connections");
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                tasks = tracker.len(),
                "shutdown deadline passed with tasks still running"
            );
        }
        info!("stopped");
        Ok(())
    }
}
