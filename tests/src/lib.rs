//! # caucus-tests
//!
//! What the end-to-end tests and the benchmark harness use to talk to a real Caucus
//! server: a typed WebSocket [`Client`] and a minimal HTTP helper; in [`postgres`], a
//! private PostgreSQL for the shared store; and, in [`fuzzing`], the properties the fuzz
//! targets check.
//!
//! Every wait has a timeout that fails loudly with what was expected and what arrived
//! instead, so a broken server fails a test rather than hanging it.

pub mod fuzzing;
pub mod nats;
pub mod postgres;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use caucus_protocol::{
    Ack, ClientFrame, ClientId, Command, ErrorFrame, EventBody, Room, RoomEvent, RoomName, ServerMessage,
    SessionId, Welcome,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// The loopback address that clients connect from unless told otherwise.
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A WebSocket as the tests and the harness hold it.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to the server at `address` from the local address `source`.
///
/// A load generator spreads its connections over several 127.0.0.x sources: each
/// source address has only about 28,000 ephemeral ports. Buffers are 8 KiB, because
/// tungstenite zeroes its whole read buffer (128 KiB by default) before every read,
/// which would make the load generator, rather than the server, the bottleneck.
pub async fn open_socket(
    address: SocketAddr,
    request: impl IntoClientRequest + Unpin,
    source: IpAddr,
) -> Result<Socket, tungstenite::Error> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(address).await?;
    stream.set_nodelay(true)?;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(config))
            .await?;
    Ok(socket)
}

/// A fresh, unique `client_id`.
pub fn fresh_client_id() -> ClientId {
    ClientId::new(format!("t-{}", NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed))).unwrap()
}

/// A room name as a command takes it.
pub fn room(room: Room) -> RoomName {
    RoomName::from(room)
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code, if a close frame arrived.
    pub code: Option<u16>,
    /// The close reason.
    pub reason: String,
}

/// A typed WebSocket client that records everything it receives.
#[derive(Debug)]
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame received, in order, exactly as it arrived.
    pub raw: Vec<String>,
    /// The last sequence number seen in each room, for resuming.
    pub cursors: BTreeMap<Room, u64>,
    /// How the connection closed, once it has.
    pub closed: Option<Closed>,
    /// How long one wait may take. Tests on paused time raise it past the server's
    /// own timers, so that those fire first.
    pub wait: Duration,
    /// Decoded messages not yet taken by an `expect_*` call.
    pending: std::collections::VecDeque<ServerMessage>,
}

impl Client {
    /// Opens `/ws` on `address`.
    pub async fn connect(address: SocketAddr) -> Result<Self> {
        Self::connect_with(address, None).await.map_err(Into::into)
    }

    /// Opens `/ws` on `address` from the local address `source`.
    pub async fn connect_from(address: SocketAddr, source: IpAddr) -> Result<Self> {
        Self::open(address, None, source).await.map_err(Into::into)
    }

    /// Opens `/ws` with an `Origin` header, as a browser would.
    pub async fn connect_with(address: SocketAddr, origin: Option<&str>) -> Result<Self, tungstenite::Error> {
        Self::open(address, origin, LOOPBACK).await
    }

    /// Opens `/ws` with these request headers, such as a browser's sign-in `Cookie`.
    pub async fn connect_with_headers(
        address: SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<Self, tungstenite::Error> {
        Self::open_with(address, headers, LOOPBACK).await
    }

    async fn open(
        address: SocketAddr,
        origin: Option<&str>,
        source: IpAddr,
    ) -> Result<Self, tungstenite::Error> {
        let headers: Vec<(&str, &str)> = origin.map(|origin| ("origin", origin)).into_iter().collect();
        Self::open_with(address, &headers, source).await
    }

    async fn open_with(
        address: SocketAddr,
        headers: &[(&str, &str)],
        source: IpAddr,
    ) -> Result<Self, tungstenite::Error> {
        let mut request = format!("ws://{address}/ws").into_client_request()?;
        for (name, value) in headers {
            let name =
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
            request.headers_mut().insert(name, value.parse().expect("a valid header value"));
        }
        let socket = open_socket(address, request, source).await?;
        Ok(Self {
            socket,
            raw: Vec::new(),
            cursors: BTreeMap::new(),
            closed: None,
            wait: WAIT,
            pending: Default::default(),
        })
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        self.send_raw(&frame.encode()).await
    }

    /// Sends a command without a `client_id`.
    pub async fn send_command(&mut self, command: Command) -> Result<()> {
        self.send(&ClientFrame::new(command)).await
    }

    /// Sends any text frame, valid or not.
    pub async fn send_raw(&mut self, text: &str) -> Result<()> {
        self.socket.send(Message::text(text)).await.context("sending a frame")
    }

    /// Sends any WebSocket message, such as a binary frame.
    pub async fn send_message(&mut self, message: Message) -> Result<()> {
        self.socket.send(message).await.context("sending a message")
    }

    /// Says hello with these cursors and waits for the welcome and the whole replay it
    /// promises. Returns the welcome and the replayed events.
    pub async fn hello_resume(
        &mut self,
        session: &SessionId,
        token: &str,
        resume: BTreeMap<String, u64>,
    ) -> Result<(Welcome, Vec<RoomEvent>)> {
        self.send_command(Command::Hello { session: session.clone(), token: token.to_owned(), resume })
            .await?;
        let welcome = self
            .expect("welcome", |message| match message {
                ServerMessage::Welcome(welcome) => Some(*welcome.clone()),
                _ => None,
            })
            .await?;
        let mut owed: BTreeMap<Room, u64> = welcome
            .rooms
            .iter()
            .filter(|cursor| cursor.head > cursor.from)
            .map(|cursor| (cursor.room, cursor.head))
            .collect();
        let mut replay = Vec::new();
        while !owed.is_empty() {
            let event = self.expect_event(|_| true).await?;
            if owed.get(&event.room) == Some(&event.seq) {
                owed.remove(&event.room);
            }
            replay.push(event);
        }
        Ok((welcome, replay))
    }

    /// Says hello without cursors.
    pub async fn hello(&mut self, session: &SessionId, token: &str) -> Result<Welcome> {
        Ok(self.hello_resume(session, token, BTreeMap::new()).await?.0)
    }

    /// Says hello, expecting to be refused, and returns the close.
    pub async fn hello_refused(&mut self, session: &SessionId, token: &str) -> Result<Closed> {
        self.send_command(Command::Hello {
            session: session.clone(),
            token: token.to_owned(),
            resume: BTreeMap::new(),
        })
        .await?;
        self.expect_close().await
    }

    /// The cursors to resume with, as `hello` takes them.
    pub fn resume_cursors(&self) -> BTreeMap<String, u64> {
        self.cursors.iter().map(|(room, seq)| (room.as_str().to_owned(), *seq)).collect()
    }

    /// The next message, whether or not an `expect_*` call skipped it earlier.
    pub async fn next(&mut self) -> Result<ServerMessage> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        self.read().await
    }

    async fn read(&mut self) -> Result<ServerMessage> {
        loop {
            let wait = self.wait;
            let message = tokio::time::timeout(wait, self.socket.next())
                .await
                .map_err(|_| anyhow!("no message arrived within {wait:?}"))?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.raw.push(text.to_string());
                    let message: ServerMessage = serde_json::from_str(&text).with_context(|| {
                        format!("the server sent a frame the protocol types reject: {text}")
                    })?;
                    if let ServerMessage::Event(event) = &message {
                        self.cursors.insert(event.room, event.seq);
                    }
                    return Ok(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(closed(frame));
                    bail!("the connection closed: {:?}", self.closed);
                }
                Some(Ok(Message::Binary(_))) => bail!("the server sent a binary frame"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => {
                    self.closed.get_or_insert(Closed { code: None, reason: err.to_string() });
                    bail!("the connection failed: {err}");
                }
                None => {
                    self.closed.get_or_insert(Closed { code: None, reason: "stream ended".into() });
                    bail!("the connection ended");
                }
            }
        }
    }

    /// Waits for the first message that `pick` accepts. Messages it passes over stay
    /// available to later calls, in order.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<T> {
        if let Some(index) = self.pending.iter().position(|message| pick(message).is_some()) {
            let message = self.pending.remove(index).expect("index is in range");
            return Ok(pick(&message).expect("it matched a moment ago"));
        }
        loop {
            let message = self
                .read()
                .await
                .with_context(|| format!("waiting for {what}; still unread: {:?}", self.pending))?;
            if let Some(found) = pick(&message) {
                return Ok(found);
            }
            self.pending.push_back(message);
        }
    }

    /// Waits for an event that `pick` accepts.
    pub async fn expect_event(&mut self, mut pick: impl FnMut(&RoomEvent) -> bool) -> Result<RoomEvent> {
        self.expect("an event", |message| match message {
            ServerMessage::Event(event) if pick(event) => Some(event.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for an event of a kind that `pick` accepts in `room`.
    pub async fn expect_body(
        &mut self,
        room: Room,
        mut pick: impl FnMut(&EventBody) -> bool,
    ) -> Result<RoomEvent> {
        self.expect_event(|event| event.room == room && pick(&event.body)).await
    }

    /// Sends a command with a fresh `client_id` and waits for its ack or error.
    pub async fn request(&mut self, command: Command) -> Result<Result<Ack, ErrorFrame>> {
        let client_id = fresh_client_id();
        self.send(&ClientFrame::with_id(client_id.clone(), command)).await?;
        self.reply_to(&client_id).await
    }

    /// Waits for the ack or error answering `client_id`.
    pub async fn reply_to(&mut self, client_id: &ClientId) -> Result<Result<Ack, ErrorFrame>> {
        self.expect("a reply", |message| match message {
            ServerMessage::Ack(ack) if ack.client_id.as_ref() == Some(client_id) => Some(Ok(ack.clone())),
            ServerMessage::Error(error) if error.client_id.as_ref() == Some(client_id) => {
                Some(Err(error.clone()))
            }
            _ => None,
        })
        .await
    }

    /// Sends a command that must succeed and returns its ack.
    pub async fn ok(&mut self, command: Command) -> Result<Ack> {
        let kind = command.kind();
        self.request(command).await?.map_err(|error| anyhow!("`{kind}` was refused: {error:?}"))
    }

    /// Sends a command that must be refused and returns the error.
    pub async fn refused(&mut self, command: Command) -> Result<ErrorFrame> {
        let kind = command.kind();
        match self.request(command).await? {
            Ok(ack) => bail!("`{kind}` was accepted ({ack:?}) but should have been refused"),
            Err(error) => Ok(error),
        }
    }

    /// Says `text` in `room` and returns the stored sequence number.
    pub async fn say(&mut self, in_room: Room, text: &str) -> Result<u64> {
        let ack = self.ok(Command::Say { room: room(in_room), text: text.to_owned() }).await?;
        ack.seq.context("a say ack carries a sequence number")
    }

    /// Waits until the server has handled everything this client sent before, and has
    /// queued to it every event produced before that: replies come in order.
    pub async fn sync(&mut self) -> Result<()> {
        self.request(Command::Typing { room: RoomName("sync".into()) })
            .await?
            .err()
            .context("a sync probe is always refused")?;
        Ok(())
    }

    /// Reads until the server closes the connection and returns the close; fails if
    /// nothing at all arrives for the client's wait, rather than waiting for ever.
    pub async fn expect_close(&mut self) -> Result<Closed> {
        loop {
            if let Some(closed) = &self.closed {
                return Ok(closed.clone());
            }
            if let Err(err) = self.read().await
                && self.closed.is_none()
            {
                return Err(err.context("waiting for the server to close the connection"));
            }
        }
    }

    /// Every frame received so far, joined, for asserting what never arrived.
    pub fn transcript(&self) -> String {
        self.raw.join("\n")
    }

    /// The raw WebSocket, for tests that read and write at the same time.
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }

    /// Drops the connection without a close handshake, like a lost network.
    pub fn drop_connection(self) {
        drop(self);
    }
}

fn closed(frame: Option<CloseFrame>) -> Closed {
    match frame {
        Some(frame) => Closed { code: Some(frame.code.into()), reason: frame.reason.to_string() },
        None => Closed { code: None, reason: String::new() },
    }
}

/// A minimal HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("unexpected body ({}): {}", self.status, self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP request and reads the whole response.
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(address).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .context("the HTTP response did not finish in time")??;
    let text = String::from_utf8(response).context("the response is not UTF-8")?;
    let (head, body) = text.split_once("\r\n\r\n").context("a response has a head")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("a response has a status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked =
        headers.iter().any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Creates a session titled `title`, with caucuses "A" and "B", default settings and no
/// ground rules, over HTTP as facilitator `token`.
pub async fn create_session(
    address: SocketAddr,
    token: &str,
    title: &str,
) -> Result<caucus_protocol::api::SessionCreated> {
    let body = serde_json::to_string(&caucus_protocol::api::CreateSession {
        title: title.into(),
        caucuses: caucus_protocol::CaucusLabels { a: "A".into(), b: "B".into() },
        settings: caucus_protocol::Settings::default(),
        ground_rules: None,
        allow_guests: None,
    })?;
    let auth = format!("Bearer {token}");
    let response = http(address, "POST", "/api/sessions", &[("authorization", &auth)], Some(&body)).await?;
    anyhow::ensure!(
        response.status == 201,
        "creating a session failed: {} {}",
        response.status,
        response.body
    );
    response.json()
}

/// The token a guest's join returns. Guests always get one; signed-in people do not.
pub trait GuestToken {
    /// The guest's member token.
    fn guest_token(&self) -> &str;
}

impl GuestToken for caucus_protocol::api::Joined {
    fn guest_token(&self) -> &str {
        self.token.as_deref().expect("a guest's join returns a member token")
    }
}

/// A server a test needs (`what`), or `None` after saying why it could not start; on
/// CI, where `scripts/test` installs every such server, a failure fails the test.
pub fn needed<T>(what: &str, started: anyhow::Result<T>) -> Option<T> {
    match started {
        Ok(server) => Some(server),
        Err(err) if std::env::var("CI").is_ok_and(|value| value == "true") => {
            panic!("{what} is needed on CI: {err:#}")
        }
        Err(err) => {
            eprintln!("skipping a test that needs {what}: {err:#} (scripts/test installs it)");
            None
        }
    }
}
