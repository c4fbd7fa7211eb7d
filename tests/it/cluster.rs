//! Cluster mode against real servers: three Caucus nodes sharing a PostgreSQL store and
//! a NATS bus. People may connect to any node; the node running their session decides
//! everything they receive, and when it dies, pauses or loses the bus, they resume on
//! another with nothing acknowledged lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_protocol::{
    Ack, Caucus, ClientFrame, ClientId, Command, EventBody, Room, RoomEvent, ServerMessage, SessionId,
    Settings, close,
};
use caucus_server::config::{Config, SecretText, StoreKind};
use caucus_tests::{Client, GuestToken, fresh_client_id, http, room};

use crate::shared_store::{contiguous, stored_rows};
use crate::support::binary::{Running, serve};
use crate::support::nats::{Nats, nats};
use crate::support::postgres::{PrivatePostgres, postgres};
use crate::support::{GROUND_RULES, TestServer};

/// Sets `config` to run as node `name` of a cluster on the database at `url` and the
/// bus at `bus`, with leases of four seconds.
pub fn on_cluster(config: &mut Config, url: &str, bus: &str, name: &str) {
    config.store.kind = StoreKind::Postgres;
    config.store.database_url = Some(SecretText(url.to_owned()));
    config.cluster.node_name = Some(name.to_owned());
    config.cluster.nats_url = Some(SecretText(bus.to_owned()));
    config.cluster.lease_ttl_ms = 4_000;
    config.cluster.lease_renew_ms = 1_000;
}

/// Three nodes in this process on a new database and the bus at `bus`; `None` where
/// PostgreSQL or NATS is not installed (outside CI).
pub async fn three_nodes(bus: Option<&Nats>) -> Result<Option<(Vec<TestServer>, String)>> {
    let (Some(postgres), Some(bus)) = (postgres(), bus.map(Nats::url).or_else(|| nats().map(Nats::url)))
    else {
        return Ok(None);
    };
    let url = postgres.database().await?;
    Ok(Some((three_nodes_on(&url, &bus).await, url)))
}

/// Three nodes in this process on the database at `url` and the bus at `bus`.
async fn three_nodes_on(url: &str, bus: &str) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(TestServer::start_with(|config| on_cluster(config, url, bus, name)).await);
    }
    // Each node hears the others' heartbeats before anyone connects.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    nodes
}

/// Joins `name` by invite through node `address`, and connects them there.
pub async fn join_on(
    address: SocketAddr,
    session: &SessionId,
    invite: &str,
    name: &str,
) -> Result<(Joined, Client)> {
    let body =
        serde_json::json!({ "invite_code": invite, "name": name, "accept_ground_rules": GROUND_RULES })
            .to_string();
    let response = http(address, "POST", "/api/join", &[], Some(&body)).await?;
    ensure!(response.status == 200, "joining through {address}: {} {}", response.status, response.body);
    let joined: Joined = response.json()?;
    let mut client = Client::connect(address).await?;
    client
        .hello(session, joined.guest_token())
        .await
        .with_context(|| format!("{name} says hello on {address}"))?;
    Ok((joined, client))
}

/// Every event a connection received, in each room, is numbered one more than the one
/// before: nothing skipped, nothing twice.
pub fn in_order(client: &Client) -> Result<()> {
    let mut last: BTreeMap<Room, u64> = BTreeMap::new();
    for frame in &client.raw {
        let Ok(ServerMessage::Event(RoomEvent { room, seq, .. })) = serde_json::from_str(frame) else {
            continue;
        };
        if let Some(previous) = last.insert(room, seq) {
            ensure!(seq == previous + 1, "{room} went from #{previous} to #{seq} on one connection");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_session_with_people_on_three_nodes_keeps_each_caucus_to_its_members() -> Result<()> {
    let Some((nodes, _url)) = three_nodes(None).await? else { return Ok(()) };
    let [a, b, c] = &nodes[..] else { unreachable!() };
    let token = a.facilitator_token("Ada");
    let created = a.create_session(&token, Settings::default()).await?;
    let session = &created.session;
    // The facilitator, in no caucus, is on a node that does not run the session.
    let mut ada = Client::connect(c.address).await?;
    ada.hello(session, &token).await?;
    let (_, mut bea) = join_on(b.address, session, &created.invite_code, "Bea").await?;
    let (_, mut cy) = join_on(c.address, session, &created.invite_code, "Cy").await?;
    let (_, mut dee) = join_on(a.address, session, &created.invite_code, "Dee").await?;
    bea.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    dee.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    cy.ok(Command::ChooseCaucus { caucus: Some(Caucus::B) }).await?;
    ada.ok(Command::OpenCaucuses { duration_secs: None }).await?;

    let flagged = bea.say(Caucus::A.room(), "A-secret: said on node b").await?;
    dee.expect_body(
        Caucus::A.room(),
        |body| matches!(body, EventBody::Message { text, .. } if text.contains("A-secret")),
    )
    .await?;
    cy.say(Caucus::B.room(), "B-secret: said on node c").await?;
    dee.ok(Command::Flag { room: room(Caucus::A.room()), seq: flagged }).await?;
    ada.ok(Command::Reconvene { round: 1 }).await?;
    for client in [&mut ada, &mut bea, &mut cy, &mut dee] {
        client
            .expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { caucus: Caucus::A, .. }))
            .await?;
        client.sync().await?;
        in_order(client)?;
    }
    let heard = |client: &Client, needle: &str| client.raw.iter().any(|frame| frame.contains(needle));
    ensure!(heard(&bea, "A-secret") && heard(&dee, "A-secret"), "caucus A's members heard it");
    ensure!(heard(&cy, "B-secret"), "caucus B's member heard it");
    // Carried into the plenary, a point reaches everyone, by caucus: the caucus's own
    // talk reaches no one else, however far the nodes are from each other.
    let only_carried = |client: &Client| {
        client.raw.iter().all(|frame| !frame.contains("A-secret") || frame.contains("\"kind\":\"feedback\""))
    };
    for (who, client) in [("Bea", &bea), ("Dee", &dee), ("Ada", &ada)] {
        ensure!(!heard(client, "B-secret"), "{who} received caucus B's talk");
    }
    for (who, client) in [("Cy", &cy), ("Ada", &ada)] {
        let leaked: Vec<&String> = client
            .raw
            .iter()
            .filter(|frame| frame.contains("A-secret") && !frame.contains("\"kind\":\"feedback\""))
            .collect();
        ensure!(only_carried(client), "{who} received caucus A's talk outside the carried point: {leaked:?}");
        ensure!(heard(client, "A-secret"), "{who} did not receive the carried point");
    }

    // The HTTP API answers on any node: minutes through node b, from the node running it.
    let minutes = http(
        b.address,
        "GET",
        &format!("/api/sessions/{session}/minutes"),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await?;
    ensure!(minutes.status == 200, "{} {}", minutes.status, minutes.body);
    ensure!(minutes.body.contains("A-secret") && !minutes.body.contains("B-secret"), "{}", minutes.body);
    Ok(())
}

/// A configuration file for `caucus serve` as a cluster node, in `folder`.
fn cluster_config(
    folder: &std::path::Path,
    url: &str,
    bus: &str,
    lease_ms: u64,
) -> Result<std::path::PathBuf> {
    let key = folder.join("signing-key");
    std::fs::write(&key, "a-shared-signing-key-of-at-least-32-bytes")?;
    let config = folder.join("caucus.toml");
    std::fs::write(
        &config,
        format!(
            "jwt_secret_file = {key:?}\n[store]\nkind = \"postgres\"\ndatabase_url = {url:?}\n\
             [cluster]\nnats_url = {bus:?}\nlease_ttl_ms = {lease_ms}\nlease_renew_ms = 500\n\
             [limits]\nframes_per_sec = 100000\nframe_burst = 100000\n\
             member_frames_per_sec = 100000\nmember_frame_burst = 100000\nreplay_per_room = 1024\n\
             outbound_queue = 8192\noutbound_bytes = 16777216\n"
        ),
    )?;
    Ok(config)
}

/// Three `caucus serve` processes as one cluster, a session created on the first, and
/// Bea joined through the second and connected there.
struct ThreeProcesses {
    url: String,
    nodes: Vec<Running>,
    created: SessionCreated,
    joined: Joined,
    bea: Client,
    _folders: Vec<tempfile::TempDir>,
}

async fn three_processes(lease_ms: u64) -> Result<Option<ThreeProcesses>> {
    let (Some(postgres), Some(bus)) = (postgres(), nats()) else { return Ok(None) };
    let url = postgres.database().await?;
    let folder = tempfile::tempdir()?;
    let config = cluster_config(folder.path(), &url, &bus.url(), lease_ms)?;
    let mut folders = vec![folder];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let data = tempfile::tempdir()?;
        nodes.push(serve(data.path(), Some(&config))?);
        folders.push(data);
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let created = caucus_tests::create_session(nodes[0].address, &nodes[0].sign_in, "Spread").await?;
    let body = serde_json::json!({ "invite_code": created.invite_code, "name": "Bea" }).to_string();
    let joined: Joined = http(nodes[1].address, "POST", "/api/join", &[], Some(&body)).await?.json()?;
    let mut bea = Client::connect(nodes[1].address).await?;
    bea.hello(&created.session, joined.guest_token()).await?;
    Ok(Some(ThreeProcesses { url, nodes, created, joined, bea, _folders: folders }))
}

#[tokio::test]
async fn killing_the_node_running_a_session_mid_burst_moves_it_with_every_acknowledged_message() -> Result<()>
{
    let Some(mut cluster) = three_processes(2_000).await? else { return Ok(()) };
    // Bea, on node b, sends 500 messages without waiting; node a, which runs the
    // session, is killed once 50 are acknowledged.
    let ids: Vec<ClientId> = (0..500).map(|_| fresh_client_id()).collect();
    for (n, id) in ids.iter().enumerate() {
        let say = Command::Say { room: room(Room::Plenary), text: format!("burst {n}") };
        cluster.bea.send(&ClientFrame::with_id(id.clone(), say)).await?;
    }
    let mut acked = BTreeSet::new();
    let mut killed_at = None;
    let closed = loop {
        match cluster.bea.next().await {
            Ok(ServerMessage::Ack(Ack { client_id: Some(id), .. })) => {
                acked.insert(id);
                if acked.len() == 50 {
                    cluster.nodes[0].kill_9();
                    killed_at = Some(Instant::now());
                }
            }
            Ok(_) => {}
            Err(_) => break cluster.bea.closed.clone(),
        }
    };
    let killed_at = killed_at.with_context(|| {
        format!("node a was killed during the burst: {} acknowledged, then {closed:?}", acked.len())
    })?;
    ensure!(acked.len() < ids.len(), "the burst finished before the kill");
    // Node b noticed that node a went silent and sent Bea to resume.
    ensure!(closed.as_ref().and_then(|closed| closed.code) == Some(close::GOING_AWAY), "{closed:?}");

    // She resumes on node c, which takes the session once node a's lease has run out.
    let seen = cluster.bea.resume_cursors();
    let mut again = Client::connect(cluster.nodes[2].address).await?;
    let (_, replay) =
        again.hello_resume(&cluster.created.session, cluster.joined.guest_token(), seen.clone()).await?;
    let took = killed_at.elapsed();
    let first = seen.get("plenary").copied().unwrap_or(0) + 1;
    for (expected, event) in (first..).zip(replay.iter().filter(|event| event.room == Room::Plenary)) {
        ensure!(event.seq == expected, "the replay skipped from {expected} to {}", event.seq);
    }
    let rows = stored_rows(&cluster.url, &cluster.created.session).await?;
    for id in &acked {
        let needle = format!("\"{}\"", id.as_str());
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(&needle)).count();
        ensure!(copies == 1, "acknowledged {id:?} is stored {copies} times after the takeover");
    }
    let unacked: Vec<(usize, &ClientId)> =
        ids.iter().enumerate().filter(|(_, id)| !acked.contains(*id)).collect();
    for (n, id) in &unacked {
        let say = Command::Say { room: room(Room::Plenary), text: format!("burst {n}") };
        again.send(&ClientFrame::with_id((*id).clone(), say)).await?;
    }
    for (_, id) in &unacked {
        ensure!(again.reply_to(id).await?.is_ok(), "{id:?} was refused on node c");
    }
    let rows = stored_rows(&cluster.url, &cluster.created.session).await?;
    ensure!(contiguous(&rows), "numbers with a gap or repeat");
    for n in 0..ids.len() {
        let text = format!("\"burst {n}\"");
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(&text)).count();
        ensure!(copies == 1, "message {n} is stored {copies} times");
    }
    eprintln!(
        "cluster takeover: {} acknowledged before kill -9; welcomed on node c {} ms after it",
        acked.len(),
        took.as_millis()
    );
    Ok(())
}

#[tokio::test]
async fn killing_the_node_running_a_session_mid_reconvene_leaves_all_of_it_or_none() -> Result<()> {
    let Some(mut cluster) = three_processes(2_000).await? else { return Ok(()) };
    let mut ada = Client::connect(cluster.nodes[2].address).await?;
    ada.hello(&cluster.created.session, &cluster.nodes[0].sign_in).await?;
    cluster.bea.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    ada.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    for n in 0..8 {
        let seq = cluster.bea.say(Caucus::A.room(), &format!("point {n}")).await?;
        cluster.bea.ok(Command::Flag { room: room(Caucus::A.room()), seq }).await?;
    }
    // The reconvene is sent, and node a killed at once: it may have been stored or not.
    ada.send_command(Command::Reconvene { round: 1 }).await?;
    cluster.nodes[0].kill_9();
    // What the rows hold of a reconvene: the reconvened event, the caucuses' feedback
    // events, and whether caucus A's carries all eight points.
    let stored = |rows: &[(String, i64, i64, String)]| {
        let count = |kind: &str| {
            rows.iter().filter(|(_, _, _, body)| body.contains(&format!("\"kind\":\"{kind}\""))).count()
        };
        let whole = rows.iter().any(|(_, _, _, body)| {
            body.contains("\"kind\":\"feedback\"") && (0..8).all(|n| body.contains(&format!("\"point {n}\"")))
        });
        (count("reconvened"), count("feedback"), whole)
    };
    let rows = stored_rows(&cluster.url, &cluster.created.session).await?;
    let before = stored(&rows);
    ensure!(before == (0, 0, false) || before == (1, 2, true), "a partial reconvene was stored: {before:?}");

    // On node c, after the takeover, a reconvene asked again completes it exactly once.
    let mut again = Client::connect(cluster.nodes[2].address).await?;
    again.hello(&cluster.created.session, &cluster.nodes[0].sign_in).await?;
    let _ = again.request(Command::Reconvene { round: 1 }).await?;
    let rows = stored_rows(&cluster.url, &cluster.created.session).await?;
    ensure!(stored(&rows) == (1, 2, true), "after the takeover: {:?}", stored(&rows));
    ensure!(contiguous(&rows), "numbers with a gap or repeat");
    eprintln!(
        "mid-reconvene kill: the reconvene was {} when node a died",
        if before.0 == 1 { "stored" } else { "not stored" }
    );
    Ok(())
}

#[tokio::test]
async fn a_paused_owner_cannot_write_once_another_node_has_taken_its_session() -> Result<()> {
    let Some(mut cluster) = three_processes(2_000).await? else { return Ok(()) };
    // Cy is connected straight to node a, which runs the session.
    let body = serde_json::json!({ "invite_code": cluster.created.invite_code, "name": "Cy" }).to_string();
    let cy_joined: Joined =
        http(cluster.nodes[0].address, "POST", "/api/join", &[], Some(&body)).await?.json()?;
    let mut cy = Client::connect(cluster.nodes[0].address).await?;
    cy.hello(&cluster.created.session, cy_joined.guest_token()).await?;
    cluster.bea.say(Room::Plenary, "said before the pause").await?;

    let pid = cluster.nodes[0].child.id().to_string();
    ensure!(Process::new("kill").args(["-STOP", &pid]).status()?.success());
    // Cy says something the paused node will read only when it wakes.
    let late = fresh_client_id();
    cy.send(&ClientFrame::with_id(
        late.clone(),
        Command::Say { room: room(Room::Plenary), text: "said into the pause".into() },
    ))
    .await?;
    // Node b stops waiting on the silent node and sends Bea to resume; her hello waits
    // for node a's lease to run out, then node b takes the session.
    let closed = cluster.bea.expect_close().await?;
    ensure!(closed.code == Some(close::GOING_AWAY), "{closed:?}");
    let mut again = Client::connect(cluster.nodes[1].address).await?;
    again
        .hello_resume(&cluster.created.session, cluster.joined.guest_token(), cluster.bea.resume_cursors())
        .await?;
    again.say(Room::Plenary, "said after the takeover").await?;

    ensure!(Process::new("kill").args(["-CONT", &pid]).status()?.success());
    // Woken, node a tries to store Cy's message under its old claim: refused.
    let answer = tokio::time::timeout(Duration::from_secs(10), cy.reply_to(&late)).await;
    ensure!(
        !matches!(answer, Ok(Ok(Ok(_)))),
        "the paused node acknowledged a write after losing the session"
    );
    let rows = stored_rows(&cluster.url, &cluster.created.session).await?;
    ensure!(
        !rows.iter().any(|(_, _, _, body)| body.contains("said into the pause")),
        "the paused node's write was stored"
    );
    ensure!(contiguous(&rows), "{rows:?}");
    let after =
        rows.iter().find(|(_, _, _, body)| body.contains("said after the takeover")).context("stored")?;
    ensure!(after.2 == 2, "node b wrote under claim 2: {after:?}");
    Ok(())
}

#[tokio::test]
async fn restarting_nats_loses_nothing_acknowledged() -> Result<()> {
    let Some(bus) = Nats::private() else { return Ok(()) };
    let Some((nodes, url)) = three_nodes(Some(&bus)).await? else { return Ok(()) };
    let [a, b, _] = &nodes[..] else { unreachable!() };
    let token = a.facilitator_token("Ada");
    let created = a.create_session(&token, Settings::default()).await?;
    let (joined, mut bea) = join_on(b.address, &created.session, &created.invite_code, "Bea").await?;
    bea.say(Room::Plenary, "said before the outage").await?;

    bus.stop();
    // Node b cannot reach node a: Bea is sent to resume, and node b says it is not ready.
    let closed = bea.expect_close().await?;
    ensure!(closed.code == Some(close::GOING_AWAY), "{closed:?}");
    let ready = http(b.address, "GET", "/readyz", &[], None).await?;
    ensure!(ready.status == 503 && ready.body.contains("bus"), "{} {}", ready.status, ready.body);
    bus.start_again()?;

    let mut again = None;
    let started = Instant::now();
    while again.is_none() {
        let mut client = Client::connect(b.address).await?;
        match client.hello_resume(&created.session, joined.guest_token(), bea.resume_cursors()).await {
            Ok(_) => again = Some(client),
            Err(err) if started.elapsed() < Duration::from_secs(30) => {
                eprintln!("resuming after the outage: {err:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
    let mut again = again.context("resumed")?;
    again.say(Room::Plenary, "said after the outage").await?;
    let rows = stored_rows(&url, &created.session).await?;
    ensure!(contiguous(&rows), "{rows:?}");
    for text in ["said before the outage", "said after the outage"] {
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(text)).count();
        ensure!(copies == 1, "{text}: stored {copies} times");
    }
    Ok(())
}

#[tokio::test]
async fn a_timed_round_whose_node_died_ends_on_time_on_another_node_though_nobody_reconnects() -> Result<()> {
    let Some(mut cluster) = three_processes(2_000).await? else { return Ok(()) };
    let mut ada = Client::connect(cluster.nodes[0].address).await?;
    ada.hello(&cluster.created.session, &cluster.nodes[0].sign_in).await?;
    cluster.bea.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    ada.ok(Command::OpenCaucuses { duration_secs: Some(5) }).await?;
    // The node running the session dies, and everyone goes away.
    cluster.nodes[0].kill_9();
    let ThreeProcesses { url, created, bea, .. } = cluster;
    bea.drop_connection();
    ada.drop_connection();

    // Another node finds the round due, takes the session once the dead node's lease
    // has run out, and ends the round: everyone is told time is up.
    let started = Instant::now();
    let ended = loop {
        let rows = stored_rows(&url, &created.session).await?;
        if let Some(row) =
            rows.iter().find(|(room, _, _, body)| room == "caucus_a" && body.contains("\"kind\":\"time_up\""))
        {
            break row.clone();
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "the round never ended: {rows:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(ended.3.contains("\"round\":1"), "{ended:?}");
    ensure!(ended.2 == 2, "a second node ended it: {ended:?}");
    eprintln!("the round ended on another node {} ms after its node died", started.elapsed().as_millis());
    Ok(())
}

#[tokio::test]
async fn invites_and_facilitators_changed_on_one_node_count_on_every_node_at_once() -> Result<()> {
    let Some((nodes, _url)) = three_nodes(None).await? else { return Ok(()) };
    let [a, b, c] = &nodes[..] else { unreachable!() };
    let token = a.facilitator_token("Ada");
    let created = a.create_session(&token, Settings::default()).await?;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    // A session made on node a is known on node c at once.
    let invite = http(c.address, "GET", &format!("/api/invites/{}", created.invite_code), &[], None).await?;
    ensure!(invite.status == 200, "{} {}", invite.status, invite.body);

    // The invite is replaced through node b: the old code stops working everywhere.
    let path = format!("/api/sessions/{}/invite", created.session);
    let replaced = http(b.address, "POST", &path, &auth, None).await?;
    ensure!(replaced.status == 200, "{} {}", replaced.status, replaced.body);
    let new_code = replaced.json::<caucus_protocol::api::InviteLink>()?.invite_code;
    for node in [a, b, c] {
        let old =
            http(node.address, "GET", &format!("/api/invites/{}", created.invite_code), &[], None).await?;
        ensure!(old.status == 404, "the old invite still works on {}: {}", node.address, old.status);
        let body = serde_json::json!({ "invite_code": created.invite_code, "name": "Eve", "accept_ground_rules": GROUND_RULES })
            .to_string();
        let join = http(node.address, "POST", "/api/join", &[], Some(&body)).await?;
        ensure!(join.status == 404, "joined with the old invite on {}: {}", node.address, join.status);
    }
    join_on(c.address, &created.session, &new_code, "Bea").await?;

    // A co-facilitator added through node c sees the session in their list on node b.
    let body = serde_json::json!({ "name": "Bo" }).to_string();
    let added = http(
        c.address,
        "POST",
        &format!("/api/sessions/{}/facilitators", created.session),
        &auth,
        Some(&body),
    )
    .await?;
    ensure!(added.status == 200, "{} {}", added.status, added.body);
    // Bo's facilitator token names him, as the added seat does.
    let bo_bearer = format!("Bearer {}", a.facilitator_token("Bo"));
    let listed =
        http(b.address, "GET", "/api/sessions", &[("authorization", bo_bearer.as_str())], None).await?;
    ensure!(
        listed.status == 200 && listed.body.contains(created.session.as_str()),
        "{} {}",
        listed.status,
        listed.body
    );
    Ok(())
}

#[tokio::test]
async fn restarting_postgres_under_a_cluster_loses_nothing_acknowledged_and_keeps_everyone_connected()
-> Result<()> {
    let (Some(postgres), Some(bus)) = (PrivatePostgres::start(), nats()) else { return Ok(()) };
    let url = postgres.url();
    let nodes = three_nodes_on(&url, &bus.url()).await;
    let [a, b, _] = &nodes[..] else { unreachable!() };
    let token = a.facilitator_token("Ada");
    let created = a.create_session(&token, Settings::default()).await?;
    let (_, mut bea) = join_on(b.address, &created.session, &created.invite_code, "Bea").await?;
    let (_, mut cy) = join_on(a.address, &created.session, &created.invite_code, "Cy").await?;
    bea.say(Room::Plenary, "said before the restart").await?;

    let _postgres = tokio::task::spawn_blocking(move || postgres.restart().map(|()| postgres)).await??;
    // A write that finds a cut connection is refused with `unavailable`; Bea sends it
    // again, as a client does, through node b to the node running the session.
    let id = fresh_client_id();
    let say = Command::Say { room: room(Room::Plenary), text: "said after the restart".into() };
    let mut answers = Vec::new();
    for _ in 0..20 {
        bea.send(&ClientFrame::with_id(id.clone(), say.clone())).await?;
        let answer = bea.reply_to(&id).await?;
        let done = answer.is_ok();
        answers.push(answer);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ensure!(answers.last().is_some_and(Result::is_ok), "never stored: {answers:?}");
    ensure!(
        answers
            .iter()
            .filter_map(|answer| answer.as_ref().err())
            .all(|error| error.code == caucus_protocol::ErrorCode::Unavailable),
        "{answers:?}"
    );
    cy.expect_body(
        Room::Plenary,
        |body| matches!(body, EventBody::Message { text, .. } if text == "said after the restart"),
    )
    .await?;
    ensure!(
        bea.closed.is_none() && cy.closed.is_none(),
        "a connection was closed: {:?} {:?}",
        bea.closed,
        cy.closed
    );
    let rows = stored_rows(&url, &created.session).await?;
    ensure!(contiguous(&rows), "{rows:?}");
    for text in ["said before the restart", "said after the restart"] {
        let copies = rows.iter().filter(|(_, _, _, body)| body.contains(text)).count();
        ensure!(copies == 1, "{text}: stored {copies} times");
    }
    ensure!(rows.iter().all(|(_, _, epoch, _)| *epoch == 1), "nobody took the session over: {rows:?}");
    Ok(())
}
