//! The `caucus` binary as a separate process, so that its memory and file descriptors
//! can be read on their own, and sessions full of members to load it with.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

use anyhow::{Context, Result, bail};
use caucus_protocol::SessionId;
use caucus_protocol::api::{Joined, SessionCreated};
use caucus_tests::http;

/// A running `caucus serve`, killed when dropped.
pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) address: SocketAddr,
    pub(crate) sign_in: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts the release `caucus` next to this harness, with limits raised for load. The
    /// gate's caps on waiting connections are raised too: the harness is one host that
    /// plays thousands of people, who would come from thousands of addresses.
    pub(crate) fn start(data: &Path) -> Result<Self> {
        Self::start_binary(&std::env::current_exe()?.with_file_name("caucus"), data)
    }

    /// Starts the given build of `caucus` the same way.
    pub(crate) fn start_binary(binary: &Path, data: &Path) -> Result<Self> {
        Self::start_binary_with(binary, data, "", &[])
    }

    /// Starts the release `caucus` with `settings` (TOML: top-level keys first, then
    /// tables) before the harness's raised limits.
    pub(crate) fn start_configured(data: &Path, settings: &str) -> Result<Self> {
        Self::start_binary_with(&std::env::current_exe()?.with_file_name("caucus"), data, settings, &[])
    }

    /// Starts `binary` with `settings` and `env` on top of the harness's raised limits.
    pub(crate) fn start_binary_with(
        binary: &Path,
        data: &Path,
        settings: &str,
        env: &[(&str, String)],
    ) -> Result<Self> {
        if !binary.exists() {
            bail!("{} is missing: run `cargo build --release --bin caucus` first", binary.display());
        }
        let config = data.join("bench.toml");
        std::fs::write(
            &config,
            settings.to_owned()
                + "[limits]\nframes_per_sec = 10000000\nframe_burst = 10000000\nmember_frames_per_sec = 10000000\n\
             member_frame_burst = 10000000\nconnections_per_member = 100\nsessions_per_facilitator = 100000\n\
             max_pending_connections = 100000\nmax_pending_per_address = 100000\n",
        )?;
        let mut child = Process::new(binary)
            .args(["serve", "--config"])
            .arg(&config)
            .env("CAUCUS_LISTEN", "127.0.0.1:0")
            .env("CAUCUS_DATA_DIR", data)
            .env("CAUCUS_SIGN_IN_LINK", "1")
            .env("CAUCUS_LOG", "warn")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let first = lines.next().context("no output")??;
        let address = first.split("listening on http://").nth(1).context("no address")?.trim().parse()?;
        let mut sign_in = None;
        for line in lines.by_ref().take(5) {
            if let Some(token) = line?.split("#token=").nth(1) {
                sign_in = Some(token.trim().to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, address, sign_in: sign_in.context("no sign-in link")? })
    }

    /// Resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// Open file descriptors.
    pub(crate) fn fds(&self) -> usize {
        open_fds(self.child.id())
    }

    /// Creates `sessions` sessions and joins `members` people to each.
    pub(crate) async fn populate(
        &self,
        sessions: usize,
        members: usize,
    ) -> Result<Vec<(SessionId, Vec<Joined>)>> {
        let auth = format!("Bearer {}", self.sign_in);
        let body = r#"{"title":"Load","caucuses":{"a":"A","b":"B"}}"#;
        let mut all = Vec::new();
        for _ in 0..sessions {
            let created: SessionCreated =
                http(self.address, "POST", "/api/sessions", &[("authorization", &auth)], Some(body))
                    .await?
                    .json()?;
            let mut joined = Vec::new();
            for n in 0..members {
                let request =
                    serde_json::json!({ "invite_code": created.invite_code, "name": format!("m{n}") })
                        .to_string();
                joined.push(http(self.address, "POST", "/api/join", &[], Some(&request)).await?.json()?);
            }
            all.push((created.session, joined));
        }
        Ok(all)
    }
}

/// A process's resident memory, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A process's open file descriptors.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
}
