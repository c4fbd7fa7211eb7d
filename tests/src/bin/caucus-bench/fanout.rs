//! Side by side: Caucus, Socket.IO rooms, and the bare tokio-tungstenite ceiling, each
//! in its own process, loaded by the same generator in one run.
//!
//! - Idle connections: the server's resident memory per connection and its idle CPU.
//! - Fan-out: one publisher sends open-loop into a room; the rate steps up until p99
//!   passes 50 ms or a message is lost. Latency is taken against each message's
//!   *intended* send time, so a stall cannot hide (no coordinated omission).

use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caucus_protocol::{ClientFrame, Command, Room, RoomName};
use caucus_tests::{Client, LOOPBACK, open_socket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::process::ServerProcess;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

/// One of the compared servers, running in its own process.
enum Peer {
    Caucus { server: ServerProcess, _data: tempfile::TempDir },
    SocketIo(Child, SocketAddr),
    Ceiling(Child, SocketAddr),
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Peer::SocketIo(child, _) | Peer::Ceiling(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_address(child: &mut Child, prefix_host: bool) -> Result<SocketAddr> {
    use std::io::BufRead;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines.next().context("the peer printed nothing")??;
    let value = line.split("listening on ").nth(1).context("no address")?.trim().to_owned();
    std::thread::spawn(move || for _ in lines {});
    Ok(if prefix_host { format!("127.0.0.1:{value}").parse()? } else { value.parse()? })
}

impl Peer {
    fn start(name: &str) -> Result<Self> {
        match name {
            "caucus" => {
                let data = tempfile::tempdir()?;
                Ok(Peer::Caucus { server: ServerProcess::start(data.path())?, _data: data })
            }
            "socketio" => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/socketio/server.js");
                let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/socketio/node_modules");
                if !std::path::Path::new(modules).exists() {
                    bail!("the Socket.IO peer is not installed: cd tests/peers/socketio && npm ci");
                }
                let mut child = Process::new("node").arg(script).stdout(Stdio::piped()).spawn()?;
                let address = read_address(&mut child, true)?;
                Ok(Peer::SocketIo(child, address))
            }
            "ceiling" => {
                let mut child = Process::new(std::env::current_exe()?)
                    .args(["ceiling", "--listen", "127.0.0.1:0"])
                    .stdout(Stdio::piped())
                    .spawn()?;
                let address = read_address(&mut child, false)?;
                Ok(Peer::Ceiling(child, address))
            }
            other => bail!("unknown peer {other}"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Peer::Caucus { .. } => "Caucus",
            Peer::SocketIo(..) => "Socket.IO",
            Peer::Ceiling(..) => "ceiling",
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Peer::Caucus { server, .. } => server.child.id(),
            Peer::SocketIo(child, _) | Peer::Ceiling(child, _) => child.id(),
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the process has used, user plus system.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let fields: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks: u64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum();
        Duration::from_millis(ticks * 10) // 100 clock ticks a second on Linux
    }

    /// Waits until the server has finished whatever it was doing: under 20 ms of CPU in
    /// half a second, or ten seconds at most.
    async fn wait_idle(&self) {
        for _ in 0..20 {
            let before = self.cpu();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let used = self.cpu().saturating_sub(before);
            if used < Duration::from_millis(20) {
                return;
            }
        }
    }

    /// Opens `count` connections, all in one room, and returns them split.
    async fn room(&self, room: usize, count: usize) -> Result<Vec<(Sink, Stream)>> {
        let mut connections = Vec::with_capacity(count);
        match self {
            Peer::Caucus { server, .. } => {
                let sessions = server.populate(1, count).await?;
                let (session, members) = &sessions[0];
                for member in members {
                    let mut client = Client::connect(server.address).await?;
                    client.hello(session, &member.token).await?;
                    connections.push(client.into_socket().split());
                }
            }
            Peer::SocketIo(_, address) => {
                for _ in 0..count {
                    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
                    let socket = open_socket(*address, url, LOOPBACK).await?;
                    let (mut sink, mut stream) = socket.split();
                    stream.next().await.context("no open packet")??; // 0{"sid":...}
                    sink.send(Message::text("40")).await?;
                    stream.next().await.context("no connect packet")??; // 40{"sid":...}
                    sink.send(Message::text(format!(r#"42["join","room-{room}"]"#))).await?;
                    connections.push((sink, stream));
                }
            }
            Peer::Ceiling(_, address) => {
                for _ in 0..count {
                    let socket = open_socket(*address, format!("ws://{address}/"), LOOPBACK).await?;
                    let (mut sink, stream) = socket.split();
                    sink.send(Message::text(format!("room-{room}"))).await?;
                    connections.push((sink, stream));
                }
            }
        }
        // Joins have no reply in Socket.IO or the ceiling: give them a moment to land.
        // Then let every connection fall quiet (Caucus sends replays and presence on
        // joining), so that a step measures its own messages and not the set-up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quiet = connections.into_iter().map(|(sink, mut stream)| {
            tokio::spawn(async move {
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout(Duration::from_millis(500), stream.next()).await
                {}
                (sink, stream)
            })
        });
        let mut settled = Vec::with_capacity(count);
        for task in quiet.collect::<Vec<_>>() {
            settled.push(task.await?);
        }
        self.wait_idle().await;
        Ok(settled)
    }

    /// The frame that publishes `text` to room `room` in this peer's protocol.
    fn publish(&self, room: usize, text: &str) -> Message {
        match self {
            Peer::Caucus { .. } => Message::text(
                ClientFrame::new(Command::Say { room: RoomName::from(Room::Plenary), text: text.to_owned() })
                    .encode(),
            ),
            Peer::SocketIo(..) => Message::text(format!(r#"42["msg","room-{room}","{text}"]"#)),
            Peer::Ceiling(..) => Message::text(text.to_owned()),
        }
    }
}

/// The intended send time stamped into each message: `T` and 20 digits of nanoseconds
/// since the run's start.
fn stamp(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let at = bytes
        .windows(21)
        .position(|window| window[0] == b'T' && window[1..].iter().all(u8::is_ascii_digit))?;
    text[at + 1..at + 21].parse().ok()
}

/// What one receiver saw, and its connection, handed back so that closing it happens
/// outside the measured window.
struct Received {
    latency: Histogram<u64>,
    count: u64,
    _connection: (Stream, Option<Sink>),
}

/// Reads one connection until it falls quiet, recording each stamped message's latency.
/// Socket.IO's pings are answered on `pong`, when given.
async fn receive(mut stream: Stream, mut pong: Option<Sink>, base: Instant) -> Received {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut count = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        let Message::Text(text) = message else { continue };
        if text.as_str() == "2" {
            if let Some(sink) = &mut pong {
                let _ = sink.send(Message::text("3")).await; // Engine.IO ping, pong
            }
            continue;
        }
        if let Some(sent) = stamp(&text) {
            let now = base.elapsed().as_nanos() as u64;
            let _ = histogram.record((now.saturating_sub(sent) / 1000).max(1));
            count += 1;
        }
    }
    Received { latency: histogram, count, _connection: (stream, pong) }
}

/// What one step measured.
struct Step {
    latency: Histogram<u64>,
    delivered: u64,
    expected: u64,
    cpu: Duration,
}

/// One step: `rate` messages a second for `seconds`, published by the first connection
/// into a room of all of them. Everyone, the publisher included, receives each message.
async fn step(
    peer: &Peer,
    room: usize,
    connections: Vec<(Sink, Stream)>,
    rate: u64,
    seconds: u64,
    size: usize,
) -> Result<Step> {
    let members = connections.len() as u64;
    let base = Instant::now();
    let mut publisher = None;
    let mut receivers = Vec::new();
    for (sink, stream) in connections {
        let pong = if publisher.is_none() {
            publisher = Some(sink);
            None
        } else {
            Some(sink)
        };
        receivers.push(tokio::spawn(receive(stream, pong, base)));
    }
    let mut sink = publisher.context("a room has a publisher")?;
    let total = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let padding = "x".repeat(size.saturating_sub(22));
    let cpu_before = peer.cpu();
    for index in 0..total {
        let intended = base + period * index as u32;
        tokio::time::sleep_until(intended.into()).await;
        let sent = (intended - base).as_nanos() as u64;
        sink.send(peer.publish(room, &format!("T{sent:020} {padding}"))).await?;
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut delivered = 0;
    let mut connections = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        let received = receiver.await?;
        latency.add(&received.latency).expect("same bounds");
        delivered += received.count;
        connections.push(received);
    }
    // Read before the connections close: leaving is not part of delivering.
    let cpu = peer.cpu().saturating_sub(cpu_before);
    drop(connections);
    let _ = sink.close().await;
    Ok(Step { latency, delivered, expected: total * members, cpu })
}

/// Idle memory: `count` connections in rooms of 100, resident memory per connection.
async fn idle(peer: &Peer, count: usize, seconds: u64) -> Result<(f64, Duration)> {
    let before = peer.rss_kib();
    let mut all = Vec::new();
    for room in 0..count.div_ceil(100) {
        all.extend(peer.room(1000 + room, 100.min(count - room * 100)).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = peer.cpu();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let idle_cpu = peer.cpu().saturating_sub(cpu_before);
    let per_connection = (peer.rss_kib().saturating_sub(before)) as f64 * 1024.0 / count as f64;
    drop(all);
    Ok((per_connection, idle_cpu))
}

/// Runs every scenario on every peer and prints Markdown tables.
pub(crate) async fn compare(
    peers: &[String],
    room_sizes: &[usize],
    sizes: &[usize],
    idle_counts: &[usize],
    seconds: u64,
    max_deliveries: u64,
) -> Result<()> {
    println!("## Idle connections\n");
    println!("| server | connections | RSS per connection | idle CPU over {seconds} s |");
    println!("| --- | --- | --- | --- |");
    for name in peers {
        for &count in idle_counts {
            let peer = Peer::start(name)?;
            let (per_connection, cpu) = idle(&peer, count, seconds).await?;
            println!(
                "| {} | {count} | {:.1} KiB | {} ms |",
                peer.name(),
                per_connection / 1024.0,
                cpu.as_millis()
            );
        }
    }
    println!("\n## Fan-out\n");
    println!(
        "| server | room | payload | msgs/s in | deliveries/s | delivered | p50 | p99 | p999 | CPU µs per delivery | verdict |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for name in peers {
        let peer = Peer::start(name)?;
        for (index, &members) in room_sizes.iter().enumerate() {
            for &size in sizes {
                let mut deliveries_per_sec = 5_000u64;
                loop {
                    let rate = (deliveries_per_sec / members as u64).max(1);
                    let connections = peer.room(index * 10 + size, members).await?;
                    let Step { latency: histogram, delivered, expected, cpu } =
                        step(&peer, index * 10 + size, connections, rate, seconds, size).await?;
                    let p99 = histogram.value_at_quantile(0.99);
                    let lost = delivered < expected;
                    let verdict = if lost {
                        "lost messages"
                    } else if p99 > 50_000 {
                        "p99 over 50 ms"
                    } else {
                        "ok"
                    };
                    println!(
                        "| {} | {members} | {size} B | {rate} | {} | {delivered}/{expected} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} | {verdict} |",
                        peer.name(),
                        rate * members as u64,
                        histogram.value_at_quantile(0.5) as f64 / 1000.0,
                        p99 as f64 / 1000.0,
                        histogram.value_at_quantile(0.999) as f64 / 1000.0,
                        cpu.as_micros() as f64 / delivered.max(1) as f64,
                    );
                    if verdict != "ok" || deliveries_per_sec >= max_deliveries {
                        break;
                    }
                    deliveries_per_sec *= 2;
                }
            }
        }
    }
    Ok(())
}
