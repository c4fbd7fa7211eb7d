//! JSON bodies of the HTTP API. Errors use [`ApiError`] with the same codes as
//! WebSocket `error` frames.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::ids::{MemberId, SessionId};
use crate::session::{Caucus, CaucusLabels, Settings};

/// `POST /api/sessions`, with a facilitator's `Authorization: Bearer` token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// The session's title.
    pub title: String,
    /// The labels of the two caucuses.
    pub caucuses: CaucusLabels,
    /// Settings; every field may be left out.
    #[serde(default)]
    pub settings: Settings,
    /// Ground rules that members read and accept before they join.
    #[serde(default)]
    pub ground_rules: Option<String>,
}

/// The reply to [`CreateSession`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    /// The new session.
    pub session: SessionId,
    /// The code members join with.
    pub invite_code: String,
    /// A link to the web client that joins with the code.
    pub invite_url: String,
}

/// `GET` or `POST /api/sessions/{id}/invite`: the session's current invite, for its
/// facilitators. `POST` replaces it: the old code stops working at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteLink {
    /// The session.
    pub session: SessionId,
    /// The code members join with.
    pub invite_code: String,
    /// A link to the web client that joins with the code.
    pub invite_url: String,
}

/// `GET /api/sessions`: the sessions the token's facilitator runs or co-runs, live ones
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilitatedSessions {
    /// The sessions.
    pub sessions: Vec<FacilitatedSession>,
}

/// One entry of [`FacilitatedSessions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilitatedSession {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// Where it is in its flow.
    pub phase: crate::Phase,
    /// Its invite link, while it can still be joined; `null` once it has ended.
    pub invite_url: Option<String>,
}

/// `POST /api/sessions/{id}/facilitators`: a facilitator adds a co-facilitator by the
/// name their facilitator token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFacilitator {
    /// The co-facilitator's name, exactly as in their facilitator token.
    pub name: String,
}

/// The reply to [`AddFacilitator`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilitatorAdded {
    /// The session.
    pub session: SessionId,
    /// The co-facilitator's id in it.
    pub member: MemberId,
}

/// `GET /api/invites/{code}`: what a person sees before they join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// Its ground rules, if any.
    pub ground_rules: Option<String>,
}

/// `POST /api/join`: exchanges an invite code and a display name for a member token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The invite code.
    pub invite_code: String,
    /// The name others will see, stored exactly as typed.
    pub name: String,
    /// The session's ground rules, exactly as the invite showed them: the person's
    /// acceptance. Required when the session has ground rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_ground_rules: Option<String>,
}

/// The reply to [`JoinRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The session joined.
    pub session: SessionId,
    /// The new member's id.
    pub member: MemberId,
    /// A token for `hello`, scoped to this session.
    pub token: String,
}

/// `GET /api/sessions/{id}/minutes`: the record a secretary keeps. It holds the
/// plenary and each round's carried points, never anything else from a caucus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minutes {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// The caucus labels.
    pub caucuses: CaucusLabels,
    /// Whether the session has ended.
    pub ended: bool,
    /// Each round: its topic and what each caucus carried.
    pub rounds: Vec<MinutesRound>,
    /// The plenary, in order: messages, announcements and topic decisions.
    pub transcript: Vec<MinutesEntry>,
}

/// One round in the minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutesRound {
    /// The round number.
    pub round: u32,
    /// Its topic.
    pub topic: Option<String>,
    /// When it opened, in Unix milliseconds.
    pub opened_at: u64,
    /// What each caucus carried, in caucus order.
    pub feedback: Vec<CarriedPoints>,
}

/// A caucus's carried points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedPoints {
    /// The caucus.
    pub caucus: Caucus,
    /// Its label.
    pub label: String,
    /// The points, in order.
    pub points: Vec<String>,
}

/// One line of the plenary transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinutesEntry {
    /// When, in Unix milliseconds.
    pub at: u64,
    /// Who, by display name; `null` for the session itself.
    pub by: Option<String>,
    /// What kind of line.
    pub kind: MinutesKind,
    /// The text.
    pub text: String,
}

/// What a transcript line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinutesKind {
    /// A plenary message.
    Message,
    /// A facilitator's announcement.
    Announcement,
    /// A topic proposal.
    TopicProposed,
    /// The topic a facilitator set.
    TopicSet,
}

/// Every HTTP error body: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The error.
    pub error: ApiErrorBody,
}

/// The inside of [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A stable code.
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
}
