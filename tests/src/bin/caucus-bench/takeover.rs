//! `takeover`: sessions kept in a shared PostgreSQL and run by one node; that node is
//! killed (`kill -9`) or stopped (SIGTERM), and every member reconnects to a second node
//! at once. How long from the kill or the signal until each member is welcomed again.
//!
//! After a kill the second node must wait for the first one's lease to run out; after a
//! SIGTERM the first node gives its sessions up as it stops, so nobody waits for a lease.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use caucus_protocol::SessionId;
use caucus_tests::{Client, GuestToken};

use crate::process::ServerProcess;

/// How the first node goes.
#[derive(Debug, Clone, Copy)]
enum Loss {
    Killed,
    Drained,
}

/// One takeover's figures.
struct Row {
    loss: Loss,
    /// TCP connects to the second node that took over half a second: a SYN dropped by
    /// the listener's queue under the reconnect storm and sent again a second later.
    slow_connects: usize,
    members: usize,
    first: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

pub(crate) async fn run(sessions: usize, members: usize, lease_ms: u64, runs: usize) -> Result<String> {
    let Some(postgres) = caucus_tests::postgres::postgres() else {
        bail!("the takeover scenario needs PostgreSQL: apt-get install postgresql");
    };
    let mut rows = Vec::new();
    for run in 0..runs {
        for loss in [Loss::Killed, Loss::Drained] {
            let url = postgres.database().await?;
            let row = once(&url, loss, sessions, members, lease_ms).await?;
            eprintln!(
                "takeover run {}: {loss:?}, {} members welcomed again, the last after {} ms",
                run + 1,
                row.members,
                row.max.as_millis()
            );
            rows.push(row);
        }
    }
    let ms = |duration: Duration| format!("{:.0}", duration.as_secs_f64() * 1000.0);
    let mut out = String::from(
        "| first node | sessions × members | lease | first welcomed | p50 | p99 | all welcomed | connects over 0.5 s |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in &rows {
        let how = match row.loss {
            Loss::Killed => "killed (kill -9)",
            Loss::Drained => "stopped (SIGTERM)",
        };
        out.push_str(&format!(
            "| {how} | {sessions} × {} | {lease_ms} ms | {} ms | {} ms | {} ms | {} ms | {} |\n",
            row.members / sessions.max(1),
            ms(row.first),
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            row.slow_connects
        ));
    }
    Ok(out)
}

async fn once(url: &str, loss: Loss, sessions: usize, members: usize, lease_ms: u64) -> Result<Row> {
    let folder = tempfile::tempdir()?;
    let key = folder.path().join("signing-key");
    std::fs::write(&key, "a-shared-signing-key-for-the-takeover-benchmark")?;
    let settings = format!(
        "jwt_secret_file = {key:?}\n[store]\nkind = \"postgres\"\ndatabase_url = {url:?}\n\
         [cluster]\nlease_ttl_ms = {lease_ms}\nlease_renew_ms = {}\n",
        (lease_ms / 4).max(1)
    );
    let (data_a, data_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let first = ServerProcess::start_configured(data_a.path(), &settings)?;
    let people = first.populate(sessions, members).await?;
    let mut connected: Vec<(SessionId, String, Client)> = Vec::new();
    for (session, joined) in &people {
        for member in joined {
            let mut client = Client::connect(first.address).await?;
            client.hello(session, member.guest_token()).await?;
            connected.push((session.clone(), member.guest_token().to_owned(), client));
        }
    }
    // The second node starts once the sessions exist: nodes do not yet tell each other
    // of new sessions.
    let second = ServerProcess::start_configured(data_b.path(), &settings)?;
    let cursors: Vec<(SessionId, String, BTreeMap<String, u64>)> = connected
        .into_iter()
        .map(|(session, token, client)| {
            let cursors = client.resume_cursors();
            client.drop_connection();
            (session, token, cursors)
        })
        .collect();

    let mut first = first;
    let lost_at = Instant::now();
    match loss {
        Loss::Killed => {
            first.child.kill()?;
            first.child.wait()?;
        }
        Loss::Drained => {
            let status =
                std::process::Command::new("kill").args(["-TERM", &first.child.id().to_string()]).status()?;
            ensure!(status.success(), "could not signal the first node");
        }
    }
    let mut back = Vec::new();
    for (session, token, cursors) in cursors {
        let address = second.address;
        back.push(tokio::spawn(async move {
            let connecting = Instant::now();
            let mut client = Client::connect(address).await?;
            let connect = connecting.elapsed();
            // The welcome may wait for a lease longer than a test's usual wait.
            client.wait = Duration::from_secs(120);
            client.hello_resume(&session, &token, cursors).await?;
            Ok::<_, anyhow::Error>((lost_at.elapsed(), connect))
        }));
    }
    let mut times = Vec::new();
    let mut slow_connects = 0;
    for task in back {
        let (welcomed, connect) = task.await?.context("a member was not welcomed on the second node")?;
        times.push(welcomed);
        slow_connects += usize::from(connect > Duration::from_millis(500));
    }
    if matches!(loss, Loss::Drained) {
        first.child.wait()?;
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Row {
        loss,
        slow_connects,
        members: times.len(),
        first: times[0],
        p50: at(0.5),
        p99: at(0.99),
        max: *times.last().context("no members")?,
    })
}
