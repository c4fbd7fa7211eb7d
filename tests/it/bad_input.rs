//! Bad input: each gets a clear error, the connection stays open where it can, and
//! nothing is stored or delivered.

use std::time::Duration;

use anyhow::Result;
use caucus_protocol::{
    Caucus, ClientFrame, Command, ErrorCode, EventBody, Room, ServerMessage, Settings, close,
};
use caucus_tests::{fresh_client_id, room};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::{Scene, TestServer};

async fn error_for(client: &mut caucus_tests::Client, raw: &str) -> Result<caucus_protocol::ErrorFrame> {
    client.send_raw(raw).await?;
    client
        .expect("an error", |message| match message {
            ServerMessage::Error(error) => Some(error.clone()),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn frames_that_do_not_decode_get_bad_frame_and_the_connection_lives_on() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let client = &mut amara.client;
    let cases = [
        ("not json at all", "not valid JSON"),
        ("[1,2,3]", "must be a JSON object"),
        (r#"{"room":"plenary","text":"hi"}"#, "missing field `type`"),
        (r#"{"type":"shout","text":"hi"}"#, "unknown variant `shout`"),
        (r#"{"type":"say","room":"plenary"}"#, "missing field `text`"),
        (r#"{"type":"say","room":"plenary","text":"hi","colour":"red"}"#, "unknown field `colour`"),
        (r#"{"type":"say","room":"plenary","text":42}"#, "invalid type"),
        (r#"{"type":"say","room":"plenary","text":"meant","text":"sent"}"#, "duplicate field `text`"),
        (r#"{"type":"say","room":"plenary","text":"hi","client_id":"has space"}"#, "invalid `client_id`"),
    ];
    for (raw, names) in cases {
        let error = error_for(client, raw).await?;
        assert_eq!(error.code, ErrorCode::BadFrame, "{raw}");
        assert!(error.message.contains(names), "{raw}: `{}` does not say `{names}`", error.message);
    }
    // The client_id comes back even when the command is wrong, so it can be matched.
    let error = error_for(client, r#"{"type":"say","client_id":"c-9"}"#).await?;
    assert_eq!(error.client_id.map(String::from).as_deref(), Some("c-9"));
    // Still connected and working.
    client.say(Room::Plenary, "still here").await?;
    Ok(())
}

#[tokio::test]
async fn a_command_before_hello_and_a_second_hello_are_refused() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut client = scene.server.client().await;
    let error = client.refused(Command::Say { room: room(Room::Plenary), text: "hi".into() }).await?;
    assert_eq!(error.code, ErrorCode::HelloRequired);
    client.hello(&scene.session, &scene.facilitator.token).await?;
    let error = client
        .refused(Command::Hello {
            session: scene.session.clone(),
            token: scene.facilitator.token.clone(),
            resume: Default::default(),
        })
        .await?;
    assert_eq!(error.code, ErrorCode::AlreadyWelcomed);
    Ok(())
}

#[tokio::test]
async fn a_malformed_resume_cursor_is_a_bad_frame_and_hello_can_be_retried() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut client = scene.server.client().await;
    let hello = format!(
        r#"{{"type":"hello","session":"{}","token":"{}","resume":{{"plenary":-1}}}}"#,
        scene.session, scene.facilitator.token
    );
    let error = error_for(&mut client, &hello).await?;
    assert_eq!(error.code, ErrorCode::BadFrame);
    assert!(error.message.contains("invalid value"), "{}", error.message);
    // An unknown room in the cursors is simply not replayed.
    let cursors = [("caucus_z".to_owned(), 3), ("plenary".to_owned(), 0)].into();
    let (welcome, _) = client.hello_resume(&scene.session, &scene.facilitator.token, cursors).await?;
    assert!(welcome.rooms.iter().any(|cursor| cursor.room == Room::Plenary && !cursor.reset));
    Ok(())
}

#[tokio::test]
async fn empty_and_overlong_text_are_refused_and_nothing_is_stored() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let stored = scene.server.stored_events(&scene.session).await.len();
    for (text, code) in
        [("", ErrorCode::Empty), ("   ", ErrorCode::Empty), (&"x".repeat(4001)[..], ErrorCode::TooLong)]
    {
        let error =
            amara.client.refused(Command::Say { room: room(Room::Plenary), text: text.to_owned() }).await?;
        assert_eq!(error.code, code);
    }
    assert_eq!(scene.server.stored_events(&scene.session).await.len(), stored);
    amara.client.say(Room::Plenary, &"x".repeat(4000)).await?;
    Ok(())
}

#[tokio::test]
async fn members_cannot_run_facilitator_commands_and_nothing_changes() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let bayo = scene.member("Bayo").await?;
    let stored = scene.server.stored_events(&scene.session).await.len();
    let commands = vec![
        Command::Move { member: bayo.id.clone(), caucus: Some(Caucus::A) },
        Command::OpenCaucuses { duration_secs: Some(60) },
        Command::Reconvene { round: 1 },
        Command::EndSession {},
        Command::Broadcast { text: "hi".into() },
        Command::SetTopic { text: "mine".into() },
        Command::Remove { member: bayo.id.clone() },
        Command::SetRole { member: amara.id.clone(), role: caucus_protocol::Role::Facilitator },
    ];
    for command in commands {
        let kind = command.kind();
        let error = amara.client.refused(command).await?;
        assert_eq!(error.code, ErrorCode::Forbidden, "{kind}");
        assert!(error.message.starts_with("only a facilitator can"), "{}", error.message);
    }
    assert_eq!(scene.server.stored_events(&scene.session).await.len(), stored);
    Ok(())
}

#[tokio::test]
async fn any_command_sent_again_with_its_client_id_is_applied_once() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let amara = scene.seated("Amara", Caucus::A).await?;
    let mut chen = scene.seated("Chen", Caucus::A).await?;
    scene.open_round().await?;
    let resend = |command: Command| {
        let client_id = fresh_client_id();
        (client_id.clone(), ClientFrame::with_id(client_id, command))
    };
    // A point and a broadcast, each sent, then sent again on a new connection as a
    // client does after a drop: the same ack, one point, one announcement.
    let (point_id, point) =
        resend(Command::WritePoint { room: room(Caucus::A.room()), text: "written once".into() });
    let (broadcast_id, broadcast) = resend(Command::Broadcast { text: "announced once".into() });
    let mut first = scene.reconnect(&amara).await?;
    first.send(&point).await?;
    let acked = first.reply_to(&point_id).await?.expect("accepted");
    scene.facilitator.client.send(&broadcast).await?;
    let announced = scene.facilitator.client.reply_to(&broadcast_id).await?.expect("accepted");
    let mut again = scene.reconnect(&amara).await?;
    again.send(&point).await?;
    assert_eq!(again.reply_to(&point_id).await?.expect("accepted"), acked);
    scene.facilitator.client.send(&broadcast).await?;
    assert_eq!(scene.facilitator.client.reply_to(&broadcast_id).await?.expect("accepted"), announced);

    let stored = scene.server.stored_events(&scene.session).await;
    let points = stored
        .iter()
        .filter(
            |event| matches!(&event.body, EventBody::PointAdded { point } if point.text == "written once"),
        )
        .count();
    let announcements = stored
        .iter()
        .filter(
            |event| matches!(&event.body, EventBody::Announcement { text, .. } if text == "announced once"),
        )
        .count();
    assert_eq!(points, 1, "one point");
    assert_eq!(announcements, 3, "one announcement, in the plenary and each caucus");
    chen.client.sync().await?;
    assert_eq!(chen.client.transcript().matches("written once").count(), 1);
    Ok(())
}

#[tokio::test]
async fn a_duplicate_client_id_gets_the_same_ack_and_is_stored_once() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let mut bayo = scene.member("Bayo").await?;
    let client_id = fresh_client_id();
    let frame = ClientFrame::with_id(
        client_id.clone(),
        Command::Say { room: room(Room::Plenary), text: "sent twice".into() },
    );
    amara.client.send(&frame).await?;
    let first = amara.client.reply_to(&client_id).await?.expect("accepted");
    amara.client.send(&frame).await?;
    let second = amara.client.reply_to(&client_id).await?.expect("accepted");
    assert_eq!(first, second);
    // A retry on a new connection, as after a network drop, is also recognised.
    let mut again = scene.reconnect(&amara).await?;
    again.send(&frame).await?;
    assert_eq!(again.reply_to(&client_id).await?.expect("accepted"), first);

    let stored = scene
        .server
        .stored_events(&scene.session)
        .await
        .into_iter()
        .filter(|event| matches!(&event.body, EventBody::Message { text, .. } if text == "sent twice"))
        .count();
    assert_eq!(stored, 1);
    bayo.client.sync().await?;
    let delivered = bayo.client.transcript().matches("sent twice").count();
    assert_eq!(delivered, 1);
    Ok(())
}

#[tokio::test]
async fn markup_sql_and_control_characters_are_kept_byte_for_byte() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let name = "<b>Robert'); DROP TABLE members;--</b>";
    let mut amara = scene.member(name).await?;
    let mut bayo = scene.member("Bayo").await?;
    let text = "<img src=x onerror=alert(1)> \"quoted\" '; DELETE FROM events; -- \u{7}\u{1b}[31m \u{202e}reversed \u{0} end";
    amara.client.say(Room::Plenary, text).await?;
    let heard =
        bayo.client.expect_body(Room::Plenary, |body| matches!(body, EventBody::Message { .. })).await?;
    assert!(matches!(&heard.body, EventBody::Message { text: got, .. } if got == text));
    let joined = bayo.client.transcript();
    assert!(joined.contains("\\u0007"), "control characters are escaped in JSON, not dropped");
    let mut fresh = scene.server.client().await;
    let welcome = fresh.hello(&scene.session, &bayo.token).await?;
    assert!(welcome.members.iter().any(|member| member.name == name), "the name is kept exactly");
    Ok(())
}

#[tokio::test]
async fn binary_frames_close_1003_and_invalid_utf8_closes_1007() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.send_message(Message::binary(vec![1, 2, 3])).await?;
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::UNSUPPORTED_DATA), "{closed:?}");

    let mut bayo = scene.member("Bayo").await?;
    let frame = Frame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
    bayo.client.send_message(Message::Frame(frame)).await?;
    let closed = bayo.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::INVALID_PAYLOAD), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn an_oversize_frame_closes_1009_with_a_close_frame() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.frame_bytes = 4096).await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    let big = format!(r#"{{"type":"say","room":"plenary","text":"{}"}}"#, "x".repeat(5000));
    amara.client.send_raw(&big).await?;
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::MESSAGE_TOO_BIG), "{closed:?}");
    assert!(closed.reason.contains("4096 bytes"), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn flooding_is_rate_limited_then_closed_1008() -> Result<()> {
    let server = TestServer::start_with(|config| {
        config.limits.frames_per_sec = 1;
        config.limits.frame_burst = 3;
        config.limits.rate_limited_strikes = 3;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    for n in 0..20 {
        if amara
            .client
            .send_raw(&format!(r#"{{"type":"say","room":"plenary","text":"flood {n}"}}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let limited = amara
        .client
        .expect("rate_limited", |message| match message {
            ServerMessage::Error(error) if error.code == ErrorCode::RateLimited => Some(error.clone()),
            _ => None,
        })
        .await?;
    assert!(limited.message.contains("slow down"));
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::POLICY_VIOLATION), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn too_many_connections_for_one_person_are_refused() -> Result<()> {
    let server = TestServer::start_with(|config| config.limits.connections_per_member = 2).await;
    let scene = Scene::on(server, Settings::default()).await?;
    let amara = scene.member("Amara").await?;
    let _second = scene.reconnect(&amara).await?;
    let mut third = scene.server.client().await;
    let closed = third.hello_refused(&scene.session, &amara.token).await?;
    assert_eq!(closed.code, Some(close::TOO_MANY_CONNECTIONS));
    assert!(closed.reason.contains("too many connections"), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn a_post_to_a_closed_caucus_is_refused_and_not_stored() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    scene.facilitator.client.ok(Command::Reconvene { round: 1 }).await?;
    let stored = scene.server.stored_events(&scene.session).await.len();
    let error =
        amara.client.refused(Command::Say { room: room(Caucus::A.room()), text: "late".into() }).await?;
    assert_eq!(error.code, ErrorCode::CaucusClosed);
    assert_eq!(scene.server.stored_events(&scene.session).await.len(), stored);
    Ok(())
}

#[tokio::test]
async fn the_rate_limit_also_counts_all_of_a_persons_connections_together() -> Result<()> {
    let server = TestServer::start_with(|config| {
        config.limits.member_frames_per_sec = 1;
        config.limits.member_frame_burst = 4;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut first = scene.member("Amara").await?;
    let mut second = scene.reconnect(&first).await?;
    // Each connection alone stays well under its own limit; together they do not.
    for n in 0..3 {
        first.client.say(Room::Plenary, &format!("first {n}")).await?;
    }
    let mut limited = None;
    for n in 0..3 {
        if let Err(error) =
            second.request(Command::Say { room: room(Room::Plenary), text: format!("second {n}") }).await?
        {
            limited = Some(error);
            break;
        }
    }
    let limited = limited.expect("the person's shared limit refused a frame");
    assert_eq!(limited.code, ErrorCode::RateLimited);
    Ok(())
}

#[tokio::test]
async fn a_client_still_writing_an_oversize_frame_reads_the_1009_close_and_a_clean_end() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(server.address).await?;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: caucus\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
              sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        )
        .await?;
    // An 8 MiB masked text frame, far over the 64 KiB limit, written while reading.
    let length: u64 = 8 << 20;
    let mut head = vec![0x81, 0xFF];
    head.extend_from_slice(&length.to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    let sending = tokio::spawn(async move {
        writer.write_all(&head).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(length / chunk.len() as u64) {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        let mut buffer = [0u8; 8192];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(err) => return Err(err),
            }
        }
    })
    .await;
    let _ = sending.await;
    let ended = ended.map_err(|_| anyhow::anyhow!("the server held the connection open"))?;
    assert!(ended.is_ok(), "the connection ended with {ended:?}, not a clean close");
    // The close frame: 0x88, a length, then the code 1009 (0x03F1).
    let close = received.windows(4).any(|window| window[0] == 0x88 && window[2] == 0x03 && window[3] == 0xF1);
    assert!(close, "no 1009 close frame among {} bytes received", received.len());
    Ok(())
}
