//! Side by side: Caucus, Socket.IO rooms, and the bare tokio-tungstenite ceiling, each
//! in its own process, loaded by the same generator in one run.
//!
//! - Idle connections: the server's resident memory per connection and its idle CPU.
//! - Fan-out: one publisher sends open-loop into a room; the rate steps up until p99
//!   passes 50 ms or a message is lost. Latency is taken against each message's
//!   *intended* send time, so a stall cannot hide (no coordinated omission).

use caucus_tests::GuestToken;
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caucus_protocol::{ClientFrame, Command, Room, RoomName};
use caucus_tests::{Client, open_socket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::process::{ServerProcess, open_fds, rss_kib};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

/// One of the compared servers, running in its own process.
enum Peer {
    /// `label` tells builds apart when `caucus@PATH` runs another build beside this one.
    Caucus {
        server: ServerProcess,
        _data: tempfile::TempDir,
        label: &'static str,
    },
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
                Ok(Peer::Caucus { server: ServerProcess::start(data.path())?, _data: data, label: "Caucus" })
            }
            // `caucus@PATH`: another build of the binary, to measure a change before and
            // after in one invocation. Then any of `+normal` (SQLite's commits reach the
            // disk at checkpoints only: what syncing each commit costs) and `+workers=N`
            // (the server's async worker threads). The label lives as long as the
            // harness, which prints it at the end.
            other if other.starts_with("caucus@") || other.starts_with("caucus+") => {
                let mut parts = other.split('+');
                let build = parts.next().unwrap_or(other);
                let binary = match build.strip_prefix("caucus@") {
                    Some(path) => std::path::PathBuf::from(path),
                    None => std::env::current_exe()?.with_file_name("caucus"),
                };
                let mut label = if build == "caucus" {
                    "Caucus".to_owned()
                } else {
                    format!("Caucus@{}", binary.display())
                };
                let (mut settings, mut env) = (String::new(), Vec::new());
                for modifier in parts {
                    match modifier.split_once('=') {
                        None if modifier == "normal" => settings += "[store]\nsynchronous = \"normal\"\n",
                        Some(("workers", count)) => env.push(("CAUCUS_WORKER_THREADS", count.to_owned())),
                        _ => bail!("unknown peer {other}: use caucus[@PATH][+normal][+workers=N]"),
                    }
                    label += &format!(" +{modifier}");
                }
                let data = tempfile::tempdir()?;
                let server = ServerProcess::start_binary_with(&binary, data.path(), &settings, &env)?;
                Ok(Peer::Caucus { server, _data: data, label: Box::leak(label.into_boxed_str()) })
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
            Peer::Caucus { label, .. } => label,
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
        rss_kib(self.pid())
    }

    /// CPU time the process has used, user plus system.
    fn cpu(&self) -> Duration {
        cpu_of(&self.pid().to_string())
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

    /// Opens `count` connections, all in one room, lets them settle, and returns them
    /// split.
    async fn room(&self, room: usize, count: usize) -> Result<Vec<(Sink, Stream)>> {
        let connections = self.join(room, count).await?;
        let settled = settle(connections).await?;
        self.wait_idle().await;
        Ok(settled)
    }

    /// Opens `count` connections, all in one room, spread over the source addresses.
    async fn join(&self, room: usize, count: usize) -> Result<Vec<(Sink, Stream)>> {
        let mut connections = Vec::with_capacity(count);
        match self {
            Peer::Caucus { server, .. } => {
                let sessions = server.populate(1, count).await?;
                let (session, members) = &sessions[0];
                for member in members {
                    let mut client = Client::connect_from(server.address, next_source()).await?;
                    client.hello(session, member.guest_token()).await?;
                    connections.push(client.into_socket().split());
                }
            }
            Peer::SocketIo(_, address) => {
                for _ in 0..count {
                    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
                    let socket = open_socket(*address, url, next_source()).await?;
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
                    let socket = open_socket(*address, format!("ws://{address}/"), next_source()).await?;
                    let (mut sink, stream) = socket.split();
                    sink.send(Message::text(format!("room-{room}"))).await?;
                    connections.push((sink, stream));
                }
            }
        }
        Ok(connections)
    }

    /// What turns `text` into the frame that publishes it to room `room` in this
    /// peer's protocol, for a publishing task to own.
    fn publisher(&self, room: usize) -> impl Fn(&str) -> Message + Send + 'static {
        #[derive(Clone, Copy)]
        enum Protocol {
            Caucus,
            SocketIo,
            Ceiling,
        }
        let protocol = match self {
            Peer::Caucus { .. } => Protocol::Caucus,
            Peer::SocketIo(..) => Protocol::SocketIo,
            Peer::Ceiling(..) => Protocol::Ceiling,
        };
        move |text| match protocol {
            Protocol::Caucus => Message::text(
                ClientFrame::new(Command::Say { room: RoomName::from(Room::Plenary), text: text.to_owned() })
                    .encode(),
            ),
            Protocol::SocketIo => Message::text(format!(r#"42["msg","room-{room}","{text}"]"#)),
            Protocol::Ceiling => Message::text(text.to_owned()),
        }
    }
}

/// How many loopback source addresses the load spreads over: each has only about
/// 28,000 ephemeral ports.
const SOURCES: u32 = 16;

/// The next source address, 127.0.0.1 to 127.0.0.16 in turn.
fn next_source() -> std::net::IpAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % SOURCES;
    std::net::Ipv4Addr::new(127, 0, 0, 1 + n as u8).into()
}

/// Lets every connection fall quiet, so that what comes next measures its own
/// messages and not the set-up. Joins have no reply in Socket.IO or the ceiling, and
/// Caucus sends a welcome, a replay and presence.
pub(crate) async fn settle(connections: Vec<(Sink, Stream)>) -> Result<Vec<(Sink, Stream)>> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quiet = connections.into_iter().map(|(sink, mut stream)| {
        tokio::spawn(async move {
            while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await
            {
            }
            (sink, stream)
        })
    });
    let mut settled = Vec::new();
    for task in quiet.collect::<Vec<_>>() {
        settled.push(task.await?);
    }
    Ok(settled)
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
pub(crate) struct Received {
    pub(crate) latency: Histogram<u64>,
    pub(crate) count: u64,
    _connection: (Stream, Option<Sink>),
}

/// Reads one connection until it falls quiet, recording each stamped message's latency.
/// Socket.IO's pings are answered on `pong`, when given.
pub(crate) async fn receive(mut stream: Stream, mut pong: Option<Sink>, base: Instant) -> Received {
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
    /// Messages published in the measured part of the step.
    messages: u64,
    cpu: Duration,
    /// The harness's own CPU time over the same window: the load generator's.
    generator_cpu: Duration,
    /// How late the publishers sent their last message, against the schedule: a
    /// generator that cannot keep to it offers less than the step says.
    generator_behind: Duration,
    /// Wall-clock time of the measured window.
    wall: Duration,
    /// The server's resident memory before the step and at its highest during it, KiB.
    rss_before: u64,
    rss_peak: u64,
}

/// Messages a second that one publishing connection is asked to send at most. Above
/// it the schedule is shared between several of the room's connections, each with its
/// own task, so that one task's sends do not cap what the step offers.
const PER_PUBLISHER: u64 = 20_000;

/// The CPU time this process (the load generator) has used, user plus system.
fn own_cpu() -> Duration {
    cpu_of("self")
}

/// The CPU time process `pid` (a number, or `self`) has used, user plus system.
pub(crate) fn cpu_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10) // 100 clock ticks a second on Linux
}

/// One step: `rate` messages a second for `seconds`, published by the first connections
/// of a room of all of them (one per [`PER_PUBLISHER`] messages a second, each sending
/// every n-th message of one schedule). Everyone, the publishers included, receives
/// each message, except the last `stalled` connections, which never read at all.
async fn step(
    peer: &Peer,
    room: usize,
    mut connections: Vec<(Sink, Stream)>,
    load: Load,
    stalled: usize,
) -> Result<Step> {
    let Load { rate, seconds, size } = load;
    let stalled = connections.split_off(connections.len().saturating_sub(stalled));
    let members = connections.len() as u64;
    let publishers = rate.div_ceil(PER_PUBLISHER).clamp(1, members.max(1)) as usize;
    let base = Instant::now();
    let mut sinks = Vec::new();
    let mut receivers = Vec::new();
    for (sink, stream) in connections {
        let pong = if sinks.len() < publishers {
            sinks.push(sink);
            None
        } else {
            Some(sink)
        };
        receivers.push(tokio::spawn(receive(stream, pong, base)));
    }
    let total = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let padding = Arc::new("x".repeat(size.saturating_sub(22)));
    let rss_before = peer.rss_kib();
    // The server's memory, sampled throughout: a queue that grows shows here.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (pid, peak) = (peer.pid(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Warm up for half a second at the same rate, unstamped so that nobody counts it:
    // the first frames on fresh connections pay for buffers and TCP's slow start. The
    // measured part follows on the same schedule.
    let warm_up = (rate / 2).max(1);
    let mut tasks = Vec::new();
    for (index, mut sink) in sinks.into_iter().enumerate() {
        let padding = padding.clone();
        let publish = peer.publisher(room);
        tasks.push(tokio::spawn(async move {
            let mut behind = Duration::ZERO;
            for message in (index as u64..warm_up + total).step_by(publishers) {
                let intended = base + period * message as u32;
                tokio::time::sleep_until(intended.into()).await;
                let text = if message < warm_up {
                    format!("W {padding}")
                } else {
                    format!("T{:020} {padding}", (intended - base).as_nanos())
                };
                // A server may close a publisher that also reads (4008 when its queue
                // overflows): what it did not send shows as messages not delivered.
                if let Err(err) = sink.send(publish(&text)).await {
                    eprintln!("fan-out: a publisher's connection ended: {err}");
                    break;
                }
                behind = Instant::now().saturating_duration_since(intended);
            }
            anyhow::Ok((sink, behind))
        }));
    }
    // The measured window starts with the first stamped message.
    tokio::time::sleep_until((base + period * warm_up as u32).into()).await;
    let (cpu_before, generator_before, measured_from) = (peer.cpu(), own_cpu(), Instant::now());
    let mut generator_behind = Duration::ZERO;
    let mut sinks = Vec::new();
    for task in tasks {
        let (sink, behind) = task.await??;
        generator_behind = generator_behind.max(behind);
        sinks.push(sink);
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut delivered = 0;
    let mut received_all = Vec::with_capacity(receivers.len());
    for receiver in receivers {
        let received = receiver.await?;
        latency.add(&received.latency).expect("same bounds");
        delivered += received.count;
        received_all.push(received);
    }
    // Read before the connections close: leaving is not part of delivering. The
    // receivers end after two quiet seconds, which are not part of the window.
    let cpu = peer.cpu().saturating_sub(cpu_before);
    let generator_cpu = own_cpu().saturating_sub(generator_before);
    let wall = measured_from.elapsed().saturating_sub(Duration::from_secs(2));
    sampler.abort();
    let rss_peak = peak.load(Ordering::Relaxed).max(peer.rss_kib());
    drop(received_all);
    drop(stalled);
    for mut sink in sinks {
        let _ = sink.close().await;
    }
    Ok(Step {
        latency,
        delivered,
        expected: total * members,
        messages: total,
        cpu,
        generator_cpu,
        generator_behind,
        wall,
        rss_before,
        rss_peak,
    })
}

/// A publishing load.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Messages a second.
    rate: u64,
    seconds: u64,
    /// Bytes per message.
    size: usize,
}

/// Idle memory: `count` connections in rooms of 100, resident memory per connection.
async fn idle(peer: &Peer, count: usize, seconds: u64) -> Result<IdleRow> {
    let before = peer.rss_kib();
    let mut keepers = Vec::new();
    for room in 0..count.div_ceil(100) {
        let connections = peer.room(1000 + room, 100.min(count - room * 100)).await?;
        keepers.extend(connections.into_iter().map(|(sink, stream)| tokio::spawn(keep_alive(sink, stream))));
    }
    peer.wait_idle().await;
    let cpu_before = peer.cpu();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let idle_cpu = peer.cpu().saturating_sub(cpu_before);
    let per_connection = (peer.rss_kib().saturating_sub(before)) as f64 / count as f64;
    // Every connection must still be open, or the memory figure means nothing.
    let open = open_fds(peer.pid());
    let gone = keepers.iter().filter(|keeper| keeper.is_finished()).count();
    if open < count || gone > 0 {
        bail!(
            "{}: {gone} of {count} idle connections closed before the reading ({open} descriptors open)",
            peer.name()
        );
    }
    keepers.iter().for_each(tokio::task::JoinHandle::abort);
    Ok(IdleRow {
        server: peer.name(),
        connections: count,
        kib_per_connection: per_connection,
        idle_cpu_ms: idle_cpu.as_millis() as u64,
        seconds,
    })
}

/// Keeps an idle connection alive as a real client would: reads whatever comes and
/// answers pings, WebSocket's and Engine.IO's. Ends when the connection does.
async fn keep_alive(mut sink: Sink, mut stream: Stream) {
    while let Some(Ok(message)) = stream.next().await {
        let answered = match message {
            Message::Text(text) if text.as_str() == "2" => sink.send(Message::text("3")).await,
            // tungstenite queues the pong; flushing sends it now.
            Message::Ping(_) => sink.flush().await,
            Message::Close(_) => return,
            _ => Ok(()),
        };
        if answered.is_err() {
            return;
        }
    }
}

/// Idle connections: what one costs in memory, and what all of them cost in CPU.
#[derive(Debug, Clone)]
pub(crate) struct IdleRow {
    pub(crate) server: &'static str,
    pub(crate) connections: usize,
    pub(crate) kib_per_connection: f64,
    pub(crate) idle_cpu_ms: u64,
    pub(crate) seconds: u64,
}

/// One fan-out step.
#[derive(Debug, Clone)]
pub(crate) struct FanoutRow {
    pub(crate) server: &'static str,
    pub(crate) room: usize,
    pub(crate) size: usize,
    /// Deliveries a second offered: messages a second times the room.
    pub(crate) offered: u64,
    pub(crate) delivered: u64,
    pub(crate) expected: u64,
    /// Latency quantiles, in milliseconds.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) cpu_us_per_delivery: f64,
    /// The same CPU over the messages published: what one message costs, whatever
    /// the room's size.
    pub(crate) cpu_us_per_message: f64,
    /// The load generator's CPU over the step, in cores (1.0: one core all the time).
    pub(crate) generator_cores: f64,
    /// How late the publishers sent their last message, in milliseconds.
    pub(crate) generator_behind_ms: f64,
    /// This step failed once and was run again: the row that follows it counts.
    pub(crate) run_again: bool,
}

/// How late the last message may leave before the step did not offer its rate.
const GENERATOR_BEHIND_MS: f64 = 20.0;

/// The share of the machine's cores the load generator may use before a step that left
/// late is put down to the generator rather than the server. A publisher also leaves
/// late when the server stops reading (TCP pushes back), and then the generator waits
/// rather than works.
const GENERATOR_BUSY_SHARE: f64 = 0.45;

impl FanoutRow {
    /// Whether the step kept up: nothing lost and p99 within 50 ms.
    pub(crate) fn kept_up(&self) -> bool {
        !self.run_again
            && self.generator_behind_ms <= GENERATOR_BEHIND_MS
            && self.delivered >= self.expected
            && self.p99 <= 50.0
    }

    /// Whether the load generator could not offer the step's rate: its last message
    /// left late, so the step says nothing about the server.
    pub(crate) fn generator_bound(&self) -> bool {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) as f64;
        self.generator_behind_ms > GENERATOR_BEHIND_MS && self.generator_cores >= GENERATOR_BUSY_SHARE * cores
    }

    pub(crate) fn verdict(&self) -> String {
        let verdict = if self.generator_bound() {
            format!("load generator {:.0} ms behind", self.generator_behind_ms)
        } else if self.generator_behind_ms > GENERATOR_BEHIND_MS {
            format!("publisher held back {:.0} ms (the server stopped reading)", self.generator_behind_ms)
        } else if self.delivered < self.expected {
            "lost messages".to_owned()
        } else if self.p99 > 50.0 {
            "p99 over 50 ms".to_owned()
        } else {
            "ok".to_owned()
        };
        if self.run_again { format!("{verdict}; run again") } else { verdict }
    }
}

/// The slow-consumer scenario on one server: the same load twice, with everyone
/// reading and then with one member that never reads.
#[derive(Debug, Clone)]
pub(crate) struct SlowRow {
    pub(crate) server: &'static str,
    pub(crate) baseline: FanoutRow,
    pub(crate) stalled: FanoutRow,
    /// How far the server's resident memory rose during each run, KiB.
    pub(crate) baseline_growth_kib: u64,
    pub(crate) stalled_growth_kib: u64,
}

/// What to compare.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) peers: Vec<String>,
    pub(crate) rooms: Vec<usize>,
    pub(crate) sizes: Vec<usize>,
    pub(crate) idle: Vec<usize>,
    pub(crate) seconds: u64,
    pub(crate) max_deliveries: u64,
    /// The first step's deliveries a second.
    pub(crate) start_deliveries: u64,
    /// Messages a second of the light-load step; 0 skips it.
    pub(crate) light_rate: u64,
    /// Seconds of each slow-consumer step; 0 skips the scenario.
    pub(crate) slow_seconds: u64,
}

/// Everything `compare` measured.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) idle: Vec<IdleRow>,
    pub(crate) fanout: Vec<FanoutRow>,
    /// The smallest room at a light load, where what each message costs on its own
    /// shows: one row per server.
    pub(crate) light: Vec<FanoutRow>,
    pub(crate) slow: Vec<SlowRow>,
}

/// The room and load of the slow-consumer scenario: 2,000 messages of 512 bytes a
/// second into a room of 10, which every server here sustains, and which fills a
/// stalled reader's socket buffers within seconds.
const SLOW_ROOM: usize = 10;
const SLOW_RATE: u64 = 2_000;
const SLOW_SIZE: usize = 512;

fn fanout_row(peer: &Peer, room: usize, load: Load, step: &Step) -> FanoutRow {
    let quantile = |q| step.latency.value_at_quantile(q) as f64 / 1000.0;
    FanoutRow {
        server: peer.name(),
        room,
        size: load.size,
        offered: load.rate * room as u64,
        delivered: step.delivered,
        expected: step.expected,
        p50: quantile(0.5),
        p99: quantile(0.99),
        p999: quantile(0.999),
        cpu_us_per_delivery: step.cpu.as_micros() as f64 / step.delivered.max(1) as f64,
        cpu_us_per_message: step.cpu.as_micros() as f64 / step.messages.max(1) as f64,
        generator_cores: step.generator_cpu.as_secs_f64() / step.wall.as_secs_f64().max(0.001),
        generator_behind_ms: step.generator_behind.as_secs_f64() * 1000.0,
        run_again: false,
    }
}

/// Runs every scenario on every peer, each peer in a fresh process per scenario.
/// Progress goes to standard error as it happens.
pub(crate) async fn compare(plan: &Plan) -> Result<Comparison> {
    let mut comparison = Comparison::default();
    // A peer with settings changed (`caucus+normal`) is there for what a message costs;
    // its idle memory and slow consumer are the default build's.
    let varied = |name: &str| name.contains('+');
    for name in plan.peers.iter().filter(|name| !varied(name)) {
        for &count in plan.idle.iter().filter(|&&count| count > 0) {
            let peer = Peer::start(name)?;
            let row = idle(&peer, count, plan.seconds).await?;
            eprintln!(
                "idle: {} with {count} connections: {:.1} KiB each, {} ms CPU in {} s",
                row.server, row.kib_per_connection, row.idle_cpu_ms, row.seconds
            );
            comparison.idle.push(row);
        }
    }
    for name in &plan.peers {
        let peer = Peer::start(name)?;
        for (index, &members) in plan.rooms.iter().enumerate() {
            for &size in &plan.sizes {
                let mut deliveries_per_sec = plan.start_deliveries.max(members as u64);
                loop {
                    let load = Load {
                        rate: (deliveries_per_sec / members as u64).max(1),
                        seconds: plan.seconds,
                        size,
                    };
                    let room = index * 10 + size;
                    let mut row = fanout_step(&peer, room, members, load).await?;
                    // One stall on a shared machine fails a step that the server keeps up
                    // with; a step is run once more before it counts as failed. Both rows
                    // are kept.
                    if !row.kept_up() && !row.generator_bound() {
                        row.run_again = true;
                        comparison.fanout.push(row);
                        row = fanout_step(&peer, room, members, load).await?;
                    }
                    let kept_up = row.kept_up();
                    let generator_bound = row.generator_bound();
                    comparison.fanout.push(row);
                    if !kept_up || generator_bound || deliveries_per_sec >= plan.max_deliveries {
                        break;
                    }
                    deliveries_per_sec *= 2;
                }
            }
        }
        if plan.light_rate > 0 {
            let members = plan.rooms.iter().copied().min().unwrap_or(7);
            let load = Load { rate: plan.light_rate, seconds: plan.seconds.max(5), size: plan.sizes[0] };
            let row = fanout_step(&peer, 9000, members, load).await?;
            eprintln!(
                "light load: {} room {members}, {} messages/s: {:.1} µs of CPU per message, p99 {:.2} ms",
                row.server, plan.light_rate, row.cpu_us_per_message, row.p99
            );
            comparison.light.push(row);
        }
    }
    if plan.slow_seconds > 0 {
        for name in plan.peers.iter().filter(|name| !varied(name)) {
            let row = slow_consumer(&Peer::start(name)?, plan.slow_seconds).await?;
            eprintln!(
                "slow consumer: {}: others' p99 {:.2} ms, then {:.2} ms with one stalled; RSS grew {} KiB, then {} KiB",
                row.server,
                row.baseline.p99,
                row.stalled.p99,
                row.baseline_growth_kib,
                row.stalled_growth_kib
            );
            comparison.slow.push(row);
        }
    }
    Ok(comparison)
}

/// One fan-out step in a fresh room, reported as it finishes.
async fn fanout_step(peer: &Peer, room: usize, members: usize, load: Load) -> Result<FanoutRow> {
    let connections = peer.room(room, members).await?;
    let step = step(peer, room, connections, load, 0).await?;
    let row = fanout_row(peer, members, load, &step);
    eprintln!(
        "fan-out: {} room {members}, {} B, {} deliveries/s: p99 {:.2} ms, {:.2} µs CPU per delivery, generator {:.2} cores, {}",
        row.server,
        load.size,
        row.offered,
        row.p99,
        row.cpu_us_per_delivery,
        row.generator_cores,
        row.verdict()
    );
    Ok(row)
}

/// The same load into a room, first with everyone reading, then with one member who
/// never reads: the others' latency and the server's memory, side by side.
async fn slow_consumer(peer: &Peer, seconds: u64) -> Result<SlowRow> {
    let load = Load { rate: SLOW_RATE, seconds, size: SLOW_SIZE };
    let baseline = step(peer, 7001, peer.room(7001, SLOW_ROOM).await?, load, 0).await?;
    let stalled = step(peer, 7002, peer.room(7002, SLOW_ROOM).await?, load, 1).await?;
    Ok(SlowRow {
        server: peer.name(),
        baseline: fanout_row(peer, SLOW_ROOM, load, &baseline),
        baseline_growth_kib: baseline.rss_peak.saturating_sub(baseline.rss_before),
        stalled_growth_kib: stalled.rss_peak.saturating_sub(stalled.rss_before),
        stalled: fanout_row(peer, SLOW_ROOM, load, &stalled),
    })
}
