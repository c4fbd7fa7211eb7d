//! Where sessions and their events are kept. The session actor appends every event
//! here and acknowledges nothing until the append has committed.
//!
//! - [`SqliteStore`] is the default: one SQLite file in the data folder, one writer
//!   thread with group commit, WAL and `synchronous=FULL`.
//! - [`PostgresStore`] is shared by several nodes: each session is written by the node
//!   that claimed it last, and the database refuses the writes of any other.
//! - [`MemoryStore`] keeps everything in memory, for tests that need no disk.
//!
//! Start-up reads only each session's record and [`Listing`]. A session's events are
//! read when someone enters it: the server folds them, in the order they were stored,
//! back into its state, and keeps only each room's latest events in memory. Older
//! events are read here again, a page at a time, for `history`, the minutes and
//! erasure.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use caucus_protocol::{CaucusLabels, EncodedEvent, MemberId, Room, RoomEvent, SessionId, Settings};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::session::Listing;

pub use postgres::{PostgresOptions, PostgresStore, migrate as migrate_postgres};
pub use sqlite::{SqliteOptions, SqliteStore, backup};

/// Why the store could not take a write. The command is refused with `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store is unavailable: {reason}")]
pub struct StoreError {
    /// What went wrong, for the operator's log. Never contains message text.
    pub reason: String,
    /// What kind of refusal it is.
    pub kind: StoreErrorKind,
}

/// Why a store refused, where the answer differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot be reached or refused the write; it may work again later.
    Unavailable,
    /// A write refused because this node no longer owns the session: another node has
    /// claimed it. The session must stop here; retrying cannot succeed.
    Fenced,
    /// A claim refused because another node holds the session and its lease has not
    /// run out. Once it has, the claim can succeed.
    HeldElsewhere,
}

impl StoreError {
    pub(crate) fn new(reason: impl std::fmt::Display) -> Self {
        Self { reason: reason.to_string(), kind: StoreErrorKind::Unavailable }
    }

    /// A write refused because another node owns the session now.
    pub(crate) fn fenced(session: &SessionId) -> Self {
        Self {
            reason: format!("session {session} is owned by another node now"),
            kind: StoreErrorKind::Fenced,
        }
    }

    /// Whether another node owns the session now.
    pub fn is_fenced(&self) -> bool {
        self.kind == StoreErrorKind::Fenced
    }
}

/// How many of a store's `known` migrations a database says it has applied, refused if
/// it is newer than this server.
pub(crate) fn migrations_applied(applied: i64, known: usize) -> Result<usize, StoreError> {
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > known {
        return Err(StoreError::new(format!(
            "the database has schema version {applied}, newer than this server knows ({known}); run a newer caucus"
        )));
    }
    Ok(applied)
}

/// A session as created: everything needed to rebuild it before its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session's id.
    pub id: SessionId,
    /// Its title.
    pub title: String,
    /// The caucus labels.
    pub labels: CaucusLabels,
    /// Its settings.
    pub settings: Settings,
    /// Ground rules.
    pub ground_rules: Option<String>,
    /// The invite code members join with.
    pub invite_code: String,
    /// The facilitator who created it.
    pub created_by: MemberId,
    /// When, in Unix milliseconds.
    pub created_at: u64,
    /// Whether people may join with only a display name, without signing in.
    #[serde(default = "yes")]
    pub allow_guests: bool,
}

fn yes() -> bool {
    true
}

/// A stored session as start-up sees it: its record and its listing, not its events.
#[derive(Debug, Clone)]
pub struct ListedSession {
    /// How it was created.
    pub record: SessionRecord,
    /// Its listing; `None` for a session stored before listings were kept, which the
    /// server lists once from its events.
    pub listing: Option<Listing>,
}

/// A stored session and its events, in the order they were appended.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// How it was created.
    pub record: SessionRecord,
    /// Its events.
    pub events: Vec<RoomEvent>,
}

/// A place to keep sessions and their events.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Records a new session.
    fn create_session<'a>(&'a self, record: &'a SessionRecord) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces `session`'s invite code. Returns once it is durable.
    fn set_invite<'a>(
        &'a self,
        session: &'a SessionId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Appends `events` to `session`, all or nothing, with the session's new `listing`
    /// if they changed it. Returns once they are durable. Their bodies come serialized,
    /// as they are stored and sent.
    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<EncodedEvent>,
        listing: Option<&'a Listing>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces `session`'s listing. Returns once it is durable.
    fn set_listing<'a>(
        &'a self,
        session: &'a SessionId,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Deletes every event of `rooms` in `session`, leaving nothing readable behind in
    /// the store's files.
    fn purge<'a>(
        &'a self,
        session: &'a SessionId,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces stored events in place (same room and sequence number), for erasure.
    fn rewrite<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records that a person's data was erased, without the erased content.
    fn record_erasure<'a>(
        &'a self,
        member: &'a MemberId,
        session: &'a SessionId,
        at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Rewrites the files so that rows deleted outside the store (a deleted account)
    /// leave no bytes behind, as a purge does. Nothing to do where there are no files.
    fn scrub(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        done()
    }

    /// Whether this node holds its sessions now. A shared store says no once the node
    /// has not renewed its lease for nearly as long as the lease lasts: other nodes may
    /// take its sessions then, so it must not answer who may read what from its state.
    fn ready(&self) -> bool {
        true
    }

    /// Every stored session's record and listing, for start-up. Reads no events.
    fn directory(&self) -> BoxFuture<'_, Result<Vec<ListedSession>, StoreError>>;

    /// This process's name in a store shared by several nodes, new at every start;
    /// `None` for a store of one process.
    fn node_id(&self) -> Option<&str> {
        None
    }

    /// Renews this node's lease in a shared store, or stops renewing it (while the node
    /// cannot reach the other nodes) so that they may take its sessions.
    fn renew(&self, _on: bool) {}

    /// The node running `session` now, if a shared store names one.
    fn holder<'a>(&'a self, _session: &'a SessionId) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        ready(Ok(None))
    }

    /// Session `id`'s record and listing as stored now. A shared store is read again,
    /// because other nodes change listings and invites; a store of one process has
    /// nothing the directory does not already hold, and answers `None`.
    fn listed<'a>(&'a self, _id: &'a SessionId) -> BoxFuture<'a, Result<Option<ListedSession>, StoreError>> {
        ready(Ok(None))
    }

    /// Like [`Store::listed`], for the session that invite `code` leads to now.
    fn listed_by_invite<'a>(
        &'a self,
        _code: &'a str,
    ) -> BoxFuture<'a, Result<Option<ListedSession>, StoreError>> {
        ready(Ok(None))
    }

    /// Makes this process the one that writes `session`, before it runs here (created
    /// or loaded), and returns the claim's number. A store shared by several nodes
    /// fences the writes of any owner before: they are refused from the moment this
    /// claim commits. A store of one process has nothing to do and answers 0.
    fn claim<'a>(&'a self, _session: &'a SessionId) -> BoxFuture<'a, Result<u64, StoreError>> {
        ready(Ok(0))
    }

    /// Gives up claim number `claim` on `session` when the session stops running here,
    /// so that another node may take it without waiting for this one's lease to run
    /// out. A later claim by this node is left alone.
    fn release<'a>(&'a self, _session: &'a SessionId, _claim: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        done()
    }

    /// One stored session with its events: what a session is started from when someone
    /// enters it, and rebuilt from when a batch it had applied could not be stored.
    /// Reads that session's rows only.
    fn load_session<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, StoreError>>;

    /// `room`'s events numbered `seqs` in `session`, oldest first: the events a live
    /// session no longer holds in memory, read one page at a time.
    fn room_events<'a>(
        &'a self,
        session: &'a SessionId,
        room: Room,
        seqs: Range<u64>,
    ) -> BoxFuture<'a, Result<Vec<RoomEvent>, StoreError>>;
}

/// Keeps everything in memory, for as long as the process lives.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    sessions: Vec<SessionRecord>,
    listings: HashMap<SessionId, Listing>,
    /// Kept as appended, as a database keeps them, and decoded when read.
    events: HashMap<SessionId, Vec<EncodedEvent>>,
    erasures: Vec<(MemberId, SessionId, u64)>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Every event stored for `session`, in the order they were appended.
    pub fn events(&self, session: &SessionId) -> Vec<RoomEvent> {
        self.decoded(session, |_| true).expect("the memory store holds what it encoded")
    }

    /// The events of `session` that `keep` selects, decoded.
    fn decoded(
        &self,
        session: &SessionId,
        keep: impl Fn(&EncodedEvent) -> bool,
    ) -> Result<Vec<RoomEvent>, StoreError> {
        let inner = self.lock();
        let stored = inner.events.get(session).into_iter().flatten().filter(|event| keep(event));
        stored.map(|event| event.decode().map_err(StoreError::new)).collect()
    }
}

fn done<'a>() -> BoxFuture<'a, Result<(), StoreError>> {
    ready(Ok(()))
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Store for MemoryStore {
    fn create_session<'a>(&'a self, record: &'a SessionRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().sessions.push(record.clone());
        done()
    }

    fn set_invite<'a>(
        &'a self,
        session: &'a SessionId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(record) = self.lock().sessions.iter_mut().find(|record| record.id == *session) {
            record.invite_code = code.to_owned();
        }
        done()
    }

    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<EncodedEvent>,
        listing: Option<&'a Listing>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut inner = self.lock();
        inner.events.entry(session.clone()).or_default().extend(events);
        if let Some(listing) = listing {
            inner.listings.insert(session.clone(), listing.clone());
        }
        done()
    }

    fn set_listing<'a>(
        &'a self,
        session: &'a SessionId,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().listings.insert(session.clone(), listing.clone());
        done()
    }

    fn purge<'a>(
        &'a self,
        session: &'a SessionId,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(events) = self.lock().events.get_mut(session) {
            events.retain(|event| !rooms.contains(&event.room));
        }
        done()
    }

    fn rewrite<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(stored) = self.lock().events.get_mut(session) {
            for event in events {
                if let Some(old) =
                    stored.iter_mut().find(|old| old.room == event.room && old.seq == event.seq)
                {
                    *old = EncodedEvent::of(event);
                }
            }
        }
        done()
    }

    fn record_erasure<'a>(
        &'a self,
        member: &'a MemberId,
        session: &'a SessionId,
        at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().erasures.push((member.clone(), session.clone(), at));
        done()
    }

    fn directory(&self) -> BoxFuture<'_, Result<Vec<ListedSession>, StoreError>> {
        let inner = self.lock();
        ready(Ok(inner
            .sessions
            .iter()
            .map(|record| ListedSession {
                record: record.clone(),
                listing: inner.listings.get(&record.id).cloned(),
            })
            .collect()))
    }

    fn load_session<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, StoreError>> {
        let Some(record) = self.lock().sessions.iter().find(|record| record.id == *id).cloned() else {
            return ready(Ok(None));
        };
        ready(self.decoded(id, |_| true).map(|events| Some(StoredSession { record, events })))
    }

    fn room_events<'a>(
        &'a self,
        session: &'a SessionId,
        room: Room,
        seqs: Range<u64>,
    ) -> BoxFuture<'a, Result<Vec<RoomEvent>, StoreError>> {
        let events = self.decoded(session, |event| event.room == room && seqs.contains(&event.seq));
        ready(events.map(|mut events| {
            events.sort_by_key(|event| event.seq);
            events
        }))
    }
}
