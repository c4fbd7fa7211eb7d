//! Facilitator tools over real sockets: broadcast, remove, roles, presence, and who
//! waits in the plenary during a round.

use anyhow::{Result, ensure};
use caucus_protocol::{Caucus, Command, ErrorCode, EventBody, Role, Room, ServerMessage, Settings, close};
use caucus_tests::GuestToken;

use crate::support::{Person, Scene};

#[tokio::test]
async fn a_broadcast_appears_in_every_room_and_stays_in_its_history() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    scene.open_round().await?;
    scene.facilitator.client.ok(Command::Broadcast { text: "Ten minutes left".into() }).await?;
    let announcement =
        |body: &EventBody| matches!(body, EventBody::Announcement { text, .. } if text == "Ten minutes left");
    amara.client.expect_body(Caucus::A.room(), announcement).await?;
    amara.client.expect_body(Room::Plenary, announcement).await?;
    dana.client.expect_body(Caucus::B.room(), announcement).await?;
    dana.client.expect_body(Room::Plenary, announcement).await?;

    // A fresh connection replays it in the caucus's history too.
    let mut later = scene.server.client().await;
    let (_, replay) = later.hello_resume(&scene.session, &amara.token, Default::default()).await?;
    assert!(replay.iter().any(|event| event.room == Caucus::A.room() && announcement(&event.body)));
    Ok(())
}

/// Waits until `person` hears that they are online: their arrival, and every arrival
/// before it, has been announced to the session.
async fn until_announced_online(person: &mut Person) -> Result<()> {
    let id = person.id.clone();
    person
        .client
        .expect("presence announcing the person online", |message| match message {
            ServerMessage::Presence { online, .. } => online.contains(&id).then_some(()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn a_removed_member_is_disconnected_and_cannot_come_back() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    // Once Bayo's arrival is announced, so is Amara's: she is online for everyone.
    until_announced_online(&mut bayo).await?;
    scene.facilitator.client.ok(Command::Remove { member: amara.id.clone() }).await?;
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::REMOVED), "{closed:?}");
    bayo.client
        .expect_body(
            Room::Plenary,
            |body| matches!(body, EventBody::Removed { member } if *member == amara.id),
        )
        .await?;
    bayo.client
        .expect("presence", |message| match message {
            ServerMessage::Presence { offline, .. } if offline.contains(&amara.id) => Some(()),
            _ => None,
        })
        .await?;
    let mut again = scene.server.client().await;
    assert_eq!(again.hello_refused(&scene.session, &amara.token).await?.code, Some(close::REMOVED));
    Ok(())
}

#[tokio::test]
async fn presence_shows_who_is_online() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let amara = scene.member("Amara").await?;
    let online = |id: &caucus_protocol::MemberId, state: bool| {
        let id = id.clone();
        move |message: &ServerMessage| match message {
            ServerMessage::Presence { online, offline }
                if (if state { online } else { offline }).contains(&id) =>
            {
                Some(())
            }
            _ => None,
        }
    };
    scene.facilitator.client.expect("online", online(&amara.id, true)).await?;
    let welcome = scene.reconnect(&amara).await?;
    drop(welcome);
    amara.client.close().await;
    scene.facilitator.client.expect("offline", online(&amara.id, false)).await?;
    Ok(())
}

#[tokio::test]
async fn a_quick_reconnect_is_not_announced_to_anyone_else() -> Result<()> {
    // A grace far longer than the test, so that the reconnect is always within it.
    let server =
        crate::support::TestServer::start_with(|config| config.timeouts.offline_grace_secs = 600).await;
    let scene = Scene::on(server, Settings::default()).await?;
    let amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    // Bayo's own arrival is announced with, or after, Amara's first one.
    until_announced_online(&mut bayo).await?;
    let (amara_id, amara_token) = (amara.id.clone(), amara.token.clone());
    amara.client.close().await;
    let mut back = scene.server.client().await;
    back.hello(&scene.session, &amara_token).await?;
    // Cleo's arrival is announced after Amara's return: every presence frame Bayo gets
    // up to it would have carried Amara going or coming, and none does.
    let cleo = scene.member("Cleo").await?;
    let mut frames = Vec::new();
    bayo.client
        .expect("Cleo online", |message| match message {
            ServerMessage::Presence { online, offline } => {
                frames.push((online.clone(), offline.clone()));
                online.contains(&cleo.id).then_some(())
            }
            _ => None,
        })
        .await?;
    ensure!(
        frames.iter().all(|(online, offline)| !online.contains(&amara_id) && !offline.contains(&amara_id)),
        "Amara's reconnect was announced: {frames:?}"
    );
    Ok(())
}

#[tokio::test]
async fn facilitators_see_who_waits_in_the_plenary_during_a_round() -> Result<()> {
    let mut scene = Scene::new(Settings { self_choice: false, ..Settings::default() }).await?;
    let mut amara = scene.member("Amara").await?;
    let gus = scene.member("Gus").await?;
    let refused = amara.client.refused(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    assert_eq!(refused.code, ErrorCode::SelfChoiceOff);
    scene.facilitator.client.ok(Command::Move { member: amara.id.clone(), caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let mut desk = scene.server.client().await;
    let welcome = desk.hello(&scene.session, &scene.facilitator.token).await?;
    let seats = welcome.seats.expect("facilitators get the seats");
    let waiting: Vec<_> =
        seats.iter().filter(|seat| seat.caucus.is_none()).map(|seat| seat.member.clone()).collect();
    assert!(waiting.contains(&gus.id), "{seats:?}");
    assert!(seats.iter().any(|seat| seat.member == amara.id && seat.caucus == Some(Caucus::A)));
    // Members get no seats list at all.
    let mut member_view = scene.server.client().await;
    assert!(member_view.hello(&scene.session, &gus.token).await?.seats.is_none());
    Ok(())
}

#[tokio::test]
async fn roles_and_the_secretary_flag_come_from_the_session() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    scene.facilitator.client.ok(Command::SetSecretary { member: amara.id.clone(), secretary: true }).await?;
    let changed =
        amara.client.expect_body(Room::Plenary, |body| matches!(body, EventBody::RoleChanged { .. })).await?;
    assert_eq!(
        changed.body,
        EventBody::RoleChanged { member: amara.id.clone(), role: Role::Member, secretary: true }
    );
    let last = scene
        .facilitator
        .client
        .refused(Command::SetRole { member: scene.facilitator.id.clone(), role: Role::Member })
        .await?;
    assert_eq!(last.code, ErrorCode::InvalidValue, "the last facilitator cannot step down");
    Ok(())
}

#[tokio::test]
async fn a_new_invite_link_shuts_out_a_removed_member_and_survives_a_restart() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let address = scene.server.address;
    let path = format!("/api/sessions/{}/invite", scene.session);
    let as_facilitator = format!("Bearer {}", scene.facilitator.token);
    let invite =
        caucus_tests::http(address, "GET", &path, &[("authorization", &as_facilitator)], None).await?;
    assert_eq!(invite.status, 200, "{}", invite.body);
    let invite: caucus_protocol::api::InviteLink = invite.json()?;
    assert_eq!(invite.invite_code, scene.invite);
    assert!(invite.invite_url.ends_with(&format!("/#invite={}", scene.invite)), "{}", invite.invite_url);

    // Members, strangers and the token-less cannot see or replace it.
    let amara = scene.member("Amara").await?;
    let as_member = format!("Bearer {}", amara.token);
    for method in ["GET", "POST"] {
        let refused =
            caucus_tests::http(address, method, &path, &[("authorization", &as_member)], None).await?;
        assert_eq!(refused.status, 403, "{method} as a member: {}", refused.body);
        let anonymous = caucus_tests::http(address, method, &path, &[], None).await?;
        assert_eq!(anonymous.status, 401, "{method} without a token");
    }
    let elsewhere = caucus_tests::http(
        address,
        "GET",
        "/api/sessions/s-nonexistent/invite",
        &[("authorization", &as_facilitator)],
        None,
    )
    .await?;
    assert_eq!(elsewhere.status, 403, "an unknown session looks like one that is not yours");

    // Amara is removed; the old link would let her back in as someone new.
    scene.facilitator.client.ok(Command::Remove { member: amara.id.clone() }).await?;
    let rotated =
        caucus_tests::http(address, "POST", &path, &[("authorization", &as_facilitator)], None).await?;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated: caucus_protocol::api::InviteLink = rotated.json()?;
    assert_ne!(rotated.invite_code, scene.invite);
    let old =
        caucus_tests::http(address, "GET", &format!("/api/invites/{}", scene.invite), &[], None).await?;
    assert_eq!(old.status, 404, "the old invite still works: {}", old.body);
    assert!(scene.server.join(&scene.invite, "Amara again").await.is_err(), "joined through the old invite");
    scene.server.join(&rotated.invite_code, "Bayo").await?;

    // The new code is what a restart brings back.
    let server = scene.server.restart().await;
    let back = caucus_tests::http(
        server.address,
        "GET",
        &format!("/api/invites/{}", rotated.invite_code),
        &[],
        None,
    )
    .await?;
    assert_eq!(back.status, 200, "{}", back.body);
    let gone =
        caucus_tests::http(server.address, "GET", &format!("/api/invites/{}", scene.invite), &[], None)
            .await?;
    assert_eq!(gone.status, 404);
    Ok(())
}

#[tokio::test]
async fn a_facilitator_finds_the_sessions_they_run_with_their_invites() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let address = scene.server.address;
    let ada = scene.facilitator.token.clone();
    let second = caucus_tests::create_session(address, &ada, "Another practice circle").await?;
    let other = scene.server.facilitator_token("Bea");
    caucus_tests::create_session(address, &other, "Bea's own").await?;
    scene.facilitator.client.ok(Command::EndSession {}).await?;

    let listed = caucus_tests::http(
        address,
        "GET",
        "/api/sessions",
        &[("authorization", &format!("Bearer {ada}"))],
        None,
    )
    .await?;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed: caucus_protocol::api::FacilitatedSessions = listed.json()?;
    let ids: Vec<_> = listed.sessions.iter().map(|entry| entry.session.clone()).collect();
    assert_eq!(ids, vec![second.session.clone(), scene.session.clone()], "live first, and only Ada's");
    assert_eq!(listed.sessions[0].invite_url.as_deref(), Some(second.invite_url.as_str()));
    assert_eq!(listed.sessions[1].phase, caucus_protocol::Phase::Ended);
    assert_eq!(listed.sessions[1].invite_url, None, "an ended session offers no invite");

    let amara = scene.server.join(&second.invite_code, "Amara").await?;
    let as_member = format!("Bearer {}", amara.guest_token());
    let refused =
        caucus_tests::http(address, "GET", "/api/sessions", &[("authorization", &as_member)], None).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    Ok(())
}

#[tokio::test]
async fn a_co_facilitator_added_by_name_sees_the_session_at_once_and_runs_it() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let address = scene.server.address;
    let path = format!("/api/sessions/{}/facilitators", scene.session);
    let as_ada = format!("Bearer {}", scene.facilitator.token);
    let bea = scene.server.facilitator_token("Bea Okafor");
    let as_bea = format!("Bearer {bea}");
    let list = |auth: String| async move {
        let listed =
            caucus_tests::http(address, "GET", "/api/sessions", &[("authorization", &auth)], None).await?;
        listed.json::<caucus_protocol::api::FacilitatedSessions>()
    };
    assert!(list(as_bea.clone()).await?.sessions.is_empty(), "Bea runs nothing yet");
    // Bea's token alone does not open Ada's session.
    let mut early = scene.server.client().await;
    assert!(early.hello(&scene.session, &bea).await.is_err());

    let body = r#"{"name": "  Bea Okafor "}"#;
    let added = caucus_tests::http(address, "POST", &path, &[("authorization", &as_ada)], Some(body)).await?;
    assert_eq!(added.status, 200, "{}", added.body);
    let added: caucus_protocol::api::FacilitatorAdded = added.json()?;
    let again = caucus_tests::http(address, "POST", &path, &[("authorization", &as_ada)], Some(body)).await?;
    assert_eq!(
        again.json::<caucus_protocol::api::FacilitatorAdded>()?,
        added,
        "adding twice changes nothing"
    );

    let listed = list(as_bea.clone()).await?;
    assert_eq!(listed.sessions.iter().map(|entry| &entry.session).collect::<Vec<_>>(), [&scene.session]);
    let mut desk = scene.server.client().await;
    let welcome = desk.hello(&scene.session, &bea).await?;
    assert_eq!(welcome.you.role, Role::Facilitator);
    assert_eq!(welcome.you.id, added.member);
    desk.ok(Command::OpenCaucuses { duration_secs: None }).await?;

    // A member cannot add anyone, and a name needs a letter or digit.
    let amara = scene.member("Amara").await?;
    let as_member = format!("Bearer {}", amara.token);
    let refused =
        caucus_tests::http(address, "POST", &path, &[("authorization", &as_member)], Some(body)).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let blank =
        caucus_tests::http(address, "POST", &path, &[("authorization", &as_ada)], Some(r#"{"name": "..."}"#))
            .await?;
    assert_eq!(blank.status, 422, "{}", blank.body);
    Ok(())
}

#[tokio::test]
async fn a_facilitator_answers_a_call_for_help_and_the_caucus_sees_who_is_coming() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut fern = scene.seated("Fern", Caucus::B).await?;
    scene.open_round().await?;
    let bea_token = scene.server.facilitator_token("Bea");
    let added = caucus_tests::http(
        scene.server.address,
        "POST",
        &format!("/api/sessions/{}/facilitators", scene.session),
        &[
            ("authorization", &format!("Bearer {}", scene.facilitator.token)),
            ("content-type", "application/json"),
        ],
        Some(r#"{"name":"Bea"}"#),
    )
    .await?;
    assert_eq!(added.status, 200, "{}", added.body);
    let mut bea = scene.server.client().await;
    bea.hello(&scene.session, &bea_token).await?;

    amara.client.ok(Command::AskForHelp {}).await?;
    bea.expect_body(Room::Facilitators, |body| {
        matches!(body, EventBody::HelpRequested { caucus: Caucus::A, .. })
    })
    .await?;
    scene.facilitator.client.ok(Command::AnswerHelp { caucus: Caucus::A }).await?;
    let coming = amara
        .client
        .expect_body(Caucus::A.room(), |body| {
            matches!(body, EventBody::HelpAnswered { caucus: Caucus::A, .. })
        })
        .await?;
    assert!(matches!(&coming.body, EventBody::HelpAnswered { by, .. } if *by == scene.facilitator.id));
    bea.expect_body(Room::Facilitators, |body| {
        matches!(body, EventBody::HelpAnswered { caucus: Caucus::A, .. })
    })
    .await?;
    // The other caucus hears nothing of it.
    fern.client.sync().await?;
    assert!(!fern.client.transcript().contains("help_answered"), "{}", fern.client.transcript());
    let refused = amara.client.refused(Command::AnswerHelp { caucus: Caucus::A }).await?;
    assert_eq!(refused.code, ErrorCode::Forbidden);
    Ok(())
}

#[tokio::test]
async fn a_withdrawn_point_can_be_restored_and_only_its_caucus_sees_it() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut chen = scene.seated("Chen", Caucus::A).await?;
    let mut fern = scene.seated("Fern", Caucus::B).await?;
    scene.open_round().await?;
    let room = caucus_tests::room(Caucus::A.room());
    amara.client.ok(Command::WritePoint { room: room.clone(), text: "Name it early".into() }).await?;
    chen.client.ok(Command::WithdrawPoint { room: room.clone(), point: 1 }).await?;
    amara.client.ok(Command::RestorePoint { room: room.clone(), point: 1 }).await?;
    let restored = chen
        .client
        .expect_body(Caucus::A.room(), |body| matches!(body, EventBody::PointRestored { .. }))
        .await?;
    assert!(matches!(&restored.body, EventBody::PointRestored { point, by }
        if point.text == "Name it early" && point.by == amara.id && *by == amara.id));
    scene.facilitator.client.ok(Command::Reconvene { round: 1 }).await?;
    let feedback = fern
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { caucus: Caucus::A, .. }))
        .await?;
    assert!(matches!(&feedback.body, EventBody::Feedback { points, .. } if points == &["Name it early"]));
    for transcript in [fern.client.transcript(), scene.facilitator.client.transcript()] {
        assert!(!transcript.contains("point_restored"), "only the caucus sees it: {transcript}");
    }
    Ok(())
}
