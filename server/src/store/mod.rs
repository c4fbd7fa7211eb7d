//! Where sessions' events are kept. The session actor appends every event here and
//! acknowledges nothing until the append succeeds.
//!
//! [`MemoryStore`] keeps everything in memory and is what the server runs on today.
//! A durable store implements the same trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use caucus_protocol::{RoomEvent, SessionId};
use futures::future::BoxFuture;

/// Why the store could not take a write. The command is refused with `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the store is unavailable: {reason}")]
pub struct StoreError {
    /// What went wrong, for the operator's log. Never contains message text.
    pub reason: String,
}

/// A place to keep sessions' events.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `events` to `session`, all or nothing. Returns once they are kept.
    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Keeps events in memory, for as long as the process lives.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    sessions: Arc<Mutex<HashMap<SessionId, Vec<RoomEvent>>>>,
}

impl MemoryStore {
    /// Every event stored for `session`, in the order they were appended.
    pub fn events(&self, session: &SessionId) -> Vec<RoomEvent> {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        sessions.get(session).cloned().unwrap_or_default()
    }
}

impl Store for MemoryStore {
    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        sessions
            .entry(session.clone())
            .or_default()
            .extend_from_slice(events);
        Box::pin(std::future::ready(Ok(())))
    }
}
