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

    // The series as a calendar.
    let calendar = kofi.get(&format!("/api/communities/{id}/calendar.ics")).await?;
    ensure!(
        calendar.status == 200
            && calendar.header("content-type").is_some_and(|t| t.starts_with("text/calendar"))
    );
    ensure!(calendar.body.matches("BEGIN:VEVENT").count() == 2, "{}", calendar.body);
    ensure!(calendar.body.contains(&format!("UID:{}@", march.session)), "{}", calendar.body);

    // Kofi leaves; the last co-chair cannot.
    ensure!(kofi.delete(&format!("/api/communities/{id}/people/me")).await?.status == 204);
    ensure!(kofi.get(&format!("/api/communities/{id}")).await?.status == 404, "he is no longer in it");
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
