//! The practice's HTTP surface: communities, their people, terms of reference, and
//! their series of sessions. Everything here needs a signed-in browser (the cookie, and
//! the CSRF token on POST and DELETE).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caucus_protocol::api::CreateSession;
use caucus_protocol::community::{
    AcceptTerms, Action, AddCommunityPerson, Archive, CloseAction, Communities, CommunityInvite,
    CommunityPage, CommunityRole, CreateCommunity, EnteredSession, FromLastTime, JoinCommunity, PastSession,
    PublishTerms, RecordAction, ScheduleSession, ScheduledSession, TermsStatus,
};
use caucus_protocol::{ErrorCode, MemberId, SessionId};

use super::{ApiFailure, read_json};
use crate::accounts::SignedIn;
use crate::hub::{Hub, HubError};
use crate::practice::{PracticeError, db::SeriesRow, rules};

impl From<PracticeError> for ApiFailure {
    fn from(err: PracticeError) -> Self {
        let (status, code) = match &err {
            PracticeError::NotInCommunity | PracticeError::NotInSeries => {
                (StatusCode::NOT_FOUND, ErrorCode::Forbidden)
            }
            PracticeError::NotCoChair | PracticeError::NotRecorder => {
                (StatusCode::FORBIDDEN, ErrorCode::Forbidden)
            }
            PracticeError::NoSuchAction => (StatusCode::NOT_FOUND, ErrorCode::InvalidValue),
            PracticeError::NoSuchInvite => (StatusCode::NOT_FOUND, ErrorCode::NoSuchInvite),
            PracticeError::TermsRequired(_) => (StatusCode::FORBIDDEN, ErrorCode::TermsRequired),
            PracticeError::NotCurrentTerms { .. } | PracticeError::Invalid(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue)
            }
            PracticeError::Account(_) => {
                let PracticeError::Account(inner) = err else { unreachable!("matched just above") };
                return inner.into();
            }
        };
        ApiFailure::new(status, code, err.to_string())
    }
}

fn member_of(signed: &SignedIn) -> MemberId {
    signed.member()
}

fn invalid(message: String) -> ApiFailure {
    ApiFailure::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue, message)
}

/// `POST /api/communities`: someone who may facilitate starts a community and is its
/// first co-chair.
pub(super) async fn create(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CommunityInvite>), ApiFailure> {
    if !signed.roles.facilitator {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "an admin must let you facilitate before you can start a community",
        ));
    }
    let request: CreateCommunity = read_json(&hub, &headers, body).await?;
    let name = rules::check_name("a community's name", &request.name, 120).map_err(invalid)?;
    let community = hub
        .practice()
        .create(&signed.account.id, name, request.caucuses, request.settings, request.terms)
        .await?;
    tracing::info!(community = %community.id, by = %signed.account.id, "community created");
    Ok((StatusCode::CREATED, Json(hub.practice().invite(&community))))
}

/// `GET /api/communities`: the signed-in person's communities.
pub(super) async fn list(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
) -> Result<Json<Communities>, ApiFailure> {
    Ok(Json(Communities { communities: hub.practice().communities_of(&signed.account.id).await? }))
}

/// `GET /api/communities/{id}`: the community page.
pub(super) async fn page(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<CommunityPage>, ApiFailure> {
    let practice = hub.practice();
    let (community, role) = practice.membership(&id, &signed.account.id).await?;
    let mut sessions = Vec::new();
    for row in practice.series(&id).await? {
        let Ok(session) = SessionId::new(row.session.clone()) else { continue };
        let Some(listed) = hub.listed(&session) else { continue };
        sessions.push(ScheduledSession {
            session,
            title: row.title,
            starts_at: row.starts_at,
            duration_minutes: row.duration_minutes,
            agenda: row.agenda,
            phase: listed.listing.phase,
        });
    }
    let acceptance = if rules::sees_acceptance(role) { practice.acceptance(&id).await? } else { None };
    Ok(Json(CommunityPage {
        community: community.id,
        name: community.name,
        caucuses: community.labels,
        role,
        people: practice.people(&id).await?,
        terms: practice.terms_for(&id, &signed.account.id).await?,
        acceptance,
        sessions: rules::order_sessions(crate::accounts::now(), sessions),
    }))
}

/// `GET /api/communities/{id}/invite`: the link that joins the community, for co-chairs.
pub(super) async fn invite(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<CommunityInvite>, ApiFailure> {
    let community = hub.practice().leading(&id, &signed.account.id).await?;
    Ok(Json(hub.practice().invite(&community)))
}

/// `POST /api/communities/join`: a signed-in person joins by the community's invite.
pub(super) async fn join(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<caucus_protocol::community::CommunityEntry>, ApiFailure> {
    let request: JoinCommunity = read_json(&hub, &headers, body).await?;
    let community = hub.practice().join(&request.invite_code, &signed.account.id).await?;
    let (_, role) = hub.practice().membership(&community.id, &signed.account.id).await?;
    Ok(Json(caucus_protocol::community::CommunityEntry {
        community: community.id,
        name: community.name,
        role,
    }))
}

/// `POST /api/communities/{id}/people`: a co-chair adds someone by email, as a member,
/// the secretary or another co-chair.
pub(super) async fn add_person(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<caucus_protocol::community::CommunityPerson>, ApiFailure> {
    let request: AddCommunityPerson = read_json(&hub, &headers, body).await?;
    hub.practice().leading(&id, &signed.account.id).await?;
    let account = hub.accounts().account_for_email(&request.email, request.name.as_deref()).await?;
    let role = hub.practice().put_person(&id, &account.id, request.role).await?;
    tracing::info!(community = %id, by = %signed.account.id, ?role, "person added to a community");
    Ok(Json(caucus_protocol::community::CommunityPerson { account: account.id, name: account.name, role }))
}

/// `DELETE /api/communities/{id}/people/me`: leave the community.
pub(super) async fn leave(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    hub.practice().leave(&id, &signed.account.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/communities/{id}/terms`: the terms as the person stands with them.
pub(super) async fn terms(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Option<TermsStatus>>, ApiFailure> {
    hub.practice().membership(&id, &signed.account.id).await?;
    Ok(Json(hub.practice().terms_for(&id, &signed.account.id).await?))
}

/// `POST /api/communities/{id}/terms`: co-chairs publish a new version.
pub(super) async fn publish_terms(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Option<TermsStatus>>, ApiFailure> {
    let request: PublishTerms = read_json(&hub, &headers, body).await?;
    hub.practice().leading(&id, &signed.account.id).await?;
    let version = hub.practice().publish_terms(&id, &signed.account.id, request.text).await?;
    tracing::info!(community = %id, version, "terms of reference published");
    Ok(Json(hub.practice().terms_for(&id, &signed.account.id).await?))
}

/// `POST /api/communities/{id}/terms/accept`.
pub(super) async fn accept_terms(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Option<TermsStatus>>, ApiFailure> {
    let request: AcceptTerms = read_json(&hub, &headers, body).await?;
    hub.practice().membership(&id, &signed.account.id).await?;
    hub.practice().accept_terms(&id, &signed.account.id, request.version).await?;
    Ok(Json(hub.practice().terms_for(&id, &signed.account.id).await?))
}

/// `POST /api/communities/{id}/sessions`: co-chairs schedule a session. It starts with
/// the community's labels and settings, takes no guests, and every co-chair
/// facilitates it from the start.
pub(super) async fn schedule(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<ScheduledSession>), ApiFailure> {
    let request: ScheduleSession = read_json(&hub, &headers, body).await?;
    let practice = hub.practice();
    let community = practice.leading(&id, &signed.account.id).await?;
    let title = rules::check_name("a session's title", &request.title, hub.config().limits.text.name_chars)
        .map_err(invalid)?;
    // Year 2000 to year 9999: a time that is surely a mistake is refused, not stored.
    if !(946_684_800..=253_402_300_799).contains(&request.starts_at) {
        return Err(invalid("`starts_at` is a time in Unix seconds, such as 1798732800".into()));
    }
    let duration_minutes = request.duration_minutes.unwrap_or(120);
    if !(1..=24 * 60).contains(&duration_minutes) {
        return Err(invalid("`duration_minutes` is from 1 to 1440".into()));
    }
    let created = hub
        .create_session(
            member_of(&signed),
            signed.account.name.clone(),
            CreateSession {
                title: title.clone(),
                caucuses: community.labels.clone(),
                settings: community.settings.clone(),
                ground_rules: None,
                allow_guests: Some(false),
            },
        )
        .await?;
    hub.accounts().put_seat(&signed.account.id, &created.session, &member_of(&signed)).await?;
    for person in practice.people(&id).await? {
        if person.role == CommunityRole::CoChair && person.account != signed.account.id {
            let member = MemberId::new(person.account.clone()).map_err(|_| HubError::Unavailable)?;
            hub.admit(&created.session, member.clone(), &person.name, rules::session_seat(person.role))
                .await?;
            hub.accounts().put_seat(&person.account, &created.session, &member).await?;
        }
    }
    let row = SeriesRow {
        session: created.session.to_string(),
        title: title.clone(),
        starts_at: request.starts_at,
        duration_minutes,
        agenda: request.agenda.clone(),
    };
    practice.schedule(&id, row).await?;
    tracing::info!(community = %id, session = %created.session, "session scheduled");
    Ok((
        StatusCode::CREATED,
        Json(ScheduledSession {
            session: created.session,
            title,
            starts_at: request.starts_at,
            duration_minutes,
            agenda: request.agenda,
            phase: caucus_protocol::Phase::Gathering,
        }),
    ))
}

/// `POST /api/communities/{id}/sessions/{session}/enter`: one of the community's people
/// takes their seat in one of its sessions, once they have accepted the current terms.
pub(super) async fn enter(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path((id, session)): Path<(String, String)>,
) -> Result<Json<EnteredSession>, ApiFailure> {
    let practice = hub.practice();
    let (_, role) = practice.membership(&id, &signed.account.id).await?;
    if practice.community_of_session(&session).await?.as_deref() != Some(id.as_str()) {
        return Err(PracticeError::NotInSeries.into());
    }
    practice.check_terms(&id, &signed.account.id).await?;
    let session = SessionId::new(session).map_err(|_| PracticeError::NotInSeries)?;
    let member =
        hub.accounts().seat(&signed.account.id, &session).await?.unwrap_or_else(|| member_of(&signed));
    hub.admit(&session, member.clone(), &signed.account.name, rules::session_seat(role)).await?;
    hub.accounts().put_seat(&signed.account.id, &session, &member).await?;
    Ok(Json(EnteredSession { session, member }))
}

/// `?key=`: a calendar feed's key, for programs that cannot sign in.
#[derive(Debug, serde::Deserialize)]
pub(super) struct FeedQuery {
    #[serde(default)]
    key: Option<String>,
}

/// `GET /api/communities/{id}/calendar.ics`: the series as an iCalendar file, for a
/// signed-in person, or for a calendar program with the person's feed key.
pub(super) async fn calendar(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<FeedQuery>,
) -> Result<Response, ApiFailure> {
    let practice = hub.practice();
    match query.key.as_deref() {
        Some(key) if practice.feed_opens(&id, key).await? => {}
        Some(_) => return Err(PracticeError::NotInCommunity.into()),
        None => {
            let signed = super::accounts::require_signed_in(&hub, &Method::GET, &headers).await?;
            practice.membership(&id, &signed.account.id).await?;
        }
    }
    let community: crate::practice::Community =
        practice.community(&id).await?.ok_or(PracticeError::NotInCommunity)?;
    let sessions = practice.series(&id).await?;
    let public_url = hub.public_url();
    let host = public_url.split("://").nth(1).unwrap_or("caucus").split('/').next().unwrap_or("caucus");
    let text = crate::practice::calendar::series_calendar(&community.name, &sessions, public_url, host);
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{id}.ics\"")).expect("ids are header-safe");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache")),
        ],
        text,
    )
        .into_response())
}

/// `POST /api/communities/{id}/calendar-feed`: a private feed address for the person's
/// calendar program; making a new one stops the old one.
pub(super) async fn calendar_feed(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Json<caucus_protocol::community::CalendarFeed>, ApiFailure> {
    hub.practice().membership(&id, &signed.account.id).await?;
    let key = hub.practice().new_feed(&id, &signed.account.id).await?;
    let feed_url = format!("{}/api/communities/{id}/calendar.ics?key={key}", hub.public_url());
    Ok(Json(caucus_protocol::community::CalendarFeed { feed_url }))
}

/// `POST /api/communities/{id}/actions`: the secretary (or a co-chair) records an action.
pub(super) async fn record_action(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Action>), ApiFailure> {
    let request: RecordAction = read_json(&hub, &headers, body).await?;
    let (_, role) = hub.practice().membership(&id, &signed.account.id).await?;
    if !rules::may_record(role) {
        return Err(PracticeError::NotRecorder.into());
    }
    if let Some(session) = &request.session
        && hub.practice().community_of_session(session.as_str()).await?.as_deref() != Some(id.as_str())
    {
        return Err(PracticeError::NotInSeries.into());
    }
    let action = hub.practice().record_action(&id, &signed.account.id, request).await?;
    Ok((StatusCode::CREATED, Json(action)))
}

/// `POST /api/communities/{id}/actions/{action}/close`: reviewed and done.
pub(super) async fn close_action(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Result<Json<Vec<Action>>, ApiFailure> {
    // An id that is not a number is an action that does not exist, answered as such
    // (in JSON), not as a path the router could not parse.
    let action: i64 = action.parse().map_err(|_| PracticeError::NoSuchAction)?;
    let request: CloseAction = read_json(&hub, &headers, body).await?;
    let (_, role) = hub.practice().membership(&id, &signed.account.id).await?;
    if !rules::may_record(role) {
        return Err(PracticeError::NotRecorder.into());
    }
    if let Some(session) = &request.session
        && hub.practice().community_of_session(session.as_str()).await?.as_deref() != Some(id.as_str())
    {
        return Err(PracticeError::NotInSeries.into());
    }
    let session = request.session.map(|session| session.to_string());
    hub.practice().close_action(&id, action, session, &signed.account.id).await?;
    Ok(Json(hub.practice().actions(&id).await?))
}

/// The series' sessions with their rounds, in order of their start.
async fn past_sessions(hub: &Hub, id: &str) -> Result<Vec<PastSession>, ApiFailure> {
    let mut sessions = Vec::new();
    for row in hub.practice().series(id).await? {
        let Ok(session) = SessionId::new(row.session.clone()) else { continue };
        let Ok(handle) = hub.session(&session).await else { continue };
        let Some(rounds) = handle.rounds().await else { continue };
        sessions.push(PastSession { session, title: row.title, starts_at: row.starts_at, rounds });
    }
    Ok(sessions)
}

/// `GET /api/communities/{id}/sessions/{session}/from-last-time`: the session before
/// this one in the series, with its topics and carried points, and the open actions.
pub(super) async fn from_last_time(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path((id, session)): Path<(String, String)>,
) -> Result<Json<FromLastTime>, ApiFailure> {
    hub.practice().membership(&id, &signed.account.id).await?;
    let sessions = past_sessions(&hub, &id).await?;
    let position = sessions
        .iter()
        .position(|past| past.session.as_str() == session)
        .ok_or(PracticeError::NotInSeries)?;
    let previous = position.checked_sub(1).and_then(|index| sessions.get(index).cloned());
    let open_actions =
        hub.practice().actions(&id).await?.into_iter().filter(|action| action.closed_at.is_none()).collect();
    Ok(Json(FromLastTime { previous, open_actions }))
}

/// `?q=words&format=json|markdown`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ArchiveQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/communities/{id}/archive`: every carried point by session, round and
/// caucus, every topic and action; searchable; as JSON or one Markdown document.
pub(super) async fn archive(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ArchiveQuery>,
) -> Result<Response, ApiFailure> {
    let (community, _) = hub.practice().membership(&id, &signed.account.id).await?;
    let archive = Archive {
        community: community.id.clone(),
        name: community.name,
        query: None,
        sessions: past_sessions(&hub, &id).await?,
        actions: hub.practice().actions(&id).await?,
    };
    let archive = match query.q.as_deref() {
        Some(words) => crate::practice::archive::search(archive, words),
        None => archive,
    };
    let filename = format!("attachment; filename=\"archive-{}", community.id);
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(archive).into_response()),
        Some("markdown" | "md") => {
            let disposition =
                HeaderValue::from_str(&format!("{filename}.md\"")).expect("ids are header-safe");
            Ok((
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("text/markdown; charset=utf-8")),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                crate::practice::archive::to_markdown(&archive),
            )
                .into_response())
        }
        Some(other) => Err(invalid(format!("unknown format `{other}`; use `json` or `markdown`"))),
    }
}

/// `POST /api/communities/{id}/people/{account}/erase`: a co-chair erases a person from
/// every session of the series (their name and words, as `erase_member` does), then
/// takes them out of the community and forgets their acceptances.
pub(super) async fn erase_person(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    Path((id, account)): Path<(String, String)>,
) -> Result<Json<caucus_protocol::community::ErasedFromCommunity>, ApiFailure> {
    let practice = hub.practice();
    practice.leading(&id, &signed.account.id).await?;
    let (_, role) = practice.membership(&id, &account).await?;
    if role == CommunityRole::CoChair {
        return Err(invalid("a co-chair cannot be erased; make them a member first".into()));
    }
    let mut erased = Vec::new();
    for row in practice.series(&id).await? {
        let Ok(session) = SessionId::new(row.session) else { continue };
        let Some(member) = hub.accounts().seat(&account, &session).await? else { continue };
        let asking =
            hub.accounts().seat(&signed.account.id, &session).await?.unwrap_or_else(|| member_of(&signed));
        hub.erase_member(&session, member, &asking)
            .await
            .map_err(|why| ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, why))?;
        erased.push(session);
    }
    practice.forget_person(&id, &account).await?;
    tracing::info!(community = %id, by = %signed.account.id, sessions = erased.len(), "a person was erased from a community");
    Ok(Json(caucus_protocol::community::ErasedFromCommunity { sessions: erased }))
}
