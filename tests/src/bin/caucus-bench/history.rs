//! `history`: what a data folder's history costs a server that starts on it. For each
//! size, a data folder is filled with sessions of `per_session` events each (most of
//! them ended, as a practice's past sessions are), the release binary is started on
//! it, and the harness reads how long until `/healthz` answers, the resident memory
//! before anyone connects, and how long the first `welcome` of one of those sessions
//! takes (loaded from the store) against the next one (already loaded).
//!
//! The folder is filled through the server's own store and session rules, the same
//! events and listings the protocol would write, because filling a million events
//! through WebSockets would take most of the run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caucus_protocol::{CaucusLabels, ClientId, Command, MemberId, Room, SessionId, Settings};
use caucus_server::session::{Decision, Listing, Session, SessionCaps, SessionSetup, TextLimits};
use caucus_server::store::{SessionRecord, SqliteOptions, SqliteStore, Store};
use caucus_tests::{Client, http, room};

use crate::process::ServerProcess;

/// One data folder's figures.
pub(crate) struct Row {
    sessions: usize,
    events: usize,
    /// From starting the process to the first `200` from `/healthz`.
    ready: Duration,
    /// Resident memory after start-up, before anyone connects, in KiB.
    rss_kib: u64,
    /// The first `welcome` of a session nobody had entered since start-up.
    first_welcome: Duration,
    /// The next `welcome` of the same session, now loaded.
    loaded_welcome: Duration,
}

/// Fills folders of `totals` events and measures a server started on each, and on an
/// empty folder first.
pub(crate) async fn run(totals: &[usize], per_session: usize) -> Result<String> {
    let mut rows = Vec::new();
    let empty = tempfile::tempdir()?;
    let fresh = measure(empty.path(), None).await?;
    rows.push(fresh);
    for &total in totals {
        let folder = tempfile::tempdir()?;
        let sessions = total.div_ceil(per_session);
        eprintln!("history: {sessions} sessions × {per_session} events");
        rows.push(measure(folder.path(), Some((sessions, per_session))).await?);
    }
    Ok(table(&rows, per_session))
}

/// Starts the server on `data` (filled with `fill` sessions × events first, by the
/// facilitator the server signs in) and reads its figures.
async fn measure(data: &Path, fill: Option<(usize, usize)>) -> Result<Row> {
    // A first start makes the signing key and gives the facilitator's token; the
    // session it creates is the one whose welcome is timed.
    let server = ServerProcess::start(data)?;
    let auth = format!("Bearer {}", server.sign_in);
    let body = r#"{"title":"History","caucuses":{"a":"A","b":"B"}}"#;
    let created: caucus_protocol::api::SessionCreated =
        http(server.address, "POST", "/api/sessions", &[("authorization", &auth)], Some(body))
            .await?
            .json()?;
    let mut client = Client::connect(server.address).await?;
    let facilitator = client.hello(&created.session, &server.sign_in).await?.you.id;
    for n in 0..fill.map_or(0, |(_, per_session)| per_session.saturating_sub(2)) {
        client.say(Room::Plenary, &format!("message {n} of the session whose welcome is timed")).await?;
    }
    drop(client);
    let token = server.sign_in.clone();
    drop(server);
    let (sessions, events) = match fill {
        Some((sessions, per_session)) => {
            self::fill(data, &facilitator, sessions, per_session).await?;
            (sessions + 1, sessions * per_session)
        }
        None => (1, 0),
    };

    let started = Instant::now();
    let server = ServerProcess::start(data)?;
    let ready = loop {
        let health = http(server.address, "GET", "/healthz", &[], None).await;
        if health.is_ok_and(|response| response.status == 200) {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the server did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Let the allocator settle as it would before the first visitor.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_kib = server.rss_kib();
    let welcome = || async {
        let mut client = Client::connect(server.address).await?;
        let began = Instant::now();
        client.hello(&created.session, &token).await?;
        anyhow::Ok(began.elapsed())
    };
    let first_welcome = welcome().await?;
    let loaded_welcome = welcome().await?;
    Ok(Row { sessions, events, ready, rss_kib, first_welcome, loaded_welcome })
}

/// Writes `sessions` sessions of `per_session` events each to the folder's database,
/// all but one in ten ended.
async fn fill(data: &Path, facilitator: &MemberId, sessions: usize, per_session: usize) -> Result<()> {
    let store = SqliteStore::open(SqliteOptions {
        path: data.join("caucus.db"),
        group_commit: true,
        synchronous: Default::default(),
        busy_timeout: Duration::from_secs(5),
    })?;
    let now = 1_700_000_000_000u64;
    for index in 0..sessions {
        let record = SessionRecord {
            id: SessionId::new(format!("s-history{index:07}"))?,
            title: format!("Past session {index}"),
            labels: CaucusLabels { a: "A".into(), b: "B".into() },
            settings: Settings::default(),
            ground_rules: None,
            invite_code: format!("history{index:07}"),
            created_by: facilitator.clone(),
            created_at: now,
            allow_guests: true,
        };
        let mut session = Session::new(SessionSetup {
            id: record.id.clone(),
            title: record.title.clone(),
            labels: record.labels.clone(),
            settings: record.settings.clone(),
            ground_rules: None,
            limits: TextLimits::default(),
            caps: SessionCaps::default(),
            window: 1000,
        })?;
        let mut events = Vec::with_capacity(per_session);
        let mut apply = |session: &mut Session, drafts| {
            for event in session.stamp(drafts, now) {
                session.evolve(event.clone());
                events.push(event);
            }
        };
        let joined =
            session.decide_join(facilitator, "Ada", caucus_protocol::Role::Facilitator.into(), None)?;
        apply(&mut session, vec![joined]);
        let ends = index % 10 != 0;
        let messages = per_session.saturating_sub(1 + usize::from(ends));
        for n in 0..messages {
            let say = Command::Say {
                room: room(Room::Plenary),
                text: format!("message {n} of past session {index}, as long as a sentence or two"),
            };
            let client_id = ClientId::new(format!("h{n}"))?;
            match session.decide(facilitator, &say, Some(&client_id), now) {
                Ok(Decision::Apply { drafts, .. }) => apply(&mut session, drafts),
                other => bail!("the rules refused a message: {other:?}"),
            }
        }
        if ends {
            match session.decide(facilitator, &Command::EndSession {}, None, now) {
                Ok(Decision::Apply { drafts, .. }) => apply(&mut session, drafts),
                other => bail!("the rules refused the end: {other:?}"),
            }
        }
        store.create_session(&record).await?;
        store
            .append(
                &record.id,
                events.iter().map(caucus_protocol::EncodedEvent::of).collect(),
                Some(&Listing::of(&session)),
            )
            .await
            .context("appending history")?;
    }
    Ok(())
}

fn table(rows: &[Row], per_session: usize) -> String {
    let fresh = rows.first().map_or(0, |row| row.rss_kib);
    let mut out = format!(
        "| stored events | sessions | ready (`/healthz`) | resident memory before anyone connects | against an empty folder | first welcome of a {per_session}-event session (loaded from the store) | next welcome (loaded) |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} s | {:.1} MiB | {:+.1} MiB | {:.1} ms | {:.1} ms |",
            row.events,
            row.sessions,
            row.ready.as_secs_f64(),
            row.rss_kib as f64 / 1024.0,
            (row.rss_kib as f64 - fresh as f64) / 1024.0,
            row.first_welcome.as_secs_f64() * 1000.0,
            row.loaded_welcome.as_secs_f64() * 1000.0,
        );
    }
    out
}
