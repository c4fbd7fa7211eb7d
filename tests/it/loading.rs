//! Sessions are loaded while they are used: start-up reads no history, an idle or
//! ended session's actor stops, and a session comes back whole from the store when
//! someone enters it: seats, points, timers and who may read what.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use caucus_protocol::{Caucus, Command, EventBody, Phase, Room, Settings};
use caucus_tests::room;

use crate::support::{Scene, TestServer};

/// Waits until the server has `loaded` sessions loaded. Fails after a generous wait: the
/// condition is what is checked, not how long it took.
async fn until_loaded(server: &TestServer, loaded: usize) -> Result<()> {
    for _ in 0..500 {
        if server.hub.session_counts().1 == loaded {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("expected {loaded} loaded sessions, have {:?} (known, loaded)", server.hub.session_counts())
}

/// A server that unloads a session as soon as nobody is in it.
async fn eager_server() -> TestServer {
    TestServer::start_with(|config| config.timeouts.session_idle_secs = 0).await
}

#[tokio::test]
async fn an_idle_session_is_unloaded_and_comes_back_whole() -> Result<()> {
    let mut scene = Scene::on(eager_server().await, Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    scene.open_round().await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "a point that stays".into() })
        .await?;
    let said = amara.client.say(Caucus::A.room(), "SECRET-A said before unloading").await?;
    dana.client.say(Caucus::B.room(), "SECRET-B said before unloading").await?;
    let cursors = amara.client.resume_cursors();
    let Scene { server, session, facilitator, .. } = scene;
    for client in [amara.client, dana.client, facilitator.client] {
        client.close().await;
    }
    until_loaded(&server, 0).await?;

    // Amara resumes where she was: the same round, seat and point, nothing missed.
    let mut again = server.client().await;
    let (welcome, replay) = again.hello_resume(&session, &amara.token, cursors).await?;
    ensure!(server.hub.session_counts().1 == 1, "entering the session loads it");
    assert_eq!(welcome.session.phase, Phase::Caucusing { round: 1 });
    assert_eq!(welcome.seat, Some(Caucus::A));
    let caucus = welcome.caucus.context("Amara still has her caucus")?;
    assert_eq!(
        caucus.points.iter().map(|point| point.text.as_str()).collect::<Vec<_>>(),
        ["a point that stays"]
    );
    ensure!(replay.is_empty(), "nothing was missed, so nothing is replayed: {replay:?}");
    // The room's numbering carries on after the last stored event.
    let next = again.say(Caucus::A.room(), "said after loading").await?;
    assert_eq!(next, said + 1);

    // Who may read what came back too: her own caucus's words, never the other's.
    let mut fresh = server.client().await;
    let (_, replay) = fresh.hello_resume(&session, &amara.token, BTreeMap::new()).await?;
    let texts = serde_json::to_string(&replay)?;
    ensure!(texts.contains("SECRET-A"), "Amara's caucus history is replayed");
    ensure!(!texts.contains("SECRET-B"), "the other caucus's words reached Amara");
    let mut desk = server.client().await;
    let (_, replay) = desk.hello_resume(&session, &facilitator.token, BTreeMap::new()).await?;
    let texts = serde_json::to_string(&replay)?;
    ensure!(!texts.contains("SECRET"), "caucus words reached a facilitator who is in no caucus");
    Ok(())
}

#[tokio::test]
async fn a_round_timer_fires_while_nobody_is_connected() -> Result<()> {
    let server = eager_server().await;
    let mut scene = Scene::on(server, Settings { auto_reconvene: true, ..Settings::default() }).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: Some(1) }).await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "carried unattended".into() })
        .await?;
    let Scene { server, session, facilitator, .. } = scene;
    amara.client.close().await;
    facilitator.client.close().await;

    // Nobody is there when the round ends, and yet it reconvenes and carries the point.
    let mut stored = Vec::new();
    for _ in 0..500 {
        stored = server.stored_events(&session).await;
        if stored.iter().any(|event| matches!(event.body, EventBody::Feedback { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(
        stored.iter().any(|event| matches!(&event.body,
            EventBody::Feedback { caucus: Caucus::A, points, .. } if points == &vec!["carried unattended".to_owned()])),
        "the round did not reconvene on its own"
    );
    until_loaded(&server, 0).await?;
    let mut again = server.client().await;
    let welcome = again.hello(&session, &amara.token).await?;
    assert_eq!(welcome.session.phase, Phase::Reconvened { round: 1 });
    Ok(())
}

#[tokio::test]
async fn an_ended_session_is_unloaded_once_nobody_is_in_it() -> Result<()> {
    // The default idle time is minutes; an ended session does not wait for it.
    let mut scene = Scene::new(Settings::default()).await?;
    let amara = scene.member("Amara").await?;
    scene.facilitator.client.ok(Command::EndSession {}).await?;
    let Scene { server, session, facilitator, .. } = scene;
    amara.client.close().await;
    facilitator.client.close().await;
    until_loaded(&server, 0).await?;
    let mut again = server.client().await;
    let welcome = again.hello(&session, &facilitator.token).await?;
    assert_eq!(welcome.session.phase, Phase::Ended);
    Ok(())
}

#[tokio::test]
async fn start_up_reads_no_history_and_a_session_loads_when_entered() -> Result<()> {
    let server = TestServer::start().await;
    let token = server.facilitator_token("Ada");
    let mut sessions = Vec::new();
    for index in 0..3 {
        let created = server.create_session(&token, Settings::default()).await?;
        let mut client = server.client().await;
        client.hello(&created.session, &token).await?;
        client.say(Room::Plenary, &format!("history of session {index}")).await?;
        sessions.push(created);
    }
    let server = server.restart().await;
    assert_eq!(server.hub.session_counts(), (3, 0), "start-up loaded sessions nobody entered");

    // Listing them needs no loading either.
    let auth = format!("Bearer {token}");
    let listed =
        caucus_tests::http(server.address, "GET", "/api/sessions", &[("authorization", &auth)], None).await?;
    ensure!(listed.status == 200, "{}", listed.body);
    for created in &sessions {
        ensure!(
            listed.body.contains(created.session.as_str()),
            "a session is missing from the list: {}",
            listed.body
        );
    }
    let invite = caucus_tests::http(
        server.address,
        "GET",
        &format!("/api/invites/{}", sessions[1].invite_code),
        &[],
        None,
    )
    .await?;
    ensure!(invite.status == 200, "the invite page needs the session: {}", invite.body);
    assert_eq!(server.hub.session_counts(), (3, 0));

    let mut client = server.client().await;
    let (_, replay) = client.hello_resume(&sessions[1].session, &token, BTreeMap::new()).await?;
    ensure!(serde_json::to_string(&replay)?.contains("history of session 1"));
    assert_eq!(server.hub.session_counts(), (3, 1));
    Ok(())
}

#[tokio::test]
async fn people_entering_an_unloaded_session_at_once_meet_one_session() -> Result<()> {
    let scene = Scene::on(eager_server().await, Settings::default()).await?;
    let mut people = Vec::new();
    for name in ["Amara", "Ben", "Chidi", "Dana", "Eli", "Fola", "Gus", "Hana"] {
        people.push(scene.member(name).await?);
    }
    let Scene { server, session, facilitator, .. } = scene;
    facilitator.client.close().await;
    let tokens: Vec<String> = people.iter().map(|person| person.token.clone()).collect();
    for person in people {
        person.client.close().await;
    }
    until_loaded(&server, 0).await?;

    let server = std::sync::Arc::new(server);
    let mut entering = tokio::task::JoinSet::new();
    for (index, token) in tokens.into_iter().enumerate() {
        let (server, session) = (server.clone(), session.clone());
        entering.spawn(async move {
            let mut client = server.client().await;
            client.hello(&session, &token).await?;
            let seq = client.say(Room::Plenary, &format!("arrived {index}")).await?;
            anyhow::Ok((seq, client))
        });
    }
    let mut numbers = BTreeSet::new();
    let mut clients = Vec::new();
    while let Some(entered) = entering.join_next().await {
        let (seq, client) = entered??;
        numbers.insert(seq);
        clients.push(client);
    }
    assert_eq!(server.hub.session_counts().1, 1, "one session, loaded once");
    let first = *numbers.first().context("eight messages")?;
    let expected: BTreeSet<u64> = (first..first + 8).collect();
    assert_eq!(numbers, expected, "every message has its own number, with no gap");
    Ok(())
}

#[tokio::test]
async fn a_database_from_before_listings_is_listed_from_its_events() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let _amara = scene.member("Amara").await?;
    scene.facilitator.client.ok(Command::SetTopic { text: "Belonging".into() }).await?;
    let Scene { server, session, facilitator, invite, .. } = scene;
    // What a data folder written by an earlier version holds: no listings.
    let server = server
        .restart_with(|folder| {
            let database = rusqlite::Connection::open(folder.join("caucus.db")).expect("the database opens");
            database.execute("UPDATE sessions SET listing = NULL", []).expect("listings are cleared");
        })
        .await;
    let listed = server.hub.listed(&session).context("the session is listed")?;
    ensure!(listed.listing.facilitators.contains(&facilitator.id), "{:?}", listed.listing);
    let invite =
        caucus_tests::http(server.address, "GET", &format!("/api/invites/{invite}"), &[], None).await?;
    ensure!(invite.status == 200, "{}", invite.body);
    let mut client = server.client().await;
    let welcome = client.hello(&session, &facilitator.token).await?;
    assert_eq!(welcome.session.topic.as_deref(), Some("Belonging"));
    Ok(())
}
