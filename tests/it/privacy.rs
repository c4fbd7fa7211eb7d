//! The privacy promise, over real sockets: a caucus's content reaches only its current
//! members, on every path, and outsiders learn nothing from errors.

use anyhow::Result;
use caucus_protocol::{Caucus, Command, ErrorCode, EventBody, Room, ServerMessage, Settings};
use caucus_tests::room;

use crate::flow::{assert_no_content, assert_no_room};
use crate::support::Scene;

/// Facilitator Ada; Amara and Bayo in caucus A; Dana in caucus B; Gus in the plenary
/// only. Round 1 is open.
async fn seated_scene() -> Result<(Scene, Vec<crate::support::Person>)> {
    let scene = Scene::new(Settings::default()).await?;
    let mut people = Vec::new();
    for (name, caucus) in
        [("Amara", Some(Caucus::A)), ("Bayo", Some(Caucus::A)), ("Dana", Some(Caucus::B)), ("Gus", None)]
    {
        let mut person = scene.member(name).await?;
        if caucus.is_some() {
            person.client.ok(Command::ChooseCaucus { caucus }).await?;
        }
        people.push(person);
    }
    Ok((scene, people))
}

#[tokio::test]
async fn caucus_content_reaches_only_its_members_on_every_path() -> Result<()> {
    let (mut scene, mut people) = seated_scene().await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let [amara, bayo, dana, gus] = &mut people[..] else { unreachable!() };
    amara.client.sync().await?;

    // Every kind of caucus A activity: messages, typing, points, help, roster.
    let said = amara.client.say(Caucus::A.room(), "SECRET-1 what we would never say outside").await?;
    amara.client.ok(Command::Typing { room: room(Caucus::A.room()) }).await?;
    amara.client.ok(Command::Flag { room: room(Caucus::A.room()), seq: said }).await?;
    bayo.client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "SECRET-2 draft point".into() })
        .await?;
    bayo.client
        .ok(Command::EditPoint {
            room: room(Caucus::A.room()),
            point: 2,
            text: "SECRET-3 edited point".into(),
        })
        .await?;
    amara.client.ok(Command::AgreePoint { room: room(Caucus::A.room()), point: 2, agree: true }).await?;
    bayo.client.ok(Command::ReorderPoints { room: room(Caucus::A.room()), order: vec![2, 1] }).await?;
    bayo.client.ok(Command::WithdrawPoint { room: room(Caucus::A.room()), point: 2 }).await?;
    amara.client.ok(Command::AskForHelp {}).await?;
    // Bayo reconnects: caucus presence and replay happen again.
    let mut again = scene.server.client().await;
    again.hello(&scene.session, &bayo.token).await?;
    again.close().await;

    // Members of the caucus see it all.
    bayo.client
        .expect_body(
            Caucus::A.room(),
            |body| matches!(body, EventBody::Message { text, .. } if text.starts_with("SECRET-1")),
        )
        .await?;
    bayo.client
        .expect("typing", |message| {
            matches!(message, ServerMessage::Typing { room: Room::Caucus(Caucus::A), .. }).then_some(())
        })
        .await?;
    let help = facilitator
        .expect_body(Room::Facilitators, |body| matches!(body, EventBody::HelpRequested { .. }))
        .await?;
    assert_eq!(help.body, EventBody::HelpRequested { caucus: Caucus::A, by: None });

    // Outsiders, including the facilitator, receive nothing of it.
    facilitator.sync().await?;
    dana.client.sync().await?;
    gus.client.sync().await?;
    for transcript in [facilitator.transcript(), dana.client.transcript(), gus.client.transcript()] {
        assert_no_content(&transcript, "SECRET");
        assert_no_room(&transcript, "caucus_a");
    }
    // Not even who asked for help.
    let desk: Vec<_> = facilitator
        .transcript()
        .lines()
        .filter(|frame| frame.contains("help_requested"))
        .map(str::to_owned)
        .collect();
    assert_eq!(desk.len(), 1);
    assert!(!desk[0].contains(amara.id.as_str()), "help request names the asker: {}", desk[0]);

    // Reconvene carries only the flagged point, with no author.
    facilitator.ok(Command::Reconvene { round: 1 }).await?;
    let feedback = gus
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { caucus: Caucus::A, .. }))
        .await?;
    let EventBody::Feedback { points, .. } = &feedback.body else { unreachable!() };
    assert_eq!(points, &vec!["SECRET-1 what we would never say outside".to_owned()]);
    Ok(())
}

#[tokio::test]
async fn errors_reveal_nothing_about_another_caucus() -> Result<()> {
    let (mut scene, mut people) = seated_scene().await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let [amara, _bayo, dana, _gus] = &mut people[..] else { unreachable!() };
    let seq = amara.client.say(Caucus::A.room(), "SECRET-4").await?;
    amara.client.ok(Command::WritePoint { room: room(Caucus::A.room()), text: "SECRET-5".into() }).await?;
    let heads_before = scene.server.stored_events(&scene.session).await.len();

    // Probing caucus A from caucus B, and probing rooms that do not exist, look alike.
    let say =
        |name: &str| Command::Say { room: caucus_protocol::RoomName(name.into()), text: "probe".into() };
    let into_a = dana.client.refused(say("caucus_a")).await?;
    let nowhere = dana.client.refused(say("caucus_c")).await?;
    assert_eq!((into_a.code, &into_a.message), (nowhere.code, &nowhere.message));
    assert_eq!(into_a.code, ErrorCode::NoSuchRoom);

    let flag_a = dana.client.refused(Command::Flag { room: room(Caucus::A.room()), seq }).await?;
    let flag_missing =
        dana.client.refused(Command::Flag { room: room(Caucus::B.room()), seq: 9_999 }).await?;
    assert_eq!((flag_a.code, &flag_a.message), (flag_missing.code, &flag_missing.message));

    let edit_a = dana
        .client
        .refused(Command::EditPoint { room: room(Caucus::A.room()), point: 1, text: "x".into() })
        .await?;
    assert_eq!(edit_a.code, ErrorCode::NoSuchRoom);
    let typing_a = dana.client.refused(Command::Typing { room: room(Caucus::A.room()) }).await?;
    assert_eq!(typing_a.code, ErrorCode::NoSuchRoom);

    // A facilitator outside the caucus is refused exactly like anyone else.
    let facilitator_post = scene.facilitator.client.refused(say("caucus_a")).await?;
    assert_eq!(facilitator_post.code, ErrorCode::NoSuchRoom);

    // Nothing was stored and nothing was delivered.
    assert_eq!(scene.server.stored_events(&scene.session).await.len(), heads_before);
    amara.client.sync().await?;
    assert!(!amara.client.transcript().contains("probe"));
    Ok(())
}

#[tokio::test]
async fn a_member_moved_out_of_a_caucus_gets_nothing_more_from_it() -> Result<()> {
    let (mut scene, mut people) = seated_scene().await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let [amara, bayo, _dana, _gus] = &mut people[..] else { unreachable!() };
    amara.client.say(Caucus::A.room(), "SECRET-6 before the move").await?;
    bayo.client.expect_body(Caucus::A.room(), |body| matches!(body, EventBody::Message { .. })).await?;
    let old_cursors = bayo.client.resume_cursors();
    assert!(old_cursors.contains_key("caucus_a"));

    facilitator.ok(Command::Move { member: bayo.id.clone(), caucus: Some(Caucus::B) }).await?;
    let seat = bayo
        .client
        .expect("seat in B", |message| match message {
            ServerMessage::Seat { caucus: Some(view) } if view.caucus == Caucus::B => Some(view.clone()),
            _ => None,
        })
        .await?;
    assert!(seat.members.contains(&bayo.id));
    let heard_before = bayo.client.raw.len();
    amara.client.say(Caucus::A.room(), "SECRET-7 after the move").await?;
    amara
        .client
        .ok(Command::WritePoint {
            room: room(Caucus::A.room()),
            text: "SECRET-8 point after the move".into(),
        })
        .await?;
    bayo.client.sync().await?;
    let after: String = bayo.client.raw[heard_before..].join("\n");
    assert!(
        !after.contains("SECRET-7") && !after.contains("SECRET-8"),
        "moved member still hears caucus A: {after}"
    );

    // Resuming with the old cursor into caucus A replays nothing from it.
    let mut resumed_cursors = old_cursors.clone();
    resumed_cursors.insert("caucus_a".into(), 0);
    let mut client = scene.server.client().await;
    let (welcome, replay) = client.hello_resume(&scene.session, &bayo.token, resumed_cursors).await?;
    assert!(welcome.rooms.iter().all(|cursor| cursor.room != Caucus::A.room()));
    assert!(replay.iter().all(|event| event.room != Caucus::A.room()));
    client.sync().await?;
    assert_no_content(&client.transcript(), "SECRET");
    assert_no_room(&client.transcript(), "caucus_a");
    Ok(())
}

#[tokio::test]
async fn a_facilitator_seated_in_a_caucus_reads_it_like_any_member() -> Result<()> {
    let (mut scene, mut people) = seated_scene().await?;
    let facilitator_id = scene.facilitator.id.clone();
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::Move { member: facilitator_id, caucus: Some(Caucus::B) }).await?;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let dana = &mut people[2];
    dana.client.say(Caucus::B.room(), "shared with the facilitator in B").await?;
    facilitator
        .expect_body(
            Caucus::B.room(),
            |body| matches!(body, EventBody::Message { text, .. } if text.starts_with("shared")),
        )
        .await?;
    facilitator.sync().await?;
    assert_no_room(&facilitator.transcript(), "caucus_a");
    Ok(())
}
