//! What the server sends: one JSON object per WebSocket text frame, tagged by `type`.
//!
//! Room events ([`RoomEvent`]) are stored and numbered per room; a client keeps the
//! last number it saw in each room and sends it back in `hello` to resume. Everything
//! else (`welcome`, `ack`, `error`, `presence`, `typing`, `seat`) is sent once and not
//! replayed.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::ids::{ClientId, MemberId, SessionId};
use crate::session::{Caucus, CaucusLabels, Member, Phase, Point, Proposal, Role, Room, Settings};

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The reply to a good `hello`: a snapshot of everything this person may see. The
    /// events each [`RoomCursor`] promises follow it.
    Welcome(Box<Welcome>),
    /// A stored, numbered event in a room this person reads.
    Event(RoomEvent),
    /// A command succeeded.
    Ack(Ack),
    /// A command was refused. Nothing changed.
    Error(ErrorFrame),
    /// Who came online and who went offline since the last `presence`. Changes are
    /// gathered for a moment and sent together, so a crowd arriving at once costs each
    /// person a few frames, not one per arrival.
    Presence {
        /// People who now have at least one connection open.
        online: Vec<MemberId>,
        /// People whose last connection closed.
        offline: Vec<MemberId>,
    },
    /// Someone is typing in a room this person reads.
    Typing {
        /// The room.
        room: Room,
        /// Who is typing.
        member: MemberId,
    },
    /// The reply to `history`: a page of a room's events, oldest first.
    History {
        /// The room.
        room: Room,
        /// The events, oldest first.
        events: Vec<RoomEvent>,
        /// Whether older events the person may read remain.
        more: bool,
    },
    /// This person's own caucus changed (they chose, or a facilitator moved them). It
    /// carries their new caucus's members and current points, or `null` for none.
    Seat {
        /// Their caucus now, or `null` for none.
        caucus: Option<CaucusView>,
    },
}

/// The snapshot sent in reply to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version, currently 1.
    pub protocol: u32,
    /// The person this connection belongs to.
    pub you: Member,
    /// Their caucus, if they have one.
    pub seat: Option<Caucus>,
    /// The session's shared state.
    pub session: SessionInfo,
    /// Everyone in the session. It never says who is in which caucus.
    pub members: Vec<Member>,
    /// Who is online now.
    pub online: Vec<MemberId>,
    /// The rooms this person may read, and which of their events follow.
    pub rooms: Vec<RoomCursor>,
    /// Their caucus's members and points, when they have a caucus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caucus: Option<CaucusView>,
    /// Facilitators only: who sits in which caucus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<Vec<SeatView>>,
}

/// The part of a session that everyone in it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Its id.
    pub id: SessionId,
    /// Its title.
    pub title: String,
    /// The caucus labels.
    pub caucuses: CaucusLabels,
    /// Its settings.
    pub settings: Settings,
    /// Ground rules that members accept when they join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_rules: Option<String>,
    /// Where the session is in its flow.
    pub phase: Phase,
    /// The topic set for the current or next round.
    pub topic: Option<String>,
    /// When the running round ends, in Unix milliseconds; `null` if untimed.
    pub deadline: Option<u64>,
    /// Topic proposals, in order.
    pub proposals: Vec<Proposal>,
}

/// One room a person may read, and the events about to be replayed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCursor {
    /// The room.
    pub room: Room,
    /// The room's latest sequence number.
    pub head: u64,
    /// Events with sequence numbers after this one, up to `head`, follow the welcome.
    pub from: u64,
    /// `true` when the client must drop what it holds for this room and start again
    /// from the events that follow: its cursor was missing, invalid, or reaches back
    /// before it could read the room.
    pub reset: bool,
}

/// A caucus as its own members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaucusView {
    /// Which caucus.
    pub caucus: Caucus,
    /// Its current members.
    pub members: Vec<MemberId>,
    /// Its feedback points for the current round, in carry order.
    pub points: Vec<Point>,
}

/// Where one person sits, as facilitators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatView {
    /// Who.
    pub member: MemberId,
    /// Their caucus, or `null` for none.
    pub caucus: Option<Caucus>,
}

/// A stored, numbered event. The fields of [`EventBody`] sit beside `room`, `seq` and
/// `at`, with its `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEvent {
    /// The room it belongs to.
    pub room: Room,
    /// Its number within the room, from 1, with no gaps.
    pub seq: u64,
    /// When it happened, in Unix milliseconds.
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// An event with its body serialized once, as it is stored: the same text is written
/// to the store and spliced into the `event` frame every reader gets. Serializing a
/// [`RoomEvent`] with its flattened body goes through serde's buffering of the body, so
/// a message's text used to be copied and escaped twice before anyone read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The room it belongs to.
    pub room: Room,
    /// Its number within the room.
    pub seq: u64,
    /// When it happened, in Unix milliseconds.
    pub at: u64,
    /// The body as JSON: an object whose first member is `kind`.
    pub body: String,
}

impl EncodedEvent {
    /// Serializes `event`'s body.
    pub fn of(event: &RoomEvent) -> Self {
        Self {
            room: event.room,
            seq: event.seq,
            at: event.at,
            body: serde_json::to_string(&event.body).expect("event bodies always serialize"),
        }
    }

    /// The `event` frame, byte for byte what serializing
    /// `ServerMessage::Event(event)` gives (the golden tests check it).
    pub fn frame(&self) -> String {
        use std::fmt::Write as _;
        let members = self.body.strip_prefix('{').expect("a body is a JSON object");
        let mut frame = String::with_capacity(self.body.len() + 64);
        let _ = write!(
            frame,
            r#"{{"type":"event","room":"{}","seq":{},"at":{}"#,
            self.room.as_str(),
            self.seq,
            self.at
        );
        if members != "}" {
            frame.push(',');
        }
        frame.push_str(members);
        frame
    }

    /// The event back, from its stored form.
    pub fn decode(&self) -> Result<RoomEvent, serde_json::Error> {
        Ok(RoomEvent { room: self.room, seq: self.seq, at: self.at, body: serde_json::from_str(&self.body)? })
    }
}

/// What happened in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// Plenary: someone joined the session.
    Joined {
        /// Who.
        member: Member,
        /// `sha256:` and the hex SHA-256 of the ground rules this person accepted to
        /// join; absent when there were none to accept (and for facilitators, who set
        /// them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ground_rules: Option<String>,
    },
    /// Any room: a message.
    Message {
        /// Who said it.
        from: MemberId,
        /// What they said, byte for byte.
        text: String,
        /// The sender's idempotency key, so that the sender can match its own retries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// Plenary: a topic was proposed.
    TopicProposed {
        /// The proposal.
        proposal: Proposal,
    },
    /// Plenary: the votes for a proposal changed.
    TopicVoted {
        /// The proposal's id.
        proposal: u32,
        /// Who voted or withdrew.
        by: MemberId,
        /// Whether they now vote for it.
        vote: bool,
        /// How many votes it has now.
        votes: u32,
    },
    /// Plenary: a facilitator set the topic.
    TopicSet {
        /// The topic.
        text: String,
    },
    /// Plenary: a round began; seated people are now in their caucus rooms.
    CaucusesOpened {
        /// The round number.
        round: u32,
        /// The round's topic.
        topic: Option<String>,
        /// When the round ends, in Unix milliseconds; `null` if untimed.
        deadline: Option<u64>,
    },
    /// Plenary: the round ends soon.
    TimerWarning {
        /// The round.
        round: u32,
        /// When it ends, in Unix milliseconds.
        deadline: u64,
    },
    /// Plenary: a facilitator added time.
    RoundExtended {
        /// The round.
        round: u32,
        /// The new end, in Unix milliseconds.
        deadline: u64,
    },
    /// Facilitators: the round's time ran out and the session does not reconvene on
    /// its own.
    TimeUp {
        /// The round.
        round: u32,
    },
    /// Plenary: the round was reconvened; both caucuses are closed and everyone is in
    /// the plenary. The `feedback` events follow.
    Reconvened {
        /// The round.
        round: u32,
        /// `true` when the server reconvened on its own because the round's time ran
        /// out (`auto_reconvene`); absent when a facilitator reconvened or ended it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        time_up: bool,
    },
    /// Plenary: the points a caucus carried out of a round, in its order. They are
    /// attributed to the caucus, never to a person.
    Feedback {
        /// The round.
        round: u32,
        /// The caucus.
        caucus: Caucus,
        /// The caucus's label.
        label: String,
        /// The carried points' texts, in order.
        points: Vec<String>,
    },
    /// The plenary and both caucus rooms: a facilitator's announcement, one copy in each.
    Announcement {
        /// The facilitator.
        from: MemberId,
        /// The announcement.
        text: String,
    },
    /// Plenary: a facilitator removed someone from the session.
    Removed {
        /// Who.
        member: MemberId,
    },
    /// Plenary: a facilitator erased this person's data. Their name and the text of
    /// everything they said now read `(erased)`, in history too.
    Erased {
        /// Whose data was erased.
        member: MemberId,
    },
    /// Plenary: someone's role or secretary flag changed.
    RoleChanged {
        /// Who.
        member: MemberId,
        /// Their role now.
        role: Role,
        /// Whether they are secretary now.
        secretary: bool,
    },
    /// Plenary: the session ended and is read-only.
    SessionEnded {},
    /// Facilitators: someone's caucus changed.
    Seated {
        /// Who.
        member: MemberId,
        /// Their caucus now, or `null` for none.
        caucus: Option<Caucus>,
    },
    /// A caucus room: someone joined this caucus.
    CaucusJoined {
        /// Who.
        member: MemberId,
    },
    /// A caucus room: someone left this caucus.
    CaucusLeft {
        /// Who.
        member: MemberId,
    },
    /// Facilitators and the asking caucus: a caucus asks for a facilitator. The
    /// facilitators' copy has no `by`.
    HelpRequested {
        /// The caucus asking.
        caucus: Caucus,
        /// Who asked; only in the caucus's own copy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<MemberId>,
    },
    /// Facilitators and the caucus that asked: a facilitator answered its request for
    /// help and is on the way.
    HelpAnswered {
        /// The caucus that asked.
        caucus: Caucus,
        /// The facilitator who answered.
        by: MemberId,
    },
    /// Facilitators: how many live points a caucus holds now, after one was added,
    /// withdrawn or brought back, or after the round's points were carried. It carries
    /// the count only, never a point's text or who wrote it, so that a facilitator
    /// outside the caucus can follow its progress without reading it.
    PointsCounted {
        /// The caucus.
        caucus: Caucus,
        /// Its live points now.
        count: u32,
    },
    /// A caucus room: a point was flagged or written.
    PointAdded {
        /// The point.
        point: Point,
    },
    /// A caucus room: a point was rewritten.
    PointEdited {
        /// The point's id.
        point: u32,
        /// Its new text.
        text: String,
        /// Who rewrote it.
        by: MemberId,
    },
    /// A caucus room: a point was withdrawn.
    PointWithdrawn {
        /// The point's id.
        point: u32,
        /// Who withdrew it.
        by: MemberId,
    },
    /// A caucus room: a withdrawn point came back, as it was, at its old place.
    PointRestored {
        /// The point, as it was when withdrawn.
        point: Point,
        /// Who brought it back.
        by: MemberId,
    },
    /// A caucus room: the points were put in a new order.
    PointsReordered {
        /// Every point id, in the new order.
        order: Vec<u32>,
        /// Who reordered them.
        by: MemberId,
    },
    /// A caucus room: someone agreed with a point, or took the agreement back.
    PointAgreed {
        /// The point's id.
        point: u32,
        /// Who.
        by: MemberId,
        /// Whether they agree now.
        agree: bool,
    },
}

/// The reply to a command that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command's `client_id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
    /// For `say`: the room of the stored message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<Room>,
    /// For `say`: the stored message's sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// The reply to a command that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// A stable code a program can act on.
    pub code: ErrorCode,
    /// A sentence for a person, saying what to do next.
    pub message: String,
    /// The command's `client_id`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
}
