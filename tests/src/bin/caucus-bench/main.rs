//! The benchmark harness. Every figure it prints comes from one invocation that runs
//! the compared configurations side by side on this machine, so read them as ratios.
//!
//! - `durable`: acknowledged durable messages per second against the SQLite store, with
//!   group commit and with one commit per message.
//! - `storm`: thousands of clients drop at once and come back at once; how long until
//!   all have resumed.
//! - `soak`: minutes of mixed traffic against the binary; its memory and descriptors at
//!   the start and the end.
//! - `compare`: Caucus, Socket.IO rooms (`tests/peers/socketio`) and a bare
//!   tokio-tungstenite ceiling side by side: idle memory, fan-out throughput, latency
//!   and CPU per delivery.
//! - `reconvene`: a session of 1,000 split across the caucuses, with 100 points; how
//!   long until the last member has the reconvene and both caucuses' feedback.
//!
//! `storm` and `soak` run the release `caucus` binary in its own process: build it
//! first with `cargo build --release --bin caucus`.

mod ceiling;
mod fanout;
mod load;
mod process;
mod reconvene;

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
    /// Caucus, Socket.IO rooms and the bare ceiling side by side: idle memory and
    /// fan-out latency and throughput.
    Compare {
        /// Which servers, in order.
        #[arg(long, value_delimiter = ',', default_value = "caucus,socketio,ceiling")]
        peers: Vec<String>,
        /// Room sizes for fan-out.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        rooms: Vec<usize>,
        /// Message sizes in bytes.
        #[arg(long, value_delimiter = ',', default_value = "64,512")]
        sizes: Vec<usize>,
        /// Idle connection counts.
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        idle: Vec<usize>,
        /// Seconds per rate step.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// The highest delivery rate to step up to, per second.
        #[arg(long, default_value_t = 640_000)]
        max_deliveries: u64,
    },
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
    /// The ceiling server itself (started by `compare`).
    Ceiling {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
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

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().scenario {
        Scenario::Durable { sessions, clients, messages, runs } => {
            durable(sessions, clients, messages, runs).await
        }
        Scenario::Storm { sessions, members } => load::storm(sessions, members).await,
        Scenario::Compare { peers, rooms, sizes, idle, seconds, max_deliveries } => {
            fanout::compare(&peers, &rooms, &sizes, &idle, seconds, max_deliveries).await
        }
        Scenario::Reconvene { members, points, runs } => {
            print!("{}", reconvene::run(members, points, runs).await?.table());
            Ok(())
        }
        Scenario::Ceiling { listen } => ceiling::serve(listen).await,
        Scenario::Soak { minutes, sessions, members } => load::soak(minutes, sessions, members).await,
    }
}

async fn durable(sessions: usize, clients: usize, messages: usize, runs: usize) -> Result<()> {
    println!("| run | commit | sessions × clients × messages | seconds | acked messages/s |");
    println!("| --- | --- | --- | --- | --- |");
    let mut totals = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        // Alternate the order so neither configuration always runs on a warmer machine.
        let order = if run % 2 == 1 { [true, false] } else { [false, true] };
        for group_commit in order {
            let (elapsed, count) = durable_run(group_commit, sessions, clients, messages).await?;
            let rate = count as f64 / elapsed.as_secs_f64();
            totals[usize::from(group_commit)].push(rate);
            let mode = if group_commit { "group" } else { "one per message" };
            println!(
                "| {run} | {mode} | {sessions} × {clients} × {messages} | {:.3} | {rate:.0} |",
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
    println!();
    println!(
        "median acked messages/s: group commit {group:.0}, one commit per message {single:.0}, ratio {:.1}×",
        group / single
    );
    Ok(())
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
            client.hello(&created.session, &joined.token).await?;
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
