//! A private PostgreSQL server for the tests of the shared store and the benchmark
//! harness: started once per process on a free loopback port, from Debian's packages, in
//! a throwaway folder; each test gets a database of its own.
//!
//! Where PostgreSQL is not installed the tests that need it say so and pass, except
//! under `CI=true`, where they fail: `scripts/test` installs it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The running server. It stops when the test process ends: its watcher shell reads
/// our end of a pipe and stops PostgreSQL when that pipe closes.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    _watcher: Mutex<(Child, ChildStdin)>,
    _folder: tempfile::TempDir,
}

static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();

/// The test run's PostgreSQL, started on first use; `None` (after saying why) where it
/// is not installed and this is not CI.
pub fn postgres() -> Option<&'static Postgres> {
    SERVER.get_or_init(|| needed(Postgres::start())).as_ref()
}

fn needed<T>(started: Result<T>) -> Option<T> {
    crate::needed("PostgreSQL", started)
}

/// A new database cluster in a throwaway folder that the `postgres` user owns: the
/// programs' folder, the folder, and the cluster's data folder inside it.
fn new_cluster() -> Result<(PathBuf, tempfile::TempDir, PathBuf)> {
    let bin = bin_dir()?;
    let folder = tempfile::Builder::new().prefix("caucus-postgres").tempdir()?;
    if is_root() {
        let status = Command::new("chown").arg("postgres").arg(folder.path()).status()?;
        ensure!(status.success(), "cannot give {} to the postgres user", folder.path().display());
    }
    let data = folder.path().join("data");
    let initdb = as_postgres(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .output()?;
    ensure!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
    Ok((bin, folder, data))
}

/// The newest installed PostgreSQL's programs.
fn bin_dir() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (no /usr/lib/postgresql)")?
        .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent().and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    found.pop().context("PostgreSQL's initdb is not installed")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `program` as a command, run as the `postgres` user when we are root: PostgreSQL
/// refuses to run as root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Postgres {
    fn start() -> Result<Self> {
        let (bin, folder, data) = new_cluster()?;
        let port = free_port()?;
        let log = folder.path().join("postgres.log");
        // The shell starts PostgreSQL, then waits for its standard input to close (this
        // process ending, however it ends) and stops it fast.
        let script = format!(
            "{postgres} -D {data} -k {socket} -h 127.0.0.1 -p {port} -c max_connections=200 >{log} 2>&1 & \
             pid=$!; read _ignored; kill -INT $pid; wait $pid",
            postgres = bin.join("postgres").display(),
            data = data.display(),
            socket = folder.path().display(),
            log = log.display(),
        );
        let mut child = as_postgres(Path::new("/bin/sh"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start PostgreSQL")?;
        let stdin = child.stdin.take().context("the watcher's input")?;
        let started = Instant::now();
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()?;
            if ready.success() {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) || child.try_wait()?.is_some() {
                let mut stdin = stdin;
                let _ = stdin.write_all(b"\n");
                bail!("PostgreSQL did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { port, _watcher: Mutex::new((child, stdin)), _folder: folder })
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database of this test's own, and its connection string.
    pub async fn database(&self) -> Result<String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("t_{}_{next}", std::process::id());
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        Ok(self.url(&name))
    }
}

/// A client of the database at `url`, for reading what the store wrote.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A PostgreSQL of one test's own, which it may restart: managed with `pg_ctl`, and
/// stopped when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _folder: tempfile::TempDir,
}

impl PrivatePostgres {
    /// Starts one, or `None` where PostgreSQL is not installed and this is not CI.
    pub fn start() -> Option<Self> {
        needed(Self::try_start(false))
    }

    /// Like [`PrivatePostgres::start`], accepting TLS connections only, with a
    /// certificate for 127.0.0.1 from a certificate authority made for it, whose PEM
    /// file it returns.
    pub fn start_with_tls() -> Option<(Self, PathBuf)> {
        needed(Self::try_start(true).map(|server| {
            let ca = server._folder.path().join("ca.pem");
            (server, ca)
        }))
    }

    fn try_start(tls: bool) -> Result<Self> {
        let (bin, folder, data) = new_cluster()?;
        if tls {
            make_certificates(folder.path())?;
            let conf = data.join("postgresql.conf");
            let mut settings = std::fs::read_to_string(&conf)?;
            settings.push_str(&format!(
                "\nssl = on\nssl_cert_file = '{0}/server.pem'\nssl_key_file = '{0}/server.key'\n",
                folder.path().display()
            ));
            std::fs::write(&conf, settings)?;
            // TLS or nothing, from anywhere on loopback.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )?;
        }
        let server = Self { bin, data, port: free_port()?, _folder: folder };
        server.pg_ctl("start")?;
        Ok(server)
    }

    fn pg_ctl(&self, action: &str) -> Result<()> {
        let options = format!("-k {} -h 127.0.0.1 -p {}", self._folder.path().display(), self.port);
        let output = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-m", "fast", "-w", "-l"])
            .arg(self._folder.path().join("postgres.log"))
            .arg(action)
            .output()?;
        ensure!(
            output.status.success(),
            "pg_ctl {action} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Restarts it: every connection to it is cut.
    pub fn restart(&self) -> Result<()> {
        self.pg_ctl("restart")
    }

    /// The connection string of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
    }
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it, made with
/// `openssl` in `folder`; the key readable by PostgreSQL only.
fn make_certificates(folder: &Path) -> Result<()> {
    let run = |args: &[&str]| -> Result<()> {
        let output = Command::new("openssl").args(args).current_dir(folder).output()?;
        ensure!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Caucus test CA",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        folder.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "4242",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    for file in ["server.key", "server.pem"] {
        if is_root() {
            let status = Command::new("chown").arg("postgres").arg(folder.join(file)).status()?;
            ensure!(status.success(), "cannot give {file} to the postgres user");
        }
    }
    let status = Command::new("chmod").arg("600").arg(folder.join("server.key")).status()?;
    ensure!(status.success());
    Ok(())
}
