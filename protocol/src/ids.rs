//! Validated identifiers. Each is a string on the wire; decoding checks its shape so
//! that the server never handles an id it could not have issued.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::session::Room;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    /// Which kind of id was being checked, such as `member id`.
    pub kind: &'static str,
    /// The longest accepted length, in bytes.
    pub max_len: usize,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} is 1 to {} characters of letters, digits and `-_.:`", self.kind, self.max_len)
    }
}

impl std::error::Error for IdError {}

fn check(kind: &'static str, max_len: usize, value: &str) -> Result<(), IdError> {
    let ok = !value.is_empty()
        && value.len() <= max_len
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok { Ok(()) } else { Err(IdError { kind, max_len }) }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, $max, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A session, such as `s-4kq9w2xv7d`. Issued by the server when a session is created.
    SessionId,
    "session id",
    64
);
id_type!(
    /// A person within a session, such as `m-7f3a9c2e` for a member or `f-alice` for a
    /// facilitator. It is also the `sub` claim of that person's token.
    MemberId,
    "member id",
    96
);
id_type!(
    /// A client-chosen key that makes a command idempotent: a retried `say` with the same
    /// `client_id` gets the same acknowledgement and is stored once.
    ClientId,
    "client id",
    64
);

/// A room as a client names it in a command: any string.
///
/// Commands take a free-form name rather than a [`Room`] so that a room that does not
/// exist and a room the sender may not read get the same `no_such_room` error, instead
/// of one failing to decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomName(pub String);

impl RoomName {
    /// The room this name refers to, if any.
    pub fn resolve(&self) -> Option<Room> {
        Room::from_name(&self.0)
    }
}

impl From<Room> for RoomName {
    fn from(room: Room) -> Self {
        Self(room.as_str().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_odd_characters() {
        assert!(MemberId::new("m-7f3a").is_ok());
        assert!(MemberId::new("").is_err());
        assert!(MemberId::new("a b").is_err());
        assert!(MemberId::new("<script>").is_err());
        assert!(ClientId::new("x".repeat(65)).is_err());
        assert!(serde_json::from_str::<SessionId>("\"s 1\"").is_err());
    }
}
