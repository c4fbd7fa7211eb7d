//! History, minutes and erasure: what can be read back later, by whom, and what can be
//! taken out.

use anyhow::Result;
use caucus_protocol::api::{ApiError, Minutes};
use caucus_protocol::{Caucus, Command, ErrorCode, EventBody, Room, RoomName, ServerMessage, Settings};
use caucus_tests::GuestToken;
use caucus_tests::{http, room};

use crate::support::{GROUND_RULES, Scene, holds};

#[tokio::test]
async fn history_pages_back_through_a_readable_room_only() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    scene.open_round().await?;
    for n in 0..12 {
        amara.client.say(Caucus::A.room(), &format!("a{n}")).await?;
    }
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        amara.client.ok(Command::History { room: room(Caucus::A.room()), before, limit: 5 }).await?;
        let (events, more) = amara
            .client
            .expect("history", |message| match message {
                ServerMessage::History { events, more, .. } => Some((events.clone(), *more)),
                _ => None,
            })
            .await?;
        before = events.first().map(|event| event.seq);
        pages.push(events);
        if !more {
            break;
        }
    }
    let texts: Vec<String> = pages
        .iter()
        .rev()
        .flatten()
        .filter_map(|event| match &event.body {
            EventBody::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, (0..12).map(|n| format!("a{n}")).collect::<Vec<_>>());
    // Another caucus's history looks like a room that does not exist.
    let across = dana
        .client
        .refused(Command::History { room: room(Caucus::A.room()), before: None, limit: 5 })
        .await?;
    let nowhere = dana
        .client
        .refused(Command::History { room: RoomName("caucus_q".into()), before: None, limit: 5 })
        .await?;
    assert_eq!((across.code, across.message), (nowhere.code, nowhere.message));
    let facilitator = scene
        .facilitator
        .client
        .refused(Command::History { room: room(Caucus::A.room()), before: None, limit: 5 })
        .await?;
    assert_eq!(facilitator.code, ErrorCode::NoSuchRoom);
    Ok(())
}

#[tokio::test]
async fn facilitators_and_the_secretary_export_minutes_without_caucus_content() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut sam = scene.member("Sam <b>Secretary</b>").await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::SetTopic { text: "Belonging at work".into() }).await?;
    amara.client.say(Room::Plenary, "Plenary words **kept**").await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    let said = amara.client.say(Caucus::A.room(), "carried words").await?;
    amara.client.say(Caucus::A.room(), "SECRET caucus words").await?;
    amara.client.ok(Command::Flag { room: room(Caucus::A.room()), seq: said }).await?;
    facilitator.ok(Command::Reconvene { round: 1 }).await?;
    facilitator.ok(Command::SetSecretary { member: sam.id.clone(), secretary: true }).await?;
    sam.client.sync().await?;

    let address = scene.server.address;
    let path = format!("/api/sessions/{}/minutes", scene.session);
    let get = |token: String, query: &'static str| {
        let path = format!("{path}{query}");
        async move {
            let auth = format!("Bearer {token}");
            http(address, "GET", &path, &[("authorization", &auth)], None).await
        }
    };

    let json = get(scene.facilitator.token.clone(), "").await?;
    assert_eq!(json.status, 200, "{}", json.body);
    let minutes: Minutes = json.json()?;
    assert_eq!(minutes.rounds.len(), 1);
    assert_eq!(minutes.rounds[0].topic.as_deref(), Some("Belonging at work"));
    assert_eq!(minutes.rounds[0].feedback[0].points, vec!["carried words".to_owned()]);
    assert!(minutes.transcript.iter().any(|entry| entry.text == "Plenary words **kept**"));
    assert!(!json.body.contains("SECRET"), "the minutes hold caucus content: {}", json.body);

    let markdown = get(sam.token.clone(), "?format=markdown").await?;
    assert_eq!(markdown.status, 200, "{}", markdown.body);
    assert!(markdown.header("content-type").is_some_and(|value| value.starts_with("text/markdown")));
    assert!(markdown.body.contains("## Round 1: Belonging at work"), "{}", markdown.body);
    assert!(markdown.body.contains("1. carried words"));
    assert!(markdown.body.contains("Plenary words \\*\\*kept\\*\\*"), "markup is escaped: {}", markdown.body);
    assert!(!markdown.body.contains("SECRET"));

    let member = get(amara.token.clone(), "").await?;
    assert_eq!(member.status, 403);
    assert_eq!(member.json::<ApiError>()?.error.code, ErrorCode::Forbidden);
    let stranger = scene.server.join(&scene.invite, "Stranger").await?;
    let other_session = "/api/sessions/s-nosuchsession/minutes";
    let auth = format!("Bearer {}", stranger.guest_token());
    let missing = http(address, "GET", other_session, &[("authorization", &auth)], None).await?;
    assert_eq!(missing.status, 403, "a missing session and a forbidden one look alike");
    Ok(())
}

#[tokio::test]
async fn erasing_a_member_takes_their_words_and_name_out_of_the_session_and_the_file() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara ERASE-NAME").await?;
    let mut bayo = scene.member("Bayo").await?;
    amara.client.say(Room::Plenary, "ERASE-ME plenary words").await?;
    amara.client.ok(Command::ProposeTopic { text: "ERASE-ME topic".into() }).await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    amara.client.say(Caucus::A.room(), "ERASE-ME caucus words").await?;

    assert!(holds(&scene.server.raw_database(), "ERASE-ME"), "the raw check sees the words before erasure");

    let refused = amara.client.refused(Command::EraseMember { member: bayo.id.clone() }).await?;
    assert_eq!(refused.code, ErrorCode::Forbidden);
    scene.facilitator.client.ok(Command::EraseMember { member: amara.id.clone() }).await?;
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(caucus_protocol::close::REMOVED));
    bayo.client
        .expect_body(
            Room::Plenary,
            |body| matches!(body, EventBody::Erased { member } if *member == amara.id),
        )
        .await?;

    let mut fresh = scene.server.client().await;
    let (welcome, replay) = fresh.hello_resume(&scene.session, &bayo.token, Default::default()).await?;
    let replayed = serde_json::to_string(&replay)?;
    assert!(!replayed.contains("ERASE-ME"), "{replayed}");
    assert!(welcome.members.iter().all(|member| member.id != amara.id), "erased people are not listed");
    assert!(!serde_json::to_string(&welcome)?.contains("ERASE-NAME"));
    assert!(!holds(&scene.server.raw_database(), "ERASE-ME"), "erased words are still in the database file");
    assert!(
        !holds(&scene.server.raw_database(), "ERASE-NAME"),
        "an erased name is still in the database file"
    );

    // The erasure is recorded, without the content.
    let db = rusqlite::Connection::open(scene.server.data_dir().join("caucus.db"))?;
    let recorded: i64 =
        db.query_row("SELECT count(*) FROM erasures WHERE member = ?1", [amara.id.as_str()], |row| {
            row.get(0)
        })?;
    assert_eq!(recorded, 1);
    Ok(())
}

#[tokio::test]
async fn joining_records_which_ground_rules_were_accepted_and_refuses_without_them() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let address = scene.server.address;
    let join = |accept: Option<&str>| {
        let mut body = serde_json::json!({ "invite_code": scene.invite, "name": "Amara" });
        if let Some(accept) = accept {
            body["accept_ground_rules"] = accept.into();
        }
        body.to_string()
    };
    for (what, body) in [("no acceptance", join(None)), ("other rules", join(Some("Anything goes.")))] {
        let refused = http(address, "POST", "/api/join", &[], Some(&body)).await?;
        assert_eq!(refused.status, 422, "{what}: {}", refused.body);
        assert!(refused.body.contains("invalid_value"), "{what}: {}", refused.body);
        assert!(refused.body.contains("ground rules"), "{what}: the refusal says why: {}", refused.body);
    }

    let accepted = http(address, "POST", "/api/join", &[], Some(&join(Some(GROUND_RULES)))).await?;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let joined: caucus_protocol::api::Joined = accepted.json()?;
    let event = scene
        .facilitator
        .client
        .expect_body(
            Room::Plenary,
            |body| matches!(body, EventBody::Joined { member, .. } if member.id == joined.member),
        )
        .await?;
    let EventBody::Joined { ground_rules, .. } = event.body else { unreachable!("picked above") };
    assert_eq!(ground_rules, Some(caucus_server::session::rules_digest(GROUND_RULES)));
    assert!(ground_rules.is_some_and(|digest| digest.starts_with("sha256:") && digest.len() == 7 + 64));
    // And it is stored: the record survives a restart.
    let stored = scene.server.stored_events(&scene.session).await;
    assert!(stored.iter().any(|event| matches!(&event.body,
        EventBody::Joined { member, ground_rules: Some(_) } if member.id == joined.member)));
    Ok(())
}
