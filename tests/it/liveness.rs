//! Liveness: silent connections are detected by ping, slow readers are closed with a
//! clear code and resume, and SIGTERM during traffic loses nothing acknowledged.

use std::time::Duration;

use anyhow::Result;
use caucus_protocol::{ClientFrame, ClientId, Command, Room, ServerMessage, Settings, close};
use caucus_tests::room;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Scene, TestServer};

#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_closed_within_two_intervals() -> Result<()> {
    let server = TestServer::start_with(|config| config.timeouts.ping_secs = 1).await;
    let scene = Scene::on(server, Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    // Not reading means not answering pings: a half-open connection, as far as the
    // server can tell.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let closed = amara.client.expect_close().await?;
    assert_eq!(closed.code, Some(close::PING_TIMEOUT), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn a_slow_reader_is_closed_with_4008_and_then_resumes() -> Result<()> {
    let server = TestServer::start_with(|config| {
        config.limits.replay_per_room = 100;
        config.limits.outbound_queue = 416;
        config.limits.frames_per_sec = 100_000;
        config.limits.frame_burst = 100_000;
        config.limits.member_frames_per_sec = 100_000;
        config.limits.member_frame_burst = 100_000;
        // A generous write timeout: the server must get its close frame through to a
        // reader that is slow, not stalled, even on a busy machine.
        config.timeouts.write_secs = 30;
    })
    .await;
    let scene = Scene::on(server, Settings::default()).await?;
    let sender = scene.member("Sender").await?;
    let slow = scene.member("Slow").await?;
    let slow_token = slow.token.clone();

    // The sender floods the plenary with large messages as fast as it can, and reads
    // its own acks and events as fast as they come, so that it is not the slow one.
    let text = "x".repeat(3500);
    let (mut sink, mut stream) = sender.client.into_socket().split();
    let drain = tokio::spawn(async move {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(3), stream.next()).await {}
    });
    let flood = tokio::spawn(async move {
        for n in 0..3000 {
            let frame = ClientFrame::with_id(
                ClientId::new(format!("f-{n}"))?,
                Command::Say { room: room(Room::Plenary), text: text.clone() },
            );
            if sink.send(Message::text(frame.encode())).await.is_err() {
                break; // the sender may be cut off too when the machine is busy
            }
        }
        Ok::<_, anyhow::Error>(sink)
    });

    // The slow reader stops reading while the flood fills its buffers and its queue,
    // then reads on: behind what was queued, it finds why it was closed.
    let (_, mut slow_stream) = slow.client.into_socket().split();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut last_seq = 0;
    let code = loop {
        let message = match tokio::time::timeout(Duration::from_secs(20), slow_stream.next()).await {
            Ok(Some(Ok(message))) => message,
            other => panic!(
                "the slow reader's connection ended without a close frame after #{last_seq}: {other:?}"
            ),
        };
        match message {
            Message::Text(text) => {
                if let Ok(ServerMessage::Event(event)) = serde_json::from_str(&text) {
                    assert!(event.seq > last_seq, "out of order or duplicated");
                    last_seq = event.seq;
                }
            }
            Message::Close(frame) => break frame.map(|frame| u16::from(frame.code)),
            _ => {}
        }
    };
    drop(flood.await??);
    drain.await?;
    assert_eq!(code, Some(close::TOO_SLOW), "the slow reader was not told why it was closed");

    // It reconnects with its cursor and carries on from where it was.
    let mut resumed = scene.server.client().await;
    let cursors = [("plenary".to_owned(), last_seq)].into();
    let (welcome, replay) = resumed.hello_resume(&scene.session, &slow_token, cursors).await?;
    let plenary = welcome.rooms.iter().find(|cursor| cursor.room == Room::Plenary).unwrap();
    if plenary.reset {
        assert!(plenary.head - last_seq > 100, "a resumable gap was reset");
    } else {
        assert_eq!(
            replay.first().map(|event| event.seq),
            Some(last_seq + 1),
            "the replay starts right after"
        );
    }
    Ok(())
}
