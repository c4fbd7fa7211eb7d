//! The hub: the [`Directory`] of sessions, the starting of their actors when they are
//! used, and the shared pieces connections need (auth, config, shutdown).
//!
//! A session's actor runs only while the session is used: the hub starts it from the
//! store when someone enters it or its time comes, and the actor stops itself when it
//! has been idle. Listing sessions, checking who facilitates them and reading invites
//! need no actor: the directory answers.

use std::sync::Arc;

use caucus_protocol::api::{
    CreateSession, FacilitatedSession, FacilitatorAdded, InviteInfo, InviteLink, Joined, MySession,
    SessionCreated,
};
use caucus_protocol::{ErrorCode, MemberId, Phase, Role, SessionId};
use dashmap::DashMap;
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::bus::{Bus, RemoteSession};
use crate::clock::Clock;
use crate::config::Config;
use crate::directory::{Directory, Listed};
use crate::outbox::{ConnectionId, Outbox};
use crate::practice::Practice;
use crate::session::{
    ActorSettings, ConnectError, JoinAs, JoinError, Listing, Refusal, Session, SessionHandle, SessionSetup,
};
use crate::store::{ListedSession, SessionRecord, Store, StoreErrorKind};

/// How often the hub looks for unloaded sessions whose time has come (a round's end,
/// an ended session's purge), and how far ahead it starts them.
const WAKE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Why a hub operation failed. [`HubError::code`] maps each to its wire code.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("only a facilitator token can create sessions")]
    NotFacilitator,
    #[error("only this session's facilitators can do that")]
    NotItsFacilitator,
    #[error("the invite code is unknown, or its session has ended")]
    NoSuchInvite,
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("you already run {0} live sessions, the most allowed; end one first")]
    TooManySessions(usize),
    #[error("the server cannot store this just now; nothing was saved, so retry")]
    Unavailable,
    #[error("the server is shutting down; retry shortly")]
    ShuttingDown,
    #[error("this session does not take guests; sign in to join it")]
    SignInRequired,
    /// Refused by the session running on another node.
    #[error("{1}")]
    RefusedThere(ErrorCode, String),
}

impl HubError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::NotFacilitator | HubError::NotItsFacilitator => ErrorCode::Forbidden,
            HubError::NoSuchInvite => ErrorCode::NoSuchInvite,
            HubError::Refused(refusal) => refusal.code(),
            HubError::TooManySessions(_) => ErrorCode::LimitReached,
            HubError::Unavailable | HubError::ShuttingDown => ErrorCode::Unavailable,
            HubError::SignInRequired => ErrorCode::SignInRequired,
            HubError::RefusedThere(code, _) => *code,
        }
    }
}

impl From<JoinError> for HubError {
    fn from(err: JoinError) -> Self {
        match err {
            JoinError::Refused(refusal) => HubError::Refused(refusal),
            JoinError::RefusedThere(code, message) => HubError::RefusedThere(code, message),
            JoinError::Unavailable => HubError::Unavailable,
            JoinError::ShuttingDown => HubError::ShuttingDown,
        }
    }
}

/// Live sessions and what connections share.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    auth: Auth,
    store: Arc<dyn Store>,
    accounts: Accounts,
    practice: Practice,
    clock: Clock,
    /// Every session, loaded or not.
    directory: Arc<Directory>,
    /// Held while a session is being loaded, so that it is loaded once.
    loading: tokio::sync::Mutex<()>,
    /// Sessions another node held at the last claim, and when to ask again.
    held_elsewhere: DashMap<SessionId, tokio::time::Instant>,
    /// Each person's rate limiter, shared by all their connections.
    member_rates: DashMap<MemberId, Arc<governor::DefaultDirectRateLimiter>>,
    /// Cancelled once, at shutdown; every actor and connection watches it.
    shutdown: CancellationToken,
    /// Every actor and connection task is spawned on it so shutdown can wait for them.
    tracker: TaskTracker,
    /// The address invite links point to.
    public_url: String,
    /// The bus to the other nodes, in cluster mode.
    bus: std::sync::OnceLock<Arc<Bus>>,
}

/// A session as a connection or a call reaches it: its actor on this node, or the node
/// running it, over the bus. Not shared: a connection's remote session numbers the
/// frames that connection sends.
#[derive(Debug)]
pub enum SessionRef {
    /// It runs here.
    Local(SessionHandle),
    /// It runs on another node.
    Remote(RemoteSession),
}

impl SessionRef {
    /// Whether it runs on another node.
    pub fn is_remote(&self) -> bool {
        matches!(self, SessionRef::Remote(_))
    }

    /// Admits a new person as `join_as` says; see [`SessionHandle::join`].
    pub async fn join(
        &self,
        member: MemberId,
        name: String,
        join_as: JoinAs,
        accepted_rules: Option<String>,
    ) -> Result<(), JoinError> {
        match self {
            SessionRef::Local(handle) => handle.join(member, name, join_as, accepted_rules).await,
            SessionRef::Remote(remote) => remote.join(member, name, join_as, accepted_rules).await,
        }
    }

    /// Enters a connection; see [`SessionHandle::connect`].
    pub async fn connect(
        &self,
        member: MemberId,
        resume: std::collections::BTreeMap<String, u64>,
        outbox: Outbox,
    ) -> Result<(), ConnectError> {
        match self {
            SessionRef::Local(handle) => handle.connect(member, resume, outbox).await,
            SessionRef::Remote(remote) => remote.connect(member, resume, outbox).await,
        }
    }

    /// Passes a command on: decoded here, or as the client sent it (`text`) to the node
    /// running the session, which decodes it again.
    pub async fn command(
        &self,
        member: MemberId,
        connection: ConnectionId,
        frame: caucus_protocol::ClientFrame,
        text: &str,
    ) -> Result<(), ()> {
        match self {
            SessionRef::Local(handle) => handle.command(member, connection, frame).await,
            SessionRef::Remote(remote) => remote.command(connection, text).await,
        }
    }

    /// Tells a session on another node how many frames this connection has sent, if it
    /// sent any since it last said: a lost last frame is found even if no other follows.
    pub async fn keep_in_step(&self, connection: ConnectionId) {
        if let SessionRef::Remote(remote) = self {
            remote.keep_in_step(connection).await;
        }
    }

    /// Tells the session a connection is gone.
    pub async fn disconnect(&self, member: MemberId, connection: ConnectionId) {
        match self {
            SessionRef::Local(handle) => handle.disconnect(member, connection).await,
            SessionRef::Remote(remote) => remote.disconnect(connection).await,
        }
    }

    /// The minutes; see [`SessionHandle::minutes`].
    pub async fn minutes(
        &self,
        member: MemberId,
    ) -> Result<Option<caucus_protocol::api::Minutes>, crate::store::StoreError> {
        match self {
            SessionRef::Local(handle) => handle.minutes(member).await,
            SessionRef::Remote(remote) => remote.minutes(member).await,
        }
    }

    /// Each round's topic and carried points; see [`SessionHandle::rounds`].
    pub async fn rounds(&self) -> Option<Vec<caucus_protocol::api::MinutesRound>> {
        match self {
            SessionRef::Local(handle) => handle.rounds().await,
            SessionRef::Remote(remote) => remote.rounds().await,
        }
    }

    /// Erases a person; see [`SessionHandle::erase`].
    pub async fn erase(&self, by: MemberId, member: MemberId) -> Result<(), String> {
        match self {
            SessionRef::Local(handle) => handle.erase(by, member).await,
            SessionRef::Remote(remote) => remote.erase(by, member).await,
        }
    }

    /// A person's role; see [`SessionHandle::role_of`].
    pub async fn role_of(&self, member: MemberId) -> Option<Role> {
        match self {
            SessionRef::Local(handle) => handle.role_of(member).await,
            SessionRef::Remote(remote) => remote.role_of(member).await,
        }
    }
}

/// How long to wait before asking again for a session another node holds.
pub const CLAIM_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Why a session could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// There is no such session.
    Unknown,
    /// It exists but cannot be run here just now: the store cannot be read, or another
    /// node still holds it. Trying again shortly may succeed.
    Unavailable,
}

fn random_token(length: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(length)
        .map(|byte| char::from(byte).to_ascii_lowercase())
        .collect()
}

impl Hub {
    /// A hub with no sessions yet.
    pub fn new(
        config: Config,
        auth: Auth,
        store: Arc<dyn Store>,
        accounts: Accounts,
        public_url: String,
    ) -> Self {
        let practice = Practice::new(accounts.db().clone(), &public_url);
        Self {
            config,
            auth,
            store,
            accounts,
            practice,
            clock: Clock::start(),
            directory: Arc::default(),
            loading: tokio::sync::Mutex::new(()),
            held_elsewhere: DashMap::new(),
            member_rates: DashMap::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            public_url,
            bus: std::sync::OnceLock::new(),
        }
    }

    /// Joins the bus to the other nodes: sessions running elsewhere are reached through
    /// it from then on.
    pub fn attach_bus(&self, bus: Arc<Bus>) {
        let _ = self.bus.set(bus);
    }

    /// The bus to the other nodes, in cluster mode.
    pub fn bus(&self) -> Option<&Arc<Bus>> {
        self.bus.get()
    }

    /// The actor of session `id` if it runs on this node now.
    pub fn running_here(&self, id: &SessionId) -> Option<SessionHandle> {
        self.directory.live(id)
    }

    /// Whether other nodes share the store, and so change what this node's directory
    /// holds: their sessions, listings and invites are read from the store.
    fn shared(&self) -> bool {
        self.store.node_id().is_some()
    }

    /// What is known of session `id`, read again from a shared store unless it runs
    /// here (then this node's listing is the newest): a facilitator added or an invite
    /// replaced on another node counts at once.
    async fn fresh(&self, id: &SessionId) -> Option<Listed> {
        if self.shared() && self.directory.live(id).is_none() {
            match self.store.listed(id).await {
                Ok(Some(stored)) => self.directory.insert(&stored.record, stored.listing.unwrap_or_default()),
                Ok(None) => return None,
                Err(err) => debug!(session = %id, error = %err, "answering from the listing held here"),
            }
        }
        self.directory.get(id)
    }

    /// What is known of session `id`, from the store if this node has not seen it: a
    /// session created on another node since this one started.
    async fn known(&self, id: &SessionId) -> Option<Listed> {
        match self.directory.get(id) {
            Some(listed) => Some(listed),
            None => self.fresh(id).await,
        }
    }

    /// On a shared store, where every node creates and changes sessions, reads every
    /// session's listing again, but for those running here (whose listing here is the
    /// newest). Reads the whole table: fine for thousands of sessions.
    async fn refresh_all(&self) {
        if !self.shared() {
            return;
        }
        match self.store.directory().await {
            Ok(stored) => {
                for ListedSession { record, listing } in stored {
                    if self.directory.live(&record.id).is_none() {
                        self.directory.insert(&record, listing.unwrap_or_default());
                    }
                }
            }
            Err(err) => warn!(error = %err, "cannot read the sessions' listings from the shared store"),
        }
    }

    /// The session invite `code` leads to now.
    async fn by_invite(&self, code: &str) -> Option<SessionId> {
        let code = code.trim();
        if self.shared() {
            match self.store.listed_by_invite(code).await {
                Ok(Some(stored)) => {
                    let id = stored.record.id.clone();
                    if self.directory.live(&id).is_none() {
                        self.directory.insert(&stored.record, stored.listing.unwrap_or_default());
                    }
                    return Some(id);
                }
                Ok(None) => return None,
                Err(err) => debug!(error = %err, "answering an invite from the directory held here"),
            }
        }
        self.directory.by_invite(code)
    }

    /// The node that runs session `id` elsewhere, if it is alive and the bus reaches it.
    async fn remote(&self, id: &SessionId) -> Option<RemoteSession> {
        let bus = self.bus.get()?;
        let holder = self.store.holder(id).await.ok()??;
        (holder != bus.node() && bus.alive(&holder))
            .then(|| RemoteSession::new(Arc::clone(bus), holder, id.clone()))
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where sessions are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Accounts and sign-in.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The address people open, without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Communities, their terms and their series.
    pub fn practice(&self) -> &Practice {
        &self.practice
    }

    /// Token issuing and checking.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Cancelled when the server shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The tracker that session actors and connections are spawned on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The rate limiter shared by all of `member`'s connections.
    pub fn member_rate(&self, member: &MemberId) -> Arc<governor::DefaultDirectRateLimiter> {
        let limits = &self.config.limits;
        self.member_rates
            .entry(member.clone())
            .or_insert_with(|| {
                Arc::new(crate::connection::per_second(
                    limits.member_frames_per_sec,
                    limits.member_frame_burst,
                ))
            })
            .clone()
    }

    /// Forgets `member`'s shared rate limiter once none of their connections holds it,
    /// so that the table does not grow with everyone who ever connected.
    pub fn release_member_rate(&self, member: &MemberId) {
        self.member_rates.remove_if(member, |_, rate| Arc::strong_count(rate) == 1);
    }

    /// What is known of session `id`, without loading it.
    pub fn listed(&self, id: &SessionId) -> Option<Listed> {
        self.directory.get(id)
    }

    /// How many sessions are known, and how many are loaded.
    pub fn session_counts(&self) -> (usize, usize) {
        self.directory.counts()
    }

    /// The handle of session `id`'s actor, starting it from the store if it is not
    /// running. On a shared store, a session another node still holds is waited for
    /// until that node's lease has run out (`cluster.lease_ttl_ms`), so that a client
    /// reconnecting after its node died is let in as soon as the session can be taken.
    pub async fn session(&self, id: &SessionId) -> Result<SessionRef, Unreachable> {
        self.open(id, self.takeover_wait()).await
    }

    /// How long a session held by a node that stopped answering may take to be free:
    /// its lease, and the renewal that may have just begun it.
    pub fn takeover_wait(&self) -> std::time::Duration {
        let cluster = &self.config.cluster;
        std::time::Duration::from_millis(cluster.lease_ttl_ms + cluster.lease_renew_ms)
    }

    /// Like [`Hub::session`], waiting at most `wait` for another node's lease.
    async fn open(&self, id: &SessionId, wait: std::time::Duration) -> Result<SessionRef, Unreachable> {
        if let Some(handle) = self.directory.live(id) {
            return Ok(SessionRef::Local(handle));
        }
        let listed = self.known(id).await.ok_or(Unreachable::Unknown)?;
        let give_up = tokio::time::Instant::now() + wait;
        let (_loading, claim) = loop {
            // People waiting for the same session ask the store once per wait between
            // them, not each: their claims would queue behind the loading lock.
            let retry_at = self.held_elsewhere.get(id).map(|entry| *entry.value());
            if let Some(retry_at) = retry_at.filter(|at| *at > tokio::time::Instant::now()) {
                if retry_at >= give_up {
                    return Err(Unreachable::Unavailable);
                }
                tokio::time::sleep_until(retry_at).await;
                continue;
            }
            let loading = self.loading.lock().await;
            if let Some(handle) = self.directory.live(id) {
                return Ok(SessionRef::Local(handle));
            }
            if self.shutdown.is_cancelled() {
                return Err(Unreachable::Unavailable);
            }
            // Claimed first, then read: the load sees every write that committed before
            // the claim, and any later write by an owner before is refused.
            match self.store.claim(id).await {
                Ok(claim) => {
                    self.held_elsewhere.remove(id);
                    break (loading, claim);
                }
                Err(err) if err.kind == StoreErrorKind::HeldElsewhere => {
                    drop(loading);
                    // A node that is alive runs it: reach it over the bus.
                    if let Some(remote) = self.remote(id).await {
                        return Ok(SessionRef::Remote(remote));
                    }
                    if tokio::time::Instant::now() >= give_up {
                        debug!(session = %id, "another node still holds the session");
                        return Err(Unreachable::Unavailable);
                    }
                    self.held_elsewhere.insert(id.clone(), tokio::time::Instant::now() + CLAIM_RETRY);
                    debug!(session = %id, "another node holds the session; waiting for its lease");
                }
                Err(err) => {
                    warn!(session = %id, error = %err, "cannot take the session to run it here");
                    return Err(Unreachable::Unavailable);
                }
            }
        };
        let stored = match self.store.load_session(id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                warn!(session = %id, "a listed session is missing from the store");
                return Err(Unreachable::Unknown);
            }
            Err(err) => {
                warn!(session = %id, error = %err, "cannot load a session from the store");
                return Err(Unreachable::Unavailable);
            }
        };
        let started = std::time::Instant::now();
        let events = stored.events.len();
        let mut session = Session::restore(self.setup(&stored.record));
        for event in stored.events {
            session.evolve(event);
        }
        let handle = self.start(session, claim);
        metrics::counter!(crate::metrics::SESSION_LOADS).increment(1);
        debug!(session = %id, events, title = %listed.title, took = ?started.elapsed(), "session loaded");
        Ok(SessionRef::Local(handle))
    }

    /// Creates a session with its plenary and two caucus rooms, and seats `facilitator`
    /// (named `name`) as its first facilitator. The caller has checked that they may.
    pub async fn create_session(
        &self,
        facilitator: MemberId,
        name: String,
        request: CreateSession,
    ) -> Result<SessionCreated, HubError> {
        let cap = self.config.limits.sessions_per_facilitator;
        // Counted over every node's sessions.
        self.refresh_all().await;
        let live = self
            .directory
            .collect(|_, listed| (listed.created_by == facilitator && !listed.listing.ended()).then_some(()))
            .len();
        if live >= cap {
            return Err(HubError::TooManySessions(cap));
        }
        let record = SessionRecord {
            id: SessionId::new(format!("s-{}", random_token(12))).expect("generated ids are valid"),
            title: request.title,
            labels: request.caucuses,
            settings: request.settings,
            ground_rules: request.ground_rules,
            invite_code: random_token(10),
            created_by: facilitator.clone(),
            created_at: self.clock.now_ms(),
            allow_guests: request.allow_guests.unwrap_or(true),
        };
        let session = Session::new(self.setup(&record))?;
        // Refuse before anything is stored: a session whose creator cannot join would
        // be left without a facilitator.
        session.decide_join(&facilitator, &name, Role::Facilitator.into(), None)?;
        self.store.create_session(&record).await.map_err(|_| HubError::Unavailable)?;
        self.directory.insert(&record, Listing::default());
        let handle = {
            let _loading = self.loading.lock().await;
            let claim = self.store.claim(&record.id).await.map_err(|_| HubError::Unavailable)?;
            self.start(session, claim)
        };
        handle.join(facilitator.clone(), name, Role::Facilitator.into(), None).await?;
        let (id, invite_code) = (record.id, record.invite_code);
        info!(session = %id, facilitator = %facilitator, "session created");
        Ok(SessionCreated {
            invite_url: format!("{}/#invite={invite_code}", self.public_url),
            session: id,
            invite_code,
        })
    }

    /// Lists the stored sessions, reading no events, and starts those whose time has
    /// come (a round that ends soon or ended while the server was down, a purge that is
    /// due); then keeps waking sessions as their time comes. A session stored before
    /// listings were kept is listed once from its events.
    pub async fn restore(
        self: &Arc<Self>,
        stored: Vec<ListedSession>,
    ) -> Result<usize, crate::store::StoreError> {
        let count = stored.len();
        for ListedSession { record, listing } in stored {
            let listing = match listing {
                Some(listing) => listing,
                None => {
                    let Some(stored) = self.store.load_session(&record.id).await? else { continue };
                    let mut session = Session::restore(self.setup(&record));
                    for event in stored.events {
                        session.evolve(event);
                    }
                    let listing = Listing::of(&session);
                    self.store.set_listing(&record.id, &listing).await?;
                    listing
                }
            };
            self.directory.insert(&record, listing);
        }
        self.wake_due().await;
        let hub = Arc::clone(self);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(WAKE_EVERY) => hub.wake_due().await,
                    () = shutdown.cancelled() => break,
                }
            }
        });
        Ok(count)
    }

    /// Starts every unloaded session whose time comes before the next look.
    ///
    /// On a shared store this is also run when another node goes silent on the bus, so
    /// that its sessions' timers fire here as soon as its lease has run out.
    pub async fn wake_due(&self) {
        // So that a session whose node died runs again here when its time comes, even if
        // nobody reconnects to it.
        self.refresh_all().await;
        let horizon = self.clock.now_ms() + WAKE_EVERY.as_millis() as u64;
        let retention = self.retention_ms();
        let due = self.directory.collect(|id, listed| {
            listed.listing.wake_at(retention).filter(|at| *at <= horizon).map(|_| id.clone())
        });
        // A session another node runs is that node's to wake; one whose node has died
        // is waited for, until its lease has run out, all of them at once.
        let wait = if self.shared() { self.takeover_wait() } else { std::time::Duration::ZERO };
        let waking = due.iter().filter(|id| self.directory.live(id).is_none()).map(|id| async move {
            if let Ok(SessionRef::Local(_)) = self.open(id, wait).await {
                debug!(session = %id, "session woken for its timer or purge");
            }
        });
        futures::future::join_all(waking).await;
    }

    fn retention_ms(&self) -> u64 {
        u64::from(self.config.retention.caucus_transcript_days) * 24 * 60 * 60 * 1000
    }

    fn setup(&self, record: &SessionRecord) -> SessionSetup {
        let limits = &self.config.limits;
        SessionSetup {
            id: record.id.clone(),
            title: record.title.clone(),
            labels: record.labels.clone(),
            settings: record.settings.clone(),
            ground_rules: record.ground_rules.clone(),
            limits: self.config.limits.text,
            caps: self.config.limits.session,
            window: usize::try_from(limits.held_events_per_room.max(limits.replay_per_room).max(1))
                .unwrap_or(usize::MAX),
        }
    }

    /// Starts a session's actor and puts its handle in the directory. The caller holds
    /// `loading`.
    fn start(&self, session: Session, claim: u64) -> SessionHandle {
        let settings = ActorSettings {
            connections_per_member: self.config.limits.connections_per_member,
            replay_per_room: self.config.limits.replay_per_room,
            replay_bytes_per_room: self.config.limits.replay_bytes_per_room,
            outbound_bytes: self.config.limits.outbound_bytes,
            history_bytes: self.config.limits.history_bytes,
            retention_ms: self.retention_ms(),
            // An event and an ack per command, and room to spare.
            max_batch: (self.config.limits.outbound_queue / 8).clamp(1, 256),
            idle_after: std::time::Duration::from_secs(self.config.timeouts.session_idle_secs),
            offline_grace: std::time::Duration::from_secs(self.config.timeouts.offline_grace_secs),
            claim,
        };
        let id = session.id().clone();
        let handle = SessionHandle::spawn(
            session,
            self.store.clone(),
            self.clock,
            settings,
            self.directory.clone(),
            self.shutdown.clone(),
            &self.tracker,
        );
        self.directory.go_live(&id, handle.clone());
        handle
    }

    /// The sessions `who` facilitates, live ones first, then by title.
    pub async fn facilitated_by(&self, who: &MemberId) -> Vec<FacilitatedSession> {
        // A co-facilitator added on another node sees the session at once.
        self.refresh_all().await;
        let mut listed = self.directory.collect(|id, listed| {
            listed.listing.facilitators.contains(who).then(|| FacilitatedSession {
                session: id.clone(),
                title: listed.title.clone(),
                phase: listed.listing.phase,
                invite_url: (!listed.listing.ended())
                    .then(|| self.link(id, listed.invite_code.clone()).invite_url),
            })
        });
        listed.sort_by(|a, b| {
            (a.phase == Phase::Ended, &a.title, &a.session).cmp(&(
                b.phase == Phase::Ended,
                &b.title,
                &b.session,
            ))
        });
        listed
    }

    /// Adds `member` (named `name`) to session `id` as a facilitator, for one of its
    /// facilitators (`who`). They see it in their list at once. Adding someone who is
    /// already a facilitator there changes nothing.
    pub async fn add_facilitator(
        &self,
        id: &SessionId,
        who: &MemberId,
        member: MemberId,
        name: &str,
    ) -> Result<FacilitatorAdded, HubError> {
        self.facilitating(id, who).await?;
        let session = self.session(id).await.map_err(|_| HubError::Unavailable)?;
        if session.role_of(member.clone()).await != Some(Role::Facilitator) {
            session.join(member.clone(), name.to_owned(), Role::Facilitator.into(), None).await?;
            info!(session = %id, facilitator = %member, by = %who, "co-facilitator added");
        }
        Ok(FacilitatorAdded { session: id.clone(), member })
    }

    /// Whether `who` facilitates live session `id`.
    pub async fn facilitates(&self, id: &SessionId, who: &MemberId) -> bool {
        self.facilitating(id, who).await.is_ok()
    }

    /// The sessions behind `seats` (session and member id), with the role each seat
    /// holds, live ones first. Sessions that are gone are left out.
    pub async fn seated_sessions(&self, seats: Vec<(SessionId, MemberId)>) -> Vec<MySession> {
        let mut listed = Vec::new();
        for (id, member) in seats {
            let Some(session) = self.fresh(&id).await else { continue };
            let Some(role) = session.listing.role_of(&member) else { continue };
            listed.push(MySession {
                invite_url: (!session.listing.ended() && role == Role::Facilitator)
                    .then(|| self.link(&id, session.invite_code.clone()).invite_url),
                session: id,
                title: session.title,
                phase: session.listing.phase,
                role,
            });
        }
        listed.sort_by(|a, b| {
            (a.phase == Phase::Ended, &a.title, &a.session).cmp(&(
                b.phase == Phase::Ended,
                &b.title,
                &b.session,
            ))
        });
        listed
    }

    /// The current invite of session `id`, for one of its facilitators.
    pub async fn invite_link(&self, id: &SessionId, who: &MemberId) -> Result<InviteLink, HubError> {
        self.facilitating(id, who).await?;
        let code = self.fresh(id).await.ok_or(HubError::NotItsFacilitator)?.invite_code;
        Ok(self.link(id, code))
    }

    /// Replaces session `id`'s invite, for one of its facilitators: the old code stops
    /// working at once, so a removed person cannot come back through it. People
    /// already in the session are not affected.
    pub async fn rotate_invite(&self, id: &SessionId, who: &MemberId) -> Result<InviteLink, HubError> {
        self.facilitating(id, who).await?;
        let code = random_token(10);
        self.store.set_invite(id, &code).await.map_err(|_| HubError::Unavailable)?;
        self.directory.set_invite(id, &code);
        info!(session = %id, facilitator = %who, "invite replaced");
        Ok(self.link(id, code))
    }

    /// Refuses unless `who` is a facilitator of session `id`; a session that does not
    /// exist gets the same refusal.
    async fn facilitating(&self, id: &SessionId, who: &MemberId) -> Result<(), HubError> {
        let session = self.fresh(id).await.ok_or(HubError::NotItsFacilitator)?;
        if session.listing.facilitators.contains(who) { Ok(()) } else { Err(HubError::NotItsFacilitator) }
    }

    fn link(&self, id: &SessionId, invite_code: String) -> InviteLink {
        InviteLink {
            session: id.clone(),
            invite_url: format!("{}/#invite={invite_code}", self.public_url),
            invite_code,
        }
    }

    /// What an invite leads to, for the page people see before joining.
    pub async fn invite(&self, code: &str) -> Result<InviteInfo, HubError> {
        let id = self.by_invite(code).await.ok_or(HubError::NoSuchInvite)?;
        let session = self.directory.get(&id).ok_or(HubError::NoSuchInvite)?;
        if session.listing.ended() {
            return Err(HubError::NoSuchInvite);
        }
        Ok(InviteInfo { session: id, title: session.title, ground_rules: session.ground_rules })
    }

    /// Admits a guest by invite code and returns their token for this session.
    pub async fn join(
        &self,
        code: &str,
        name: &str,
        accepted_rules: Option<String>,
    ) -> Result<Joined, HubError> {
        let id = self.by_invite(code).await.ok_or(HubError::NoSuchInvite)?;
        if self.directory.get(&id).is_some_and(|session| !session.allow_guests) {
            return Err(HubError::SignInRequired);
        }
        let member = MemberId::new(format!("m-{}", random_token(12))).expect("generated ids are valid");
        let joined = self.join_as(code, member, name, accepted_rules).await?;
        Ok(Joined { token: Some(self.auth.mint_member(&joined.session, &joined.member)), ..joined })
    }

    /// Admits `member` by invite code: a signed-in person, whose seat is their account's.
    /// Someone already in the session is let in again as they are.
    pub async fn join_as(
        &self,
        code: &str,
        member: MemberId,
        name: &str,
        accepted_rules: Option<String>,
    ) -> Result<Joined, HubError> {
        let (id, handle) = self.invited_session(code).await?;
        if handle.role_of(member.clone()).await.is_none() {
            handle.join(member.clone(), name.to_owned(), Role::Member.into(), accepted_rules).await.map_err(
                |err| match err {
                    JoinError::Refused(Refusal::SessionEnded)
                    | JoinError::RefusedThere(ErrorCode::SessionEnded, _) => HubError::NoSuchInvite,
                    other => other.into(),
                },
            )?;
            info!(session = %id, member = %member, "member joined");
        }
        Ok(Joined { token: None, session: id, member })
    }

    /// Seats `member` in session `id` with `role`, without an invite: a community's
    /// people enter its sessions this way. Someone already there stays as they are.
    pub async fn admit(
        &self,
        id: &SessionId,
        member: MemberId,
        name: &str,
        join_as: JoinAs,
    ) -> Result<(), HubError> {
        let handle = self.session(id).await.map_err(|unreachable| match unreachable {
            Unreachable::Unknown => HubError::NoSuchInvite,
            Unreachable::Unavailable => HubError::Unavailable,
        })?;
        if handle.role_of(member.clone()).await.is_none() {
            handle.join(member.clone(), name.to_owned(), join_as, None).await?;
            info!(session = %id, member = %member, "a community's person entered");
        }
        Ok(())
    }

    /// Erases `member` from session `id`, as one of its facilitators would: `asking` if
    /// they facilitate it, else the facilitator who created it.
    pub async fn erase_member(
        &self,
        id: &SessionId,
        member: MemberId,
        asking: &MemberId,
    ) -> Result<(), String> {
        let gone = || "the session is gone".to_owned();
        let created_by = self.known(id).await.ok_or_else(gone)?.created_by;
        let handle = self.session(id).await.map_err(|unreachable| match unreachable {
            Unreachable::Unknown => gone(),
            Unreachable::Unavailable => "the session cannot be opened just now; try again".to_owned(),
        })?;
        let by = if handle.role_of(asking.clone()).await == Some(Role::Facilitator) {
            asking.clone()
        } else {
            created_by
        };
        handle.erase(by, member.clone()).await?;
        info!(session = %id, member = %member, "erased for a community");
        Ok(())
    }

    async fn invited_session(&self, code: &str) -> Result<(SessionId, SessionRef), HubError> {
        let id = self.by_invite(code).await.ok_or(HubError::NoSuchInvite)?;
        let handle = self.session(&id).await.map_err(|_| HubError::Unavailable)?;
        Ok((id, handle))
    }
}
