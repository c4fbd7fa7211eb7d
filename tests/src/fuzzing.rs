//! The properties the fuzz targets check, shared with the stable test that replays the
//! fuzz corpus on every test run. Each takes arbitrary bytes and panics on a bug.

use std::collections::BTreeMap;

use caucus_protocol::api::{CreateSession, JoinRequest};
use caucus_protocol::{CaucusLabels, ClientFrame, Command, MemberId, Role, Room, SessionId, Settings};
use caucus_server::session::{Decision, Session, SessionCaps, SessionSetup, TextLimits, check_text};

/// Decoding a client frame never panics, and what decodes re-encodes to the same frame.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = ClientFrame::decode(text) {
        let again = ClientFrame::decode(&frame.encode()).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
    }
}

/// A session with a facilitator, a member in each caucus and a member in none, some
/// talk in every room, and a running round.
fn sample_session() -> Session {
    let mut session = Session::new(SessionSetup {
        id: SessionId::new("s-fuzz").unwrap(),
        title: "Fuzz".into(),
        labels: CaucusLabels { a: "A".into(), b: "B".into() },
        settings: Settings::default(),
        ground_rules: None,
        limits: TextLimits::default(),
        caps: SessionCaps::default(),
        window: 1000,
    })
    .unwrap();
    let apply = |session: &mut Session, drafts| {
        for event in session.stamp(drafts, 1) {
            session.evolve(event);
        }
    };
    for (id, role) in
        [("f-1", Role::Facilitator), ("m-a", Role::Member), ("m-b", Role::Member), ("m-p", Role::Member)]
    {
        let draft = session.decide_join(&MemberId::new(id).unwrap(), id, role.into(), None).unwrap();
        apply(&mut session, vec![draft]);
    }
    let script = [
        ("f-1", r#"{"type":"move","member":"m-a","caucus":"a"}"#),
        ("f-1", r#"{"type":"move","member":"m-b","caucus":"b"}"#),
        ("m-p", r#"{"type":"say","room":"plenary","text":"hello"}"#),
        ("f-1", r#"{"type":"open_caucuses","duration_secs":null}"#),
        ("m-a", r#"{"type":"say","room":"caucus_a","text":"secret a"}"#),
        ("m-b", r#"{"type":"say","room":"caucus_b","text":"secret b"}"#),
        ("m-a", r#"{"type":"write_point","room":"caucus_a","text":"point a"}"#),
    ];
    for (who, frame) in script {
        let command = ClientFrame::decode(frame).unwrap().command;
        if let Ok(Decision::Apply { drafts, .. }) =
            session.decide(&MemberId::new(who).unwrap(), &command, None, 2)
        {
            apply(&mut session, drafts);
        }
    }
    session
}

/// Whatever the `hello` and its resume cursors, the welcome and replay for each person
/// hold only rooms that person may read, and never a caucus event before they joined.
pub fn hello(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ClientFrame { command: Command::Hello { resume, .. }, .. }) = ClientFrame::decode(text) else {
        return;
    };
    let session = sample_session();
    for who in ["f-1", "m-a", "m-b", "m-p", "m-unknown"] {
        let member = MemberId::new(who).unwrap();
        let Some((welcome, replay)) = session.welcome(&member, &resume, Vec::new(), 256) else {
            assert_eq!(who, "m-unknown");
            continue;
        };
        for cursor in &welcome.rooms {
            assert!(session.can_read(&member, cursor.room), "{who} is offered {:?}", cursor.room);
            assert!(cursor.from <= cursor.head);
        }
        for event in replay {
            assert!(session.can_read(&member, event.room), "{who} is replayed {:?}", event.room);
            if matches!(event.room, Room::Caucus(_)) {
                assert_ne!(event.seq, 0);
            }
        }
    }
    let empty: BTreeMap<String, u64> = BTreeMap::new();
    assert!(session.welcome(&MemberId::new("m-p").unwrap(), &empty, Vec::new(), 0).is_some());
}

/// HTTP bodies decode or are refused, never panic; what decodes is checked like a
/// real request would be.
pub fn api_bodies(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<CreateSession>(data) {
        let _ = Session::new(SessionSetup {
            id: SessionId::new("s-fuzz").unwrap(),
            title: request.title,
            labels: request.caucuses,
            settings: request.settings,
            ground_rules: request.ground_rules,
            limits: TextLimits::default(),
            caps: SessionCaps::default(),
            window: 1000,
        });
    }
    if let Ok(request) = serde_json::from_slice::<JoinRequest>(data) {
        let _ = check_text("the name", &request.name, TextLimits::default().name_chars);
    }
}
