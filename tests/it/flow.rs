//! The whole session flow over real sockets: a facilitator and six members go from
//! gathering through two rounds to the end.

use std::time::Duration;

use anyhow::Result;
use caucus_protocol::{Caucus, Command, EventBody, Room, ServerMessage, Settings};
use caucus_tests::room;

use crate::support::{Scene, TestServer};

fn caucus_a() -> Room {
    Caucus::A.room()
}

fn caucus_b() -> Room {
    Caucus::B.room()
}

/// Paused time makes the ten-minute round pass at once; the server's own timers
/// (pings, hello) are pushed out of the way so that only the round's fire.
async fn paused_server() -> TestServer {
    TestServer::start_with(|config| {
        config.timeouts.ping_secs = 24 * 3600;
        config.timeouts.hello_secs = 24 * 3600;
        // The SQLite writer is a thread; paused time would jump ahead while it works.
        config.store.kind = caucus_server::config::StoreKind::Memory;
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_session_runs_from_gathering_through_two_rounds_to_the_end() -> Result<()> {
    let scene = Scene::on(paused_server().await, Settings::default()).await?;
    let mut people = Vec::new();
    for name in ["Amara", "Bayo", "Chen", "Dana", "Eli", "Fern"] {
        let mut person = scene.member(name).await?;
        person.client.wait = Duration::from_secs(24 * 3600);
        people.push(person);
    }
    let mut facilitator = scene.facilitator.client;
    facilitator.wait = Duration::from_secs(24 * 3600);
    let [amara, bayo, chen, dana, eli, fern] = &mut people[..] else { unreachable!() };

    // Gathering: topics are proposed, voted on and one is set.
    amara.client.ok(Command::ProposeTopic { text: "Microaggressions at work".into() }).await?;
    dana.client.ok(Command::ProposeTopic { text: "Allyship fatigue".into() }).await?;
    for voter in [&mut *bayo, &mut *chen, &mut *eli] {
        voter.client.ok(Command::VoteTopic { proposal: 1, vote: true }).await?;
    }
    fern.client.ok(Command::VoteTopic { proposal: 2, vote: true }).await?;
    let voted = amara
        .client
        .expect_body(Room::Plenary, |body| {
            matches!(body, EventBody::TopicVoted { proposal: 1, votes: 3, .. })
        })
        .await?;
    assert_eq!(voted.room, Room::Plenary);
    facilitator.ok(Command::SetTopic { text: "Microaggressions at work".into() }).await?;
    for person in people.iter_mut() {
        person
            .client
            .expect_body(
                Room::Plenary,
                |body| matches!(body, EventBody::TopicSet { text } if text == "Microaggressions at work"),
            )
            .await?;
    }
    let [amara, bayo, chen, dana, eli, fern] = &mut people[..] else { unreachable!() };

    // Caucuses: five choose for themselves, the facilitator seats Fern.
    for (person, caucus) in [
        (&mut *amara, Caucus::A),
        (&mut *bayo, Caucus::A),
        (&mut *chen, Caucus::A),
        (&mut *dana, Caucus::B),
        (&mut *eli, Caucus::B),
    ] {
        person.client.ok(Command::ChooseCaucus { caucus: Some(caucus) }).await?;
        let seat = person
            .client
            .expect("seat", |message| match message {
                ServerMessage::Seat { caucus } => Some(caucus.clone()),
                _ => None,
            })
            .await?;
        assert_eq!(seat.map(|view| view.caucus), Some(caucus));
    }
    facilitator.ok(Command::Move { member: fern.id.clone(), caucus: Some(Caucus::B) }).await?;
    let fern_seat = fern
        .client
        .expect("seat", |message| match message {
            ServerMessage::Seat { caucus } => caucus.clone(),
            _ => None,
        })
        .await?;
    assert_eq!(fern_seat.caucus, Caucus::B);
    assert_eq!(fern_seat.members.len(), 3, "Fern sees the whole of caucus B: {fern_seat:?}");
    // The facilitator sees every seat, on the desk.
    for person in people.iter() {
        facilitator
            .expect_body(
                Room::Facilitators,
                |body| matches!(body, EventBody::Seated { member, caucus: Some(_) } if *member == person.id),
            )
            .await?;
    }
    let [amara, bayo, chen, dana, eli, fern] = &mut people[..] else { unreachable!() };

    // Round 1, timed: ten minutes.
    facilitator.ok(Command::OpenCaucuses { duration_secs: Some(600) }).await?;
    let opened = amara
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::CaucusesOpened { round: 1, .. }))
        .await?;
    let EventBody::CaucusesOpened { topic, deadline, .. } = opened.body else { unreachable!() };
    assert_eq!(topic.as_deref(), Some("Microaggressions at work"));
    assert_eq!(deadline, Some(opened.at + 600_000));

    // Caucus talk and points.
    let a1 = amara.client.say(caucus_a(), "A-secret: being the only one in the room").await?;
    bayo.client.say(caucus_a(), "A-secret: code-switching is exhausting").await?;
    let b1 = dana.client.say(caucus_b(), "B-secret: I stayed silent when it mattered").await?;
    amara.client.ok(Command::Flag { room: room(caucus_a()), seq: a1 }).await?;
    chen.client.ok(Command::WritePoint { room: room(caucus_a()), text: "A-point: draft".into() }).await?;
    let added = bayo
        .client
        .expect_body(
            caucus_a(),
            |body| matches!(body, EventBody::PointAdded { point } if point.text == "A-point: draft"),
        )
        .await?;
    let EventBody::PointAdded { point: draft } = added.body else { unreachable!() };
    bayo.client
        .ok(Command::EditPoint {
            room: room(caucus_a()),
            point: draft.id,
            text: "A-point: we want managers to intervene".into(),
        })
        .await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(caucus_a()), text: "A-point: withdrawn".into() })
        .await?;
    let withdrawn = chen
        .client
        .expect_body(
            caucus_a(),
            |body| matches!(body, EventBody::PointAdded { point } if point.text == "A-point: withdrawn"),
        )
        .await?;
    let EventBody::PointAdded { point: withdrawn } = withdrawn.body else { unreachable!() };
    chen.client.ok(Command::WithdrawPoint { room: room(caucus_a()), point: withdrawn.id }).await?;
    eli.client
        .ok(Command::WritePoint { room: room(caucus_b()), text: "B-point: we will speak up".into() })
        .await?;
    fern.client.ok(Command::Flag { room: room(caucus_b()), seq: b1 }).await?;

    // The timer warns everyone one minute before the end.
    for person in people.iter_mut() {
        let warning = person
            .client
            .expect_body(Room::Plenary, |body| matches!(body, EventBody::TimerWarning { round: 1, .. }))
            .await?;
        assert!(
            matches!(warning.body, EventBody::TimerWarning { deadline: d, .. } if d == deadline.unwrap())
        );
    }
    let [_amara, _bayo, _chen, dana, _eli, _fern] = &mut people[..] else { unreachable!() };

    // Reconvene: exactly the flagged points, by caucus, with no author.
    facilitator.ok(Command::Reconvene { round: 1 }).await?;
    let mut feedback = Vec::new();
    for _ in 0..2 {
        let event = dana
            .client
            .expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { round: 1, .. }))
            .await?;
        feedback.push(event);
    }
    let carried: Vec<_> = feedback
        .iter()
        .map(|event| match &event.body {
            EventBody::Feedback { caucus, label, points, .. } => (*caucus, label.clone(), points.clone()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        carried,
        vec![
            (
                Caucus::A,
                "Racially minoritised caucus".to_owned(),
                vec![
                    "A-secret: being the only one in the room".to_owned(),
                    "A-point: we want managers to intervene".to_owned(),
                ]
            ),
            (
                Caucus::B,
                "White caucus".to_owned(),
                vec![
                    "B-point: we will speak up".to_owned(),
                    "B-secret: I stayed silent when it mattered".to_owned(),
                ]
            ),
        ]
    );
    let feedback_json = serde_json::to_string(&feedback)?;
    for person in people.iter() {
        assert!(!feedback_json.contains(person.id.as_str()), "feedback names a person: {feedback_json}");
    }
    let [amara, bayo, chen, _dana, eli, fern] = &mut people[..] else { unreachable!() };
    let closed = amara.client.refused(Command::Say { room: room(caucus_a()), text: "one more thing".into() });
    assert_eq!(closed.await?.code, caucus_protocol::ErrorCode::CaucusClosed);

    // Round 2, untimed, same seats.
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    chen.client
        .expect_body(Room::Plenary, |body| {
            matches!(body, EventBody::CaucusesOpened { round: 2, deadline: None, .. })
        })
        .await?;
    bayo.client.say(caucus_a(), "A-secret: round two thoughts").await?;
    eli.client.ok(Command::WritePoint { room: room(caucus_b()), text: "B-point: round two".into() }).await?;
    facilitator.ok(Command::Reconvene { round: 2 }).await?;
    let second = fern
        .client
        .expect_body(Room::Plenary, |body| {
            matches!(body, EventBody::Feedback { round: 2, caucus: Caucus::B, .. })
        })
        .await?;
    assert!(
        matches!(&second.body, EventBody::Feedback { points, .. } if points == &vec!["B-point: round two".to_owned()])
    );

    // The end.
    facilitator.ok(Command::EndSession {}).await?;
    for person in people.iter_mut() {
        person.client.expect_body(Room::Plenary, |body| matches!(body, EventBody::SessionEnded {})).await?;
    }
    let refused =
        people[0].client.refused(Command::Say { room: room(Room::Plenary), text: "after the end".into() });
    assert_eq!(refused.await?.code, caucus_protocol::ErrorCode::SessionEnded);
    let rejoin = scene.server.join(&scene.invite, "Late").await;
    assert!(rejoin.is_err(), "an ended session takes no new members");

    // Privacy over everything each client received, on every path.
    facilitator.sync().await?;
    let facilitator_saw = facilitator.transcript();
    for secret in ["A-secret", "B-secret", "A-point", "B-point: round two"] {
        let leaked = facilitator_saw
            .lines()
            .filter(|frame| frame.contains(secret) && !frame.contains("\"kind\":\"feedback\""))
            .count();
        assert_eq!(leaked, 0, "the facilitator received caucus content `{secret}` outside feedback");
    }
    for person in people.iter_mut() {
        person.client.sync().await?;
    }
    let (a_members, b_members) = people.split_at(3);
    for outsider in b_members {
        assert_no_content(&outsider.client.transcript(), "A-secret");
        assert_no_room(&outsider.client.transcript(), "caucus_a");
    }
    for outsider in a_members {
        assert_no_content(&outsider.client.transcript(), "B-secret");
        assert_no_room(&outsider.client.transcript(), "caucus_b");
    }
    assert_no_room(&facilitator_saw, "caucus_a");
    assert_no_room(&facilitator_saw, "caucus_b");
    Ok(())
}

/// No frame carries `secret` except inside carried feedback.
pub fn assert_no_content(transcript: &str, secret: &str) {
    for frame in transcript.lines() {
        if frame.contains(secret) {
            assert!(
                frame.contains("\"kind\":\"feedback\""),
                "caucus content `{secret}` reached an outsider outside feedback: {frame}"
            );
        }
    }
}

/// No frame is an event, typing notice or anything else in `room`.
pub fn assert_no_room(transcript: &str, room: &str) {
    let needle = format!("\"room\":\"{room}\"");
    for frame in transcript.lines() {
        assert!(!frame.contains(&needle), "an outsider received a `{room}` frame: {frame}");
    }
}
