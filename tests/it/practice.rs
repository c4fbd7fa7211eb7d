//! The practice: a community with co-chairs, a secretary and members, terms of
//! reference that people accept (again, after a new version) before entering a
//! session, a series of sessions that start with the community's labels, and the
//! series as a calendar.

use anyhow::{Result, ensure};
use caucus_protocol::Role;
use caucus_protocol::community::{
    CommunityInvite, CommunityPage, CommunityRole, EnteredSession, ScheduledSession,
};

use crate::accounts::{admin_server, error_code, sign_in};

const TERMS_V1: &str = "We meet monthly.\nWe listen before we answer.\n";
const TERMS_V2: &str =
    "We meet monthly.\nWe listen before we answer.\nWhat is said in a caucus stays in it.\n";

#[tokio::test]
async fn a_community_runs_a_series_with_terms_that_people_accept_again_after_a_change() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body = serde_json::json!({
        "name": "Anti-racism community of practice",
        "caucuses": { "a": "Racially minoritised caucus", "b": "White caucus" },
        "terms": TERMS_V1,
    });
    let created = ada.post("/api/communities", &body.to_string()).await?;
    ensure!(created.status == 201, "{} {}", created.status, created.body);
    let invite: CommunityInvite = created.json()?;
    let id = invite.community.clone();
    ensure!(invite.invite_url.contains("#community="), "{invite:?}");

    // Co-chairs invite once: Bea as the other co-chair, Sam as secretary; Kofi joins by
    // the community's link.
    let add = |email: &str, role: &str| serde_json::json!({ "email": email, "role": role }).to_string();
    ensure!(
        ada.post(&format!("/api/communities/{id}/people"), &add("bea@example.org", "co_chair")).await?.status
            == 200
    );
    ensure!(
        ada.post(&format!("/api/communities/{id}/people"), &add("sam@example.org", "secretary"))
            .await?
            .status
            == 200
    );
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let join = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &join).await?.status == 200, "Kofi joins by the link");
    let stranger = sign_in(&server, "eve@example.org").await?;
    ensure!(stranger.get(&format!("/api/communities/{id}")).await?.status == 404, "not for strangers");
    let not_co_chair =
        kofi.post(&format!("/api/communities/{id}/people"), &add("x@example.org", "member")).await?;
    ensure!(not_co_chair.status == 403, "{}", not_co_chair.body);

    // Two sessions of the series, in March and April.
    let schedule = |title: &str, at: i64| {
        serde_json::json!({ "title": title, "starts_at": at, "agenda": "Check-in; caucuses; plenary" })
            .to_string()
    };
    let march: ScheduledSession = ada
        .post(&format!("/api/communities/{id}/sessions"), &schedule("March", 4_000_000_000))
        .await?
        .json()?;
    let april: ScheduledSession = ada
        .post(&format!("/api/communities/{id}/sessions"), &schedule("April", 4_002_000_000))
        .await?
        .json()?;
    let refused =
        kofi.post(&format!("/api/communities/{id}/sessions"), &schedule("Mine", 4_000_000_000)).await?;
    ensure!(refused.status == 403, "only co-chairs schedule: {}", refused.body);

    // Bea co-facilitates both from the start, with the community's labels.
    let bea = sign_in(&server, "bea@example.org").await?;
    let mut desk = bea.socket().await?;
    let welcome = desk.hello(&march.session, "").await?;
    ensure!(welcome.you.role == Role::Facilitator, "{:?}", welcome.you);
    ensure!(welcome.session.caucuses.b == "White caucus", "{:?}", welcome.session.caucuses);

    // Kofi must accept the terms before entering.
    let enter =
        |session: &caucus_protocol::SessionId| format!("/api/communities/{id}/sessions/{session}/enter");
    let blocked = kofi.post(&enter(&march.session), "").await?;
    ensure!(
        blocked.status == 403 && error_code(&blocked).as_deref() == Some("terms_required"),
        "{} {}",
        blocked.status,
        blocked.body
    );
    let accept = |version: u32| serde_json::json!({ "version": version }).to_string();
    ensure!(kofi.post(&format!("/api/communities/{id}/terms/accept"), &accept(1)).await?.status == 200);
    let entered: EnteredSession = kofi.post(&enter(&march.session), "").await?.json()?;
    let mut kofis = kofi.socket().await?;
    let welcome = kofis.hello(&march.session, "").await?;
    ensure!(welcome.you.id == entered.member && welcome.you.role == Role::Member, "{:?}", welcome.you);

    // A new version: Kofi sees what changed and accepts again before April.
    let published = ada
        .post(&format!("/api/communities/{id}/terms"), &serde_json::json!({ "text": TERMS_V2 }).to_string())
        .await?;
    ensure!(published.status == 200, "{}", published.body);
    let page: CommunityPage = kofi.get(&format!("/api/communities/{id}")).await?.json()?;
    let terms = page.terms.clone().expect("terms");
    ensure!(terms.version == 2 && terms.accepted == Some(1), "{terms:?}");
    ensure!(
        terms.changes.as_deref().is_some_and(|diff| diff.contains("+What is said in a caucus stays in it.")),
        "{terms:?}"
    );
    ensure!(page.acceptance.is_none(), "members do not see who accepted");
    let blocked = kofi.post(&enter(&april.session), "").await?;
    ensure!(blocked.status == 403 && blocked.body.contains("version 2"), "{}", blocked.body);
    let stale = kofi.post(&format!("/api/communities/{id}/terms/accept"), &accept(1)).await?;
    ensure!(stale.status == 422, "only the current version can be accepted: {}", stale.body);
    ensure!(kofi.post(&format!("/api/communities/{id}/terms/accept"), &accept(2)).await?.status == 200);
    ensure!(kofi.post(&enter(&april.session), "").await?.status == 200, "Kofi enters April");

    // Co-chairs and the secretary see who accepted, by name; the page lists the series.
    let sam = sign_in(&server, "sam@example.org").await?;
    let page: CommunityPage = sam.get(&format!("/api/communities/{id}")).await?.json()?;
    ensure!(page.role == CommunityRole::Secretary, "{:?}", page.role);
    let acceptance = page.acceptance.clone().expect("the secretary sees acceptance");
    ensure!(acceptance.version == 2 && acceptance.accepted == ["kofi"], "{acceptance:?}");
    ensure!(acceptance.pending.len() == 3, "Ada, Bea and Sam have not accepted v2: {acceptance:?}");
    let titles: Vec<&str> = page.sessions.iter().map(|session| session.title.as_str()).collect();
    ensure!(titles == ["March", "April"], "{titles:?}");
    ensure!(!serde_json::to_string(&page)?.contains("caucus_a"), "nothing about seats");

    // The community's secretary is the session's secretary from the moment she enters,
    // so she exports the minutes without a facilitator marking her.
    ensure!(sam.post(&format!("/api/communities/{id}/terms/accept"), &accept(2)).await?.status == 200);
    let entered: EnteredSession = sam.post(&enter(&april.session), "").await?.json()?;
    let welcome = sam.socket().await?.hello(&april.session, "").await?;
    ensure!(
        welcome.you.id == entered.member && welcome.you.role == Role::Member && welcome.you.secretary,
        "{:?}",
        welcome.you
    );
    let minutes = sam.get(&format!("/api/sessions/{}/minutes", april.session)).await?;
    ensure!(minutes.status == 200, "the secretary exports the minutes: {} {}", minutes.status, minutes.body);
    let minutes = kofi.get(&format!("/api/sessions/{}/minutes", april.session)).await?;
    ensure!(minutes.status == 403 || minutes.status == 404, "a member does not: {}", minutes.status);

    // The series as a calendar.
    let calendar = kofi.get(&format!("/api/communities/{id}/calendar.ics")).await?;
    ensure!(
        calendar.status == 200
            && calendar.header("content-type").is_some_and(|t| t.starts_with("text/calendar"))
    );
    ensure!(calendar.body.matches("BEGIN:VEVENT").count() == 2, "{}", calendar.body);
    ensure!(calendar.body.contains(&format!("UID:{}@", march.session)), "{}", calendar.body);

    // A private feed for his calendar program, which cannot sign in; a new one stops
    // the old one.
    let feed =
        |url: String| url.split_once("/api/").map(|(_, path)| format!("/api/{path}")).unwrap_or_default();
    let first: caucus_protocol::community::CalendarFeed =
        kofi.post(&format!("/api/communities/{id}/calendar-feed"), "").await?.json()?;
    let read =
        |path: String| async move { caucus_tests::http(server.address, "GET", &path, &[], None).await };
    let subscribed = read(feed(first.feed_url.clone())).await?;
    ensure!(
        subscribed.status == 200 && subscribed.body.matches("BEGIN:VEVENT").count() == 2,
        "{}",
        subscribed.body
    );
    let second: caucus_protocol::community::CalendarFeed =
        kofi.post(&format!("/api/communities/{id}/calendar-feed"), "").await?.json()?;
    ensure!(read(feed(first.feed_url)).await?.status == 404, "the old feed stops");
    ensure!(read(feed(second.feed_url.clone())).await?.status == 200, "the new one works");
    let guessed = format!("/api/communities/{id}/calendar.ics?key=0000");
    ensure!(read(guessed).await?.status == 404, "a made-up key opens nothing");

    // His own export holds his community and each acceptance, and nothing about caucuses.
    let export: caucus_protocol::api::AccountExport = kofi.get("/api/me/export").await?.json()?;
    ensure!(export.communities.len() == 1 && export.communities[0].community == id, "{export:?}");
    let versions: Vec<u32> = export.acceptances.iter().map(|acceptance| acceptance.version).collect();
    ensure!(versions == [1, 2], "{versions:?}");

    // Kofi leaves; the last co-chair cannot.
    ensure!(kofi.delete(&format!("/api/communities/{id}/people/me")).await?.status == 204);
    ensure!(kofi.get(&format!("/api/communities/{id}")).await?.status == 404, "he is no longer in it");
    ensure!(read(feed(second.feed_url.clone())).await?.status == 404, "his feed stops when he leaves");
    // ...and stays stopped when he comes back: a leaked address opens nothing again.
    let code = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &code).await?.status == 200, "Kofi rejoins");
    ensure!(read(feed(second.feed_url)).await?.status == 404, "his old feed came back with him");
    ensure!(kofi.delete(&format!("/api/communities/{id}/people/me")).await?.status == 204);
    ensure!(bea.delete(&format!("/api/communities/{id}/people/me")).await?.status == 204, "Bea may leave");
    let last = ada.delete(&format!("/api/communities/{id}/people/me")).await?;
    ensure!(last.status == 422 && last.body.contains("only co-chair"), "{}", last.body);
    Ok(())
}

#[tokio::test]
async fn only_people_who_may_facilitate_start_a_community() -> Result<()> {
    let server = admin_server().await;
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let body = serde_json::json!({ "name": "Mine", "caucuses": { "a": "A", "b": "B" } }).to_string();
    let refused = kofi.post("/api/communities", &body).await?;
    ensure!(refused.status == 403 && refused.body.contains("admin"), "{}", refused.body);
    let forged = kofi.send("POST", "/api/communities", Some(&body), None).await?;
    ensure!(forged.status == 403 && error_code(&forged).as_deref() == Some("csrf"), "{}", forged.body);
    Ok(())
}

#[tokio::test]
async fn three_sessions_build_on_each_other_and_the_archive_holds_points_without_authors() -> Result<()> {
    use caucus_protocol::community::{Action, Archive, FromLastTime};
    use caucus_protocol::{Caucus, Command, EventBody};
    use caucus_tests::room;

    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body = serde_json::json!({
        "name": "Practice", "caucuses": { "a": "Racially minoritised caucus", "b": "White caucus" }, "terms": TERMS_V1
    });
    let invite: CommunityInvite = ada.post("/api/communities", &body.to_string()).await?.json()?;
    let id = invite.community.clone();
    let add = serde_json::json!({ "email": "sam@example.org", "role": "secretary" }).to_string();
    ensure!(ada.post(&format!("/api/communities/{id}/people"), &add).await?.status == 200);
    let kofi = sign_in(&server, "kofi.unique@example.org").await?;
    let join = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &join).await?.status == 200);
    ensure!(
        kofi.post(&format!("/api/communities/{id}/terms/accept"), r#"{"version":1}"#).await?.status == 200
    );
    let sam = sign_in(&server, "sam@example.org").await?;

    let mut series = Vec::new();
    for (title, at) in [("March", 4_000_000_000i64), ("April", 4_002_000_000), ("May", 4_004_000_000)] {
        let body = serde_json::json!({ "title": title, "starts_at": at }).to_string();
        let scheduled: ScheduledSession =
            ada.post(&format!("/api/communities/{id}/sessions"), &body).await?.json()?;
        series.push(scheduled.session);
    }
    let (march, april, may) = (&series[0], &series[1], &series[2]);
    let enter =
        |session: &caucus_protocol::SessionId| format!("/api/communities/{id}/sessions/{session}/enter");

    // March: Kofi's caucus carries a point to the plenary.
    ensure!(kofi.post(&enter(march), "").await?.status == 200);
    let mut desk = ada.socket().await?;
    desk.hello(march, "").await?;
    let mut kofis = kofi.socket().await?;
    kofis.hello(march, "").await?;
    desk.ok(Command::SetTopic { text: "Naming racism in our meetings".into() }).await?;
    kofis.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
    desk.ok(Command::OpenCaucuses { duration_secs: None }).await?;
    kofis
        .ok(Command::WritePoint {
            room: room(Caucus::A.room()),
            text: "We are tired of explaining, every time".into(),
        })
        .await?;
    desk.ok(Command::Reconvene { round: 1 }).await?;
    desk.expect_event(|event| matches!(event.body, EventBody::Feedback { .. })).await?;

    // The secretary records an action in March.
    let action = serde_json::json!({ "text": "Draft a recruitment checklist", "owner": "Sam", "due": "2096-12-01", "session": march });
    let recorded = sam.post(&format!("/api/communities/{id}/actions"), &action.to_string()).await?;
    ensure!(recorded.status == 201, "{} {}", recorded.status, recorded.body);
    let recorded: Action = recorded.json()?;
    let refused = kofi.post(&format!("/api/communities/{id}/actions"), &action.to_string()).await?;
    ensure!(refused.status == 403, "members do not record actions: {}", refused.body);

    // April opens with "From last time": March's topic and carried point, by caucus, and
    // the open action.
    let last: FromLastTime =
        kofi.get(&format!("/api/communities/{id}/sessions/{april}/from-last-time")).await?.json()?;
    let previous = last.previous.clone().expect("March comes before April");
    ensure!(previous.session == *march, "{previous:?}");
    let round = &previous.rounds[0];
    ensure!(round.topic.as_deref() == Some("Naming racism in our meetings"), "{round:?}");
    ensure!(round.feedback[0].label == "Racially minoritised caucus", "{round:?}");
    ensure!(round.feedback[1].label == "White caucus" && round.feedback[1].points.is_empty(), "{round:?}");
    ensure!(round.feedback[0].points == ["We are tired of explaining, every time"], "{round:?}");
    ensure!(last.open_actions.len() == 1 && last.open_actions[0].id == recorded.id, "{last:?}");
    let first: FromLastTime =
        kofi.get(&format!("/api/communities/{id}/sessions/{march}/from-last-time")).await?.json()?;
    ensure!(first.previous.is_none(), "nothing before the first session");

    // A co-chair carries the point forward as a topic proposal for April.
    ensure!(kofi.post(&enter(april), "").await?.status == 200);
    let mut desk = ada.socket().await?;
    desk.hello(april, "").await?;
    desk.ok(Command::ProposeTopic { text: round.feedback[0].points[0].clone() }).await?;
    let proposed = desk.expect_event(|event| matches!(event.body, EventBody::TopicProposed { .. })).await?;
    ensure!(
        matches!(&proposed.body, EventBody::TopicProposed { proposal } if proposal.text == "We are tired of explaining, every time"),
        "{proposed:?}"
    );

    // May: the action is reviewed and closed.
    let close = serde_json::json!({ "session": may }).to_string();
    let closed = sam.post(&format!("/api/communities/{id}/actions/{}/close", recorded.id), &close).await?;
    ensure!(closed.status == 200, "{}", closed.body);
    let again = sam.post(&format!("/api/communities/{id}/actions/{}/close", recorded.id), &close).await?;
    ensure!(again.status == 404, "an action closes once: {}", again.body);
    let typo = sam.post(&format!("/api/communities/{id}/actions/abc/close"), &close).await?;
    ensure!(typo.status == 404 && error_code(&typo).as_deref() == Some("invalid_value"), "{}", typo.body);
    let last: FromLastTime =
        kofi.get(&format!("/api/communities/{id}/sessions/{may}/from-last-time")).await?.json()?;
    ensure!(
        last.open_actions.is_empty() && last.previous.is_some_and(|past| past.session == *april),
        "May follows April"
    );

    // The archive: exactly March's point, attributed to its caucus, and the action.
    let response = kofi.get(&format!("/api/communities/{id}/archive")).await?;
    let archive: Archive = response.json()?;
    let points: Vec<&String> = archive
        .sessions
        .iter()
        .flat_map(|session| &session.rounds)
        .flat_map(|round| &round.feedback)
        .flat_map(|carried| &carried.points)
        .collect();
    ensure!(points == ["We are tired of explaining, every time"], "{points:?}");
    ensure!(archive.sessions.len() == 3 && archive.actions[0].closed_in.as_ref() == Some(may), "{archive:?}");
    let kofi_id = kofi.me.account.id.clone();
    ensure!(
        !response.body.contains(&kofi_id) && !response.body.contains("kofi"),
        "no authors: {}",
        response.body
    );
    let markdown = kofi.get(&format!("/api/communities/{id}/archive?format=markdown")).await?;
    ensure!(
        markdown.header("content-type").is_some_and(|t| t.starts_with("text/markdown")),
        "a Markdown file"
    );
    ensure!(
        markdown.body.contains("Racially minoritised caucus:\n\n1. We are tired of explaining, every time"),
        "{}",
        markdown.body
    );
    ensure!(
        markdown.body.contains("- [x] Draft a recruitment checklist (owner: Sam) (due 2096-12-01)"),
        "{}",
        markdown.body
    );
    ensure!(!markdown.body.contains("kofi"), "no authors in the export");
    let found: Archive = kofi.get(&format!("/api/communities/{id}/archive?q=recruitment")).await?.json()?;
    ensure!(found.sessions.is_empty() && found.actions.len() == 1, "{found:?}");
    Ok(())
}

#[tokio::test]
async fn the_last_co_chair_stays_and_a_series_session_keeps_its_terms_at_every_door() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body =
        serde_json::json!({ "name": "Practice", "caucuses": { "a": "A", "b": "B" }, "terms": TERMS_V1 });
    let invite: CommunityInvite = ada.post("/api/communities", &body.to_string()).await?.json()?;
    let id = invite.community.clone();

    let demote = serde_json::json!({ "email": "ada@example.org", "role": "member" }).to_string();
    let refused = ada.post(&format!("/api/communities/{id}/people"), &demote).await?;
    ensure!(refused.status == 422 && refused.body.contains("only co-chair"), "{}", refused.body);
    // Nor can she leave it leaderless by deleting her account.
    let deleting = ada.delete("/api/me").await?;
    ensure!(
        deleting.status == 422 && deleting.body.contains("only co-chair of “Practice”"),
        "{} {}",
        deleting.status,
        deleting.body
    );
    ensure!(ada.get(&format!("/api/communities/{id}")).await?.status == 200, "her account and part stay");
    let again = serde_json::json!({ "email": "ada@example.org" }).to_string();
    let kept: caucus_protocol::community::CommunityPerson =
        ada.post(&format!("/api/communities/{id}/people"), &again).await?.json()?;
    ensure!(kept.role == CommunityRole::CoChair, "adding again without a role keeps the part: {kept:?}");

    let schedule = serde_json::json!({ "title": "March", "starts_at": 4_000_000_000i64 }).to_string();
    let march: ScheduledSession =
        ada.post(&format!("/api/communities/{id}/sessions"), &schedule).await?.json()?;
    let bad_time = serde_json::json!({ "title": "Typo", "starts_at": 4_000 }).to_string();
    ensure!(
        ada.post(&format!("/api/communities/{id}/sessions"), &bad_time).await?.status == 422,
        "a mistaken time"
    );
    let link: caucus_protocol::api::InviteLink =
        ada.get(&format!("/api/sessions/{}/invite", march.session)).await?.json()?;
    let join = serde_json::json!({ "invite_code": link.invite_code, "name": "Someone" }).to_string();

    // The session's own invite does not get round the community or its terms.
    let eve = sign_in(&server, "eve@example.org").await?;
    ensure!(eve.post("/api/join", &join).await?.status == 404, "strangers are not let in");
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let code = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &code).await?.status == 200);
    let blocked = kofi.post("/api/join", &join).await?;
    ensure!(error_code(&blocked).as_deref() == Some("terms_required"), "{}", blocked.body);
    ensure!(
        kofi.post(&format!("/api/communities/{id}/terms/accept"), r#"{"version":1}"#).await?.status == 200
    );
    ensure!(kofi.post("/api/join", &join).await?.status == 200, "with the terms accepted, the invite works");
    Ok(())
}

/// Every file in the data folder, as raw bytes.
fn raw_files(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(content) = std::fs::read(entry.path()) {
            bytes.extend(content);
        }
    }
    bytes
}

#[tokio::test]
async fn after_three_sessions_no_caucus_transcript_and_no_seat_remains_on_disk() -> Result<()> {
    use caucus_protocol::{Caucus, Command, EventBody};
    use caucus_tests::room;

    use crate::support::holds;

    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body = serde_json::json!({ "name": "Practice", "caucuses": { "a": "A", "b": "B" } });
    let invite: CommunityInvite = ada.post("/api/communities", &body.to_string()).await?.json()?;
    let id = invite.community.clone();
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let join = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &join).await?.status == 200);

    for n in 1..=3 {
        let body = serde_json::json!({ "title": format!("Session {n}"), "starts_at": 4_000_000_000i64 + n })
            .to_string();
        let scheduled: ScheduledSession =
            ada.post(&format!("/api/communities/{id}/sessions"), &body).await?.json()?;
        let session = scheduled.session;
        ensure!(
            kofi.post(&format!("/api/communities/{id}/sessions/{session}/enter"), "").await?.status == 200
        );
        let mut desk = ada.socket().await?;
        desk.hello(&session, "").await?;
        let mut kofis = kofi.socket().await?;
        kofis.hello(&session, "").await?;
        kofis.ok(Command::ChooseCaucus { caucus: Some(Caucus::A) }).await?;
        desk.ok(Command::OpenCaucuses { duration_secs: None }).await?;
        kofis.say(Caucus::A.room(), &format!("SECRET-CAUCUS-{n}")).await?;
        kofis.ok(Command::WritePoint { room: room(Caucus::A.room()), text: format!("CARRIED-{n}") }).await?;
        desk.ok(Command::Reconvene { round: 1 }).await?;
        desk.expect_event(|event| matches!(event.body, EventBody::Feedback { .. })).await?;
        ensure!(
            holds(&raw_files(server.data_dir()), &format!("SECRET-CAUCUS-{n}")),
            "the raw check sees live text"
        );
        desk.ok(Command::EndSession {}).await?;
    }

    let mut raw = raw_files(server.data_dir());
    for _ in 0..100 {
        if !holds(&raw, "SECRET-CAUCUS") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        raw = raw_files(server.data_dir());
    }
    for gone in [
        "SECRET-CAUCUS-1",
        "SECRET-CAUCUS-2",
        "SECRET-CAUCUS-3",
        "\"kind\":\"seated\"",
        "\"kind\":\"caucus_joined\"",
    ] {
        ensure!(!holds(&raw, gone), "`{gone}` is still readable in the data folder's files");
    }
    for kept in ["CARRIED-1", "CARRIED-2", "CARRIED-3"] {
        ensure!(holds(&raw, kept), "the carried point `{kept}` is kept, attributed to its caucus");
    }
    let archive = kofi.get(&format!("/api/communities/{id}/archive")).await?;
    ensure!(
        archive.body.contains("CARRIED-3") && !archive.body.contains("SECRET-CAUCUS"),
        "{}",
        archive.body
    );
    Ok(())
}

#[tokio::test]
async fn erasing_a_person_reaches_every_session_of_the_community() -> Result<()> {
    use caucus_protocol::Room;
    use caucus_protocol::community::ErasedFromCommunity;

    use crate::support::holds;

    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body = serde_json::json!({ "name": "Practice", "caucuses": { "a": "A", "b": "B" } });
    let invite: CommunityInvite = ada.post("/api/communities", &body.to_string()).await?.json()?;
    let id = invite.community.clone();
    let kofi = sign_in(&server, "kofi@example.org").await?;
    ensure!(kofi.post("/api/me", r#"{"name":"Kofi Zebulon"}"#).await?.status == 200);
    let join = serde_json::json!({ "invite_code": invite.invite_code }).to_string();
    ensure!(kofi.post("/api/communities/join", &join).await?.status == 200);

    let mut sessions = Vec::new();
    for n in 1..=2 {
        let body = serde_json::json!({ "title": format!("Session {n}"), "starts_at": 4_000_000_000i64 + n })
            .to_string();
        let scheduled: ScheduledSession =
            ada.post(&format!("/api/communities/{id}/sessions"), &body).await?.json()?;
        ensure!(
            kofi.post(&format!("/api/communities/{id}/sessions/{}/enter", scheduled.session), "")
                .await?
                .status
                == 200
        );
        let mut kofis = kofi.socket().await?;
        kofis.hello(&scheduled.session, "").await?;
        kofis.say(Room::Plenary, &format!("PLENARY-WORDS-{n}")).await?;
        sessions.push(scheduled.session);
    }
    ensure!(
        holds(&server.raw_database(), "PLENARY-WORDS-1") && holds(&server.raw_database(), "Kofi Zebulon")
    );

    let refused = ada.post(&format!("/api/communities/{id}/people/{}/erase", ada.me.account.id), "").await?;
    ensure!(refused.status == 422, "a co-chair is not erased: {}", refused.body);
    let erased: ErasedFromCommunity =
        ada.post(&format!("/api/communities/{id}/people/{}/erase", kofi.me.account.id), "").await?.json()?;
    ensure!(erased.sessions == sessions, "{erased:?}");
    let raw = server.raw_database();
    // His words are gone from the files; his account keeps its own name until he
    // deletes it, but the sessions no longer show it (below).
    for gone in ["PLENARY-WORDS-1", "PLENARY-WORDS-2"] {
        ensure!(!holds(&raw, gone), "`{gone}` is still readable in the database files");
    }
    let page: CommunityPage = ada.get(&format!("/api/communities/{id}")).await?.json()?;
    ensure!(page.people.iter().all(|person| person.account != kofi.me.account.id), "{:?}", page.people);
    let mut desk = ada.socket().await?;
    let welcome = desk.hello(&sessions[0], "").await?;
    ensure!(
        welcome.members.iter().all(|member| member.name != "Kofi Zebulon"),
        "the session no longer shows his name: {:?}",
        welcome.members
    );
    Ok(())
}
