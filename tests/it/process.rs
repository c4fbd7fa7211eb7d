//! The operator surface of the real `caucus` binary: `caucus serve` on port 0 prints
//! where it listens, `caucus token facilitator` prints only a token, and SIGTERM closes
//! every connection with 1001 and exits cleanly.

use std::process::Command as Process;
use std::time::Duration;

use anyhow::{Context, Result};
use caucus_protocol::{Command, Settings, close};
use caucus_tests::{Client, http};

use crate::support::binary::{caucus_binary, serve};

#[tokio::test]
async fn the_binary_serves_mints_tokens_and_shuts_down_on_sigterm() -> Result<()> {
    let data = tempfile::tempdir()?;
    let mut running = serve(data.path(), None)?;
    let address = running.address;
    let health = http(address, "GET", "/healthz", &[], None).await?;
    assert_eq!(health.status, 200);

    let output = Process::new(caucus_binary())
        .args(["token", "facilitator", "--name", "Ada"])
        .env("CAUCUS_DATA_DIR", data.path())
        .env_remove("CAUCUS_JWT_SECRET")
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout)?;
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "only the token is printed: {stdout}");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // The token works against the running server: same data folder, same key.
    let created = caucus_tests::create_session(address, token, "Process test").await?;
    let mut client = Client::connect(address).await?;
    client.hello(&created.session, token).await?;
    client
        .ok(Command::Say {
            room: caucus_tests::room(caucus_protocol::Room::Plenary),
            text: "before shutdown".into(),
        })
        .await?;

    let pid = running.child.id().to_string();
    let status = Process::new("kill").args(["-TERM", &pid]).status()?;
    assert!(status.success());
    let closed = client.expect_close().await?;
    assert_eq!(closed.code, Some(close::GOING_AWAY), "{closed:?}");
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = running.child.try_wait()? {
                return Ok::<_, std::io::Error>(Some(status));
            }
            if std::time::Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await??;
    let exit = exit.context("caucus did not exit within 20 seconds of SIGTERM")?;
    assert!(exit.success(), "caucus exited with {exit}");
    Ok(())
}

#[tokio::test]
async fn a_bad_setting_stops_the_binary_with_a_readable_message() -> Result<()> {
    let output =
        Process::new(caucus_binary()).arg("serve").env("CAUCUS_LISTEN", "not-an-address").output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("CAUCUS_LISTEN is not valid"), "{stderr}");
    let short = Process::new(caucus_binary())
        .args(["token", "facilitator", "--name", "Ada"])
        .env("CAUCUS_JWT_SECRET", "too-short")
        .output()?;
    assert!(!short.status.success());
    assert!(String::from_utf8(short.stderr)?.contains("at least 32 bytes"));
    // A key that is not UTF-8 is refused by name, not taken as unset.
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = std::ffi::OsStr::from_bytes(b"\xff\xfe-a-binary-key-of-more-than-32-bytes");
    let binary = Process::new(caucus_binary())
        .args(["token", "facilitator", "--name", "Ada"])
        .env("CAUCUS_JWT_SECRET", not_utf8)
        .output()?;
    assert!(!binary.status.success());
    let stderr = String::from_utf8(binary.stderr)?;
    assert!(stderr.contains("CAUCUS_JWT_SECRET is not valid UTF-8"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() -> Result<()> {
    let scene = crate::support::Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let crate::support::Scene { server, mut facilitator, .. } = scene;
    let stopping = tokio::spawn(server.stop());
    for client in [&mut facilitator.client, &mut amara.client] {
        let closed = client.expect_close().await?;
        assert_eq!(closed.code, Some(close::GOING_AWAY), "{closed:?}");
    }
    stopping.await??;
    Ok(())
}

#[tokio::test]
async fn a_backup_taken_while_the_server_runs_restores_its_sessions() -> Result<()> {
    let data = tempfile::tempdir()?;
    let running = serve(data.path(), None)?;
    let body = r#"{"title":"Backed up","caucuses":{"a":"A","b":"B"}}"#;
    let auth = format!("Bearer {}", running.sign_in);
    let created =
        http(running.address, "POST", "/api/sessions", &[("authorization", &auth)], Some(body)).await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let created: caucus_protocol::api::SessionCreated = created.json()?;

    let copy = tempfile::tempdir()?;
    let destination = copy.path().join("caucus.db");
    let backup = |destination: &std::path::Path| {
        Process::new(caucus_binary())
            .arg("backup")
            .arg(destination)
            .env("CAUCUS_DATA_DIR", data.path())
            .env_remove("CAUCUS_JWT_SECRET")
            .output()
    };
    let output = backup(&destination)?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let again = backup(&destination)?;
    assert!(!again.status.success());
    assert!(String::from_utf8(again.stderr)?.contains("already exists"));

    // Restoring is putting the file in a data folder: a server started there has it.
    let restored = caucus_server::store::SqliteStore::open(caucus_server::store::SqliteOptions {
        path: destination,
        group_commit: true,
        synchronous: Default::default(),
        busy_timeout: Duration::from_secs(1),
    })?;
    use caucus_server::store::Store;
    let sessions = restored.directory().await?;
    assert!(
        sessions
            .iter()
            .any(|stored| stored.record.id == created.session && stored.record.title == "Backed up")
    );
    let stored = restored.load_session(&created.session).await?.expect("the session came with it");
    assert!(!stored.events.is_empty(), "the facilitator's join came with it");
    Ok(())
}

#[test]
fn the_benchmark_harness_runs_and_reports() -> Result<()> {
    let output = Process::new(env!("CARGO_BIN_EXE_caucus-bench"))
        .args(["durable", "--sessions", "2", "--clients", "1", "--messages", "5", "--runs", "1"])
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout)?;
    assert!(stdout.contains("| 1 | group | 2 × 1 × 5 |"), "{stdout}");
    assert!(stdout.contains("| 1 | one per append | 2 × 1 × 5 |"), "{stdout}");
    assert!(stdout.contains("Median acked messages/s"), "{stdout}");
    Ok(())
}

#[test]
fn the_report_runs_every_scenario_on_every_peer_and_writes_its_files() -> Result<()> {
    caucus_binary();
    let folder = tempfile::tempdir()?;
    let out = folder.path().join("benchmarks.md");
    let output = Process::new(env!("CARGO_BIN_EXE_caucus-bench"))
        .args(["report", "--quick", "--rooms", "5", "--sizes", "64", "--idle", "20", "--seconds", "1"])
        .args(["--max-deliveries", "5000", "--slow-seconds", "1", "--reconvene-runs", "2", "--out"])
        .arg(&out)
        .output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = std::fs::read_to_string(&out)?;
    for server in ["Caucus", "Socket.IO", "ceiling"] {
        assert!(report.contains(&format!("| {server} | 20 |")), "no idle row for {server}:\n{report}");
        assert!(
            report.contains(&format!("| {server} | 5 | 64 B |")),
            "no fan-out row for {server}:\n{report}"
        );
        assert!(report.contains(&format!("| {server} | ")), "no slow-consumer row for {server}:\n{report}");
    }
    for section in
        ["## Targets", "## Idle connections", "## Fan-out", "## Slow consumer", "## Reconvene", "## Takeover"]
    {
        assert!(report.contains(section), "no {section}:\n{report}");
    }
    assert!(report.contains("until the last of 20 members has reconvened"), "{report}");
    assert!(report.contains("| 1 | group | 16 × 2 × 5 |"), "{report}");
    assert!(report.contains("| 10 | 10 | 0 | 0 |"), "the storm's row:\n{report}");
    for row in ["| killed (kill -9) | 2 × 3 | 2000 ms |", "| stopped (SIGTERM) | 2 × 3 | 2000 ms |"] {
        assert!(report.contains(row), "no takeover row {row}:\n{report}");
    }
    let plot = std::fs::read_to_string(folder.path().join("benchmarks.svg"))?;
    assert!(plot.starts_with("<svg") && plot.contains("Caucus") && plot.contains("<polyline"), "{plot}");
    Ok(())
}

/// The value of one series in a Prometheus text exposition, if it is there.
fn series(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_are_declared_from_the_start_and_sessions_are_counted_by_their_phase() -> Result<()> {
    let data = tempfile::tempdir()?;
    let running = serve(data.path(), None)?;
    let address = running.address;
    let scrape = || async { http(address, "GET", "/metrics", &[], None).await.map(|response| response.body) };

    let fresh = scrape().await?;
    for declared in [
        "# TYPE caucus_connections gauge",
        "# HELP caucus_sessions",
        "# TYPE caucus_sessions gauge",
        "# TYPE caucus_frames_in_total counter",
        "# TYPE caucus_slow_consumer_disconnects_total counter",
        "# TYPE caucus_gate_refused_total counter",
        "caucus_refusals_total{code=\"rate_limited\"} 0",
        "caucus_sessions{phase=\"caucusing\"} 0",
    ] {
        anyhow::ensure!(fresh.contains(declared), "a fresh /metrics lacks `{declared}`:\n{fresh}");
    }

    let created = caucus_tests::create_session(address, &running.sign_in, "Metrics").await?;
    let mut desk = Client::connect(address).await?;
    desk.hello(&created.session, &running.sign_in).await?;
    let phases = |exposition: &str| {
        ["gathering", "caucusing", "reconvened", "ended"]
            .map(|phase| series(exposition, &format!("caucus_sessions{{phase=\"{phase}\"}}")).unwrap_or(-1.0))
    };
    anyhow::ensure!(phases(&scrape().await?) == [1.0, 0.0, 0.0, 0.0]);
    desk.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    anyhow::ensure!(phases(&scrape().await?) == [0.0, 1.0, 0.0, 0.0], "after opening the caucuses");
    desk.ok(Command::Reconvene { round: 1 }).await?;
    anyhow::ensure!(phases(&scrape().await?) == [0.0, 0.0, 1.0, 0.0], "after the reconvene");
    desk.ok(Command::EndSession {}).await?;
    anyhow::ensure!(phases(&scrape().await?) == [0.0, 0.0, 0.0, 1.0], "after the end");
    Ok(())
}

/// Runs `caucus healthcheck` with `args` (and CAUCUS_LISTEN set to `listen`, if given),
/// returning whether it exited 0 (after checking that it exited 0 or 1), its stdout and
/// its stderr.
fn healthcheck(args: &[&str], listen: Option<&str>) -> Result<(bool, String, String)> {
    let mut command = Process::new(caucus_binary());
    command.arg("healthcheck").args(args).env_remove("CAUCUS_LISTEN");
    if let Some(listen) = listen {
        command.env("CAUCUS_LISTEN", listen);
    }
    let output = command.output()?;
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "healthcheck exits 0 or 1, not {code:?}");
    Ok((code == Some(0), String::from_utf8(output.stdout)?, String::from_utf8(output.stderr)?))
}

#[test]
fn healthcheck_exits_0_against_a_running_server_and_1_against_a_closed_port() -> Result<()> {
    let data = tempfile::tempdir()?;
    let running = serve(data.path(), None)?;
    let url = format!("http://{}", running.address);

    let (ok, stdout, stderr) = healthcheck(&["--url", &url], None)?;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    assert!(stdout.contains("/healthz: 200 ok"), "{stdout}");

    let (ok, stdout, stderr) = healthcheck(&["--url", &url, "--ready"], None)?;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("/readyz: 200 ready"), "{stdout}");

    // Without --url, the address comes from CAUCUS_LISTEN, as the server's does.
    let (ok, stdout, stderr) = healthcheck(&[], Some(&running.address.to_string()))?;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("http://{}/healthz", running.address)), "{stdout}");
    drop(running);

    // Nothing listens there any more (and, below, on a port just freed).
    let (ok, stdout, stderr) = healthcheck(&["--url", &url, "--timeout", "5"], None)?;
    assert!(!ok, "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("unhealthy") && stderr.contains("cannot connect"), "{stderr}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (ok, _, stderr) = healthcheck(&[], Some(&closed.to_string()))?;
    assert!(!ok);
    assert!(stderr.contains(&format!("http://{closed}/healthz")), "{stderr}");
    Ok(())
}

#[test]
fn healthcheck_refuses_an_https_url_with_a_reason() -> Result<()> {
    let (ok, _, stderr) = healthcheck(&["--url", "https://caucus.example.org"], None)?;
    assert!(!ok);
    assert!(stderr.contains("only http://"), "{stderr}");
    Ok(())
}
