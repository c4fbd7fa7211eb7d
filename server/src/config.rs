//! The server's configuration: defaults, then a TOML file, then `CAUCUS_*` environment
//! variables, then command-line flags, each overriding the one before. [`Config::validate`]
//! runs at start-up so that a bad setting stops the server with a readable message.
//!
//! Secrets (the token signing key) come from the environment or a file, never from a
//! flag, and are never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::session::{SessionCaps, TextLimits};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("the config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{name} is not valid: {message}")]
    Variable { name: &'static str, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// How the server logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Limits that protect the server and its users. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest WebSocket frame or message accepted, in bytes. Larger closes 1009.
    pub frame_bytes: usize,
    /// Length limits on text people type.
    pub text: TextLimits,
    /// Caps on what one session, and one person in it, can add: members, topic
    /// proposals, points. Every later `welcome` carries them.
    pub session: SessionCaps,
    /// Frames per second a connection may send, sustained.
    pub frames_per_sec: u32,
    /// Frames a connection may send in a burst.
    pub frame_burst: u32,
    /// Rate-limited frames tolerated in a burst before the connection is closed 1008.
    pub rate_limited_strikes: u32,
    /// Frames per second one person may send, sustained, over all their connections.
    pub member_frames_per_sec: u32,
    /// Frames one person may send in a burst, over all their connections.
    pub member_frame_burst: u32,
    /// Open connections per person.
    pub connections_per_member: usize,
    /// Frames queued for one connection before it counts as too slow and is closed.
    pub outbound_queue: usize,
    /// Bytes queued for one connection before it counts as too slow and is closed.
    pub outbound_bytes: usize,
    /// Bytes of events replayed per room on `hello`; past it, the room resets to its
    /// latest events and the client pages back with `history`.
    pub replay_bytes_per_room: usize,
    /// Bytes of events in one `history` page; past it, the page is cut short with
    /// `more: true`.
    pub history_bytes: usize,
    /// Open connections at most. 0 (the default): what the process's descriptor limit
    /// allows, less a reserve of 64.
    pub max_connections: usize,
    /// Connections that have not yet been welcomed (HTTP requests, and WebSockets
    /// before their `hello` is accepted), at most.
    pub max_pending_connections: usize,
    /// Connections not yet welcomed from one source address, at most.
    pub max_pending_per_address: usize,
    /// The largest HTTP request head (request line and headers), in bytes.
    pub header_bytes: usize,
    /// The largest HTTP request body, in bytes.
    pub api_body_bytes: usize,
    /// Events replayed per room on `hello` when the client has no usable cursor.
    pub replay_per_room: u64,
    /// Each room's latest events a live session holds in memory; `history` reads older
    /// ones from the store. Never fewer than `replay_per_room` are held, so that
    /// replay needs no read.
    pub held_events_per_room: u64,
    /// Live (not ended) sessions one facilitator may run at once.
    pub sessions_per_facilitator: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes: 64 * 1024,
            text: TextLimits::default(),
            session: SessionCaps::default(),
            frames_per_sec: 20,
            frame_burst: 40,
            rate_limited_strikes: 20,
            member_frames_per_sec: 40,
            member_frame_burst: 80,
            connections_per_member: 5,
            outbound_queue: 2048,
            outbound_bytes: 4 * 1024 * 1024,
            replay_bytes_per_room: 256 * 1024,
            history_bytes: 256 * 1024,
            max_connections: 0,
            max_pending_connections: 1024,
            // A browser keeps up to six idle connections after loading the page: a
            // roomful of people behind one office address must still get in.
            max_pending_per_address: 256,
            header_bytes: 16 * 1024,
            api_body_bytes: 64 * 1024,
            replay_per_room: 256,
            held_events_per_room: 1000,
            sessions_per_facilitator: 50,
        }
    }
}

/// Timing of connections and shutdown, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// How long a new connection has to send its HTTP request head; also how long an
    /// idle keep-alive connection stays open.
    pub header_secs: u64,
    /// How long a request body may take to arrive.
    pub body_secs: u64,
    /// How long a new WebSocket has to send `hello`.
    pub hello_secs: u64,
    /// How often the server pings; two silent intervals close the connection.
    pub ping_secs: u64,
    /// How long one write to a client may take.
    pub write_secs: u64,
    /// How long shutdown waits for connections to close.
    pub shutdown_secs: u64,
    /// How long a session with nobody connected stays loaded before its actor stops
    /// (an ended one stops as soon as nobody is connected). It is loaded again from
    /// the store when someone enters it, or when its time comes.
    pub session_idle_secs: u64,
    /// How long someone whose last connection dropped has to come back before the
    /// others are told they went offline; a quick reconnect is not announced at all.
    pub offline_grace_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_secs: 10,
            body_secs: 10,
            hello_secs: 10,
            ping_secs: 20,
            write_secs: 10,
            shutdown_secs: 10,
            session_idle_secs: 300,
            offline_grace_secs: 2,
        }
    }
}

/// Which store keeps sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// `caucus.db` in the data folder (the default).
    #[default]
    Sqlite,
    /// Memory only: everything is lost when the server stops.
    Memory,
    /// PostgreSQL at `store.database_url` (`CAUCUS_DATABASE_URL`): the store that
    /// several nodes share. Each session is written by one node at a time, and the
    /// database refuses the writes of a node that has lost it.
    Postgres,
}

/// When SQLite makes a commit durable (`store.synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// Every commit is on disk before anyone hears of it (the default): an acknowledged
    /// message survives a crash of the machine.
    #[default]
    Full,
    /// Commits reach the disk at checkpoints. A crash of Caucus loses nothing; a power
    /// cut or a crash of the machine may lose the last moments' acknowledged messages.
    /// Cheaper per commit, for operators who accept that.
    Normal,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Where sessions are kept.
    pub kind: StoreKind,
    /// Commit many writes per transaction (much faster; equally durable).
    pub group_commit: bool,
    /// SQLite only: `full` (the default) puts every commit on disk before anyone hears
    /// of it; `normal` only at checkpoints, risking the last moments on power loss
    /// (`CAUCUS_STORE_SYNCHRONOUS`).
    pub synchronous: Synchronous,
    /// How long a write waits for a locked database before it is refused, in ms.
    pub busy_timeout_ms: u64,
    /// The PostgreSQL connection string for `kind = "postgres"`, such as
    /// `postgres://caucus@db.internal/caucus` (`CAUCUS_DATABASE_URL`).
    pub database_url: Option<SecretText>,
    /// A PEM file of certificate authorities to trust for PostgreSQL's certificate,
    /// besides the public ones (`CAUCUS_DATABASE_CA_FILE`).
    pub database_ca_file: Option<PathBuf>,
    /// How long one PostgreSQL call may take before it is given up and the command
    /// refused with `unavailable`, in ms. A connection that stops answering would
    /// otherwise hold a session for minutes.
    pub call_timeout_ms: u64,
    /// Connections each node keeps to PostgreSQL at most.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            group_commit: true,
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5000,
            database_url: None,
            database_ca_file: None,
            call_timeout_ms: 10_000,
            pool_size: 16,
        }
    }
}

/// How a node holds the sessions it runs when the store is shared (`store.kind =
/// "postgres"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name in the store's table of nodes and in logs; a random suffix is
    /// added at every start, so that a restarted process never inherits the leases of
    /// its previous life. Defaults to the host's name.
    pub node_name: Option<String>,
    /// How long a node's lease lasts after its last renewal, in ms. Another node may
    /// take its sessions only once it has run out.
    pub lease_ttl_ms: u64,
    /// How often a node renews its lease, in ms.
    pub lease_renew_ms: u64,
    /// The NATS server (or servers, comma-separated) that nodes reach each other
    /// through, such as `nats://127.0.0.1:4222` (`CAUCUS_NATS_URL`). Without it, a
    /// session is served only by the node running it.
    pub nats_url: Option<SecretText>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { node_name: None, lease_ttl_ms: 10_000, lease_renew_ms: 2_000, nats_url: None }
    }
}

/// The reverse proxies the server trusts: addresses (`127.0.0.1`) and networks
/// (`10.244.0.0/16`, for proxies whose addresses change, such as an ingress
/// controller's pods).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct TrustedProxies(pub Vec<ProxyNetwork>);

impl TrustedProxies {
    /// Whether a connection from `address` comes from a trusted proxy.
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.0.contains(&address))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One entry of [`TrustedProxies`]: an address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyNetwork(pub ipnet::IpNet);

impl std::str::FromStr for ProxyNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(address) = text.parse::<std::net::IpAddr>() {
            return Ok(Self(address.to_canonical().into()));
        }
        text.parse::<ipnet::IpNet>()
            .map(|network| Self(network.trunc()))
            .map_err(|_| format!("`{text}` is neither an IP address nor a network such as 10.0.0.0/8"))
    }
}

impl TryFrom<String> for ProxyNetwork {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for ProxyNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            network if network.prefix_len() == network.max_prefix_len() => network.addr().fmt(f),
            network => network.fmt(f),
        }
    }
}

/// What is kept after a session ends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Days a caucus transcript stays after its session ends, readable only by that
    /// caucus's members. 0 (the default) purges it when the session ends. The carried
    /// points, in the plenary, are kept either way.
    pub caucus_transcript_days: u32,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Folder for the server's own files (the generated signing key, later the database).
    pub data_dir: PathBuf,
    /// The address people open, used in invite links. Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Browser origins allowed to open `/ws`, besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies in front of the server, as addresses or networks. Every
    /// connection through a proxy comes from its address, so these are exempt from the
    /// per-address cap on waiting connections; the per-client limit on sign-in links
    /// counts the client their `X-Forwarded-For` names instead.
    pub trusted_proxies: TrustedProxies,
    /// A file holding the token signing key. `CAUCUS_JWT_SECRET` takes precedence.
    pub jwt_secret_file: Option<PathBuf>,
    /// The token issuer and audience.
    pub token_issuer: String,
    /// How long member and facilitator tokens last, in seconds.
    pub token_ttl_secs: u64,
    /// Clock leeway when checking `exp` and `nbf`, in seconds.
    pub token_leeway_secs: u64,
    /// Limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Log format.
    pub log_format: LogFormat,
    /// Serve `/ws/echo` for WebSocket conformance suites. Off by default.
    pub conformance_echo: bool,
    /// Threads that run connections and sessions (`CAUCUS_WORKER_THREADS`). 0, the
    /// default, means one per core.
    pub worker_threads: usize,
    /// Storage.
    pub store: StoreConfig,
    /// Leases, when the store is shared.
    pub cluster: ClusterConfig,
    /// Retention after a session ends.
    pub retention: Retention,
    /// Accounts and sign-in: lifetimes, admins, email links.
    pub accounts: AccountsConfig,
    /// OpenID Connect providers people sign in with, as `[[oidc]]` tables.
    pub oidc: Vec<OidcProvider>,
    /// The signing key itself, from `CAUCUS_JWT_SECRET`. Never read from a file or flag
    /// into this field, and never printed.
    #[serde(skip)]
    pub jwt_secret: Option<Secret>,
}

/// Accounts and sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// How long a browser stays signed in, in days.
    pub signin_days: u32,
    /// How long an emailed sign-in link works, in seconds.
    pub email_link_secs: u64,
    /// Sign-in links one address may ask for in an hour.
    pub email_links_per_hour: u32,
    /// Sign-in links that may be asked for from one network address (an IPv6 /64) in an
    /// hour, whatever the email addresses: so that one client cannot use up the server's
    /// mail for everyone. Trusted proxies are exempt.
    pub email_links_per_client_per_hour: u32,
    /// The first admins: emails, or provider subjects. Admins decide who may facilitate.
    pub admins: Vec<String>,
    /// The SMTP server that sends sign-in links, as a URL: `smtp://host:25`,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://host`. None: email sign-in is
    /// off, and the operator prints links with `caucus signin-link`.
    pub smtp_url: Option<SecretText>,
    /// The sender of sign-in mail.
    pub smtp_from: String,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            signin_days: 30,
            email_link_secs: 15 * 60,
            email_links_per_hour: 5,
            email_links_per_client_per_hour: 30,
            admins: Vec::new(),
            smtp_url: None,
            smtp_from: "Caucus <caucus@localhost>".into(),
        }
    }
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// A short id for URLs: letters, digits and `-`.
    pub id: String,
    /// What the sign-in button says.
    pub name: String,
    /// The issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret.
    #[serde(default)]
    pub client_secret: Option<SecretText>,
    /// A file holding the client secret, for secret stores that mount files.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Treat the email this provider gives as verified even when its ID token does not
    /// say `email_verified` (Microsoft Entra never does). Only for a provider whose
    /// directory the organisation controls: a verified email links the sign-in to the
    /// account that holds that address, such as one a co-facilitator was added by.
    #[serde(default)]
    pub trust_email: bool,
}

/// Text that never shows itself in `Debug` output: passwords, client secrets.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(..)")
    }
}

/// A secret that never shows itself in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            public_url: None,
            allowed_origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            jwt_secret_file: None,
            token_issuer: "caucus".into(),
            token_ttl_secs: 12 * 60 * 60,
            token_leeway_secs: 5,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            log_format: LogFormat::Text,
            conformance_echo: false,
            worker_threads: 0,
            store: StoreConfig::default(),
            cluster: ClusterConfig::default(),
            retention: Retention::default(),
            accounts: AccountsConfig::default(),
            oidc: Vec::new(),
            jwt_secret: None,
        }
    }
}

/// Command-line overrides; `None` leaves the setting as it is.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--public-url`.
    pub public_url: Option<String>,
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if given), then the process
    /// environment, then `overrides`; then validates it.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        // A variable that is set but not UTF-8 is an error, not silently "unset".
        for (name, value) in std::env::vars_os() {
            if let (Some(name), None) = (name.to_str(), value.to_str())
                && name.starts_with("CAUCUS_")
            {
                return Err(ConfigError::Invalid(format!("{name} is not valid UTF-8")));
            }
        }
        config.apply_env(|name| std::env::var(name).ok())?;
        config.apply_overrides(overrides);
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
        toml::from_str(&text)
            .map_err(|err| ConfigError::ParseFile { path: path.to_owned(), message: err.to_string() })
    }

    /// Applies `CAUCUS_*` variables, read through `var` so that tests need not touch
    /// the real environment.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(value) = var("CAUCUS_LISTEN") {
            self.listen = parse("CAUCUS_LISTEN", &value)?;
        }
        if let Some(value) = var("CAUCUS_DATA_DIR") {
            self.data_dir = PathBuf::from(value);
        }
        if let Some(value) = var("CAUCUS_PUBLIC_URL") {
            self.public_url = Some(value);
        }
        if let Some(value) = var("CAUCUS_ALLOWED_ORIGINS") {
            self.allowed_origins = value
                .split(',')
                .map(str::trim)
                .filter(|origin| !origin.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = var("CAUCUS_TRUSTED_PROXIES") {
            self.trusted_proxies = TrustedProxies(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|address| !address.is_empty())
                    .map(|address| parse("CAUCUS_TRUSTED_PROXIES", address))
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(value) = var("CAUCUS_JWT_SECRET_FILE") {
            self.jwt_secret_file = Some(PathBuf::from(value));
        }
        if let Some(value) = var("CAUCUS_JWT_SECRET") {
            self.jwt_secret = Some(Secret(value.into_bytes()));
        }
        if let Some(value) = var("CAUCUS_SESSION_IDLE_SECS") {
            self.timeouts.session_idle_secs = parse("CAUCUS_SESSION_IDLE_SECS", &value)?;
        }
        if let Some(value) = var("CAUCUS_WORKER_THREADS") {
            self.worker_threads = parse("CAUCUS_WORKER_THREADS", &value)?;
        }
        if let Some(value) = var("CAUCUS_TOKEN_TTL_SECS") {
            self.token_ttl_secs = parse("CAUCUS_TOKEN_TTL_SECS", &value)?;
        }
        self.apply_account_env(&var)?;
        if let Some(value) = var("CAUCUS_DATABASE_URL") {
            // A database named is the database used, unless CAUCUS_STORE says otherwise.
            self.store.kind = StoreKind::Postgres;
            self.store.database_url = Some(SecretText(value));
        }
        if let Some(value) = var("CAUCUS_DATABASE_CA_FILE") {
            self.store.database_ca_file = Some(PathBuf::from(value));
        }
        if let Some(value) = var("CAUCUS_STORE") {
            self.store.kind = match value.trim() {
                "sqlite" => StoreKind::Sqlite,
                "memory" => StoreKind::Memory,
                "postgres" => StoreKind::Postgres,
                _ => {
                    return Err(ConfigError::Variable {
                        name: "CAUCUS_STORE",
                        message: "use `sqlite`, `memory` or `postgres`".into(),
                    });
                }
            };
        }
        if let Some(value) = var("CAUCUS_STORE_SYNCHRONOUS") {
            self.store.synchronous = match value.trim() {
                "full" => Synchronous::Full,
                "normal" => Synchronous::Normal,
                _ => {
                    return Err(ConfigError::Variable {
                        name: "CAUCUS_STORE_SYNCHRONOUS",
                        message: "use `full` (the default) or `normal`".into(),
                    });
                }
            };
        }
        if let Some(value) = var("CAUCUS_NATS_URL") {
            self.cluster.nats_url = Some(SecretText(value));
        }
        if let Some(value) = var("CAUCUS_NODE_NAME") {
            self.cluster.node_name = Some(value);
        }
        if let Some(value) = var("CAUCUS_RETENTION_DAYS") {
            self.retention.caucus_transcript_days = parse("CAUCUS_RETENTION_DAYS", &value)?;
        }
        if let Some(value) = var("CAUCUS_CONFORMANCE_ECHO") {
            self.conformance_echo = match value.trim() {
                "1" | "true" => true,
                "0" | "false" | "" => false,
                _ => {
                    return Err(ConfigError::Variable {
                        name: "CAUCUS_CONFORMANCE_ECHO",
                        message: "use 1 or 0".into(),
                    });
                }
            };
        }
        if let Some(value) = var("CAUCUS_LOG_FORMAT") {
            self.log_format = match value.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Variable {
                        name: "CAUCUS_LOG_FORMAT",
                        message: "use `text` or `json`".into(),
                    });
                }
            };
        }
        Ok(())
    }

    /// The sign-in variables. `CAUCUS_OIDC_*` describe one provider, with id `sso`.
    fn apply_account_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let accounts = &mut self.accounts;
        if let Some(value) = var("CAUCUS_SIGNIN_DAYS") {
            accounts.signin_days = parse("CAUCUS_SIGNIN_DAYS", &value)?;
        }
        if let Some(value) = var("CAUCUS_EMAIL_LINK_SECS") {
            accounts.email_link_secs = parse("CAUCUS_EMAIL_LINK_SECS", &value)?;
        }
        if let Some(value) = var("CAUCUS_ADMINS") {
            accounts.admins = value
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = var("CAUCUS_SMTP_URL") {
            accounts.smtp_url = Some(SecretText(value)).filter(|url| !url.0.trim().is_empty());
        }
        if let Some(value) = var("CAUCUS_SMTP_FROM") {
            accounts.smtp_from = value;
        }
        if let Some(issuer) = var("CAUCUS_OIDC_ISSUER") {
            let client_id = var("CAUCUS_OIDC_CLIENT_ID").ok_or(ConfigError::Variable {
                name: "CAUCUS_OIDC_CLIENT_ID",
                message: "is required with CAUCUS_OIDC_ISSUER".into(),
            })?;
            self.oidc.retain(|provider| provider.id != "sso");
            self.oidc.push(OidcProvider {
                id: "sso".into(),
                name: var("CAUCUS_OIDC_NAME").unwrap_or_else(|| "Your organisation".into()),
                issuer,
                client_id,
                client_secret: var("CAUCUS_OIDC_CLIENT_SECRET").map(SecretText),
                client_secret_file: var("CAUCUS_OIDC_CLIENT_SECRET_FILE").map(PathBuf::from),
                trust_email: match var("CAUCUS_OIDC_TRUST_EMAIL").as_deref().map(str::trim) {
                    None | Some("" | "0" | "false") => false,
                    Some("1" | "true") => true,
                    Some(_) => {
                        return Err(ConfigError::Variable {
                            name: "CAUCUS_OIDC_TRUST_EMAIL",
                            message: "use `true` or `false`".into(),
                        });
                    }
                },
            });
        }
        Ok(())
    }

    fn apply_overrides(&mut self, overrides: Overrides) {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
        }
        if let Some(data_dir) = overrides.data_dir {
            self.data_dir = data_dir;
        }
        if let Some(public_url) = overrides.public_url {
            self.public_url = Some(public_url);
        }
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_owned()));
        if limits.frame_bytes < 1024 {
            return invalid("limits.frame_bytes must be at least 1024");
        }
        if limits.text.message_chars == 0 || limits.text.name_chars == 0 || limits.text.topic_chars == 0 {
            return invalid("text limits must be at least 1 character");
        }
        if limits.frames_per_sec == 0
            || limits.frame_burst == 0
            || limits.rate_limited_strikes == 0
            || limits.member_frames_per_sec == 0
            || limits.member_frame_burst == 0
        {
            return invalid("limits.frames_per_sec, frame_burst and rate_limited_strikes must be at least 1");
        }
        if limits.connections_per_member == 0 || limits.sessions_per_facilitator == 0 {
            return invalid("limits.connections_per_member and sessions_per_facilitator must be at least 1");
        }
        if (limits.outbound_queue as u64) < 4 * limits.replay_per_room + 16 {
            return invalid(
                "limits.outbound_queue must hold a full replay: at least 4 × replay_per_room + 16",
            );
        }
        if limits.outbound_bytes < 4 * limits.replay_bytes_per_room + 256 * 1024
            || limits.outbound_bytes < limits.history_bytes + 256 * 1024
        {
            return invalid(
                "limits.outbound_bytes must hold a welcome and a full replay: at least \
                 4 × replay_bytes_per_room + 256 KiB, and history_bytes + 256 KiB",
            );
        }
        // A reconvene sends both caucuses' feedback at once: every carried point, at up
        // to 6 bytes a character once JSON escapes control characters.
        let feedback = 2 * limits.session.points_per_caucus * (6 * limits.text.message_chars + 256);
        if limits.outbound_bytes < feedback + 256 * 1024 {
            return invalid(
                "limits.outbound_bytes must hold a reconvene's feedback: at least \
                 2 × session.points_per_caucus × (6 × text.message_chars + 256) + 256 KiB",
            );
        }
        let session = &limits.session;
        if session.members < 2
            || session.proposals == 0
            || session.proposals_per_person == 0
            || session.points_per_caucus == 0
            || session.points_per_person == 0
        {
            return invalid("limits.session.members must be at least 2, and its other caps at least 1");
        }
        if limits.max_pending_connections == 0 || limits.max_pending_per_address == 0 {
            return invalid("limits.max_pending_connections and max_pending_per_address must be at least 1");
        }
        if limits.header_bytes < 8192 || limits.api_body_bytes < 1024 {
            return invalid("limits.header_bytes must be at least 8192, and api_body_bytes at least 1024");
        }
        if self.token_ttl_secs < 60 {
            return invalid("token_ttl_secs must be at least 60");
        }
        let timeouts = &self.timeouts;
        if [
            timeouts.header_secs,
            timeouts.body_secs,
            timeouts.hello_secs,
            timeouts.ping_secs,
            timeouts.write_secs,
        ]
        .contains(&0)
        {
            return invalid("timeouts must be at least 1 second");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("public_url must start with http:// or https://");
        }
        self.validate_shared_store()?;
        self.validate_accounts()
    }

    /// A shared store needs its address, and a signing key that every node has: a key
    /// generated in one node's data folder would make its tokens worthless on the rest.
    fn validate_shared_store(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_owned()));
        if self.store.kind != StoreKind::Postgres {
            if self.cluster.nats_url.is_some() {
                return invalid(
                    "cluster.nats_url (CAUCUS_NATS_URL) joins nodes that share a store: set \
                     CAUCUS_DATABASE_URL too, or leave the bus out",
                );
            }
            return Ok(());
        }
        if self.store.database_url.is_none() {
            return invalid(
                "store.kind = \"postgres\" needs the database's address: set CAUCUS_DATABASE_URL \
                 (or store.database_url), such as postgres://caucus@127.0.0.1/caucus",
            );
        }
        if self.jwt_secret.is_none() && self.jwt_secret_file.is_none() {
            return invalid(
                "a shared store needs a signing key that every node has: set CAUCUS_JWT_SECRET_FILE \
                 (or CAUCUS_JWT_SECRET) to the same key on each node",
            );
        }
        let cluster = &self.cluster;
        if self.store.call_timeout_ms == 0 || self.store.pool_size == 0 {
            return invalid("store.call_timeout_ms and store.pool_size must be at least 1");
        }
        if cluster.lease_renew_ms == 0 || cluster.lease_ttl_ms < 2 * cluster.lease_renew_ms {
            return invalid("cluster.lease_ttl_ms must be at least twice cluster.lease_renew_ms");
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let accounts = &self.accounts;
        if accounts.signin_days == 0
            || accounts.email_link_secs == 0
            || accounts.email_links_per_hour == 0
            || accounts.email_links_per_client_per_hour == 0
        {
            return invalid(
                "accounts.signin_days, email_link_secs, email_links_per_hour and \
                 email_links_per_client_per_hour must be at least 1"
                    .into(),
            );
        }
        if let Some(url) = &accounts.smtp_url
            && !(url.0.starts_with("smtp://") || url.0.starts_with("smtps://"))
        {
            return invalid("accounts.smtp_url (CAUCUS_SMTP_URL) must start with smtp:// or smtps://".into());
        }
        let mut ids = std::collections::HashSet::new();
        for provider in &self.oidc {
            let id_ok = !provider.id.is_empty()
                && provider.id.len() <= 32
                && provider.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !id_ok {
                return invalid(format!(
                    "oidc provider id `{}` must be 1 to 32 letters, digits or `-`",
                    provider.id
                ));
            }
            if !ids.insert(provider.id.as_str()) {
                return invalid(format!("two oidc providers have the id `{}`", provider.id));
            }
            if !(provider.issuer.starts_with("https://") || provider.issuer.starts_with("http://")) {
                return invalid(format!("oidc provider `{}`: issuer must be an http(s) URL", provider.id));
            }
            if provider.client_id.trim().is_empty() {
                return invalid(format!("oidc provider `{}`: client_id is empty", provider.id));
            }
            if provider.client_secret.is_none() && provider.client_secret_file.is_none() {
                return invalid(format!(
                    "oidc provider `{}` needs client_secret or client_secret_file \
                     (CAUCUS_OIDC_CLIENT_SECRET or CAUCUS_OIDC_CLIENT_SECRET_FILE)",
                    provider.id
                ));
            }
        }
        Ok(())
    }

    /// The address people open, without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    /// How to open the shared store. Call only with `store.kind = "postgres"`, which
    /// `validate` has checked names a database.
    /// How many threads run connections and sessions: `worker_threads`, or one per core.
    /// One fewer than the cores leaves SQLite's writer a core of its own, which costs a
    /// small room about a sixth less CPU per message, but on two cores it halves what
    /// fans a message out to a large room (a 1,000-member reconvene's p50 went from 15
    /// to 23 ms), so it is an operator's choice, not the default (docs/performance.md).
    pub fn worker_threads(&self, cores: usize) -> usize {
        match self.worker_threads {
            0 => cores.max(1),
            count => count,
        }
    }

    /// How to open the SQLite store in the data folder.
    pub fn sqlite_options(&self) -> crate::store::SqliteOptions {
        crate::store::SqliteOptions {
            path: self.database_path(),
            group_commit: self.store.group_commit,
            synchronous: self.store.synchronous,
            busy_timeout: std::time::Duration::from_millis(self.store.busy_timeout_ms),
        }
    }

    pub fn postgres_options(&self) -> crate::store::PostgresOptions {
        let node_name = self.cluster.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "caucus".to_owned())
        });
        crate::store::PostgresOptions {
            url: self.store.database_url.as_ref().map(|url| url.0.clone()).unwrap_or_default(),
            ca_file: self.store.database_ca_file.clone(),
            node_name,
            call_timeout: std::time::Duration::from_millis(self.store.call_timeout_ms),
            pool_size: self.store.pool_size,
            lease_ttl: std::time::Duration::from_millis(self.cluster.lease_ttl_ms),
            lease_renew: std::time::Duration::from_millis(self.cluster.lease_renew_ms),
        }
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("caucus.db")
    }
}

/// Parses one variable's value, naming the variable when it is not valid.
fn parse<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse().map_err(|err: T::Err| ConfigError::Variable { name, message: err.to_string() })
}

/// Creates the data folder, if it does not exist yet, readable by its owner only: it
/// holds the signing key and the people's words.
pub fn create_data_dir(path: &Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "CAUCUS_TRUSTED_PROXIES").then(|| "127.0.0.1, 10.244.0.0/16".into()))
            .unwrap();
        assert!(config.trusted_proxies.contains(ip("10.244.3.7")));
        assert!(!config.trusted_proxies.contains(ip("10.245.0.1")));
        assert!(config.trusted_proxies.contains(ip("::ffff:127.0.0.1")), "a mapped IPv4 is IPv4");
        assert!(!config.trusted_proxies.contains(ip("127.0.0.2")));
        let file: Config = toml::from_str("trusted_proxies = [\"::1\", \"fd00::/8\"]\n").unwrap();
        assert!(file.trusted_proxies.contains(ip("fd12::5")));
        assert!(file.trusted_proxies.contains(ip("::1")));
        assert!(!file.trusted_proxies.contains(ip("2001:db8::1")));
        let err = toml::from_str::<Config>("trusted_proxies = [\"proxy.local\"]\n").unwrap_err();
        assert!(err.to_string().contains("neither an IP address nor a network"), "{err}");
        assert_eq!(file.trusted_proxies.0[0].to_string(), "::1");
        assert_eq!(file.trusted_proxies.0[1].to_string(), "fd00::/8");
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let mut config: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\n[limits]\nframes_per_sec = 5\n").unwrap();
        assert_eq!(config.limits.frames_per_sec, 5);
        assert_eq!(config.limits.frame_burst, Limits::default().frame_burst);
        config
            .apply_env(|name| match name {
                "CAUCUS_LISTEN" => Some("127.0.0.1:9100".into()),
                "CAUCUS_ALLOWED_ORIGINS" => Some("https://a.example, https://b.example".into()),
                "CAUCUS_TRUSTED_PROXIES" => Some("127.0.0.1, ::1".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(config.trusted_proxies.0.len(), 2);
        assert!(config.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(!config.trusted_proxies.contains("127.0.0.2".parse().unwrap()));
        config.apply_overrides(Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Overrides::default()
        });
        assert_eq!(config.listen.port(), 0);
        config.validate().unwrap();
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let err = toml::from_str::<Config>("listen = \"nowhere\"").unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        let err = toml::from_str::<Config>("colour = 1").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let mut config = Config::default();
        let err = config.apply_env(|name| (name == "CAUCUS_LISTEN").then(|| "8080".into())).unwrap_err();
        assert!(err.to_string().starts_with("CAUCUS_LISTEN is not valid"), "{err}");
        let err = config
            .apply_env(|name| (name == "CAUCUS_TRUSTED_PROXIES").then(|| "proxy.local".into()))
            .unwrap_err();
        assert!(err.to_string().starts_with("CAUCUS_TRUSTED_PROXIES is not valid"), "{err}");
        assert!(err.to_string().contains("neither an IP address nor a network"), "{err}");
        config.limits.outbound_queue = 10;
        assert!(config.validate().is_err());
    }

    #[test]
    fn a_shared_store_needs_its_address_and_a_signing_key_every_node_has() {
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "CAUCUS_DATABASE_URL").then(|| "postgres://caucus@db/caucus".into()))
            .unwrap();
        assert_eq!(config.store.kind, StoreKind::Postgres);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("CAUCUS_JWT_SECRET_FILE"), "{err}");
        assert!(
            !format!("{config:?}").contains("postgres://"),
            "the address, which may hold a password, is not logged"
        );
        config.jwt_secret_file = Some(PathBuf::from("/etc/caucus/key"));
        config.validate().unwrap();

        let mut config: Config = toml::from_str("[store]\nkind = \"postgres\"\n").unwrap();
        config.jwt_secret = Some(Secret(b"k".repeat(32)));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("CAUCUS_DATABASE_URL"), "{err}");
        config.store.database_url = Some(SecretText("postgres://caucus@db/caucus".into()));
        config.cluster.lease_ttl_ms = config.cluster.lease_renew_ms;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("lease_ttl_ms"), "{err}");
    }

    #[test]
    fn worker_threads_are_one_per_core_unless_set() {
        let mut config = Config::default();
        assert_eq!(config.worker_threads(8), 8);
        assert_eq!(config.worker_threads(0), 1, "never none");
        config.apply_env(|name| (name == "CAUCUS_WORKER_THREADS").then(|| "3".to_owned())).unwrap();
        assert_eq!(config.worker_threads(8), 3);
    }

    #[test]
    fn synchronous_is_full_unless_an_operator_chooses_normal() {
        let mut config = Config::default();
        assert_eq!(config.store.synchronous, Synchronous::Full);
        assert_eq!(config.sqlite_options().synchronous, Synchronous::Full);
        let file: Config = toml::from_str("[store]\nsynchronous = \"normal\"\n").unwrap();
        assert_eq!(file.store.synchronous, Synchronous::Normal);
        config.apply_env(|name| (name == "CAUCUS_STORE_SYNCHRONOUS").then(|| "normal".to_owned())).unwrap();
        assert_eq!(config.sqlite_options().synchronous, Synchronous::Normal);
        let err = config
            .apply_env(|name| (name == "CAUCUS_STORE_SYNCHRONOUS").then(|| "off".to_owned()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CAUCUS_STORE_SYNCHRONOUS") && err.contains("full"), "{err}");
    }

    #[test]
    fn sign_in_comes_from_the_file_and_the_environment() {
        let file = r#"
            [accounts]
            signin_days = 7
            admins = ["ada@example.org"]
            [[oidc]]
            id = "staff"
            name = "Staff sign-in"
            issuer = "https://login.example.org"
            client_id = "caucus"
            client_secret = "s3cret"
        "#;
        let mut config: Config = toml::from_str(file).unwrap();
        config
            .apply_env(|name| match name {
                "CAUCUS_OIDC_ISSUER" => Some("https://idp.example.org/realms/circle".into()),
                "CAUCUS_OIDC_CLIENT_ID" => Some("caucus-web".into()),
                "CAUCUS_OIDC_CLIENT_SECRET" => Some("another".into()),
                "CAUCUS_OIDC_TRUST_EMAIL" => Some("true".into()),
                "CAUCUS_SMTP_URL" => Some("smtp://127.0.0.1:2525".into()),
                "CAUCUS_ADMINS" => Some("ada@example.org, subject-7".into()),
                _ => None,
            })
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.accounts.signin_days, 7);
        assert_eq!(config.accounts.admins, ["ada@example.org", "subject-7"]);
        let ids: Vec<&str> = config.oidc.iter().map(|provider| provider.id.as_str()).collect();
        assert_eq!(ids, ["staff", "sso"]);
        assert!(config.oidc[1].trust_email && !config.oidc[0].trust_email);
        assert!(!format!("{config:?}").contains("s3cret"), "secrets stay out of Debug output");

        let missing = Config::default()
            .apply_env(|name| (name == "CAUCUS_OIDC_ISSUER").then(|| "https://idp.example.org".into()))
            .unwrap_err();
        assert!(missing.to_string().contains("CAUCUS_OIDC_CLIENT_ID"), "{missing}");
        config.oidc[0].client_secret = None;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("client_secret"), "{err}");
        config.oidc[0].client_secret = Some(SecretText("s".into()));
        config.accounts.smtp_url = Some(SecretText("mail.example.org".into()));
        assert!(config.validate().unwrap_err().to_string().contains("smtp://"));
        config.accounts.smtp_url = None;
        config.accounts.email_links_per_client_per_hour = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("email_links_per_client_per_hour"), "{err}");
    }
}
