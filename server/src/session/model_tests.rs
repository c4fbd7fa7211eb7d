//! The randomized model-based test of the privacy and delivery invariants.
//!
//! proptest drives random sequences of joins, caucus choices and moves, posts, flags,
//! withdrawals and their undoing, opened rounds, (double) reconvenes, reconnects with old cursors and
//! restarts, against the real [`Session`] and a small reference model. After every
//! step it checks the invariants of `TESTING.md`; a failure shrinks to a minimal case.
//!
//! Delivery is simulated the way the actor does it: each event goes to everyone the
//! session says may read its room, right after it is applied. Two mutations of that
//! simulation (a facilitator who receives caucus events, a reconvene that drops a
//! point) are kept as tests that the check must catch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caucus_protocol::{
    Caucus, CaucusLabels, Command, ErrorCode, EventBody, MemberId, Phase, Role, Room, RoomEvent, RoomName,
    SessionId, Settings,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use super::state::{Decision, Session, SessionCaps, SessionSetup, TextLimits};

/// Person 0 is the facilitator; the rest are members who may join.
const PEOPLE: usize = 6;
/// Points are written only while a caucus holds fewer than this, so that nobody reaches
/// the per-person cap, which the model does not count.
const MAX_WRITTEN: usize = 10;

fn person(index: usize) -> MemberId {
    MemberId::new(if index == 0 { "f-ada".to_owned() } else { format!("m-{index}") }).unwrap()
}

/// Where a post goes: the plenary, a caucus, or a room that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Plenary,
    Caucus(Caucus),
    Nowhere,
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Choose(usize, Option<Caucus>),
    Move(usize, Option<Caucus>),
    Say(usize, Target),
    Flag(usize, Caucus, usize),
    Write(usize, Caucus),
    Withdraw(usize, Caucus, usize),
    Restore(usize, Caucus, usize),
    Open,
    Reconvene(i64),
    Reconnect(usize),
    Restart,
}

/// The reference model: what should be true, computed the simple way.
#[derive(Debug, Clone)]
struct Model {
    joined: BTreeSet<usize>,
    seats: BTreeMap<usize, Caucus>,
    /// The step at which each person took their current seat.
    seated_at: BTreeMap<usize, u64>,
    round: u32,
    caucusing: bool,
    /// Every caucus message: its text and the step it was said at.
    messages: [Vec<(String, u64)>; 2],
    /// Each caucus's current points, by text, in order.
    points: [Vec<String>; 2],
    /// Each caucus's points withdrawn this round, in the order they went: text, place,
    /// and the step it went at.
    withdrawn: [Vec<(String, usize, u64)>; 2],
    /// Which withdrawn point (by its place in `withdrawn`) the last step tried to
    /// restore, and whether it could.
    restoring: Option<(usize, bool)>,
    /// The points the latest reconvene must have carried.
    carried: Option<[Vec<String>; 2]>,
    step: u64,
    texts: u64,
}

fn index(caucus: Caucus) -> usize {
    match caucus {
        Caucus::A => 0,
        Caucus::B => 1,
    }
}

impl Model {
    fn may_post(&self, who: usize, target: Target) -> bool {
        match target {
            Target::Plenary => !self.caucusing || who == 0,
            Target::Caucus(caucus) => self.caucusing && self.seats.get(&who) == Some(&caucus),
            Target::Nowhere => false,
        }
    }

    fn reseat(&mut self, who: usize, caucus: Option<Caucus>) {
        if self.seats.get(&who).copied() == caucus {
            return;
        }
        match caucus {
            Some(caucus) => {
                self.seats.insert(who, caucus);
                self.seated_at.insert(who, self.step);
            }
            None => {
                self.seats.remove(&who);
                self.seated_at.remove(&who);
            }
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            joined: BTreeSet::from([0, 1, 2]),
            seats: BTreeMap::new(),
            seated_at: BTreeMap::new(),
            round: 0,
            caucusing: false,
            messages: [Vec::new(), Vec::new()],
            points: [Vec::new(), Vec::new()],
            withdrawn: [Vec::new(), Vec::new()],
            restoring: None,
            carried: None,
            step: 0,
            texts: 0,
        })
        .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Op> {
        let people: Vec<usize> = model.joined.iter().copied().collect();
        let who = proptest::sample::select(people);
        let caucus = prop_oneof![Just(Caucus::A), Just(Caucus::B)];
        let seat = prop_oneof![Just(None), Just(Some(Caucus::A)), Just(Some(Caucus::B))];
        let target = prop_oneof![
            2 => Just(Target::Plenary),
            3 => caucus.clone().prop_map(Target::Caucus),
            1 => Just(Target::Nowhere),
        ];
        prop_oneof![
            1 => (1..PEOPLE).prop_map(Op::Join),
            2 => (who.clone(), seat.clone()).prop_map(|(w, s)| Op::Choose(w, s)),
            2 => (who.clone(), seat).prop_map(|(w, s)| Op::Move(w, s)),
            6 => (who.clone(), target).prop_map(|(w, t)| Op::Say(w, t)),
            3 => (who.clone(), caucus.clone(), 0..8usize).prop_map(|(w, c, k)| Op::Flag(w, c, k)),
            2 => (who.clone(), caucus.clone()).prop_map(|(w, c)| Op::Write(w, c)),
            4 => (who.clone(), caucus.clone(), 0..4usize).prop_map(|(w, c, k)| Op::Withdraw(w, c, k)),
            6 => (who.clone(), caucus, 0..4usize).prop_map(|(w, c, k)| Op::Restore(w, c, k)),
            2 => Just(Op::Open),
            2 => (-1i64..=1).prop_map(Op::Reconvene),
            1 => who.prop_map(Op::Reconnect),
            1 => Just(Op::Restart),
        ]
        .boxed()
    }

    fn preconditions(model: &Model, op: &Op) -> bool {
        match op {
            Op::Join(_) => true,
            Op::Choose(who, _) | Op::Move(who, _) | Op::Say(who, _) | Op::Reconnect(who) => {
                model.joined.contains(who)
            }
            Op::Flag(who, _, _) | Op::Write(who, _) | Op::Withdraw(who, _, _) | Op::Restore(who, _, _) => {
                model.joined.contains(who)
            }
            _ => true,
        }
    }

    fn apply(mut model: Model, op: &Op) -> Model {
        model.step += 1;
        model.carried = None;
        model.restoring = None;
        match *op {
            Op::Join(who) => {
                model.joined.insert(who);
            }
            Op::Choose(who, caucus) | Op::Move(who, caucus) => model.reseat(who, caucus),
            Op::Say(who, target) => {
                model.texts += 1;
                if model.may_post(who, target)
                    && let Target::Caucus(caucus) = target
                {
                    let text = format!("text-{}", model.texts);
                    model.messages[index(caucus)].push((text, model.step));
                }
            }
            Op::Flag(who, caucus, k) => {
                let readable: Vec<&String> = match model.seated_at.get(&who) {
                    Some(&since) if model.seats.get(&who) == Some(&caucus) => model.messages[index(caucus)]
                        .iter()
                        .filter(|(_, at)| *at > since)
                        .map(|(text, _)| text)
                        .collect(),
                    _ => Vec::new(),
                };
                if model.caucusing && !readable.is_empty() {
                    let text = readable[k % readable.len()].clone();
                    if !model.points[index(caucus)].contains(&text) {
                        model.points[index(caucus)].push(text);
                    }
                }
            }
            Op::Write(who, caucus) => {
                model.texts += 1;
                // Kept under the per-person cap, which the model does not count.
                let points = &mut model.points[index(caucus)];
                if model.caucusing && model.seats.get(&who) == Some(&caucus) && points.len() < MAX_WRITTEN {
                    points.push(format!("point-{}", model.texts));
                }
            }
            Op::Withdraw(who, caucus, k) => {
                let points = &mut model.points[index(caucus)];
                if model.caucusing && model.seats.get(&who) == Some(&caucus) && !points.is_empty() {
                    let k = k % points.len();
                    let text = points.remove(k);
                    model.withdrawn[index(caucus)].push((text, k, model.step));
                }
            }
            Op::Restore(who, caucus, k) => {
                let withdrawn = &mut model.withdrawn[index(caucus)];
                if model.caucusing && model.seats.get(&who) == Some(&caucus) && !withdrawn.is_empty() {
                    // Only a withdrawal made while this person sat in the caucus.
                    let k = k % withdrawn.len();
                    let seen = withdrawn[k].2 > model.seated_at[&who];
                    model.restoring = Some((k, seen));
                    if seen {
                        let (text, place, _) = withdrawn.remove(k);
                        let points = &mut model.points[index(caucus)];
                        points.insert(place.min(points.len()), text);
                    }
                }
            }
            Op::Open => {
                if !model.caucusing {
                    model.round += 1;
                    model.caucusing = true;
                }
            }
            Op::Reconvene(offset) => {
                if model.caucusing && offset == 0 {
                    model.carried = Some(model.points.clone());
                    model.points = [Vec::new(), Vec::new()];
                    model.withdrawn = [Vec::new(), Vec::new()];
                    model.caucusing = false;
                }
            }
            Op::Reconnect(_) | Op::Restart => {}
        }
        model
    }
}

/// A deliberate bug in the simulated delivery, to show the check catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    None,
    FacilitatorReadsCaucuses,
    ReconveneDropsAPoint,
}

/// The system under test: the real session, its stored events, and what each person
/// has received.
struct Sut {
    session: Session,
    stored: Vec<RoomEvent>,
    inbox: BTreeMap<MemberId, Vec<RoomEvent>>,
    /// Where each message text was stored.
    texts: HashMap<String, (Room, u64)>,
    /// The ids of each caucus's withdrawn points, in the order they went (the model's).
    withdrawn: [Vec<u32>; 2],
    now: u64,
    mutation: Mutation,
}

fn setup() -> SessionSetup {
    SessionSetup {
        id: SessionId::new("s-model").unwrap(),
        title: "Model".into(),
        labels: CaucusLabels { a: "A".into(), b: "B".into() },
        settings: Settings::default(),
        ground_rules: None,
        limits: TextLimits::default(),
        caps: SessionCaps::default(),
        // A small window, so that the runs cross it and replay meets dropped events.
        window: 16,
    }
}

impl Sut {
    fn new(model: &Model, mutation: Mutation) -> Self {
        let mut sut = Self {
            session: Session::new(setup()).unwrap(),
            stored: Vec::new(),
            inbox: BTreeMap::new(),
            texts: HashMap::new(),
            withdrawn: [Vec::new(), Vec::new()],
            now: 1_800_000_000_000,
            mutation,
        };
        for &who in &model.joined {
            sut.join(who);
        }
        sut
    }

    fn join(&mut self, who: usize) {
        let role = if who == 0 { Role::Facilitator } else { Role::Member };
        if let Ok(draft) = self.session.decide_join(&person(who), &format!("P{who}"), role.into(), None) {
            self.commit(vec![draft]);
        }
    }

    /// Stores, applies and delivers, as the actor does.
    fn commit(&mut self, drafts: Vec<super::Draft>) -> Vec<RoomEvent> {
        let mut events = self.session.stamp(drafts, self.now);
        if self.mutation == Mutation::ReconveneDropsAPoint {
            for event in &mut events {
                if let EventBody::Feedback { points, .. } = &mut event.body
                    && !points.is_empty()
                {
                    points.pop();
                    break;
                }
            }
        }
        for event in &events {
            self.stored.push(event.clone());
            self.session.evolve(event.clone());
            let mut readers: BTreeSet<MemberId> = self.session.readers(event.room).cloned().collect();
            if self.mutation == Mutation::FacilitatorReadsCaucuses && matches!(event.room, Room::Caucus(_)) {
                readers.insert(person(0));
            }
            for reader in readers {
                self.inbox.entry(reader).or_default().push(event.clone());
            }
            if let EventBody::Message { text, .. } = &event.body {
                self.texts.insert(text.clone(), (event.room, event.seq));
            }
        }
        self.now += 1000;
        events
    }

    fn command(&mut self, who: usize, command: Command) -> Result<Vec<RoomEvent>, ErrorCode> {
        match self.session.decide(&person(who), &command, None, self.now) {
            Ok(Decision::Apply { drafts, .. }) => Ok(self.commit(drafts)),
            Ok(_) => Ok(Vec::new()),
            Err(refusal) => Err(refusal.code()),
        }
    }
}

fn room_name(target: Target) -> RoomName {
    match target {
        Target::Plenary => RoomName::from(Room::Plenary),
        Target::Caucus(caucus) => RoomName::from(caucus.room()),
        Target::Nowhere => RoomName("caucus_z".into()),
    }
}

/// The harness, generic over the mutation it runs with.
struct Harness<const MUTATION: u8>;

fn mutation_of(code: u8) -> Mutation {
    match code {
        1 => Mutation::FacilitatorReadsCaucuses,
        2 => Mutation::ReconveneDropsAPoint,
        _ => Mutation::None,
    }
}

impl<const MUTATION: u8> StateMachineTest for Harness<MUTATION> {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut {
        Sut::new(model, mutation_of(MUTATION))
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let events = match op {
            Op::Join(who) => {
                sut.join(who);
                Vec::new()
            }
            Op::Choose(who, caucus) => {
                let command = if who == 0 {
                    Command::Move { member: person(who), caucus }
                } else {
                    Command::ChooseCaucus { caucus }
                };
                sut.command(who, command).expect("self-choice is on")
            }
            Op::Move(who, caucus) => sut.command(0, Command::Move { member: person(who), caucus }).unwrap(),
            Op::Say(who, target) => {
                let text = format!("text-{}", model.texts);
                let result = sut.command(who, Command::Say { room: room_name(target), text });
                let own = model.seats.get(&who).copied().map(Target::Caucus);
                match target {
                    // Invariant 2: outsiders cannot tell another caucus from no room.
                    Target::Nowhere => assert_eq!(result, Err(ErrorCode::NoSuchRoom)),
                    Target::Caucus(_) if Some(target) != own => {
                        assert_eq!(result, Err(ErrorCode::NoSuchRoom))
                    }
                    _ => assert_eq!(result.is_ok(), model.may_post(who, target), "{op:?} -> {result:?}"),
                }
                result.unwrap_or_default()
            }
            Op::Flag(who, caucus, _) => {
                // The model chose which text; find the point it added, if any.
                let wanted = model.points[index(caucus)].last().cloned();
                match wanted.and_then(|text| sut.texts.get(&text).copied()) {
                    Some((room, seq))
                        if !sut.session.points(caucus).iter().any(|p| p.message == Some(seq)) =>
                    {
                        sut.command(who, Command::Flag { room: RoomName::from(room), seq })
                            .unwrap_or_default()
                    }
                    _ => Vec::new(),
                }
            }
            Op::Withdraw(who, caucus, k) => {
                let points = sut.session.points(caucus);
                if model.caucusing && model.seats.get(&who) == Some(&caucus) && !points.is_empty() {
                    let point = points[k % points.len()].clone();
                    sut.withdrawn[index(caucus)].push(point.id);
                    sut.command(
                        who,
                        Command::WithdrawPoint { room: RoomName::from(caucus.room()), point: point.id },
                    )
                    .unwrap()
                } else {
                    Vec::new()
                }
            }
            Op::Write(who, caucus) => {
                let text = format!("point-{}", model.texts);
                if model.points[index(caucus)].contains(&text) {
                    sut.command(who, Command::WritePoint { room: RoomName::from(caucus.room()), text })
                        .unwrap()
                } else {
                    Vec::new()
                }
            }
            Op::Restore(who, caucus, _) => match model.restoring {
                Some((k, seen)) => {
                    let point = sut.withdrawn[index(caucus)][k];
                    let result = sut
                        .command(who, Command::RestorePoint { room: RoomName::from(caucus.room()), point });
                    if seen {
                        sut.withdrawn[index(caucus)].remove(k);
                        result.unwrap()
                    } else {
                        // Unknown to them, exactly like a point that never was.
                        assert_eq!(result, Err(ErrorCode::NoSuchPoint), "{op:?}");
                        Vec::new()
                    }
                }
                None => Vec::new(),
            },
            Op::Open => sut.command(0, Command::OpenCaucuses { duration_secs: None }).unwrap_or_default(),
            Op::Reconvene(offset) => {
                let round = (i64::from(sut.session.phase().round()) + offset).max(0) as u32;
                if model.carried.is_some() {
                    // What was withdrawn in a carried round is gone for good.
                    sut.withdrawn = [Vec::new(), Vec::new()];
                }
                sut.command(0, Command::Reconvene { round }).unwrap_or_default()
            }
            Op::Reconnect(who) => {
                // Invariant 4: replay with cursors from the start never yields a caucus
                // event this person was not entitled to when it was produced.
                let cursors = Room::ALL.iter().map(|room| (room.as_str().to_owned(), 0)).collect();
                let member = person(who);
                let (_, replay) = sut.session.welcome(&member, &cursors, Vec::new(), 10_000).unwrap();
                let received: BTreeSet<(Room, u64)> = sut
                    .inbox
                    .get(&member)
                    .map(|events| events.iter().map(|event| (event.room, event.seq)).collect())
                    .unwrap_or_default();
                for event in replay.iter().filter(|event| matches!(event.room, Room::Caucus(_))) {
                    assert!(
                        received.contains(&(event.room, event.seq)),
                        "{member} replays {event:?} it never had"
                    );
                }
                Vec::new()
            }
            Op::Restart => {
                let mut restored = Session::restore(setup());
                for event in &sut.stored {
                    restored.evolve(event.clone());
                }
                for room in Room::ALL {
                    assert_eq!(restored.head(room), sut.session.head(room));
                }
                assert_eq!(restored.phase(), sut.session.phase());
                for caucus in Caucus::BOTH {
                    assert_eq!(restored.points(caucus), sut.session.points(caucus));
                }
                sut.session = restored;
                Vec::new()
            }
        };

        // Invariant 1: each caucus event reached only that caucus's members, judged by
        // the model's seats after the step (the event was produced within it).
        for (member, inbox) in &sut.inbox {
            for event in inbox.iter().rev().take_while(|event| events.contains(event)) {
                if let Room::Caucus(caucus) = event.room {
                    let who = (0..PEOPLE).find(|index| person(*index) == *member).unwrap();
                    assert_eq!(
                        model.seats.get(&who),
                        Some(&caucus),
                        "{member} received {event:?} from outside the caucus"
                    );
                }
            }
        }
        // Invariant 5: reconvene carries exactly the round's points, by caucus, no author.
        if let Some(carried) = &model.carried {
            let feedback: Vec<(Caucus, Vec<String>)> = events
                .iter()
                .filter_map(|event| match &event.body {
                    EventBody::Feedback { caucus, points, .. } => Some((*caucus, points.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(feedback, vec![(Caucus::A, carried[0].clone()), (Caucus::B, carried[1].clone())]);
            let json = serde_json::to_string(&events).unwrap();
            for index in 0..PEOPLE {
                assert!(!json.contains(&format!("\"{}\"", person(index))), "feedback names a person: {json}");
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        // Invariant 3: the server's membership table matches the model's.
        for &who in &model.joined {
            assert_eq!(sut.session.seat_of(&person(who)), model.seats.get(&who).copied(), "seat of {who}");
        }
        assert_eq!(
            sut.session.phase(),
            match (model.round, model.caucusing) {
                (0, _) => Phase::Gathering,
                (round, true) => Phase::Caucusing { round },
                (round, false) => Phase::Reconvened { round },
            }
        );
        for caucus in Caucus::BOTH {
            let texts: Vec<&str> =
                sut.session.points(caucus).iter().map(|point| point.text.as_str()).collect();
            assert_eq!(texts, model.points[index(caucus)], "points of {caucus:?}");
        }
        // Invariant 6: per room, each person receives events in order, each once.
        for (member, inbox) in &sut.inbox {
            let mut last: BTreeMap<Room, u64> = BTreeMap::new();
            for event in inbox {
                let previous = last.insert(event.room, event.seq).unwrap_or(0);
                assert!(
                    event.seq > previous,
                    "{member} got {:?} #{} after #{previous}",
                    event.room,
                    event.seq
                );
            }
        }
    }
}

prop_state_machine! {
    // Enough cases that a restore by someone seated after the withdrawal comes up
    // several times a run.
    #![proptest_config(Config { cases: 1024, failure_persistence: None, ..Config::default() })]

    #[test]
    fn privacy_and_delivery_invariants_hold(sequential 1..60 => Harness<0>);
}

/// Runs the random test against a mutated delivery and reports whether it failed.
fn mutation_is_caught<const MUTATION: u8>() -> bool {
    let config = Config { cases: 512, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(&Reference::sequential_strategy(1..60), |(initial, transitions, seen)| {
        Harness::<MUTATION>::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    result.is_err()
}

#[test]
fn the_check_catches_a_facilitator_who_receives_caucus_events() {
    assert!(mutation_is_caught::<1>(), "a facilitator reading caucus events went unnoticed");
}

#[test]
fn the_check_catches_a_reconvene_that_drops_a_point() {
    assert!(mutation_is_caught::<2>(), "a reconvene that dropped a point went unnoticed");
}
