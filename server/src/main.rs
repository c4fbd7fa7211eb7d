//! The `caucus` command: `caucus serve` runs the server; `caucus token facilitator`
//! prints a facilitator token for the same configuration; `caucus healthcheck` asks a
//! running server whether it is up.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use caucus_server::Server;
use caucus_server::accounts::{AccountDb, Accounts};
use caucus_server::auth::Auth;
use caucus_server::config::{Config, LogFormat, Overrides};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Caucus: a real-time chat server for sessions with a plenary and two private caucuses.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run the server.
    Serve(ConfigArgs),
    /// Print a token.
    Token {
        #[command(subcommand)]
        kind: TokenCommand,
    },
    /// Print a single-use sign-in link for an email address (for servers without SMTP).
    SigninLink {
        /// The address to sign in as.
        email: String,
        /// Where to go after signing in, such as `/#invite=abc`.
        #[arg(long)]
        return_to: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage admins, who decide who may facilitate.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Copy the database to a new file, safely, while the server runs.
    Backup {
        /// The file to write; it must not exist yet.
        destination: PathBuf,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Ask a running server's /healthz (or /readyz) and exit 0 if it answers 200, else 1.
    Healthcheck(HealthcheckArgs),
    /// Bring the configured store's schema up to this version, then exit. `serve` does
    /// the same at start; this lets an upgrade migrate before any node starts.
    Migrate(ConfigArgs),
}

#[derive(Debug, Args)]
struct HealthcheckArgs {
    /// The server's own plain-HTTP address, such as http://127.0.0.1:8080 (a path, if
    /// given, is asked instead of /healthz). Default: CAUCUS_LISTEN, or 127.0.0.1:8080;
    /// 0.0.0.0 and [::] are asked on loopback.
    #[arg(long)]
    url: Option<String>,
    /// Ask /readyz (ready for traffic; 503 once shutdown has begun) instead of /healthz.
    #[arg(long)]
    ready: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a facilitator token (and nothing else) to stdout.
    Facilitator {
        /// The facilitator's display name; it also identifies them.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make the account with this email address an admin (now, or when it first signs in).
    Add {
        /// The address.
        email: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Stop this address being an admin (admins from CAUCUS_ADMINS stay admins).
    Remove {
        /// The address.
        email: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// A TOML config file.
    #[arg(long, env = "CAUCUS_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on (overrides CAUCUS_LISTEN).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Folder for the server's files (overrides CAUCUS_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The address people open, for invite links (overrides CAUCUS_PUBLIC_URL).
    #[arg(long)]
    public_url: Option<String>,
}

impl ConfigArgs {
    fn load(self) -> anyhow::Result<Config> {
        let overrides =
            Overrides { listen: self.listen, data_dir: self.data_dir, public_url: self.public_url };
        Ok(Config::load(self.config.as_deref(), overrides)?)
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("caucus: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Serve(args) => {
            let config = args.load()?;
            init_tracing(config.log_format);
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads(cores))
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(config))
        }
        Commands::Backup { destination, config } => {
            let config = config.load()?;
            caucus_server::store::backup(&config.database_path(), &destination)?;
            eprintln!("backed up {} to {}", config.database_path().display(), destination.display());
            Ok(())
        }
        Commands::SigninLink { email, return_to, config } => {
            let config = config.load()?;
            let link = with_accounts(&config, |accounts| async move {
                accounts.mint_email_link(&email, return_to.as_deref()).await
            })?;
            println!("{link}");
            eprintln!(
                "This link signs in once, within {} minutes. Send it only to its owner.",
                config.accounts.email_link_secs.div_ceil(60)
            );
            Ok(())
        }
        Commands::Admin { action } => {
            let (email, on, config) = match action {
                AdminCommand::Add { email, config } => (email, true, config),
                AdminCommand::Remove { email, config } => (email, false, config),
            };
            let config = config.load()?;
            let shown = email.clone();
            with_accounts(
                &config,
                |accounts| async move { accounts.set_role(&email, "admin", on, None).await },
            )?;
            let done = if on { "is now an admin" } else { "is no longer an admin" };
            eprintln!("{shown} {done}. A running server applies it at that person's next request.");
            Ok(())
        }
        Commands::Healthcheck(args) => healthcheck(args),
        Commands::Migrate(args) => migrate(&args.load()?),
        Commands::Token { kind: TokenCommand::Facilitator { name, config } } => {
            let config = config.load()?;
            let auth = Auth::from_config(&config)?;
            let token = auth.mint_facilitator(&name).map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Asks a running server once and says what it answered, in one line: on stdout when it
/// answered 200, else (through `main`) on stderr with exit status 1.
fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    use caucus_server::healthcheck::{Target, check};
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let target = match args.url {
        Some(url) => Target::parse(&url, path).map_err(anyhow::Error::msg)?,
        None => {
            let listen = match std::env::var("CAUCUS_LISTEN") {
                Ok(value) => value.trim().parse::<SocketAddr>().map_err(|err| {
                    anyhow::anyhow!("healthcheck: CAUCUS_LISTEN is not valid ({err}); give --url")
                })?,
                Err(_) => SocketAddr::from(([127, 0, 0, 1], 8080)),
            };
            Target::for_listen(listen, path)
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer = runtime.block_on(check(&target, std::time::Duration::from_secs(args.timeout)));
    match answer {
        Ok(line) => {
            println!("healthy: {line}");
            Ok(())
        }
        Err(line) => anyhow::bail!("unhealthy: {line}"),
    }
}

/// Applies the configured store's pending migrations and says where it stands.
fn migrate(config: &Config) -> anyhow::Result<()> {
    use caucus_server::config::StoreKind;
    match config.store.kind {
        StoreKind::Memory => {
            anyhow::bail!("CAUCUS_STORE=memory keeps nothing, so there is nothing to migrate")
        }
        StoreKind::Sqlite => {
            drop(caucus_server::store::SqliteStore::open(config.sqlite_options())?);
            eprintln!("{} is up to date", config.database_path().display());
        }
        StoreKind::Postgres => {
            let options = config.postgres_options();
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let version = runtime.block_on(caucus_server::store::migrate_postgres(
                &options.url,
                options.ca_file.as_deref(),
                options.call_timeout,
            ))?;
            eprintln!("the PostgreSQL schema is at version {version}, as this server expects");
        }
    }
    Ok(())
}

/// Runs `work` on the accounts in the configured database, for the commands that
/// change them while the server may be running.
fn with_accounts<T, F>(config: &Config, work: impl FnOnce(std::sync::Arc<Accounts>) -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = Result<T, caucus_server::accounts::AccountError>>,
{
    if config.store.kind == caucus_server::config::StoreKind::Memory {
        anyhow::bail!(
            "this server keeps everything in memory (CAUCUS_STORE=memory), so accounts cannot be \
             changed from outside it; use the SQLite store"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Opening the store creates the database and its tables if this is a new folder.
        caucus_server::store::SqliteStore::prepare(&config.sqlite_options())?;
        let db = AccountDb::open(&config.database_path())?;
        let accounts = std::sync::Arc::new(Accounts::new(config, db, &config.public_url(config.listen))?);
        Ok(work(accounts).await?)
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let ttl_hours = config.token_ttl_secs / 3600;
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config).await?;
    let url = server.hub().config().public_url(server.local_addr());
    println!("Caucus {} is listening on {url}", env!("CARGO_PKG_VERSION"));
    println!("  Open:        {url}/");
    // A sign-in link is a live credential: print it to a person at a terminal, never into
    // a service's captured output, unless asked to.
    let asked = std::env::var("CAUCUS_SIGN_IN_LINK").is_ok_and(|value| value == "1");
    if asked || std::io::stdout().is_terminal() {
        let sign_in = server.hub().auth().mint_facilitator("Facilitator").map_err(anyhow::Error::msg)?;
        println!("  Facilitator: {url}/#token={sign_in}");
        println!("               (a sign-in link valid for {ttl_hours} hours; keep it private)");
    } else {
        println!("  Facilitator: sign in with a token from `caucus token facilitator --name NAME`:");
        println!("               open {url}/#token=<token>");
    }
    let accounts = server.hub().accounts();
    let mut ways: Vec<String> = accounts.providers().into_iter().map(|(_, name)| name).collect();
    ways.push(if accounts.email_enabled() {
        "email links".to_owned()
    } else {
        "email links printed by `caucus signin-link EMAIL` (no SMTP configured)".to_owned()
    });
    println!("  Sign-in:     {}", ways.join(", "));
    let admins = accounts.facilitator_grants().await.map(|grants| grants.admins.len());
    if admins.is_ok_and(|count| count == 0) {
        println!("               (no admins configured: set CAUCUS_ADMINS or run `caucus admin add EMAIL`)");
    }
    println!("  Data folder: {}", data_dir.display());
    println!("  Stop:        Ctrl-C");

    let shutdown = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        shutdown.cancel();
    });
    server.run().await.context("the server failed")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CAUCUS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The WebSocket library logs whole frames, message text and tokens included, at
    // debug and trace: keep it at info whatever the filter says.
    let filter =
        ["tungstenite=info", "tokio_tungstenite=info"].into_iter().fold(filter, |filter, directive| {
            filter.add_directive(directive.parse().expect("a valid directive"))
        });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
