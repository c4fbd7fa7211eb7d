//! `kill -9` against the real binary: every acknowledged message survives exactly once
//! and in order, clients resume with no gaps, replay keeps caucuses apart, and a
//! reconvene is either wholly done or not done at all.

use caucus_tests::GuestToken;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_protocol::{
    Caucus, ClientFrame, ClientId, Command, EventBody, Phase, Room, RoomEvent, ServerMessage,
};
use caucus_tests::{Client, http, room};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::binary::{Running, serve};

/// Limits loose enough for a burst; everything else is the binary's default.
fn burst_config(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("burst.toml");
    std::fs::write(
        &path,
        "[limits]\nframes_per_sec = 100000\nframe_burst = 100000\nmember_frames_per_sec = 100000\nmember_frame_burst = 100000\nreplay_per_room = 1024\noutbound_queue = 8192\noutbound_bytes = 16777216\n[limits.session]\npoints_per_caucus = 160\npoints_per_person = 160\n",
    )?;
    Ok(path)
}

async fn create_session(address: SocketAddr, token: &str) -> Result<SessionCreated> {
    caucus_tests::create_session(address, token, "Crash test").await
}

async fn join(address: SocketAddr, invite: &str, name: &str) -> Result<Joined> {
    let body = serde_json::json!({ "invite_code": invite, "name": name }).to_string();
    http(address, "POST", "/api/join", &[], Some(&body)).await?.json()
}

/// What one client saw during a burst: its acks and every event, until the server died.
#[derive(Default)]
struct Seen {
    /// The client's cursors when the burst began.
    cursors: BTreeMap<String, u64>,
    acks: BTreeMap<String, u64>,
    events: Vec<RoomEvent>,
    /// The close code the server sent, if it sent one.
    close: Option<u16>,
}

impl Seen {
    /// The cursors to resume with: the last event seen in each room.
    fn resume_cursors(&self) -> BTreeMap<String, u64> {
        let mut cursors = self.cursors.clone();
        for event in &self.events {
            cursors.insert(event.room.as_str().to_owned(), event.seq);
        }
        cursors
    }
}

fn say_frame(room_name: Room, client_id: &str) -> String {
    ClientFrame::with_id(
        ClientId::new(client_id).unwrap(),
        Command::Say { room: room(room_name), text: format!("text of {client_id}") },
    )
    .encode()
}

/// Sends `count` messages, one every `spacing`, while reading, until the connection dies.
async fn burst(client: Client, in_room: Room, prefix: &str, count: usize) -> Seen {
    let mut seen = Seen { cursors: client.resume_cursors(), ..Seen::default() };
    let (mut sink, mut stream) = client.into_socket().split();
    let frames: Vec<String> = (0..count).map(|n| say_frame(in_room, &format!("{prefix}-{n}"))).collect();
    let writer = tokio::spawn(async move {
        for frame in frames {
            if sink.send(Message::text(frame)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
        if let Message::Close(frame) = &message {
            seen.close = frame.as_ref().map(|frame| u16::from(frame.code));
        }
        let Message::Text(text) = message else { continue };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Ack(ack)) => {
                if let (Some(id), Some(seq)) = (ack.client_id, ack.seq) {
                    seen.acks.insert(id.to_string(), seq);
                }
            }
            Ok(ServerMessage::Event(event)) => seen.events.push(event),
            _ => {}
        }
    }
    writer.abort();
    seen
}

struct Member {
    name: &'static str,
    caucus: Caucus,
    joined: Joined,
}

/// How the server is stopped mid-burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill9,
    Sigterm,
    Kill9WithSynchronousNormal,
}

#[tokio::test]
async fn kill_9_mid_burst_loses_no_acknowledged_message_and_resume_has_no_gaps() -> Result<()> {
    stop_mid_burst(Stop::Kill9).await
}

#[tokio::test]
async fn sigterm_mid_burst_closes_1001_loses_nothing_acknowledged_and_exits_cleanly() -> Result<()> {
    stop_mid_burst(Stop::Sigterm).await
}

/// `store.synchronous = "normal"` gives up only what a crash of the machine would lose:
/// the process's own crash loses nothing acknowledged, because every commit is in the
/// operating system's hands before it is acknowledged.
#[tokio::test]
async fn kill_9_with_synchronous_normal_loses_no_acknowledged_message() -> Result<()> {
    stop_mid_burst(Stop::Kill9WithSynchronousNormal).await
}

async fn stop_mid_burst(stop: Stop) -> Result<()> {
    let data = tempfile::tempdir()?;
    let config = burst_config(data.path())?;
    if stop == Stop::Kill9WithSynchronousNormal {
        let mut settings = std::fs::read_to_string(&config)?;
        settings += "[store]\nsynchronous = \"normal\"\n";
        std::fs::write(&config, settings)?;
    }
    let mut server = serve(data.path(), Some(&config))?;
    let session = create_session(server.address, &server.sign_in).await?;
    let mut members = Vec::new();
    for (name, caucus) in [("amara", Caucus::A), ("bayo", Caucus::A), ("dana", Caucus::B)] {
        let joined = join(server.address, &session.invite_code, name).await?;
        members.push(Member { name, caucus, joined });
    }
    let mut clients = Vec::new();
    for member in &members {
        let mut client = Client::connect(server.address).await?;
        client.hello(&session.session, member.joined.guest_token()).await?;
        client.ok(Command::ChooseCaucus { caucus: Some(member.caucus) }).await?;
        clients.push(client);
    }
    let mut facilitator = Client::connect(server.address).await?;
    facilitator.hello(&session.session, &server.sign_in).await?;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    for client in &mut clients {
        client.expect_body(Room::Plenary, |body| matches!(body, EventBody::CaucusesOpened { .. })).await?;
    }

    // The burst: 300 messages a client, one a millisecond, and the server dies midway.
    const COUNT: usize = 300;
    let mut tasks = Vec::new();
    for (member, client) in members.iter().zip(clients) {
        tasks.push(tokio::spawn(burst(client, member.caucus.room(), member.name, COUNT)));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    match stop {
        Stop::Kill9 | Stop::Kill9WithSynchronousNormal => server.kill_9(),
        Stop::Sigterm => {
            let pid = server.child.id().to_string();
            assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status()?.success());
        }
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await?);
    }
    if stop == Stop::Sigterm {
        for seen in &seen {
            assert_eq!(
                seen.close,
                Some(caucus_protocol::close::GOING_AWAY),
                "every client is told the server is going away"
            );
        }
        let status = tokio::task::spawn_blocking(move || server.child.wait()).await??;
        assert!(status.success(), "caucus exited with {status} after SIGTERM");
    }
    let acked: usize = seen.iter().map(|seen| seen.acks.len()).sum();
    assert!(acked > 0, "the burst was acknowledged in part before the kill");
    assert!(acked < members.len() * COUNT, "the kill came mid-burst (all {acked} were acknowledged)");

    // Restart on the same data folder; everyone resumes and retries what was not acked.
    let server: Running = serve(data.path(), Some(&config))?;
    for (member, seen) in members.iter().zip(&seen) {
        let mut client = Client::connect(server.address).await?;
        let (welcome, _) =
            client.hello_resume(&session.session, member.joined.guest_token(), seen.resume_cursors()).await?;
        ensure!(
            welcome.rooms.iter().all(|cursor| !cursor.reset),
            "{}: a resume was reset: {:?}",
            member.name,
            welcome.rooms
        );
        let mut acks = seen.acks.clone();
        for n in 0..COUNT {
            let id = format!("{}-{n}", member.name);
            if acks.contains_key(&id) {
                continue;
            }
            client.send_raw(&say_frame(member.caucus.room(), &id)).await?;
            let ack =
                client.reply_to(&ClientId::new(id.clone())?).await?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
            acks.insert(id, ack.seq.context("a say ack has a seq")?);
        }
        client.sync().await?;
        let after: Vec<RoomEvent> = client
            .raw
            .iter()
            .filter_map(|frame| match serde_json::from_str(frame) {
                Ok(ServerMessage::Event(event)) => Some(event),
                _ => None,
            })
            .collect();

        // The member's caucus, as this member saw it across the crash: in order, no gaps,
        // no duplicates.
        let own_room = member.caucus.room();
        let transcript: Vec<&RoomEvent> =
            seen.events.iter().chain(after.iter()).filter(|event| event.room == own_room).collect();
        let seqs: Vec<u64> = transcript.iter().map(|event| event.seq).collect();
        let first = *seqs.first().context("the member saw its caucus")?;
        let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{}: gaps or duplicates across the crash", member.name);

        // Each of this member's messages is there exactly once, at its acknowledged seq.
        let mut found: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for event in &transcript {
            if let EventBody::Message { client_id: Some(id), .. } = &event.body {
                found.entry(id.to_string()).or_default().push(event.seq);
            }
        }
        for (id, seq) in &acks {
            assert_eq!(
                found.get(id),
                Some(&vec![*seq]),
                "{}: message {id} is not there exactly once at {seq}",
                member.name
            );
        }
        assert_eq!(acks.len(), COUNT);

        // Replay never crossed into the other caucus.
        let other = match member.caucus {
            Caucus::A => Caucus::B,
            Caucus::B => Caucus::A,
        };
        let all_frames = client.transcript();
        assert!(
            !all_frames.contains(&format!("\"room\":\"{}\"", other.room())),
            "{} saw the other caucus",
            member.name
        );
        assert!(
            seen.events.iter().all(|event| event.room != other.room()),
            "{} saw the other caucus before the crash",
            member.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn kill_9_during_a_reconvene_leaves_it_wholly_done_or_not_done() -> Result<()> {
    for (attempt, delay_us) in [0u64, 300, 1500].into_iter().enumerate() {
        let data = tempfile::tempdir()?;
        let config = burst_config(data.path())?;
        let mut server = serve(data.path(), Some(&config))?;
        let session = create_session(server.address, &server.sign_in).await?;
        let mut facilitator = Client::connect(server.address).await?;
        facilitator.hello(&session.session, &server.sign_in).await?;
        let mut tokens = Vec::new();
        const POINTS: usize = 150;
        for caucus in Caucus::BOTH {
            let joined = join(server.address, &session.invite_code, "member").await?;
            let mut client = Client::connect(server.address).await?;
            client.hello(&session.session, joined.guest_token()).await?;
            client.ok(Command::ChooseCaucus { caucus: Some(caucus) }).await?;
            tokens.push((caucus, joined.guest_token().to_owned(), client));
        }
        facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
        for (caucus, _, client) in &mut tokens {
            for n in 0..POINTS {
                client
                    .send_command(Command::WritePoint {
                        room: room(caucus.room()),
                        text: format!("point {n}"),
                    })
                    .await?;
            }
            client.sync().await?;
        }

        facilitator.send_command(Command::Reconvene { round: 1 }).await?;
        tokio::time::sleep(Duration::from_micros(delay_us)).await;
        server.kill_9();

        let server = serve(data.path(), Some(&config))?;
        let mut desk = Client::connect(server.address).await?;
        let (welcome, replay) = desk.hello_resume(&session.session, &server.sign_in, BTreeMap::new()).await?;
        let reconvened =
            replay.iter().filter(|event| matches!(event.body, EventBody::Reconvened { .. })).count();
        let feedback: Vec<usize> = replay
            .iter()
            .filter_map(|event| match &event.body {
                EventBody::Feedback { points, .. } => Some(points.len()),
                _ => None,
            })
            .collect();
        match welcome.session.phase {
            Phase::Reconvened { round: 1 } => {
                assert_eq!(reconvened, 1, "attempt {attempt}");
                assert_eq!(
                    feedback,
                    vec![POINTS, POINTS],
                    "attempt {attempt}: all points carried, per caucus"
                );
            }
            Phase::Caucusing { round: 1 } => {
                assert_eq!((reconvened, feedback.len()), (0, 0), "attempt {attempt}: half a reconvene");
                for (_, token, _) in &tokens {
                    let mut member = Client::connect(server.address).await?;
                    let welcome = member.hello(&session.session, token).await?;
                    let points = welcome.caucus.context("still seated")?.points;
                    assert_eq!(points.len(), POINTS, "attempt {attempt}: points lost without a reconvene");
                }
            }
            other => panic!("attempt {attempt}: unexpected phase {other:?}"),
        }
    }
    Ok(())
}
