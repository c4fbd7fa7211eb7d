//! The owner's side: connections of other nodes in sessions that run here.
//!
//! Each is a *relay*: a connection id of this node and an outbox, entered into the
//! session's actor like any WebSocket. Its task sends what the actor queues to the edge,
//! and hands the actor what the client sent.

use std::sync::Arc;

use axum::extract::ws::Message;
use bytes::Bytes;
use caucus_protocol::{ClientFrame, MemberId, close};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Bus;
use super::wire::{Answer, Call, Traffic};
use crate::hub::Hub;
use crate::outbox::{self, ConnectionId, Next, Outgoing};
use crate::session::{JoinAs, JoinError, SessionHandle};

/// How many frames from one client may wait for the actor at least. A relay takes what
/// the client's rate limit lets through in a burst and a second besides, so that only a
/// client sending far faster than its limit allows could fill it; then the relay closes.
const UP_QUEUE: usize = 256;
/// And at most.
const UP_QUEUE_MOST: usize = 65_536;
/// How many queued frames one message to the edge carries at most.
const BATCH: usize = 64;
/// How many bytes one message to the edge carries at most (NATS's own limit is 1 MiB;
/// a single larger frame goes alone).
const BATCH_BYTES: usize = 256 * 1024;

/// How often a relay that has sent something tells its edge how much: the last message
/// lost would otherwise go unnoticed until the next one.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an owner closes a relayed connection.
const GAP: &str = "some of this connection's frames were lost between nodes; reconnect to resume";

/// A relayed connection, as the owner's bus task sees it.
#[derive(Debug)]
pub(super) struct Relay {
    ups: mpsc::Sender<Bytes>,
    /// The sequence number the edge's next frame must carry.
    next_up: u64,
    end: CancellationToken,
    since: Instant,
}

impl Relay {
    pub(super) fn since(&self) -> Instant {
        self.since
    }

    /// The client is gone, or its edge is: the relay leaves the session.
    pub(super) fn gone(&self) {
        self.end.cancel();
    }
}

impl Bus {
    /// Answers another node's request about a session running here.
    pub(super) async fn answer(self: &Arc<Self>, hub: &Arc<Hub>, call: Call) -> Answer {
        let Some(handle) = hub.running_here(call.session()) else { return Answer::NotHere };
        match call {
            Call::Connect { member, resume, edge, conn, .. } => {
                self.relay(hub, handle, member, resume, edge, conn).await
            }
            Call::Join { member, name, role, secretary, accepted_rules, .. } => {
                match handle.join(member, name, JoinAs { role, secretary }, accepted_rules).await {
                    Ok(()) => Answer::Joined,
                    Err(JoinError::Refused(refusal)) => {
                        Answer::JoinRefused { code: refusal.code(), message: refusal.to_string() }
                    }
                    Err(JoinError::RefusedThere(code, message)) => Answer::JoinRefused { code, message },
                    Err(JoinError::Unavailable) => Answer::Unavailable,
                    Err(JoinError::ShuttingDown) => Answer::NotHere,
                }
            }
            Call::RoleOf { member, .. } => Answer::Role { role: handle.role_of(member).await },
            Call::Minutes { member, .. } => match handle.minutes(member).await {
                Ok(minutes) => Answer::Minutes { minutes },
                Err(_) => Answer::Unavailable,
            },
            Call::Rounds { .. } => Answer::Rounds { rounds: handle.rounds().await },
            Call::Erase { by, member, .. } => Answer::Erased { result: handle.erase(by, member).await },
        }
    }

    /// Enters connection `conn` of node `edge` into `handle`'s session through a relay.
    async fn relay(
        self: &Arc<Self>,
        hub: &Arc<Hub>,
        handle: SessionHandle,
        member: MemberId,
        resume: std::collections::BTreeMap<String, u64>,
        edge: String,
        conn: ConnectionId,
    ) -> Answer {
        let limits = &hub.config().limits;
        let id = outbox::next_connection_id();
        let (outbox, outgoing) = outbox::channel(id, limits.outbound_queue, limits.outbound_bytes);
        if let Err(err) = handle.connect(member.clone(), resume, outbox).await {
            return Answer::Refused { code: err.close_code(), reason: err.to_string() };
        }
        let allowed = limits.frame_burst as usize + limits.frames_per_sec as usize;
        let (ups, up_frames) = mpsc::channel(allowed.clamp(UP_QUEUE, UP_QUEUE_MOST));
        let end = CancellationToken::new();
        let key = (edge.clone(), conn);
        self.relays.insert(key.clone(), Relay { ups, next_up: 1, end: end.clone(), since: Instant::now() });
        metrics::gauge!(crate::metrics::BUS_RELAYS).set(self.relays.len() as f64);
        let run = RelayTask { bus: Arc::clone(self), handle, member, id, edge, conn, sent: 0 };
        hub.tracker().spawn(run.run(outgoing, up_frames, end, hub.shutdown_token()));
        debug!(conn, key = ?key, "relaying a connection from another node");
        Answer::Connected
    }

    /// A frame from a relayed connection's client.
    pub(super) fn on_up(&self, edge: &str, conn: ConnectionId, seq: u64, frame: Bytes) {
        let key = (edge.to_owned(), conn);
        let Some(mut relay) = self.relays.get_mut(&key) else { return };
        let in_order = seq == relay.next_up;
        relay.next_up += 1;
        if !in_order {
            metrics::counter!(crate::metrics::BUS_GAPS).increment(1);
        }
        // An empty frame only says how many came before it.
        if in_order && frame.is_empty() {
            return;
        }
        // Out of order or flooding: the client resumes rather than lose a frame silently.
        let flooded = in_order && relay.ups.try_send(frame).is_err();
        if flooded {
            warn!(edge, conn, "a relayed client sent more than its relay holds; sending it to resume");
        }
        if !in_order || flooded {
            relay.end.cancel();
            drop(relay);
            self.relays.remove(&key);
        }
    }
}

/// What a relay's task holds.
struct RelayTask {
    bus: Arc<Bus>,
    handle: SessionHandle,
    member: MemberId,
    /// The relay's connection id on this node, as the actor knows it.
    id: ConnectionId,
    edge: String,
    /// The connection's id on its edge.
    conn: ConnectionId,
    /// The sequence number of the last message sent down.
    sent: u64,
}

impl RelayTask {
    async fn run(
        mut self,
        mut outgoing: Outgoing,
        mut up_frames: mpsc::Receiver<Bytes>,
        end: CancellationToken,
        shutdown: CancellationToken,
    ) {
        let mut sync = tokio::time::interval(SYNC_EVERY);
        let mut synced = 0;
        loop {
            tokio::select! {
                biased;
                next = outgoing.next() => match next {
                    Next::Close(code, reason) => {
                        self.close(code, reason.into_owned()).await;
                        break;
                    }
                    Next::Frame(first) => self.send_down(first, &mut outgoing).await,
                },
                () = end.cancelled() => {
                    // Its edge is gone, or a frame was lost: if the edge is there, it
                    // closes the client so that it resumes.
                    self.close(close::GOING_AWAY, GAP.to_owned()).await;
                    break;
                }
                () = shutdown.cancelled() => {
                    // The node is stopping: its sessions are handed over, so the client
                    // is sent to resume at once rather than when its edge notices.
                    self.close(close::GOING_AWAY, "the server is shutting down; reconnect shortly".to_owned()).await;
                    break;
                }
                _ = sync.tick() => {
                    // An empty message with the next number: the edge closes the client
                    // if the one before it never came.
                    if self.sent > synced {
                        self.sent += 1;
                        synced = self.sent;
                        let traffic = Traffic::Down { conn: self.conn, seq: self.sent, frames: Vec::new() };
                        self.bus.send(&self.edge, traffic).await;
                    }
                }
                frame = up_frames.recv() => {
                    let Some(frame) = frame else { break };
                    // The edge decoded it already; what does not decode here is dropped.
                    let Some(frame) = std::str::from_utf8(&frame).ok().and_then(|text| ClientFrame::decode(text).ok()) else {
                        continue;
                    };
                    if self.handle.command(self.member.clone(), self.id, frame).await.is_err() {
                        self.close(close::GOING_AWAY, "the session stopped here; reconnect shortly".to_owned()).await;
                        break;
                    }
                }
            }
        }
        self.bus.relays.remove(&(self.edge.clone(), self.conn));
        metrics::gauge!(crate::metrics::BUS_RELAYS).set(self.bus.relays.len() as f64);
        self.handle.disconnect(self.member.clone(), self.id).await;
    }

    /// Sends `first` and whatever else is queued, up to a batch, in one message.
    async fn send_down(&mut self, first: Message, outgoing: &mut Outgoing) {
        let mut frames = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            if let Message::Text(text) = message {
                bytes += text.len();
                frames.push(Bytes::from(text));
            }
            if frames.len() < BATCH && bytes < BATCH_BYTES {
                next = outgoing.try_frame();
            }
        }
        self.sent += 1;
        let traffic = Traffic::Down { conn: self.conn, seq: self.sent, frames };
        // Lost or refused, it leaves a gap the edge sees at the next message.
        self.bus.send(&self.edge, traffic).await;
    }

    async fn close(&self, code: u16, reason: String) {
        self.bus.send(&self.edge, Traffic::Close { conn: self.conn, code, reason }).await;
    }
}
