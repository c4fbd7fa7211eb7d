//! What nodes say to each other on the bus: subjects, headers and payloads.
//!
//! A connection's traffic is carried as plain NATS messages with a few headers, and its
//! frames as the bytes the client sent or will receive, never re-encoded. Requests that
//! need an answer (entering a session, the HTTP API's calls) are small JSON documents.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use caucus_protocol::api::{Minutes, MinutesRound};
use caucus_protocol::{ErrorCode, MemberId, Role, SessionId};
use serde::{Deserialize, Serialize};

use crate::outbox::ConnectionId;

/// Every node's heartbeat, once a second: its node id as the payload.
pub const HEARTBEAT: &str = "caucus.heartbeat";

const KIND: &str = "Caucus-Kind";
const EDGE: &str = "Caucus-Edge";
const CONN: &str = "Caucus-Conn";
const SEQ: &str = "Caucus-Seq";
const CODE: &str = "Caucus-Code";

/// Node ids may hold characters a subject may not (a host name with dots).
fn subject_token(node: &str) -> String {
    node.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Where a node receives connection traffic: frames from edges, and frames for its own
/// connections from owners.
pub fn inbox(node: &str) -> String {
    format!("caucus.node.{}", subject_token(node))
}

/// Where a node answers requests.
pub fn requests(node: &str) -> String {
    format!("caucus.node.{}.rpc", subject_token(node))
}

/// One message of a connection's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traffic {
    /// Edge to owner: a frame the client sent, `seq` counting from 1 per connection.
    Up { edge: String, conn: ConnectionId, seq: u64, frame: Bytes },
    /// Edge to owner: the client is gone.
    Gone { edge: String, conn: ConnectionId },
    /// Owner to edge: frames for the client, `seq` counting from 1 per connection.
    Down { conn: ConnectionId, seq: u64, frames: Vec<Bytes> },
    /// Owner to edge: close the client with this code and reason.
    Close { conn: ConnectionId, code: u16, reason: String },
}

impl Traffic {
    /// The headers and payload that carry it.
    pub fn encode(self) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        let payload = match self {
            Traffic::Up { edge, conn, seq, frame } => {
                headers.insert(KIND, "up");
                headers.insert(EDGE, edge);
                headers.insert(CONN, conn.to_string());
                headers.insert(SEQ, seq.to_string());
                frame
            }
            Traffic::Gone { edge, conn } => {
                headers.insert(KIND, "gone");
                headers.insert(EDGE, edge);
                headers.insert(CONN, conn.to_string());
                Bytes::new()
            }
            Traffic::Down { conn, seq, frames } => {
                headers.insert(KIND, "down");
                headers.insert(CONN, conn.to_string());
                headers.insert(SEQ, seq.to_string());
                let mut payload = BytesMut::with_capacity(frames.iter().map(|frame| frame.len() + 4).sum());
                for frame in frames {
                    payload.put_u32(u32::try_from(frame.len()).unwrap_or(u32::MAX));
                    payload.put(frame);
                }
                payload.freeze()
            }
            Traffic::Close { conn, code, reason } => {
                headers.insert(KIND, "close");
                headers.insert(CONN, conn.to_string());
                headers.insert(CODE, code.to_string());
                Bytes::from(reason)
            }
        };
        (headers, payload)
    }

    /// Reads a message back; `None` for anything malformed, which is dropped.
    pub fn decode(headers: Option<&HeaderMap>, mut payload: Bytes) -> Option<Self> {
        let headers = headers?;
        let text = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
        let number = |name: &str| headers.get(name)?.as_str().parse::<u64>().ok();
        let conn = number(CONN)?;
        match headers.get(KIND)?.as_str() {
            "up" => Some(Traffic::Up { edge: text(EDGE)?, conn, seq: number(SEQ)?, frame: payload }),
            "gone" => Some(Traffic::Gone { edge: text(EDGE)?, conn }),
            "down" => {
                let mut frames = Vec::new();
                while payload.remaining() >= 4 {
                    let length = payload.get_u32() as usize;
                    if payload.remaining() < length {
                        return None;
                    }
                    frames.push(payload.split_to(length));
                }
                payload.is_empty().then_some(Traffic::Down { conn, seq: number(SEQ)?, frames })
            }
            "close" => Some(Traffic::Close {
                conn,
                code: u16::try_from(number(CODE)?).ok()?,
                reason: String::from_utf8(payload.to_vec()).ok()?,
            }),
            _ => None,
        }
    }
}

/// A request to the node running a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Enter connection `conn` of node `edge` into the session, as `hello` does.
    Connect {
        session: SessionId,
        member: MemberId,
        resume: BTreeMap<String, u64>,
        edge: String,
        conn: ConnectionId,
    },
    /// Seat a person.
    Join {
        session: SessionId,
        member: MemberId,
        name: String,
        role: Role,
        /// Whether they are the session's secretary. Absent from nodes before it: no.
        #[serde(default)]
        secretary: bool,
        accepted_rules: Option<String>,
    },
    /// A person's role.
    RoleOf { session: SessionId, member: MemberId },
    /// The minutes, for `member`.
    Minutes { session: SessionId, member: MemberId },
    /// Each round's topic and carried points.
    Rounds { session: SessionId },
    /// Erase `member`, as `by` would.
    Erase { session: SessionId, by: MemberId, member: MemberId },
}

impl Call {
    /// The session it is for.
    pub fn session(&self) -> &SessionId {
        match self {
            Call::Connect { session, .. }
            | Call::Join { session, .. }
            | Call::RoleOf { session, .. }
            | Call::Minutes { session, .. }
            | Call::Rounds { session }
            | Call::Erase { session, .. } => session,
        }
    }
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// The session does not run on this node (any more).
    NotHere,
    /// The connection is in; its welcome is on its way.
    Connected,
    /// The connection was refused; close it with this code.
    Refused { code: u16, reason: String },
    /// The person is seated.
    Joined,
    /// The session refused to seat them.
    JoinRefused { code: ErrorCode, message: String },
    /// The session could not store or read what it needed.
    Unavailable,
    /// A role.
    Role { role: Option<Role> },
    /// Minutes.
    Minutes { minutes: Option<Minutes> },
    /// Rounds.
    Rounds { rounds: Option<Vec<MinutesRound>> },
    /// An erasure's outcome.
    Erased { result: Result<(), String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_reads_back_as_written() {
        let cases = [
            Traffic::Up {
                edge: "b-1".into(),
                conn: 7,
                seq: 3,
                frame: Bytes::from_static(b"{\"type\":\"say\"}"),
            },
            Traffic::Gone { edge: "b-1".into(), conn: 7 },
            Traffic::Down {
                conn: 9,
                seq: 12,
                frames: vec![Bytes::from_static(b"one"), Bytes::new(), Bytes::from_static(b"three")],
            },
            Traffic::Close { conn: 9, code: 1001, reason: "reconnect shortly".into() },
        ];
        for traffic in cases {
            let (headers, payload) = traffic.clone().encode();
            assert_eq!(Traffic::decode(Some(&headers), payload), Some(traffic));
        }
    }

    #[test]
    fn a_truncated_batch_is_dropped_not_misread() {
        let (headers, payload) =
            Traffic::Down { conn: 1, seq: 1, frames: vec![Bytes::from_static(b"hello")] }.encode();
        assert_eq!(Traffic::decode(Some(&headers), payload.slice(..payload.len() - 1)), None);
        assert_eq!(Traffic::decode(None, payload), None);
    }

    #[test]
    fn a_join_from_a_node_that_sends_no_secretary_seats_no_secretary() {
        let older = r#"{"call":"join","session":"s-4kq9w2xv7dpa","member":"m-1","name":"Kofi","role":"member","accepted_rules":null}"#;
        let Ok(Call::Join { secretary, role, .. }) = serde_json::from_str::<Call>(older) else {
            panic!("a join without `secretary` still reads");
        };
        assert!(!secretary && role == Role::Member);
    }

    #[test]
    fn subjects_hold_only_safe_characters() {
        assert_eq!(inbox("host.example-ab12"), "caucus.node.host_example-ab12");
        assert_eq!(requests("a b*>"), "caucus.node.a_b__.rpc");
    }
}
