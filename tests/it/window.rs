//! A live session holds only each room's latest events in memory. Everything older is
//! read from the store: `history` pages, the minutes and erasure reach back to the first
//! event, and the store's pages obey the same rules of who may read what.

use anyhow::{Result, ensure};
use caucus_protocol::api::Minutes;
use caucus_protocol::{Caucus, Command, ErrorCode, EventBody, Room, RoomEvent, ServerMessage, Settings};
use caucus_tests::{Client, http, room};

use crate::support::{Scene, TestServer, holds};

/// Events held in memory per room by the servers in these tests.
const WINDOW: u64 = 8;

async fn small_window_server() -> TestServer {
    TestServer::start_with(|config| {
        let limits = &mut config.limits;
        (limits.replay_per_room, limits.held_events_per_room) = (4, WINDOW);
        // These tests talk faster than people do.
        (limits.frames_per_sec, limits.frame_burst) = (100_000, 100_000);
        (limits.member_frames_per_sec, limits.member_frame_burst) = (100_000, 100_000);
    })
    .await
}

/// Pages back through `room` from its latest event to the first the client may read,
/// `limit` events a page, and returns every event oldest first.
async fn page_back(client: &mut Client, room_of: Room, limit: u32) -> Result<Vec<RoomEvent>> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        client.ok(Command::History { room: room(room_of), before, limit }).await?;
        let (events, more) = client
            .expect("a history page", |message| match message {
                ServerMessage::History { events, more, .. } => Some((events.clone(), *more)),
                _ => None,
            })
            .await?;
        ensure!(!events.is_empty() || !more, "an empty page that says there is more");
        before = events.first().map(|event| event.seq);
        pages.push(events);
        if !more {
            break;
        }
    }
    Ok(pages.into_iter().rev().flatten().collect())
}

fn texts(events: &[RoomEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn history_reaches_back_past_what_memory_holds_whole_and_in_order() -> Result<()> {
    let scene = Scene::on(small_window_server().await, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    for n in 0..30 {
        amara.client.say(Room::Plenary, &format!("p{n}")).await?;
    }
    let mut reader = scene.member("Reader").await?;
    let events = page_back(&mut reader.client, Room::Plenary, 5).await?;
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    let head = *seqs.last().unwrap_or(&0);
    ensure!(head > 3 * WINDOW, "the room is longer than the window: {head}");
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "every event once, in order, from the first");
    assert_eq!(
        texts(&events).into_iter().filter(|text| text.starts_with('p')).collect::<Vec<_>>(),
        (0..30).map(|n| format!("p{n}")).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn caucus_history_from_the_store_keeps_each_reader_to_their_own_window() -> Result<()> {
    let mut scene = Scene::on(small_window_server().await, Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    scene.open_round().await?;
    for n in 0..20 {
        amara.client.say(Caucus::A.room(), &format!("BEFORE-BEA {n}")).await?;
    }
    let mut bea = scene.seated("Bea", Caucus::A).await?;
    for n in 0..20 {
        amara.client.say(Caucus::A.room(), &format!("after {n}")).await?;
    }

    // Bea pages back into the store, and stops where she joined.
    let seen = texts(&page_back(&mut bea.client, Caucus::A.room(), 3).await?);
    assert_eq!(seen, (0..20).map(|n| format!("after {n}")).collect::<Vec<_>>());
    // Asking for older pages by number gives nothing from before she joined.
    bea.client.ok(Command::History { room: room(Caucus::A.room()), before: Some(5), limit: 50 }).await?;
    let old = bea
        .client
        .expect("a history page", |message| match message {
            ServerMessage::History { events, .. } => Some(events.clone()),
            _ => None,
        })
        .await?;
    ensure!(!serde_json::to_string(&old)?.contains("BEFORE-BEA"), "Bea read from before she joined: {old:?}");

    // Amara, there from the start, reads all forty.
    assert_eq!(texts(&page_back(&mut amara.client, Caucus::A.room(), 7).await?).len(), 40);

    // The other caucus and a facilitator in no caucus meet a room that does not exist.
    let across = dana
        .client
        .refused(Command::History { room: room(Caucus::A.room()), before: Some(3), limit: 5 })
        .await?;
    assert_eq!(across.code, ErrorCode::NoSuchRoom);
    let desk = scene
        .facilitator
        .client
        .refused(Command::History { room: room(Caucus::A.room()), before: Some(3), limit: 5 })
        .await?;
    assert_eq!(desk.code, ErrorCode::NoSuchRoom);

    // Moved out, Amara can no longer page back through caucus A's store.
    scene.facilitator.client.ok(Command::Move { member: amara.id.clone(), caucus: Some(Caucus::B) }).await?;
    amara.client.sync().await?;
    let moved = amara
        .client
        .refused(Command::History { room: room(Caucus::A.room()), before: Some(3), limit: 5 })
        .await?;
    assert_eq!(moved.code, ErrorCode::NoSuchRoom);
    Ok(())
}

#[tokio::test]
async fn a_flag_reaches_recent_messages_and_says_plainly_when_one_is_too_far_back() -> Result<()> {
    let mut scene = Scene::on(small_window_server().await, Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    scene.open_round().await?;
    let first = amara.client.say(Caucus::A.room(), "said long ago").await?;
    for n in 0..(2 * WINDOW) {
        amara.client.say(Caucus::A.room(), &format!("then {n}")).await?;
    }
    let recent = amara.client.say(Caucus::A.room(), "said just now").await?;
    amara.client.ok(Command::Flag { room: room(Caucus::A.room()), seq: recent }).await?;
    let refused = amara.client.refused(Command::Flag { room: room(Caucus::A.room()), seq: first }).await?;
    assert_eq!(refused.code, ErrorCode::InvalidValue);
    ensure!(refused.message.contains("too far back"), "{}", refused.message);
    Ok(())
}

#[tokio::test]
async fn minutes_and_erasure_reach_events_that_memory_no_longer_holds() -> Result<()> {
    let mut scene = Scene::on(small_window_server().await, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    amara.client.say(Room::Plenary, "ERASE-ME early words").await?;
    for n in 0..(3 * WINDOW) {
        bayo.client.say(Room::Plenary, &format!("minuted {n}")).await?;
    }

    let address = scene.server.address;
    let auth = format!("Bearer {}", scene.facilitator.token);
    let path = format!("/api/sessions/{}/minutes", scene.session);
    let response = http(address, "GET", &path, &[("authorization", &auth)], None).await?;
    assert_eq!(response.status, 200, "{}", response.body);
    let minutes: Minutes = response.json()?;
    let transcript: Vec<&str> = minutes.transcript.iter().map(|entry| entry.text.as_str()).collect();
    ensure!(transcript.first() == Some(&"ERASE-ME early words"), "the minutes start late: {transcript:?}");
    assert_eq!(transcript.len(), 1 + 3 * WINDOW as usize);

    scene.facilitator.client.ok(Command::EraseMember { member: amara.id.clone() }).await?;
    amara.client.expect_close().await?;
    ensure!(
        !holds(&scene.server.raw_database(), "ERASE-ME"),
        "erased words older than the window stay on disk"
    );
    let page = page_back(&mut bayo.client, Room::Plenary, 50).await?;
    ensure!(!serde_json::to_string(&page)?.contains("ERASE-ME"), "erased words come back in history");
    Ok(())
}
