//! The session state machine: the rules of a session as plain data and functions,
//! with no I/O, no tokio and no clock of its own.
//!
//! Every change is a [`RoomEvent`]. A command goes through two steps:
//!
//! 1. [`Session::decide`] checks the command against the current state and returns the
//!    events it would produce, or a [`Refusal`]. It changes nothing.
//! 2. Once the actor has stored those events, [`Session::evolve`] applies each one.
//!
//! So a refused command, or one whose events could not be stored, leaves the session
//! exactly as it was, and the state is always the fold of its stored events.
//!
//! Who may read a room is computed here, from this table, and nowhere else.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caucus_protocol::api::{CarriedPoints, Minutes, MinutesEntry, MinutesKind, MinutesRound};
use caucus_protocol::server::{CaucusView, SeatView, SessionInfo};
use caucus_protocol::{
    Caucus, CaucusLabels, ClientId, Command, ErrorCode, EventBody, Member, MemberId, Phase, Point, Proposal,
    Role, Room, RoomCursor, RoomEvent, RoomName, SessionId, Settings, Welcome,
};

use super::log::Log;

/// A warning comes one minute before the end of a round, or at half time when the
/// round is shorter than two minutes.
const WARNING_BEFORE_MS: u64 = 60_000;
/// The longest round, or extension, the server accepts: one day.
const MAX_ROUND_SECS: u32 = 24 * 60 * 60;
/// The most events one `history` page returns.
const MAX_HISTORY_PAGE: u32 = 500;
/// What erased names and texts read.
pub const ERASED: &str = "(erased)";

/// Length limits on what people type, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextLimits {
    /// Messages, points and announcements.
    pub message_chars: usize,
    /// Display names and session titles.
    pub name_chars: usize,
    /// Topics and caucus labels.
    pub topic_chars: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        Self { message_chars: 4000, name_chars: 80, topic_chars: 300 }
    }
}

/// Caps on how much one session, and one person in it, can add. Everything below is
/// part of every later `welcome`, so without caps one person could make each welcome
/// as large as they like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionCaps {
    /// People in the session, facilitators included.
    pub members: usize,
    /// Topic proposals in the session.
    pub proposals: usize,
    /// Topic proposals by one person.
    pub proposals_per_person: usize,
    /// Points a caucus holds at once.
    pub points_per_caucus: usize,
    /// Points one person holds at once in their caucus (as their current author).
    pub points_per_person: usize,
}

impl Default for SessionCaps {
    fn default() -> Self {
        Self {
            members: 2000,
            proposals: 50,
            proposals_per_person: 5,
            points_per_caucus: 50,
            points_per_person: 10,
        }
    }
}

/// Why a command was refused. Each maps to one wire [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("there is no such room, or you are not in it")]
    NoSuchRoom,
    #[error("there is no such message in a caucus you are in")]
    NoSuchMessage,
    #[error("there is no such point in your caucus")]
    NoSuchPoint,
    #[error("there is no such person in this session")]
    NoSuchMember,
    #[error("there is no such topic proposal")]
    NoSuchProposal,
    #[error("only a facilitator can {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    WrongPhase(String),
    #[error("the caucus is closed until a facilitator opens the next round")]
    CaucusClosed,
    #[error("the plenary is quiet while the caucuses meet; only facilitators post here")]
    PlenaryQuiet,
    #[error("in this session a facilitator assigns caucuses; ask one to seat you")]
    SelfChoiceOff,
    #[error("the session has ended and is read-only")]
    SessionEnded,
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    LimitReached(String),
}

impl Refusal {
    /// The wire code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::NoSuchRoom => ErrorCode::NoSuchRoom,
            Refusal::NoSuchMessage => ErrorCode::NoSuchMessage,
            Refusal::NoSuchPoint => ErrorCode::NoSuchPoint,
            Refusal::NoSuchMember => ErrorCode::NoSuchMember,
            Refusal::NoSuchProposal => ErrorCode::NoSuchProposal,
            Refusal::Forbidden(_) => ErrorCode::Forbidden,
            Refusal::WrongPhase(_) => ErrorCode::WrongPhase,
            Refusal::CaucusClosed => ErrorCode::CaucusClosed,
            Refusal::PlenaryQuiet => ErrorCode::PlenaryQuiet,
            Refusal::SelfChoiceOff => ErrorCode::SelfChoiceOff,
            Refusal::SessionEnded => ErrorCode::SessionEnded,
            Refusal::Empty(_) => ErrorCode::Empty,
            Refusal::TooLong { .. } => ErrorCode::TooLong,
            Refusal::InvalidValue(_) => ErrorCode::InvalidValue,
            Refusal::LimitReached(_) => ErrorCode::LimitReached,
        }
    }
}

/// What someone joins a session as: their role, and whether they are its secretary,
/// who exports the minutes as facilitators do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinAs {
    pub role: Role,
    pub secretary: bool,
}

impl From<Role> for JoinAs {
    fn from(role: Role) -> Self {
        Self { role, secretary: false }
    }
}

/// An event before it is numbered: its room and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The room the event belongs to, which decides who receives it.
    pub room: Room,
    /// What happened.
    pub body: EventBody,
}

impl Draft {
    fn new(room: Room, body: EventBody) -> Self {
        Self { room, body }
    }
}

/// What [`Session::decide`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store these events, apply them, then acknowledge. With `receipt`, the ack names
    /// the first event's room and sequence number. No events means nothing to change,
    /// such as a repeated reconvene.
    Apply { drafts: Vec<Draft>, receipt: bool },
    /// A retried `say` that was already stored: acknowledge it again, store nothing.
    Repeat { room: Room, seq: u64 },
    /// Tell the room's other readers that the sender is typing. Nothing is stored.
    Typing { room: Room },
    /// Send the sender a page of history. Nothing is stored.
    History { room: Room, start: u64, end: u64, more: bool },
    /// Erase `member`'s data: rewrite the events [`Session::erasure_rewrites`] names,
    /// then store and apply `drafts` (their removal and the `erased` notice).
    Erase { member: MemberId, drafts: Vec<Draft> },
}

impl Decision {
    fn events(drafts: Vec<Draft>) -> Self {
        Decision::Apply { drafts, receipt: false }
    }

    fn nothing() -> Self {
        Self::events(Vec::new())
    }
}

/// A person in the session, as the server's own table records them.
#[derive(Debug, Clone)]
struct Person {
    member: Member,
    seat: Option<Seat>,
    removed: bool,
    /// Their data was erased: their events rewritten and the erasure recorded.
    erased: bool,
}

/// Where a person sits: their caucus and the last event of its room before they
/// joined it. They read that room's events after `since`, and nothing before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seat {
    caucus: Caucus,
    since: u64,
}

/// A point withdrawn this round: the place it had, and the withdrawal's seq in its
/// caucus room, which says who saw it go.
#[derive(Debug, Clone)]
struct Withdrawn {
    place: usize,
    point: Point,
    at: u64,
}

#[derive(Debug, Clone)]
struct ProposalState {
    proposal: Proposal,
    voters: BTreeSet<MemberId>,
}

#[derive(Debug, Clone, Copy)]
struct RoundTimer {
    opened_at: u64,
    deadline: u64,
    warned: bool,
    expired: bool,
}

impl RoundTimer {
    fn warn_at(&self) -> u64 {
        let length = self.deadline.saturating_sub(self.opened_at);
        if length >= 2 * WARNING_BEFORE_MS {
            self.deadline - WARNING_BEFORE_MS
        } else {
            self.opened_at + length / 2
        }
    }
}

/// A session: its settings, people, seats, topic, points, timer and room logs.
#[derive(Debug, Clone)]
pub struct Session {
    id: SessionId,
    title: String,
    labels: CaucusLabels,
    settings: Settings,
    ground_rules: Option<String>,
    limits: TextLimits,
    caps: SessionCaps,
    phase: Phase,
    topic: Option<String>,
    timer: Option<RoundTimer>,
    people: HashMap<MemberId, Person>,
    /// Member ids in the order they joined, so that rosters are stable.
    join_order: Vec<MemberId>,
    proposals: Vec<ProposalState>,
    /// Each caucus's points for the current round, in carry order.
    points: [Vec<Point>; 2],
    /// Points withdrawn this round, so that a withdrawal can be undone. Cleared when the
    /// round's feedback is carried.
    withdrawn: [Vec<Withdrawn>; 2],
    /// The next point id in each caucus. Ids are per caucus so that one caucus learns
    /// nothing of how many points the other has made.
    next_point: [u32; 2],
    /// Each room's latest events, at most `window` of them; the rest are in the store.
    logs: [Log; 4],
    /// How many events of each room are held in memory.
    window: usize,
    /// `(sender, client_id)` of every stored message, for idempotent retries.
    sent: HashMap<(MemberId, ClientId), (Room, u64)>,
    /// When the session ended, in Unix milliseconds.
    ended_at: Option<u64>,
}

/// What a new session is created with.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    /// The session's id.
    pub id: SessionId,
    /// Its title.
    pub title: String,
    /// The caucus labels.
    pub labels: CaucusLabels,
    /// Its settings.
    pub settings: Settings,
    /// Ground rules members accept when joining.
    pub ground_rules: Option<String>,
    /// Length limits on text.
    pub limits: TextLimits,
    /// Caps on what the session and each person can add.
    pub caps: SessionCaps,
    /// How many of each room's latest events the live session holds in memory.
    pub window: usize,
}

fn caucus_index(caucus: Caucus) -> usize {
    match caucus {
        Caucus::A => 0,
        Caucus::B => 1,
    }
}

fn room_index(room: Room) -> usize {
    match room {
        Room::Plenary => 0,
        Room::Caucus(Caucus::A) => 1,
        Room::Caucus(Caucus::B) => 2,
        Room::Facilitators => 3,
    }
}

/// How a `joined` event records which ground rules were accepted: `sha256:` and the
/// hex digest of the text.
pub fn rules_digest(rules: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(rules.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// Checks a piece of text against emptiness and a length limit. Text is otherwise kept
/// byte for byte: markup, quotes and control characters are data, not instructions.
pub fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::Empty(what));
    }
    if text.chars().count() > max {
        return Err(Refusal::TooLong { what, max });
    }
    Ok(())
}

impl Session {
    /// Checks the setup and creates an empty session in the gathering phase. The
    /// creator joins through [`Session::decide_join`] like anyone else.
    pub fn new(setup: SessionSetup) -> Result<Self, Refusal> {
        let limits = setup.limits;
        check_text("the title", &setup.title, limits.name_chars)?;
        check_text("a caucus label", &setup.labels.a, limits.topic_chars)?;
        check_text("a caucus label", &setup.labels.b, limits.topic_chars)?;
        if let Some(rules) = &setup.ground_rules {
            check_text("the ground rules", rules, limits.message_chars)?;
        }
        Ok(Self::restore(setup))
    }

    /// A session rebuilt from storage: the setup was checked when it was created, so
    /// it is not checked again against limits that may have changed since.
    pub fn restore(setup: SessionSetup) -> Self {
        let limits = setup.limits;
        Self {
            id: setup.id,
            title: setup.title,
            labels: setup.labels,
            settings: setup.settings,
            ground_rules: setup.ground_rules,
            limits,
            caps: setup.caps,
            phase: Phase::Gathering,
            topic: None,
            timer: None,
            people: HashMap::new(),
            join_order: Vec::new(),
            proposals: Vec::new(),
            points: [Vec::new(), Vec::new()],
            withdrawn: [Vec::new(), Vec::new()],
            next_point: [1, 1],
            logs: Default::default(),
            window: setup.window,
            sent: HashMap::new(),
            ended_at: None,
        }
    }

    /// What the session was created with, to rebuild it from its events.
    pub fn setup(&self) -> SessionSetup {
        SessionSetup {
            id: self.id.clone(),
            title: self.title.clone(),
            labels: self.labels.clone(),
            settings: self.settings.clone(),
            ground_rules: self.ground_rules.clone(),
            limits: self.limits,
            caps: self.caps,
            window: self.window,
        }
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The session's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The ground rules, if any.
    pub fn ground_rules(&self) -> Option<&str> {
        self.ground_rules.as_deref()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the session ended, in Unix milliseconds.
    pub fn ended_at(&self) -> Option<u64> {
        self.ended_at
    }

    /// The rooms whose content is purged when an ended session's retention runs out:
    /// the caucuses' transcripts and points, and the desk that records who sat where.
    pub const PRIVATE_ROOMS: [Room; 3] =
        [Room::Caucus(Caucus::A), Room::Caucus(Caucus::B), Room::Facilitators];

    /// Forgets the private rooms' events, every seat and every point, after the store
    /// has purged them. The plenary, with the carried points, remains.
    pub fn purge_private_rooms(&mut self) {
        for room in Self::PRIVATE_ROOMS {
            self.logs[room_index(room)].clear();
        }
        for person in self.people.values_mut() {
            person.seat = None;
        }
        self.points = [Vec::new(), Vec::new()];
        self.sent.retain(|_, (room, _)| *room == Room::Plenary);
    }

    /// Whether the private rooms hold anything.
    pub fn has_private_content(&self) -> bool {
        Self::PRIVATE_ROOMS.iter().any(|room| !self.logs[room_index(*room)].is_empty())
            || self.people.values().any(|person| person.seat.is_some())
    }

    /// The latest sequence number of `room`.
    pub fn head(&self, room: Room) -> u64 {
        self.logs[room_index(room)].head()
    }

    /// Whether every event of `room` is held in memory; if not, the older ones are
    /// read from the store.
    pub fn holds_whole(&self, room: Room) -> bool {
        self.logs[room_index(room)].is_whole()
    }

    /// Events `start..end` of `room`, if all of them are held in memory.
    pub fn held(&self, room: Room, start: u64, end: u64) -> Option<Vec<RoomEvent>> {
        self.logs[room_index(room)].range(start, end)
    }

    /// The person's role, if they are in the session and not removed.
    pub fn role_of(&self, who: &MemberId) -> Option<Role> {
        self.active(who).map(|person| person.member.role)
    }

    /// Whether a facilitator removed this person.
    pub fn is_removed(&self, who: &MemberId) -> bool {
        self.people.get(who).is_some_and(|person| person.removed)
    }

    /// A caucus's points for the current round, in carry order.
    pub fn points(&self, caucus: Caucus) -> &[Point] {
        &self.points[caucus_index(caucus)]
    }

    /// The person's caucus.
    pub fn seat_of(&self, who: &MemberId) -> Option<Caucus> {
        self.active(who)?.seat.map(|seat| seat.caucus)
    }

    fn active(&self, who: &MemberId) -> Option<&Person> {
        self.people.get(who).filter(|person| !person.removed)
    }

    /// Whether `who` may read `room` now: everyone reads the plenary, a caucus's
    /// current members read it, facilitators read the facilitators' desk.
    pub fn can_read(&self, who: &MemberId, room: Room) -> bool {
        self.read_window(who, room).is_some()
    }

    /// The last sequence number of `room` that `who` may *not* read, if they may read
    /// the room at all. Caucus members read only what was said after they joined.
    fn read_window(&self, who: &MemberId, room: Room) -> Option<u64> {
        let person = self.active(who)?;
        match room {
            Room::Plenary => Some(0),
            Room::Facilitators => (person.member.role == Role::Facilitator).then_some(0),
            Room::Caucus(caucus) => person.seat.filter(|seat| seat.caucus == caucus).map(|seat| seat.since),
        }
    }

    /// Everyone who may read `room` now, in join order.
    pub fn readers(&self, room: Room) -> impl Iterator<Item = &MemberId> {
        self.join_order.iter().filter(move |id| self.can_read(id, room))
    }

    /// Everyone in the session who has not been removed, in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.join_order.iter().filter_map(|id| self.active(id)).map(|person| &person.member)
    }

    /// Everyone a facilitator removed, in join order.
    pub fn removed(&self) -> impl Iterator<Item = &MemberId> {
        self.join_order.iter().filter(|id| self.is_removed(id))
    }

    /// An event held in memory, if `seq` is in the window.
    pub fn event(&self, room: Room, seq: u64) -> Option<&RoomEvent> {
        self.logs[room_index(room)].get(seq)
    }

    /// When the actor must next call [`Session::decide_tick`], in Unix milliseconds.
    pub fn next_deadline(&self) -> Option<u64> {
        let timer = self.timer?;
        if !matches!(self.phase, Phase::Caucusing { .. }) || timer.expired {
            return None;
        }
        Some(if timer.warned { timer.deadline } else { timer.warn_at() })
    }

    /// The events that time produces at `now`: the warning, then the end of the round.
    pub fn decide_tick(&self, now: u64) -> Vec<Draft> {
        let (Phase::Caucusing { round }, Some(timer)) = (self.phase, self.timer) else {
            return Vec::new();
        };
        if timer.expired {
            return Vec::new();
        }
        // The caucuses hear it too: people there are looking at their caucus, not the
        // plenary, when their time runs out.
        let caucuses = [Caucus::A.room(), Caucus::B.room()];
        if now >= timer.deadline {
            return if self.settings.auto_reconvene {
                self.reconvene_drafts(round, true)
            } else {
                std::iter::once(Room::Facilitators)
                    .chain(caucuses)
                    .map(|room| Draft::new(room, EventBody::TimeUp { round }))
                    .collect()
            };
        }
        if !timer.warned && now >= timer.warn_at() {
            return std::iter::once(Room::Plenary)
                .chain(caucuses)
                .map(|room| Draft::new(room, EventBody::TimerWarning { round, deadline: timer.deadline }))
                .collect();
        }
        Vec::new()
    }

    /// Admits a new person. Their name is checked; their id must be new, except that a
    /// member already here who is added as a facilitator (a co-facilitator added by the
    /// email their account has) becomes one, as `set_role` would make them.
    pub fn decide_join(
        &self,
        id: &MemberId,
        name: &str,
        join_as: JoinAs,
        accepted_rules: Option<&str>,
    ) -> Result<Draft, Refusal> {
        let JoinAs { role, secretary } = join_as;
        if self.phase == Phase::Ended {
            return Err(Refusal::SessionEnded);
        }
        check_text("the name", name, self.limits.name_chars)?;
        if self.is_removed(id) {
            return Err(Refusal::Forbidden("a facilitator removed you from this session"));
        }
        if let Some(person) = self.active(id) {
            if role == Role::Facilitator && person.member.role == Role::Member {
                return Ok(Draft::new(
                    Room::Plenary,
                    EventBody::RoleChanged { member: id.clone(), role, secretary: person.member.secretary },
                ));
            }
            return Err(Refusal::InvalidValue("that person is already here".into()));
        }
        // Active people are capped; so, more loosely, is everyone who ever joined, so
        // that joining and being removed cannot grow the session without end.
        let active = self.people.keys().filter(|id| !self.is_removed(id)).count();
        if active >= self.caps.members || self.people.len() >= 2 * self.caps.members {
            return Err(Refusal::LimitReached(format!(
                "this session is full: it has its {} people",
                self.caps.members
            )));
        }
        // Members enter by accepting the ground rules; facilitators set them.
        let ground_rules = match (&self.ground_rules, role) {
            (Some(rules), Role::Member) => {
                if accepted_rules != Some(rules.as_str()) {
                    return Err(Refusal::InvalidValue(
                        "accept the session's ground rules to join: send them back, exactly as the \
                         invite shows them, in `accept_ground_rules`"
                            .into(),
                    ));
                }
                Some(rules_digest(rules))
            }
            _ => None,
        };
        Ok(Draft::new(
            Room::Plenary,
            EventBody::Joined {
                member: Member { id: id.clone(), name: name.to_owned(), role, secretary },
                ground_rules,
            },
        ))
    }

    /// Checks `command` from `who` and returns what it would do. Changes nothing.
    pub fn decide(
        &self,
        who: &MemberId,
        command: &Command,
        client_id: Option<&ClientId>,
        now: u64,
    ) -> Result<Decision, Refusal> {
        let Some(person) = self.active(who) else {
            return Err(Refusal::NoSuchMember);
        };
        let facilitator = person.member.role == Role::Facilitator;
        let require_facilitator = |action: &'static str| {
            if facilitator { Ok(()) } else { Err(Refusal::Forbidden(action)) }
        };
        // A retried message that was stored gets its original ack, whatever happened
        // since (PROTOCOL.md §3.3): the sender must learn it arrived.
        if let (Command::Say { .. }, Some(key)) = (command, client_id)
            && let Some(&(room, seq)) = self.sent.get(&(who.clone(), key.clone()))
        {
            return Ok(Decision::Repeat { room, seq });
        }
        // Reading and erasure go on after the end; nothing else does.
        let after_end =
            matches!(command, Command::Hello { .. } | Command::History { .. } | Command::EraseMember { .. });
        if self.phase == Phase::Ended && !after_end {
            return Err(Refusal::SessionEnded);
        }
        let limits = self.limits;
        match command {
            Command::Hello { .. } => {
                Err(Refusal::InvalidValue("this connection has already said hello".into()))
            }
            Command::Say { room, text } => {
                let room = self.postable_room(who, facilitator, room)?;
                check_text("the message", text, limits.message_chars)?;
                Ok(Decision::Apply {
                    drafts: vec![Draft::new(
                        room,
                        EventBody::Message {
                            from: who.clone(),
                            text: text.clone(),
                            client_id: client_id.cloned(),
                        },
                    )],
                    receipt: true,
                })
            }
            Command::History { room, before, limit } => {
                let room =
                    room.resolve().filter(|room| self.can_read(who, *room)).ok_or(Refusal::NoSuchRoom)?;
                if !(1..=MAX_HISTORY_PAGE).contains(limit) {
                    return Err(Refusal::InvalidValue(format!("limit is 1 to {MAX_HISTORY_PAGE}")));
                }
                let since = self.read_window(who, room).unwrap_or(u64::MAX);
                let end = before.unwrap_or(u64::MAX).min(self.head(room) + 1).max(since + 1);
                let start = end.saturating_sub(u64::from(*limit)).max(since + 1);
                Ok(Decision::History { room, start, end, more: start > since + 1 })
            }
            Command::EraseMember { member } => {
                require_facilitator("erase a person's data")?;
                if !self.people.contains_key(member) {
                    return Err(Refusal::NoSuchMember);
                }
                if member == who {
                    return Err(Refusal::InvalidValue(
                        "you cannot erase yourself; ask another facilitator".into(),
                    ));
                }
                if self.is_removed(member) && self.people.get(member).is_some_and(|person| person.erased) {
                    return Ok(Decision::nothing());
                }
                let mut drafts = Vec::new();
                if self.active(member).is_some() {
                    drafts.extend(self.seat_drafts(member, None));
                    drafts.push(Draft::new(Room::Plenary, EventBody::Removed { member: member.clone() }));
                }
                drafts.push(Draft::new(Room::Plenary, EventBody::Erased { member: member.clone() }));
                Ok(Decision::Erase { member: member.clone(), drafts })
            }
            Command::Typing { room } => {
                Ok(Decision::Typing { room: self.postable_room(who, facilitator, room)? })
            }
            Command::ProposeTopic { text } => {
                self.check_plenary_open(facilitator)?;
                check_text("the topic", text, limits.topic_chars)?;
                self.check_proposal_caps(who)?;
                let proposal = Proposal {
                    id: self.proposals.len() as u32 + 1,
                    text: text.clone(),
                    by: who.clone(),
                    votes: 0,
                };
                Ok(Decision::events(vec![Draft::new(Room::Plenary, EventBody::TopicProposed { proposal })]))
            }
            Command::VoteTopic { proposal, vote } => {
                self.check_plenary_open(facilitator)?;
                let state = self
                    .proposals
                    .iter()
                    .find(|state| state.proposal.id == *proposal)
                    .ok_or(Refusal::NoSuchProposal)?;
                if state.voters.contains(who) == *vote {
                    return Ok(Decision::nothing());
                }
                let votes = if *vote { state.proposal.votes + 1 } else { state.proposal.votes - 1 };
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::TopicVoted { proposal: *proposal, by: who.clone(), vote: *vote, votes },
                )]))
            }
            Command::SetTopic { text } => {
                require_facilitator("set the topic")?;
                check_text("the topic", text, limits.topic_chars)?;
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::TopicSet { text: text.clone() },
                )]))
            }
            Command::ChooseCaucus { caucus } => {
                if !self.settings.self_choice && !facilitator {
                    return Err(Refusal::SelfChoiceOff);
                }
                Ok(Decision::events(self.seat_drafts(who, *caucus)))
            }
            Command::Move { member, caucus } => {
                require_facilitator("move people between rooms")?;
                self.active(member).ok_or(Refusal::NoSuchMember)?;
                Ok(Decision::events(self.seat_drafts(member, *caucus)))
            }
            Command::OpenCaucuses { duration_secs } => {
                require_facilitator("open the caucuses")?;
                let round = match self.phase {
                    Phase::Gathering | Phase::Reconvened { .. } => self.phase.round() + 1,
                    _ => {
                        return Err(Refusal::WrongPhase(format!(
                            "the caucuses are already open for round {}; reconvene first",
                            self.phase.round()
                        )));
                    }
                };
                let deadline = match duration_secs {
                    None => None,
                    Some(secs) => Some(now + u64::from(check_round_secs(*secs)?) * 1000),
                };
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::CaucusesOpened { round, topic: self.topic.clone(), deadline },
                )]))
            }
            Command::ExtendRound { secs } => {
                require_facilitator("extend the round")?;
                let (Phase::Caucusing { round }, Some(timer)) = (self.phase, self.timer) else {
                    return Err(Refusal::WrongPhase("no timed round is running".into()));
                };
                let secs = check_round_secs(*secs)?;
                let deadline = timer.deadline.max(now) + u64::from(secs) * 1000;
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::RoundExtended { round, deadline },
                )]))
            }
            Command::Reconvene { round } => {
                require_facilitator("reconvene")?;
                match self.phase {
                    Phase::Caucusing { round: current } if current == *round => {
                        Ok(Decision::events(self.reconvene_drafts(current, false)))
                    }
                    // A double click, or a second facilitator a moment too late:
                    // that round is already reconvened, so there is nothing to do.
                    phase if *round >= 1 && *round <= phase.round() => Ok(Decision::nothing()),
                    _ => Err(Refusal::WrongPhase(format!("round {round} is not running"))),
                }
            }
            Command::EndSession {} => {
                require_facilitator("end the session")?;
                let mut drafts = match self.phase {
                    Phase::Caucusing { round } => self.reconvene_drafts(round, false),
                    _ => Vec::new(),
                };
                drafts.push(Draft::new(Room::Plenary, EventBody::SessionEnded {}));
                Ok(Decision::events(drafts))
            }
            Command::Broadcast { text } => {
                require_facilitator("broadcast")?;
                check_text("the announcement", text, limits.message_chars)?;
                let body = EventBody::Announcement { from: who.clone(), text: text.clone() };
                let drafts = [Room::Plenary, Caucus::A.room(), Caucus::B.room()]
                    .into_iter()
                    .map(|room| Draft::new(room, body.clone()))
                    .collect();
                Ok(Decision::events(drafts))
            }
            Command::AskForHelp {} => {
                let caucus = person.seat.ok_or(Refusal::NoSuchRoom)?.caucus;
                self.check_caucus_open()?;
                Ok(Decision::events(vec![
                    Draft::new(caucus.room(), EventBody::HelpRequested { caucus, by: Some(who.clone()) }),
                    Draft::new(Room::Facilitators, EventBody::HelpRequested { caucus, by: None }),
                ]))
            }
            Command::AnswerHelp { caucus } => {
                require_facilitator("answer a request for help")?;
                self.check_caucus_open()?;
                let body = EventBody::HelpAnswered { caucus: *caucus, by: who.clone() };
                Ok(Decision::events(vec![
                    Draft::new(caucus.room(), body.clone()),
                    Draft::new(Room::Facilitators, body),
                ]))
            }
            Command::Remove { member } => {
                require_facilitator("remove people")?;
                self.active(member).ok_or(Refusal::NoSuchMember)?;
                if member == who {
                    return Err(Refusal::InvalidValue(
                        "you cannot remove yourself; ask another facilitator".into(),
                    ));
                }
                let mut drafts = self.seat_drafts(member, None);
                drafts.push(Draft::new(Room::Plenary, EventBody::Removed { member: member.clone() }));
                Ok(Decision::events(drafts))
            }
            Command::SetRole { member, role } => {
                require_facilitator("change roles")?;
                let target = self.active(member).ok_or(Refusal::NoSuchMember)?;
                if target.member.role == *role {
                    return Ok(Decision::nothing());
                }
                if *role == Role::Member && self.facilitator_count() == 1 {
                    return Err(Refusal::InvalidValue("a session needs at least one facilitator".into()));
                }
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::RoleChanged {
                        member: member.clone(),
                        role: *role,
                        secretary: target.member.secretary,
                    },
                )]))
            }
            Command::SetSecretary { member, secretary } => {
                require_facilitator("choose the secretary")?;
                let target = self.active(member).ok_or(Refusal::NoSuchMember)?;
                if target.member.secretary == *secretary {
                    return Ok(Decision::nothing());
                }
                Ok(Decision::events(vec![Draft::new(
                    Room::Plenary,
                    EventBody::RoleChanged {
                        member: member.clone(),
                        role: target.member.role,
                        secretary: *secretary,
                    },
                )]))
            }
            Command::Flag { room, seq } => {
                // Every way of not finding the message gives the same refusal, so that
                // flagging probes reveal nothing about rooms the sender cannot read.
                let caucus = room
                    .resolve()
                    .and_then(Room::caucus)
                    .filter(|caucus| self.can_read(who, caucus.room()))
                    .ok_or(Refusal::NoSuchMessage)?;
                let since = self.read_window(who, caucus.room()).unwrap_or(u64::MAX);
                let text = match self.event(caucus.room(), *seq) {
                    Some(RoomEvent { body: EventBody::Message { text, .. }, .. }) if *seq > since => {
                        text.clone()
                    }
                    // A message the sender may read, older than what memory holds.
                    None if *seq > since && *seq <= self.head(caucus.room()) => {
                        return Err(Refusal::InvalidValue(
                            "that message is too far back to flag; add its words as a point instead".into(),
                        ));
                    }
                    _ => return Err(Refusal::NoSuchMessage),
                };
                self.check_caucus_open()?;
                if self.points[caucus_index(caucus)].iter().any(|point| point.message == Some(*seq)) {
                    return Ok(Decision::nothing());
                }
                self.check_point_caps(caucus, who)?;
                Ok(Decision::events(vec![
                    self.point_added(caucus, who, text, Some(*seq)),
                    self.points_counted(caucus, 1),
                ]))
            }
            Command::WritePoint { room, text } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                check_text("the point", text, limits.message_chars)?;
                self.check_point_caps(caucus, who)?;
                Ok(Decision::events(vec![
                    self.point_added(caucus, who, text.clone(), None),
                    self.points_counted(caucus, 1),
                ]))
            }
            Command::EditPoint { room, point, text } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                let found = self.find_point(caucus, *point)?;
                check_text("the point", text, limits.message_chars)?;
                // An edit makes the editor the point's author, so it counts against
                // their cap like a point they wrote.
                if found.by != *who {
                    self.check_own_point_cap(caucus, who)?;
                }
                Ok(Decision::events(vec![Draft::new(
                    caucus.room(),
                    EventBody::PointEdited { point: *point, text: text.clone(), by: who.clone() },
                )]))
            }
            Command::WithdrawPoint { room, point } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                self.find_point(caucus, *point)?;
                Ok(Decision::events(vec![
                    Draft::new(caucus.room(), EventBody::PointWithdrawn { point: *point, by: who.clone() }),
                    self.points_counted(caucus, -1),
                ]))
            }
            Command::RestorePoint { room, point } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                // Only a withdrawal the restorer saw, from their seat: one from before
                // they sat down is as unknown to them as a point that never was, or a
                // newcomer could read (and carry) what the caucus had taken back.
                let since = self.read_window(who, caucus.room()).unwrap_or(u64::MAX);
                let found = self.withdrawn[caucus_index(caucus)]
                    .iter()
                    .find(|withdrawn| withdrawn.point.id == *point && withdrawn.at > since)
                    .map(|withdrawn| &withdrawn.point)
                    .ok_or(Refusal::NoSuchPoint)?;
                if self.points[caucus_index(caucus)].len() >= self.caps.points_per_caucus {
                    return Err(Refusal::LimitReached(format!(
                        "your caucus already has {} points; withdraw or merge some first",
                        self.caps.points_per_caucus
                    )));
                }
                Ok(Decision::events(vec![
                    Draft::new(
                        caucus.room(),
                        EventBody::PointRestored { point: found.clone(), by: who.clone() },
                    ),
                    self.points_counted(caucus, 1),
                ]))
            }
            Command::ReorderPoints { room, order } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                let current: BTreeSet<u32> =
                    self.points[caucus_index(caucus)].iter().map(|point| point.id).collect();
                let proposed: BTreeSet<u32> = order.iter().copied().collect();
                if proposed != current || order.len() != current.len() {
                    return Err(Refusal::InvalidValue(
                        "the order must list every current point exactly once".into(),
                    ));
                }
                Ok(Decision::events(vec![Draft::new(
                    caucus.room(),
                    EventBody::PointsReordered { order: order.clone(), by: who.clone() },
                )]))
            }
            Command::AgreePoint { room, point, agree } => {
                let caucus = self.own_caucus(who, room)?;
                self.check_caucus_open()?;
                let found = self.find_point(caucus, *point)?;
                if found.by == *who {
                    return Err(Refusal::InvalidValue(
                        "agreement has to come from a member other than the point's author".into(),
                    ));
                }
                if found.agreed_by.contains(who) == *agree {
                    return Ok(Decision::nothing());
                }
                Ok(Decision::events(vec![Draft::new(
                    caucus.room(),
                    EventBody::PointAgreed { point: *point, by: who.clone(), agree: *agree },
                )]))
            }
        }
    }

    /// Numbers drafts as the next events of their rooms, stamped `now`. Changes nothing:
    /// the events become part of the session only through [`Session::evolve`].
    pub fn stamp(&self, drafts: Vec<Draft>, now: u64) -> Vec<RoomEvent> {
        let mut heads = [0, 1, 2, 3].map(|index| self.logs[index].head());
        drafts
            .into_iter()
            .map(|draft| {
                let head = &mut heads[room_index(draft.room)];
                *head += 1;
                RoomEvent { room: draft.room, seq: *head, at: now, body: draft.body }
            })
            .collect()
    }

    /// Applies one stored event. Events must arrive in the order [`Session::stamp`]
    /// numbered them.
    pub fn evolve(&mut self, event: RoomEvent) {
        debug_assert_eq!(event.seq, self.head(event.room) + 1, "events applied out of order");
        match &event.body {
            EventBody::Joined { member, .. } => {
                self.join_order.push(member.id.clone());
                self.people.insert(
                    member.id.clone(),
                    Person { member: member.clone(), seat: None, removed: false, erased: false },
                );
            }
            EventBody::Message { from, client_id: Some(key), .. } => {
                self.sent.insert((from.clone(), key.clone()), (event.room, event.seq));
            }
            EventBody::Message { .. } => {}
            EventBody::TopicProposed { proposal } => {
                self.proposals.push(ProposalState { proposal: proposal.clone(), voters: BTreeSet::new() })
            }
            EventBody::TopicVoted { proposal, by, vote, .. } => {
                if let Some(state) = self.proposals.iter_mut().find(|state| state.proposal.id == *proposal) {
                    if *vote {
                        state.voters.insert(by.clone());
                    } else {
                        state.voters.remove(by);
                    }
                    state.proposal.votes = state.voters.len() as u32;
                }
            }
            EventBody::TopicSet { text } => self.topic = Some(text.clone()),
            EventBody::CaucusesOpened { round, deadline, .. } => {
                self.phase = Phase::Caucusing { round: *round };
                self.timer = deadline.map(|deadline| RoundTimer {
                    opened_at: event.at,
                    deadline,
                    warned: false,
                    expired: false,
                });
            }
            EventBody::TimerWarning { .. } => {
                if let Some(timer) = &mut self.timer {
                    timer.warned = true;
                }
            }
            EventBody::RoundExtended { deadline, .. } => {
                if let Some(timer) = &mut self.timer {
                    timer.deadline = *deadline;
                    timer.expired = false;
                    // Warn again only if the new end is still far enough away.
                    timer.warned = event.at >= timer.warn_at();
                }
            }
            EventBody::TimeUp { .. } => {
                if let Some(timer) = &mut self.timer {
                    timer.expired = true;
                }
            }
            EventBody::Reconvened { round, .. } => {
                self.phase = Phase::Reconvened { round: *round };
                self.timer = None;
            }
            EventBody::Feedback { caucus, .. } => {
                self.points[caucus_index(*caucus)].clear();
                self.withdrawn[caucus_index(*caucus)].clear();
            }
            EventBody::Removed { member } => {
                if let Some(person) = self.people.get_mut(member) {
                    person.removed = true;
                    person.seat = None;
                }
            }
            EventBody::Erased { member } => {
                if let Some(person) = self.people.get_mut(member) {
                    person.erased = true;
                }
            }
            EventBody::RoleChanged { member, role, secretary } => {
                if let Some(person) = self.people.get_mut(member) {
                    person.member.role = *role;
                    person.member.secretary = *secretary;
                }
            }
            EventBody::SessionEnded {} => {
                self.phase = Phase::Ended;
                self.timer = None;
                self.ended_at = Some(event.at);
            }
            EventBody::Seated { member, caucus } => {
                let seat = caucus.map(|caucus| Seat { caucus, since: self.head(caucus.room()) });
                if let Some(person) = self.people.get_mut(member) {
                    person.seat = seat;
                }
            }
            EventBody::PointAdded { point } => {
                if let Some(caucus) = event.room.caucus() {
                    let index = caucus_index(caucus);
                    self.next_point[index] = self.next_point[index].max(point.id + 1);
                    self.points[index].push(point.clone());
                }
            }
            EventBody::PointEdited { point, text, by } => {
                if let Some(found) = self.point_mut(event.room, *point) {
                    found.text = text.clone();
                    // The editor wrote the current wording, and agreement was given to
                    // the old one: it must now come from someone other than the editor.
                    found.by = by.clone();
                    found.agreed_by.clear();
                }
            }
            EventBody::PointWithdrawn { point, .. } => {
                if let Some(caucus) = event.room.caucus() {
                    let index = caucus_index(caucus);
                    if let Some(place) = self.points[index].iter().position(|found| found.id == *point) {
                        let point = self.points[index].remove(place);
                        self.withdrawn[index].push(Withdrawn { place, point, at: event.seq });
                    }
                }
            }
            EventBody::PointRestored { point, .. } => {
                if let Some(caucus) = event.room.caucus() {
                    let index = caucus_index(caucus);
                    let place = self.withdrawn[index]
                        .iter()
                        .position(|withdrawn| withdrawn.point.id == point.id)
                        .map(|at| self.withdrawn[index].remove(at).place);
                    let place = place.unwrap_or(usize::MAX).min(self.points[index].len());
                    self.points[index].insert(place, point.clone());
                }
            }
            EventBody::PointsReordered { order, .. } => {
                if let Some(caucus) = event.room.caucus() {
                    let points = &mut self.points[caucus_index(caucus)];
                    points.sort_by_key(|point| order.iter().position(|id| *id == point.id));
                }
            }
            EventBody::PointAgreed { point, by, agree } => {
                if let Some(found) = self.point_mut(event.room, *point) {
                    found.agreed_by.retain(|id| id != by);
                    if *agree {
                        found.agreed_by.push(by.clone());
                    }
                }
            }
            EventBody::Announcement { .. }
            | EventBody::CaucusJoined { .. }
            | EventBody::CaucusLeft { .. }
            | EventBody::HelpRequested { .. }
            | EventBody::HelpAnswered { .. }
            | EventBody::PointsCounted { .. } => {}
        }
        let window = self.window;
        self.logs[room_index(event.room)].push(event, window);
    }

    /// Whether every event of every room is held in memory, so that erasure can find
    /// them all here rather than in the store.
    pub fn holds_everything(&self) -> bool {
        self.logs.iter().all(Log::is_whole)
    }

    /// Every event held in memory, room by room.
    pub fn held_events(&self) -> impl Iterator<Item = &RoomEvent> {
        self.logs.iter().flat_map(Log::iter)
    }

    /// The events among `events` (all of the session's, from memory or the store) that
    /// erasing `member` rewrites, already rewritten: their name, and the text of their
    /// messages, proposals and announcements, in every room.
    pub fn erasure_rewrites<'a>(
        member: &MemberId,
        events: impl IntoIterator<Item = &'a RoomEvent>,
    ) -> Vec<RoomEvent> {
        let erased = || ERASED.to_owned();
        let mut rewrites = Vec::new();
        for event in events {
            let body = match &event.body {
                EventBody::Joined { member: joined, ground_rules }
                    if joined.id == *member && joined.name != ERASED =>
                {
                    EventBody::Joined {
                        member: Member { name: erased(), ..joined.clone() },
                        ground_rules: ground_rules.clone(),
                    }
                }
                EventBody::Message { from, client_id, text } if from == member && text != ERASED => {
                    EventBody::Message { from: from.clone(), text: erased(), client_id: client_id.clone() }
                }
                EventBody::TopicProposed { proposal }
                    if proposal.by == *member && proposal.text != ERASED =>
                {
                    EventBody::TopicProposed { proposal: Proposal { text: erased(), ..proposal.clone() } }
                }
                EventBody::Announcement { from, text } if from == member && text != ERASED => {
                    EventBody::Announcement { from: from.clone(), text: erased() }
                }
                _ => continue,
            };
            rewrites.push(RoomEvent { body, ..event.clone() });
        }
        rewrites
    }

    /// Puts rewritten events in place of the originals, once the store has them.
    pub fn apply_rewrites(&mut self, rewrites: Vec<RoomEvent>) {
        for event in rewrites {
            match &event.body {
                EventBody::Joined { member, .. } => {
                    if let Some(person) = self.people.get_mut(&member.id) {
                        person.member.name = member.name.clone();
                    }
                }
                EventBody::TopicProposed { proposal } => {
                    if let Some(state) =
                        self.proposals.iter_mut().find(|state| state.proposal.id == proposal.id)
                    {
                        state.proposal.text = proposal.text.clone();
                    }
                }
                _ => {}
            }
            if let Some(slot) = self.logs[room_index(event.room)].get_mut(event.seq) {
                *slot = event;
            }
        }
    }

    /// The minutes: the plenary transcript, each round's topic and carried points,
    /// from `plenary`, the whole plenary log (from memory or the store). Built from the
    /// plenary alone, so no caucus content beyond carried points.
    pub fn minutes<'a>(&self, plenary: impl IntoIterator<Item = &'a RoomEvent>) -> Minutes {
        let name = |id: &MemberId| self.people.get(id).map(|person| person.member.name.clone());
        let mut rounds: Vec<MinutesRound> = Vec::new();
        let mut transcript = Vec::new();
        for event in plenary {
            debug_assert_eq!(event.room, Room::Plenary, "minutes read the plenary only");
            let entry = |by: Option<String>, kind: MinutesKind, text: &str| MinutesEntry {
                at: event.at,
                by,
                kind,
                text: text.to_owned(),
            };
            match &event.body {
                EventBody::Message { from, text, .. } => {
                    transcript.push(entry(name(from), MinutesKind::Message, text))
                }
                EventBody::Announcement { from, text } => {
                    transcript.push(entry(name(from), MinutesKind::Announcement, text));
                }
                EventBody::TopicProposed { proposal } => {
                    transcript.push(entry(name(&proposal.by), MinutesKind::TopicProposed, &proposal.text));
                }
                EventBody::TopicSet { text } => transcript.push(entry(None, MinutesKind::TopicSet, text)),
                EventBody::CaucusesOpened { round, topic, .. } => rounds.push(MinutesRound {
                    round: *round,
                    topic: topic.clone(),
                    opened_at: event.at,
                    feedback: Vec::new(),
                }),
                EventBody::Feedback { round, caucus, label, points } => {
                    if let Some(entry) = rounds.iter_mut().find(|entry| entry.round == *round) {
                        entry.feedback.push(CarriedPoints {
                            caucus: *caucus,
                            label: label.clone(),
                            points: points.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        Minutes {
            session: self.id.clone(),
            title: self.title.clone(),
            caucuses: self.labels.clone(),
            ended: self.phase == Phase::Ended,
            rounds,
            transcript,
        }
    }

    /// Whether `who` may export the minutes: facilitators and the secretary.
    pub fn may_export_minutes(&self, who: &MemberId) -> bool {
        self.active(who)
            .is_some_and(|person| person.member.role == Role::Facilitator || person.member.secretary)
    }

    /// The welcome for `who`, and the events to replay after it, room by room.
    ///
    /// `resume` holds the client's cursors. A cursor for a room the person may not
    /// read is ignored, so replay never crosses into another caucus; a cursor that is
    /// ahead of the room, reaches back before the person could read it, or is more
    /// than `replay_limit` events behind, resets the room. Without a usable cursor, the
    /// last `replay_limit` readable events are sent.
    pub fn welcome(
        &self,
        who: &MemberId,
        resume: &BTreeMap<String, u64>,
        online: Vec<MemberId>,
        replay_limit: u64,
    ) -> Option<(Welcome, Vec<&RoomEvent>)> {
        let person = self.active(who)?;
        let mut rooms = Vec::new();
        let mut replay = Vec::new();
        for room in Room::ALL {
            let Some(since) = self.read_window(who, room) else {
                continue;
            };
            let log = &self.logs[room_index(room)];
            let head = log.head();
            // Replay comes from memory: never from before the events it holds.
            let earliest = since.max(log.dropped());
            let cursor = resume.get(room.as_str()).copied();
            let (from, reset) = match cursor {
                // A gap longer than the replay limit is not filled event by event:
                // the room resets to its latest events instead.
                Some(cursor) if cursor >= earliest && cursor <= head && head - cursor <= replay_limit => {
                    (cursor, false)
                }
                _ => (head.saturating_sub(replay_limit).max(earliest), true),
            };
            rooms.push(RoomCursor { room, head, from, reset });
            replay.extend(log.after(from));
        }
        let caucus = person.seat.map(|seat| CaucusView {
            caucus: seat.caucus,
            members: self.readers(seat.caucus.room()).cloned().collect(),
            points: self.points[caucus_index(seat.caucus)].clone(),
        });
        let seats = (person.member.role == Role::Facilitator).then(|| {
            self.members()
                .map(|member| SeatView { member: member.id.clone(), caucus: self.seat_of(&member.id) })
                .collect()
        });
        let welcome = Welcome {
            protocol: caucus_protocol::PROTOCOL_VERSION,
            you: person.member.clone(),
            seat: person.seat.map(|seat| seat.caucus),
            session: self.info(),
            members: self.members().cloned().collect(),
            online,
            rooms,
            caucus,
            seats,
        };
        Some((welcome, replay))
    }

    fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.clone(),
            title: self.title.clone(),
            caucuses: self.labels.clone(),
            settings: self.settings.clone(),
            ground_rules: self.ground_rules.clone(),
            phase: self.phase,
            topic: self.topic.clone(),
            deadline: self.timer.map(|timer| timer.deadline),
            proposals: self.proposals.iter().map(|state| state.proposal.clone()).collect(),
        }
    }

    /// The room `who` may post to now, or why not. Unknown and unreadable rooms give
    /// the same refusal.
    fn postable_room(&self, who: &MemberId, facilitator: bool, name: &RoomName) -> Result<Room, Refusal> {
        let room = name.resolve().filter(|room| self.can_read(who, *room)).ok_or(Refusal::NoSuchRoom)?;
        match room {
            Room::Caucus(_) => self.check_caucus_open()?,
            Room::Plenary => self.check_plenary_open(facilitator)?,
            Room::Facilitators => {}
        }
        Ok(room)
    }

    fn own_caucus(&self, who: &MemberId, name: &RoomName) -> Result<Caucus, Refusal> {
        name.resolve()
            .and_then(Room::caucus)
            .filter(|caucus| self.can_read(who, caucus.room()))
            .ok_or(Refusal::NoSuchRoom)
    }

    fn check_caucus_open(&self) -> Result<(), Refusal> {
        match self.phase {
            Phase::Caucusing { .. } => Ok(()),
            _ => Err(Refusal::CaucusClosed),
        }
    }

    fn check_plenary_open(&self, facilitator: bool) -> Result<(), Refusal> {
        match self.phase {
            Phase::Caucusing { .. } if !facilitator => Err(Refusal::PlenaryQuiet),
            _ => Ok(()),
        }
    }

    fn find_point(&self, caucus: Caucus, id: u32) -> Result<&Point, Refusal> {
        self.points[caucus_index(caucus)].iter().find(|point| point.id == id).ok_or(Refusal::NoSuchPoint)
    }

    fn point_mut(&mut self, room: Room, id: u32) -> Option<&mut Point> {
        let caucus = room.caucus()?;
        self.points[caucus_index(caucus)].iter_mut().find(|point| point.id == id)
    }

    fn check_proposal_caps(&self, who: &MemberId) -> Result<(), Refusal> {
        let caps = self.caps;
        if self.proposals.len() >= caps.proposals {
            return Err(Refusal::LimitReached(format!(
                "this session already has {} topic proposals; vote for one of them",
                caps.proposals
            )));
        }
        let own = self.proposals.iter().filter(|state| state.proposal.by == *who).count();
        if own >= caps.proposals_per_person {
            return Err(Refusal::LimitReached(format!(
                "you have made {} topic proposals, as many as one person may",
                caps.proposals_per_person
            )));
        }
        Ok(())
    }

    fn check_point_caps(&self, caucus: Caucus, who: &MemberId) -> Result<(), Refusal> {
        let caps = self.caps;
        let points = &self.points[caucus_index(caucus)];
        if points.len() >= caps.points_per_caucus {
            return Err(Refusal::LimitReached(format!(
                "your caucus already has {} points; withdraw or merge some first",
                caps.points_per_caucus
            )));
        }
        self.check_own_point_cap(caucus, who)
    }

    /// The per-person part of [`Session::check_point_caps`]: an edit of another's point
    /// adds no point, but makes the editor its author.
    fn check_own_point_cap(&self, caucus: Caucus, who: &MemberId) -> Result<(), Refusal> {
        let caps = self.caps;
        let points = &self.points[caucus_index(caucus)];
        if points.iter().filter(|point| point.by == *who).count() >= caps.points_per_person {
            return Err(Refusal::LimitReached(format!(
                "you already hold {} of your caucus's points; withdraw or edit one first",
                caps.points_per_person
            )));
        }
        Ok(())
    }

    fn point_added(&self, caucus: Caucus, who: &MemberId, text: String, message: Option<u64>) -> Draft {
        Draft::new(
            caucus.room(),
            EventBody::PointAdded {
                point: Point {
                    id: self.next_point[caucus_index(caucus)],
                    text,
                    by: who.clone(),
                    message,
                    agreed_by: Vec::new(),
                },
            },
        )
    }

    /// The facilitators' copy of a caucus's point count once `delta` points are added
    /// (or, negative, withdrawn). Only the number leaves the caucus, never a point.
    fn points_counted(&self, caucus: Caucus, delta: i64) -> Draft {
        let now = self.points[caucus_index(caucus)].len() as i64 + delta;
        let count = u32::try_from(now.max(0)).unwrap_or(u32::MAX);
        Draft::new(Room::Facilitators, EventBody::PointsCounted { caucus, count })
    }

    fn facilitator_count(&self) -> usize {
        self.members().filter(|member| member.role == Role::Facilitator).count()
    }

    /// The events that seat `member` in `caucus` (or none): the facilitators see the
    /// move, the caucus left sees them go, and the caucus joined sees them arrive.
    fn seat_drafts(&self, member: &MemberId, caucus: Option<Caucus>) -> Vec<Draft> {
        let old = self.seat_of(member);
        if old == caucus {
            return Vec::new();
        }
        let mut drafts =
            vec![Draft::new(Room::Facilitators, EventBody::Seated { member: member.clone(), caucus })];
        if let Some(old) = old {
            drafts.push(Draft::new(old.room(), EventBody::CaucusLeft { member: member.clone() }));
        }
        if let Some(new) = caucus {
            drafts.push(Draft::new(new.room(), EventBody::CaucusJoined { member: member.clone() }));
        }
        drafts
    }

    /// Reconvene in one step: the round closes, and each caucus's carried points go to
    /// the plenary, in the caucus's order, attributed to the caucus alone.
    fn reconvene_drafts(&self, round: u32, time_up: bool) -> Vec<Draft> {
        let mut drafts = vec![Draft::new(Room::Plenary, EventBody::Reconvened { round, time_up })];
        for caucus in Caucus::BOTH {
            // Only agreement from someone still in the caucus counts.
            let agreed =
                |point: &Point| point.agreed_by.iter().any(|member| self.seat_of(member) == Some(caucus));
            let points = self.points[caucus_index(caucus)]
                .iter()
                .filter(|point| !self.settings.carry_needs_agreement || agreed(point))
                .map(|point| point.text.clone())
                .collect();
            drafts.push(Draft::new(
                Room::Plenary,
                EventBody::Feedback { round, caucus, label: self.labels.of(caucus).to_owned(), points },
            ));
        }
        // Carrying empties both caucuses' lists: the facilitators' board goes back to zero.
        for caucus in Caucus::BOTH {
            if !self.points[caucus_index(caucus)].is_empty() {
                drafts.push(Draft::new(Room::Facilitators, EventBody::PointsCounted { caucus, count: 0 }));
            }
        }
        drafts
    }
}

fn check_round_secs(secs: u32) -> Result<u32, Refusal> {
    if secs == 0 || secs > MAX_ROUND_SECS {
        return Err(Refusal::InvalidValue(format!("a duration is 1 to {MAX_ROUND_SECS} seconds")));
    }
    Ok(secs)
}
