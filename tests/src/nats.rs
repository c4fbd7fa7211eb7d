//! A NATS server for the cluster tests and the benchmark harness, from Debian's
//! `nats-server` package, on a free loopback port: one shared by a test process, or one
//! of a test's own that it may restart.
//!
//! Where `nats-server` is not installed the tests that need it say so and pass, except
//! under `CI=true`, where they fail: `scripts/test` installs it.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running `nats-server`. A watcher shell stops it when its input closes: when this
/// is dropped, or when the test process ends however it ends.
#[derive(Debug)]
pub struct Nats {
    port: u16,
    watcher: Mutex<Option<(Child, ChildStdin)>>,
}

static SERVER: OnceLock<Option<Nats>> = OnceLock::new();

/// The test run's NATS, started on first use; `None` (after saying why) where it is not
/// installed and this is not CI.
pub fn nats() -> Option<&'static Nats> {
    SERVER.get_or_init(|| needed(Nats::start())).as_ref()
}

fn needed<T>(started: Result<T>) -> Option<T> {
    crate::needed("nats-server", started)
}

impl Nats {
    /// Starts one of a test's own, or `None` where it is not installed and this is not CI.
    pub fn private() -> Option<Self> {
        needed(Self::start())
    }

    fn start() -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = Self { port, watcher: Mutex::new(None) };
        server.run()?;
        Ok(server)
    }

    fn run(&self) -> Result<()> {
        let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .context("nats-server is not installed")?;
        let script = format!(
            "{program} -a 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; read _ignored; kill $pid; wait $pid",
            port = self.port
        );
        let mut child = Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start nats-server")?;
        let stdin = child.stdin.take().context("the watcher's input")?;
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if started.elapsed() > Duration::from_secs(10) || child.try_wait()?.is_some() {
                bail!("nats-server did not start on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *self.watcher.lock().unwrap_or_else(|poison| poison.into_inner()) = Some((child, stdin));
        Ok(())
    }

    /// Stops it and waits until it has gone: every client is cut off.
    pub fn stop(&self) {
        let watcher = self.watcher.lock().unwrap_or_else(|poison| poison.into_inner()).take();
        if let Some((mut child, mut stdin)) = watcher {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, after [`Nats::stop`].
    pub fn start_again(&self) -> Result<()> {
        self.run()
    }

    /// The `nats-server` process's id, for reading the CPU it uses.
    pub fn pid(&self) -> Option<u32> {
        let wanted = format!("-p\0{}\0", self.port);
        let pids = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok());
        pids.into_iter().find(|pid: &u32| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("nats-server\0") && cmdline.contains(&wanted)
        })
    }

    /// Its address for `CAUCUS_NATS_URL`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
