//! The bus between nodes in cluster mode: core NATS, carrying a session's traffic between
//! the node a person is connected to (the *edge*) and the node running the session (its
//! *owner*).
//!
//! The owner's actor still decides every audience. An edge never sees an event it was
//! not told to deliver: for each of its connections in a session run elsewhere, the owner
//! keeps a stand-in connection (a *relay*) whose outbox the actor fills exactly as it
//! fills a local one, and whose frames go to the edge over the bus.
//!
//! Core NATS may drop messages. Each direction of each relayed connection numbers its
//! messages from 1; a gap closes that connection with 1001, and the client resumes from
//! the store with the cursors it already sends, so that nothing is silently missed.
//! Heartbeats tell each node which others are alive: an edge closes the connections of
//! an owner it has not heard from for [`SILENT_AFTER`], and an owner drops the relays of
//! such an edge, so that nobody waits on a dead node and no one stays "online" for it.

mod edge;
mod owner;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use dashmap::DashMap;
use futures::StreamExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use edge::RemoteSession;
use wire::{Call, Traffic};

use crate::hub::Hub;
use crate::outbox::{ConnectionId, Outbox};

/// How often each node says it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a node may be silent before the others stop waiting on it.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// How long a request to another node may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the bus could not be joined.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach NATS at the configured address: {0}")]
pub struct BusError(String);

/// This node's end of the bus.
#[derive(Debug)]
pub struct Bus {
    client: Client,
    /// This node's id, as the shared store knows it.
    node: String,
    /// Edge side: this node's connections whose sessions run elsewhere.
    attached: DashMap<ConnectionId, Attachment>,
    /// Owner side: connections of other nodes in sessions running here.
    relays: DashMap<(String, ConnectionId), owner::Relay>,
    /// When each other node was last heard from.
    heard: DashMap<String, Instant>,
    /// When this node's last heartbeat was sent: its own copy coming back measures
    /// how long the bus takes.
    beat_sent: std::sync::Mutex<Instant>,
}

/// A connection of this node in a session another node runs.
#[derive(Debug)]
struct Attachment {
    outbox: Outbox,
    owner: String,
    /// The sequence number the owner's next message for it must carry.
    next_down: u64,
    since: Instant,
}

impl Bus {
    /// Connects to NATS at `url` as node `node`. Fails if NATS does not answer within
    /// `wait`; once connected, the client reconnects by itself after an outage.
    pub async fn connect(url: &str, node: &str, wait: Duration) -> Result<Arc<Self>, BusError> {
        let options =
            ConnectOptions::new().name(format!("caucus {node}")).request_timeout(Some(REQUEST_TIMEOUT));
        let client = tokio::time::timeout(wait, options.connect(url))
            .await
            .map_err(|_| BusError(format!("no answer within {} ms", wait.as_millis())))?
            .map_err(|err| BusError(err.to_string()))?;
        info!(node, "joined the bus");
        Ok(Arc::new(Self {
            client,
            node: node.to_owned(),
            attached: DashMap::new(),
            relays: DashMap::new(),
            heard: DashMap::new(),
            beat_sent: std::sync::Mutex::new(Instant::now()),
        }))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node is connected to NATS now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether `node` has been heard from lately.
    pub fn alive(&self, node: &str) -> bool {
        self.heard.get(node).is_some_and(|at| at.elapsed() < SILENT_AFTER)
    }

    /// The other nodes heard from lately.
    fn alive_nodes(&self) -> Vec<String> {
        self.heard
            .iter()
            .filter(|entry| *entry.key() != self.node && entry.value().elapsed() < SILENT_AFTER)
            .map(|entry| entry.key().clone())
            .collect()
    }

    /// Starts answering: other nodes' requests and traffic for `hub`'s sessions, this
    /// node's heartbeat, and the watch on the others'. Everything stops at shutdown.
    pub async fn serve(self: &Arc<Self>, hub: Arc<Hub>) -> Result<(), BusError> {
        let failed = |err: async_nats::SubscribeError| BusError(err.to_string());
        let mut traffic = self.client.subscribe(wire::inbox(&self.node)).await.map_err(failed)?;
        let mut requests = self.client.subscribe(wire::requests(&self.node)).await.map_err(failed)?;
        let mut heartbeats = self.client.subscribe(wire::HEARTBEAT).await.map_err(failed)?;
        let shutdown = hub.shutdown_token();

        let bus = Arc::clone(self);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    message = traffic.next() => {
                        let Some(message) = message else { break };
                        match Traffic::decode(message.headers.as_ref(), message.payload) {
                            Some(traffic) => bus.on_traffic(traffic),
                            None => debug!("dropped a malformed message from the bus"),
                        }
                    }
                }
            }
        });

        let bus = Arc::clone(self);
        let stop = shutdown.clone();
        let answering = Arc::clone(&hub);
        tokio::spawn(async move {
            let hub = answering;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    message = requests.next() => {
                        let Some(message) = message else { break };
                        let Some(reply) = message.reply.clone() else { continue };
                        let (bus, hub) = (Arc::clone(&bus), Arc::clone(&hub));
                        // Each request waits on its session's actor: one slow session
                        // must not hold up the others.
                        tokio::spawn(async move {
                            let answer = match serde_json::from_slice::<Call>(&message.payload) {
                                Ok(call) => bus.answer(&hub, call).await,
                                Err(err) => {
                                    warn!(error = %err, "a request on the bus does not decode");
                                    wire::Answer::NotHere
                                }
                            };
                            let body = serde_json::to_vec(&answer).unwrap_or_default();
                            let _ = bus.client.publish(reply, body.into()).await;
                        });
                    }
                }
            }
        });

        let bus = Arc::clone(self);
        tokio::spawn(async move {
            let mut last_connected = Instant::now();
            let mut alive: Vec<String> = Vec::new();
            let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = beat.tick() => {
                        *bus.beat_sent.lock().unwrap_or_else(|poison| poison.into_inner()) = Instant::now();
                        let _ = bus.client.publish(wire::HEARTBEAT, Bytes::from(bus.node.clone())).await;
                        bus.drop_silent();
                        // Cut off from the others, this node lets its lease run out, so
                        // that its sessions move to a node people can reach.
                        if bus.connected() {
                            last_connected = Instant::now();
                        }
                        hub.store().renew(last_connected.elapsed() < SILENT_AFTER);
                        // A node gone silent may have died with sessions whose time
                        // comes: look for them now rather than at the next round.
                        let now_alive = bus.alive_nodes();
                        if alive.iter().any(|node| !now_alive.contains(node)) {
                            let hub = Arc::clone(&hub);
                            tokio::spawn(async move { hub.wake_due().await });
                        }
                        alive = now_alive;
                    }
                    message = heartbeats.next() => {
                        let Some(message) = message else { break };
                        let Ok(node) = std::str::from_utf8(&message.payload) else { continue };
                        if node == bus.node {
                            let sent = *bus.beat_sent.lock().unwrap_or_else(|poison| poison.into_inner());
                            metrics::gauge!(crate::metrics::BUS_LAG).set(sent.elapsed().as_secs_f64());
                        }
                        bus.heard.insert(node.to_owned(), Instant::now());
                    }
                }
            }
        });
        Ok(())
    }

    /// Sends `traffic` to `node`. Returns whether NATS took it; it may still be lost.
    async fn send(&self, node: &str, traffic: Traffic) -> bool {
        let (headers, payload) = traffic.encode();
        self.client.publish_with_headers(wire::inbox(node), headers, payload).await.is_ok()
    }

    /// Asks `node` to do `call`. `None` when it does not answer: it is gone, or the bus
    /// is down.
    async fn ask(&self, node: &str, call: &Call) -> Option<wire::Answer> {
        let body = serde_json::to_vec(call).ok()?;
        let started = std::time::Instant::now();
        let answer = self.client.request(wire::requests(node), body.into()).await;
        metrics::histogram!(crate::metrics::BUS_REQUEST).record(started.elapsed().as_secs_f64());
        match answer {
            Ok(reply) => serde_json::from_slice(&reply.payload).ok(),
            Err(err) => {
                debug!(node, error = %err, "no answer on the bus");
                None
            }
        }
    }

    fn on_traffic(&self, traffic: Traffic) {
        match traffic {
            Traffic::Down { conn, seq, frames } => self.on_down(conn, seq, frames),
            Traffic::Close { conn, code, reason } => {
                if let Some((_, attachment)) = self.attached.remove(&conn) {
                    attachment.outbox.close(code, reason);
                }
            }
            Traffic::Up { edge, conn, seq, frame } => self.on_up(&edge, conn, seq, frame),
            Traffic::Gone { edge, conn } => {
                if let Some((_, relay)) = self.relays.remove(&(edge, conn)) {
                    relay.gone();
                }
            }
        }
    }

    /// Ends whatever waits on a node that has gone silent.
    fn drop_silent(&self) {
        let silent = |node: &str, since: Instant| {
            let last = self.heard.get(node).map_or(since, |at| (*at).max(since));
            last.elapsed() >= SILENT_AFTER
        };
        self.attached.retain(|_, attachment| {
            let keep = !silent(&attachment.owner, attachment.since);
            if !keep {
                metrics::counter!(crate::metrics::BUS_SILENT_CLOSES).increment(1);
                attachment.outbox.close(caucus_protocol::close::GOING_AWAY, LOST_OWNER);
            }
            keep
        });
        self.relays.retain(|(edge, _), relay| {
            let keep = !silent(edge, relay.since());
            if !keep {
                relay.gone();
            }
            keep
        });
        self.heard.retain(|_, at| at.elapsed() < 20 * SILENT_AFTER);
    }
}

/// Why an edge closes a connection whose session's node it lost.
const LOST_OWNER: &str = "lost contact with the node running this session; reconnect to resume";
