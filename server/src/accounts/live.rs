//! The tokens that close live connections when what they stand on ends: a sign-in, or
//! an account's roles.
//!
//! The maps hold their tokens weakly: the connections watching hold them strongly. So
//! an entry nobody watches any more is dead, and is swept whenever the map has doubled
//! since the last sweep. The maps then hold about what live connections watch, not
//! every sign-in that ever connected.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

/// What a connection holds while it watches: cancelled when what it watches ends.
pub type Watched = Arc<CancellationToken>;

/// Below this many entries the map is not swept.
const SWEEP_FROM: usize = 64;

/// Tokens by key, each with a tag (a sign-in's account, say) to cancel by.
#[derive(Debug)]
pub struct LiveTokens<K: Eq + Hash, T = ()> {
    tokens: DashMap<K, (T, Weak<CancellationToken>)>,
    /// The number of entries the last sweep left.
    swept_to: AtomicUsize,
}

impl<K: Eq + Hash, T> Default for LiveTokens<K, T> {
    fn default() -> Self {
        Self { tokens: DashMap::new(), swept_to: AtomicUsize::new(0) }
    }
}

impl<K: Eq + Hash + Clone, T> LiveTokens<K, T> {
    /// The token for `key`, shared with every other connection watching it; `tag` is
    /// asked for only when nobody else watches it yet.
    pub fn watch(&self, key: K, tag: impl FnOnce() -> T) -> Watched {
        self.sweep_if_grown();
        let mut entry = self.tokens.entry(key).or_insert_with(|| (tag(), Weak::new()));
        if let Some(token) = entry.1.upgrade() {
            return token;
        }
        let token = Watched::default();
        entry.1 = Arc::downgrade(&token);
        token
    }

    /// Ends `key`: the connections watching it close.
    pub fn cancel<Q: Eq + Hash + ?Sized>(&self, key: &Q)
    where
        K: Borrow<Q>,
    {
        if let Some((_, (_, token))) = self.tokens.remove(key) {
            token.upgrade().inspect(|token| token.cancel());
        }
    }

    /// Ends every key whose tag matches.
    pub fn cancel_where(&self, matches: impl Fn(&T) -> bool) {
        self.tokens.retain(|_, (tag, token)| {
            let cancel = matches(tag);
            if cancel {
                token.upgrade().inspect(|token| token.cancel());
            }
            !cancel
        });
    }

    /// How many entries are held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Drops the entries nobody watches once the map has doubled since the last sweep:
    /// each sweep is paid for by as many `watch`es as it visits.
    fn sweep_if_grown(&self) {
        let len = self.tokens.len();
        if len < SWEEP_FROM.max(2 * self.swept_to.load(Ordering::Relaxed)) {
            return;
        }
        self.tokens.retain(|_, (_, token)| token.strong_count() > 0);
        self.swept_to.store(self.tokens.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_of_one_sign_in_share_a_token_and_ending_it_reaches_them_all() {
        let live = LiveTokens::<String, String>::default();
        let first = live.watch("s1".into(), || "ann".into());
        let second = live.watch("s1".into(), || unreachable!("the tag is asked for once"));
        let other = live.watch("s2".into(), || "bea".into());
        live.cancel("s1");
        assert!(first.is_cancelled() && second.is_cancelled());
        assert!(!other.is_cancelled(), "another sign-in stays");
        live.cancel_where(|account| account == "bea");
        assert!(other.is_cancelled());
        assert!(live.is_empty());
    }

    #[test]
    fn entries_nobody_watches_are_swept_and_watched_ones_stay_cancellable() {
        let live = LiveTokens::<u32>::default();
        // Many sign-ins that connected once and left.
        for key in 0..10_000 {
            drop(live.watch(key, || ()));
        }
        assert!(live.len() < 2 * SWEEP_FROM, "{} entries held for no connection", live.len());

        // Connections still open are never swept: their sign-outs still reach them.
        let held: Vec<_> = (10_000..11_000).map(|key| live.watch(key, || ())).collect();
        for key in 20_000..30_000 {
            drop(live.watch(key, || ()));
        }
        assert!(live.len() < 2 * (held.len() + SWEEP_FROM), "{} entries for 1,000 connections", live.len());
        live.cancel(&10_500);
        assert!(held[500].is_cancelled());
        assert_eq!(held.iter().filter(|token| token.is_cancelled()).count(), 1);
    }

    #[test]
    fn a_key_watched_again_after_everyone_left_gets_a_token_that_ending_it_reaches() {
        let live = LiveTokens::<&str>::default();
        drop(live.watch("s1", || ()));
        let again = live.watch("s1", || ());
        live.cancel(&"s1");
        assert!(again.is_cancelled());
    }
}
