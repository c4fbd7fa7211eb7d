//! Test support: a real server on a free port, and a session with a facilitator and
//! members connected to it.

pub mod binary;
pub use caucus_tests::{nats, postgres};

use caucus_tests::GuestToken;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use caucus_protocol::api::{CreateSession, Joined, SessionCreated};
use caucus_protocol::{Caucus, CaucusLabels, Command, MemberId, RoomEvent, SessionId, Settings};
use caucus_server::Server;
use caucus_server::config::{Config, Secret};
use caucus_server::hub::Hub;
use caucus_tests::{Client, http};
use tokio_util::sync::CancellationToken;

/// The ground rules of every session the tests create; members accept them to join.
pub const GROUND_RULES: &str = "What is said in a caucus stays in it.";

/// A server running in this test's runtime on `127.0.0.1:0`.
pub struct TestServer {
    pub address: SocketAddr,
    pub hub: Arc<Hub>,
    pub config: Config,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    data: Arc<tempfile::TempDir>,
}

/// The configuration tests run with: a free port, a throwaway data folder, a fixed key.
pub fn test_config(data: &tempfile::TempDir) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().to_owned(),
        jwt_secret: Some(Secret(b"an-only-for-tests-signing-key-of-32+-bytes".to_vec())),
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("a temporary folder");
        let mut config = test_config(&data);
        adjust(&mut config);
        config.validate().expect("the test config is valid");
        Self::launch(config, Arc::new(data)).await
    }

    /// Starts a server with `config` on the data folder `data`, which it keeps.
    pub async fn launch_in(config: Config, data: tempfile::TempDir) -> Self {
        Self::launch(config, Arc::new(data)).await
    }

    async fn launch(config: Config, data: Arc<tempfile::TempDir>) -> Self {
        let server = Server::bind(config.clone()).await.expect("the server binds");
        let address = server.local_addr();
        let hub = server.hub().clone();
        let shutdown = server.shutdown_token();
        let task = tokio::spawn(server.run());
        Self { address, hub, config, shutdown, task, data }
    }

    /// Stops the server gracefully and starts a new one on the same data folder, as an
    /// operator's restart would. The new one listens on another free port.
    pub async fn restart(self) -> Self {
        self.restart_after(std::time::Duration::ZERO).await
    }

    /// Like [`TestServer::restart`], staying down for `pause` in between.
    pub async fn restart_after(self, pause: std::time::Duration) -> Self {
        let (config, data) = (self.config.clone(), self.data.clone());
        self.stop().await.expect("the server stops cleanly");
        tokio::time::sleep(pause).await;
        Self::launch(config, data).await
    }

    /// Like [`TestServer::restart`], doing `between` to the data folder while the server
    /// is down.
    pub async fn restart_with(self, between: impl FnOnce(&std::path::Path)) -> Self {
        let (config, data) = (self.config.clone(), self.data.clone());
        self.stop().await.expect("the server stops cleanly");
        between(data.path());
        Self::launch(config, data).await
    }

    /// The data folder.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// The database file and its WAL, as raw bytes: what a disk thief would read.
    pub fn raw_database(&self) -> Vec<u8> {
        ["caucus.db", "caucus.db-wal"]
            .iter()
            .filter_map(|name| std::fs::read(self.data_dir().join(name)).ok())
            .flatten()
            .collect()
    }

    /// Every event the store holds for `session`, read back from the store itself.
    pub async fn stored_events(&self, session: &SessionId) -> Vec<RoomEvent> {
        let stored = self.hub.store().load_session(session).await.expect("the store reads");
        stored.map(|stored| stored.events).unwrap_or_default()
    }

    pub fn facilitator_token(&self, name: &str) -> String {
        self.hub.auth().mint_facilitator(name).expect("a valid name")
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.address).await.expect("the WebSocket opens")
    }

    /// Creates a session over HTTP as facilitator `token`.
    pub async fn create_session(&self, token: &str, settings: Settings) -> Result<SessionCreated> {
        let body = serde_json::to_string(&CreateSession {
            title: "Anti-racism practice circle".into(),
            caucuses: CaucusLabels { a: "Racially minoritised caucus".into(), b: "White caucus".into() },
            settings,
            ground_rules: Some(GROUND_RULES.into()),
            allow_guests: None,
        })?;
        let auth = format!("Bearer {token}");
        let response =
            http(self.address, "POST", "/api/sessions", &[("authorization", &auth)], Some(&body)).await?;
        ensure!(response.status == 201, "creating a session failed: {} {}", response.status, response.body);
        response.json()
    }

    /// Joins by invite code over HTTP, as a guest.
    pub async fn join(&self, invite_code: &str, name: &str) -> Result<Joined> {
        let response = self.join_response(invite_code, name).await?;
        ensure!(response.status == 200, "joining failed: {} {}", response.status, response.body);
        response.json()
    }

    /// Asks to join as a guest over HTTP, and returns the response whatever it is.
    pub async fn join_response(&self, invite_code: &str, name: &str) -> Result<caucus_tests::HttpResponse> {
        let body = serde_json::json!({ "invite_code": invite_code, "name": name, "accept_ground_rules": GROUND_RULES })
            .to_string();
        http(self.address, "POST", "/api/join", &[], Some(&body)).await
    }

    /// Shuts the server down and waits for it to finish.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.cancel();
        self.task.await.expect("the server task does not panic")
    }
}

/// A person connected to a session.
pub struct Person {
    pub id: MemberId,
    pub token: String,
    pub client: Client,
}

/// A running session with its facilitator connected.
pub struct Scene {
    pub server: TestServer,
    pub session: SessionId,
    pub invite: String,
    pub facilitator: Person,
}

impl Scene {
    pub async fn new(settings: Settings) -> Result<Self> {
        Self::on(TestServer::start().await, settings).await
    }

    pub async fn on(server: TestServer, settings: Settings) -> Result<Self> {
        let token = server.facilitator_token("Ada");
        let created = server.create_session(&token, settings).await?;
        let mut client = server.client().await;
        let welcome = client.hello(&created.session, &token).await?;
        Ok(Self {
            session: created.session,
            invite: created.invite_code,
            facilitator: Person { id: welcome.you.id, token, client },
            server,
        })
    }

    /// Joins a new member by invite and connects them.
    pub async fn member(&self, name: &str) -> Result<Person> {
        let joined = self.server.join(&self.invite, name).await?;
        let mut client = self.server.client().await;
        client
            .hello(&self.session, joined.guest_token())
            .await
            .with_context(|| format!("{name} says hello"))?;
        let token = joined.guest_token().to_owned();
        Ok(Person { id: joined.member, token, client })
    }

    /// Joins a new member and seats them in `caucus` by their own choice.
    pub async fn seated(&self, name: &str, caucus: Caucus) -> Result<Person> {
        let mut person = self.member(name).await?;
        person.client.ok(Command::ChooseCaucus { caucus: Some(caucus) }).await?;
        Ok(person)
    }

    /// The facilitator opens an untimed round.
    pub async fn open_round(&mut self) -> Result<()> {
        self.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
        Ok(())
    }

    /// Connects another client for an existing person.
    pub async fn reconnect(&self, person: &Person) -> Result<Client> {
        let mut client = self.server.client().await;
        client.hello(&self.session, &person.token).await?;
        Ok(client)
    }
}

/// Whether `needle` occurs anywhere in `bytes`.
pub fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
}
