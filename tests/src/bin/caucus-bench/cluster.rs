//! `cluster`: Caucus on three nodes sharing PostgreSQL and a NATS bus, against one node
//! on the same PostgreSQL, in one invocation.
//!
//! - Spread: one room whose members are connected round-robin to the three nodes (the
//!   session runs on the first; the publisher is on the second, so its messages cross
//!   the bus both ways), against the same room on one node. CPU per delivery is summed
//!   over every process that works for it: the Caucus nodes and, on three nodes,
//!   `nats-server`. Latency is taken against each message's intended send time.
//! - Takeover: sessions run by the first node, members spread over all three; the first
//!   node is killed (`kill -9`) or stopped (SIGTERM). Its members reconnect at once to
//!   the two others, in turn; the others' members are closed by their node (1001) when
//!   it notices, and reconnect to it. Time from the loss until each is welcomed again.
//!
//! On two cores all of this measures the bus's overhead and the takeover, not
//! scale-out: three nodes and the load generator share the same two cores.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_protocol::{ClientFrame, Command, Room, RoomName, SessionId};
use caucus_tests::nats::Nats;
use caucus_tests::{Client, GuestToken, http};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

use crate::fanout::{receive, settle};
use crate::process::ServerProcess;

/// CPU time process `pid` has used, user plus system.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

/// The settings of a node on the database at `url`, on the bus at `bus` if given.
fn settings(folder: &std::path::Path, url: &str, bus: Option<&str>, lease_ms: u64) -> Result<String> {
    let key = folder.join("signing-key");
    std::fs::write(&key, "a-shared-signing-key-for-the-cluster-benchmark")?;
    let bus = bus.map(|bus| format!("nats_url = {bus:?}\n")).unwrap_or_default();
    Ok(format!(
        "jwt_secret_file = {key:?}\n[store]\nkind = \"postgres\"\ndatabase_url = {url:?}\n\
         [cluster]\n{bus}lease_ttl_ms = {lease_ms}\nlease_renew_ms = {}\n",
        (lease_ms / 4).max(1)
    ))
}

/// Nodes started on one database, the first one's settings with the bus.
struct Nodes {
    processes: Vec<ServerProcess>,
    bus_pid: Option<u32>,
    _folders: Vec<tempfile::TempDir>,
}

async fn start(count: usize, bus: Option<&Nats>, lease_ms: u64) -> Result<Nodes> {
    let Some(postgres) = caucus_tests::postgres::postgres() else {
        bail!("the cluster scenario needs PostgreSQL: apt-get install postgresql");
    };
    let url = postgres.database().await?;
    let folder = tempfile::tempdir()?;
    let settings = settings(folder.path(), &url, bus.map(Nats::url).as_deref(), lease_ms)?;
    let mut folders = vec![folder];
    let mut processes = Vec::new();
    for _ in 0..count {
        let data = tempfile::tempdir()?;
        processes.push(ServerProcess::start_configured(data.path(), &settings)?);
        folders.push(data);
    }
    // Every node hears the others before anyone connects.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    Ok(Nodes { processes, bus_pid: bus.and_then(Nats::pid), _folders: folders })
}

impl Nodes {
    fn cpu(&self) -> Duration {
        self.processes.iter().map(|node| cpu(node.child.id())).sum::<Duration>()
            + self.bus_pid.map(cpu).unwrap_or_default()
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        self.processes.iter().map(|node| node.address).collect()
    }

    /// A session created on the first node with `members` people, each joined through
    /// and connected to the node after the one before.
    async fn session(&self, members: usize) -> Result<(SessionCreated, Vec<(usize, Joined, Client)>)> {
        let first = &self.processes[0];
        let created = caucus_tests::create_session(first.address, &first.sign_in, "Cluster").await?;
        let addresses = self.addresses();
        let mut people = Vec::new();
        for n in 0..members {
            let node = n % addresses.len();
            let body = serde_json::json!({ "invite_code": created.invite_code, "name": format!("m{n}") })
                .to_string();
            let response = http(addresses[node], "POST", "/api/join", &[], Some(&body)).await?;
            ensure!(response.status == 200, "join: {} {}", response.status, response.body);
            let joined: Joined = response.json()?;
            let mut client = Client::connect(addresses[node]).await?;
            client.hello(&created.session, joined.guest_token()).await?;
            people.push((node, joined, client));
        }
        Ok((created, people))
    }
}

/// One spread measurement.
struct SpreadRow {
    nodes: usize,
    members: usize,
    rate: u64,
    delivered: u64,
    expected: u64,
    cpu: Duration,
    latency: Histogram<u64>,
}

async fn spread_once(nodes: &Nodes, members: usize, rate: u64, seconds: u64) -> Result<SpreadRow> {
    let (_, people) = nodes.session(members).await?;
    // The publisher is on the second node where there is one: its messages go up the bus
    // to the node running the session, and come back down to the others.
    let publisher_at = 1.min(people.len() - 1);
    let sockets: Vec<_> = people.into_iter().map(|(_, _, client)| client.into_socket().split()).collect();
    let mut sockets = settle(sockets).await?;
    let (mut sink, stream) = sockets.remove(publisher_at);
    let base = Instant::now();
    let mut receivers = vec![tokio::spawn(receive(stream, None, base))];
    let mut sinks = Vec::new();
    for (other_sink, other_stream) in sockets {
        receivers.push(tokio::spawn(receive(other_stream, None, base)));
        sinks.push(other_sink);
    }
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let say = |text: String| {
        Message::text(ClientFrame::new(Command::Say { room: RoomName::from(Room::Plenary), text }).encode())
    };
    let warm_up = (rate / 2).max(1);
    for index in 0..warm_up {
        tokio::time::sleep_until((base + period * index as u32).into()).await;
        sink.send(say("W warm-up".into())).await?;
    }
    let cpu_before = nodes.cpu();
    let total = rate * seconds;
    for index in warm_up..warm_up + total {
        let intended = base + period * index as u32;
        tokio::time::sleep_until(intended.into()).await;
        let sent = (intended - base).as_nanos() as u64;
        sink.send(say(format!("T{sent:020} {}", "x".repeat(42)))).await?;
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut delivered = 0;
    let mut kept = Vec::new();
    for receiver in receivers {
        let received = receiver.await?;
        latency.add(&received.latency).expect("same bounds");
        delivered += received.count;
        kept.push(received);
    }
    // Two seconds of quiet end each receiver: CPU read before anyone leaves.
    let cpu = nodes.cpu().saturating_sub(cpu_before);
    drop(kept);
    let _ = sink.close().await;
    Ok(SpreadRow {
        nodes: nodes.processes.len(),
        members,
        rate,
        delivered,
        expected: total * members as u64,
        cpu,
        latency,
    })
}

/// One takeover measurement.
struct TakeoverRow {
    loss: &'static str,
    sessions: usize,
    members: usize,
    welcomed: Vec<Duration>,
}

async fn takeover_once(
    bus: &Nats,
    killed: bool,
    sessions: usize,
    members: usize,
    lease_ms: u64,
) -> Result<TakeoverRow> {
    let mut nodes = start(3, Some(bus), lease_ms).await?;
    let addresses = nodes.addresses();
    let mut people: Vec<(SessionId, usize, Joined, Client)> = Vec::new();
    for _ in 0..sessions {
        let (created, joined) = nodes.session(members).await?;
        people.extend(
            joined.into_iter().map(|(node, joined, client)| (created.session.clone(), node, joined, client)),
        );
    }
    let lost_at = Instant::now();
    if killed {
        nodes.processes[0].child.kill()?;
        nodes.processes[0].child.wait()?;
    } else {
        let pid = nodes.processes[0].child.id().to_string();
        ensure!(std::process::Command::new("kill").args(["-TERM", &pid]).status()?.success());
    }
    let mut back = Vec::new();
    for (n, (session, node, joined, mut client)) in people.into_iter().enumerate() {
        // The first node's people find their connection gone and go to another node;
        // the others wait for their node to close theirs, then come back to it.
        let to = if node == 0 { addresses[1 + n % 2] } else { addresses[node] };
        back.push(tokio::spawn(async move {
            if node != 0 {
                client.wait = Duration::from_secs(60);
                let _ = client.expect_close().await;
            }
            let cursors = client.resume_cursors();
            client.drop_connection();
            let mut again = Client::connect(to).await?;
            again.wait = Duration::from_secs(120);
            again.hello_resume(&session, joined.guest_token(), cursors).await?;
            Ok::<_, anyhow::Error>(lost_at.elapsed())
        }));
    }
    let mut welcomed = Vec::new();
    for task in back {
        welcomed.push(task.await?.context("a member was not welcomed again")?);
    }
    welcomed.sort();
    Ok(TakeoverRow {
        loss: if killed { "killed (kill -9)" } else { "stopped (SIGTERM)" },
        sessions,
        members,
        welcomed,
    })
}

/// Runs both parts and returns their Markdown tables.
pub(crate) async fn run(
    members: &[usize],
    rates: &[u64],
    seconds: u64,
    sessions: usize,
    per_session: usize,
    runs: usize,
) -> Result<String> {
    let Some(bus) = Nats::private() else {
        bail!("the cluster scenario needs nats-server: apt-get install nats-server")
    };
    let mut out = String::from(
        "| nodes | members | messages/s | delivered | CPU µs per delivery (all processes) | p50 ms | p99 ms |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    // The costliest three-node run per delivery, for a cautious arithmetic of how many
    // nodes a load needs.
    let mut costliest: Option<f64> = None;
    for &size in members {
        for &rate in rates {
            for count in [1, 3] {
                let nodes = start(count, (count > 1).then_some(&bus), 10_000).await?;
                let row = spread_once(&nodes, size, rate, seconds).await?;
                eprintln!(
                    "cluster spread: {count} nodes, {size} members, {rate}/s: {} of {} delivered",
                    row.delivered, row.expected
                );
                let ms = |q: f64| row.latency.value_at_quantile(q) as f64 / 1000.0;
                let per_delivery = row.cpu.as_secs_f64() * 1e6 / row.delivered.max(1) as f64;
                if count > 1 && costliest.is_none_or(|cost| per_delivery > cost) {
                    costliest = Some(per_delivery);
                }
                out.push_str(&format!(
                    "| {} | {} | {} | {} of {} | {:.2} | {:.2} | {:.2} |\n",
                    row.nodes,
                    row.members,
                    row.rate,
                    row.delivered,
                    row.expected,
                    per_delivery,
                    ms(0.5),
                    ms(0.99),
                ));
            }
        }
    }
    if let Some(per_delivery) = costliest {
        // A core kept at half its time leaves room for bursts and a node's loss.
        let per_core = 0.5e6 / per_delivery;
        out.push_str(&format!(
            "\nHow many nodes a load needs, from the costliest three-node run above ({per_delivery:.2} µs of CPU per \
             delivery, every process counted): a core kept half busy delivers about {per_core:.0} messages a \
             second, so a load of D deliveries a second needs D ÷ {per_core:.0} cores, plus one node's worth \
             to lose one. For example 200 sessions of 30 people each hearing 2 messages a second is \
             12,000 deliveries a second: {cores:.1} cores, so two nodes of two cores and a third to spare.\n",
            cores = 12_000.0 / per_core,
        ));
    }
    if runs == 0 {
        return Ok(out);
    }
    out.push_str(
        "\n| first node | sessions × members | lease | first welcomed | p50 | p99 | all welcomed |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for _ in 0..runs {
        for killed in [true, false] {
            let row = takeover_once(&bus, killed, sessions, per_session, 2_000).await?;
            let at = |q: f64| {
                row.welcomed
                    [((row.welcomed.len() as f64 * q).ceil() as usize).clamp(1, row.welcomed.len()) - 1]
            };
            let ms = |duration: Duration| format!("{:.0} ms", duration.as_secs_f64() * 1000.0);
            eprintln!("cluster takeover: {}, last welcomed after {}", row.loss, ms(at(1.0)));
            out.push_str(&format!(
                "| {} | {} × {} | 2000 ms | {} | {} | {} | {} |\n",
                row.loss,
                row.sessions,
                row.members,
                ms(row.welcomed[0]),
                ms(at(0.5)),
                ms(at(0.99)),
                ms(at(1.0)),
            ));
        }
    }
    Ok(out)
}
