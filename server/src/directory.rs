//! Every session the server knows, whether or not it is loaded: what lists it (its
//! record and [`Listing`]), its invite code, and the handle of its actor while one runs.
//!
//! A session's actor runs only while the session is used. The hub starts it when
//! someone enters the session or its time comes; the actor takes itself out of `live`
//! when it has been idle long enough, at a moment when nobody else holds its handle, so
//! that no request can reach an actor that has stopped and no second actor can start
//! while the first still runs.
//!
//! The maps hold small values. Callers clone out and drop the guard before any `.await`.

use caucus_protocol::{MemberId, SessionId};
use dashmap::DashMap;

use crate::session::{Listing, SessionHandle};
use crate::store::SessionRecord;

/// What the server keeps of a session that may not be loaded.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its title.
    pub title: String,
    /// Its ground rules, for the invite page.
    pub ground_rules: Option<String>,
    /// Its current invite code.
    pub invite_code: String,
    /// The facilitator who created it, for the cap on live sessions per facilitator.
    pub created_by: MemberId,
    /// Whether people may join with only a display name.
    pub allow_guests: bool,
    /// Its phase, facilitators and when it must next run.
    pub listing: Listing,
}

/// Every known session, and the live ones' actors.
#[derive(Debug, Default)]
pub struct Directory {
    listed: DashMap<SessionId, Listed>,
    invites: DashMap<String, SessionId>,
    live: DashMap<SessionId, SessionHandle>,
}

impl Directory {
    /// Adds a session.
    pub fn insert(&self, record: &SessionRecord, listing: Listing) {
        self.invites.insert(record.invite_code.clone(), record.id.clone());
        let before = self.listed.insert(
            record.id.clone(),
            Listed {
                title: record.title.clone(),
                ground_rules: record.ground_rules.clone(),
                invite_code: record.invite_code.clone(),
                created_by: record.created_by.clone(),
                allow_guests: record.allow_guests,
                listing,
            },
        );
        // Read again from a shared store, a session may have a new invite: the old one
        // must stop leading to it.
        if let Some(before) = before.filter(|before| before.invite_code != record.invite_code) {
            self.invites.remove_if(&before.invite_code, |_, id| *id == record.id);
        }
        metrics::gauge!(crate::metrics::SESSIONS_KNOWN).set(self.listed.len() as f64);
    }

    /// What is known of session `id`.
    pub fn get(&self, id: &SessionId) -> Option<Listed> {
        self.listed.get(id).map(|entry| entry.value().clone())
    }

    /// The session an invite code leads to.
    pub fn by_invite(&self, code: &str) -> Option<SessionId> {
        self.invites.get(code).map(|entry| entry.value().clone())
    }

    /// Replaces a session's invite code; the old one stops working at once.
    pub fn set_invite(&self, id: &SessionId, code: &str) {
        let old = self
            .listed
            .get_mut(id)
            .map(|mut entry| std::mem::replace(&mut entry.invite_code, code.to_owned()));
        if let Some(old) = old {
            self.invites.remove(&old);
        }
        self.invites.insert(code.to_owned(), id.clone());
    }

    /// Records a session's new listing.
    pub fn set_listing(&self, id: &SessionId, listing: Listing) {
        if let Some(mut entry) = self.listed.get_mut(id) {
            entry.listing = listing;
        }
    }

    /// Every known session's id with what `pick` takes of it.
    pub fn collect<T>(&self, mut pick: impl FnMut(&SessionId, &Listed) -> Option<T>) -> Vec<T> {
        self.listed.iter().filter_map(|entry| pick(entry.key(), entry.value())).collect()
    }

    /// How many sessions are known, and how many of them are loaded.
    pub fn counts(&self) -> (usize, usize) {
        (self.listed.len(), self.live.len())
    }

    /// The actor of session `id`, if it is loaded.
    pub fn live(&self, id: &SessionId) -> Option<SessionHandle> {
        self.live.get(id).map(|entry| entry.value().clone())
    }

    /// Records the actor just started for session `id`.
    pub fn go_live(&self, id: &SessionId, handle: SessionHandle) {
        self.live.insert(id.clone(), handle);
    }

    /// Takes session `id`'s actor out of `live` if `may_stop` says so. It is asked under
    /// the map's lock, while no one can take a new copy of the handle.
    pub fn retire(&self, id: &SessionId, may_stop: impl FnOnce() -> bool) -> bool {
        self.live.remove_if(id, |_, _| may_stop()).is_some()
    }
}
