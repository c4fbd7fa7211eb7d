//! What the server knows of a session without loading it: enough to list it, to check
//! who facilitates it, and to wake it when its time comes.
//!
//! A session's actor runs only while the session is in use. The listing is kept in the
//! store beside the session's record, written in the same transaction as the events
//! that change it, so that start-up reads listings, never histories.

use caucus_protocol::{EventBody, MemberId, Phase, Role};
use serde::{Deserialize, Serialize};

use super::state::Session;

/// A session as the server lists it while its actor is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Where the session is in its flow.
    pub phase: Phase,
    /// Its facilitators, in join order.
    #[serde(default)]
    pub facilitators: Vec<MemberId>,
    /// People a facilitator removed: they are no longer in the session.
    #[serde(default)]
    pub removed: Vec<MemberId>,
    /// When a round's warning or end is due, in Unix milliseconds.
    #[serde(default)]
    pub timer_at: Option<u64>,
    /// When the session ended, if it has.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// Whether its caucus rooms still hold anything, to be purged once the retention
    /// (which the operator may change meanwhile) has run out since the end.
    #[serde(default)]
    pub private_content: bool,
}

impl Default for Listing {
    fn default() -> Self {
        Self {
            phase: Phase::Gathering,
            facilitators: Vec::new(),
            removed: Vec::new(),
            timer_at: None,
            ended_at: None,
            private_content: false,
        }
    }
}

impl Listing {
    /// The listing of `session` now.
    pub fn of(session: &Session) -> Self {
        let facilitators = session
            .members()
            .filter(|member| member.role == Role::Facilitator)
            .map(|member| member.id.clone());
        Self {
            phase: session.phase(),
            facilitators: facilitators.collect(),
            removed: session.removed().cloned().collect(),
            timer_at: session.next_deadline(),
            ended_at: session.ended_at(),
            private_content: session.has_private_content(),
        }
    }

    /// When the session must next run on its own: a round's warning or end, or the
    /// purge of an ended session's caucus rooms `retention_ms` after its end.
    pub fn wake_at(&self, retention_ms: u64) -> Option<u64> {
        let purge_at =
            self.ended_at.filter(|_| self.private_content).map(|ended| ended.saturating_add(retention_ms));
        [self.timer_at, purge_at].into_iter().flatten().min()
    }

    /// Whether the session has ended.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// `member`'s role, for someone known to have joined the session; `None` if a
    /// facilitator removed them.
    pub fn role_of(&self, member: &MemberId) -> Option<Role> {
        if self.facilitators.contains(member) {
            Some(Role::Facilitator)
        } else if self.removed.contains(member) {
            None
        } else {
            Some(Role::Member)
        }
    }

    /// Whether an event can change a listing: most events (messages, points, typing)
    /// cannot, and the actor skips recomputing it for them.
    pub fn may_change(body: &EventBody) -> bool {
        matches!(
            body,
            EventBody::Joined { .. }
                | EventBody::RoleChanged { .. }
                | EventBody::Removed { .. }
                | EventBody::CaucusesOpened { .. }
                | EventBody::TimerWarning { .. }
                | EventBody::RoundExtended { .. }
                | EventBody::TimeUp { .. }
                | EventBody::Reconvened { .. }
                | EventBody::SessionEnded {}
        )
    }
}
