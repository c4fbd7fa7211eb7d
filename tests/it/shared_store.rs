//! The shared PostgreSQL store, against a real PostgreSQL: sessions are kept there and
//! come back whole, and a node that has lost a session to another can never write to it
//! again: the database refuses, and the node sends its people to the new owner.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_protocol::{
    Ack, Caucus, CaucusLabels, ClientFrame, ClientId, Command, EncodedEvent, EventBody, MemberId, Room,
    RoomEvent, ServerMessage, SessionId, Settings, close,
};
use caucus_server::config::{Config, SecretText, StoreKind};
use caucus_server::store::{
    PostgresOptions, PostgresStore, SessionRecord, Store, StoreError, StoreErrorKind,
};
use caucus_tests::{Client, GuestToken, fresh_client_id, http, room};

use crate::accounts::{create_body, sign_in};
use crate::support::binary::{Running, caucus_binary, serve};
use crate::support::postgres::{PrivatePostgres, connect, postgres};
use crate::support::{Scene, TestServer};

/// Sets `config` to keep its sessions in the database at `url`, as node `name`. The
/// lease is renewed rarely, so that a test may end it by hand without a renewal
/// bringing it back.
fn on_postgres(config: &mut Config, url: &str, name: &str) {
    config.store.kind = StoreKind::Postgres;
    config.store.database_url = Some(SecretText(url.to_owned()));
    config.cluster.node_name = Some(name.to_owned());
    config.cluster.lease_renew_ms = 3_600_000;
    config.cluster.lease_ttl_ms = 7_200_000;
}

async fn node(url: &str, name: &str) -> TestServer {
    TestServer::start_with(|config| on_postgres(config, url, name)).await
}

/// Ends every lease of the nodes named `name`, as if they had stopped renewing long ago.
async fn end_lease(url: &str, name: &str) -> Result<()> {
    let client = connect(url).await?;
    let ended = client
        .execute(
            "UPDATE nodes SET expires_at = now() - interval '1 second' WHERE node_id LIKE $1",
            &[&format!("{name}-%")],
        )
        .await?;
    ensure!(ended == 1, "expected one node named {name}, found {ended}");
    Ok(())
}

/// Every stored event of `session` as (room, seq, epoch, body), in the session's order.
pub(crate) async fn stored_rows(url: &str, session: &SessionId) -> Result<Vec<(String, i64, i64, String)>> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT room, seq, epoch, body FROM events WHERE session_id = $1 ORDER BY pos",
            &[&session.as_str()],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))).collect())
}

/// Each room's numbers, in the stored order, run 1, 2, 3… with no gap or repeat.
pub(crate) fn contiguous(rows: &[(String, i64, i64, String)]) -> bool {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    rows.iter().all(|(room, seq, _, _)| {
        let previous = last.insert(room.as_str(), *seq).unwrap_or(0);
        *seq == previous + 1
    })
}

#[tokio::test]
async fn a_session_kept_in_postgres_comes_back_whole_after_a_restart() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let mut scene = Scene::on(node(&url, "first").await, Settings::default()).await?;
    let mut bea = scene.seated("Bea", Caucus::A).await?;
    scene.open_round().await?;
    bea.client.say(Room::Caucus(Caucus::A), "words for caucus A only").await?;
    scene.facilitator.client.say(Room::Plenary, "words for everyone").await?;

    // A graceful stop gives the session up, so the next node takes it at once.
    let server = scene.server.restart().await;
    let mut again = server.client().await;
    let (_, replay) = again.hello_resume(&scene.session, &bea.token, BTreeMap::new()).await?;
    let said = |room: Room| -> Vec<&str> {
        replay
            .iter()
            .filter(|event| event.room == room)
            .filter_map(|event| match &event.body {
                EventBody::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    };
    ensure!(said(Room::Caucus(Caucus::A)) == ["words for caucus A only"], "{replay:?}");
    ensure!(said(Room::Plenary) == ["words for everyone"], "{replay:?}");
    again.say(Room::Caucus(Caucus::A), "after the restart").await?;

    let rows = stored_rows(&url, &scene.session).await?;
    ensure!(contiguous(&rows), "numbers with a gap or repeat: {rows:?}");
    let (_, _, epoch, body) = rows.last().context("rows")?;
    ensure!(body.contains("after the restart") && *epoch == 2, "the restarted node claimed it: {rows:?}");
    ensure!(rows.iter().all(|(_, _, epoch, _)| *epoch <= 2));
    Ok(())
}

/// Accounts and communities stay in the data folder's SQLite file beside PostgreSQL: a
/// node on a fresh folder signs people in, and a guest's seat kept in an account
/// retires the guest's token there too.
#[tokio::test]
async fn a_node_on_postgres_signs_people_in_and_keeps_a_guests_seat() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let server = TestServer::start_with(|config| {
        on_postgres(config, &url, "accounts");
        config.accounts.admins = vec!["ada@example.org".into()];
    })
    .await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created = ada.post("/api/sessions", &create_body("On PostgreSQL")).await?;
    ensure!(created.status == 201, "{} {}", created.status, created.body);
    let created: SessionCreated = created.json()?;

    let joined: Joined = server.join(&created.invite_code, "Amara").await?;
    let mut guest = server.client().await;
    guest.hello(&created.session, joined.guest_token()).await?;
    let amara = sign_in(&server, "amara@example.org").await?;
    let kept = amara.post("/api/me/seats", &format!(r#"{{"token":"{}"}}"#, joined.guest_token())).await?;
    ensure!(kept.status == 200, "{} {}", kept.status, kept.body);
    ensure!(guest.expect_close().await?.code == Some(close::SEAT_KEPT), "the guest's connection stays open");
    let mut socket = amara.socket().await?;
    let welcome = socket.hello(&created.session, "").await?;
    ensure!(welcome.you.id == joined.member, "{:?}", welcome.you);
    Ok(())
}

fn record(id: &str) -> SessionRecord {
    SessionRecord {
        id: SessionId::new(id).expect("a valid id"),
        title: "Fenced".into(),
        labels: CaucusLabels { a: "A".into(), b: "B".into() },
        settings: Settings::default(),
        ground_rules: None,
        invite_code: format!("invite-{id}"),
        created_by: MemberId::new("f-ada").expect("a valid id"),
        created_at: 1,
        allow_guests: true,
    }
}

fn said(seq: u64, text: &str) -> RoomEvent {
    RoomEvent {
        room: Room::Plenary,
        seq,
        at: 10,
        body: EventBody::Message {
            from: MemberId::new("m-1").expect("valid"),
            text: text.into(),
            client_id: None,
        },
    }
}

async fn open_store(url: &str, name: &str) -> Result<PostgresStore> {
    Ok(PostgresStore::open(PostgresOptions {
        url: url.to_owned(),
        ca_file: None,
        node_name: name.to_owned(),
        call_timeout: Duration::from_secs(10),
        pool_size: 4,
        lease_ttl: Duration::from_secs(7200),
        lease_renew: Duration::from_secs(3600),
    })
    .await?)
}

#[tokio::test]
async fn a_node_whose_lease_ran_out_can_never_write_the_session_another_node_claimed() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let first = open_store(&url, "first").await?;
    let second = open_store(&url, "second").await?;
    let session = record("s-fenced");
    first.create_session(&session).await?;
    first.claim(&session.id).await?;
    first.append(&session.id, vec![EncodedEvent::of(&said(1, "one"))], None).await?;

    let early = second.claim(&session.id).await.expect_err("the first node's lease still runs");
    ensure!(early.kind == StoreErrorKind::HeldElsewhere, "{early:?}");

    // The first node stops renewing (paused, cut off): once its lease has run out on the
    // database's clock, the second node may take the session.
    end_lease(&url, "first").await?;
    second.claim(&session.id).await?;
    let loaded = second.load_session(&session.id).await?.context("stored")?;
    ensure!(loaded.events.len() == 1, "the claim sees what was committed before it");

    // The first node wakes up believing it still owns the session, before the new
    // owner has written anything: no number or position is taken yet, so only the
    // epoch can refuse its write.
    let stale =
        first.append(&session.id, vec![EncodedEvent::of(&said(2, "two, from the old owner"))], None).await;
    ensure!(stale.as_ref().is_err_and(StoreError::is_fenced), "the stale write was not fenced: {stale:?}");
    second.append(&session.id, vec![EncodedEvent::of(&said(2, "two, from the new owner"))], None).await?;
    let later =
        first.append(&session.id, vec![EncodedEvent::of(&said(3, "three, from the old owner"))], None).await;
    ensure!(later.as_ref().is_err_and(StoreError::is_fenced), "{later:?}");
    let purge = first.purge(&session.id, &[Room::Plenary]).await;
    ensure!(purge.as_ref().is_err_and(StoreError::is_fenced), "a purge from the old owner: {purge:?}");

    let rows = stored_rows(&url, &session.id).await?;
    let bodies: Vec<&str> = rows.iter().map(|(_, _, _, body)| body.as_str()).collect();
    ensure!(rows.len() == 2 && contiguous(&rows), "{bodies:?}");
    ensure!(bodies.iter().all(|body| !body.contains("old owner")), "{bodies:?}");
    ensure!(rows[1].2 == 2, "the second write carries the second epoch: {rows:?}");
    Ok(())
}

#[tokio::test]
async fn people_on_a_node_that_lost_their_session_are_refused_and_resume_on_the_new_owner() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let mut scene = Scene::on(node(&url, "old").await, Settings::default()).await?;
    let mut bea = scene.member("Bea").await?;
    bea.client.say(Room::Plenary, "said before the takeover").await?;

    // The old node's lease runs out and a new node takes the session when Bea's second
    // device says hello there.
    end_lease(&url, "old").await?;
    let new = node(&url, "new").await;
    let mut elsewhere = new.client().await;
    let (_, replay) = elsewhere.hello_resume(&scene.session, &bea.token, BTreeMap::new()).await?;
    ensure!(
        replay.iter().any(|event| matches!(&event.body, EventBody::Message { text, .. } if text == "said before the takeover")),
        "the new owner replays what was committed"
    );

    // On the old node nothing can be stored any more: the message is neither
    // acknowledged nor shown to anyone, and everyone there is closed with 1001.
    let moving = fresh_client_id();
    let text = "said while the session moved";
    let say = Command::Say { room: room(Room::Plenary), text: text.into() };
    bea.client.send(&ClientFrame::with_id(moving.clone(), say.clone())).await?;
    let closed = bea.client.expect_close().await?;
    ensure!(closed.code == Some(close::GOING_AWAY), "{closed:?}");
    ensure!(!bea.client.transcript().contains(moving.as_str()), "acknowledged or shown by the old owner");
    let closed = scene.facilitator.client.expect_close().await?;
    ensure!(closed.code == Some(close::GOING_AWAY), "the facilitator too: {closed:?}");
    ensure!(!scene.facilitator.client.transcript().contains(text), "shown by the old owner");

    // Bea's cursors bring her up to date on the new owner, where her unacknowledged
    // message, sent again as a client does, is stored once.
    let mut back = new.client().await;
    back.hello_resume(&scene.session, &bea.token, bea.client.resume_cursors()).await?;
    back.send(&ClientFrame::with_id(moving.clone(), say)).await?;
    let ack = back.reply_to(&moving).await?;
    ensure!(ack.is_ok(), "{ack:?}");
    let rows = stored_rows(&url, &scene.session).await?;
    ensure!(contiguous(&rows), "{rows:?}");
    let stored = rows.iter().filter(|(_, _, _, body)| body.contains(text)).count();
    ensure!(stored == 1, "stored {stored} times: {rows:?}");
    scene.server.stop().await?;
    new.stop().await?;
    Ok(())
}

#[tokio::test]
async fn caucus_migrate_brings_a_new_database_up_to_date_even_from_two_nodes_at_once() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let migrate = || {
        Process::new(caucus_binary())
            .arg("migrate")
            .env("CAUCUS_DATABASE_URL", &url)
            .env("CAUCUS_JWT_SECRET", "a-shared-signing-key-of-at-least-32-bytes")
            .env("CAUCUS_LOG", "warn")
            .output()
    };
    let (one, two) = std::thread::scope(|scope| {
        let one = scope.spawn(migrate);
        let two = scope.spawn(migrate);
        (one.join().expect("runs"), two.join().expect("runs"))
    });
    for output in [one?, two?] {
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        ensure!(output.status.success() && said.contains("at version 1"), "{said}");
    }
    let client = connect(&url).await?;
    let version: i32 = client.query_one("SELECT version FROM caucus_schema", &[]).await?.get(0);
    ensure!(version == 1);

    // A shared store without a shared signing key is refused before anything starts.
    let data = tempfile::tempdir()?;
    let output = Process::new(caucus_binary())
        .arg("serve")
        .env("CAUCUS_DATABASE_URL", &url)
        .env("CAUCUS_DATA_DIR", data.path())
        .env("CAUCUS_LISTEN", "127.0.0.1:0")
        .env_remove("CAUCUS_JWT_SECRET")
        .env_remove("CAUCUS_JWT_SECRET_FILE")
        .output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success() && said.contains("CAUCUS_JWT_SECRET_FILE"), "{said}");
    Ok(())
}

/// A configuration file for `caucus serve` on the database at `url`, in `folder`, with a
/// shared signing key, leases of `lease_ms`, and limits raised for bursts.
fn node_config(folder: &std::path::Path, url: &str, lease_ms: u64) -> Result<std::path::PathBuf> {
    let key = folder.join("signing-key");
    std::fs::write(&key, "a-shared-signing-key-of-at-least-32-bytes")?;
    let config = folder.join("caucus.toml");
    std::fs::write(
        &config,
        format!(
            "jwt_secret_file = {key:?}\n[store]\nkind = \"postgres\"\ndatabase_url = {url:?}\n\
             [cluster]\nlease_ttl_ms = {lease_ms}\nlease_renew_ms = 500\n\
             [limits]\nframes_per_sec = 100000\nframe_burst = 100000\n\
             member_frames_per_sec = 100000\nmember_frame_burst = 100000\nreplay_per_room = 1024\n\
             outbound_queue = 8192\noutbound_bytes = 16777216\n"
        ),
    )?;
    Ok(config)
}

/// `caucus serve` on `data` with `config`, running a new session that Bea has joined
/// and is connected to.
async fn first_node_with_bea(
    data: &std::path::Path,
    config: &std::path::Path,
) -> Result<(Running, SessionCreated, Joined, Client)> {
    let node = serve(data, Some(config))?;
    let created = caucus_tests::create_session(node.address, &node.sign_in, "Moving").await?;
    let body = serde_json::json!({ "invite_code": created.invite_code, "name": "Bea" }).to_string();
    let joined: Joined = http(node.address, "POST", "/api/join", &[], Some(&body)).await?.json()?;
    let mut bea = Client::connect(node.address).await?;
    bea.hello(&created.session, joined.guest_token()).await?;
    Ok((node, created, joined, bea))
}

#[tokio::test]
async fn when_the_node_running_a_session_is_killed_mid_burst_another_takes_it_with_every_acknowledged_message()
-> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let folder = tempfile::tempdir()?;
    let config = node_config(folder.path(), &url, 2000)?;
    let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut first, created, joined, mut bea) = first_node_with_bea(data_a.path(), &config).await?;
    // The second node starts once the session exists: nodes do not yet tell each other
    // of new sessions.
    let second = serve(data_b.path(), Some(&config))?;

    // Bea sends 1,000 messages without waiting; the first node is killed once 50 are
    // acknowledged, with the rest in flight.
    let ids: Vec<ClientId> = (0..1000).map(|_| fresh_client_id()).collect();
    for (n, id) in ids.iter().enumerate() {
        let say = Command::Say { room: room(Room::Plenary), text: format!("burst {n}") };
        bea.send(&ClientFrame::with_id(id.clone(), say)).await?;
    }
    let mut acked = BTreeSet::new();
    let mut killed_at = None;
    while let Ok(message) = bea.next().await {
        if let ServerMessage::Ack(Ack { client_id: Some(id), .. }) = message {
            acked.insert(id);
            if acked.len() == 50 {
                first.kill_9();
                killed_at = Some(Instant::now());
            }
        }
    }
    let killed_at = killed_at.context("the first node was killed during the burst")?;
    ensure!(acked.len() < ids.len(), "the burst finished before the kill; nothing was in flight");

    // Bea reconnects to the second node, which takes the session once the first
    // node's lease has run out, holding her hello until then. Her cursors bring what
    // she missed, from the next number on.
    let seen = bea.resume_cursors();
    let mut again = Client::connect(second.address).await?;
    let (_, replay) = again.hello_resume(&created.session, joined.guest_token(), seen.clone()).await?;
    let took = killed_at.elapsed();
    let first = seen.get("plenary").copied().unwrap_or(0) + 1;
    for (expected, event) in (first..).zip(replay.iter().filter(|event| event.room == Room::Plenary)) {
        ensure!(event.seq == expected, "the replay skipped from {expected} to {}", event.seq);
    }
    let rows = stored_rows(&url, &created.session).await?;
    for id in &acked {
        let needle = format!("\"{}\"", id.as_str());
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(&needle)).count();
        ensure!(copies == 1, "acknowledged {id:?} is stored {copies} times after the takeover");
    }
    // Whatever was not acknowledged is sent again, as a client does; each is stored once.
    let unacked: Vec<(usize, &ClientId)> =
        ids.iter().enumerate().filter(|(_, id)| !acked.contains(*id)).collect();
    for (n, id) in &unacked {
        let say = Command::Say { room: room(Room::Plenary), text: format!("burst {n}") };
        again.send(&ClientFrame::with_id((*id).clone(), say)).await?;
    }
    for (_, id) in &unacked {
        ensure!(again.reply_to(id).await?.is_ok(), "{id:?} was refused on the new node");
    }
    let rows = stored_rows(&url, &created.session).await?;
    ensure!(contiguous(&rows), "numbers with a gap or repeat");
    for (n, _) in ids.iter().enumerate() {
        let text = format!("\"burst {n}\"");
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(&text)).count();
        ensure!(copies == 1, "message {n} is stored {copies} times");
    }
    let metrics = http(second.address, "GET", "/metrics", &[], None).await?.body;
    for line in ["caucus_session_takeovers_total 1", "caucus_sessions_owned 1"] {
        ensure!(metrics.lines().any(|shown| shown == line), "no `{line}` in the second node's metrics");
    }
    eprintln!(
        "takeover: {} acknowledged before kill -9, the second node welcomed Bea {} ms after it",
        acked.len(),
        took.as_millis()
    );
    Ok(())
}

#[tokio::test]
async fn a_node_whose_lease_cannot_be_renewed_says_it_is_not_ready_and_answers_no_reads() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let server = TestServer::start_with(|config| {
        on_postgres(config, &url, "lapsed");
        config.cluster.lease_renew_ms = 200;
        config.cluster.lease_ttl_ms = 2000;
    })
    .await;
    let ready = http(server.address, "GET", "/readyz", &[], None).await?;
    ensure!(ready.status == 200, "{} {}", ready.status, ready.body);
    let mut scene = Scene::on(server, Settings::default()).await?;
    scene.facilitator.client.say(Room::Plenary, "said while the lease held").await?;

    // The node's row is gone (a janitor, an operator): renewals find nothing to renew.
    connect(&url).await?.execute("DELETE FROM nodes WHERE node_id LIKE 'lapsed-%'", &[]).await?;
    let mut answer = None;
    for _ in 0..100 {
        let response = http(scene.server.address, "GET", "/readyz", &[], None).await?;
        if response.status == 503 {
            answer = Some(response.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = answer.context("/readyz still answered 200 ten seconds after the lease lapsed")?;
    ensure!(body.contains("lease"), "{body}");
    let alive = http(scene.server.address, "GET", "/healthz", &[], None).await?;
    ensure!(alive.status == 200, "the process is alive, only not ready");

    // Another node may run the session now, so this one answers no reads from what it
    // holds: no history, and no welcome.
    let history = Command::History { room: room(Room::Plenary), before: None, limit: 50 };
    let refused = scene.facilitator.client.refused(history).await?;
    ensure!(refused.code == caucus_protocol::ErrorCode::Unavailable, "{refused:?}");
    let mut late = scene.server.client().await;
    let greeted = late.hello(&scene.session, &scene.facilitator.token).await;
    ensure!(greeted.is_err(), "welcomed past the lease");
    let closed = late.expect_close().await?;
    ensure!(closed.code == Some(close::TRY_AGAIN_LATER), "{closed:?}");
    scene.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_sessions_over_without_waiting_for_its_lease() -> Result<()> {
    let Some(postgres) = postgres() else { return Ok(()) };
    let url = postgres.database().await?;
    let folder = tempfile::tempdir()?;
    // Leases of ten minutes: the session can move within this test only if the stopping
    // node gives it up.
    let config = node_config(folder.path(), &url, 600_000)?;
    let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (mut first, created, joined, mut bea) = first_node_with_bea(data_a.path(), &config).await?;
    bea.say(Room::Plenary, "said before the drain").await?;
    let second = serve(data_b.path(), Some(&config))?;

    let status = Process::new("kill").args(["-TERM", &first.child.id().to_string()]).status()?;
    ensure!(status.success());
    let closed = bea.expect_close().await?;
    ensure!(closed.code == Some(close::GOING_AWAY), "{closed:?}");
    let exit = tokio::task::spawn_blocking(move || first.child.wait()).await??;
    ensure!(exit.success(), "the stopping node exits cleanly: {exit:?}");

    let mut again = Client::connect(second.address).await?;
    again.hello_resume(&created.session, joined.guest_token(), bea.resume_cursors()).await?;
    again.say(Room::Plenary, "said after the drain").await?;
    let rows = stored_rows(&url, &created.session).await?;
    ensure!(contiguous(&rows), "{rows:?}");
    for text in ["said before the drain", "said after the drain"] {
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(text)).count();
        ensure!(copies == 1, "{text}: stored {copies} times");
    }
    ensure!(rows.last().is_some_and(|(_, _, epoch, _)| *epoch == 2), "the second node claimed it: {rows:?}");
    Ok(())
}

#[tokio::test]
async fn a_postgres_restart_loses_nothing_acknowledged_and_keeps_everyone_connected() -> Result<()> {
    let Some(postgres) = PrivatePostgres::start() else { return Ok(()) };
    let url = postgres.url();
    let server = TestServer::start_with(|config| {
        on_postgres(config, &url, "steady");
        config.store.call_timeout_ms = 2000;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut bea = scene.member("Bea").await?;
    bea.client.say(Room::Plenary, "said before the restart").await?;

    let _postgres = tokio::task::spawn_blocking(move || postgres.restart().map(|()| postgres)).await??;
    // The first write after the restart may find a cut connection and be refused with
    // `unavailable`; the client sends it again, as it would.
    let mut answers = Vec::new();
    let id = fresh_client_id();
    let say = Command::Say { room: room(Room::Plenary), text: "said after the restart".into() };
    for _ in 0..5 {
        bea.client.send(&ClientFrame::with_id(id.clone(), say.clone())).await?;
        let answer = bea.client.reply_to(&id).await?;
        let done = answer.is_ok();
        answers.push(answer);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(answers.last().is_some_and(Result::is_ok), "never stored: {answers:?}");
    ensure!(
        answers
            .iter()
            .filter_map(|answer| answer.as_ref().err())
            .all(|error| error.code == caucus_protocol::ErrorCode::Unavailable),
        "{answers:?}"
    );
    let rows = stored_rows(&url, &scene.session).await?;
    ensure!(contiguous(&rows), "{rows:?}");
    for text in ["said before the restart", "said after the restart"] {
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(text)).count();
        ensure!(copies == 1, "{text}: stored {copies} times");
    }
    ensure!(rows.iter().all(|(_, _, epoch, _)| *epoch == 1), "nobody took the session over: {rows:?}");
    scene.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn the_store_reaches_postgres_over_tls_and_checks_its_certificate() -> Result<()> {
    let Some((postgres, ca)) = PrivatePostgres::start_with_tls() else { return Ok(()) };
    let url = format!("{}?sslmode=require", postgres.url());
    let open = |url: String, ca_file: Option<std::path::PathBuf>| {
        PostgresStore::open(PostgresOptions {
            url,
            ca_file,
            node_name: "tls".into(),
            call_timeout: Duration::from_secs(10),
            pool_size: 2,
            lease_ttl: Duration::from_secs(60),
            lease_renew: Duration::from_secs(10),
        })
    };
    // Trusting the database's authority, the store connects and migrates over TLS.
    let store = open(url.clone(), Some(ca.clone())).await?;
    store.create_session(&record("s-over-tls")).await?;
    // The server takes TLS only, so that connection was encrypted.
    let plain = open(format!("{}?sslmode=disable", postgres.url()), Some(ca)).await;
    ensure!(plain.is_err(), "the server took a connection without TLS");
    // Without that authority the certificate is refused, and the error says why.
    let untrusted = open(url, None).await.expect_err("an unknown authority is refused");
    ensure!(
        untrusted.reason.contains("certificate") || untrusted.reason.contains("Unknown"),
        "{untrusted:?}"
    );
    Ok(())
}
