//! Error codes (in `error` frames and HTTP error bodies) and WebSocket close codes.

use serde::{Deserialize, Serialize};

/// Why a command was refused. Codes are stable; messages may change.
///
/// A room that does not exist and a room the sender may not read give the same
/// [`ErrorCode::NoSuchRoom`], so that refusals reveal nothing about other caucuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, has an unknown `type`, or has missing, unknown or
    /// mistyped fields. The message names the problem.
    BadFrame,
    /// The first frame must be `hello`.
    HelloRequired,
    /// This connection already said `hello`.
    AlreadyWelcomed,
    /// The text is empty or only whitespace.
    Empty,
    /// The text is longer than the server allows.
    TooLong,
    /// There is no such room, or the sender may not use it.
    NoSuchRoom,
    /// There is no such message in that room.
    NoSuchMessage,
    /// There is no such point in that caucus.
    NoSuchPoint,
    /// There is no such person in this session.
    NoSuchMember,
    /// There is no such topic proposal.
    NoSuchProposal,
    /// Only a facilitator may do that. Over HTTP, also: this origin or token may not
    /// do that.
    Forbidden,
    /// The command does not fit the session's current phase.
    WrongPhase,
    /// The caucus is closed: no round is running.
    CaucusClosed,
    /// During a round only facilitators post in the plenary.
    PlenaryQuiet,
    /// Members may not choose their own caucus in this session.
    SelfChoiceOff,
    /// The session has ended and is read-only.
    SessionEnded,
    /// A field's value is not acceptable; the message says which and why.
    InvalidValue,
    /// Too many frames too fast. Slow down; continuing closes the connection.
    RateLimited,
    /// The server cannot store anything just now. Nothing was stored; retry later.
    Unavailable,
    /// HTTP only: the request lacks a valid token.
    Unauthorized,
    /// HTTP only: the invite code is unknown or no longer valid.
    NoSuchInvite,
    /// A cap is reached: over HTTP, this facilitator already runs as many live sessions
    /// as allowed, or the session is full; over the WebSocket, the session's or this
    /// person's cap on topic proposals or points. The message says which.
    LimitReached,
    /// HTTP only: a request signed in by cookie lacks the right `X-CSRF-Token`, or a
    /// sign-in request came from another site's page.
    Csrf,
    /// HTTP only: the sign-in link has expired or was already used.
    InvalidLink,
    /// HTTP only: this server cannot send email; its operator can print a sign-in link.
    EmailUnavailable,
    /// HTTP only: this session does not take guests; sign in to join.
    SignInRequired,
    /// HTTP only: accept the community's current terms of reference before entering
    /// its sessions. The message names the version.
    TermsRequired,
}

impl ErrorCode {
    /// Every code, in the order above.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::BadFrame,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyWelcomed,
        ErrorCode::Empty,
        ErrorCode::TooLong,
        ErrorCode::NoSuchRoom,
        ErrorCode::NoSuchMessage,
        ErrorCode::NoSuchPoint,
        ErrorCode::NoSuchMember,
        ErrorCode::NoSuchProposal,
        ErrorCode::Forbidden,
        ErrorCode::WrongPhase,
        ErrorCode::CaucusClosed,
        ErrorCode::PlenaryQuiet,
        ErrorCode::SelfChoiceOff,
        ErrorCode::SessionEnded,
        ErrorCode::InvalidValue,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Unauthorized,
        ErrorCode::NoSuchInvite,
        ErrorCode::LimitReached,
        ErrorCode::Csrf,
        ErrorCode::InvalidLink,
        ErrorCode::EmailUnavailable,
        ErrorCode::SignInRequired,
        ErrorCode::TermsRequired,
    ];
}

/// WebSocket close codes the server uses. 1000–1009 are RFC 6455's; 4000–4999 are
/// Caucus's own. The close reason carries a sentence for a person.
pub mod close {
    /// A normal close. The server answers a client's close with it; it does not close
    /// connections on its own with 1000 (an ended session stays readable).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; reconnect and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A binary frame: Caucus speaks JSON text frames only.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The client kept flooding after `rate_limited` errors.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame over the size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The session cannot be opened just now: its store cannot be read, or (on a shared
    /// store) another node still holds it. Reconnect shortly and resume.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The token is malformed (which includes an empty token or a missing claim),
    /// badly signed, of the wrong algorithm, not yet valid, or for the wrong issuer or
    /// audience. The reason says which.
    pub const INVALID_TOKEN: u16 = 4001;
    /// The token has expired, at `hello` or while connected. Get a new one.
    pub const TOKEN_EXPIRED: u16 = 4002;
    /// No such session for this token. Says nothing about whether it exists.
    pub const NO_SUCH_SESSION: u16 = 4003;
    /// A facilitator removed this person from the session.
    pub const REMOVED: u16 = 4004;
    /// No `hello` arrived in time.
    pub const HELLO_TIMEOUT: u16 = 4005;
    /// This person has too many connections open.
    pub const TOO_MANY_CONNECTIONS: u16 = 4006;
    /// The client did not read fast enough and its queue filled. Reconnect and resume.
    pub const TOO_SLOW: u16 = 4008;
    /// No pong came back in time; the connection looked dead.
    pub const PING_TIMEOUT: u16 = 4009;
    /// This person's role changed, and with it what they may read. Reconnect and resume.
    pub const ROLE_CHANGED: u16 = 4010;
    /// The browser's sign-in ended: signed out (here or everywhere), the account was
    /// deleted, or the sign-in expired. Sign in again.
    pub const SIGNED_OUT: u16 = 4011;
    /// The guest seat this member token stands for is now kept in an account, which
    /// retires the token. Sign in, then reconnect without it.
    pub const SEAT_KEPT: u16 = 4012;
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn all_lists_every_code_once() {
        // Adding a code without listing it fails to compile here.
        let position = |code: ErrorCode| match code {
            ErrorCode::BadFrame
            | ErrorCode::HelloRequired
            | ErrorCode::AlreadyWelcomed
            | ErrorCode::Empty
            | ErrorCode::TooLong
            | ErrorCode::NoSuchRoom
            | ErrorCode::NoSuchMessage
            | ErrorCode::NoSuchPoint
            | ErrorCode::NoSuchMember
            | ErrorCode::NoSuchProposal
            | ErrorCode::Forbidden
            | ErrorCode::WrongPhase
            | ErrorCode::CaucusClosed
            | ErrorCode::PlenaryQuiet
            | ErrorCode::SelfChoiceOff
            | ErrorCode::SessionEnded
            | ErrorCode::InvalidValue
            | ErrorCode::RateLimited
            | ErrorCode::Unavailable
            | ErrorCode::Unauthorized
            | ErrorCode::NoSuchInvite
            | ErrorCode::LimitReached
            | ErrorCode::Csrf
            | ErrorCode::InvalidLink
            | ErrorCode::EmailUnavailable
            | ErrorCode::SignInRequired
            | ErrorCode::TermsRequired => ErrorCode::ALL.iter().position(|listed| *listed == code),
        };
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), Some(index), "{code:?} is listed twice");
        }
    }
}
