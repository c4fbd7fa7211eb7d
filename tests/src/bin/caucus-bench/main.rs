//! The benchmark harness. Every figure it prints comes from one invocation that runs
//! the compared configurations side by side on this machine, so read them as ratios.
//!
//! - `durable`: acknowledged durable messages per second against the SQLite store, with
//!   the store's group commit (appends from several sessions share one transaction) and
//!   with one transaction per append. Each session's actor already makes one append of
//!   all the commands waiting for it.
//! - `storm`: thousands of clients drop at once and come back at once; how long until
//!   all have resumed.
//! - `soak`: minutes of mixed traffic against the binary; its memory and descriptors at
//!   the start and the end.
//! - `compare`: Caucus, Socket.IO rooms (`tests/peers/socketio`) and a bare
//!   tokio-tungstenite ceiling side by side: idle memory, fan-out throughput, latency
//!   and CPU per delivery.
//! - `reconvene`: a session of 1,000 split across the caucuses, with 100 points; how
//!   long until the last member has the reconvene and both caucuses' feedback.
//! - `history`: a server started on data folders holding more and more history: time
//!   to `/healthz`, memory before anyone connects, and the first welcome of a session
//!   loaded from the store.
//!
//! - `takeover`: sessions kept in a shared PostgreSQL, run by one node that is killed or
//!   stopped; how long until every member is welcomed again by a second node.
//!
//! - `report`: all of the above but the soak, written to `docs/benchmarks.md` with a
//!   plot in `docs/benchmarks.svg`.
//!
//! `storm`, `soak`, `compare`, `reconvene`, `history` and `report` run the release `caucus` binary
//! in its own process: build it first with `cargo build --release --bin caucus`.

mod ceiling;
mod cluster;
mod fanout;
mod history;
mod load;
mod process;
mod reconvene;
mod report;
mod takeover;

use caucus_tests::GuestToken;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_protocol::{ClientFrame, ClientId, Command, Room, RoomName, ServerMessage};
use caucus_server::Server;
use caucus_server::config::{Config, Secret};
use caucus_tests::{Client, http};
use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "Caucus benchmark harness")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Acknowledged durable messages per second, group commit against one commit each.
    Durable {
        /// Sessions, each with its own actor; commits from different sessions can share
        /// a transaction.
        #[arg(long, default_value_t = 16)]
        sessions: usize,
        /// Clients per session, each sending as fast as acks allow.
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Messages per client.
        #[arg(long, default_value_t = 300)]
        messages: usize,
        /// Runs of each configuration; the table shows each run.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// A reconnect storm: every client drops and comes back at once.
    Storm {
        /// Sessions.
        #[arg(long, default_value_t = 100)]
        sessions: usize,
        /// Members per session.
        #[arg(long, default_value_t = 30)]
        members: usize,
    },
    /// Caucus, Socket.IO rooms and the bare ceiling side by side: idle memory, fan-out
    /// and a slow consumer. Prints Markdown.
    Compare(CompareArgs),
    /// Reconvene in a large session, timed until the last member has the feedback.
    Reconvene {
        /// Members, split evenly across the two caucuses.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Points written before each reconvene, split evenly across the caucuses.
        #[arg(long, default_value_t = 100)]
        points: usize,
        /// Rounds, each opened, filled with points and reconvened.
        #[arg(long, default_value_t = 100)]
        runs: usize,
    },
    /// A server started on data folders holding more and more history.
    History {
        /// Stored events in each folder.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,300000,1000000")]
        events: Vec<usize>,
        /// Events per session.
        #[arg(long, default_value_t = 300)]
        per_session: usize,
    },
    /// Sessions on a shared PostgreSQL whose node is killed or stopped: how long until
    /// every member is welcomed again by a second node.
    Takeover {
        /// Sessions, all run by the first node.
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Members per session, each connected to the first node.
        #[arg(long, default_value_t = 30)]
        members: usize,
        /// The nodes' lease, in milliseconds (renewed every quarter of it).
        #[arg(long, default_value_t = 2000)]
        lease_ms: u64,
        /// Runs of each way of losing the node.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Three nodes on PostgreSQL and NATS against one: CPU per delivery summed over all
    /// processes and latency with members spread over the nodes; takeover with members
    /// on all three when the node running their sessions is killed or stopped.
    Cluster {
        /// Room sizes, members spread round-robin over the nodes.
        #[arg(long, value_delimiter = ',', default_value = "30,300")]
        members: Vec<usize>,
        /// Messages a second published into each room.
        #[arg(long, value_delimiter = ',', default_value = "100,500")]
        rates: Vec<u64>,
        /// Seconds each rate is held.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Sessions in the takeover part, all run by the first node.
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Members per session in the takeover part, spread over the three nodes.
        #[arg(long, default_value_t = 30)]
        per_session: usize,
        /// Runs of each way of losing the node.
        #[arg(long, default_value_t = 2)]
        runs: usize,
    },
    /// The ceiling server itself (started by `compare`).
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Everything but the soak, written to `docs/benchmarks.md` and `docs/benchmarks.svg`.
    Report {
        #[command(flatten)]
        compare: CompareArgs,
        /// Reconvene rounds.
        #[arg(long, default_value_t = 100)]
        reconvene_runs: usize,
        /// Small sizes for the fixed scenarios (reconvene, durable, storm), to check that
        /// the report is written at all: the test suite's smoke run.
        #[arg(long)]
        quick: bool,
        /// Where to write the report; the plot goes next to it.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md"))]
        out: std::path::PathBuf,
    },
    /// A soak: mixed traffic for a number of minutes.
    Soak {
        /// How long, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Sessions.
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        /// Members per session.
        #[arg(long, default_value_t = 20)]
        members: usize,
    },
}

/// What `compare` runs.
#[derive(Debug, Clone, clap::Args)]
struct CompareArgs {
    /// Which servers, in order: `caucus`, `socketio`, `ceiling`, or `caucus@PATH` for
    /// another build of the binary beside this one (a change measured before and after);
    /// `+normal` after a Caucus runs it with `store.synchronous = "normal"`, `+workers=N`
    /// with N async worker threads.
    #[arg(long, value_delimiter = ',', default_value = "caucus,caucus+normal,socketio,ceiling")]
    peers: Vec<String>,
    /// Room sizes for fan-out: a caucus's usual size, a plenary's, a large one.
    #[arg(long, value_delimiter = ',', default_value = "7,100,1000")]
    rooms: Vec<usize>,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    sizes: Vec<usize>,
    /// Idle connection counts. Each process here may hold 20,000 descriptors at most
    /// (`ulimit -Hn`), so 50,000 cannot be opened on this machine.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    idle: Vec<usize>,
    /// Seconds per rate step, and of the idle CPU reading.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// The highest delivery rate to step up to, per second. The steps double from
    /// `--start-deliveries` until every server fails one, the load generator falls
    /// behind, or this.
    #[arg(long, default_value_t = 10_240_000)]
    max_deliveries: u64,
    /// The first step's delivery rate, per second.
    #[arg(long, default_value_t = 5_000)]
    start_deliveries: u64,
    /// Messages a second into the smallest room for the light-load step, where the fixed
    /// cost of each message shows; 0 skips it.
    #[arg(long, default_value_t = 100)]
    light_rate: u64,
    /// Seconds of each slow-consumer run; 0 skips it.
    #[arg(long, default_value_t = 10)]
    slow_seconds: u64,
}

impl CompareArgs {
    fn plan(&self) -> fanout::Plan {
        fanout::Plan {
            peers: self.peers.clone(),
            rooms: self.rooms.clone(),
            sizes: self.sizes.clone(),
            idle: self.idle.clone(),
            seconds: self.seconds,
            max_deliveries: self.max_deliveries,
            start_deliveries: self.start_deliveries,
            light_rate: self.light_rate,
            slow_seconds: self.slow_seconds,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().scenario {
        Scenario::Durable { sessions, clients, messages, runs } => {
            print!("{}", durable(sessions, clients, messages, runs).await?);
            Ok(())
        }
        Scenario::Storm { sessions, members } => {
            print!("{}", load::storm(sessions, members).await?);
            Ok(())
        }
        Scenario::Compare(args) => {
            let plan = args.plan();
            let comparison = fanout::compare(&plan).await?;
            print!("{}", report::comparison(&comparison, &plan, None));
            Ok(())
        }
        Scenario::Report { compare, reconvene_runs, quick, out } => {
            report(&compare, reconvene_runs, quick, &out).await
        }
        Scenario::Reconvene { members, points, runs } => {
            print!("{}", reconvene::run(members, points, runs).await?.table());
            Ok(())
        }
        Scenario::History { events, per_session } => {
            print!("{}", history::run(&events, per_session).await?);
            Ok(())
        }
        Scenario::Takeover { sessions, members, lease_ms, runs } => {
            print!("{}", takeover::run(sessions, members, lease_ms, runs).await?);
            Ok(())
        }
        Scenario::Cluster { members, rates, seconds, sessions, per_session, runs } => {
            print!("{}", cluster::run(&members, &rates, seconds, sessions, per_session, runs).await?);
            Ok(())
        }
        Scenario::Ceiling { listen } => ceiling::serve(listen).await,
        Scenario::Soak { minutes, sessions, members } => load::soak(minutes, sessions, members).await,
    }
}

/// Runs every scenario but the soak and writes the report and its plot.
async fn report(args: &CompareArgs, reconvene_runs: usize, quick: bool, out: &std::path::Path) -> Result<()> {
    // Members and points per reconvene; sessions, clients and messages for durable
    // acks; sessions and members for the storm.
    let (members, points) = if quick { (20, 4) } else { (1000, 100) };
    let (messages, runs) = if quick { (5, 1) } else { (300, 3) };
    let (storm_sessions, storm_members) = if quick { (2, 5) } else { (100, 30) };
    let started = Instant::now();
    // Fail now, not after the long run, if the report cannot be written.
    if let Some(folder) = out.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let plan = args.plan();
    eprintln!("report: comparing {} (this takes a while; progress follows)", plan.peers.join(", "));
    let comparison = fanout::compare(&plan).await?;
    eprintln!("report: reconvene, {reconvene_runs} runs");
    let reconvene = reconvene::run(members, points, reconvene_runs).await?;
    eprintln!("report: durable acknowledgements");
    let many_sessions = durable(16, 2, messages, runs).await?;
    let one_session = durable(1, 32, messages, runs).await?;
    eprintln!("report: reconnect storm");
    let storm = load::storm(storm_sessions, storm_members).await?;
    eprintln!("report: history");
    let (history_events, per_session): (&[usize], usize) =
        if quick { (&[300], 30) } else { (&[10_000, 100_000, 300_000, 1_000_000], 300) };
    let history = history::run(history_events, per_session).await?;
    eprintln!("report: takeover");
    let (takeover_sessions, takeover_members, takeover_runs) = if quick { (2, 3, 1) } else { (10, 30, 3) };
    let takeover = takeover::run(takeover_sessions, takeover_members, 2000, takeover_runs).await?;
    eprintln!("report: cluster");
    let cluster = if quick {
        cluster::run(&[6], &[50], 1, 2, 3, 1).await?
    } else {
        cluster::run(&[30, 300], &[100, 500], 3, 10, 30, 2).await?
    };
    let plot = out.with_extension("svg");
    report::plot(&comparison, &plan, &plot)?;
    let today = std::process::Command::new("date").arg("+%Y-%m-%d").output()?;
    let body = format!(
        "# Benchmarks\n\n\
         Written by `caucus-bench report` on {date} in {minutes:.0} minutes (rounded); do not edit by hand. \
         Every figure comes from this one invocation, which ran the compared servers side by side \
         on the same machine. The machines are shared and noisy: read the ratios, not the \
         absolute numbers. What each scenario does, and what the figures say about where the time \
         and memory go, is in [performance.md](performance.md).\n\n\
         Command (from the repository's root; Node.js and `npm ci` in `tests/peers/socketio` \
         first, which `scripts/test` does):\n\n\
         ```sh\ncargo build --release --bin caucus --bin caucus-bench\n{command}\n```\n\n\
         {machine}\n\
         ![Deliveries per second kept up with, and p99 at the common load, against room size]({plot_name})\n\n\
         {comparison}\n\
         ## Durable acknowledgements\n\n\
         Messages acknowledged per second, where an acknowledgement means the message is \
         committed to SQLite (WAL, `synchronous=FULL`). \"group\": the store's writer puts the \
         appends of several sessions in one transaction; \"one per append\": a transaction \
         each. Either way a session's actor makes one append of all the commands waiting for \
         it, so within one session the two are the same. First 16 sessions of 2 clients, then \
         one session of 32; each client sends \
         {messages} messages without waiting.\n\n{many_sessions}\n{one_session}\n\
         ## Reconnect storm\n\n\
         {storm_clients} clients in {storm_sessions} sessions of {storm_members} are welcomed; every \
         connection drops at once, with no close handshake, and every client reconnects at once \
         with its resume cursors.\n\n{storm}\n\
         ## History at start-up\n\n\
         The release binary started on data folders holding more and more stored events, in \
         sessions of {per_session} (nine in ten of them ended), against an empty folder (the \
         first row). Start-up reads each session's listing, not its events: a session is \
         loaded from the store when someone enters it. \"ready\" is the time from starting the \
         process to the first answer from `/healthz`; the welcomes are of one session of \
         {per_session} events in the folder, first loaded from the store, then already \
         loaded.\n\n{history}\n\
         ## Takeover\n\n\
         Two nodes on one PostgreSQL (a private server on loopback, `fsync` on), leases of \
         2,000 ms renewed every 500 ms. {takeover_sessions} sessions of {takeover_members} \
         members, all run by the first node and all its members connected to it; the first \
         node is killed with `kill -9`, or stopped with SIGTERM, and every member reconnects \
         to the second node at once with its cursors. Times run from the kill or the signal \
         to each member's welcome. After a kill the second node waits for the first one's \
         lease to run out; a stopping node gives its sessions up. On two cores it shows the \
         lease and the load, not scale-out.\n\n{takeover}\n\
         ## Cluster mode\n\n\
         Three nodes sharing PostgreSQL and a NATS server (`caucus-bench cluster`), against one \
         node on the same PostgreSQL. First, one room: its members joined through and \
         connected to the three nodes in turn; the session runs on the first node and the \
         publisher is on the second, so each message crosses the bus to the session and back \
         to two thirds of its readers. CPU is summed over every process that works for it \
         (the nodes, and `nats-server` on three nodes); latency is from each message's \
         intended send time. Two cores run all three nodes, NATS, PostgreSQL and the load \
         generator: this shows what the bus costs, not scale-out. Then takeover: sessions run \
         by the first node with their members spread over all three; the first node is \
         killed or stopped; its members reconnect at once to the other two in turn, and the \
         others' members are closed by their node when it notices (within 3 s of the last \
         heartbeat) and reconnect to it. Leases of 2,000 ms.\n\n{cluster}",
        storm_clients = storm_sessions * storm_members,
        date = String::from_utf8_lossy(&today.stdout).trim(),
        minutes = started.elapsed().as_secs_f64() / 60.0,
        machine = report::machine(),
        plot_name = plot.file_name().and_then(|name| name.to_str()).unwrap_or("benchmarks.svg"),
        comparison = report::comparison(&comparison, &plan, Some(&reconvene)),
    );
    std::fs::write(out, body)?;
    eprintln!("report: wrote {} and {}", out.display(), plot.display());
    Ok(())
}

async fn durable(sessions: usize, clients: usize, messages: usize, runs: usize) -> Result<String> {
    let mut out = String::from(
        "| run | commit | sessions × clients × messages | seconds | acked messages/s |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut totals = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        // Alternate the order so neither configuration always runs on a warmer machine.
        let order = if run % 2 == 1 { [true, false] } else { [false, true] };
        for group_commit in order {
            let (elapsed, count) = durable_run(group_commit, sessions, clients, messages).await?;
            let rate = count as f64 / elapsed.as_secs_f64();
            totals[usize::from(group_commit)].push(rate);
            let mode = if group_commit { "group" } else { "one per append" };
            out += &format!(
                "| {run} | {mode} | {sessions} × {clients} × {messages} | {:.3} | {rate:.0} |\n",
                elapsed.as_secs_f64()
            );
        }
    }
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let group = median(&mut totals[1]);
    let single = median(&mut totals[0]);
    out += &format!(
        "\nMedian acked messages/s: group commit {group:.0}, one commit per append {single:.0}, ratio {:.1}×.\n",
        group / single
    );
    Ok(out)
}

/// One server, `sessions` sessions of `clients` members each pipelining `messages`
/// messages; returns the time from the first send to the last ack, and the number acked.
async fn durable_run(
    group_commit: bool,
    sessions: usize,
    clients: usize,
    messages: usize,
) -> Result<(Duration, usize)> {
    let data = tempfile::tempdir()?;
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().to_owned(),
        jwt_secret: Some(Secret(b"benchmark-signing-key-of-at-least-32-bytes".to_vec())),
        ..Config::default()
    };
    config.store.group_commit = group_commit;
    config.limits.frames_per_sec = 1_000_000;
    config.limits.frame_burst = 1_000_000;
    config.limits.member_frames_per_sec = 1_000_000;
    config.limits.member_frame_burst = 1_000_000;
    config.limits.outbound_queue = 1 << 20;
    config.limits.sessions_per_facilitator = usize::MAX;
    let server = Server::bind(config).await?;
    let address = server.local_addr();
    let hub = server.hub().clone();
    let shutdown = server.shutdown_token();
    let task = tokio::spawn(server.run());

    let token = hub.auth().mint_facilitator("Bench").map_err(anyhow::Error::msg)?;
    let body = r#"{"title":"Benchmark","caucuses":{"a":"A","b":"B"}}"#;
    let auth = format!("Bearer {token}");
    let mut connected = Vec::new();
    for _ in 0..sessions {
        let created: SessionCreated =
            http(address, "POST", "/api/sessions", &[("authorization", &auth)], Some(body)).await?.json()?;
        for n in 0..clients {
            let request = serde_json::json!({ "invite_code": created.invite_code, "name": format!("m{n}") })
                .to_string();
            let joined: Joined = http(address, "POST", "/api/join", &[], Some(&request)).await?.json()?;
            let mut client = Client::connect(address).await?;
            client.hello(&created.session, joined.guest_token()).await?;
            connected.push(client);
        }
    }

    let start = Instant::now();
    let mut tasks = Vec::new();
    for (n, client) in connected.into_iter().enumerate() {
        tasks.push(tokio::spawn(pipeline(client, n, messages)));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await??;
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    task.await??;
    let expected = sessions * clients * messages;
    ensure!(acked == expected, "only {acked} of {expected} were acknowledged");
    Ok((elapsed, acked))
}

/// Sends every message without waiting, and counts acks until all have come back.
async fn pipeline(client: Client, n: usize, messages: usize) -> Result<usize> {
    let (mut sink, mut stream) = client.into_socket().split();
    let writer = tokio::spawn(async move {
        for m in 0..messages {
            let frame = ClientFrame::with_id(
                ClientId::new(format!("c{n}-{m}"))?,
                Command::Say { room: RoomName::from(Room::Plenary), text: format!("message {m} from {n}") },
            );
            sink.send(Message::text(frame.encode())).await?;
        }
        Ok::<_, anyhow::Error>(sink)
    });
    let mut acked = 0;
    while acked < messages {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .context("no ack within a minute")?
            .context("the connection ended")??;
        let Message::Text(text) = message else { continue };
        match serde_json::from_str::<ServerMessage>(&text)? {
            ServerMessage::Ack(ack) if ack.seq.is_some() => acked += 1,
            ServerMessage::Error(error) => bail!("refused: {error:?}"),
            _ => {}
        }
    }
    drop(writer.await??);
    Ok(acked)
}
