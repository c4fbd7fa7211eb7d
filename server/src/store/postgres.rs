//! The shared PostgreSQL store, for running Caucus on several nodes.
//!
//! Every node may read any session, but each session is written by one node at a time:
//! the node that claimed it last. A claim adds one to the session's epoch in
//! `session_owners`; every write first takes that row `FOR SHARE` and checks that it
//! still names this node and the epoch this node claimed, in the same transaction as the
//! write. A node that has lost a session (it was paused, cut off, or thought dead) can
//! therefore never commit to it again, whatever it believes: the database decides
//! (a fencing token). A second fence stands behind the first: `(session, room, seq)` is
//! unique, so two owners could never store two different events under one number.
//!
//! A node may claim a session only from nobody, from itself, or from a node whose lease
//! in `nodes` has run out on the database's clock. Each node renews its lease on a timer
//! and gives its sessions up (`release`) when they stop running there.
//!
//! The owner orders a session's events itself (`pos`), because folding them back needs
//! the order across rooms; no sequence is shared between nodes.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caucus_protocol::{EncodedEvent, EventBody, MemberId, Room, RoomEvent, SessionId};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{error, info, warn};

use super::{ListedSession, SessionRecord, Store, StoreError, StoreErrorKind, StoredSession};
use crate::session::Listing;

/// Versioned schema migrations; `caucus_schema.version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: nodes and their leases, sessions, who owns each, their events, erasures.
    "CREATE TABLE nodes (
        node_id    text PRIMARY KEY,
        version    text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE sessions (
        id          text PRIMARY KEY,
        invite_code text NOT NULL UNIQUE,
        created_by  text NOT NULL,
        created_at  bigint NOT NULL,
        record      text NOT NULL,
        listing     text
    );
    CREATE TABLE session_owners (
        session_id text PRIMARY KEY REFERENCES sessions(id),
        owner_node text,
        epoch      bigint NOT NULL,
        claimed_at timestamptz
    ) WITH (fillfactor = 50);
    CREATE TABLE events (
        session_id text NOT NULL REFERENCES sessions(id),
        pos        bigint NOT NULL,
        room       text NOT NULL,
        seq        bigint NOT NULL,
        at         bigint NOT NULL,
        body       text NOT NULL,
        epoch      bigint NOT NULL,
        PRIMARY KEY (session_id, pos),
        UNIQUE (session_id, room, seq)
    );
    CREATE TABLE erasures (
        id         bigserial PRIMARY KEY,
        member     text NOT NULL,
        session_id text NOT NULL,
        at         bigint NOT NULL
    );",
];

/// Taken for the length of a migration, so that nodes starting together migrate once.
/// The transaction form, because a session-level lock leaks behind a pooler in
/// transaction mode.
const MIGRATION_LOCK: i64 = 0x6361_7563_7573_0001;

/// How to reach the database and how to hold sessions in it.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The connection string.
    pub url: String,
    /// A PEM file of certificate authorities to trust for the database's certificate,
    /// besides the public ones (a private CA, a cloud provider's).
    pub ca_file: Option<std::path::PathBuf>,
    /// This node's name; a random suffix is added.
    pub node_name: String,
    /// How long one call may take.
    pub call_timeout: Duration,
    /// Connections kept at most.
    pub pool_size: usize,
    /// How long this node's lease lasts after a renewal.
    pub lease_ttl: Duration,
    /// How often it is renewed.
    pub lease_renew: Duration,
}

/// A session this node has claimed: the epoch it writes under, and the position its
/// next event takes (`None`: read it from the table before the next write, after a
/// write whose outcome is unknown).
#[derive(Debug, Clone, Copy)]
struct Owned {
    epoch: i64,
    next_pos: Option<i64>,
}

/// The PostgreSQL store of one node.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    node: String,
    call_timeout: Duration,
    owned: Mutex<HashMap<SessionId, Owned>>,
    /// When the lease was last renewed (or taken), and how long it lasts.
    renewed: Arc<Mutex<std::time::Instant>>,
    lease_ttl: Duration,
    /// Whether the lease is renewed: not while this node is cut off from the bus, so
    /// that others may take the sessions nobody can reach here.
    renewing: Arc<std::sync::atomic::AtomicBool>,
    /// Stops the lease's renewals when the store goes.
    _renewing: DropGuard,
}

fn failed(err: impl std::error::Error) -> StoreError {
    StoreError::new(format!("PostgreSQL: {}", explained(&err)))
}

/// An error with its causes: the client's errors put the telling part (which
/// certificate was refused, why a connection failed) in their sources.
fn explained(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// TLS for the database's connections, used whenever the connection string's `sslmode`
/// asks for or allows it (`prefer`, the default, falls back to plain text on a server
/// without TLS; `require` does not). The server's certificate and name are always
/// checked, against the public authorities and `ca_file`'s.
fn tls(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let unreadable = |err: &dyn std::fmt::Display| {
            StoreError::new(format!("cannot read the database's CA file {}: {err}", path.display()))
        };
        let mut added = 0;
        for certificate in CertificateDer::pem_file_iter(path).map_err(|err| unreadable(&err))? {
            roots.add(certificate.map_err(|err| unreadable(&err))?).map_err(|err| unreadable(&err))?;
            added += 1;
        }
        if added == 0 {
            return Err(unreadable(&"it holds no PEM certificate"));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(failed)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn pool(options: &PostgresOptions) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|err| StoreError::new(format!("the database URL is not valid: {err}")))?;
    // A connection that stops answering must fail within the call's time, not after
    // the kernel's retransmissions run out (many minutes).
    config
        .connect_timeout(options.call_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(options.call_timeout)
        .application_name("caucus");
    let manager = Manager::from_config(
        config,
        tls(options.ca_file.as_deref())?,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(options.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.call_timeout))
        .create_timeout(Some(options.call_timeout))
        .recycle_timeout(Some(options.call_timeout))
        .build()
        .map_err(failed)
}

/// Applies the migrations this database lacks, and says which version it is at. Safe
/// to run from several nodes at once.
pub async fn migrate(
    url: &str,
    ca_file: Option<&std::path::Path>,
    call_timeout: Duration,
) -> Result<usize, StoreError> {
    let options = PostgresOptions {
        url: url.to_owned(),
        ca_file: ca_file.map(std::path::Path::to_owned),
        node_name: String::new(),
        call_timeout,
        pool_size: 1,
        lease_ttl: Duration::ZERO,
        lease_renew: Duration::ZERO,
    };
    let pool = pool(&options)?;
    let mut client = pool.get().await.map_err(failed)?;
    migrate_with(&mut client).await
}

async fn migrate_with(client: &mut Object) -> Result<usize, StoreError> {
    let transaction = client.transaction().await.map_err(failed)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS caucus_schema (version integer NOT NULL)")
        .await
        .map_err(failed)?;
    let applied: i32 =
        match transaction.query_opt("SELECT version FROM caucus_schema", &[]).await.map_err(failed)? {
            Some(row) => row.get(0),
            None => {
                transaction
                    .execute("INSERT INTO caucus_schema (version) VALUES (0)", &[])
                    .await
                    .map_err(failed)?;
                0
            }
        };
    let applied = super::migrations_applied(applied.into(), MIGRATIONS.len())?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        transaction.batch_execute(migration).await.map_err(failed)?;
        let version = i32::try_from(index + 1).expect("few migrations");
        transaction.execute("UPDATE caucus_schema SET version = $1", &[&version]).await.map_err(failed)?;
        info!(version, "applied a PostgreSQL schema migration");
    }
    transaction.commit().await.map_err(failed)?;
    Ok(MIGRATIONS.len())
}

/// This node's name with a random suffix, new at every start.
fn incarnation(name: &str) -> String {
    use rand::Rng;
    let suffix: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(8).map(char::from).collect();
    format!("{name}-{}", suffix.to_ascii_lowercase())
}

impl PostgresStore {
    /// Connects, applies pending migrations, registers this node with a lease and
    /// starts renewing it.
    pub async fn open(options: PostgresOptions) -> Result<Self, StoreError> {
        let pool = pool(&options)?;
        let node = incarnation(&options.node_name);
        {
            let mut client = tokio::time::timeout(options.call_timeout, pool.get())
                .await
                .map_err(|_| StoreError::new("PostgreSQL did not answer in time"))?
                .map_err(|err| StoreError::new(format!("cannot reach PostgreSQL: {}", explained(&err))))?;
            let version = migrate_with(&mut client).await?;
            client
                .execute(
                    "INSERT INTO nodes (node_id, version, expires_at) \
                     VALUES ($1, $2, now() + make_interval(secs => $3))",
                    &[&node, &env!("CARGO_PKG_VERSION"), &options.lease_ttl.as_secs_f64()],
                )
                .await
                .map_err(failed)?;
            info!(node = %node, schema = version, "joined the shared store");
        }
        let stop = CancellationToken::new();
        let renewed = Arc::new(Mutex::new(std::time::Instant::now()));
        let renewing = Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(renew_lease(
            pool.clone(),
            node.clone(),
            options.clone(),
            Lease { renewed: Arc::clone(&renewed), renewing: Arc::clone(&renewing) },
            stop.clone(),
        ));
        Ok(Self {
            pool,
            node,
            call_timeout: options.call_timeout,
            owned: Mutex::new(HashMap::new()),
            renewed,
            lease_ttl: options.lease_ttl,
            renewing,
            _renewing: stop.drop_guard(),
        })
    }

    /// Whether the lease certainly still holds. It runs on the database's clock from a
    /// moment after the renewal was sent; this node counts from the sending, on its own
    /// monotonic clock, and keeps a tenth of the lease as a margin for the two clocks'
    /// rates, so it gives up before any other node may claim.
    fn lease_holds(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|poison| poison.into_inner());
        renewed.elapsed() < self.lease_ttl - self.lease_ttl / 10
    }

    /// This node's name in the table of nodes, suffix included.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Owned>> {
        self.owned.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Runs `work` with a connection, within the call's time.
    async fn call<T>(
        &self,
        work: impl AsyncFnOnce(&mut Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let run = async {
            let mut client = self.pool.get().await.map_err(failed)?;
            work(&mut client).await
        };
        tokio::time::timeout(self.call_timeout, run)
            .await
            .map_err(|_| StoreError::new("PostgreSQL did not answer in time"))?
    }

    /// The claim this node holds on `session`, or the fenced error if it holds none.
    fn held(&self, session: &SessionId) -> Result<Owned, StoreError> {
        self.owned().get(session).copied().ok_or_else(|| StoreError::fenced(session))
    }

    /// Runs a write of `session` in one transaction that first checks, under a shared
    /// lock on the session's owner row, that this node still owns it with the epoch it
    /// claimed. The lock keeps a claim by another node waiting until the write commits.
    async fn fenced<T>(
        &self,
        session: &SessionId,
        write: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>, Owned) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let owned = self.held(session)?;
        let node = &self.node;
        let result = self
            .call(async |client| {
                let transaction = client.transaction().await.map_err(failed)?;
                let owner = transaction
                    .query_opt(
                        "SELECT 1 FROM session_owners \
                         WHERE session_id = $1 AND owner_node = $2 AND epoch = $3 FOR SHARE",
                        &[&session.as_str(), node, &owned.epoch],
                    )
                    .await
                    .map_err(failed)?;
                if owner.is_none() {
                    return Err(StoreError::fenced(session));
                }
                let value = write(&transaction, owned).await.map_err(|err| {
                    // Only a second owner could store a second event under one number.
                    if err.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        StoreError::fenced(session)
                    } else {
                        failed(err)
                    }
                })?;
                transaction.commit().await.map_err(failed)?;
                Ok(value)
            })
            .await;
        if let Err(err) = &result {
            let mut owned = self.owned();
            if err.is_fenced() {
                error!(session = %session, epoch = owned.get(session).map(|held| held.epoch), "a write was fenced: another node owns the session now");
                owned.remove(session);
                metrics::gauge!(crate::metrics::SESSIONS_OWNED).set(owned.len() as f64);
                metrics::counter!(crate::metrics::FENCED_WRITES).increment(1);
            } else if let Some(held) = owned.get_mut(session) {
                // The write may have committed before the error: read the position again.
                held.next_pos = None;
            }
        }
        result
    }

    /// Physically reclaims the space of deleted events, so that purged text leaves the
    /// table's pages as soon as PostgreSQL can manage (see OPERATIONS.md for what it
    /// cannot: WAL, replicas and backups).
    async fn vacuum_events(&self) {
        let vacuumed =
            self.call(async |client| client.batch_execute("VACUUM events").await.map_err(failed)).await;
        if let Err(err) = vacuumed {
            warn!(error = %err, "could not vacuum the events table after a purge; autovacuum will");
        }
    }
}

/// Pushes this node's lease forward on the database's clock until `stop`.
/// What the renewing task shares with the store.
struct Lease {
    /// When the lease was last renewed.
    renewed: Arc<Mutex<std::time::Instant>>,
    /// Whether to renew it.
    renewing: Arc<std::sync::atomic::AtomicBool>,
}

async fn renew_lease(
    pool: Pool,
    node: String,
    options: PostgresOptions,
    lease: Lease,
    stop: CancellationToken,
) {
    let ttl = options.lease_ttl.as_secs_f64();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(options.lease_renew) => {}
        }
        if !lease.renewing.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let sent = std::time::Instant::now();
        let renewal = tokio::time::timeout(options.call_timeout, async {
            let client = pool.get().await.map_err(failed)?;
            client
                .query_opt(
                    "UPDATE nodes SET expires_at = now() + make_interval(secs => $2) \
                     WHERE node_id = $1 RETURNING 1",
                    &[&node, &ttl],
                )
                .await
                .map_err(failed)
        })
        .await;
        match renewal {
            Ok(Ok(Some(_))) => {
                // Counted from before the request: the lease runs from a moment after it.
                *lease.renewed.lock().unwrap_or_else(|poison| poison.into_inner()) = sent;
                metrics::counter!(crate::metrics::LEASE_RENEWALS).increment(1);
            }
            Ok(Ok(None)) => {
                error!(node = %node, "this node's lease is gone from the store; its sessions will be fenced")
            }
            Ok(Err(err)) => warn!(error = %err, "could not renew this node's lease"),
            Err(_) => warn!("could not renew this node's lease: PostgreSQL did not answer in time"),
        }
    }
}

fn decode_event(room: &str, seq: i64, at: i64, body: &str) -> Result<RoomEvent, StoreError> {
    let room = Room::from_name(room)
        .ok_or_else(|| StoreError::new(format!("unknown room {room} in a stored event")))?;
    let body: EventBody = serde_json::from_str(body)
        .map_err(|err| StoreError::new(format!("a stored event does not decode: {err}")))?;
    Ok(RoomEvent { room, seq: seq as u64, at: at as u64, body })
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    fn create_session<'a>(&'a self, record: &'a SessionRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(record).expect("records serialize");
            self.call(async |client| {
                let transaction = client.transaction().await.map_err(failed)?;
                transaction
                    .execute(
                        "INSERT INTO sessions (id, invite_code, created_by, created_at, record) \
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &record.id.as_str(),
                            &record.invite_code,
                            &record.created_by.as_str(),
                            &as_i64(record.created_at),
                            &json,
                        ],
                    )
                    .await
                    .map_err(failed)?;
                // Nobody owns it until the node that runs it claims it.
                transaction
                    .execute(
                        "INSERT INTO session_owners (session_id, owner_node, epoch) VALUES ($1, NULL, 0)",
                        &[&record.id.as_str()],
                    )
                    .await
                    .map_err(failed)?;
                transaction.commit().await.map_err(failed)
            })
            .await
        })
    }

    fn set_invite<'a>(
        &'a self,
        session: &'a SessionId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.call(async move |client| {
            client
                .execute(
                    "UPDATE sessions SET invite_code = $2, \
                     record = jsonb_set(record::jsonb, '{invite_code}', to_jsonb($2::text))::text \
                     WHERE id = $1",
                    &[&session.as_str(), &code],
                )
                .await
                .map(drop)
                .map_err(failed)
        }))
    }

    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<EncodedEvent>,
        listing: Option<&'a Listing>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let listing = listing.map(|listing| serde_json::to_string(listing).expect("listings serialize"));
            let rooms: Vec<&str> = events.iter().map(|event| event.room.as_str()).collect();
            let seqs: Vec<i64> = events.iter().map(|event| as_i64(event.seq)).collect();
            let ats: Vec<i64> = events.iter().map(|event| as_i64(event.at)).collect();
            let bodies: Vec<&str> = events.iter().map(|event| event.body.as_str()).collect();
            let count = i64::try_from(events.len()).expect("a batch fits");
            let next = self
                .fenced(session, async |transaction, owned| {
                    let first = match owned.next_pos {
                        Some(next) => next,
                        None => {
                            let row = transaction
                                .query_one(
                                    "SELECT COALESCE(MAX(pos), 0) + 1 FROM events WHERE session_id = $1",
                                    &[&session.as_str()],
                                )
                                .await?;
                            row.get(0)
                        }
                    };
                    let positions: Vec<i64> = (first..first + count).collect();
                    transaction
                        .execute(
                            "INSERT INTO events (session_id, pos, room, seq, at, body, epoch) \
                             SELECT $1, t.pos, t.room, t.seq, t.at, t.body, $2 \
                             FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[]) \
                             AS t(pos, room, seq, at, body)",
                            &[&session.as_str(), &owned.epoch, &positions, &rooms, &seqs, &ats, &bodies],
                        )
                        .await?;
                    if let Some(listing) = &listing {
                        transaction
                            .execute(
                                "UPDATE sessions SET listing = $2 WHERE id = $1",
                                &[&session.as_str(), listing],
                            )
                            .await?;
                    }
                    Ok(first + count)
                })
                .await?;
            if let Some(held) = self.owned().get_mut(session) {
                held.next_pos = Some(next);
            }
            Ok(())
        })
    }

    fn set_listing<'a>(
        &'a self,
        session: &'a SessionId,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let listing = serde_json::to_string(listing).expect("listings serialize");
        Box::pin(async move {
            self.call(async |client| {
                client
                    .execute("UPDATE sessions SET listing = $2 WHERE id = $1", &[&session.as_str(), &listing])
                    .await
                    .map(drop)
                    .map_err(failed)
            })
            .await
        })
    }

    fn purge<'a>(
        &'a self,
        session: &'a SessionId,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let rooms: Vec<&str> = rooms.iter().map(|room| room.as_str()).collect();
            self.fenced(session, async |transaction, _| {
                transaction
                    .execute(
                        "DELETE FROM events WHERE session_id = $1 AND room = ANY($2)",
                        &[&session.as_str(), &rooms],
                    )
                    .await
                    .map(drop)
            })
            .await?;
            self.vacuum_events().await;
            Ok(())
        })
    }

    fn rewrite<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.fenced(session, async |transaction, _| {
                for event in events {
                    let body = serde_json::to_string(&event.body).expect("events serialize");
                    transaction
                        .execute(
                            "UPDATE events SET body = $4 WHERE session_id = $1 AND room = $2 AND seq = $3",
                            &[&session.as_str(), &event.room.as_str(), &as_i64(event.seq), &body],
                        )
                        .await?;
                }
                Ok(())
            })
            .await?;
            self.vacuum_events().await;
            Ok(())
        })
    }

    fn record_erasure<'a>(
        &'a self,
        member: &'a MemberId,
        session: &'a SessionId,
        at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.call(async move |client| {
            client
                .execute(
                    "INSERT INTO erasures (member, session_id, at) VALUES ($1, $2, $3)",
                    &[&member.as_str(), &session.as_str(), &as_i64(at)],
                )
                .await
                .map(drop)
                .map_err(failed)
        }))
    }

    fn ready(&self) -> bool {
        self.lease_holds()
    }

    fn directory(&self) -> BoxFuture<'_, Result<Vec<ListedSession>, StoreError>> {
        Box::pin(self.call(async |client| {
            let rows = client
                .query("SELECT record, listing FROM sessions ORDER BY created_at, id", &[])
                .await
                .map_err(failed)?;
            rows.iter().map(listed_row).collect()
        }))
    }

    fn node_id(&self) -> Option<&str> {
        Some(&self.node)
    }

    fn renew(&self, on: bool) {
        let was = self.renewing.swap(on, std::sync::atomic::Ordering::Relaxed);
        if was != on {
            if on {
                info!("renewing this node's lease again");
            } else {
                warn!("stopped renewing this node's lease: other nodes will take its sessions");
            }
        }
    }

    fn holder<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(self.call(async |client| {
            let row = client
                .query_opt(
                    "SELECT owner_node FROM session_owners WHERE session_id = $1",
                    &[&session.as_str()],
                )
                .await
                .map_err(failed)?;
            Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
        }))
    }

    fn listed<'a>(&'a self, id: &'a SessionId) -> BoxFuture<'a, Result<Option<ListedSession>, StoreError>> {
        Box::pin(self.call(async |client| {
            let row = client
                .query_opt("SELECT record, listing FROM sessions WHERE id = $1", &[&id.as_str()])
                .await
                .map_err(failed)?;
            row.as_ref().map(listed_row).transpose()
        }))
    }

    fn listed_by_invite<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<ListedSession>, StoreError>> {
        Box::pin(self.call(async move |client| {
            let row = client
                .query_opt("SELECT record, listing FROM sessions WHERE invite_code = $1", &[&code])
                .await
                .map_err(failed)?;
            row.as_ref().map(listed_row).transpose()
        }))
    }

    fn claim<'a>(&'a self, session: &'a SessionId) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let claimed = self
                .call(async |client| {
                    // `before` is the owner as locked, so that a takeover is counted as one.
                    let row = client
                        .query_opt(
                            "UPDATE session_owners o \
                             SET owner_node = $2, epoch = o.epoch + 1, claimed_at = now() \
                             FROM (SELECT session_id, owner_node AS before FROM session_owners \
                                   WHERE session_id = $1 FOR UPDATE) b \
                             WHERE o.session_id = b.session_id AND (o.owner_node IS NULL OR o.owner_node = $2 \
                               OR NOT EXISTS (SELECT 1 FROM nodes n \
                                              WHERE n.node_id = o.owner_node AND n.expires_at > now())) \
                             RETURNING o.epoch, b.before",
                            &[&session.as_str(), &self.node],
                        )
                        .await
                        .map_err(failed)?;
                    Ok(row.map(|row| (row.get::<_, i64>(0), row.get::<_, Option<String>>(1))))
                })
                .await?;
            let Some((epoch, before)) = claimed else {
                return Err(StoreError {
                    reason: format!(
                        "session {session} is running on another node whose lease has not run out"
                    ),
                    kind: StoreErrorKind::HeldElsewhere,
                });
            };
            let takeover = before.as_ref().is_some_and(|before| *before != self.node);
            info!(session = %session, epoch, from = before.as_deref().unwrap_or("nobody"), "claimed the session");
            metrics::counter!(crate::metrics::SESSION_CLAIMS).increment(1);
            if takeover {
                metrics::counter!(crate::metrics::TAKEOVERS).increment(1);
            }
            let mut owned = self.owned();
            owned.insert(session.clone(), Owned { epoch, next_pos: None });
            metrics::gauge!(crate::metrics::SESSIONS_OWNED).set(owned.len() as f64);
            drop(owned);
            Ok(u64::try_from(epoch).unwrap_or_default())
        })
    }

    fn release<'a>(&'a self, session: &'a SessionId, claim: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let epoch = i64::try_from(claim).unwrap_or(i64::MAX);
            // Only this claim: the node may have claimed the session again meanwhile, for
            // someone who entered just as it stopped. The epoch stays; the next claim
            // moves it on.
            {
                let mut owned = self.owned();
                if owned.get(session).is_some_and(|held| held.epoch == epoch) {
                    owned.remove(session);
                }
                metrics::gauge!(crate::metrics::SESSIONS_OWNED).set(owned.len() as f64);
            }
            self.call(async |client| {
                client
                    .execute(
                        "UPDATE session_owners SET owner_node = NULL \
                         WHERE session_id = $1 AND owner_node = $2 AND epoch = $3",
                        &[&session.as_str(), &self.node, &epoch],
                    )
                    .await
                    .map(drop)
                    .map_err(failed)
            })
            .await
        })
    }

    fn load_session<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, StoreError>> {
        Box::pin(self.call(async |client| {
            let Some(record) = client
                .query_opt("SELECT record FROM sessions WHERE id = $1", &[&id.as_str()])
                .await
                .map_err(failed)?
            else {
                return Ok(None);
            };
            let record: SessionRecord = serde_json::from_str(record.get(0))
                .map_err(|err| StoreError::new(format!("a stored session does not decode: {err}")))?;
            let rows = client
                .query(
                    "SELECT room, seq, at, body FROM events WHERE session_id = $1 ORDER BY pos",
                    &[&id.as_str()],
                )
                .await
                .map_err(failed)?;
            let events = rows
                .iter()
                .map(|row| decode_event(row.get(0), row.get(1), row.get(2), row.get(3)))
                .collect::<Result<_, _>>()?;
            Ok(Some(StoredSession { record, events }))
        }))
    }

    fn room_events<'a>(
        &'a self,
        session: &'a SessionId,
        room: Room,
        seqs: Range<u64>,
    ) -> BoxFuture<'a, Result<Vec<RoomEvent>, StoreError>> {
        Box::pin(self.call(async move |client| {
            let rows = client
                .query(
                    "SELECT seq, at, body FROM events \
                     WHERE session_id = $1 AND room = $2 AND seq >= $3 AND seq < $4 ORDER BY seq",
                    &[&session.as_str(), &room.as_str(), &as_i64(seqs.start), &as_i64(seqs.end)],
                )
                .await
                .map_err(failed)?;
            rows.iter().map(|row| decode_event(room.as_str(), row.get(0), row.get(1), row.get(2))).collect()
        }))
    }
}

/// A row of `record, listing` from `sessions`.
fn listed_row(row: &tokio_postgres::Row) -> Result<ListedSession, StoreError> {
    let record: SessionRecord = serde_json::from_str(row.get(0))
        .map_err(|err| StoreError::new(format!("a stored session does not decode: {err}")))?;
    let listing = row.get::<_, Option<&str>>(1).and_then(|json| serde_json::from_str::<Listing>(json).ok());
    Ok(ListedSession { record, listing })
}
