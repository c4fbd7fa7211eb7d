//! Sessions: the rules ([`state`]) and the task that runs them ([`actor`]).
//!
//! The state machine is pure and tested without tokio; the actor adds storage, timers
//! and connections around it.

mod actor;
mod budget;
mod listing;
mod log;
mod state;

pub(crate) use actor::encode;
pub use actor::{ActorSettings, ConnectError, JoinError, SessionHandle};
pub use listing::Listing;
pub use state::{
    Decision, Draft, ERASED, JoinAs, Refusal, Session, SessionCaps, SessionSetup, TextLimits, check_text,
    rules_digest,
};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
