//! The front gate: accepts TCP connections within limits, and serves HTTP/1.1 on them
//! with a deadline on every phase, so that nobody can hold the server open before
//! they have authenticated.
//!
//! - **Counting.** Every connection holds a [`Ticket`]. It is *pending* from accept
//!   until a WebSocket on it is welcomed (its `hello` accepted); plain HTTP connections
//!   stay pending. Pending connections are capped in total and per source address (an
//!   IPv6 address's /64 counts as one); all connections are capped below the process's
//!   descriptor limit, so that the database, the log and welcomed people always have
//!   descriptors.
//! - **Making room.** When every pending place is taken, a newcomer from an address with
//!   fewer pending connections than the address holding the most is let in, and one of
//!   that address's plain HTTP connections that has had a request is asked to close (at
//!   once if it is idle between requests, else after its response): a few addresses
//!   holding keep-alive connections open cannot keep everyone else out.
//! - **The reserve lane.** Past the pending cap, a few more connections, from addresses
//!   with almost none waiting, are taken on a short header deadline and may ask only
//!   `/healthz` and `/readyz`: a flood does not blind the health checks. Past that, a
//!   connection gets a canned 503 and is closed.
//! - **Deadlines.** The request head must arrive within `timeouts.header_secs` (hyper's
//!   header timer, which also closes idle keep-alive connections); a body within
//!   `timeouts.body_secs` (see `http`); a write may stall for at most
//!   `timeouts.write_secs` ([`StallGuard`]). Request heads are capped at
//!   `limits.header_bytes`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, warn};

use crate::config::Config;

/// Descriptors kept back from connections: the database and its WAL, the log, the
/// listener, and room for whatever the process opens later.
pub const DESCRIPTOR_RESERVE: u64 = 64;
/// Connections on the reserve lane at most: a part of [`DESCRIPTOR_RESERVE`].
const RESERVE_LANE: usize = 32;
/// An address with this many connections waiting already gets no place on the reserve
/// lane: a flood from a few addresses cannot fill it, and a monitor still gets in.
const RESERVE_PER_ADDRESS: usize = 2;
/// How long a reserve-lane connection has to send its request head.
const RESERVE_HEADER_DEADLINE: Duration = Duration::from_secs(2);
/// The paths the reserve lane answers.
pub const RESERVE_PATHS: [&str; 2] = ["/healthz", "/readyz"];
/// Connections asked to make room and not yet closed, at most: each lets one newcomer
/// in past the pending cap until it closes. Part of [`DESCRIPTOR_RESERVE`].
const MAKING_ROOM: usize = 16;

/// Which lane a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The ordinary lane: everything is served.
    Normal,
    /// Past the pending cap: health checks only.
    Reserve,
}

/// The caps the gate enforces; see `docs/OPERATIONS.md` § Limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Open connections at most, welcomed or not.
    pub connections: usize,
    /// Connections not yet welcomed, at most.
    pub pending: usize,
    /// Connections not yet welcomed from one source address, at most.
    pub pending_per_address: usize,
    /// Reverse proxies, exempt from the per-address cap: all their clients share it.
    pub trusted_proxies: crate::config::TrustedProxies,
}

impl Caps {
    /// The configured caps, with `limits.max_connections = 0` meaning "what the
    /// descriptor limit allows, less [`DESCRIPTOR_RESERVE`]".
    pub fn from_config(config: &Config, descriptors: u64) -> Self {
        let limits = &config.limits;
        let allowed = usize::try_from(descriptors.saturating_sub(DESCRIPTOR_RESERVE)).unwrap_or(usize::MAX);
        let connections = match limits.max_connections {
            0 => allowed,
            configured => configured.min(allowed),
        }
        .max(1);
        // At most half the connections may be pending, so that a flood of them always
        // leaves room for people to be welcomed.
        Self {
            connections,
            pending: limits.max_pending_connections.min(connections / 2).max(1),
            pending_per_address: limits.max_pending_per_address,
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }
}

/// Raises the soft descriptor limit to the hard one, as servers do, and returns it.
pub fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            warn!(error = %err, "could not read or raise the descriptor limit; assuming 1024");
            1024
        }
    }
}

/// Counts connections against the caps.
#[derive(Debug)]
pub struct Gate {
    caps: Caps,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    pending: usize,
    reserve: usize,
    /// Pending connections asked to close to make room, and not closed yet.
    making_room: usize,
    /// Pending connections by source network ([`network_of`]).
    pending_by_address: HashMap<IpAddr, Vec<Weak<Ticket>>>,
}

/// The network a source address counts as: itself, or an IPv6 address's /64.
fn network_of(address: IpAddr) -> IpAddr {
    crate::accounts::rules::network_of(address)
}

impl Counts {
    fn pending_from(&self, network: IpAddr) -> usize {
        self.pending_by_address.get(&network).map_or(0, Vec::len)
    }

    /// Asks a plain HTTP connection of the network holding the most pending ones to
    /// close, if that network holds more than `than`. Returns whether one was asked.
    fn make_room(&mut self, than: usize) -> bool {
        if self.making_room >= MAKING_ROOM {
            return false;
        }
        let Some((_, tickets)) = self.pending_by_address.iter().max_by_key(|(_, tickets)| tickets.len())
        else {
            return false;
        };
        if tickets.len() <= than {
            return false;
        }
        let Some(ticket) = tickets.iter().filter_map(Weak::upgrade).find(|ticket| ticket.may_make_room())
        else {
            return false;
        };
        ticket.close_to_make_room.cancel();
        self.making_room += 1;
        true
    }
}

/// Why a connection was turned away at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection slot is taken.
    Full,
    /// This address already has as many connections waiting as it may.
    Address,
    /// The pending cap and the reserve lane are both full.
    Busy,
}

impl Refused {
    /// A complete HTTP response saying why, for a connection that will not be served.
    fn response(self) -> String {
        let reason = match self {
            Refused::Address => "too many connections from your address are waiting; try again soon",
            Refused::Full | Refused::Busy => "the server is busy; try again in a moment",
        };
        format!(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n\
             retry-after: 5\r\ncontent-length: {}\r\n\r\n{reason}",
            reason.len()
        )
    }

    fn label(self) -> &'static str {
        match self {
            Refused::Full => "full",
            Refused::Address => "address",
            Refused::Busy => "busy",
        }
    }
}

impl Gate {
    /// A gate with these caps.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self { caps, counts: Mutex::new(Counts::default()) })
    }

    /// The caps in force.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Admits a connection from `address`, or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Arc<Ticket>, Refused> {
        let mut counts = self.counts.lock().expect("the gate's counts are never poisoned");
        let proxy = self.caps.trusted_proxies.contains(address);
        let network = network_of(address);
        let from_address = counts.pending_from(network);
        if from_address >= self.caps.pending_per_address && !proxy {
            return Err(Refused::Address);
        }
        let room = counts.open < self.caps.connections;
        // Connections asked to make room do not count against the cap: they are closing.
        let pending_place = |counts: &Counts| counts.pending < self.caps.pending + counts.making_room;
        // The reserve lane lives in the descriptors kept back from `connections`.
        let lane = if room
            && (pending_place(&counts) || (counts.make_room(from_address + 1) && pending_place(&counts)))
        {
            counts.pending += 1;
            Lane::Normal
        } else if counts.reserve < RESERVE_LANE && (from_address < RESERVE_PER_ADDRESS || proxy) {
            counts.reserve += 1;
            Lane::Reserve
        } else if counts.open >= self.caps.connections {
            return Err(Refused::Full);
        } else {
            return Err(Refused::Busy);
        };
        counts.open += 1;
        let ticket = Arc::new(Ticket {
            gate: self.clone(),
            network,
            lane,
            welcomed: AtomicBool::new(false),
            serving_http: AtomicBool::new(true),
            had_request: AtomicBool::new(false),
            close_to_make_room: CancellationToken::new(),
        });
        counts.pending_by_address.entry(network).or_default().push(Arc::downgrade(&ticket));
        drop(counts);
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS, "state" => "pending").increment(1.0);
        Ok(ticket)
    }

    fn release(&self, ticket: &Ticket, frees_pending: bool, closing: bool) {
        let mut counts = self.counts.lock().expect("the gate's counts are never poisoned");
        if frees_pending {
            match ticket.lane {
                Lane::Normal => counts.pending -= 1,
                Lane::Reserve => counts.reserve -= 1,
            }
            // Asked under this same lock, so the count and the token agree.
            if ticket.close_to_make_room.is_cancelled() {
                counts.making_room -= 1;
            }
            if let Some(tickets) = counts.pending_by_address.get_mut(&ticket.network) {
                // This ticket is being dropped or welcomed: drop its entry, and any dead.
                tickets.retain(|held| held.strong_count() > 0 && !std::ptr::eq(held.as_ptr(), ticket));
                if tickets.is_empty() {
                    counts.pending_by_address.remove(&ticket.network);
                }
            }
        }
        if closing {
            counts.open -= 1;
        }
    }

    /// Connections open now, and of those, pending.
    pub fn counts(&self) -> (usize, usize) {
        let counts = self.counts.lock().expect("the gate's counts are never poisoned");
        (counts.open, counts.pending + counts.reserve)
    }
}

/// One admitted connection's place at the gate. The last clone to go frees it.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
    /// The source network it counts against.
    network: IpAddr,
    lane: Lane,
    welcomed: AtomicBool,
    /// Whether the connection still speaks HTTP: not yet upgraded to a WebSocket, whose
    /// `hello` deadline bounds it instead.
    serving_http: AtomicBool,
    /// Whether a request has come on it: only such a connection is asked to make room.
    /// One still waiting for its first request head is bounded by the header deadline,
    /// and a flood of fresh connections must not make them close each other in turn.
    had_request: AtomicBool,
    /// Cancelled to ask the connection to close to make room; so, whether it was.
    close_to_make_room: CancellationToken,
}

impl Ticket {
    fn may_make_room(&self) -> bool {
        self.lane == Lane::Normal
            && self.had_request.load(Ordering::Acquire)
            && self.serving_http.load(Ordering::Acquire)
            && !self.close_to_make_room.is_cancelled()
            && !self.welcomed.load(Ordering::Acquire)
    }

    /// The lane this connection came in on.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The WebSocket on this connection was welcomed: it no longer counts as pending.
    pub fn welcome(&self) {
        if !self.welcomed.swap(true, Ordering::AcqRel) {
            self.gate.release(self, true, false);
            metrics::gauge!(crate::metrics::HTTP_CONNECTIONS, "state" => "pending").decrement(1.0);
            metrics::gauge!(crate::metrics::HTTP_CONNECTIONS, "state" => "welcomed").increment(1.0);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let was_welcomed = self.welcomed.load(Ordering::Acquire);
        self.gate.release(self, !was_welcomed, true);
        let state = if was_welcomed { "welcomed" } else { "pending" };
        metrics::gauge!(crate::metrics::HTTP_CONNECTIONS, "state" => state).decrement(1.0);
    }
}

/// Accepts connections until `shutdown`, serving `app` on each one admitted. Returns
/// once the listener has stopped; connections still open are asked to finish and are
/// tracked by `connections`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    gate: Arc<Gate>,
    config: &Config,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    let header_deadline = Duration::from_secs(config.timeouts.header_secs);
    let write_deadline = Duration::from_secs(config.timeouts.write_secs);
    let header_bytes = config.limits.header_bytes;
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors or memory: the caps should prevent it, but some
                // other part of the process may hold descriptors. Say so now and then,
                // not in a loop, and give the process a moment.
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(30)) {
                    warn!(error = %err, "could not accept a connection");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ticket = match gate.admit(peer.ip()) {
            Ok(ticket) => ticket,
            Err(refused) => {
                metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => refused.label())
                    .increment(1);
                debug!(reason = refused.label(), "connection refused at the gate");
                // A best-effort answer on a fresh socket, which has room for it. Reading
                // what already arrived first makes the close a clean one, not a reset.
                let _ = stream.try_read(&mut [0; 4096]);
                let _ = stream.try_write(refused.response().as_bytes());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let deadline = match ticket.lane() {
            Lane::Normal => header_deadline,
            Lane::Reserve => RESERVE_HEADER_DEADLINE.min(header_deadline),
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            ticket,
            ConnectionLimits { header_deadline: deadline, write_deadline, header_bytes },
            shutdown.clone(),
        ));
    }
}

#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_deadline: Duration,
    write_deadline: Duration,
    header_bytes: usize,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    ticket: Arc<Ticket>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(StallGuard::new(Lingering::new(stream), limits.write_deadline));
    let held = ticket.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        ticket.had_request.store(true, Ordering::Release);
        request.extensions_mut().insert(ticket.clone());
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        app.clone().call(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_deadline)
        .max_header_size(limits.header_bytes);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                debug!(error = %err, "an HTTP connection ended with an error");
            }
        }
        // Closes at once if idle between requests, else after the response.
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
        () = held.close_to_make_room.cancelled() => {
            debug!("an HTTP connection closes to make room for another address");
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    // Upgraded to a WebSocket, or closed: either way no longer one to close for room.
    held.serving_http.store(false, Ordering::Release);
}

/// Sockets being closed gently at most: each holds a descriptor for up to [`LINGER`].
/// Busy servers close many sockets at once (a test suite does too); past this many, a
/// socket closes at once, so that a flood cannot hold descriptors this way.
const LINGERING: usize = 256;
/// How long a closing socket reads and discards what its peer still sends.
const LINGER: Duration = Duration::from_secs(2);
static LINGERING_NOW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A TCP stream that closes gently: when dropped, it sends FIN and reads and discards
/// what the peer still sends, for a moment, before it closes. Closing a socket with
/// unread input makes the kernel send a reset, which can destroy the close frame just
/// sent (a client still writing an oversized frame would see 1006, not 1009).
#[derive(Debug)]
pub struct Lingering {
    stream: Option<TcpStream>,
}

impl Lingering {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> Self {
        Self { stream: Some(stream) }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("the stream is present until drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        // Under a flood, close at once rather than hold more descriptors.
        if LINGERING_NOW.fetch_add(1, Ordering::AcqRel) >= LINGERING {
            LINGERING_NOW.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = stream.shutdown().await;
            let _ = tokio::time::timeout(LINGER, async {
                let mut discard = [0u8; 4096];
                while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {}
            })
            .await;
            LINGERING_NOW.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// A stream whose writes may stall for at most `deadline`: a peer that stops reading
/// cannot hold a connection, and what is buffered for it, open.
#[derive(Debug)]
pub struct StallGuard<S> {
    inner: S,
    deadline: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, deadline: Duration) -> Self {
        Self { inner, deadline, stalled: None }
    }

    /// Called when a write could not proceed: starts the clock, or fails once it ran out.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.deadline;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading"))
    }

    fn poll_guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stall(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_guarded(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_guarded(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_guarded(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_guarded(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(pending: usize, per_address: usize, connections: usize) -> Arc<Gate> {
        Gate::new(Caps {
            connections,
            pending,
            pending_per_address: per_address,
            trusted_proxies: Default::default(),
        })
    }

    #[test]
    fn a_trusted_proxy_is_not_held_to_the_per_address_cap() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let gate = Gate::new(Caps {
            connections: 100,
            pending: 10,
            pending_per_address: 2,
            // A network: an ingress controller's pods, say.
            trusted_proxies: crate::config::TrustedProxies(vec!["10.0.0.0/31".parse().unwrap()]),
        });
        let tickets: Vec<_> = (0..5).map(|_| gate.admit(proxy).unwrap()).collect();
        assert_eq!(tickets.len(), 5);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let _held = (gate.admit(other).unwrap(), gate.admit(other).unwrap());
        assert_eq!(gate.admit(other).unwrap_err(), Refused::Address);
    }

    #[test]
    fn pending_connections_are_capped_per_address_and_in_total_then_go_to_the_reserve_lane() {
        let gate = gate(3, 2, 100);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = gate.admit(a).unwrap();
        let _second = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refused::Address);
        let _third = gate.admit(b).unwrap();
        let reserve = gate.admit(b).unwrap();
        assert_eq!(reserve.lane(), Lane::Reserve);
        // A welcomed connection frees its pending place and its address's.
        first.welcome();
        let again = gate.admit(a).unwrap();
        assert_eq!(again.lane(), Lane::Normal);
        assert_eq!(gate.counts(), (5, 4));
    }

    #[test]
    fn past_the_pending_cap_the_address_holding_the_most_makes_room_for_others() {
        let gate = gate(4, 4, 100);
        let heavy: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..4).map(|_| gate.admit(heavy).unwrap()).collect();
        // Keep-alive connections that have had a request; a fresh one is never asked.
        let fresh = gate.admit("127.0.0.4".parse().unwrap()).unwrap();
        assert_eq!(fresh.lane(), Lane::Reserve);
        drop(fresh);
        held.iter().for_each(|ticket| ticket.had_request.store(true, Ordering::Release));
        let asked = || held.iter().filter(|ticket| ticket.close_to_make_room.is_cancelled()).count();
        // Another address is let in, and one of the heavy address's connections is
        // asked to close; and so on until both hold as many.
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let mut let_in = Vec::new();
        for n in 1..=3 {
            let ticket = gate.admit(other).unwrap();
            assert_eq!(ticket.lane(), Lane::Normal, "newcomer {n}");
            let_in.push(ticket);
            assert_eq!(asked(), n);
        }
        assert_eq!(
            gate.admit(other).unwrap_err(),
            Refused::Busy,
            "the heavy address holds no more than this one"
        );
        assert_eq!(asked(), 3);
        // An IPv6 /64 counts as one address: it cannot spread itself over many.
        let first: IpAddr = "2001:db8::1".parse().unwrap();
        let second: IpAddr = "2001:db8::2".parse().unwrap();
        drop(let_in);
        let _v6 = gate.admit(first).unwrap();
        assert_eq!(gate.counts(), (5, 5), "the asked connections still count until they close");
        drop(held);
        let more: Vec<_> = (0..3).map(|_| gate.admit(second).unwrap()).collect();
        assert_eq!(gate.admit(second).unwrap_err(), Refused::Address, "a /64 past the per-address cap");
        drop(more);
        assert_eq!(gate.counts(), (1, 1));
    }

    #[test]
    fn every_place_comes_back_when_connections_close() {
        let gate = gate(2, 3, 3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let tickets: Vec<_> = (0..2).map(|_| gate.admit(a).unwrap()).collect();
        tickets[0].welcome();
        let third = gate.admit("127.0.0.3".parse().unwrap()).unwrap();
        // Every connection slot is taken: a health check still gets the reserve lane.
        let monitor: IpAddr = "127.0.0.4".parse().unwrap();
        let health = gate.admit(monitor).unwrap();
        assert_eq!(health.lane(), Lane::Reserve);
        let again = gate.admit(monitor).unwrap();
        // Past two waiting, an address gets no reserve place either.
        assert_eq!(gate.admit(monitor).unwrap_err(), Refused::Full);
        drop(tickets);
        drop(third);
        drop((health, again));
        assert_eq!(gate.counts(), (0, 0));
        assert!(gate.admit(a).is_ok());
    }
}
