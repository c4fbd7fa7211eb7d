//! What a client sends: one JSON object per WebSocket text frame.
//!
//! Every frame has a `type` naming the [`Command`], the command's own fields, and an
//! optional `client_id` that the server echoes in its `ack` or `error`. Unknown, missing
//! and repeated fields are refused, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ClientId, MemberId, RoomName, SessionId};
use crate::session::{Caucus, Role};

/// One frame from a client: a command plus its optional idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    /// Echoed in the reply. For `say` it also makes retries idempotent.
    pub client_id: Option<ClientId>,
    /// What the client asks for.
    pub command: Command,
}

/// Why a frame could not be decoded. The text names the problem for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong, such as ``unknown field `colour` ``.
    pub message: String,
    /// The frame's `client_id`, when it could still be read.
    pub client_id: Option<ClientId>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

impl ClientFrame {
    /// A frame without a `client_id`.
    pub fn new(command: Command) -> Self {
        Self { client_id: None, command }
    }

    /// A frame with a `client_id`.
    pub fn with_id(client_id: ClientId, command: Command) -> Self {
        Self { client_id: Some(client_id), command }
    }

    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let frame: TopLevel = serde_json::from_str(text).map_err(|err| DecodeError {
            message: if err.is_data() {
                err.to_string()
            } else {
                format!("the frame is not valid JSON: {err}")
            },
            client_id: None,
        })?;
        let TopLevel::Object(mut fields) = frame else {
            return Err(DecodeError {
                message: "a frame must be a JSON object with a `type` field".into(),
                client_id: None,
            });
        };
        let client_id = match fields.remove("client_id") {
            None | Some(Value::Null) => None,
            Some(raw) => Some(serde_json::from_value::<ClientId>(raw).map_err(|err| DecodeError {
                message: format!("invalid `client_id`: {err}"),
                client_id: None,
            })?),
        };
        if !fields.contains_key("type") {
            return Err(DecodeError { message: "missing field `type`".into(), client_id });
        }
        let command = Command::deserialize(Value::Object(fields))
            .map_err(|err| DecodeError { message: err.to_string(), client_id: client_id.clone() })?;
        Ok(Self { client_id, command })
    }

    /// Encodes the frame as the JSON text a client sends.
    pub fn encode(&self) -> String {
        let mut value = serde_json::to_value(&self.command).expect("commands always serialize");
        if let (Some(id), Value::Object(fields)) = (&self.client_id, &mut value) {
            fields.insert("client_id".into(), Value::String(id.to_string()));
        }
        value.to_string()
    }
}

/// A frame's outermost JSON value: an object whose keys are each given once (a JSON
/// map would keep the last of a repeated key, and the frame would mean what the sender
/// may not have meant), or anything else, which is no frame.
enum TopLevel {
    Object(Map<String, Value>),
    Other,
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Outermost;
        impl<'de> Visitor<'de> for Outermost {
            type Value = TopLevel;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<TopLevel, A::Error> {
                let mut fields = Map::new();
                while let Some((key, value)) = entries.next_entry::<String, Value>()? {
                    if fields.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    fields.insert(key, value);
                }
                Ok(TopLevel::Object(fields))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<TopLevel, A::Error> {
                while items.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TopLevel::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }

            fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }

            fn visit_unit<E>(self) -> Result<TopLevel, E> {
                Ok(TopLevel::Other)
            }
        }
        deserializer.deserialize_any(Outermost)
    }
}

/// Something a client asks the server to do. The first frame on a connection must be
/// [`Command::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Authenticates the connection and enters a session. The token travels here, never
    /// in the URL.
    Hello {
        /// The session to enter.
        session: SessionId,
        /// A token from `caucus token facilitator` or `POST /api/join`. Left out (or
        /// empty) in a browser that is signed in: the sign-in cookie sent with the
        /// upgrade then says who this is.
        #[serde(default)]
        token: String,
        /// Resume cursors: for each room, the last sequence number this client saw.
        /// The server replays what came after, in each room the person may still read.
        #[serde(default)]
        resume: BTreeMap<String, u64>,
    },
    /// Posts a message to a room.
    Say {
        /// `plenary`, or the sender's own caucus room.
        room: RoomName,
        /// The message, stored and shown byte for byte.
        text: String,
    },
    /// Tells a room's other readers that the sender is typing. Not stored.
    Typing {
        /// The room being typed in.
        room: RoomName,
    },
    /// Proposes a topic in the plenary.
    ProposeTopic {
        /// The proposed topic.
        text: String,
    },
    /// Casts or withdraws a vote for a topic proposal.
    VoteTopic {
        /// The proposal's id.
        proposal: u32,
        /// `true` to vote for it, `false` to withdraw the vote.
        vote: bool,
    },
    /// Facilitator: sets the topic for the next round (or the current one).
    SetTopic {
        /// The topic.
        text: String,
    },
    /// Chooses one's own caucus, or none, when the session allows self-choice. The
    /// choice is private: only the caucus and the facilitators learn of it.
    ChooseCaucus {
        /// The caucus, or `null` for none.
        caucus: Option<Caucus>,
    },
    /// Facilitator: seats a person in a caucus, or takes them out of one (`null`).
    Move {
        /// Who to move.
        member: MemberId,
        /// Their new caucus, or `null` for the plenary only.
        caucus: Option<Caucus>,
    },
    /// Facilitator: opens the caucuses for a new round.
    OpenCaucuses {
        /// The round's length in seconds; `null` for an untimed round.
        duration_secs: Option<u32>,
    },
    /// Facilitator: adds time to the running round.
    ExtendRound {
        /// Seconds to add.
        secs: u32,
    },
    /// Facilitator: closes the caucuses of `round` and carries their points to the
    /// plenary. Repeating it for the same round changes nothing.
    Reconvene {
        /// The round to reconvene; guards against a stale double click.
        round: u32,
    },
    /// Facilitator: ends the session. It becomes read-only.
    EndSession {},
    /// Facilitator: posts an announcement to every room.
    Broadcast {
        /// The announcement.
        text: String,
    },
    /// Caucus member: asks for a facilitator. Facilitators learn which caucus asks,
    /// nothing more.
    AskForHelp {},
    /// Facilitator: answers a caucus's request for help ("on my way"). The caucus sees
    /// who is coming, and the other facilitators see that it is answered.
    AnswerHelp {
        /// The caucus that asked.
        caucus: Caucus,
    },
    /// Facilitator: removes a person from the session.
    Remove {
        /// Who to remove.
        member: MemberId,
    },
    /// Facilitator: makes a person a facilitator or a member.
    SetRole {
        /// Whose role changes.
        member: MemberId,
        /// The new role.
        role: Role,
    },
    /// Facilitator: gives or takes the secretary flag, which allows exporting minutes.
    SetSecretary {
        /// Who.
        member: MemberId,
        /// Whether they are secretary.
        secretary: bool,
    },
    /// Caucus member: makes a caucus message a feedback point.
    Flag {
        /// The caucus room holding the message.
        room: RoomName,
        /// The message's sequence number.
        seq: u64,
    },
    /// Pages back through a room's history. The reply is a `history` message.
    History {
        /// A room the sender may read.
        room: RoomName,
        /// Return events before this sequence number; `null` for the latest.
        before: Option<u64>,
        /// How many events at most, 1 to 500.
        limit: u32,
    },
    /// Facilitator: erases a person's data in this session: their name and the text of
    /// their messages, proposals and announcements. They are removed, too. Points their
    /// caucus carried stay, attributed to the caucus.
    EraseMember {
        /// Whose data to erase.
        member: MemberId,
    },
    /// Caucus member: writes a feedback point directly.
    WritePoint {
        /// The caucus room.
        room: RoomName,
        /// The point's text.
        text: String,
    },
    /// Caucus member: rewrites a point.
    EditPoint {
        /// The caucus room.
        room: RoomName,
        /// The point's id.
        point: u32,
        /// The new text.
        text: String,
    },
    /// Caucus member: withdraws a point. It will not be carried.
    WithdrawPoint {
        /// The caucus room.
        room: RoomName,
        /// The point's id.
        point: u32,
    },
    /// Caucus member: brings back a point the caucus withdrew in this round, where it
    /// was: the undo of `withdraw_point`.
    RestorePoint {
        /// The caucus room.
        room: RoomName,
        /// The withdrawn point's id.
        point: u32,
    },
    /// Caucus member: puts the caucus's points in a new order, the order they carry in.
    ReorderPoints {
        /// The caucus room.
        room: RoomName,
        /// Every current point id, once each, in the new order.
        order: Vec<u32>,
    },
    /// Caucus member: agrees with a point, or takes the agreement back.
    AgreePoint {
        /// The caucus room.
        room: RoomName,
        /// The point's id.
        point: u32,
        /// `true` to agree, `false` to take it back.
        agree: bool,
    },
}

impl Command {
    /// The command's `type` on the wire, for logs and metrics. Never the content.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Hello { .. } => "hello",
            Command::Say { .. } => "say",
            Command::Typing { .. } => "typing",
            Command::ProposeTopic { .. } => "propose_topic",
            Command::VoteTopic { .. } => "vote_topic",
            Command::SetTopic { .. } => "set_topic",
            Command::ChooseCaucus { .. } => "choose_caucus",
            Command::Move { .. } => "move",
            Command::OpenCaucuses { .. } => "open_caucuses",
            Command::ExtendRound { .. } => "extend_round",
            Command::Reconvene { .. } => "reconvene",
            Command::EndSession {} => "end_session",
            Command::Broadcast { .. } => "broadcast",
            Command::AskForHelp {} => "ask_for_help",
            Command::AnswerHelp { .. } => "answer_help",
            Command::Remove { .. } => "remove",
            Command::SetRole { .. } => "set_role",
            Command::SetSecretary { .. } => "set_secretary",
            Command::Flag { .. } => "flag",
            Command::WritePoint { .. } => "write_point",
            Command::History { .. } => "history",
            Command::EraseMember { .. } => "erase_member",
            Command::EditPoint { .. } => "edit_point",
            Command::WithdrawPoint { .. } => "withdraw_point",
            Command::RestorePoint { .. } => "restore_point",
            Command::ReorderPoints { .. } => "reorder_points",
            Command::AgreePoint { .. } => "agree_point",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_names_unknown_missing_and_mistyped_fields() {
        let err =
            ClientFrame::decode(r#"{"type":"say","room":"plenary","text":"hi","colour":1}"#).unwrap_err();
        assert!(err.message.contains("unknown field `colour`"), "{err}");

        let err = ClientFrame::decode(r#"{"type":"say","room":"plenary"}"#).unwrap_err();
        assert!(err.message.contains("missing field `text`"), "{err}");

        let err = ClientFrame::decode(r#"{"type":"shout"}"#).unwrap_err();
        assert!(err.message.contains("unknown variant `shout`"), "{err}");

        let err = ClientFrame::decode(r#"{"type":"end_session","now":true}"#).unwrap_err();
        assert!(err.message.contains("unknown field `now`"), "{err}");

        let err = ClientFrame::decode("not json").unwrap_err();
        assert!(err.message.starts_with("the frame is not valid JSON"), "{err}");

        // A repeated field is refused, not read as its last value.
        let err =
            ClientFrame::decode(r#"{"type":"say","room":"plenary","text":"x","text":"y"}"#).unwrap_err();
        assert!(err.message.starts_with("duplicate field `text`"), "{err}");
        for other in ["[1, {\"type\": \"say\"}]", "\"say\"", "7", "null", "true"] {
            let err = ClientFrame::decode(other).unwrap_err();
            assert!(err.message.starts_with("a frame must be a JSON object"), "{other}: {err}");
        }

        let err = ClientFrame::decode(r#"{"room":"plenary","client_id":"c1"}"#).unwrap_err();
        assert_eq!(err.message, "missing field `type`");
        assert_eq!(err.client_id.unwrap().as_str(), "c1");
    }

    #[test]
    fn client_id_round_trips() {
        let frame = ClientFrame::with_id(
            ClientId::new("c-1").unwrap(),
            Command::Say { room: RoomName("plenary".into()), text: "hello".into() },
        );
        assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
    }
}
