//! # caucus-protocol
//!
//! The wire types of Caucus: every frame a client and the server exchange over the
//! `/ws` WebSocket, and the bodies of the small HTTP API. They are plain serde data
//! with no I/O, shared by the server, the test client and the load generator.
//!
//! `docs/PROTOCOL.md` describes every type here with a JSON example, and the golden
//! tests check each example against these types, so the two cannot drift apart.
//!
//! # Layout
//!
//! - [`ids`]: validated identifiers (sessions, members, client ids) and room names.
//! - [`session`]: the shared vocabulary: caucuses, rooms, phases, roles, settings.
//! - [`client`]: what a client sends ([`ClientFrame`], [`Command`]).
//! - [`server`]: what the server sends ([`ServerMessage`], [`EventBody`]).
//! - [`codes`]: error codes and WebSocket close codes.
//! - [`api`]: JSON bodies of the HTTP API (`/api/sessions`, `/api/join`, sign-in).
//! - [`community`]: JSON bodies of the practice's API: communities, their terms of
//!   reference and their series of sessions (`/api/communities`).

pub mod api;
pub mod client;
pub mod codes;
pub mod community;
pub mod ids;
pub mod server;
pub mod session;

pub use client::{ClientFrame, Command, DecodeError};
pub use codes::{ErrorCode, close};
pub use ids::{ClientId, IdError, MemberId, RoomName, SessionId};
pub use server::{Ack, EncodedEvent, ErrorFrame, EventBody, RoomCursor, RoomEvent, ServerMessage, Welcome};
pub use session::{Caucus, CaucusLabels, Member, Phase, Point, Proposal, Role, Room, Settings};

/// The protocol version the server speaks; sent in [`Welcome::protocol`].
pub const PROTOCOL_VERSION: u32 = 1;
