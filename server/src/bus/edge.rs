//! The edge's side: a session that runs on another node, reached over the bus.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use caucus_protocol::api::{Minutes, MinutesRound};
use caucus_protocol::{MemberId, Role, SessionId, close};
use tokio::time::Instant;
use tracing::debug;

use super::wire::{Answer, Call, Traffic};
use super::{Attachment, Bus};
use crate::outbox::{ConnectionId, Outbox};
use crate::session::{ConnectError, JoinAs, JoinError};
use crate::store::StoreError;

/// Why an edge closes a connection whose traffic had a gap.
const GAP: &str = "some of this session's traffic was lost between nodes; reconnect to resume";

/// A session running on node `owner`, as one of this node's connections or HTTP calls
/// reaches it.
#[derive(Debug)]
pub struct RemoteSession {
    bus: Arc<Bus>,
    owner: String,
    session: SessionId,
    /// The sequence number of the last frame this connection sent up.
    sent: AtomicU64,
    /// The sequence number of the last frame the owner was told of.
    told: AtomicU64,
}

impl RemoteSession {
    /// Session `session`, run by node `owner`.
    pub fn new(bus: Arc<Bus>, owner: String, session: SessionId) -> Self {
        Self { bus, owner, session, sent: AtomicU64::new(0), told: AtomicU64::new(0) }
    }

    /// The node running it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Enters a connection of this node, whose frames will arrive in `outbox`.
    pub async fn connect(
        &self,
        member: MemberId,
        resume: BTreeMap<String, u64>,
        outbox: Outbox,
    ) -> Result<(), ConnectError> {
        let conn = outbox.id();
        // Attached first: the welcome may arrive before the answer does.
        self.bus.attached.insert(
            conn,
            Attachment { outbox, owner: self.owner.clone(), next_down: 1, since: Instant::now() },
        );
        let call = Call::Connect {
            session: self.session.clone(),
            member,
            resume,
            edge: self.bus.node.clone(),
            conn,
        };
        let refused = match self.bus.ask(&self.owner, &call).await {
            Some(Answer::Connected) => return Ok(()),
            Some(Answer::Refused { code, reason }) => ConnectError::Relayed { code, reason },
            _ => ConnectError::NotHeld,
        };
        self.bus.attached.remove(&conn);
        Err(refused)
    }

    /// Sends a frame the client sent, as it sent it: the owner decodes it again.
    pub async fn command(&self, connection: ConnectionId, text: &str) -> Result<(), ()> {
        let seq = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let traffic = Traffic::Up {
            edge: self.bus.node.clone(),
            conn: connection,
            seq,
            frame: Bytes::copy_from_slice(text.as_bytes()),
        };
        if self.bus.send(&self.owner, traffic).await { Ok(()) } else { Err(()) }
    }

    /// Sends an empty frame with the next number if frames were sent since the last
    /// time: the owner closes the connection if the one before it never came.
    pub async fn keep_in_step(&self, connection: ConnectionId) {
        let sent = self.sent.load(Ordering::Relaxed);
        if sent > self.told.load(Ordering::Relaxed) {
            let seq = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
            self.told.store(seq, Ordering::Relaxed);
            let traffic =
                Traffic::Up { edge: self.bus.node.clone(), conn: connection, seq, frame: Bytes::new() };
            self.bus.send(&self.owner, traffic).await;
        }
    }

    /// Tells the owner a connection is gone.
    pub async fn disconnect(&self, connection: ConnectionId) {
        self.bus.attached.remove(&connection);
        self.bus.send(&self.owner, Traffic::Gone { edge: self.bus.node.clone(), conn: connection }).await;
    }

    /// Seats a person.
    pub async fn join(
        &self,
        member: MemberId,
        name: String,
        join_as: JoinAs,
        accepted_rules: Option<String>,
    ) -> Result<(), JoinError> {
        let JoinAs { role, secretary } = join_as;
        let call =
            Call::Join { session: self.session.clone(), member, name, role, secretary, accepted_rules };
        match self.bus.ask(&self.owner, &call).await {
            Some(Answer::Joined) => Ok(()),
            Some(Answer::JoinRefused { code, message }) => Err(JoinError::RefusedThere(code, message)),
            _ => Err(JoinError::Unavailable),
        }
    }

    /// A person's role, if they are in the session; `None` too when the owner cannot
    /// be asked.
    pub async fn role_of(&self, member: MemberId) -> Option<Role> {
        match self.bus.ask(&self.owner, &Call::RoleOf { session: self.session.clone(), member }).await {
            Some(Answer::Role { role }) => role,
            _ => None,
        }
    }

    /// The minutes, for `member`.
    pub async fn minutes(&self, member: MemberId) -> Result<Option<Minutes>, StoreError> {
        match self.bus.ask(&self.owner, &Call::Minutes { session: self.session.clone(), member }).await {
            Some(Answer::Minutes { minutes }) => Ok(minutes),
            _ => Err(StoreError::new("the node running the session did not answer")),
        }
    }

    /// Each round's topic and carried points.
    pub async fn rounds(&self) -> Option<Vec<MinutesRound>> {
        match self.bus.ask(&self.owner, &Call::Rounds { session: self.session.clone() }).await {
            Some(Answer::Rounds { rounds }) => rounds,
            _ => None,
        }
    }

    /// Erases `member`, as `by` would.
    pub async fn erase(&self, by: MemberId, member: MemberId) -> Result<(), String> {
        match self.bus.ask(&self.owner, &Call::Erase { session: self.session.clone(), by, member }).await {
            Some(Answer::Erased { result }) => result,
            _ => Err("the node running the session did not answer; try again".to_owned()),
        }
    }
}

impl Bus {
    /// Frames from an owner for connection `conn` of this node.
    pub(super) fn on_down(&self, conn: ConnectionId, seq: u64, frames: Vec<Bytes>) {
        let Some(mut attachment) = self.attached.get_mut(&conn) else { return };
        if seq != attachment.next_down {
            debug!(conn, seq, expected = attachment.next_down, "a gap in a relayed connection's traffic");
            metrics::counter!(crate::metrics::BUS_GAPS).increment(1);
            attachment.outbox.close(close::GOING_AWAY, GAP);
            drop(attachment);
            self.attached.remove(&conn);
            return;
        }
        attachment.next_down += 1;
        for frame in frames {
            // The owner sent exactly what its actor queued: UTF-8 text frames.
            let Ok(text) = Utf8Bytes::try_from(frame) else {
                attachment.outbox.close(close::GOING_AWAY, GAP);
                return;
            };
            if !attachment.outbox.deliver(&text) {
                return;
            }
        }
    }
}
