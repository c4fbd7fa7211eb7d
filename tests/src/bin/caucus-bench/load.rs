//! Load scenarios against the `caucus` binary in its own process: a reconnect storm,
//! and a soak of mixed traffic that reports memory and file descriptors.

use caucus_tests::GuestToken;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use caucus_protocol::api::Joined;
use caucus_protocol::{Caucus, ClientFrame, Command, Room, RoomName, ServerMessage, SessionId};
use caucus_tests::Client;
use futures::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::process::ServerProcess;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Everyone connects, the network drops every connection at once, and everyone comes
/// back at once and resumes.
pub(crate) async fn storm(sessions: usize, members: usize) -> Result<String> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path())?;
    let people = server.populate(sessions, members).await?;
    let total = sessions * members;
    let gate = Arc::new(Semaphore::new(256));
    let mut first = Vec::new();
    for (session, joined) in &people {
        for member in joined {
            let (session, token, gate) = (session.clone(), member.guest_token().to_owned(), gate.clone());
            let address = server.address;
            first.push(tokio::spawn(async move {
                let _permit = gate.acquire().await?;
                let mut client = Client::connect(address).await?;
                client.hello(&session, &token).await?;
                Ok::<_, anyhow::Error>((session, token, client))
            }));
        }
    }
    let mut connected = Vec::new();
    for task in first {
        connected.push(task.await??);
    }
    let rss_before = server.rss_kib();
    eprintln!(
        "storm: {total} clients connected in {sessions} sessions; server RSS {rss_before} KiB, {} fds",
        server.fds()
    );

    // The blip: every connection drops at once, then every client reconnects at once.
    let cursors: Vec<(SessionId, String, BTreeMap<String, u64>)> = connected
        .into_iter()
        .map(|(session, token, client)| {
            let cursors = client.resume_cursors();
            client.drop_connection();
            (session, token, cursors)
        })
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (session, token, cursors) in cursors {
        let address = server.address;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(address).await?;
            let (welcome, _) = client.hello_resume(&session, &token, cursors).await?;
            let reset = welcome.rooms.iter().any(|cursor| cursor.reset);
            Ok::<_, anyhow::Error>((start.elapsed(), reset, client))
        }));
    }
    let mut times = Vec::new();
    let mut failures = 0;
    let mut resets = 0;
    let mut keep = Vec::new();
    for task in tasks {
        match task.await? {
            Ok((elapsed, reset, client)) => {
                times.push(elapsed);
                resets += usize::from(reset);
                keep.push(client);
            }
            Err(_) => failures += 1,
        }
    }
    let storm_time = start.elapsed();
    times.sort();
    let table = format!(
        "| clients | resumed | failed | reset (gap not filled) | p50 to resume | p99 to resume | all resumed after | server RSS after |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         | {total} | {} | {failures} | {resets} | {:.0} ms | {:.0} ms | {:.0} ms | {} KiB |\n",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        storm_time.as_secs_f64() * 1000.0,
        server.rss_kib()
    );
    drop(keep);
    Ok(table)
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    refused: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
}

/// One member for the length of the soak: talks now and then, reads everything, and
/// reconnects every so often with its cursors.
async fn soak_member(
    address: std::net::SocketAddr,
    session: SessionId,
    member: Joined,
    caucus: Caucus,
    until: Instant,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut cursors = BTreeMap::new();
    let mut n = 0u64;
    while Instant::now() < until {
        let mut client = Client::connect(address).await?;
        client.hello_resume(&session, member.guest_token(), cursors.clone()).await?;
        let mut cursor_state = client.resume_cursors();
        let (mut sink, mut stream) = client.into_socket().split();
        let session_end = (Instant::now() + Duration::from_secs(45 + n % 30)).min(until);
        let mut tick = tokio::time::interval(Duration::from_millis(1500 + (n % 7) * 100));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if Instant::now() >= session_end { break; }
                    n += 1;
                    let room = if n.is_multiple_of(2) { Room::Plenary } else { caucus.room() };
                    let frame = ClientFrame::with_id(
                        caucus_protocol::ClientId::new(format!("{}-{n}", member.member))?,
                        Command::Say { room: RoomName::from(room), text: format!("soak message {n}") },
                    );
                    if sink.send(Message::text(frame.encode())).await.is_err() { break; }
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                        Ok(ServerMessage::Ack(_)) => { counters.acked.fetch_add(1, Ordering::Relaxed); }
                        Ok(ServerMessage::Error(_)) => { counters.refused.fetch_add(1, Ordering::Relaxed); }
                        Ok(ServerMessage::Event(event)) => { cursor_state.insert(event.room.as_str().to_owned(), event.seq); }
                        _ => {}
                    },
                    Some(Ok(_)) => {}
                    _ => { counters.disconnects.fetch_add(1, Ordering::Relaxed); break; }
                }
            }
        }
        cursors = cursor_state;
        counters.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A facilitator for the length of the soak: opens and reconvenes rounds.
async fn soak_facilitator(
    address: std::net::SocketAddr,
    session: SessionId,
    token: String,
    until: Instant,
) -> Result<()> {
    let mut client = Client::connect(address).await?;
    let welcome = client.hello(&session, &token).await?;
    let mut round = welcome.session.phase.round();
    while Instant::now() < until {
        if client.request(Command::OpenCaucuses { duration_secs: Some(20) }).await?.is_ok() {
            round += 1;
        }
        tokio::time::sleep(Duration::from_secs(25)).await;
        client.request(Command::Reconvene { round }).await?.ok();
        client.request(Command::Broadcast { text: "back in the plenary".into() }).await?.ok();
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Drain what piled up meanwhile, so that the facilitator is not a slow reader.
        while tokio::time::timeout(Duration::from_millis(50), client.next()).await.is_ok() {}
    }
    Ok(())
}

/// Mixed traffic for `minutes`: talk in plenary and caucuses, timed rounds, reconvenes,
/// broadcasts and reconnects. Reports the server's memory and descriptors.
pub(crate) async fn soak(minutes: u64, sessions: usize, members: usize) -> Result<()> {
    let data = tempfile::tempdir()?;
    let server = ServerProcess::start(data.path())?;
    let people = server.populate(sessions, members).await?;
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for (session, joined) in people {
        let mut seater = Client::connect(server.address).await?;
        seater.hello(&session, &server.sign_in).await?;
        for (n, member) in joined.iter().enumerate() {
            let caucus = if n % 2 == 0 { Caucus::A } else { Caucus::B };
            seater.ok(Command::Move { member: member.member.clone(), caucus: Some(caucus) }).await?;
        }
        seater.close().await;
        for (n, member) in joined.into_iter().enumerate() {
            let caucus = if n % 2 == 0 { Caucus::A } else { Caucus::B };
            tasks.push(tokio::spawn(soak_member(
                server.address,
                session.clone(),
                member,
                caucus,
                until,
                counters.clone(),
            )));
        }
        tasks.push(tokio::spawn(soak_facilitator(server.address, session, server.sign_in.clone(), until)));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss_start, fds_start) = (server.rss_kib(), server.fds());
    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(30).min(until.saturating_duration_since(Instant::now())))
            .await;
        samples.push((server.rss_kib(), server.fds()));
    }
    for task in tasks {
        task.await?.context("a soak client failed")?;
    }
    let (rss_end, fds_end) = (server.rss_kib(), server.fds());
    let peak = samples.iter().map(|(rss, _)| *rss).max().unwrap_or(rss_end);
    println!(
        "| minutes | sessions × members | sent | acked | refused | reconnects | unexpected disconnects | RSS start → end (peak) | fds start → end |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {minutes} | {sessions} × {members} | {} | {} | {} | {} | {} | {rss_start} → {rss_end} KiB ({peak}) | {fds_start} → {fds_end} |",
        counters.sent.load(Ordering::Relaxed),
        counters.acked.load(Ordering::Relaxed),
        counters.refused.load(Ordering::Relaxed),
        counters.reconnects.load(Ordering::Relaxed),
        counters.disconnects.load(Ordering::Relaxed),
    );
    Ok(())
}
