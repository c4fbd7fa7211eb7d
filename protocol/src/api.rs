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
    /// Whether people may join by invite with only a display name, without signing
    /// in. Defaults to yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_guests: Option<bool>,
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

/// `GET /api/me/sessions`: the sessions a signed-in person has a seat in, live ones
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MySessions {
    /// The sessions.
    pub sessions: Vec<MySession>,
}

/// One entry of [`MySessions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MySession {
    /// The session.
    pub session: SessionId,
    /// Its title.
    pub title: String,
    /// Where it is in its flow.
    pub phase: crate::Phase,
    /// The person's role there.
    pub role: crate::Role,
    /// Its invite link, for its facilitators while it can still be joined; else `null`.
    pub invite_url: Option<String>,
}

/// `POST /api/sessions/{id}/facilitators`: a facilitator adds a co-facilitator by the
/// name their facilitator token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFacilitator {
    /// A co-facilitator with a facilitator token: the name exactly as in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A co-facilitator who signs in: their email address. They see the session as soon
    /// as they sign in with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
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
    /// A token for `hello`, scoped to this session: for guests only. A signed-in
    /// person's seat belongs to their account and needs no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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

/// `GET /api/auth/providers`: how people can sign in here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// OpenID Connect providers, each a button.
    pub providers: Vec<SignInProvider>,
    /// Whether this server can email sign-in links.
    pub email: bool,
}

/// One OpenID Connect provider; its sign-in starts at `GET /auth/oidc/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInProvider {
    /// The provider's id, for the URL.
    pub id: String,
    /// What its button says.
    pub name: String,
}

/// `POST /api/auth/email`: email me a sign-in link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSignIn {
    /// The address to send the link to.
    pub email: String,
    /// Where to go once signed in: a path on this server, such as `/#invite=abc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
}

/// The reply to [`EmailSignIn`]: the same whether or not an account has the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSent {
    /// Always true: a link is on its way if the address can receive mail.
    pub sent: bool,
}

/// `POST /api/auth/email/verify`: sign in with the token from an emailed link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailVerify {
    /// The token after `#signin=` in the link.
    pub token: String,
}

/// `GET /api/me`: the signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Their account.
    pub account: AccountInfo,
    /// `admin`, `facilitator`, both or neither.
    pub roles: Vec<String>,
    /// Send as `X-CSRF-Token` on every POST and DELETE.
    pub csrf: String,
    /// When this sign-in ends, Unix seconds.
    pub expires_at: i64,
    /// After an email sign-in: where to go next (a path on this server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
}

/// An account, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Stable id; also the person's member id in the sessions they create or join.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The address it signs in with, if any.
    pub email: Option<String>,
}

/// `POST /api/me`: change the display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The new name.
    pub name: String,
}

/// `POST /api/me/seats`: give a guest seat to the signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSeat {
    /// The guest's member token, from `POST /api/join`.
    pub token: String,
}

/// The reply to [`AttachSeat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatAttached {
    /// The session.
    pub session: SessionId,
    /// The member id the account now enters it as.
    pub member: MemberId,
}

/// `POST /api/admin/facilitators`: an admin lets an address facilitate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantFacilitator {
    /// The address.
    pub email: String,
}

/// `GET`, `POST /api/admin/facilitators` and `DELETE /api/admin/facilitators/{email}`:
/// who may facilitate. Fields are in alphabetical order, as in every answer about an
/// account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilitatorGrants {
    /// The admins: from the configuration, then those added by command.
    pub admins: Vec<String>,
    /// The addresses admins let facilitate.
    pub facilitators: Vec<RoleGrant>,
}

/// A role granted to an email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// The address.
    pub email: String,
    /// When, Unix seconds.
    pub granted_at: i64,
    /// The account that granted it; `null` when it came from the command line.
    pub granted_by: Option<String>,
    /// `admin` or `facilitator`.
    pub role: String,
}

/// `GET /api/me/export`: everything Caucus keeps about an account. Nothing about
/// caucuses: no caucus choice is ever kept on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountExport {
    /// The account.
    pub account: ExportedAccount,
    /// The versions of communities' terms of reference it accepted.
    pub acceptances: Vec<ExportedAcceptance>,
    /// The communities it is in, and its part in each.
    pub communities: Vec<crate::community::CommunityEntry>,
    /// When this export was made, Unix seconds.
    pub exported_at: i64,
    /// The roles granted to the account's address.
    pub grants: Vec<String>,
    /// How it signs in.
    pub identities: Vec<ExportedIdentity>,
    /// Its roles now.
    pub roles: Vec<String>,
    /// The sessions it has a seat in.
    pub seats: Vec<ExportedSeat>,
    /// Its sign-ins, without their secrets.
    pub sign_ins: Vec<ExportedSignIn>,
}

/// The account row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAccount {
    /// Unix seconds.
    pub created_at: i64,
    /// Its address.
    pub email: Option<String>,
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// An identity at a provider, or an email address (`issuer` is `email`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedIdentity {
    /// Unix seconds.
    pub created_at: i64,
    /// The address the provider gave.
    pub email: Option<String>,
    /// The provider's issuer URL, or `email`.
    pub issuer: String,
    /// The subject there.
    pub subject: String,
}

/// A seat in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSeat {
    /// Unix seconds.
    pub joined_at: i64,
    /// The member id there.
    pub member: String,
    /// The session.
    pub session: String,
}

/// A sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSignIn {
    /// Unix seconds.
    pub created_at: i64,
    /// Whether it is the one that asked for this export.
    pub current: bool,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An acceptance of a community's terms of reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAcceptance {
    /// When, Unix seconds.
    pub accepted_at: i64,
    /// The community.
    pub community: String,
    /// The version accepted.
    pub version: u32,
}
