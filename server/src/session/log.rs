//! A room's log as a live session holds it: its latest events only.
//!
//! Every event is in the store before it is applied, so the older events are never
//! lost by dropping them here; `history`, the minutes and erasure read those from the
//! store. A session's memory follows this window, not how long the session has run.

use std::collections::VecDeque;

use caucus_protocol::RoomEvent;

/// The latest events of one room, at most a window of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    /// How many of the room's first events are no longer held: the held events are
    /// numbered from `dropped + 1`.
    dropped: u64,
    events: VecDeque<RoomEvent>,
}

impl Log {
    /// The latest sequence number of the room.
    pub(crate) fn head(&self) -> u64 {
        self.dropped + self.events.len() as u64
    }

    /// The sequence number before the first held event: events up to it are read from
    /// the store.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether every event of the room is held.
    pub(crate) fn is_whole(&self) -> bool {
        self.dropped == 0
    }

    /// Whether the room has had no events (or they were purged).
    pub(crate) fn is_empty(&self) -> bool {
        self.head() == 0
    }

    /// The event numbered `seq`, if it is held.
    pub(crate) fn get(&self, seq: u64) -> Option<&RoomEvent> {
        self.events.get(self.index(seq)?)
    }

    /// The event numbered `seq`, to rewrite it in place, if it is held.
    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut RoomEvent> {
        let index = self.index(seq)?;
        self.events.get_mut(index)
    }

    fn index(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq.checked_sub(self.dropped + 1)?).ok()
    }

    /// Appends the room's next event, dropping the oldest held event past `window`.
    pub(crate) fn push(&mut self, event: RoomEvent, window: usize) {
        self.events.push_back(event);
        while self.events.len() > window.max(1) {
            self.events.pop_front();
            self.dropped += 1;
        }
    }

    /// Events `start..end`, if every one of them is held.
    pub(crate) fn range(&self, start: u64, end: u64) -> Option<Vec<RoomEvent>> {
        if start >= end {
            return Some(Vec::new());
        }
        if start <= self.dropped || end > self.head() + 1 {
            return None;
        }
        Some((start..end).filter_map(|seq| self.get(seq)).cloned().collect())
    }

    /// The held events after `seq`.
    pub(crate) fn after(&self, seq: u64) -> impl Iterator<Item = &RoomEvent> {
        let skip = usize::try_from(seq.saturating_sub(self.dropped)).unwrap_or(usize::MAX);
        self.events.iter().skip(skip)
    }

    /// Every held event, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &RoomEvent> {
        self.events.iter()
    }

    /// Forgets the room's events, as a purge does: the room starts again from nothing.
    pub(crate) fn clear(&mut self) {
        self.dropped = 0;
        self.events = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caucus_protocol::{EventBody, MemberId, Room};

    fn event(seq: u64) -> RoomEvent {
        RoomEvent {
            room: Room::Plenary,
            seq,
            at: seq,
            body: EventBody::Message {
                from: MemberId::new("m").unwrap(),
                text: format!("#{seq}"),
                client_id: None,
            },
        }
    }

    fn log_of(count: u64, window: usize) -> Log {
        let mut log = Log::default();
        for seq in 1..=count {
            log.push(event(seq), window);
        }
        log
    }

    #[test]
    fn a_log_holds_the_latest_events_of_its_window_and_numbers_the_rest_as_dropped() {
        let log = log_of(10, 4);
        assert_eq!(log.head(), 10);
        assert_eq!(log.dropped(), 6);
        assert!(!log.is_whole());
        assert!(log.get(6).is_none(), "event 6 is only in the store");
        assert_eq!(log.get(7).map(|event| event.seq), Some(7));
        assert_eq!(log.after(8).map(|event| event.seq).collect::<Vec<_>>(), [9, 10]);
        assert_eq!(log.after(0).map(|event| event.seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
    }

    #[test]
    fn a_range_comes_from_memory_only_when_all_of_it_is_held() {
        let log = log_of(10, 4);
        assert_eq!(
            log.range(7, 11).unwrap().iter().map(|event| event.seq).collect::<Vec<_>>(),
            [7, 8, 9, 10]
        );
        assert!(log.range(6, 9).is_none(), "event 6 must be read from the store");
        assert!(log.range(9, 12).is_none(), "event 11 does not exist");
        assert_eq!(log.range(5, 5), Some(Vec::new()));
    }

    #[test]
    fn a_cleared_log_starts_again_from_nothing() {
        let mut log = log_of(10, 4);
        log.clear();
        assert!(log.is_empty());
        assert!(log.is_whole());
        assert_eq!(log.head(), 0);
    }
}
