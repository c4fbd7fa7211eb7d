//! The shared vocabulary of a session: its caucuses and rooms, its phase, people's
//! roles, and the session settings.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::MemberId;

/// One of the session's two caucuses. Their labels are set when the session is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Caucus {
    /// The first caucus, room `caucus_a`.
    A,
    /// The second caucus, room `caucus_b`.
    B,
}

impl Caucus {
    /// Both caucuses, in order.
    pub const BOTH: [Caucus; 2] = [Caucus::A, Caucus::B];

    /// The caucus's room.
    pub fn room(self) -> Room {
        Room::Caucus(self)
    }
}

/// A room: a stream of events with its own sequence numbers and its own readers.
///
/// On the wire a room is one of `plenary`, `caucus_a`, `caucus_b` or `facilitators`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Room {
    /// Everyone in the session reads the plenary.
    Plenary,
    /// Only the caucus's current members read it.
    Caucus(Caucus),
    /// The facilitators' desk: membership changes, help requests and round notices.
    /// Only facilitators read it, and it never holds caucus content.
    Facilitators,
}

impl Room {
    /// Every room of a session.
    pub const ALL: [Room; 4] =
        [Room::Plenary, Room::Caucus(Caucus::A), Room::Caucus(Caucus::B), Room::Facilitators];

    /// The wire name of the room.
    pub fn as_str(self) -> &'static str {
        match self {
            Room::Plenary => "plenary",
            Room::Caucus(Caucus::A) => "caucus_a",
            Room::Caucus(Caucus::B) => "caucus_b",
            Room::Facilitators => "facilitators",
        }
    }

    /// The room with this wire name.
    pub fn from_name(name: &str) -> Option<Room> {
        Room::ALL.into_iter().find(|room| room.as_str() == name)
    }

    /// The caucus this room belongs to, if it is a caucus room.
    pub fn caucus(self) -> Option<Caucus> {
        match self {
            Room::Caucus(caucus) => Some(caucus),
            _ => None,
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Room {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Room {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Room::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown room `{name}`, expected plenary, caucus_a, caucus_b or facilitators"
            ))
        })
    }
}

/// Where the session is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Phase {
    /// Everyone is in the plenary, choosing a topic and caucuses.
    Gathering,
    /// Round `round` is running: each seated person is in their caucus room.
    Caucusing {
        /// The round number, from 1.
        round: u32,
    },
    /// Round `round` has been reconvened: everyone is back in the plenary.
    Reconvened {
        /// The round that was reconvened.
        round: u32,
    },
    /// The session is over and read-only.
    Ended,
}

impl Phase {
    /// The latest round that was opened, or 0 before the first.
    pub fn round(self) -> u32 {
        match self {
            Phase::Caucusing { round } | Phase::Reconvened { round } => round,
            Phase::Gathering | Phase::Ended => 0,
        }
    }
}

/// A person's role in a session. It comes from the server's own table, never a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates and runs the session: topic, rounds, moves, broadcasts, reconvene, end.
    Facilitator,
    /// Takes part: talks, chooses a caucus, flags points.
    Member,
}

/// A session's settings, fixed when it is created. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Members may choose their own caucus. When off, only facilitators seat people.
    pub self_choice: bool,
    /// When a round's timer runs out, reconvene at once. When off, the facilitators
    /// are told (`time_up`) and decide.
    pub auto_reconvene: bool,
    /// A point carries at reconvene only when a member other than its author agrees.
    pub carry_needs_agreement: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { self_choice: true, auto_reconvene: false, carry_needs_agreement: false }
    }
}

/// The display labels of the two caucuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaucusLabels {
    /// Label of caucus `a`.
    pub a: String,
    /// Label of caucus `b`.
    pub b: String,
}

impl CaucusLabels {
    /// The label of `caucus`.
    pub fn of(&self, caucus: Caucus) -> &str {
        match caucus {
            Caucus::A => &self.a,
            Caucus::B => &self.b,
        }
    }
}

/// A person in a session, as everyone in the plenary sees them. It never says which
/// caucus they are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Their id.
    pub id: MemberId,
    /// Their display name, exactly as they typed it.
    pub name: String,
    /// Facilitator or member.
    pub role: Role,
    /// Whether they keep the minutes.
    pub secretary: bool,
}

/// A feedback point in a caucus, as that caucus's members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Its number within the caucus.
    pub id: u32,
    /// The point's text.
    pub text: String,
    /// Who wrote its current wording: whoever flagged or wrote it, or last edited it.
    /// Only the caucus sees this; carried points have no author.
    pub by: MemberId,
    /// The sequence number of the caucus message it was flagged from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<u64>,
    /// Members other than the author who agree with it.
    pub agreed_by: Vec<MemberId>,
}

/// A topic proposal in the plenary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its number within the session.
    pub id: u32,
    /// The proposed topic.
    pub text: String,
    /// Who proposed it.
    pub by: MemberId,
    /// How many people vote for it.
    pub votes: u32,
}
