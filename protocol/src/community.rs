//! The practice: a standing community with its co-chairs, secretary and members, its
//! terms of reference in versions, and its series of sessions. Plain data for
//! `/api/communities/...`; no caucus choice ever appears here.

use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, SessionId};
use crate::session::{CaucusLabels, Phase, Settings};

/// A person's part in a community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommunityRole {
    /// Leads it: facilitates its sessions, invites, publishes its terms.
    CoChair,
    /// Keeps its records.
    Secretary,
    /// Takes part.
    Member,
}

/// `POST /api/communities`: a co-chair (an account that may facilitate) starts one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCommunity {
    /// Its name.
    pub name: String,
    /// The labels of its two caucuses, used by every session it holds.
    pub caucuses: CaucusLabels,
    /// Default settings for its sessions.
    #[serde(default)]
    pub settings: Settings,
    /// The first version of its terms of reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<String>,
}

/// The reply to [`CreateCommunity`], and `GET /api/communities/{id}/invite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityInvite {
    /// The community.
    pub community: String,
    /// The code signed-in people join it with.
    pub invite_code: String,
    /// A link to the web client that joins with the code.
    pub invite_url: String,
}

/// `GET /api/communities`: the communities the signed-in person belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Communities {
    /// One entry each.
    pub communities: Vec<CommunityEntry>,
}

/// One entry of [`Communities`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityEntry {
    /// The community.
    pub community: String,
    /// Its name.
    pub name: String,
    /// The person's part in it.
    pub role: CommunityRole,
}

/// `GET /api/communities/{id}`: the community page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityPage {
    /// The community.
    pub community: String,
    /// Its name.
    pub name: String,
    /// Its caucus labels.
    pub caucuses: CaucusLabels,
    /// The person's part in it.
    pub role: CommunityRole,
    /// Its people: names and parts, never anything about caucuses.
    pub people: Vec<CommunityPerson>,
    /// Its terms of reference, as this person stands with them; `null` before the
    /// co-chairs publish any.
    pub terms: Option<TermsStatus>,
    /// For co-chairs and the secretary: who has accepted the current terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<TermsAcceptance>,
    /// Its sessions, soonest first, then past ones, latest first.
    pub sessions: Vec<ScheduledSession>,
}

/// A person in a community.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityPerson {
    /// Their account.
    pub account: String,
    /// Their display name.
    pub name: String,
    /// Their part.
    pub role: CommunityRole,
}

/// The terms of reference, for one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsStatus {
    /// The current version, from 1.
    pub version: u32,
    /// Its text.
    pub text: String,
    /// When it was published, Unix seconds.
    pub published_at: i64,
    /// The latest version this person accepted, if any.
    pub accepted: Option<u32>,
    /// What changed since that version, as a unified diff; `null` when they accepted
    /// none or accepted the current one.
    pub changes: Option<String>,
}

/// Who has accepted the current terms: counts and names, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    /// The version counted.
    pub version: u32,
    /// Names of those who accepted it.
    pub accepted: Vec<String>,
    /// Names of those who have not yet.
    pub pending: Vec<String>,
}

/// `POST /api/communities/{id}/terms`: co-chairs publish a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishTerms {
    /// The whole text of the new version.
    pub text: String,
}

/// `POST /api/communities/{id}/terms/accept`: a person accepts a version, which must be
/// the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptTerms {
    /// The version accepted.
    pub version: u32,
}

/// `POST /api/communities/{id}/people`: co-chairs add someone by email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCommunityPerson {
    /// Their address; an account is made for it if there is none yet.
    pub email: String,
    /// The name they are shown by until they sign in and choose their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their part; if left out, a newcomer is a member and someone already in the
    /// community keeps their part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CommunityRole>,
}

/// `POST /api/communities/join`: a signed-in person joins by the community's invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinCommunity {
    /// The code from the invite link.
    pub invite_code: String,
}

/// `POST /api/communities/{id}/sessions`: co-chairs schedule a session of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSession {
    /// Its title.
    pub title: String,
    /// When it starts, Unix seconds.
    pub starts_at: i64,
    /// How long it is planned to last, in minutes; 120 if left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// Its agenda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agenda: Option<String>,
}

/// A session of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledSession {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// When it starts, Unix seconds.
    pub starts_at: i64,
    /// Planned length, in minutes.
    pub duration_minutes: u32,
    /// Its agenda.
    pub agenda: Option<String>,
    /// Where it is in its flow.
    pub phase: Phase,
}

/// The reply to `POST /api/communities/{id}/sessions/{session}/enter`: the person's
/// seat, which `hello` without a token then opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnteredSession {
    /// The session.
    pub session: SessionId,
    /// The person's member id there.
    pub member: MemberId,
}

/// An action the secretary records: something someone will do before a later session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Its id.
    pub id: u64,
    /// What is to be done.
    pub text: String,
    /// Who will do it, by name, if anyone is named.
    pub owner: Option<String>,
    /// By when, as a date (`YYYY-MM-DD`), if set.
    pub due: Option<String>,
    /// The session it was recorded in, if any.
    pub opened_in: Option<SessionId>,
    /// When it was recorded, Unix seconds.
    pub opened_at: i64,
    /// When it was closed, Unix seconds; `null` while open.
    pub closed_at: Option<i64>,
    /// The session it was closed in, if any.
    pub closed_in: Option<SessionId>,
}

/// `POST /api/communities/{id}/actions`: the secretary (or a co-chair) records one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordAction {
    /// What is to be done.
    pub text: String,
    /// Who will do it, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// By when: `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// The session it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
}

/// `POST /api/communities/{id}/actions/{action}/close`: reviewed and done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseAction {
    /// The session it is closed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
}

/// A past session of the series, as the archive and "From last time" show it: its
/// rounds' topics and what each caucus carried, attributed to the caucus only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastSession {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// When it was scheduled to start, Unix seconds.
    pub starts_at: i64,
    /// Its rounds.
    pub rounds: Vec<crate::api::MinutesRound>,
}

/// `GET /api/communities/{id}/sessions/{session}/from-last-time`: what the plenary
/// shows as a session opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromLastTime {
    /// The session before this one in the series, if any.
    pub previous: Option<PastSession>,
    /// The actions still open, to review.
    pub open_actions: Vec<Action>,
}

/// `GET /api/communities/{id}/archive`: every carried point by session, round and
/// caucus, and every topic and action; with `?q=`, only what contains the words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archive {
    /// The community.
    pub community: String,
    /// Its name.
    pub name: String,
    /// The search, if any.
    pub query: Option<String>,
    /// Its sessions, in order.
    pub sessions: Vec<PastSession>,
    /// Its actions, in the order they were recorded.
    pub actions: Vec<Action>,
}

/// The reply to `POST /api/communities/{id}/people/{account}/erase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedFromCommunity {
    /// The sessions of the series the person was erased from.
    pub sessions: Vec<SessionId>,
}

/// `POST /api/communities/{id}/calendar-feed`: a private address calendar programs
/// subscribe to. A new one replaces the person's earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarFeed {
    /// The feed's address, with its secret key; keep it private.
    pub feed_url: String,
}
