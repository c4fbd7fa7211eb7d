//! Unit tests of the pure session state machine: no tokio, no sockets.

use std::collections::BTreeMap;

use caucus_protocol::{
    Caucus, CaucusLabels, ClientId, Command, ErrorCode, EventBody, MemberId, Phase, Role, Room, RoomEvent,
    RoomName, SessionId, Settings,
};

use super::state::{Decision, Refusal, Session, SessionCaps, SessionSetup, TextLimits};

const START: u64 = 1_800_000_000_000;

fn id(text: &str) -> MemberId {
    MemberId::new(text).unwrap()
}

fn room(name: &str) -> RoomName {
    RoomName(name.to_owned())
}

/// A session with facilitator `f-ada` and members `m-1` … `m-4`.
struct Fixture {
    session: Session,
    now: u64,
}

impl Fixture {
    fn new(settings: Settings) -> Self {
        Self::with_window(settings, 1000)
    }

    /// A session that holds `window` events of each room in memory.
    fn with_window(settings: Settings, window: usize) -> Self {
        let session = Session::new(SessionSetup {
            id: SessionId::new("s-test").unwrap(),
            title: "Practice circle".into(),
            labels: CaucusLabels { a: "Racially minoritised caucus".into(), b: "White caucus".into() },
            settings,
            ground_rules: None,
            limits: TextLimits::default(),
            caps: SessionCaps::default(),
            window,
        })
        .unwrap();
        let mut fixture = Self { session, now: START };
        fixture.join("f-ada", Role::Facilitator);
        for member in ["m-1", "m-2", "m-3", "m-4"] {
            fixture.join(member, Role::Member);
        }
        fixture
    }

    fn join(&mut self, who: &str, role: Role) {
        let draft = self.session.decide_join(&id(who), who, role.into(), None).unwrap();
        self.store(vec![draft]);
    }

    fn store(&mut self, drafts: Vec<super::Draft>) -> Vec<RoomEvent> {
        let events = self.session.stamp(drafts, self.now);
        for event in &events {
            self.session.evolve(event.clone());
        }
        events
    }

    fn try_apply(&mut self, who: &str, command: Command) -> Result<Vec<RoomEvent>, Refusal> {
        self.try_apply_with_id(who, command, None)
    }

    fn try_apply_with_id(
        &mut self,
        who: &str,
        command: Command,
        client_id: Option<&str>,
    ) -> Result<Vec<RoomEvent>, Refusal> {
        let client_id = client_id.map(|key| ClientId::new(key).unwrap());
        match self.session.decide(&id(who), &command, client_id.as_ref(), self.now)? {
            Decision::Apply { drafts, .. } => Ok(self.store(drafts)),
            Decision::Repeat { .. } | Decision::Typing { .. } | Decision::History { .. } => Ok(Vec::new()),
            Decision::Erase { member, drafts } => {
                let rewrites = Session::erasure_rewrites(&member, self.session.held_events());
                self.session.apply_rewrites(rewrites);
                Ok(self.store(drafts))
            }
        }
    }

    fn apply(&mut self, who: &str, command: Command) -> Vec<RoomEvent> {
        self.try_apply(who, command.clone())
            .unwrap_or_else(|refusal| panic!("{who} {command:?} refused: {refusal}"))
    }

    fn refusal(&mut self, who: &str, command: Command) -> ErrorCode {
        let before = self.heads();
        let code = self.try_apply(who, command).unwrap_err().code();
        assert_eq!(self.heads(), before, "a refused command stored something");
        code
    }

    fn heads(&self) -> Vec<u64> {
        Room::ALL.iter().map(|room| self.session.head(*room)).collect()
    }

    fn seat(&mut self, who: &str, caucus: Caucus) {
        self.apply("f-ada", Command::Move { member: id(who), caucus: Some(caucus) });
    }

    fn say(&mut self, who: &str, room_name: &str, text: &str) -> RoomEvent {
        self.apply(who, Command::Say { room: room(room_name), text: text.into() }).remove(0)
    }

    fn open(&mut self, duration_secs: Option<u32>) {
        self.apply("f-ada", Command::OpenCaucuses { duration_secs });
    }

    fn tick(&mut self, now: u64) -> Vec<RoomEvent> {
        self.now = now;
        let drafts = self.session.decide_tick(now);
        self.store(drafts)
    }

    /// Two members in each caucus, round 1 open.
    fn caucusing() -> Self {
        let mut fixture = Self::new(Settings::default());
        fixture.seat("m-1", Caucus::A);
        fixture.seat("m-2", Caucus::A);
        fixture.seat("m-3", Caucus::B);
        fixture.seat("m-4", Caucus::B);
        fixture.open(None);
        fixture
    }
}

fn feedback(events: &[RoomEvent]) -> Vec<(Caucus, Vec<String>)> {
    events
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Feedback { caucus, points, .. } => Some((*caucus, points.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn caucus_rooms_are_read_only_by_their_current_members() {
    let mut fixture = Fixture::caucusing();
    let session = &fixture.session;
    assert!(session.can_read(&id("m-1"), Caucus::A.room()));
    assert!(!session.can_read(&id("m-1"), Caucus::B.room()));
    assert!(!session.can_read(&id("m-3"), Caucus::A.room()));
    assert!(!session.can_read(&id("f-ada"), Caucus::A.room()));
    assert!(session.can_read(&id("f-ada"), Room::Facilitators));
    assert!(!session.can_read(&id("m-1"), Room::Facilitators));
    let readers: Vec<_> = session.readers(Caucus::A.room()).cloned().collect();
    assert_eq!(readers, vec![id("m-1"), id("m-2")]);

    fixture.seat("m-1", Caucus::B);
    assert!(!fixture.session.can_read(&id("m-1"), Caucus::A.room()));
    assert!(fixture.session.can_read(&id("m-1"), Caucus::B.room()));
}

#[test]
fn no_such_room_and_not_your_room_are_the_same_refusal() {
    let mut fixture = Fixture::caucusing();
    let other = fixture.refusal("m-1", Command::Say { room: room("caucus_b"), text: "hello".into() });
    let missing = fixture.refusal("m-1", Command::Say { room: room("caucus_z"), text: "hello".into() });
    let facilitator = fixture.refusal("f-ada", Command::Say { room: room("caucus_a"), text: "hello".into() });
    assert_eq!(other, ErrorCode::NoSuchRoom);
    assert_eq!(missing, ErrorCode::NoSuchRoom);
    assert_eq!(facilitator, ErrorCode::NoSuchRoom);
    // Even with empty text, an outsider learns only that the room is not theirs.
    let empty = fixture.refusal("m-1", Command::Say { room: room("caucus_b"), text: " ".into() });
    assert_eq!(empty, ErrorCode::NoSuchRoom);
}

#[test]
fn flagging_another_caucus_message_and_a_missing_one_look_the_same() {
    let mut fixture = Fixture::caucusing();
    let said = fixture.say("m-3", "caucus_b", "in b");
    let across = fixture.refusal("m-1", Command::Flag { room: room("caucus_b"), seq: said.seq });
    let missing = fixture.refusal("m-1", Command::Flag { room: room("caucus_a"), seq: 999 });
    let plenary = fixture.refusal("m-1", Command::Flag { room: room("plenary"), seq: 1 });
    assert_eq!(across, ErrorCode::NoSuchMessage);
    assert_eq!(missing, ErrorCode::NoSuchMessage);
    assert_eq!(plenary, ErrorCode::NoSuchMessage);
}

#[test]
fn members_cannot_run_facilitator_commands() {
    let mut fixture = Fixture::caucusing();
    let commands = [
        Command::Move { member: id("m-2"), caucus: None },
        Command::Reconvene { round: 1 },
        Command::EndSession {},
        Command::Broadcast { text: "hi".into() },
        Command::ExtendRound { secs: 60 },
        Command::SetTopic { text: "t".into() },
        Command::Remove { member: id("m-2") },
    ];
    for command in commands {
        assert_eq!(fixture.refusal("m-1", command), ErrorCode::Forbidden);
    }
    assert_eq!(fixture.session.phase(), Phase::Caucusing { round: 1 });
}

#[test]
fn reconvene_carries_flagged_points_in_order_without_authors() {
    let mut fixture = Fixture::caucusing();
    let first = fixture.say("m-1", "caucus_a", "we need time to name harm");
    fixture.apply("m-2", Command::WritePoint { room: room("caucus_a"), text: "written point".into() });
    fixture.apply("m-1", Command::Flag { room: room("caucus_a"), seq: first.seq });
    fixture.apply("m-3", Command::WritePoint { room: room("caucus_b"), text: "to withdraw".into() });
    fixture.apply("m-4", Command::WithdrawPoint { room: room("caucus_b"), point: 1 });
    fixture.apply("m-4", Command::WritePoint { room: room("caucus_b"), text: "draft".into() });
    fixture
        .apply("m-3", Command::EditPoint { room: room("caucus_b"), point: 2, text: "final wording".into() });
    fixture.apply("m-1", Command::ReorderPoints { room: room("caucus_a"), order: vec![2, 1] });

    let events = fixture.apply("f-ada", Command::Reconvene { round: 1 });
    // Everything goes to the plenary, but the desk's counts, back to zero.
    assert!(events.iter().all(|event| event.room == Room::Plenary
        || matches!(event.body, EventBody::PointsCounted { count: 0, .. })));
    assert!(matches!(events[0].body, EventBody::Reconvened { round: 1, time_up: false }));
    assert_eq!(
        feedback(&events),
        vec![
            (Caucus::A, vec!["we need time to name harm".to_owned(), "written point".to_owned()]),
            (Caucus::B, vec!["final wording".to_owned()]),
        ]
    );
    let json = serde_json::to_string(&events).unwrap();
    for member in ["m-1", "m-2", "m-3", "m-4"] {
        assert!(!json.contains(member), "feedback names {member}: {json}");
    }
    assert_eq!(fixture.session.phase(), Phase::Reconvened { round: 1 });
    assert!(fixture.session.points(Caucus::A).is_empty());
}

#[test]
fn a_second_reconvene_of_the_same_round_changes_nothing() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("f-ada", Command::Reconvene { round: 1 });
    let heads = fixture.heads();
    let again = fixture.apply("f-ada", Command::Reconvene { round: 1 });
    assert!(again.is_empty());
    assert_eq!(fixture.heads(), heads);
    assert_eq!(fixture.refusal("f-ada", Command::Reconvene { round: 2 }), ErrorCode::WrongPhase);
}

#[test]
fn posts_to_a_closed_caucus_are_refused() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("f-ada", Command::Reconvene { round: 1 });
    let code = fixture.refusal("m-1", Command::Say { room: room("caucus_a"), text: "too late".into() });
    assert_eq!(code, ErrorCode::CaucusClosed);
    let code =
        fixture.refusal("m-1", Command::WritePoint { room: room("caucus_a"), text: "too late".into() });
    assert_eq!(code, ErrorCode::CaucusClosed);
}

#[test]
fn a_point_needing_agreement_carries_only_when_another_member_agrees() {
    let mut fixture = Fixture::new(Settings { carry_needs_agreement: true, ..Settings::default() });
    fixture.seat("m-1", Caucus::A);
    fixture.seat("m-2", Caucus::A);
    fixture.open(None);
    for text in ["agreed", "alone"] {
        fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: text.into() });
    }
    let own = fixture.refusal("m-1", Command::AgreePoint { room: room("caucus_a"), point: 2, agree: true });
    assert_eq!(own, ErrorCode::InvalidValue);
    fixture.apply("m-2", Command::AgreePoint { room: room("caucus_a"), point: 1, agree: true });
    let events = fixture.apply("f-ada", Command::Reconvene { round: 1 });
    assert_eq!(feedback(&events)[0], (Caucus::A, vec!["agreed".to_owned()]));
}

#[test]
fn editing_a_point_clears_its_agreements() {
    let mut fixture = Fixture::new(Settings { carry_needs_agreement: true, ..Settings::default() });
    fixture.seat("m-1", Caucus::A);
    fixture.seat("m-2", Caucus::A);
    fixture.open(None);
    fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: "v1".into() });
    fixture.apply("m-2", Command::AgreePoint { room: room("caucus_a"), point: 1, agree: true });
    fixture.apply("m-1", Command::EditPoint { room: room("caucus_a"), point: 1, text: "v2".into() });
    let events = fixture.apply("f-ada", Command::Reconvene { round: 1 });
    assert_eq!(feedback(&events)[0], (Caucus::A, Vec::<String>::new()));
}

#[test]
fn the_timer_warns_one_minute_before_the_end_then_tells_facilitators_and_the_caucuses() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("f-ada", Command::Reconvene { round: 1 });
    fixture.open(Some(600));
    let deadline = START + 600_000;
    assert_eq!(fixture.session.next_deadline(), Some(deadline - 60_000));
    assert!(fixture.tick(deadline - 60_001).is_empty());
    let warning = fixture.tick(deadline - 60_000);
    let rooms: Vec<Room> = warning.iter().map(|event| event.room).collect();
    assert_eq!(rooms, [Room::Plenary, Caucus::A.room(), Caucus::B.room()], "the caucuses are warned too");
    assert!(warning.iter().all(|event| matches!(event.body, EventBody::TimerWarning { round: 2, .. })));
    assert_eq!(fixture.session.next_deadline(), Some(deadline));
    let up = fixture.tick(deadline);
    let rooms: Vec<Room> = up.iter().map(|event| event.room).collect();
    assert_eq!(rooms, [Room::Facilitators, Caucus::A.room(), Caucus::B.room()], "time is up in each caucus");
    assert!(up.iter().all(|event| matches!(event.body, EventBody::TimeUp { round: 2 })));
    assert_eq!(fixture.session.phase(), Phase::Caucusing { round: 2 });
    assert_eq!(fixture.session.next_deadline(), None);

    // Extending after time is up counts from now.
    fixture.now = deadline + 10_000;
    let extended = fixture.apply("f-ada", Command::ExtendRound { secs: 300 });
    assert!(
        matches!(extended[0].body, EventBody::RoundExtended { deadline: d, .. } if d == deadline + 310_000)
    );
    assert_eq!(fixture.session.next_deadline(), Some(deadline + 250_000));
}

#[test]
fn short_rounds_warn_at_half_time_and_can_reconvene_on_their_own() {
    let mut fixture = Fixture::new(Settings { auto_reconvene: true, ..Settings::default() });
    fixture.seat("m-1", Caucus::A);
    fixture.open(Some(60));
    fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: "carried by the clock".into() });
    assert_eq!(fixture.session.next_deadline(), Some(START + 30_000));
    assert!(matches!(fixture.tick(START + 30_000)[0].body, EventBody::TimerWarning { .. }));
    let end = fixture.tick(START + 60_000);
    assert_eq!(fixture.session.phase(), Phase::Reconvened { round: 1 });
    assert_eq!(feedback(&end)[0], (Caucus::A, vec!["carried by the clock".to_owned()]));
}

#[test]
fn a_retried_say_is_stored_once() {
    let mut fixture = Fixture::new(Settings::default());
    let command = Command::Say { room: room("plenary"), text: "hello".into() };
    let first = fixture.try_apply_with_id("m-1", command.clone(), Some("c-1")).unwrap();
    let decision =
        fixture.session.decide(&id("m-1"), &command, Some(&ClientId::new("c-1").unwrap()), START).unwrap();
    assert_eq!(decision, Decision::Repeat { room: Room::Plenary, seq: first[0].seq });
    // Another sender may use the same key.
    let other = fixture.try_apply_with_id("m-2", command, Some("c-1")).unwrap();
    assert_eq!(other[0].seq, first[0].seq + 1);
}

#[test]
fn members_moved_into_a_caucus_read_only_what_comes_after() {
    let mut fixture = Fixture::caucusing();
    fixture.say("m-1", "caucus_a", "before m-3 arrived");
    fixture.seat("m-3", Caucus::A);
    fixture.say("m-1", "caucus_a", "after m-3 arrived");
    let (welcome, replay) = fixture.session.welcome(&id("m-3"), &BTreeMap::new(), Vec::new(), 100).unwrap();
    let texts: Vec<_> = replay
        .iter()
        .filter_map(|event| match &event.body {
            EventBody::Message { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["after m-3 arrived"]);
    assert!(!welcome.rooms.iter().any(|cursor| cursor.room == Caucus::B.room()));
    // A flag of the earlier message is refused like any unknown message.
    assert_eq!(
        fixture.refusal("m-3", Command::Flag { room: room("caucus_a"), seq: 1 }),
        ErrorCode::NoSuchMessage
    );
}

#[test]
fn resume_cursors_never_cross_into_another_caucus() {
    let mut fixture = Fixture::caucusing();
    fixture.say("m-3", "caucus_b", "b secret");
    let cursors = BTreeMap::from([("caucus_b".to_owned(), 0), ("plenary".to_owned(), 0)]);
    let (welcome, replay) = fixture.session.welcome(&id("m-1"), &cursors, Vec::new(), 100).unwrap();
    assert!(replay.iter().all(|event| event.room != Caucus::B.room()));
    assert!(welcome.rooms.iter().all(|cursor| cursor.room != Caucus::B.room()));
    // A cursor ahead of the room is reset, not trusted.
    let ahead = BTreeMap::from([("plenary".to_owned(), 10_000)]);
    let (welcome, _) = fixture.session.welcome(&id("m-1"), &ahead, Vec::new(), 100).unwrap();
    let plenary = welcome.rooms.iter().find(|cursor| cursor.room == Room::Plenary).unwrap();
    assert!(plenary.reset);
}

#[test]
fn facilitators_see_seats_but_not_caucus_content() {
    let mut fixture = Fixture::caucusing();
    fixture.say("m-1", "caucus_a", "private words");
    let (welcome, replay) = fixture.session.welcome(&id("f-ada"), &BTreeMap::new(), Vec::new(), 100).unwrap();
    let seats = welcome.seats.unwrap();
    assert!(seats.iter().any(|seat| seat.member == id("m-1") && seat.caucus == Some(Caucus::A)));
    assert!(welcome.caucus.is_none());
    let json = serde_json::to_string(&replay).unwrap();
    assert!(!json.contains("private words"));
}

#[test]
fn help_requests_tell_facilitators_the_caucus_only() {
    let mut fixture = Fixture::caucusing();
    let events = fixture.apply("m-1", Command::AskForHelp {});
    let desk: Vec<_> = events.iter().filter(|event| event.room == Room::Facilitators).collect();
    assert_eq!(desk.len(), 1);
    assert_eq!(desk[0].body, EventBody::HelpRequested { caucus: Caucus::A, by: None });
}

#[test]
fn the_plenary_is_quiet_for_members_during_a_round() {
    let mut fixture = Fixture::caucusing();
    assert_eq!(
        fixture.refusal("m-1", Command::Say { room: room("plenary"), text: "hello?".into() }),
        ErrorCode::PlenaryQuiet
    );
    fixture.say("f-ada", "plenary", "five minutes left");
}

#[test]
fn self_choice_can_be_switched_off() {
    let mut fixture = Fixture::new(Settings { self_choice: false, ..Settings::default() });
    assert_eq!(
        fixture.refusal("m-1", Command::ChooseCaucus { caucus: Some(Caucus::A) }),
        ErrorCode::SelfChoiceOff
    );
    let mut open = Fixture::new(Settings::default());
    let events = open.apply("m-1", Command::ChooseCaucus { caucus: Some(Caucus::B) });
    // The choice reaches the facilitators' desk and the caucus, never the plenary.
    assert!(events.iter().all(|event| event.room != Room::Plenary));
    assert_eq!(open.session.seat_of(&id("m-1")), Some(Caucus::B));
}

#[test]
fn topics_are_proposed_voted_and_set() {
    let mut fixture = Fixture::new(Settings::default());
    fixture.apply("m-1", Command::ProposeTopic { text: "Microaggressions at work".into() });
    fixture.apply("m-2", Command::VoteTopic { proposal: 1, vote: true });
    let events = fixture.apply("m-3", Command::VoteTopic { proposal: 1, vote: true });
    assert!(matches!(events[0].body, EventBody::TopicVoted { votes: 2, .. }));
    // Voting twice changes nothing.
    assert!(fixture.apply("m-3", Command::VoteTopic { proposal: 1, vote: true }).is_empty());
    assert_eq!(
        fixture.refusal("m-3", Command::VoteTopic { proposal: 9, vote: true }),
        ErrorCode::NoSuchProposal
    );
    fixture.apply("f-ada", Command::SetTopic { text: "Microaggressions at work".into() });
    fixture.seat("m-1", Caucus::A);
    let opened = fixture.apply("f-ada", Command::OpenCaucuses { duration_secs: None });
    assert!(
        matches!(&opened[0].body, EventBody::CaucusesOpened { topic: Some(topic), .. } if topic == "Microaggressions at work")
    );
}

#[test]
fn ending_mid_round_carries_points_and_makes_the_session_read_only() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: "kept".into() });
    let events = fixture.apply("f-ada", Command::EndSession {});
    assert_eq!(feedback(&events)[0].1, vec!["kept".to_owned()]);
    assert_eq!(fixture.session.phase(), Phase::Ended);
    assert_eq!(
        fixture.refusal("m-1", Command::Say { room: room("plenary"), text: "hello".into() }),
        ErrorCode::SessionEnded
    );
}

#[test]
fn text_limits_give_empty_and_too_long() {
    let mut fixture = Fixture::new(Settings::default());
    let say = |text: String| Command::Say { room: room("plenary"), text };
    assert_eq!(fixture.refusal("m-1", say(String::new())), ErrorCode::Empty);
    assert_eq!(fixture.refusal("m-1", say(" \n\t".into())), ErrorCode::Empty);
    assert_eq!(fixture.refusal("m-1", say("é".repeat(4001))), ErrorCode::TooLong);
    let stored = fixture.say("m-1", "plenary", &"é".repeat(4000));
    assert!(matches!(stored.body, EventBody::Message { .. }));
}

#[test]
fn removed_people_lose_their_seat_and_every_room() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("f-ada", Command::Remove { member: id("m-1") });
    assert!(!fixture.session.can_read(&id("m-1"), Room::Plenary));
    assert!(!fixture.session.can_read(&id("m-1"), Caucus::A.room()));
    assert!(fixture.session.is_removed(&id("m-1")));
    assert_eq!(fixture.refusal("f-ada", Command::Remove { member: id("f-ada") }), ErrorCode::InvalidValue);
}

#[test]
fn a_gap_longer_than_the_replay_limit_resets_the_room() {
    let mut fixture = Fixture::new(Settings::default());
    for n in 0..10 {
        fixture.say("m-1", "plenary", &format!("message {n}"));
    }
    let head = fixture.session.head(Room::Plenary);
    let cursors = BTreeMap::from([("plenary".to_owned(), head - 8)]);
    let (welcome, replay) = fixture.session.welcome(&id("m-2"), &cursors, Vec::new(), 5).unwrap();
    let plenary = &welcome.rooms[0];
    assert!(plenary.reset);
    assert_eq!(plenary.from, head - 5);
    assert_eq!(replay.len(), 5);
    let near = BTreeMap::from([("plenary".to_owned(), head - 3)]);
    let (welcome, replay) = fixture.session.welcome(&id("m-2"), &near, Vec::new(), 5).unwrap();
    assert!(!welcome.rooms[0].reset);
    assert_eq!(replay.len(), 3);
}

#[test]
fn an_editor_cannot_agree_to_their_own_wording_and_leavers_agreements_lapse() {
    let mut fixture = Fixture::new(Settings { carry_needs_agreement: true, ..Settings::default() });
    for member in ["m-1", "m-2", "m-3"] {
        fixture.seat(member, Caucus::A);
    }
    fixture.open(None);
    for text in ["edited", "agreed by a leaver"] {
        fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: text.into() });
    }
    fixture
        .apply("m-2", Command::EditPoint { room: room("caucus_a"), point: 1, text: "m-2's wording".into() });
    let own = fixture.refusal("m-2", Command::AgreePoint { room: room("caucus_a"), point: 1, agree: true });
    assert_eq!(own, ErrorCode::InvalidValue);
    fixture.apply("m-3", Command::AgreePoint { room: room("caucus_a"), point: 2, agree: true });
    fixture.seat("m-3", Caucus::B);
    let events = fixture.apply("f-ada", Command::Reconvene { round: 1 });
    assert_eq!(feedback(&events)[0], (Caucus::A, Vec::<String>::new()));
}

#[test]
fn erasure_works_after_the_end_and_a_second_one_changes_nothing() {
    let mut fixture = Fixture::new(Settings::default());
    fixture.say("m-1", "plenary", "words to erase");
    fixture.apply("f-ada", Command::EndSession {});
    let events = fixture.apply("f-ada", Command::EraseMember { member: id("m-1") });
    assert!(events.iter().any(|event| matches!(event.body, EventBody::Erased { .. })));
    let plenary = fixture.session.held(Room::Plenary, 1, fixture.session.head(Room::Plenary) + 1).unwrap();
    let json = serde_json::to_string(&fixture.session.minutes(&plenary)).unwrap();
    assert!(!json.contains("words to erase"), "{json}");
    assert!(fixture.apply("f-ada", Command::EraseMember { member: id("m-1") }).is_empty());
}

#[test]
fn a_facilitator_answers_a_request_for_help_and_the_caucus_sees_who_is_coming() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("m-1", Command::AskForHelp {});
    let answered = fixture.apply("f-ada", Command::AnswerHelp { caucus: Caucus::A });
    let rooms: Vec<Room> = answered.iter().map(|event| event.room).collect();
    assert_eq!(rooms, [Caucus::A.room(), Room::Facilitators]);
    assert!(answered.iter().all(
        |event| matches!(&event.body, EventBody::HelpAnswered { caucus: Caucus::A, by } if by.as_str() == "f-ada")
    ));
    assert_eq!(fixture.refusal("m-1", Command::AnswerHelp { caucus: Caucus::A }), ErrorCode::Forbidden);
    fixture.apply("f-ada", Command::Reconvene { round: 1 });
    assert_eq!(fixture.refusal("f-ada", Command::AnswerHelp { caucus: Caucus::A }), ErrorCode::CaucusClosed);
}

#[test]
fn a_withdrawn_point_comes_back_where_it_was_until_the_round_is_carried() {
    let mut fixture = Fixture::caucusing();
    for text in ["first", "second", "third"] {
        fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: text.into() });
    }
    fixture.apply("m-2", Command::AgreePoint { room: room("caucus_a"), point: 2, agree: true });
    fixture.apply("m-2", Command::WithdrawPoint { room: room("caucus_a"), point: 2 });
    let texts = |fixture: &Fixture| -> Vec<String> {
        fixture.session.points(Caucus::A).iter().map(|point| point.text.clone()).collect()
    };
    assert_eq!(texts(&fixture), ["first", "third"]);
    let restored = fixture.apply("m-1", Command::RestorePoint { room: room("caucus_a"), point: 2 });
    assert!(matches!(&restored[0].body, EventBody::PointRestored { point, by }
        if point.text == "second" && point.agreed_by.len() == 1 && by.as_str() == "m-1"));
    assert_eq!(texts(&fixture), ["first", "second", "third"], "back at its place, agreement and all");
    assert_eq!(
        fixture.refusal("m-1", Command::RestorePoint { room: room("caucus_a"), point: 2 }),
        ErrorCode::NoSuchPoint,
        "a point that is not withdrawn cannot be restored"
    );
    assert_eq!(
        fixture.refusal("m-3", Command::RestorePoint { room: room("caucus_a"), point: 2 }),
        ErrorCode::NoSuchRoom,
        "only the caucus's own members"
    );
    fixture.apply("m-1", Command::WithdrawPoint { room: room("caucus_a"), point: 3 });
    fixture.apply("f-ada", Command::Reconvene { round: 1 });
    fixture.open(None);
    assert_eq!(
        fixture.refusal("m-1", Command::RestorePoint { room: room("caucus_a"), point: 3 }),
        ErrorCode::NoSuchPoint,
        "what was withdrawn in a carried round stays withdrawn"
    );
}

#[test]
fn a_point_withdrawn_before_someone_sat_down_is_unknown_to_them() {
    let mut fixture = Fixture::caucusing();
    fixture.apply("m-1", Command::WritePoint { room: room("caucus_a"), text: "taken back".into() });
    fixture.apply("m-2", Command::AgreePoint { room: room("caucus_a"), point: 1, agree: true });
    fixture.apply("m-1", Command::WithdrawPoint { room: room("caucus_a"), point: 1 });
    // A member who moves in, and a facilitator who seats herself, after the withdrawal:
    // to them the point is as unknown as one that never was, so nothing of it (wording,
    // author, agreement) reaches them, and they cannot carry it.
    fixture.seat("m-3", Caucus::A);
    fixture.seat("f-ada", Caucus::A);
    for newcomer in ["m-3", "f-ada"] {
        let restore = Command::RestorePoint { room: room("caucus_a"), point: 1 };
        assert_eq!(fixture.refusal(newcomer, restore), ErrorCode::NoSuchPoint, "{newcomer}");
        let never = Command::RestorePoint { room: room("caucus_a"), point: 7 };
        assert_eq!(fixture.refusal(newcomer, never), ErrorCode::NoSuchPoint, "{newcomer}");
    }
    // A withdrawal they saw, they may undo; and whoever saw the first may undo it still.
    fixture.apply("m-3", Command::WritePoint { room: room("caucus_a"), text: "seen going".into() });
    fixture.apply("m-3", Command::WithdrawPoint { room: room("caucus_a"), point: 2 });
    fixture.apply("f-ada", Command::RestorePoint { room: room("caucus_a"), point: 2 });
    fixture.apply("m-2", Command::RestorePoint { room: room("caucus_a"), point: 1 });
    let texts: Vec<&str> =
        fixture.session.points(Caucus::A).iter().map(|point| point.text.as_str()).collect();
    assert_eq!(texts, ["taken back", "seen going"]);
}

#[test]
fn a_facilitator_outside_a_caucus_learns_its_point_count_and_never_a_point() {
    let mut fixture = Fixture::caucusing();
    assert!(!fixture.session.can_read(&id("f-ada"), Caucus::A.room()));
    // What reaches the facilitators' desk, as (caucus, count); nothing else of a point.
    let counts = |events: &[RoomEvent]| -> Vec<(Caucus, u32)> {
        events
            .iter()
            .filter(|event| event.room == Room::Facilitators)
            .filter_map(|event| match event.body {
                EventBody::PointsCounted { caucus, count } => Some((caucus, count)),
                _ => None,
            })
            .collect()
    };
    let mut desk = Vec::new();
    let mut step = |fixture: &mut Fixture, who: &str, command: Command| {
        let events = fixture.apply(who, command);
        desk.extend(events.iter().filter(|event| event.room == Room::Facilitators).cloned());
        counts(&events)
    };
    let said = fixture.say("m-1", "caucus_a", "a secret sentence");
    let wrote = Command::WritePoint { room: room("caucus_a"), text: "a secret point".into() };
    assert_eq!(step(&mut fixture, "m-1", wrote), [(Caucus::A, 1)]);
    let flagged = Command::Flag { room: room("caucus_a"), seq: said.seq };
    assert_eq!(step(&mut fixture, "m-2", flagged), [(Caucus::A, 2)]);
    let edited = Command::EditPoint { room: room("caucus_a"), point: 1, text: "a secret rewording".into() };
    assert_eq!(step(&mut fixture, "m-2", edited), [], "an edit changes no count");
    let withdrawn = Command::WithdrawPoint { room: room("caucus_a"), point: 2 };
    assert_eq!(step(&mut fixture, "m-1", withdrawn), [(Caucus::A, 1)]);
    let restored = Command::RestorePoint { room: room("caucus_a"), point: 2 };
    assert_eq!(step(&mut fixture, "m-1", restored), [(Caucus::A, 2)]);
    assert_eq!(
        step(&mut fixture, "f-ada", Command::Reconvene { round: 1 }),
        [(Caucus::A, 0)],
        "carrying resets the caucus that had points; the other had none to reset"
    );
    assert!(desk.iter().all(|event| matches!(event.body, EventBody::PointsCounted { .. })));
    let json = serde_json::to_string(&desk).unwrap();
    for secret in ["secret", "m-1", "m-2"] {
        assert!(!json.contains(secret), "the desk learned {secret:?}: {json}");
    }
}

#[test]
fn a_session_holds_only_its_window_and_replay_never_reaches_before_it() {
    let mut fixture = Fixture::with_window(Settings::default(), 6);
    for n in 0..20 {
        fixture.say("m-1", "plenary", &format!("w{n}"));
    }
    let head = fixture.session.head(Room::Plenary);
    assert!(fixture.session.event(Room::Plenary, head - 6).is_none(), "older events are in the store only");
    assert!(fixture.session.event(Room::Plenary, head - 5).is_some());
    assert!(fixture.session.held(Room::Plenary, head - 7, head).is_none());
    assert!(!fixture.session.holds_whole(Room::Plenary));

    // A cursor from before the window resets the room to what memory holds.
    let cursors = BTreeMap::from([("plenary".to_owned(), 2)]);
    let (welcome, replay) = fixture.session.welcome(&id("m-2"), &cursors, Vec::new(), 100).unwrap();
    let plenary = welcome.rooms.iter().find(|cursor| cursor.room == Room::Plenary).unwrap();
    assert!(plenary.reset);
    assert_eq!(plenary.from, head - 6);
    assert_eq!(replay.len(), 6);

    // History still asks for the range the person may read; the actor reads the store.
    let decision = fixture
        .session
        .decide(&id("m-2"), &Command::History { room: room("plenary"), before: Some(4), limit: 10 }, None, 0)
        .unwrap();
    assert!(matches!(decision, Decision::History { start: 1, end: 4, more: false, .. }), "{decision:?}");
}

#[test]
fn a_member_added_as_a_facilitator_becomes_one_and_nobody_joins_twice() {
    let mut fixture = Fixture::new(Settings::default());
    let draft = fixture.session.decide_join(&id("m-1"), "m-1", Role::Facilitator.into(), None).unwrap();
    let events = fixture.store(vec![draft]);
    assert!(
        matches!(
            &events[..],
            [RoomEvent { body: EventBody::RoleChanged { role: Role::Facilitator, .. }, .. }]
        ),
        "{events:?}"
    );
    assert_eq!(fixture.session.role_of(&id("m-1")), Some(Role::Facilitator));
    // Already a facilitator, or joining as a member again: refused, nothing changes.
    for role in [Role::Facilitator, Role::Member] {
        let refusal = fixture.session.decide_join(&id("m-1"), "m-1", role.into(), None).unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::InvalidValue, "{role:?}");
        assert!(refusal.to_string().contains("already here"), "{refusal}");
    }
    assert_eq!(
        fixture.session.decide_join(&id("m-2"), "m-2", Role::Member.into(), None).unwrap_err().code(),
        ErrorCode::InvalidValue
    );
}
