//! Nothing lost, nothing kept that should not be: restarts, resume, retention and
//! store faults, against the SQLite store in a real data folder.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use caucus_protocol::{Caucus, Command, ErrorCode, EventBody, Phase, Room, RoomEvent, Settings};
use caucus_tests::{Client, room};

use crate::support::{Scene, TestServer, holds};

/// The `(seq, text)` of every message this client has received in `room`.
fn messages(client: &Client, in_room: Room) -> Vec<(u64, String)> {
    client
        .raw
        .iter()
        .filter_map(|frame| serde_json::from_str::<caucus_protocol::ServerMessage>(frame).ok())
        .filter_map(|message| match message {
            caucus_protocol::ServerMessage::Event(RoomEvent {
                room,
                seq,
                body: EventBody::Message { text, .. },
                ..
            }) if room == in_room => Some((seq, text)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_restart_brings_back_phase_round_topic_seats_points_and_timer() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut dana = scene.member("Dana").await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::SetTopic { text: "Belonging".into() }).await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    dana.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::B) }).await?;
    facilitator.ok(Command::OpenCaucuses { duration_secs: Some(3600) }).await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "kept across restarts".into() })
        .await?;
    amara.client.say(Caucus::A.room(), "said before the restart").await?;
    let cursors = amara.client.resume_cursors();

    let server = scene.server.restart().await;
    let mut again = server.client().await;
    let (welcome, replay) = again.hello_resume(&scene.session, &amara.token, cursors).await?;
    assert_eq!(welcome.session.phase, Phase::Caucusing { round: 1 });
    assert_eq!(welcome.session.topic.as_deref(), Some("Belonging"));
    assert!(welcome.session.deadline.is_some());
    assert_eq!(welcome.seat, Some(Caucus::A));
    let caucus = welcome.caucus.context("Amara still has her caucus")?;
    assert_eq!(caucus.points.len(), 1);
    assert_eq!(caucus.points[0].text, "kept across restarts");
    assert!(replay.is_empty(), "nothing was missed, so nothing is replayed: {replay:?}");
    assert!(welcome.rooms.iter().all(|cursor| !cursor.reset));

    let mut desk = server.client().await;
    let facilitator_view = desk.hello(&scene.session, &scene.facilitator.token).await?;
    let seats = facilitator_view.seats.context("facilitators see seats")?;
    assert!(seats.iter().any(|seat| seat.member == dana.id && seat.caucus == Some(Caucus::B)));
    // And the session carries on.
    again.say(Caucus::A.room(), "said after the restart").await?;
    Ok(())
}

#[tokio::test]
async fn a_deadline_that_passed_while_the_server_was_down_is_handled_at_start() -> Result<()> {
    let mut scene = Scene::new(Settings { auto_reconvene: true, ..Settings::default() }).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: Some(1) }).await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "carried after all".into() })
        .await?;
    // Stop before the round ends, stay down past its deadline, then start again.
    let server = scene.server.restart_after(Duration::from_millis(1500)).await;
    let mut client = server.client().await;
    let (welcome, replay) = client.hello_resume(&scene.session, &amara.token, BTreeMap::new()).await?;
    let reconvened = if welcome.session.phase == (Phase::Reconvened { round: 1 }) {
        replay
    } else {
        // The actor reconvenes on its first turn; it may come just after the welcome.
        vec![client.expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { .. })).await?]
    };
    assert!(reconvened.iter().any(|event| matches!(&event.body,
        EventBody::Feedback { caucus: Caucus::A, points, .. } if points == &vec!["carried after all".to_owned()])));
    Ok(())
}

#[tokio::test]
async fn resume_after_a_network_drop_has_no_gaps_and_no_duplicates() -> Result<()> {
    let server = TestServer::start_with(|config| {
        config.limits.frame_burst = 100;
        config.limits.member_frame_burst = 100;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    for n in 0..20 {
        amara.client.say(Room::Plenary, &format!("first half {n}")).await?;
    }
    bayo.client
        .expect_body(
            Room::Plenary,
            |body| matches!(body, EventBody::Message { text, .. } if text == "first half 19"),
        )
        .await?;
    let cursors = bayo.client.resume_cursors();
    let before = messages(&bayo.client, Room::Plenary);
    bayo.client.drop_connection();
    for n in 0..20 {
        amara.client.say(Room::Plenary, &format!("second half {n}")).await?;
    }
    let mut resumed = scene.server.client().await;
    let (welcome, _) = resumed.hello_resume(&scene.session, &bayo.token, cursors).await?;
    assert!(welcome.rooms.iter().all(|cursor| !cursor.reset));
    let after = messages(&resumed, Room::Plenary);
    assert_eq!(after.len(), 20, "exactly the missed messages are replayed");
    let all: Vec<_> = before.iter().chain(after.iter()).collect();
    let seqs: Vec<u64> = all.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[1] > pair[0]), "in order, no duplicates: {seqs:?}");
    let texts: Vec<_> = all.iter().map(|(_, text)| text.as_str()).collect();
    let expected: Vec<String> = (0..20)
        .map(|n| format!("first half {n}"))
        .chain((0..20).map(|n| format!("second half {n}")))
        .collect();
    assert_eq!(texts, expected);
    Ok(())
}

#[tokio::test]
async fn when_a_session_ends_its_caucus_text_leaves_the_database_file() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    scene.open_round().await?;
    scene.facilitator.client.say(Room::Plenary, "PLENARY-MARKER-kept").await?;
    amara.client.say(Caucus::A.room(), "CAUCUS-MARKER-unflagged-a").await?;
    dana.client.say(Caucus::B.room(), "CAUCUS-MARKER-unflagged-b").await?;
    let flagged = amara.client.say(Caucus::A.room(), "CARRIED-MARKER-a").await?;
    amara.client.ok(Command::Flag { room: room(Caucus::A.room()), seq: flagged }).await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "CAUCUS-MARKER-point-draft".into() })
        .await?;
    amara.client.ok(Command::WithdrawPoint { room: room(Caucus::A.room()), point: 2 }).await?;

    // While the session runs, the text is in the file: the raw check can see it.
    let during = scene.server.raw_database();
    assert!(holds(&during, "CAUCUS-MARKER-unflagged-a"), "the raw check finds live caucus text");

    scene.facilitator.client.ok(Command::EndSession {}).await?;
    let mut gone = false;
    for _ in 0..100 {
        let raw = scene.server.raw_database();
        if !holds(&raw, "CAUCUS-MARKER") && !holds(&raw, "\"kind\":\"seated\"") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "caucus text or seats are still in the database file after the session ended");
    let raw = scene.server.raw_database();
    assert!(holds(&raw, "PLENARY-MARKER-kept"), "the plenary transcript is kept");
    assert!(holds(&raw, "CARRIED-MARKER-a"), "carried points are kept, in the plenary");

    // Through the API too: nobody can read the caucus any more.
    let mut client = scene.server.client().await;
    let (welcome, replay) = client.hello_resume(&scene.session, &amara.token, BTreeMap::new()).await?;
    assert!(welcome.rooms.iter().all(|cursor| cursor.room == Room::Plenary), "{:?}", welcome.rooms);
    assert!(replay.iter().all(|event| event.room == Room::Plenary));
    Ok(())
}

#[tokio::test]
async fn with_retention_the_caucus_can_still_read_its_transcript_after_the_end() -> Result<()> {
    let server = TestServer::start_with(|config| config.retention.caucus_transcript_days = 30).await;
    let mut scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    amara.client.say(Caucus::A.room(), "kept for the caucus").await?;
    scene.facilitator.client.ok(Command::EndSession {}).await?;
    let server = scene.server.restart().await;
    let mut client = server.client().await;
    let (_, replay) = client.hello_resume(&scene.session, &amara.token, BTreeMap::new()).await?;
    assert!(replay.iter().any(
        |event| matches!(&event.body, EventBody::Message { text, .. } if text == "kept for the caucus")
    ));
    let mut desk = server.client().await;
    let (_, facilitator_replay) =
        desk.hello_resume(&scene.session, &scene.facilitator.token, BTreeMap::new()).await?;
    assert!(facilitator_replay.iter().all(|event| event.room != Caucus::A.room()));
    Ok(())
}

#[tokio::test]
async fn a_locked_database_refuses_with_unavailable_and_the_server_recovers() -> Result<()> {
    let server = TestServer::start_with(|config| config.store.busy_timeout_ms = 100).await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    let before = scene.server.stored_events(&scene.session).await.len();

    let lock = rusqlite::Connection::open(scene.server.data_dir().join("caucus.db"))?;
    lock.execute_batch("BEGIN EXCLUSIVE;")?;
    let refused =
        amara.client.refused(Command::Say { room: room(Room::Plenary), text: "while locked".into() }).await?;
    assert_eq!(refused.code, ErrorCode::Unavailable);
    assert!(refused.message.contains("nothing was saved"), "{}", refused.message);
    lock.execute_batch("COMMIT;")?;
    drop(lock);

    bayo.client.sync().await?;
    assert!(!bayo.client.transcript().contains("while locked"), "a refused message was delivered");
    assert_eq!(
        scene.server.stored_events(&scene.session).await.len(),
        before,
        "a refused message was stored"
    );
    // The same connection carries on once the store is back.
    amara.client.say(Room::Plenary, "after the lock").await?;
    bayo.client
        .expect_body(
            Room::Plenary,
            |body| matches!(body, EventBody::Message { text, .. } if text == "after the lock"),
        )
        .await?;
    let texts: BTreeSet<String> =
        messages(&bayo.client, Room::Plenary).into_iter().map(|(_, text)| text).collect();
    assert!(texts.contains("after the lock"));
    Ok(())
}
