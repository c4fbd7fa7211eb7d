//! The round timer on paused time: warnings, auto-reconvene, extension, and a double
//! or concurrent reconvene.

use std::time::Duration;

use anyhow::Result;
use caucus_protocol::{Caucus, Command, EventBody, Role, Room, Settings};
use caucus_tests::room;

use crate::support::{Scene, TestServer};

const LONG: Duration = Duration::from_secs(24 * 3600);

async fn paused_scene(settings: Settings) -> Result<Scene> {
    let server = TestServer::start_with(|config| {
        config.timeouts.ping_secs = 24 * 3600;
        config.timeouts.hello_secs = 24 * 3600;
        // The SQLite writer is a thread; paused time would jump ahead while it works.
        config.store.kind = caucus_server::config::StoreKind::Memory;
    })
    .await;
    let mut scene = Scene::on(server, settings).await?;
    scene.facilitator.client.wait = LONG;
    Ok(scene)
}

#[tokio::test(start_paused = true)]
async fn the_server_reconvenes_on_its_own_when_time_runs_out() -> Result<()> {
    let mut scene = paused_scene(Settings { auto_reconvene: true, ..Settings::default() }).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.wait = LONG;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: Some(90) }).await?;
    amara
        .client
        .ok(Command::WritePoint {
            room: room(Caucus::A.room()),
            text: "carried when the clock runs out".into(),
        })
        .await?;
    let opened = amara
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::CaucusesOpened { .. }))
        .await?;
    // Rounds under two minutes warn at half time.
    let warning = amara
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::TimerWarning { .. }))
        .await?;
    assert_eq!(warning.at - opened.at, 45_000);
    let reconvened = amara
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::Reconvened { round: 1, time_up: true }))
        .await?;
    assert_eq!(reconvened.at - opened.at, 90_000);
    let feedback = amara
        .client
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::Feedback { caucus: Caucus::A, .. }))
        .await?;
    assert!(
        matches!(&feedback.body, EventBody::Feedback { points, .. } if points == &vec!["carried when the clock runs out".to_owned()])
    );
    let late =
        amara.client.refused(Command::Say { room: room(Caucus::A.room()), text: "too late".into() }).await?;
    assert_eq!(late.code, caucus_protocol::ErrorCode::CaucusClosed);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn without_auto_reconvene_facilitators_are_told_and_can_extend() -> Result<()> {
    let mut scene = paused_scene(Settings::default()).await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::OpenCaucuses { duration_secs: Some(300) }).await?;
    let opened = facilitator
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::CaucusesOpened { .. }))
        .await?;
    let warning =
        facilitator.expect_body(Room::Plenary, |body| matches!(body, EventBody::TimerWarning { .. })).await?;
    assert_eq!(warning.at - opened.at, 240_000, "warned one minute before the end");
    let up = facilitator
        .expect_body(Room::Facilitators, |body| matches!(body, EventBody::TimeUp { round: 1 }))
        .await?;
    assert_eq!(up.at - opened.at, 300_000);
    facilitator.ok(Command::ExtendRound { secs: 120 }).await?;
    let extended = facilitator
        .expect_body(Room::Plenary, |body| matches!(body, EventBody::RoundExtended { .. }))
        .await?;
    assert!(
        matches!(extended.body, EventBody::RoundExtended { deadline, .. } if deadline == extended.at + 120_000)
    );
    let again =
        facilitator.expect_body(Room::Plenary, |body| matches!(body, EventBody::TimerWarning { .. })).await?;
    assert_eq!(again.at - extended.at, 60_000);
    facilitator
        .expect_body(Room::Facilitators, |body| matches!(body, EventBody::TimeUp { round: 1 }))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_double_and_a_concurrent_reconvene_change_nothing() -> Result<()> {
    let mut scene = Scene::new(Settings::default()).await?;
    let mut cochair = scene.member("Bea").await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene
        .facilitator
        .client
        .ok(Command::SetRole { member: cochair.id.clone(), role: Role::Facilitator })
        .await?;
    // A role change ends the old connection so that the new one sees the desk.
    cochair.client.expect_close().await?;
    let mut cochair_client = scene.reconnect(&cochair).await?;
    let facilitator = &mut scene.facilitator.client;
    facilitator.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    amara
        .client
        .ok(Command::WritePoint { room: room(Caucus::A.room()), text: "carried once".into() })
        .await?;

    // Both facilitators reconvene at the same moment, and one of them twice.
    let first = caucus_tests::fresh_client_id();
    let second = caucus_tests::fresh_client_id();
    let third = caucus_tests::fresh_client_id();
    let reconvene = Command::Reconvene { round: 1 };
    facilitator.send(&caucus_protocol::ClientFrame::with_id(first.clone(), reconvene.clone())).await?;
    cochair_client.send(&caucus_protocol::ClientFrame::with_id(second.clone(), reconvene.clone())).await?;
    facilitator.send(&caucus_protocol::ClientFrame::with_id(third.clone(), reconvene)).await?;
    assert!(facilitator.reply_to(&first).await?.is_ok());
    assert!(cochair_client.reply_to(&second).await?.is_ok());
    assert!(facilitator.reply_to(&third).await?.is_ok());

    amara.client.sync().await?;
    let transcript = amara.client.transcript();
    assert_eq!(transcript.matches("\"kind\":\"reconvened\"").count(), 1, "{transcript}");
    assert_eq!(transcript.matches("carried once").count(), 2, "once as the point, once as feedback");
    assert_eq!(transcript.matches("\"kind\":\"feedback\"").count(), 2, "one per caucus");
    let _ = &mut cochair;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn people_in_a_caucus_are_warned_and_told_time_is_up_in_their_caucus() -> Result<()> {
    let mut scene = paused_scene(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.wait = LONG;
    amara.client.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    scene.facilitator.client.ok(Command::OpenCaucuses { duration_secs: Some(300) }).await?;
    let warning = amara
        .client
        .expect_body(Caucus::A.room(), |body| matches!(body, EventBody::TimerWarning { round: 1, .. }))
        .await?;
    let up = amara
        .client
        .expect_body(Caucus::A.room(), |body| matches!(body, EventBody::TimeUp { round: 1 }))
        .await?;
    assert_eq!(up.at - warning.at, 60_000, "a minute's warning, in the caucus itself");
    Ok(())
}
