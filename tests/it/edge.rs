//! The unauthenticated surface, tried as an attacker would: connections that never
//! finish a request, bodies before authentication, floods from one address and from
//! many, pings, and requests that ask for much and then stop reading.

use caucus_tests::GuestToken;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use caucus_protocol::{ClientFrame, ClientId, Command, ErrorCode, Room, ServerMessage, Settings, close};
use caucus_tests::{http, room};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Scene, TestServer};

/// Longer than any deadline below: past this, a test calls a connection held open.
const PATIENCE: Duration = Duration::from_secs(15);

async fn connect_from(address: SocketAddr, source: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse::<IpAddr>()?, 0))?;
    Ok(socket.connect(address).await?)
}

/// Reads until the server closes the connection; returns what it sent. Fails if the
/// server holds the connection open past [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> Result<String> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    ensure!(read.is_ok(), "the server held the connection open");
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A server with short HTTP deadlines, so that the tests below need not wait long.
async fn quick_server(adjust: impl FnOnce(&mut caucus_server::config::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.timeouts.header_secs = 1;
        config.timeouts.body_secs = 1;
        adjust(config);
    })
    .await
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() -> Result<()> {
    let server = quick_server(|_| {}).await;
    let mut silent = TcpStream::connect(server.address).await?;
    read_until_closed(&mut silent).await?;
    Ok(())
}

#[tokio::test]
async fn a_request_head_that_never_finishes_is_closed() -> Result<()> {
    let server = quick_server(|_| {}).await;
    let mut slow = TcpStream::connect(server.address).await?;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: caucus\r\nx-slow: ").await?;
    read_until_closed(&mut slow).await?;
    Ok(())
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_not_buffered() -> Result<()> {
    let server = TestServer::start().await;
    let mut big = TcpStream::connect(server.address).await?;
    let head = format!("GET /healthz HTTP/1.1\r\nhost: caucus\r\nx-big: {}\r\n\r\n", "a".repeat(350_000));
    // The server stops reading at its limit, so the write may fail part-way.
    let _ = big.write_all(head.as_bytes()).await;
    let answer = read_until_closed(&mut big).await?;
    ensure!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "unexpected answer: {answer}");
    Ok(())
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() -> Result<()> {
    let server = quick_server(|_| {}).await;
    let mut idle = TcpStream::connect(server.address).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: caucus\r\n\r\n").await?;
    let answer = read_until_closed(&mut idle).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn creating_a_session_without_a_token_is_refused_before_the_body_is_read() -> Result<()> {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.address).await?;
    // Announces 2 MB, sends 1 KB, and waits: the answer must not wait for the rest.
    stream
        .write_all(
            b"POST /api/sessions HTTP/1.1\r\nhost: caucus\r\ncontent-type: application/json\r\n\
              content-length: 2000000\r\n\r\n",
        )
        .await?;
    stream.write_all(&[b' '; 1024]).await?;
    let answer = read_until_closed(&mut stream).await?;
    ensure!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_join_body_over_the_limit_is_refused_from_its_length_alone() -> Result<()> {
    let server = TestServer::start().await;
    let mut stream = TcpStream::connect(server.address).await?;
    stream
        .write_all(
            b"POST /api/join HTTP/1.1\r\nhost: caucus\r\ncontent-type: application/json\r\n\
              content-length: 2000000\r\n\r\n{",
        )
        .await?;
    let answer = read_until_closed(&mut stream).await?;
    ensure!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    ensure!(answer.contains("\"code\":\"too_long\""), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_its_deadline() -> Result<()> {
    let server = quick_server(|_| {}).await;
    let mut stream = TcpStream::connect(server.address).await?;
    stream
        .write_all(
            b"POST /api/join HTTP/1.1\r\nhost: caucus\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"invite",
        )
        .await?;
    let answer = read_until_closed(&mut stream).await?;
    ensure!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_flood_from_one_address_leaves_health_checks_and_members_working() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.max_pending_per_address = 8).await;
    let scene = Scene::on(server, Settings::default()).await?;
    // The flood: connections from one address that never send a request.
    let mut flood = Vec::new();
    for _ in 0..8 {
        flood.push(connect_from(scene.server.address, "127.0.0.2").await?);
    }
    let mut refused = connect_from(scene.server.address, "127.0.0.2").await?;
    let answer = read_until_closed(&mut refused).await?;
    ensure!(answer.starts_with("HTTP/1.1 503"), "the ninth connection got: {answer}");
    ensure!(answer.contains("too many connections from your address"), "{answer}");

    let health = http(scene.server.address, "GET", "/healthz", &[], None).await?;
    ensure!(health.status == 200, "healthz: {}", health.status);
    let mut member = scene.member("Amara").await?;
    member.client.say(Room::Plenary, "still here").await?;
    drop(flood);
    Ok(())
}

#[tokio::test]
async fn past_the_pending_cap_only_health_checks_are_answered() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.max_pending_connections = 6).await;
    let scene = Scene::on(server, Settings::default()).await?;
    // The welcomed facilitator does not count; six idle connections from six addresses
    // fill the pending places.
    let mut flood = Vec::new();
    for n in 2..8 {
        flood.push(connect_from(scene.server.address, &format!("127.0.0.{n}")).await?);
    }
    let health = http(scene.server.address, "GET", "/healthz", &[], None).await?;
    ensure!(health.status == 200, "healthz on the reserve lane: {}", health.status);
    let ready = http(scene.server.address, "GET", "/readyz", &[], None).await?;
    ensure!(ready.status == 200, "readyz on the reserve lane: {}", ready.status);
    let body = serde_json::json!({ "invite_code": scene.invite, "name": "Late" }).to_string();
    let join = http(scene.server.address, "POST", "/api/join", &[], Some(&body)).await?;
    ensure!(join.status == 503, "a join past the pending cap: {} {}", join.status, join.body);
    // A new WebSocket is pending too, and is refused past the cap; the welcomed
    // facilitator's carries on.
    let refused = caucus_tests::Client::connect(scene.server.address).await;
    ensure!(refused.is_err(), "a WebSocket opened past the pending cap");
    let mut facilitator = scene.facilitator.client;
    facilitator.say(Room::Plenary, "still here").await?;
    drop(flood);
    // Once the flood is gone, everything is served again.
    let mut desk = caucus_tests::Client::connect(scene.server.address).await;
    for _ in 0..50 {
        if desk.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        desk = caucus_tests::Client::connect(scene.server.address).await;
    }
    let mut desk = desk?;
    desk.hello(&scene.session, &scene.facilitator.token).await?;
    desk.say(Room::Plenary, "back to normal").await?;
    Ok(())
}

#[tokio::test]
async fn keep_alive_connections_held_by_one_address_make_room_for_everyone_else() -> Result<()> {
    let server = TestServer::start_with(|config| {
        config.limits.max_pending_connections = 6;
        config.limits.max_pending_per_address = 6;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    // One address takes every pending place with keep-alive connections, each asking
    // for a health check now and then: within the header deadline, so none times out.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut stream = connect_from(scene.server.address, "127.0.0.2").await?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: caucus\r\n\r\n").await?;
        let mut answer = [0u8; 1024];
        let read = stream.read(&mut answer).await?;
        ensure!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"), "healthz");
        held.push(stream);
    }
    // Someone else still joins, connects and talks.
    let mut member = scene.member("Amara").await?;
    member.client.say(Room::Plenary, "let in").await?;
    // The address holding every place gave one up (the join's connection took its
    // place, and the WebSocket the place the join left): idle, it closed at once, long
    // before the 10 s idle deadline.
    let mut closed = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await {
            closed += 1;
            break;
        }
    }
    ensure!(closed == 1, "none of the held connections closed to make room, well before its idle deadline");
    drop(held);
    Ok(())
}

#[tokio::test]
async fn a_ping_flood_is_closed_1008() -> Result<()> {
    let server = TestServer::start().await;
    let scene = Scene::on(server, Settings::default()).await?;
    let amara = scene.member("Amara").await?;
    let (mut sink, mut stream) = amara.client.into_socket().split();
    let pinger = tokio::spawn(async move {
        for _ in 0..20_000 {
            if sink.send(Message::Ping(vec![1, 2, 3].into())).await.is_err() {
                break;
            }
        }
    });
    let code = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|frame| u16::from(frame.code));
            }
        }
        None
    })
    .await
    .context("a ping flood was never closed")?;
    pinger.abort();
    ensure!(code == Some(close::POLICY_VIOLATION), "closed with {code:?}");
    Ok(())
}

/// A scene whose plenary holds `count` long messages.
async fn long_plenary(count: usize) -> Result<Scene> {
    let server = TestServer::start_with(|config| {
        let limits = &mut config.limits;
        (limits.frames_per_sec, limits.frame_burst) = (100_000, 100_000);
        (limits.member_frames_per_sec, limits.member_frame_burst) = (100_000, 100_000);
    })
    .await;
    let mut scene = Scene::on(server, Settings::default()).await?;
    let text = "words that take room ".repeat(190);
    for _ in 0..count {
        scene.facilitator.client.say(Room::Plenary, &text).await?;
    }
    Ok(scene)
}

#[tokio::test]
async fn history_requests_without_reading_are_closed_4008_not_buffered() -> Result<()> {
    let scene = long_plenary(300).await?;
    let reader = scene.member("Reader").await?;
    let (mut sink, mut stream) = reader.client.into_socket().split();
    // Forty requests for 500 events each, and no reading while they are sent.
    for n in 0..40 {
        let frame = ClientFrame::with_id(
            ClientId::new(format!("h-{n}"))?,
            Command::History { room: room(Room::Plenary), before: None, limit: 500 },
        );
        sink.send(Message::text(frame.encode())).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut largest_page = 0;
    let code = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Text(text) => largest_page = largest_page.max(text.len()),
                Message::Close(frame) => return frame.map(|frame| u16::from(frame.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .context("the reader was never closed")?;
    ensure!(code == Some(close::TOO_SLOW), "closed with {code:?}");
    let budget = caucus_server::config::Limits::default().history_bytes;
    ensure!(largest_page <= budget + 1024, "a history page of {largest_page} bytes is over its budget");
    Ok(())
}

#[tokio::test]
async fn a_long_history_comes_in_pages_within_the_byte_budget() -> Result<()> {
    let scene = long_plenary(300).await?;
    let mut reader = scene.member("Reader").await?;
    let mut before = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let ack =
            reader.client.request(Command::History { room: room(Room::Plenary), before, limit: 500 }).await?;
        ensure!(ack.is_ok(), "{ack:?}");
        let page = reader
            .client
            .expect("a history page", |message| match message {
                ServerMessage::History { events, more, .. } => Some((events.clone(), *more)),
                _ => None,
            })
            .await?;
        let (events, more) = page;
        let size = serde_json::to_string(&events)?.len();
        ensure!(size <= caucus_server::config::Limits::default().history_bytes, "a page of {size} bytes");
        seen += events.len();
        pages += 1;
        before = events.first().map(|event| event.seq);
        if !more {
            break;
        }
    }
    ensure!(pages > 1, "300 long messages fit one page");
    ensure!(seen >= 300, "paging back reached {seen} events");
    Ok(())
}

#[tokio::test]
async fn a_replay_over_its_byte_budget_resets_the_room_to_its_newest_events() -> Result<()> {
    let scene = long_plenary(200).await?;
    let joined = scene.server.join(&scene.invite, "Latecomer").await?;
    let mut client = scene.server.client().await;
    let (welcome, replay) =
        client.hello_resume(&scene.session, joined.guest_token(), Default::default()).await?;
    let plenary = welcome.rooms.iter().find(|cursor| cursor.room == Room::Plenary).context("plenary")?;
    ensure!(plenary.reset, "a cut replay resets the room");
    let bytes = serde_json::to_string(&replay)?.len();
    let budget = caucus_server::config::Limits::default().replay_bytes_per_room;
    ensure!(bytes <= budget, "the replay holds {bytes} bytes");
    ensure!(
        replay.first().map(|event| event.seq) == Some(plenary.from + 1),
        "the replay starts after `from`"
    );
    ensure!(replay.last().map(|event| event.seq) == Some(plenary.head), "the replay ends at the head");
    Ok(())
}

#[tokio::test]
async fn proposals_and_points_are_capped_per_person() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", caucus_protocol::Caucus::A).await?;
    let mut chidi = scene.seated("Chidi", caucus_protocol::Caucus::A).await?;
    let caps = caucus_server::session::SessionCaps::default();
    for n in 0..caps.proposals_per_person {
        amara.client.ok(Command::ProposeTopic { text: format!("topic {n}") }).await?;
    }
    let refused = amara.client.refused(Command::ProposeTopic { text: "one more".into() }).await?;
    ensure!(refused.code == ErrorCode::LimitReached, "{refused:?}");

    scene.open_round().await?;
    let in_caucus = room(caucus_protocol::Caucus::A.room());
    for n in 0..caps.points_per_person {
        amara.client.ok(Command::WritePoint { room: in_caucus.clone(), text: format!("point {n}") }).await?;
    }
    let refused = amara
        .client
        .refused(Command::WritePoint { room: in_caucus.clone(), text: "one more".into() })
        .await?;
    ensure!(refused.code == ErrorCode::LimitReached, "{refused:?}");
    ensure!(refused.message.contains("withdraw"), "the refusal says what to do: {}", refused.message);
    // Editing someone else's point would make it hers: that counts too.
    chidi.client.ok(Command::WritePoint { room: in_caucus.clone(), text: "Chidi's point".into() }).await?;
    let next = caps.points_per_person as u32 + 1;
    let refused = amara
        .client
        .refused(Command::EditPoint { room: in_caucus, point: next, text: "now mine".into() })
        .await?;
    ensure!(refused.code == ErrorCode::LimitReached, "{refused:?}");
    Ok(())
}

#[tokio::test]
async fn a_full_session_refuses_more_joins_with_429() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.session.members = 3).await;
    let scene = Scene::on(server, Settings::default()).await?;
    scene.server.join(&scene.invite, "Two").await?;
    scene.server.join(&scene.invite, "Three").await?;
    let body = serde_json::json!({ "invite_code": scene.invite, "name": "Four" }).to_string();
    let refused = http(scene.server.address, "POST", "/api/join", &[], Some(&body)).await?;
    ensure!(refused.status == 429, "{} {}", refused.status, refused.body);
    ensure!(refused.body.contains("limit_reached"), "{}", refused.body);
    Ok(())
}

#[tokio::test]
async fn a_retried_message_gets_its_original_ack_after_the_end() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let id = ClientId::new("kept-once")?;
    let say = Command::Say { room: room(Room::Plenary), text: "before the end".into() };
    amara.client.send(&ClientFrame::with_id(id.clone(), say.clone())).await?;
    let first = amara.client.reply_to(&id).await?.map_err(|err| anyhow::anyhow!("{err:?}"))?;
    scene.facilitator.client.ok(Command::EndSession {}).await?;
    amara.client.send(&ClientFrame::with_id(id.clone(), say)).await?;
    let again = amara.client.reply_to(&id).await?;
    ensure!(again.as_ref().is_ok_and(|ack| ack.seq == first.seq), "the retry got {again:?}");
    Ok(())
}

#[tokio::test]
async fn at_the_descriptor_limit_health_checks_and_welcomed_people_keep_working() -> Result<()> {
    use crate::support::binary::serve_with_descriptor_limit;
    let data = tempfile::tempdir()?;
    // 200 descriptors: the gate keeps 64 back, so 136 connections at most.
    let running = serve_with_descriptor_limit(data.path(), 200)?;
    let address = running.address;
    let token = running.sign_in.clone();
    let created = caucus_tests::create_session(address, &token, "Flood").await?;
    let mut desk = caucus_tests::Client::connect(address).await?;
    desk.hello(&created.session, &token).await?;

    // 400 idle connections from eight addresses: more than the process has descriptors.
    let mut flood = Vec::new();
    for n in 0..400 {
        if let Ok(stream) = connect_from(address, &format!("127.0.0.{}", 2 + n % 8)).await {
            flood.push(stream);
        }
    }
    let health = http(address, "GET", "/healthz", &[], None).await?;
    ensure!(health.status == 200, "healthz under a flood: {}", health.status);
    desk.say(Room::Plenary, "still heard under a flood").await?;
    drop(flood);
    Ok(())
}

#[tokio::test]
async fn removing_someone_frees_their_place_in_a_full_session() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.session.members = 3).await;
    let mut scene = Scene::on(server, Settings::default()).await?;
    let two = scene.member("Two").await?;
    scene.member("Three").await?;
    scene.facilitator.client.ok(Command::Remove { member: two.id.clone() }).await?;
    scene.server.join(&scene.invite, "Four").await?;
    Ok(())
}
