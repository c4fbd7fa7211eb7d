//! One WebSocket connection: a single task that reads frames, turns them into commands
//! for the session actor, and writes what the actor queues for it.
//!
//! The life of a connection:
//!
//! 1. It has `timeouts.hello_secs` to send `hello` with a token. Anything else before
//!    that gets `hello_required`; a bad token closes it with a code saying why.
//! 2. Once welcomed, each text frame is rate-limited, decoded and passed to the actor.
//!    A frame that does not decode gets an `error` and the connection stays open.
//! 3. It ends when the client closes, the server shuts down (1001), the token expires
//!    (4002), the client stops answering pings (4009), its queue fills (4008), what
//!    it entered with ends (a sign-in, 4011; roles, 4010; a guest's seat kept in an
//!    account, 4012), or a protocol breach (1002, 1003, 1007, 1009). Each server-side close sends a close
//!    frame and then reads until the client answers, so the handshake completes.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use caucus_protocol::{ClientFrame, ClientId, Command, ErrorCode, ErrorFrame, ServerMessage, close};
use futures::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite;
use tracing::{Instrument, debug, info_span};

use crate::accounts::{SignedIn, Watch, Watched};
use crate::auth::{TokenError, TokenKind};
use crate::gate::Ticket;
use crate::hub::{Hub, SessionRef};
use crate::outbox::{self, ConnectionId, Next, Outbox, Outgoing};
use crate::session::{ConnectError, encode};

/// How many queued frames one flush writes at most, so that a busy connection still
/// notices pings and closes between batches.
const BATCH: usize = 64;
/// How many bytes one flush gathers at most: the WebSocket's write buffer holds a batch
/// until the socket takes it, so a batch of large frames must not grow it without end.
const BATCH_BYTES: usize = 64 * 1024;
/// Why a guest's token no longer opens their seat.
const SEAT_KEPT: &str = "this seat is now kept in an account: sign in, then reconnect without the token";
/// How long a closing connection waits for the client's half of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// How a connection ends.
#[derive(Debug)]
enum Ending {
    /// Send this close frame, then wait for the client's.
    Close(u16, String),
    /// The client sent a close frame; finish the handshake.
    ClientClosed,
    /// The socket is gone; nothing more can be sent.
    Gone,
}

impl Ending {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Ending::Close(code, reason.into())
    }
}

/// A welcomed connection's place in a session.
struct Entered {
    session: SessionRef,
    member: caucus_protocol::MemberId,
    expires_at: Instant,
    /// Shared by all of this person's connections.
    member_rate: Arc<DefaultDirectRateLimiter>,
    /// Entered by a sign-in cookie rather than a token.
    signed_in: bool,
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/ws`: the Caucus protocol.
    Chat,
    /// `/ws/echo`: sends every message back unchanged, through the same limits and
    /// close handling, so that a WebSocket conformance suite can test them.
    Echo,
}

/// Serves one upgraded WebSocket until it ends. `ticket` is its place at the gate, given
/// up as pending once the connection is welcomed; `signed` is the browser's sign-in, if
/// its cookie came with the upgrade.
///
/// Not an `async fn`: one keeps its arguments in its future for its whole life, beside
/// the future they are moved into, so every connection's task would hold the WebSocket
/// and the connection's state twice (864 bytes more, measured in a debug build).
pub fn serve(
    socket: WebSocket,
    hub: Arc<Hub>,
    ticket: Option<Arc<Ticket>>,
    mode: Mode,
    signed: Option<SignedIn>,
) -> impl Future<Output = ()> + Send + 'static {
    let id = outbox::next_connection_id();
    let span = info_span!(
        "connection",
        connection = id,
        session = tracing::field::Empty,
        member = tracing::field::Empty
    );
    let mut connection = Connection::new(id, hub, mode);
    connection.ticket = ticket;
    connection.signed = signed.map(Box::new);
    connection.run(socket).instrument(span)
}

struct Connection {
    id: ConnectionId,
    mode: Mode,
    hub: Arc<Hub>,
    outbox: Outbox,
    outgoing: Outgoing,
    entered: Option<Entered>,
    rate: DefaultDirectRateLimiter,
    strikes: DefaultDirectRateLimiter,
    ticket: Option<Arc<Ticket>>,
    /// The sign-in that came with the upgrade, until `hello` uses it.
    signed: Option<Box<SignedIn>>,
    /// What a signed-in connection watches, handed to the loop after `hello`.
    watch: Option<Watch>,
}

/// A rate limiter allowing `count` a second, sustained, and `burst` at once.
pub fn per_second(count: u32, burst: u32) -> DefaultDirectRateLimiter {
    let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(count).allow_burst(burst))
}

impl Connection {
    fn new(id: ConnectionId, hub: Arc<Hub>, mode: Mode) -> Self {
        let limits = &hub.config().limits;
        let (outbox, outgoing) = outbox::channel(id, limits.outbound_queue, limits.outbound_bytes);
        let rate = per_second(limits.frames_per_sec, limits.frame_burst);
        // Strikes refill slowly: a client that keeps flooding after being told runs out.
        let strikes = RateLimiter::direct(Quota::per_minute(
            NonZeroU32::new(limits.rate_limited_strikes).unwrap_or(NonZeroU32::MIN),
        ));
        Self {
            id,
            mode,
            outbox,
            outgoing,
            hub,
            entered: None,
            rate,
            strikes,
            ticket: None,
            signed: None,
            watch: None,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        metrics::gauge!(crate::metrics::CONNECTIONS).increment(1.0);
        let timeouts = self.hub.config().timeouts.clone();
        let write_timeout = Duration::from_secs(timeouts.write_secs);
        let ping_every = Duration::from_secs(timeouts.ping_secs);
        let shutdown = self.hub.shutdown_token();
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        // One timer, kept across turns of the loop: first the hello deadline, then the
        // token's expiry. Echo connections have neither.
        let deadline = sleep_until(Instant::now() + Duration::from_secs(timeouts.hello_secs));
        tokio::pin!(deadline);
        // A signed-in connection closes when its sign-in ends or its roles change, and
        // one entered with a guest's token when that seat is kept in an account; each
        // watches tokens nobody cancels for the others.
        let (mut signed_out, mut roles_changed, mut seat_kept) =
            (Watched::default(), Watched::default(), Watched::default());

        let ending = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ending::close(close::GOING_AWAY, "the server is shutting down; reconnect shortly"),
                next = self.outgoing.next() => match next {
                    Next::Close(code, reason) => break Ending::close(code, reason),
                    Next::Frame(frame) => {
                        if !write_batch(&mut socket, &mut self.outgoing, frame, write_timeout).await {
                            break Ending::Gone;
                        }
                    }
                },
                () = signed_out.cancelled() => break Ending::close(close::SIGNED_OUT, "you were signed out; sign in again"),
                () = roles_changed.cancelled() => break Ending::close(close::ROLE_CHANGED, "your roles changed; reconnect"),
                () = seat_kept.cancelled() => break Ending::close(close::SEAT_KEPT, SEAT_KEPT),
                () = &mut deadline, if self.mode == Mode::Chat => break match &self.entered {
                    None => Ending::close(close::HELLO_TIMEOUT, "no hello arrived in time"),
                    Some(entered) if entered.signed_in => Ending::close(close::SIGNED_OUT, "your sign-in has expired; sign in again"),
                    Some(_) => Ending::close(close::TOKEN_EXPIRED, TokenError::Expired.to_string()),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() >= 2 * ping_every {
                        break Ending::close(close::PING_TIMEOUT, "no pong arrived in time");
                    }
                    if !matches!(timeout(write_timeout, socket.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                        break Ending::Gone;
                    }
                    if let Some(entered) = &self.entered {
                        entered.session.keep_in_step(self.id).await;
                    }
                }
                incoming = socket.recv() => {
                    last_heard = Instant::now();
                    match incoming {
                        None => break Ending::Gone,
                        Some(Err(err)) => break ending_for(&err, self.hub.config().limits.frame_bytes),
                        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) if self.mode == Mode::Echo => {
                            if let Some(ending) = self.echo(message) {
                                break ending;
                            }
                        }
                        Some(Ok(Message::Text(text))) => {
                            metrics::counter!(crate::metrics::FRAMES_IN).increment(1);
                            let was_entered = self.entered.is_some();
                            // Boxed, like the other paths that await the actor: the task
                            // should hold only what every turn of the loop needs.
                            if let Some(ending) = Box::pin(self.on_text(&text)).await {
                                break ending;
                            }
                            if let Some(entered) = self.entered.as_ref().filter(|_| !was_entered) {
                                deadline.as_mut().reset(entered.expires_at);
                            }
                            if let Some(watch) = self.watch.take() {
                                (signed_out, roles_changed, seat_kept) = (watch.signin, watch.roles, watch.guest_seat);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            break Ending::close(close::UNSUPPORTED_DATA, "Caucus accepts JSON text frames only");
                        }
                        // Control frames cost the server too (tungstenite answers every
                        // ping): they count against the same allowance as text frames.
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            if self.rate.check().is_err() && self.strikes.check().is_err() {
                                break Ending::close(close::POLICY_VIOLATION, "too many frames too fast");
                            }
                        }
                        Some(Ok(Message::Close(_))) => break Ending::ClientClosed,
                    }
                }
            }
        };
        debug!(?ending, "connection ending");
        Box::pin(finish(&mut socket, ending, write_timeout)).await;
        if let Some(entered) = self.entered.take() {
            let Entered { session, member, member_rate, .. } = entered;
            drop(member_rate);
            self.hub.release_member_rate(&member);
            Box::pin(session.disconnect(member, self.id)).await;
        }
        metrics::gauge!(crate::metrics::CONNECTIONS).decrement(1.0);
    }

    /// Echo mode: the same rate limit, then the message straight back.
    fn echo(&mut self, message: Message) -> Option<Ending> {
        if self.rate.check().is_err() && self.strikes.check().is_err() {
            return Some(Ending::close(close::POLICY_VIOLATION, "too many frames too fast"));
        }
        // A full queue asks this connection to close, which the loop does next.
        self.outbox.push(message);
        None
    }

    /// Handles one text frame. Returns how the connection ends, if it must.
    async fn on_text(&mut self, text: &str) -> Option<Ending> {
        // Decoding first lets a rate-limited refusal echo the frame's client_id.
        let decoded = ClientFrame::decode(text);
        let member_limited =
            self.entered.as_ref().is_some_and(|entered| entered.member_rate.check().is_err());
        if self.rate.check().is_err() || member_limited {
            if self.strikes.check().is_err() {
                return Some(Ending::close(close::POLICY_VIOLATION, "too many frames too fast"));
            }
            let client_id = match &decoded {
                Ok(frame) => frame.client_id.clone(),
                Err(err) => err.client_id.clone(),
            };
            self.reply_error(
                ErrorCode::RateLimited,
                "too many frames too fast; slow down or the connection will close",
                client_id,
            );
            return None;
        }
        let frame = match decoded {
            Ok(frame) => frame,
            Err(err) => {
                self.reply_error(ErrorCode::BadFrame, &err.message, err.client_id);
                return None;
            }
        };
        match (&self.entered, frame.command) {
            (None, Command::Hello { session, token, resume }) => self.hello(session, &token, resume).await,
            (None, _) => {
                self.reply_error(
                    ErrorCode::HelloRequired,
                    "send hello with your token first",
                    frame.client_id,
                );
                None
            }
            (Some(_), Command::Hello { .. }) => {
                self.reply_error(
                    ErrorCode::AlreadyWelcomed,
                    "this connection has already said hello",
                    frame.client_id,
                );
                None
            }
            (Some(entered), command) => {
                let frame = ClientFrame { client_id: frame.client_id, command };
                if entered.session.command(entered.member.clone(), self.id, frame, text).await.is_err() {
                    return Some(Ending::close(
                        close::GOING_AWAY,
                        "the server is shutting down; reconnect shortly",
                    ));
                }
                None
            }
        }
    }

    async fn hello(
        &mut self,
        session_id: caucus_protocol::SessionId,
        token: &str,
        resume: std::collections::BTreeMap<String, u64>,
    ) -> Option<Ending> {
        let no_such_session =
            || Some(Ending::close(close::NO_SUCH_SESSION, "no such session for this token"));
        let try_again_later = || {
            Some(Ending::close(
                close::TRY_AGAIN_LATER,
                "this session cannot be opened just now; reconnect shortly",
            ))
        };
        let (member, expires_unix, signed_in) = match (token.is_empty(), self.signed.take()) {
            // A signed-in browser: the account's seat in the session says who it is.
            (true, Some(signed)) => {
                let Ok(Some(member)) = self.hub.accounts().seat(&signed.account.id, &session_id).await else {
                    return no_such_session();
                };
                // Watch first, then look again: a sign-out in between is not missed.
                self.watch = Some(self.hub.accounts().watch(&signed));
                if !matches!(self.hub.accounts().still_signed_in(&signed).await, Ok(true)) {
                    return Some(Ending::close(close::SIGNED_OUT, "you were signed out; sign in again"));
                }
                (member, u64::try_from(signed.expires_at).unwrap_or(0), true)
            }
            _ => {
                let (claims, member) = match self.hub.auth().verify(token) {
                    Ok(verified) => verified,
                    Err(err) => {
                        let code = if err == TokenError::Expired {
                            close::TOKEN_EXPIRED
                        } else {
                            close::INVALID_TOKEN
                        };
                        return Some(Ending::close(code, err.to_string()));
                    }
                };
                // A member token is good for its own session only; the session's table
                // then decides whether this person is in it and what they may see.
                if claims.kind == TokenKind::Member && claims.sid.as_ref() != Some(&session_id) {
                    return no_such_session();
                }
                // A guest's token opens their seat until the seat is kept in an
                // account. Watch first, then look: a keeping in between is not missed.
                if claims.kind == TokenKind::Member {
                    self.watch = Some(self.hub.accounts().watch_guest_seat(&session_id, &member));
                    match self.hub.accounts().guest_token_retired(&session_id, &member).await {
                        Ok(false) => {}
                        Ok(true) => return Some(Ending::close(close::SEAT_KEPT, SEAT_KEPT)),
                        Err(_) => return try_again_later(),
                    }
                }
                (member, claims.exp, false)
            }
        };
        // A session on another node may stop answering as this one reaches it (its node
        // died or handed it on): look again until it can have been taken over.
        let give_up = Instant::now() + self.hub.takeover_wait();
        let session = loop {
            let session = match self.hub.session(&session_id).await {
                Ok(session) => session,
                Err(crate::hub::Unreachable::Unknown) => return no_such_session(),
                Err(crate::hub::Unreachable::Unavailable) => return try_again_later(),
            };
            match session.connect(member.clone(), resume.clone(), self.outbox.clone()).await {
                Ok(()) => break session,
                Err(ConnectError::NotHeld) if session.is_remote() && Instant::now() < give_up => {
                    tokio::time::sleep(crate::hub::CLAIM_RETRY).await;
                }
                Err(err) => return Some(Ending::close(err.close_code(), err.to_string())),
            }
        };
        let span = tracing::Span::current();
        span.record("session", tracing::field::display(&session_id));
        span.record("member", tracing::field::display(&member));
        if let Some(ticket) = &self.ticket {
            ticket.welcome();
        }
        let remaining = expires_unix.saturating_sub(crate::auth::unix_now());
        let member_rate = self.hub.member_rate(&member);
        self.entered = Some(Entered {
            session,
            member,
            expires_at: Instant::now() + Duration::from_secs(remaining),
            member_rate,
            signed_in,
        });
        None
    }

    fn reply_error(&self, code: ErrorCode, message: &str, client_id: Option<ClientId>) {
        self.outbox.deliver(&encode(&ServerMessage::Error(ErrorFrame {
            code,
            message: message.to_owned(),
            client_id,
        })));
    }
}

/// Writes `first` and whatever else is queued, up to a batch, then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    outgoing: &mut Outgoing,
    first: Message,
    write_timeout: Duration,
) -> bool {
    let write = async {
        let mut bytes = outbox::frame_len(&first);
        socket.feed(first).await?;
        for _ in 1..BATCH {
            if bytes >= BATCH_BYTES {
                break;
            }
            match outgoing.try_frame() {
                Some(frame) => {
                    bytes += outbox::frame_len(&frame);
                    socket.feed(frame).await?;
                }
                None => break,
            }
        }
        socket.flush().await
    };
    // Most batches are written at once; the timer is armed only for one that waits on
    // the socket, which saves registering and cancelling a timer for every batch.
    let mut write = std::pin::pin!(write);
    match futures::poll!(write.as_mut()) {
        std::task::Poll::Ready(written) => written.is_ok(),
        std::task::Poll::Pending => matches!(timeout(write_timeout, write).await, Ok(Ok(()))),
    }
}

/// The close that answers a read error.
fn ending_for(err: &axum::Error, frame_bytes: usize) -> Ending {
    let source =
        std::error::Error::source(err).and_then(|source| source.downcast_ref::<tungstenite::Error>());
    match source {
        Some(tungstenite::Error::Capacity(_)) => {
            Ending::close(close::MESSAGE_TOO_BIG, format!("frames are limited to {frame_bytes} bytes"))
        }
        Some(tungstenite::Error::Utf8(_)) => {
            Ending::close(close::INVALID_PAYLOAD, "text frames must be valid UTF-8")
        }
        Some(tungstenite::Error::Protocol(err)) => {
            Ending::close(close::PROTOCOL_ERROR, format!("WebSocket protocol error: {err}"))
        }
        _ => Ending::Gone,
    }
}

/// Completes the close handshake: send our close frame if we are the one closing, then
/// read until the client's close arrives or the grace period ends.
async fn finish(socket: &mut WebSocket, ending: Ending, write_timeout: Duration) {
    match ending {
        Ending::Gone => return,
        Ending::ClientClosed => {}
        Ending::Close(code, reason) => {
            let frame = CloseFrame { code, reason: Utf8Bytes::from(truncate_reason(reason)) };
            if !matches!(timeout(write_timeout, socket.send(Message::Close(Some(frame)))).await, Ok(Ok(()))) {
                return;
            }
        }
    }
    let _ = timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}
