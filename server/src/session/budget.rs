//! Byte budgets for what one request sends at once: the replay after `welcome`, and a
//! `history` page. Counting events alone is not enough: 256 events of 4,000 characters
//! are megabytes, and a client that asks and then stops reading would pin them.

use axum::extract::ws::Utf8Bytes;
use caucus_protocol::{RoomCursor, RoomEvent, ServerMessage};

use super::encode;

/// Encodes the replay for `rooms`, keeping per room the newest events whose frames fit
/// in `budget` bytes, and always the newest one, however large (a reconvene's feedback
/// can be). A room cut short resets: its `from` moves up to just before the first event
/// kept, so the client starts that room afresh and pages back with `history` for the
/// rest.
pub(crate) fn fit_replay(rooms: &mut [RoomCursor], replay: &[&RoomEvent], budget: usize) -> Vec<Utf8Bytes> {
    let mut frames = Vec::with_capacity(replay.len());
    for cursor in rooms.iter_mut() {
        let events: Vec<&RoomEvent> =
            replay.iter().copied().filter(|event| event.room == cursor.room).collect();
        let mut kept = Vec::with_capacity(events.len());
        let mut used = 0;
        for event in events.iter().rev() {
            let frame = encode(&ServerMessage::Event((*event).clone()));
            if used + frame.len() > budget && !kept.is_empty() {
                break;
            }
            used += frame.len();
            kept.push((event.seq, frame));
        }
        if kept.len() < events.len() {
            cursor.from = kept.last().map_or(cursor.head, |(seq, _)| seq - 1);
            cursor.reset = true;
        }
        frames.extend(kept.into_iter().rev().map(|(_, frame)| frame));
    }
    frames
}

/// Keeps the newest events of a history page that fit in `budget` bytes, and always the
/// newest one, so that paging back never stalls on a large event. Returns them and
/// whether any were left out, which the page reports as `more`.
pub(crate) fn fit_history(mut events: Vec<RoomEvent>, budget: usize) -> (Vec<RoomEvent>, bool) {
    let mut used = 0;
    let mut first_kept = events.len();
    for (index, event) in events.iter().enumerate().rev() {
        let size = serde_json::to_string(event).map_or(usize::MAX, |json| json.len() + 1);
        if used + size > budget && first_kept < events.len() {
            break;
        }
        used += size;
        first_kept = index;
    }
    let cut = first_kept > 0;
    events.drain(..first_kept);
    (events, cut)
}

#[cfg(test)]
mod tests {
    use caucus_protocol::{EventBody, MemberId, Room};

    use super::*;

    fn message(seq: u64, text: &str) -> RoomEvent {
        RoomEvent {
            room: Room::Plenary,
            seq,
            at: 1,
            body: EventBody::Message {
                from: MemberId::new("m-1").unwrap(),
                text: text.into(),
                client_id: None,
            },
        }
    }

    #[test]
    fn a_replay_over_budget_keeps_the_newest_events_and_resets_the_room() {
        let events: Vec<RoomEvent> = (1..=10).map(|seq| message(seq, &"x".repeat(100))).collect();
        let replay: Vec<&RoomEvent> = events.iter().collect();
        let one = encode(&ServerMessage::Event(events[0].clone())).len();
        let mut rooms = vec![RoomCursor { room: Room::Plenary, head: 10, from: 0, reset: false }];
        let frames = fit_replay(&mut rooms, &replay, 3 * one + 10);
        assert_eq!(frames.len(), 3);
        assert!(frames[0].as_str().contains("\"seq\":8"), "{}", frames[0].as_str());
        assert_eq!((rooms[0].from, rooms[0].reset), (7, true));
    }

    #[test]
    fn an_event_larger_than_the_budget_is_still_sent_alone() {
        let events: Vec<RoomEvent> = (1..=3).map(|seq| message(seq, &"x".repeat(1000))).collect();
        let replay: Vec<&RoomEvent> = events.iter().collect();
        let mut rooms = vec![RoomCursor { room: Room::Plenary, head: 3, from: 0, reset: false }];
        let frames = fit_replay(&mut rooms, &replay, 10);
        assert_eq!(frames.len(), 1);
        assert_eq!((rooms[0].from, rooms[0].reset), (2, true));
        let (kept, more) = fit_history(events, 10);
        assert_eq!((kept.iter().map(|event| event.seq).collect::<Vec<_>>(), more), (vec![3], true));
    }

    #[test]
    fn a_replay_within_budget_is_untouched() {
        let events: Vec<RoomEvent> = (4..=5).map(|seq| message(seq, "hi")).collect();
        let replay: Vec<&RoomEvent> = events.iter().collect();
        let mut rooms = vec![RoomCursor { room: Room::Plenary, head: 5, from: 3, reset: false }];
        assert_eq!(fit_replay(&mut rooms, &replay, 1 << 20).len(), 2);
        assert_eq!((rooms[0].from, rooms[0].reset), (3, false));
    }

    #[test]
    fn a_history_page_over_budget_keeps_its_newest_events_and_says_there_is_more() {
        let events: Vec<RoomEvent> = (1..=10).map(|seq| message(seq, &"x".repeat(100))).collect();
        let one = serde_json::to_string(&events[0]).unwrap().len() + 1;
        let (kept, more) = fit_history(events.clone(), 4 * one + 4);
        assert_eq!(kept.iter().map(|event| event.seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
        assert!(more);
        let (kept, more) = fit_history(events, 1 << 20);
        assert_eq!((kept.len(), more), (10, false));
    }
}
