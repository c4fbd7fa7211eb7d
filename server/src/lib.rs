//! # caucus-server
//!
//! The Caucus hub: live sessions with a plenary and two private caucus rooms, served
//! over WebSockets. A caucus's content reaches only that caucus's current members, on
//! every path; see `docs/ARCHITECTURE.md` for how that is built in.
//!
//! # Layout
//!
//! - [`config`]: settings from defaults, a TOML file, `CAUCUS_*` variables and flags.
//! - [`accounts`]: accounts and sign-in: OpenID Connect, email links, sign-in
//!   cookies, roles, and each account's seats in sessions.
//! - [`auth`]: JWT issue and verify, and the origin allowlist.
//! - [`session`]: the heart. `session::state` is the pure session state machine;
//!   `session::actor` is the task that owns one session and fans its events out.
//! - [`directory`]: every session, loaded or not: its listing, invite code and, while
//!   it is used, its actor.
//! - [`hub`]: starts a session's actor from the store when it is used.
//! - [`connection`]: one WebSocket: hello, read loop, bounded outbound queue, closes.
//! - [`gate`]: the front gate: connection caps, and HTTP/1.1 with a deadline on every
//!   phase.
//! - [`http`]: the axum router: `/ws`, `/api/...`, `/healthz`, the web client.
//! - [`practice`]: the standing community: its people, terms of reference in versions,
//!   and its series of sessions.
//! - [`metrics`]: Prometheus counters and gauges for `/metrics`.
//! - [`minutes`]: the minutes export rendered as Markdown.
//! - [`store`]: where sessions and events are kept: `Store`, SQLite by default.
//! - [`clock`]: Unix-millisecond session time tied to tokio's clock.
//!
//! [`Server`] puts them together: bind, run, and shut down gracefully.

pub mod accounts;
pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod connection;
pub mod directory;
pub mod gate;
pub mod healthcheck;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod minutes;
pub mod outbox;
pub mod practice;
pub mod session;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::accounts::{AccountDb, Accounts};
use crate::auth::{Auth, KeyError};
use crate::config::{Config, StoreKind};
use crate::gate::{Caps, Gate};
use crate::hub::Hub;
use crate::store::{MemoryStore, PostgresStore, SqliteStore, Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sign-in settings: {0}")]
    Accounts(#[from] crate::accounts::AccountError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    hub: Arc<Hub>,
    gate: Arc<Gate>,
}

impl Server {
    /// Opens the configured store, brings its sessions back, and binds the configured
    /// address.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let store: Arc<dyn Store> = match config.store.kind {
            StoreKind::Sqlite => Arc::new(SqliteStore::open(config.sqlite_options())?),
            StoreKind::Memory => Arc::new(MemoryStore::default()),
            StoreKind::Postgres => Arc::new(PostgresStore::open(config.postgres_options()).await?),
        };
        Self::bind_with_store(config, store).await
    }

    /// Binds the configured address with `store`, bringing back its sessions.
    pub async fn bind_with_store(config: Config, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let auth = Auth::from_config(&config)?;
        crate::metrics::handle();
        let stored = store.directory().await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { address: config.listen, source })?;
        let address =
            listener.local_addr().map_err(|source| StartError::Bind { address: config.listen, source })?;
        let public_url = config.public_url(address);
        let account_db = match config.store.kind {
            // Accounts and communities stay in the data folder's SQLite file for now,
            // even beside a shared store.
            StoreKind::Sqlite => AccountDb::open(&config.database_path())?,
            StoreKind::Postgres => {
                // Beside PostgreSQL nothing else makes the file and its tables.
                crate::store::SqliteStore::prepare(&config.sqlite_options())?;
                AccountDb::open(&config.database_path())?
            }
            StoreKind::Memory => AccountDb::in_memory()?,
        };
        let accounts = Accounts::new(&config, account_db, &public_url)?;
        let hub = Arc::new(Hub::new(config, auth, store, accounts, public_url));
        let listed = hub.restore(stored).await?;
        if let (Some(url), Some(node)) = (&hub.config().cluster.nats_url, hub.store().node_id()) {
            let wait = Duration::from_millis(hub.config().store.call_timeout_ms);
            let bus = crate::bus::Bus::connect(&url.0, node, wait).await?;
            bus.serve(Arc::clone(&hub)).await?;
            hub.attach_bus(bus);
        }
        if listed > 0 {
            let (_, loaded) = hub.session_counts();
            info!(sessions = listed, loaded, "listed the stored sessions; each loads when it is used");
        }
        let descriptors = gate::raise_descriptor_limit();
        let caps = Caps::from_config(hub.config(), descriptors);
        info!(
            descriptors,
            connections = caps.connections,
            pending = caps.pending,
            pending_per_address = caps.pending_per_address,
            "connection caps"
        );
        if !caps.trusted_proxies.is_empty() {
            let proxies =
                caps.trusted_proxies.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            info!(%proxies, "trusted proxies are exempt from the per-address cap");
        }
        Ok(Self { listener, address, hub, gate: Gate::new(caps) })
    }

    /// The address actually bound, with the real port when the config asked for 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The hub, for minting tokens and looking at sessions.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The front gate, which counts connections against their caps.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
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
        let app = http::router(self.hub.clone());
        info!(address = %self.address, "listening");
        let http_connections = tokio_util::task::TaskTracker::new();
        gate::serve(self.listener, app, self.gate, self.hub.config(), shutdown, http_connections.clone())
            .await;
        // One deadline for both: HTTP requests in flight, then WebSockets and sessions.
        let deadline = tokio::time::Instant::now() + grace;
        http_connections.close();
        let _ = tokio::time::timeout_at(deadline, http_connections.wait()).await;
        let tracker = self.hub.tracker();
        tracker.close();
        info!(tasks = tracker.len(), "shutting down: closing connections");
        if tokio::time::timeout_at(deadline, tracker.wait()).await.is_err() {
            warn!(tasks = tracker.len(), "shutdown deadline passed with tasks still running");
        }
        info!("stopped");
        Ok(())
    }
}
