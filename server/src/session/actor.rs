//! The session actor: one tokio task per live session that owns its [`Session`], its
//! timers and the connections of the people in it.
//!
//! Everything that changes a session arrives here as a [`Request`] and is handled in
//! order, one at a time, which is what makes reconvene atomic. For each command the
//! actor decides, stores the resulting events, applies them, and only then fans them
//! out and acknowledges. Each event is serialized once and every reader's connection
//! gets a cheap clone of the same bytes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use caucus_protocol::api::Minutes;
use caucus_protocol::server::CaucusView;
use caucus_protocol::{
    Ack, Caucus, ClientFrame, EncodedEvent, ErrorCode, ErrorFrame, EventBody, MemberId, Role, Room,
    RoomEvent, ServerMessage, SessionId, close,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use super::listing::Listing;
use super::state::{Decision, Draft, JoinAs, Refusal, Session};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::outbox::{ConnectionId, Outbox};
use crate::store::{Store, StoreError};

/// How many requests may wait for a session actor before senders wait too.
const REQUEST_QUEUE: usize = 1024;
/// How long presence changes are gathered before they are announced together. Without
/// it, a thousand people connecting would cost a million presence frames.
const PRESENCE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A cheap, cloneable way to reach a session's actor.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    id: SessionId,
    /// Sent by connections and the hub; received only by the actor. The channel closes
    /// when the actor stops: at shutdown, or once it has taken itself out of the
    /// directory, when no handle but the directory's was left.
    requests: mpsc::Sender<Request>,
}

/// Why a connection could not enter a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("no such session for this token")]
    NoSuchSession,
    #[error("a facilitator removed you from this session")]
    Removed,
    #[error("you have too many connections open; close one and retry")]
    TooManyConnections,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("this session cannot be opened here just now; reconnect shortly")]
    NotHeld,
    /// Refused by the session running on another node, with its close code.
    #[error("{reason}")]
    Relayed { code: u16, reason: String },
}

impl ConnectError {
    /// The WebSocket close code for this refusal.
    pub fn close_code(&self) -> u16 {
        match self {
            ConnectError::NoSuchSession => close::NO_SUCH_SESSION,
            ConnectError::Removed => close::REMOVED,
            ConnectError::TooManyConnections => close::TOO_MANY_CONNECTIONS,
            ConnectError::ShuttingDown => close::GOING_AWAY,
            ConnectError::NotHeld => close::TRY_AGAIN_LATER,
            ConnectError::Relayed { code, .. } => *code,
        }
    }
}

/// A request to a session actor.
#[derive(Debug)]
enum Request {
    Join {
        member: MemberId,
        name: String,
        join_as: JoinAs,
        accepted_rules: Option<String>,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Connect {
        member: MemberId,
        resume: BTreeMap<String, u64>,
        outbox: Outbox,
        reply: oneshot::Sender<Result<(), ConnectError>>,
    },
    Command {
        member: MemberId,
        connection: ConnectionId,
        frame: ClientFrame,
    },
    Disconnect {
        member: MemberId,
        connection: ConnectionId,
    },
    Erase {
        by: MemberId,
        member: MemberId,
        reply: oneshot::Sender<Result<(), String>>,
    },
    RoleOf {
        member: MemberId,
        reply: oneshot::Sender<Option<Role>>,
    },
    Rounds {
        reply: oneshot::Sender<Vec<caucus_protocol::api::MinutesRound>>,
    },
    Minutes {
        member: MemberId,
        reply: oneshot::Sender<Result<Option<Minutes>, StoreError>>,
    },
}

/// Why a person could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Refused by the session running on another node.
    #[error("{1}")]
    RefusedThere(ErrorCode, String),
    #[error("cannot store the join just now; retry")]
    Unavailable,
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl SessionHandle {
    /// Starts the actor for `session` on `tracker` and returns its handle. The caller
    /// puts the handle in `directory`, from which the actor takes it out when it stops
    /// for being idle.
    pub fn spawn(
        session: Session,
        store: Arc<dyn Store>,
        clock: Clock,
        settings: ActorSettings,
        directory: Arc<Directory>,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Self {
        let (requests, inbox) = mpsc::channel(REQUEST_QUEUE);
        let id = session.id().clone();
        let listing = Listing::of(&session);
        let actor = SessionActor {
            session,
            store,
            clock,
            settings,
            connections: HashMap::new(),
            inbox,
            directory,
            listing,
            idle_since: tokio::time::Instant::now(),
            purge_retry_at: 0,
            fenced: false,
            deferred: None,
            presence: BTreeMap::new(),
            presence_due: None,
            announced_online: HashSet::new(),
            reported_phase: None,
            recent_acks: HashMap::new(),
        };
        tracker.spawn(actor.run(shutdown));
        Self { id, requests }
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Admits a new person with `role`, who accepted `accepted_rules` (a member must
    /// accept the session's ground rules, if it has any).
    pub async fn join(
        &self,
        member: MemberId,
        name: String,
        join_as: JoinAs,
        accepted_rules: Option<String>,
    ) -> Result<(), JoinError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Join { member, name, join_as, accepted_rules, reply })
            .await
            .map_err(|()| JoinError::ShuttingDown)?;
        answer.await.unwrap_or(Err(JoinError::ShuttingDown))
    }

    /// Enters a connection into the session. On success the welcome and the replay are
    /// already in the connection's outbox.
    pub async fn connect(
        &self,
        member: MemberId,
        resume: BTreeMap<String, u64>,
        outbox: Outbox,
    ) -> Result<(), ConnectError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Connect { member, resume, outbox, reply })
            .await
            .map_err(|()| ConnectError::ShuttingDown)?;
        answer.await.unwrap_or(Err(ConnectError::ShuttingDown))
    }

    /// Passes a command on. Its reply arrives in the connection's outbox. Waits when the
    /// actor is busy, which slows a flooding connection down rather than buffering it.
    pub async fn command(
        &self,
        member: MemberId,
        connection: ConnectionId,
        frame: ClientFrame,
    ) -> Result<(), ()> {
        self.send(Request::Command { member, connection, frame }).await
    }

    /// Tells the actor a connection is gone.
    pub async fn disconnect(&self, member: MemberId, connection: ConnectionId) {
        let _ = self.send(Request::Disconnect { member, connection }).await;
    }

    /// The minutes, if `member` may export them (a facilitator or the secretary), or
    /// why the store could not give the older plenary events just now.
    pub async fn minutes(&self, member: MemberId) -> Result<Option<Minutes>, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.send(Request::Minutes { member, reply }).await.is_err() {
            return Ok(None);
        }
        answer.await.unwrap_or(Ok(None))
    }

    /// Each round's topic and what each caucus carried, attributed to the caucus only:
    /// what a community's archive and "From last time" show.
    pub async fn rounds(&self) -> Option<Vec<caucus_protocol::api::MinutesRound>> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Rounds { reply }).await.ok()?;
        answer.await.ok()
    }

    /// Erases `member`'s data as facilitator `by` would with `erase_member`, and says
    /// whether it was done: a community erases a person from every session it held.
    pub async fn erase(&self, by: MemberId, member: MemberId) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Erase { by, member, reply })
            .await
            .map_err(|()| "the session has stopped".to_owned())?;
        answer.await.map_err(|_| "the session has stopped".to_owned())?
    }

    /// `member`'s role in the session, if they are in it and not removed.
    pub async fn role_of(&self, member: MemberId) -> Option<Role> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::RoleOf { member, reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    async fn send(&self, request: Request) -> Result<(), ()> {
        self.requests.send(request).await.map_err(|_| ())
    }
}

/// Limits the actor enforces.
#[derive(Debug, Clone, Copy)]
pub struct ActorSettings {
    /// The store's claim the actor runs under, given back when it stops.
    pub claim: u64,
    /// Open connections per person.
    pub connections_per_member: usize,
    /// Events replayed per room without a usable cursor.
    pub replay_per_room: u64,
    /// Bytes of events replayed per room at most.
    pub replay_bytes_per_room: usize,
    /// Bytes one connection's outbound queue holds at most.
    pub outbound_bytes: usize,
    /// Bytes of events in one history page at most.
    pub history_bytes: usize,
    /// How long after the end the private rooms are purged, in milliseconds.
    pub retention_ms: u64,
    /// The most commands one batch takes. A batch's frames reach a busy sender all at
    /// once (its events and its acks), so this stays well under the outbound queue.
    pub max_batch: usize,
    /// How long the session stays loaded with nobody connected and nothing due.
    pub idle_after: std::time::Duration,
    /// How long someone whose last connection dropped has to come back before the
    /// others are told they went offline. A reconnect within it (a network blip, a slow
    /// reader told to resume, a whole session reconnecting at once) costs nobody else
    /// a frame.
    pub offline_grace: std::time::Duration,
}

struct SessionActor {
    session: Session,
    store: Arc<dyn Store>,
    clock: Clock,
    settings: ActorSettings,
    /// The open connections of each person who is online.
    connections: HashMap<MemberId, Vec<Outbox>>,
    /// Requests from connections and the hub.
    inbox: mpsc::Receiver<Request>,
    /// Where the session is listed, and where its handle is while it runs.
    directory: Arc<Directory>,
    /// The session's listing as last stored.
    listing: Listing,
    /// When the actor last had something to do.
    idle_since: tokio::time::Instant,
    /// After a failed purge, when to try again, in Unix milliseconds.
    purge_retry_at: u64,
    /// The store refused a write because another node claimed the session: this actor
    /// must stop and its people reconnect to the new owner.
    fenced: bool,
    /// A request taken from the inbox while gathering a batch, to handle next.
    deferred: Option<Request>,
    /// Presence changes not yet announced: each person's latest state, and when it may
    /// be announced.
    presence: BTreeMap<MemberId, (bool, tokio::time::Instant)>,
    /// When the next of them is due.
    presence_due: Option<tokio::time::Instant>,
    /// Who the session was last told is online: a change back to what everyone already
    /// believes is not announced at all.
    announced_online: HashSet<MemberId>,
    /// The phase this session counts under in the `caucus_sessions` gauge.
    reported_phase: Option<caucus_protocol::Phase>,
    /// Each person's latest acknowledged commands, so that one sent again with the same
    /// `client_id` (a client resending after a reconnect) is answered with the same ack
    /// and not applied twice. `say` is recognised from the stored events as well, even
    /// across a restart; the others, while this actor runs.
    recent_acks: HashMap<MemberId, VecDeque<Ack>>,
}

/// Acknowledged commands remembered per person.
const RECENT_ACKS: usize = 16;

fn unavailable(client_id: Option<caucus_protocol::ClientId>) -> ServerMessage {
    ServerMessage::Error(ErrorFrame {
        code: ErrorCode::Unavailable,
        message: "the server cannot store this just now; nothing was saved, so retry".into(),
        client_id,
    })
}

/// What a batch of commands produced, waiting for one store append.
#[derive(Default)]
struct Batch {
    /// The events, in order, as they are stored.
    events: Vec<EncodedEvent>,
    /// Whether one of them may change the session's listing.
    listing_may_change: bool,
    /// For each event: its frame, the connections that may read it, and what else it
    /// means.
    deliveries: Vec<(Utf8Bytes, Vec<Outbox>, Option<Effect>)>,
    /// Each command's reply, in order.
    replies: Vec<(MemberId, ConnectionId, Reply)>,
}

/// A reply waiting for its batch.
enum Reply {
    /// Sent as it is, whatever the store does: refusals and repeats.
    Ready(ServerMessage),
    /// Sent once the batch is stored; `unavailable` if it is not.
    Committed(Ack),
}

/// What an event means beyond its delivery.
enum Effect {
    Seat(MemberId, ServerMessage),
    Close(MemberId, u16, &'static str),
}

/// An effect as read from an event before `evolve` takes the event; the seat's view
/// is filled in from the state the event leaves.
enum Cause {
    Seated(MemberId, Option<Caucus>),
    Close(MemberId, u16, &'static str),
}

/// Serializes a server message once, for any number of connections.
pub(crate) fn encode(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("server messages always serialize"))
}

impl SessionActor {
    #[instrument(name = "session", skip_all, fields(session = %self.session.id()))]
    async fn run(mut self, shutdown: CancellationToken) {
        debug!("session actor started");
        loop {
            self.report_phase(Some(self.session.phase()));
            if let Some(request) = self.deferred.take() {
                self.handle(request).await;
                continue;
            }
            let deadline = [self.session.next_deadline(), self.purge_due_at()].into_iter().flatten().min();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(self.clock.instant_at(at)).await,
                    None => std::future::pending().await,
                }
            };
            let presence_due = self.presence_due;
            let retire_at = self.retire_at();
            tokio::select! {
                request = self.inbox.recv() => match request {
                    Some(request) => {
                        self.handle(request).await;
                        self.idle_since = tokio::time::Instant::now();
                    }
                    None => break,
                },
                () = timer => {
                    self.tick().await;
                    self.purge_if_due().await;
                    self.idle_since = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(retire_at.unwrap_or_else(tokio::time::Instant::now)), if retire_at.is_some() => {
                    if self.retire() {
                        info!("session unloaded: nobody is in it");
                        break;
                    }
                    self.idle_since = tokio::time::Instant::now();
                }
                () = tokio::time::sleep_until(presence_due.unwrap_or_else(tokio::time::Instant::now)), if presence_due.is_some() => {
                    self.announce_presence();
                }
                () = shutdown.cancelled() => break,
            }
            if self.fenced {
                self.step_down();
                break;
            }
        }
        self.report_phase(None);
        if !self.fenced
            && let Err(err) = self.store.release(self.session.id(), self.settings.claim).await
        {
            warn!(error = %err, "could not release the session; another node may take it once this one's lease runs out");
        }
        debug!("session actor stopped");
    }

    /// Notes a refused write. A fenced one means another node owns the session now.
    fn refused(&mut self, err: &StoreError) {
        self.fenced |= err.is_fenced();
    }

    /// Stops serving a session that another node has claimed: nothing more is read or
    /// written here, and everyone connected is told to reconnect, which brings them to
    /// the new owner with their cursors.
    fn step_down(&mut self) {
        warn!("another node owns this session now; closing its connections here");
        self.directory.retire(self.session.id(), || true);
        for outbox in self.connections.drain().flat_map(|(_, outboxes)| outboxes) {
            outbox.close(close::GOING_AWAY, "this session moved to another server; reconnect shortly");
        }
    }

    /// When the actor may stop, if nothing happens before: once nobody is connected,
    /// nothing waits to be announced and no round timer runs, after `idle_after` (at
    /// once for an ended session). A purge due days later does not keep it loaded: the
    /// hub wakes it then.
    fn retire_at(&self) -> Option<tokio::time::Instant> {
        let busy = !self.connections.is_empty()
            || self.deferred.is_some()
            || self.presence_due.is_some()
            || self.session.next_deadline().is_some()
            || self.purge_due_at().is_some_and(|due| due <= self.clock.now_ms());
        if busy {
            return None;
        }
        let wait = if self.listing.ended() { std::time::Duration::ZERO } else { self.settings.idle_after };
        Some(self.idle_since + wait)
    }

    /// Takes the actor's handle out of the directory if no one else holds it and no
    /// request waits. Then no request can reach this actor any more, and the hub starts
    /// a new one from the store when the session is next used.
    fn retire(&mut self) -> bool {
        let inbox = &self.inbox;
        // Checked under the directory's lock: when the directory's is the only handle
        // of this actor, nothing can be sent meanwhile.
        self.directory.retire(self.session.id(), || inbox.sender_strong_count() == 1 && inbox.is_empty())
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Join { member, name, join_as, accepted_rules, reply } => {
                let result =
                    match self.session.decide_join(&member, &name, join_as, accepted_rules.as_deref()) {
                        Ok(draft) => {
                            self.commit(vec![draft]).await.map(|_| ()).map_err(|()| JoinError::Unavailable)
                        }
                        Err(refusal) => Err(refusal.into()),
                    };
                let _ = reply.send(result);
            }
            Request::Connect { member, resume, outbox, reply } => {
                let _ = reply.send(self.connect(member, &resume, outbox));
            }
            Request::Command { member, connection, frame } => self.commands(member, connection, frame).await,
            Request::Disconnect { member, connection } => self.disconnect(&member, connection),
            Request::Minutes { member, reply } => {
                let minutes = if self.session.may_export_minutes(&member) {
                    self.whole_room(Room::Plenary).await.map(|plenary| Some(self.session.minutes(&plenary)))
                } else {
                    Ok(None)
                };
                let _ = reply.send(minutes);
            }
            Request::Erase { by, member, reply } => {
                let now = self.clock.now_ms();
                let outcome = match self.session.decide(
                    &by,
                    &caucus_protocol::Command::EraseMember { member },
                    None,
                    now,
                ) {
                    Ok(Decision::Erase { member: erased, drafts }) => self
                        .erase(&erased, drafts, now)
                        .await
                        .map_err(|()| "the server cannot store this just now; retry".to_owned()),
                    Ok(_) => Ok(()),
                    Err(refusal) => Err(refusal.to_string()),
                };
                let _ = reply.send(outcome);
            }
            Request::Rounds { reply } => match self.whole_room(Room::Plenary).await {
                Ok(plenary) => {
                    let _ = reply.send(self.session.minutes(&plenary).rounds);
                }
                // Dropping the reply tells the caller there is nothing to show now.
                Err(err) => warn!(error = %err, "could not read the plenary for the archive"),
            },
            Request::RoleOf { member, reply } => {
                let role = self.session.role_of(&member).filter(|_| !self.session.is_removed(&member));
                let _ = reply.send(role);
            }
        }
    }

    fn connect(
        &mut self,
        member: MemberId,
        resume: &BTreeMap<String, u64>,
        outbox: Outbox,
    ) -> Result<(), ConnectError> {
        // Past this node's lease another node may run the session, and this state may be
        // stale: who may read what must not be answered from it.
        if !self.store.ready() {
            return Err(ConnectError::NotHeld);
        }
        if self.session.role_of(&member).is_none() {
            return Err(if self.session.is_removed(&member) {
                ConnectError::Removed
            } else {
                ConnectError::NoSuchSession
            });
        }
        let open = self.connections.get(&member).map_or(0, Vec::len);
        if open >= self.settings.connections_per_member {
            return Err(ConnectError::TooManyConnections);
        }
        // Who is online as everyone else was last told, so that the presence frames
        // that follow change the same picture for everyone; and the person themself.
        let mut online: Vec<MemberId> = self.announced_online.iter().cloned().collect();
        if !self.announced_online.contains(&member) {
            online.push(member.clone());
        }
        online.sort();
        let (welcome, replay) = self
            .session
            .welcome(&member, resume, online, self.settings.replay_per_room)
            .ok_or(ConnectError::NoSuchSession)?;
        // The replay gets at most half of what the outbound queue has left beside the
        // welcome (which may be large in a big session), shared between the rooms.
        let message = ServerMessage::Welcome(Box::new(welcome));
        let mut frame = encode(&message);
        let ServerMessage::Welcome(mut welcome) = message else { unreachable!("built above") };
        let spare = self.settings.outbound_bytes.saturating_sub(frame.len()) / 2;
        let per_room = self.settings.replay_bytes_per_room.min(spare / welcome.rooms.len().max(1));
        let cursors = welcome.rooms.clone();
        let replay = super::budget::fit_replay(&mut welcome.rooms, &replay, per_room);
        if welcome.rooms != cursors {
            frame = encode(&ServerMessage::Welcome(welcome));
        }
        outbox.deliver(&frame);
        for frame in &replay {
            outbox.deliver(frame);
        }
        info!(member = %member, connection = outbox.id(), "connected");
        self.connections.entry(member.clone()).or_default().push(outbox);
        if open == 0 {
            self.note_presence(&member, true, PRESENCE_EVERY);
        }
        Ok(())
    }

    fn disconnect(&mut self, member: &MemberId, connection: ConnectionId) {
        let Some(outboxes) = self.connections.get_mut(member) else {
            return;
        };
        outboxes.retain(|outbox| outbox.id() != connection);
        if outboxes.is_empty() {
            self.connections.remove(member);
            self.note_presence(member, false, self.settings.offline_grace);
        }
        debug!(member = %member, connection, "disconnected");
    }

    /// Handles a command and every command already waiting behind it, as one batch:
    /// each is decided against the state the ones before it left, their events are
    /// stored in one append, and only then delivered and acknowledged, in order. One
    /// commit for many commands is what lets a busy room go faster than the disk syncs.
    async fn commands(&mut self, member: MemberId, connection: ConnectionId, frame: ClientFrame) {
        let mut batch = Batch::default();
        let mut next = Some((member, connection, frame));
        while let Some((member, connection, frame)) = next.take() {
            if let Some(unbatched) = self.stage_command(member, connection, frame, &mut batch) {
                // Typing, history and erasure act on committed state: settle the batch,
                // then handle this command on its own.
                self.flush(batch).await;
                batch = Batch::default();
                let (member, connection, frame) = unbatched;
                self.command(&member, connection, frame).await;
            }
            if batch.replies.len() >= self.settings.max_batch {
                break;
            }
            match self.inbox.try_recv() {
                Ok(Request::Command { member, connection, frame }) => {
                    next = Some((member, connection, frame))
                }
                Ok(other) => self.deferred = Some(other),
                Err(_) => {}
            }
        }
        self.flush(batch).await;
    }

    /// Decides one command and stages what it produces. Returns the command untouched
    /// if it cannot join a batch.
    fn stage_command(
        &mut self,
        member: MemberId,
        connection: ConnectionId,
        frame: ClientFrame,
        batch: &mut Batch,
    ) -> Option<(MemberId, ConnectionId, ClientFrame)> {
        if let Some(ack) = self.recent_ack(&member, frame.client_id.as_ref()) {
            batch.replies.push((member, connection, Reply::Ready(ServerMessage::Ack(ack))));
            return None;
        }
        let now = self.clock.now_ms();
        let decision = self.session.decide(&member, &frame.command, frame.client_id.as_ref(), now);
        let reply = match decision {
            Ok(Decision::Apply { drafts, receipt }) => {
                let first = self.stage(drafts, batch).filter(|_| receipt);
                let client_id = frame.client_id;
                Reply::Committed(Ack {
                    client_id,
                    room: first.map(|(room, _)| room),
                    seq: first.map(|(_, seq)| seq),
                })
            }
            Ok(Decision::Repeat { room, seq }) => Reply::Ready(ServerMessage::Ack(Ack {
                client_id: frame.client_id,
                room: Some(room),
                seq: Some(seq),
            })),
            Ok(Decision::Typing { .. } | Decision::History { .. } | Decision::Erase { .. }) => {
                return Some((member, connection, frame));
            }
            Err(refusal) => {
                debug!(member = %member, command = frame.command.kind(), code = ?refusal.code(), "refused");
                metrics::counter!(crate::metrics::REFUSALS, "code" => crate::metrics::code_label(refusal.code()))
                    .increment(1);
                Reply::Ready(ServerMessage::Error(ErrorFrame {
                    code: refusal.code(),
                    message: refusal.to_string(),
                    client_id: frame.client_id,
                }))
            }
        };
        batch.replies.push((member, connection, reply));
        None
    }

    /// Numbers drafts and applies them to the state at once, noting for each event who
    /// may read it *now* and what else it means: delivery waits for the commit, but
    /// the audience is the one at the moment the event happened.
    fn stage(&mut self, drafts: Vec<Draft>, batch: &mut Batch) -> Option<(Room, u64)> {
        let events = self.session.stamp(drafts, self.clock.now_ms());
        let first = events.first().map(|event| (event.room, event.seq));
        for event in events {
            // One serialization: the stored body, spliced into the frame everyone gets.
            let encoded = EncodedEvent::of(&event);
            batch.listing_may_change |= Listing::may_change(&event.body);
            let frame = Utf8Bytes::from(encoded.frame());
            let room = event.room;
            let cause = self.cause_of(&event.body);
            self.session.evolve(event);
            let recipients = self.recipients(|session, member| session.can_read(member, room));
            let effect = cause.map(|cause| self.effect_of(cause));
            batch.deliveries.push((frame, recipients, effect));
            batch.events.push(encoded);
        }
        first
    }

    /// Stores the batch's events in one append. Then delivers them and sends the
    /// replies, in order; or, if the store refused, rebuilds the state from the store
    /// and answers every staged command with `unavailable`.
    async fn flush(&mut self, batch: Batch) -> bool {
        let Batch { events, listing_may_change, deliveries, replies } = batch;
        let stored = events.is_empty() || self.append(events, listing_may_change).await;
        if stored {
            for (frame, recipients, effect) in deliveries {
                self.deliver_to(&frame, &recipients);
                if let Some(effect) = effect {
                    self.apply_effect(effect);
                }
            }
        } else if !self.fenced {
            self.rebuild().await;
        }
        for (member, connection, reply) in replies {
            let message = match reply {
                Reply::Ready(message) => message,
                Reply::Committed(ack) if stored => {
                    self.remember_ack(&member, &ack);
                    ServerMessage::Ack(ack)
                }
                Reply::Committed(ack) => unavailable(ack.client_id),
            };
            self.send_to_connection(&member, connection, &message);
        }
        stored
    }

    /// The ack already given to `member` for `client_id`, if it is a recent one.
    fn recent_ack(&self, member: &MemberId, client_id: Option<&caucus_protocol::ClientId>) -> Option<Ack> {
        let client_id = client_id?;
        self.recent_acks.get(member)?.iter().find(|ack| ack.client_id.as_ref() == Some(client_id)).cloned()
    }

    fn remember_ack(&mut self, member: &MemberId, ack: &Ack) {
        if ack.client_id.is_none() {
            return;
        }
        let acks = self.recent_acks.entry(member.clone()).or_default();
        if acks.len() >= RECENT_ACKS {
            acks.pop_front();
        }
        acks.push_back(ack.clone());
    }

    /// Appends events to the store, with the session's listing if they changed it,
    /// timing it. `false` if the store refused.
    async fn append(&mut self, events: Vec<EncodedEvent>, listing_may_change: bool) -> bool {
        let count = events.len();
        let listing =
            listing_may_change.then(|| Listing::of(&self.session)).filter(|listing| *listing != self.listing);
        let started = std::time::Instant::now();
        let appended = self.store.append(self.session.id(), events, listing.as_ref()).await;
        metrics::histogram!(crate::metrics::STORE_COMMIT).record(started.elapsed().as_secs_f64());
        match appended {
            Ok(()) => {
                if let Some(listing) = listing {
                    self.listed(listing);
                }
                true
            }
            Err(err) => {
                warn!(error = %err, events = count, "store refused events; rebuilding from what is stored");
                self.refused(&err);
                false
            }
        }
    }

    /// Notes the session's new listing, as stored, for the hub.
    fn listed(&mut self, listing: Listing) {
        self.directory.set_listing(self.session.id(), listing.clone());
        self.listing = listing;
    }

    /// Puts the state back to exactly what the store holds.
    async fn rebuild(&mut self) {
        match self.store.load_session(self.session.id()).await {
            Ok(Some(stored)) => {
                let mut session = Session::restore(self.session.setup());
                for event in stored.events {
                    session.evolve(event);
                }
                self.session = session;
                // What the store holds includes the listing it last took.
                let listing = Listing::of(&self.session);
                self.listed(listing);
            }
            Ok(None) => warn!("the store no longer has this session; keeping the state in memory"),
            Err(err) => warn!(error = %err, "could not reload the session after a refused write"),
        }
    }

    /// Moves this session in the `caucus_sessions` gauge to `phase` (`None`: out of
    /// it), whichever path changed the phase: a batch, a timer, a rebuild.
    fn report_phase(&mut self, phase: Option<caucus_protocol::Phase>) {
        if self.reported_phase == phase {
            return;
        }
        let gauge =
            |phase| metrics::gauge!(crate::metrics::SESSIONS, "phase" => crate::metrics::phase_label(phase));
        if let Some(before) = self.reported_phase {
            gauge(before).decrement(1.0);
        }
        if let Some(now) = phase {
            gauge(now).increment(1.0);
        }
        self.reported_phase = phase;
    }

    /// Handles one command on its own, against committed state.
    async fn command(&mut self, member: &MemberId, connection: ConnectionId, frame: ClientFrame) {
        let ClientFrame { client_id, command } = frame;
        let kind = command.kind();
        let now = self.clock.now_ms();
        let decision = self.session.decide(member, &command, client_id.as_ref(), now);
        let reply = match decision {
            Ok(Decision::Apply { drafts, receipt }) => {
                let first = self.commit(drafts).await;
                match first {
                    Ok(first) => ServerMessage::Ack(Ack {
                        client_id,
                        room: first.filter(|_| receipt).map(|(room, _)| room),
                        seq: first.filter(|_| receipt).map(|(_, seq)| seq),
                    }),
                    Err(()) => unavailable(client_id),
                }
            }
            Ok(Decision::Repeat { room, seq }) => {
                ServerMessage::Ack(Ack { client_id, room: Some(room), seq: Some(seq) })
            }
            Ok(Decision::Typing { room }) => {
                self.send_typing(member, room);
                ServerMessage::Ack(Ack { client_id, room: None, seq: None })
            }
            Ok(Decision::History { .. }) if !self.store.ready() => unavailable(client_id),
            Ok(Decision::History { room, start, end, more }) => {
                match self.history_page(room, start, end).await {
                    Ok(events) => {
                        let (events, cut) = super::budget::fit_history(events, self.settings.history_bytes);
                        let more = more || cut;
                        self.send_to_connection(
                            member,
                            connection,
                            &ServerMessage::History { room, events, more },
                        );
                        ServerMessage::Ack(Ack { client_id, room: None, seq: None })
                    }
                    Err(err) => {
                        warn!(error = %err, "could not read a history page from the store");
                        unavailable(client_id)
                    }
                }
            }
            Ok(Decision::Erase { member: erased, drafts }) => match self.erase(&erased, drafts, now).await {
                Ok(()) => ServerMessage::Ack(Ack { client_id, room: None, seq: None }),
                Err(()) => unavailable(client_id),
            },
            Err(refusal) => {
                debug!(member = %member, command = kind, code = ?refusal.code(), "refused");
                metrics::counter!(crate::metrics::REFUSALS, "code" => crate::metrics::code_label(refusal.code()))
                    .increment(1);
                ServerMessage::Error(ErrorFrame {
                    code: refusal.code(),
                    message: refusal.to_string(),
                    client_id,
                })
            }
        };
        self.send_to_connection(member, connection, &reply);
    }

    /// Erases a person's data: rewrites their events in the store, then in memory, then
    /// records the erasure (without the content) and stores their removal. Each step
    /// can be repeated, so a failure part way is mended by erasing again.
    async fn erase(&mut self, member: &MemberId, drafts: Vec<Draft>, now: u64) -> Result<(), ()> {
        let rewrites = if self.session.holds_everything() {
            Session::erasure_rewrites(member, self.session.held_events())
        } else {
            // Older events are only in the store: read the session's rows once.
            let stored = self.store.load_session(self.session.id()).await;
            match stored {
                Ok(Some(stored)) => Session::erasure_rewrites(member, &stored.events),
                Ok(None) => Session::erasure_rewrites(member, self.session.held_events()),
                Err(err) => {
                    warn!(error = %err, "could not read the session's events to erase a person");
                    return Err(());
                }
            }
        };
        if let Err(err) = self.store.rewrite(self.session.id(), &rewrites).await {
            self.refused(&err);
            // The rewrite may have committed with its scrub failing: memory still holds
            // the text, and sending the erasure again finishes it.
            warn!(error = %err, "could not finish an erasure; it can be sent again");
            return Err(());
        }
        info!(member = %member, events = rewrites.len(), "erased a person's data");
        self.session.apply_rewrites(rewrites);
        if let Err(err) = self.store.record_erasure(member, self.session.id(), now).await {
            self.refused(&err);
            warn!(error = %err, "erased, but could not record the erasure; erasing again completes it");
            return Err(());
        }
        self.commit(drafts).await.map(|_| ())
    }

    /// History events `start..end` of `room`: from memory when it holds them, otherwise
    /// one page from the store. Awaited in the actor's loop, so that nothing (a move out
    /// of a caucus, say) happens between the privacy check and the reply.
    async fn history_page(&self, room: Room, start: u64, end: u64) -> Result<Vec<RoomEvent>, StoreError> {
        if let Some(events) = self.session.held(room, start, end) {
            return Ok(events);
        }
        metrics::counter!(crate::metrics::HISTORY_READS).increment(1);
        self.store.room_events(self.session.id(), room, start..end).await
    }

    /// Every event of `room`: from memory when it holds them all, otherwise from the
    /// store.
    async fn whole_room(&self, room: Room) -> Result<Vec<RoomEvent>, StoreError> {
        let head = self.session.head(room);
        if let Some(events) = self.session.held(room, 1, head + 1) {
            return Ok(events);
        }
        self.store.room_events(self.session.id(), room, 1..head + 1).await
    }

    async fn tick(&mut self) {
        let drafts = self.session.decide_tick(self.clock.now_ms());
        if !drafts.is_empty() {
            // A failed store retries on the next loop, because the deadline stays due.
            let _ = self.commit(drafts).await;
        }
    }

    /// When the private rooms of an ended session are due to be purged.
    fn purge_due_at(&self) -> Option<u64> {
        let ended = self.session.ended_at()?;
        self.session
            .has_private_content()
            .then(|| (ended + self.settings.retention_ms).max(self.purge_retry_at))
    }

    /// Purges the caucus transcripts, points and seats once retention has run out:
    /// first from the store, then from memory.
    async fn purge_if_due(&mut self) {
        let now = self.clock.now_ms();
        if self.purge_due_at().is_none_or(|due| due > now) {
            return;
        }
        let rooms = Session::PRIVATE_ROOMS;
        match self.store.purge(self.session.id(), &rooms).await {
            Ok(()) => {
                self.session.purge_private_rooms();
                info!("purged the caucus transcripts and seats of an ended session");
                let listing = Listing::of(&self.session);
                // A stale wake-up time only wakes the session once for nothing.
                if self.store.set_listing(self.session.id(), &listing).await.is_ok() {
                    self.listed(listing);
                }
            }
            Err(err) => {
                self.refused(&err);
                warn!(error = %err, "could not purge an ended session; retrying in a minute");
                self.purge_retry_at = now + 60_000;
            }
        }
    }

    /// Stores the drafts as events, then delivers them. Returns the first event's room
    /// and number, or `Err` if the store refused and nothing changed.
    async fn commit(&mut self, drafts: Vec<Draft>) -> Result<Option<(Room, u64)>, ()> {
        let mut batch = Batch::default();
        let first = self.stage(drafts, &mut batch);
        if !self.flush(batch).await {
            return Err(());
        }
        Ok(first)
    }

    /// Sends `frame` to every open connection whose person may read `room` now.
    fn deliver(&mut self, room: Room, frame: &Utf8Bytes) {
        self.fan_out(frame, |session, member| session.can_read(member, room));
    }

    /// Sends `frame` to the connections of everyone `wants` picks.
    fn fan_out(&mut self, frame: &Utf8Bytes, wants: impl Fn(&Session, &MemberId) -> bool) {
        let recipients = self.recipients(wants);
        self.deliver_to(frame, &recipients);
    }

    /// The open connections of everyone `wants` picks, now. Cloning an outbox is a
    /// reference count, so a room of a thousand costs no allocation per person.
    fn recipients(&self, wants: impl Fn(&Session, &MemberId) -> bool) -> Vec<Outbox> {
        self.connections
            .iter()
            .filter(|(member, _)| wants(&self.session, member))
            .flat_map(|(_, outboxes)| outboxes.iter().cloned())
            .collect()
    }

    /// Sends `frame` to `recipients`. Connections that are gone or too slow are
    /// dropped; a person left with none goes offline.
    fn deliver_to(&mut self, frame: &Utf8Bytes, recipients: &[Outbox]) {
        let mut failed = Vec::new();
        for outbox in recipients {
            if !outbox.deliver(frame) {
                failed.push(outbox.id());
            }
        }
        metrics::counter!(crate::metrics::FRAMES_OUT).increment((recipients.len() - failed.len()) as u64);
        if failed.is_empty() {
            return;
        }
        let mut offline = Vec::new();
        self.connections.retain(|member, outboxes| {
            outboxes.retain(|outbox| !failed.contains(&outbox.id()));
            if outboxes.is_empty() {
                offline.push(member.clone());
            }
            !outboxes.is_empty()
        });
        // A connection closed for falling behind comes back to resume.
        for member in offline {
            self.note_presence(&member, false, self.settings.offline_grace);
        }
    }

    /// Whether an event means something for connections beyond delivering it, read
    /// from the state before the event is applied. Most events, messages among them,
    /// mean nothing more.
    fn cause_of(&self, body: &EventBody) -> Option<Cause> {
        match body {
            EventBody::Seated { member, caucus } => Some(Cause::Seated(member.clone(), *caucus)),
            EventBody::Removed { member } => Some(Cause::Close(
                member.clone(),
                close::REMOVED,
                "a facilitator removed you from this session",
            )),
            // Their readable rooms changed; a fresh hello gives them the right view.
            EventBody::RoleChanged { member, role, .. } if self.session.role_of(member) != Some(*role) => {
                Some(Cause::Close(
                    member.clone(),
                    close::ROLE_CHANGED,
                    "your role changed; reconnect to continue",
                ))
            }
            _ => None,
        }
    }

    /// The effect, from the state the event left: worked out when it happens and
    /// carried out once it is stored.
    fn effect_of(&self, cause: Cause) -> Effect {
        match cause {
            Cause::Seated(member, caucus) => {
                let view = caucus.map(|caucus| CaucusView {
                    caucus,
                    members: self.session.readers(caucus.room()).cloned().collect(),
                    points: self.session.points(caucus).to_vec(),
                });
                Effect::Seat(member, ServerMessage::Seat { caucus: view })
            }
            Cause::Close(member, code, reason) => Effect::Close(member, code, reason),
        }
    }

    fn apply_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Seat(member, message) => self.send_to_member(&member, &message),
            Effect::Close(member, code, reason) => self.close_member(&member, code, reason),
        }
    }

    fn close_member(&mut self, member: &MemberId, code: u16, reason: &'static str) {
        if let Some(outboxes) = self.connections.remove(member) {
            for outbox in outboxes {
                outbox.close(code, reason);
            }
            // Closed by the server (removed, erased): they are not about to come back.
            self.note_presence(member, false, PRESENCE_EVERY);
        }
    }

    /// Notes that `member` came online or went offline, to announce `after` from now
    /// unless it changes back first.
    fn note_presence(&mut self, member: &MemberId, online: bool, after: std::time::Duration) {
        let due = tokio::time::Instant::now() + after;
        self.presence.insert(member.clone(), (online, due));
        self.presence_due = Some(self.presence_due.map_or(due, |next| next.min(due)));
    }

    /// Tells everyone who came online and who went offline since the last time: every
    /// change due by the next round (so that arrivals go out together), and only those
    /// that differ from what was last announced.
    fn announce_presence(&mut self) {
        let horizon = tokio::time::Instant::now() + PRESENCE_EVERY;
        let (mut online, mut offline) = (Vec::new(), Vec::new());
        let announced = &mut self.announced_online;
        self.presence.retain(|member, &mut (state, due)| {
            if due > horizon {
                return true;
            }
            if state && announced.insert(member.clone()) {
                online.push(member.clone());
            } else if !state && announced.remove(member) {
                offline.push(member.clone());
            }
            false
        });
        self.presence_due = self.presence.values().map(|&(_, due)| due).min();
        if online.is_empty() && offline.is_empty() {
            return;
        }
        let frame = encode(&ServerMessage::Presence { online, offline });
        self.deliver(Room::Plenary, &frame);
    }

    fn send_typing(&mut self, typist: &MemberId, room: Room) {
        let frame = encode(&ServerMessage::Typing { room, member: typist.clone() });
        self.fan_out(&frame, |session, member| member != typist && session.can_read(member, room));
    }

    fn send_to_member(&mut self, member: &MemberId, message: &ServerMessage) {
        self.fan_out(&encode(message), |_, candidate| candidate == member);
    }

    fn send_to_connection(&mut self, member: &MemberId, connection: ConnectionId, message: &ServerMessage) {
        if let Some(outbox) = self
            .connections
            .get(member)
            .and_then(|outboxes| outboxes.iter().find(|outbox| outbox.id() == connection))
        {
            outbox.deliver(&encode(message));
        }
    }
}
