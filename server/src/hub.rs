//! The hub: every live session's handle, by id and by invite code, and the shared
//! pieces connections need (auth, config, shutdown).
//!
//! The maps hold only handles. Callers clone a handle out and the map guard is dropped
//! before any `.await`, so no lock is ever held across one.

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
use tracing::info;

use crate::accounts::Accounts;
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::Config;
use crate::practice::Practice;
use crate::session::{ActorSettings, JoinError, Refusal, Session, SessionHandle, SessionSetup};
use crate::store::{SessionRecord, Store, StoredSession};

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
        }
    }
}

impl From<JoinError> for HubError {
    fn from(err: JoinError) -> Self {
        match err {
            JoinError::Refused(refusal) => HubError::Refused(refusal),
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
    sessions: DashMap<SessionId, SessionHandle>,
    invites: DashMap<String, SessionId>,
    /// Each session's current invite code: the other way round.
    invite_codes: DashMap<SessionId, String>,
    /// Each person's rate limiter, shared by all their connections.
    member_rates: DashMap<MemberId, Arc<governor::DefaultDirectRateLimiter>>,
    /// Who created each session, for the per-facilitator cap on live sessions.
    created_by: DashMap<SessionId, MemberId>,
    /// Sessions that take no guests: only signed-in people join them.
    members_only: DashMap<SessionId, ()>,
    /// Cancelled once, at shutdown; every actor and connection watches it.
    shutdown: CancellationToken,
    /// Every actor and connection task is spawned on it so shutdown can wait for them.
    tracker: TaskTracker,
    /// The address invite links point to.
    public_url: String,
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
            sessions: DashMap::new(),
            invites: DashMap::new(),
            invite_codes: DashMap::new(),
            created_by: DashMap::new(),
            members_only: DashMap::new(),
            member_rates: DashMap::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            public_url,
        }
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

    /// The handle of a live session.
    pub fn session(&self, id: &SessionId) -> Option<SessionHandle> {
        self.sessions.get(id).map(|entry| entry.value().clone())
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
        let live = self
            .created_by
            .iter()
            .filter(|entry| *entry.value() == facilitator)
            .filter(|entry| self.session(entry.key()).is_some_and(|session| !session.has_ended()))
            .count();
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
        session.decide_join(&facilitator, &name, Role::Facilitator, None)?;
        self.store.create_session(&record).await.map_err(|_| HubError::Unavailable)?;
        let handle = self.start(session, &record);
        handle.join(facilitator.clone(), name, Role::Facilitator, None).await?;
        let (id, invite_code) = (record.id, record.invite_code);
        info!(session = %id, facilitator = %facilitator, "session created");
        Ok(SessionCreated {
            invite_url: format!("{}/#invite={invite_code}", self.public_url),
            session: id,
            invite_code,
        })
    }

    /// Brings stored sessions back to life: each one's events are applied in the order
    /// they were stored, then its actor starts, timers and all. A round whose deadline
    /// passed while the server was down ends at once, as its settings say.
    pub fn restore(&self, stored: Vec<StoredSession>) -> usize {
        let count = stored.len();
        for StoredSession { record, events } in stored {
            let mut session = Session::restore(self.setup(&record));
            for event in events {
                session.evolve(event);
            }
            self.start(session, &record);
        }
        count
    }

    fn setup(&self, record: &SessionRecord) -> SessionSetup {
        SessionSetup {
            id: record.id.clone(),
            title: record.title.clone(),
            labels: record.labels.clone(),
            settings: record.settings.clone(),
            ground_rules: record.ground_rules.clone(),
            limits: self.config.limits.text,
            caps: self.config.limits.session,
        }
    }

    /// Starts a session's actor and makes it findable by id and invite code.
    fn start(&self, session: Session, record: &SessionRecord) -> SessionHandle {
        let settings = ActorSettings {
            connections_per_member: self.config.limits.connections_per_member,
            replay_per_room: self.config.limits.replay_per_room,
            replay_bytes_per_room: self.config.limits.replay_bytes_per_room,
            outbound_bytes: self.config.limits.outbound_bytes,
            history_bytes: self.config.limits.history_bytes,
            retention_ms: u64::from(self.config.retention.caucus_transcript_days) * 24 * 60 * 60 * 1000,
            // An event and an ack per command, and room to spare.
            max_batch: (self.config.limits.outbound_queue / 8).clamp(1, 256),
        };
        let handle = SessionHandle::spawn(
            session,
            self.store.clone(),
            self.clock,
            settings,
            self.shutdown.clone(),
            &self.tracker,
        );
        self.sessions.insert(record.id.clone(), handle.clone());
        self.invites.insert(record.invite_code.clone(), record.id.clone());
        self.invite_codes.insert(record.id.clone(), record.invite_code.clone());
        self.created_by.insert(record.id.clone(), record.created_by.clone());
        if !record.allow_guests {
            self.members_only.insert(record.id.clone(), ());
        }
        handle
    }

    /// The sessions `who` facilitates, live ones first, then by title.
    pub async fn facilitated_by(&self, who: &MemberId) -> Vec<FacilitatedSession> {
        let handles: Vec<SessionHandle> = self.sessions.iter().map(|entry| entry.value().clone()).collect();
        let mut listed = Vec::new();
        for handle in handles {
            if handle.role_of(who.clone()).await != Some(Role::Facilitator) {
                continue;
            }
            let Some(summary) = handle.summarize().await else { continue };
            let code = self.invite_codes.get(handle.id()).map(|code| code.value().clone());
            listed.push(FacilitatedSession {
                session: handle.id().clone(),
                title: summary.title,
                phase: summary.phase,
                invite_url: code
                    .filter(|_| !summary.ended)
                    .map(|code| self.link(handle.id(), code).invite_url),
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
        let session = self.session(id).ok_or(HubError::NotItsFacilitator)?;
        if session.role_of(member.clone()).await != Some(Role::Facilitator) {
            session.join(member.clone(), name.to_owned(), Role::Facilitator, None).await?;
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
            let Some(handle) = self.session(&id) else { continue };
            let Some(role) = handle.role_of(member).await else { continue };
            let Some(summary) = handle.summarize().await else { continue };
            let code = self.invite_codes.get(&id).map(|code| code.value().clone());
            listed.push(MySession {
                invite_url: code
                    .filter(|_| !summary.ended && role == Role::Facilitator)
                    .map(|code| self.link(&id, code).invite_url),
                session: id,
                title: summary.title,
                phase: summary.phase,
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
        let code =
            self.invite_codes.get(id).map(|code| code.value().clone()).ok_or(HubError::NotItsFacilitator)?;
        Ok(self.link(id, code))
    }

    /// Replaces session `id`'s invite, for one of its facilitators: the old code stops
    /// working at once, so a removed person cannot come back through it. People
    /// already in the session are not affected.
    pub async fn rotate_invite(&self, id: &SessionId, who: &MemberId) -> Result<InviteLink, HubError> {
        self.facilitating(id, who).await?;
        let code = random_token(10);
        self.store.set_invite(id, &code).await.map_err(|_| HubError::Unavailable)?;
        if let Some(old) = self.invite_codes.insert(id.clone(), code.clone()) {
            self.invites.remove(&old);
        }
        self.invites.insert(code.clone(), id.clone());
        info!(session = %id, facilitator = %who, "invite replaced");
        Ok(self.link(id, code))
    }

    /// Refuses unless `who` is a facilitator of live session `id`; a session that does
    /// not exist gets the same refusal.
    async fn facilitating(&self, id: &SessionId, who: &MemberId) -> Result<(), HubError> {
        let session = self.session(id).ok_or(HubError::NotItsFacilitator)?;
        match session.role_of(who.clone()).await {
            Some(Role::Facilitator) => Ok(()),
            _ => Err(HubError::NotItsFacilitator),
        }
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
        let (id, handle) = self.invited_session(code)?;
        let summary = handle.summarize().await.ok_or(HubError::ShuttingDown)?;
        if summary.ended {
            return Err(HubError::NoSuchInvite);
        }
        Ok(InviteInfo { session: id, title: summary.title, ground_rules: summary.ground_rules })
    }

    /// Admits a guest by invite code and returns their token for this session.
    pub async fn join(
        &self,
        code: &str,
        name: &str,
        accepted_rules: Option<String>,
    ) -> Result<Joined, HubError> {
        let (id, _) = self.invited_session(code)?;
        if self.members_only.contains_key(&id) {
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
        let (id, handle) = self.invited_session(code)?;
        if handle.role_of(member.clone()).await.is_none() {
            handle.join(member.clone(), name.to_owned(), Role::Member, accepted_rules).await.map_err(
                |err| match err {
                    JoinError::Refused(Refusal::SessionEnded) => HubError::NoSuchInvite,
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
        role: Role,
    ) -> Result<(), HubError> {
        let handle = self.session(id).ok_or(HubError::NoSuchInvite)?;
        if handle.role_of(member.clone()).await.is_none() {
            handle.join(member.clone(), name.to_owned(), role, None).await?;
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
        let handle = self.session(id).ok_or_else(|| "the session is gone".to_owned())?;
        let by = if handle.role_of(asking.clone()).await == Some(Role::Facilitator) {
            asking.clone()
        } else {
            self.created_by
                .get(id)
                .map(|entry| entry.value().clone())
                .ok_or_else(|| "the session is gone".to_owned())?
        };
        handle.erase(by, member.clone()).await?;
        info!(session = %id, member = %member, "erased for a community");
        Ok(())
    }

    fn invited_session(&self, code: &str) -> Result<(SessionId, SessionHandle), HubError> {
        let id =
            self.invites.get(code.trim()).map(|entry| entry.value().clone()).ok_or(HubError::NoSuchInvite)?;
        let handle = self.session(&id).ok_or(HubError::NoSuchInvite)?;
        Ok((id, handle))
    }
}
