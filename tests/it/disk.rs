//! Purged means gone from the files: after the end-of-session purge, a retention purge
//! or an erasure, no byte of the purged text is left in any file of the data folder
//! (database, WAL, shared memory, backups), read raw as a disk thief would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use caucus_protocol::{Caucus, Command, EventBody, Room, Settings};
use caucus_tests::room;

use crate::support::{Person, Scene, TestServer, holds};

/// Every file below `dir`, concatenated: what a copy of the data folder would hold.
fn raw_files(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(content) = std::fs::read(&path) {
                bytes.extend(content);
            }
        }
    }
    bytes
}

/// A small deterministic generator: who speaks next and at what length, so that the
/// rooms' rows interleave irregularly, as real talk does.
struct Talk(u64);

impl Talk {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    /// Of varied lengths, so that pages fill unevenly and the purge's deletions
    /// rebalance them: a rebalance is where deleted text used to survive, in the unused
    /// bytes of a page.
    fn words(&mut self, marker: &str) -> String {
        format!("{marker} {}", "what we said in the caucus ".repeat(1 + self.next(50) as usize))
    }
}

/// A server that lets one person send quickly, so that a test can fill many pages.
async fn roomy_server(adjust: impl FnOnce(&mut caucus_server::config::Config)) -> TestServer {
    TestServer::start_with(|config| {
        let limits = &mut config.limits;
        (limits.frames_per_sec, limits.frame_burst) = (100_000, 100_000);
        (limits.member_frames_per_sec, limits.member_frame_burst) = (100_000, 100_000);
        adjust(config);
    })
    .await
}

/// Messages per round: over three rounds, well over a thousand events.
const PER_ROUND: usize = 500;

/// Three rounds of talk in both caucuses and the plenary while a member is moved
/// between the caucuses, with flagged, written and withdrawn points. Returns the
/// members: Amara and Chidi start in caucus A, Dana in caucus B.
async fn talk_through_rounds(scene: &mut Scene) -> Result<Vec<Person>> {
    let mut amara = scene.seated("Amara", Caucus::A).await?;
    let mut dana = scene.seated("Dana", Caucus::B).await?;
    let mut chidi = scene.seated("Chidi", Caucus::A).await?;
    let mut talk = Talk(7);
    let mut chidi_seat = Caucus::A;
    for round in 1..=3u32 {
        scene.open_round().await?;
        for n in 0..PER_ROUND {
            if n == PER_ROUND / 2 {
                // Chidi is moved mid-talk, and goes on talking in his new caucus.
                chidi_seat = if chidi_seat == Caucus::A { Caucus::B } else { Caucus::A };
                let to = Some(chidi_seat);
                scene.facilitator.client.ok(Command::Move { member: chidi.id.clone(), caucus: to }).await?;
                chidi.client.sync().await?;
            }
            match talk.next(4) {
                0 => amara.client.say(Caucus::A.room(), &talk.words("SECRET-A")).await?,
                1 => dana.client.say(Caucus::B.room(), &talk.words("SECRET-B")).await?,
                2 => chidi.client.say(chidi_seat.room(), &talk.words("SECRET-MOVED")).await?,
                _ => scene.facilitator.client.say(Room::Plenary, &talk.words("PLENARY-KEPT")).await?,
            };
        }
        let flagged = amara.client.say(Caucus::A.room(), &format!("CARRIED-KEPT {round}")).await?;
        amara.client.ok(Command::Flag { room: room(Caucus::A.room()), seq: flagged }).await?;
        dana.client
            .ok(Command::WritePoint { room: room(Caucus::B.room()), text: talk.words("SECRET-POINT") })
            .await?;
        let written = dana
            .client
            .expect_body(Caucus::B.room(), |body| matches!(body, EventBody::PointAdded { .. }))
            .await?;
        let EventBody::PointAdded { point } = written.body else { unreachable!("picked above") };
        dana.client.ok(Command::WithdrawPoint { room: room(Caucus::B.room()), point: point.id }).await?;
        scene.facilitator.client.ok(Command::Reconvene { round }).await?;
    }
    Ok(vec![amara, dana, chidi])
}

/// Waits, briefly, for the purge that follows an end; the purge runs right after.
async fn wait_for_purge(data: &Path) -> Vec<u8> {
    for _ in 0..100 {
        let raw = raw_files(data);
        if !holds(&raw, "SECRET-") {
            return raw;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    raw_files(data)
}

fn assert_purged(raw: &[u8]) -> Result<()> {
    for secret in ["SECRET-A", "SECRET-B", "SECRET-MOVED", "SECRET-POINT", "\"kind\":\"seated\""] {
        ensure!(!holds(raw, secret), "`{secret}` is still readable in the data folder's files");
    }
    ensure!(holds(raw, "PLENARY-KEPT"), "the plenary transcript is kept");
    ensure!(holds(raw, "CARRIED-KEPT"), "the carried points are kept, in the plenary");
    Ok(())
}

#[tokio::test]
async fn the_end_of_session_purge_leaves_no_caucus_text_in_any_file() -> Result<()> {
    let mut scene = Scene::on(roomy_server(|_| {}).await, Settings::default()).await?;
    talk_through_rounds(&mut scene).await?;
    ensure!(holds(&raw_files(scene.server.data_dir()), "SECRET-MOVED"), "the raw check sees live text");

    scene.facilitator.client.ok(Command::EndSession {}).await?;
    assert_purged(&wait_for_purge(scene.server.data_dir()).await)
}

#[tokio::test]
async fn a_database_restored_from_a_backup_is_purged_clean_too() -> Result<()> {
    let mut scene = Scene::on(roomy_server(|_| {}).await, Settings::default()).await?;
    talk_through_rounds(&mut scene).await?;
    // The operator takes a backup just before the end, and later restores it.
    let backup = tempfile::tempdir()?;
    let copy = backup.path().join("before-the-end.db");
    caucus_server::store::backup(&scene.server.data_dir().join("caucus.db"), &copy)?;
    ensure!(holds(&std::fs::read(&copy)?, "SECRET-A"), "the backup holds the live session");

    let restored = tempfile::tempdir()?;
    std::fs::copy(&copy, restored.path().join("caucus.db"))?;
    let config = crate::support::test_config(&restored);
    let server = TestServer::launch_in(config, restored).await;
    let mut desk = server.client().await;
    desk.hello(&scene.session, &scene.facilitator.token).await?;
    desk.ok(Command::EndSession {}).await?;
    assert_purged(&wait_for_purge(server.data_dir()).await)
}

#[tokio::test]
async fn a_retention_purge_leaves_no_caucus_text_in_any_file() -> Result<()> {
    let server = roomy_server(|config| config.retention.caucus_transcript_days = 30).await;
    let mut scene = Scene::on(server, Settings::default()).await?;
    talk_through_rounds(&mut scene).await?;
    scene.facilitator.client.ok(Command::EndSession {}).await?;
    // Kept for the caucuses while the retention lasts...
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(holds(&raw_files(scene.server.data_dir()), "SECRET-A"), "retention keeps the transcript");

    // ...until the operator shortens the retention: the purge is then due at start.
    let mut server = scene.server;
    server.config.retention.caucus_transcript_days = 0;
    let server = server.restart().await;
    assert_purged(&wait_for_purge(server.data_dir()).await)
}

#[tokio::test]
async fn an_erasure_is_acknowledged_only_once_the_words_are_gone_from_every_file() -> Result<()> {
    let mut scene = Scene::on(roomy_server(|_| {}).await, Settings::default()).await?;
    let mut members = talk_through_rounds(&mut scene).await?;
    let chidi = members.pop().expect("three members");
    ensure!(holds(&raw_files(scene.server.data_dir()), "SECRET-MOVED"));

    scene.facilitator.client.ok(Command::EraseMember { member: chidi.id.clone() }).await?;
    // No waiting: the acknowledgement comes after the files are clean.
    let raw = raw_files(scene.server.data_dir());
    ensure!(!holds(&raw, "SECRET-MOVED"), "erased words are still readable in the data folder's files");
    ensure!(!holds(&raw, "Chidi"), "an erased name is still readable in the data folder's files");
    ensure!(holds(&raw, "SECRET-A"), "other people's words are kept");

    // A backup written after the erasure holds none of it either.
    let copy = scene.server.data_dir().join("after-erasure.db");
    caucus_server::store::backup(&scene.server.data_dir().join("caucus.db"), &copy)?;
    ensure!(!holds(&std::fs::read(&copy)?, "SECRET-MOVED"), "the backup holds erased words");
    let mut fresh = scene.server.client().await;
    let (_, replay) = fresh.hello_resume(&scene.session, &members[0].token, BTreeMap::new()).await?;
    ensure!(!serde_json::to_string(&replay)?.contains("SECRET-MOVED"));
    Ok(())
}

#[tokio::test]
async fn an_erasure_blocked_from_cleaning_the_files_stands_and_is_cleaned_by_a_later_write() -> Result<()> {
    let mut scene =
        Scene::on(roomy_server(|config| config.store.busy_timeout_ms = 200).await, Settings::default())
            .await?;
    let mut members = talk_through_rounds(&mut scene).await?;
    let chidi = members.pop().expect("three members");

    // A reader (a backup, say) holds the database open in a read transaction.
    let reader = rusqlite::Connection::open(scene.server.data_dir().join("caucus.db"))?;
    reader.execute_batch("BEGIN; SELECT count(*) FROM events;")?;
    scene.facilitator.client.ok(Command::EraseMember { member: chidi.id.clone() }).await?;
    // The erasure stands: nobody is shown the words any more.
    let mut fresh = scene.server.client().await;
    let (_, replay) = fresh.hello_resume(&scene.session, &members[0].token, BTreeMap::new()).await?;
    ensure!(!serde_json::to_string(&replay)?.contains("SECRET-MOVED"), "the erased words are still shown");

    // Once the reader lets go, the next write finishes cleaning the files.
    reader.execute_batch("COMMIT;")?;
    drop(reader);
    members[0].client.say(Room::Plenary, "a later write").await?;
    // The later write is answered before the clean-up runs behind it.
    let mut clean = false;
    for _ in 0..100 {
        if !holds(&raw_files(scene.server.data_dir()), "SECRET-MOVED") {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(clean, "erased words are still readable after a later write");
    Ok(())
}
