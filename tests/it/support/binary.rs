//! The real `caucus` binary, started as an operator would start it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// Builds the `caucus` binary once per test run and returns its path.
pub fn caucus_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Process::new(cargo)
            .args(["build", "--quiet", "-p", "caucus-server", "--bin", "caucus"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the caucus binary failed");
        let exe = std::env::current_exe().expect("the test binary has a path");
        let target = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
        target.join("caucus")
    })
}

/// A running `caucus serve`. Dropping it kills the process.
pub struct Running {
    pub child: Child,
    pub address: SocketAddr,
    /// The facilitator token from the sign-in link it printed.
    pub sign_in: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// `kill -9`: no chance to flush, close or clean up.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `caucus serve` on a free port with `data` as its data folder, and reads the
/// address and sign-in link it prints.
pub fn serve(data: &Path, config: Option<&Path>) -> Result<Running> {
    serve_with(Process::new(caucus_binary()), data, config)
}

/// Like [`serve`], with the process's descriptor limit set to `limit` (`ulimit -n`).
pub fn serve_with_descriptor_limit(data: &Path, limit: u32) -> Result<Running> {
    let mut shell = Process::new("sh");
    shell.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(caucus_binary());
    serve_with(shell, data, None)
}

fn serve_with(mut command: Process, data: &Path, config: Option<&Path>) -> Result<Running> {
    command
        .arg("serve")
        .env("CAUCUS_LISTEN", "127.0.0.1:0")
        .env("CAUCUS_DATA_DIR", data)
        .env_remove("CAUCUS_JWT_SECRET")
        .env_remove("CAUCUS_CONFIG")
        .env("CAUCUS_SIGN_IN_LINK", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command.spawn().context("starting caucus serve")?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("caucus serve printed nothing")??;
    let url =
        first.split("listening on ").nth(1).with_context(|| format!("unexpected first line: {first}"))?;
    let address = url.trim().trim_start_matches("http://").parse()?;
    let rest: Vec<String> = lines.by_ref().take(5).collect::<Result<_, _>>()?;
    let Some(sign_in) = rest.iter().find_map(|line| line.split("#token=").nth(1)) else {
        bail!("no facilitator sign-in link in {rest:?}");
    };
    let sign_in = sign_in.trim().to_owned();
    std::thread::spawn(move || for _ in lines {});
    Ok(Running { child, address, sign_in })
}
