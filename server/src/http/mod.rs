//! The HTTP surface: the `/ws` upgrade, the JSON API, `/healthz` and the web client.
//!
//! Errors become responses in one place, [`ApiFailure`], which never reveals internals.

pub mod accounts;
mod community;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use caucus_protocol::api::{
    AddFacilitator, ApiError, ApiErrorBody, CreateSession, FacilitatedSessions, FacilitatorAdded, InviteInfo,
    InviteLink, JoinRequest, Joined, SessionCreated,
};
use caucus_protocol::{ErrorCode, MemberId, SessionId};

use crate::auth::{Claims, TokenKind, origin_allowed};
use crate::connection;
use crate::gate::{Lane, RESERVE_PATHS, Ticket};
use crate::hub::{Hub, HubError};

/// The router for a hub.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/drafts.js", get(drafts_js))
        .route("/outbox.js", get(outbox_js))
        .route("/rooms.js", get(rooms_js))
        .route("/board.js", get(board_js))
        .route("/confirm.js", get(confirm_js))
        .route("/account.js", get(account_js))
        .route("/community.js", get(community_js))
        .route("/style.css", get(style_css))
        .route("/favicon.svg", get(favicon))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ws", get(upgrade))
        .route("/ws/echo", get(upgrade_echo))
        .route("/api/sessions", get(facilitated_sessions).post(create_session))
        .route("/api/join", post(join))
        .route("/api/invites/{code}", get(invite))
        .route("/api/sessions/{id}/minutes", get(minutes))
        .route("/api/sessions/{id}/invite", get(session_invite).post(session_invite))
        .route("/api/sessions/{id}/facilitators", post(add_facilitator))
        .route("/api/auth/providers", get(accounts::providers))
        .route("/auth/oidc/{provider}", get(accounts::oidc_start))
        .route("/auth/oidc/{provider}/callback", get(accounts::oidc_callback))
        .route("/api/auth/email", post(accounts::email_request))
        .route("/api/auth/email/verify", post(accounts::email_verify))
        .route("/api/auth/signout", post(accounts::sign_out))
        .route("/api/auth/signout-everywhere", post(accounts::sign_out_everywhere))
        .route("/api/me", get(accounts::who_am_i).post(accounts::rename).delete(accounts::delete_account))
        .route("/api/me/export", get(accounts::export))
        .route("/api/me/sessions", get(accounts::my_sessions))
        .route("/api/me/seats", post(accounts::attach_seat))
        .route(
            "/api/admin/facilitators",
            get(accounts::facilitator_grants).post(accounts::facilitator_grants),
        )
        .route("/api/admin/facilitators/{email}", delete(accounts::revoke_facilitator))
        .route("/api/communities", get(community::list).post(community::create))
        .route("/api/communities/join", post(community::join))
        .route("/api/communities/{id}", get(community::page))
        .route("/api/communities/{id}/invite", get(community::invite))
        .route("/api/communities/{id}/people", post(community::add_person))
        .route("/api/communities/{id}/people/me", delete(community::leave))
        .route("/api/communities/{id}/people/{account}/erase", post(community::erase_person))
        .route("/api/communities/{id}/terms", get(community::terms).post(community::publish_terms))
        .route("/api/communities/{id}/terms/accept", post(community::accept_terms))
        .route("/api/communities/{id}/sessions", post(community::schedule))
        .route("/api/communities/{id}/sessions/{session}/enter", post(community::enter))
        .route("/api/communities/{id}/calendar.ics", get(community::calendar))
        .route("/api/communities/{id}/calendar-feed", post(community::calendar_feed))
        .route("/api/communities/{id}/sessions/{session}/from-last-time", get(community::from_last_time))
        .route("/api/communities/{id}/actions", post(community::record_action))
        .route("/api/communities/{id}/actions/{action}/close", post(community::close_action))
        .route("/api/communities/{id}/archive", get(community::archive))
        .layer(middleware::from_fn(reserve_lane))
        .with_state(hub)
}

/// A connection on the gate's reserve lane (taken past the pending cap) may ask for the
/// health checks only.
async fn reserve_lane(request: Request, next: Next) -> Response {
    let on_reserve =
        request.extensions().get::<Arc<Ticket>>().is_some_and(|ticket| ticket.lane() == Lane::Reserve);
    if on_reserve && !RESERVE_PATHS.contains(&request.uri().path()) {
        let mut response = ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the server is busy; try again in a moment",
        )
        .into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    }
    next.run(request).await
}

/// An HTTP error: a status and a wire error code with a sentence for a person.
#[derive(Debug)]
pub struct ApiFailure {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiFailure {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<HubError> for ApiFailure {
    fn from(err: HubError) -> Self {
        let status = match &err {
            HubError::NotFacilitator | HubError::NotItsFacilitator | HubError::SignInRequired => {
                StatusCode::FORBIDDEN
            }
            HubError::NoSuchInvite => StatusCode::NOT_FOUND,
            // Refused here or on the node running the session: the same answer.
            HubError::Refused(_) | HubError::RefusedThere(..) => match err.code() {
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::LimitReached => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            HubError::TooManySessions(_) => StatusCode::TOO_MANY_REQUESTS,
            HubError::Unavailable | HubError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, err.code(), err.to_string())
    }
}

/// Reads a JSON body of at most `limits.api_body_bytes` within `timeouts.body_secs`.
/// Handlers call it only after the request has passed authentication, so that nobody
/// can make the server hold a large body without a valid token.
async fn read_json<T: serde::de::DeserializeOwned>(
    hub: &Hub,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiFailure> {
    let limit = hub.config().limits.api_body_bytes;
    let too_large = || {
        ApiFailure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLong,
            format!("request bodies are limited to {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let is_json =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
            value.split(';').next().is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiFailure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadFrame,
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let within = std::time::Duration::from_secs(hub.config().timeouts.body_secs);
    let bytes = match tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => {
            return Err(ApiFailure::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::BadFrame,
                format!("the request body did not arrive within {} seconds", within.as_secs()),
            ));
        }
    };
    // Every body is an object of named fields: an array would otherwise be read as
    // the fields in order, which no client should rely on.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()).is_some_and(|first| *first != b'{') {
        return Err(ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BadFrame,
            "the body must be a JSON object, such as {\"name\": \"…\"}",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        let status = match err.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiFailure::new(
            status,
            ErrorCode::BadFrame,
            format!("the body is not valid JSON for this request: {err}"),
        )
    })
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = ApiError { error: ApiErrorBody { code: self.code, message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready to take new connections: up, and not shutting down.
async fn readyz(State(hub): State<Arc<Hub>>) -> (StatusCode, &'static str) {
    if hub.shutdown_token().is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if !hub.store().ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "the shared store has not renewed this node's lease in time")
    } else if hub.bus().is_some_and(|bus| !bus.connected()) {
        (StatusCode::SERVICE_UNAVAILABLE, "this node cannot reach the bus to the other nodes")
    } else {
        (StatusCode::OK, "ready")
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        crate::metrics::handle().render(),
    )
}

/// Each WebSocket's read buffer, in bytes. Client frames are small, and tungstenite
/// zeroes the whole buffer before every read attempt, which happens each time the
/// connection's task wakes; a larger frame grows the buffer as it needs.
pub const READ_BUFFER: usize = 4 * 1024;
/// How much each WebSocket gathers before writing to the socket, in bytes: a batch of
/// small frames goes out in one write.
pub const WRITE_BUFFER: usize = 8 * 1024;

/// The browser app's files, embedded so that the binary alone serves it.
const INDEX_HTML: &str = include_str!("../../../web-client/index.html");
const APP_JS: &str = include_str!("../../../web-client/app.js");
const DRAFTS_JS: &str = include_str!("../../../web-client/drafts.js");
const OUTBOX_JS: &str = include_str!("../../../web-client/outbox.js");
const ROOMS_JS: &str = include_str!("../../../web-client/rooms.js");
const BOARD_JS: &str = include_str!("../../../web-client/board.js");
const CONFIRM_JS: &str = include_str!("../../../web-client/confirm.js");
const ACCOUNT_JS: &str = include_str!("../../../web-client/account.js");
const COMMUNITY_JS: &str = include_str!("../../../web-client/community.js");
const STYLE_CSS: &str = include_str!("../../../web-client/style.css");
const FAVICON_SVG: &str = include_str!("../../../web-client/favicon.svg");

/// Scripts and styles come only from this server, so user text can never run as code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn drafts_js() -> Response {
    asset("text/javascript; charset=utf-8", DRAFTS_JS)
}

async fn outbox_js() -> Response {
    asset("text/javascript; charset=utf-8", OUTBOX_JS)
}

async fn rooms_js() -> Response {
    asset("text/javascript; charset=utf-8", ROOMS_JS)
}

async fn board_js() -> Response {
    asset("text/javascript; charset=utf-8", BOARD_JS)
}

async fn confirm_js() -> Response {
    asset("text/javascript; charset=utf-8", CONFIRM_JS)
}

async fn account_js() -> Response {
    asset("text/javascript; charset=utf-8", ACCOUNT_JS)
}

async fn community_js() -> Response {
    asset("text/javascript; charset=utf-8", COMMUNITY_JS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// The chat WebSocket. A signed-in browser's cookie goes with the upgrade, so `hello`
/// needs no token; the Origin check in [`accept`] keeps other sites' pages out.
async fn upgrade(
    State(hub): State<Arc<Hub>>,
    ticket: Option<Extension<Arc<Ticket>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let signed = match accounts::signed_in(&hub, &headers).await {
        Ok(signed) => signed,
        Err(failure) => return failure.into_response(),
    };
    accept(hub, ticket.map(|Extension(ticket)| ticket), &headers, upgrade, connection::Mode::Chat, signed)
}

/// The conformance echo endpoint: off unless `conformance_echo` is set.
async fn upgrade_echo(
    State(hub): State<Arc<Hub>>,
    ticket: Option<Extension<Arc<Ticket>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !hub.config().conformance_echo {
        return StatusCode::NOT_FOUND.into_response();
    }
    accept(hub, ticket.map(|Extension(ticket)| ticket), &headers, upgrade, connection::Mode::Echo, None)
}

fn accept(
    hub: Arc<Hub>,
    ticket: Option<Arc<Ticket>>,
    headers: &HeaderMap,
    upgrade: WebSocketUpgrade,
    mode: connection::Mode,
    signed: Option<crate::accounts::SignedIn>,
) -> Response {
    let header_text = |name| headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
    if !origin_allowed(header_text(header::ORIGIN), header_text(header::HOST), &hub.config().allowed_origins)
    {
        return ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this origin may not open a Caucus connection; add it to allowed_origins",
        )
        .into_response();
    }
    let frame_bytes = hub.config().limits.frame_bytes;
    let tracker = hub.tracker().clone();
    // tungstenite's default 128 KiB read and write buffers cost most of a connection's
    // memory; chat frames are small, and writes are batched before each flush anyway.
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_frame_size(frame_bytes)
        .max_message_size(frame_bytes)
        .on_upgrade(move |socket| async move {
            tracker.spawn(connection::serve(socket, hub, ticket, mode, signed));
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Who is asking: a program or guest with a token, or a signed-in browser.
#[derive(Debug)]
enum Caller {
    /// `Authorization: Bearer`: a facilitator token, or a guest's member token.
    Token { claims: Claims, member: MemberId },
    /// The sign-in cookie (with the CSRF token on POST and DELETE).
    Account(crate::accounts::SignedIn),
}

impl Caller {
    /// Whether this caller may create sessions.
    fn may_facilitate(&self) -> bool {
        match self {
            Caller::Token { claims, .. } => claims.kind == TokenKind::Facilitator,
            Caller::Account(signed) => signed.roles.facilitator,
        }
    }

    /// Who this caller is in session `id`: a token's member (a member token only in its
    /// own session), or an account's seat there.
    async fn member_in(&self, hub: &Hub, id: &SessionId) -> Result<Option<MemberId>, ApiFailure> {
        match self {
            Caller::Token { claims, member } => {
                let fits = claims.kind == TokenKind::Facilitator || claims.sid.as_ref() == Some(id);
                Ok(fits.then(|| member.clone()))
            }
            Caller::Account(signed) => accounts::account_member(hub, signed, id).await,
        }
    }
}

/// The caller: a bearer token if one is sent, else the sign-in cookie; or 401 saying
/// what is wrong. `asking` names the token expected, for the message.
async fn caller(hub: &Hub, method: &Method, headers: &HeaderMap, asking: &str) -> Result<Caller, ApiFailure> {
    let unauthorized =
        |message: String| ApiFailure::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    if let Some(token) = bearer(headers) {
        let (claims, member) = hub.auth().verify(token).map_err(|err| unauthorized(err.to_string()))?;
        // A guest's token is retired once their seat is kept in an account.
        if claims.kind == TokenKind::Member
            && let Some(session) = &claims.sid
            && hub.accounts().guest_token_retired(session, &member).await?
        {
            return Err(unauthorized(
                "this seat is now kept in an account: sign in instead of sending its token".into(),
            ));
        }
        return Ok(Caller::Token { claims, member });
    }
    match accounts::signed_in(hub, headers).await? {
        Some(signed) => {
            accounts::check_csrf(method, headers, &signed)?;
            Ok(Caller::Account(signed))
        }
        None => Err(unauthorized(format!("sign in, or send {asking} as `Authorization: Bearer <token>`"))),
    }
}

async fn create_session(
    State(hub): State<Arc<Hub>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SessionCreated>), ApiFailure> {
    let caller = caller(&hub, &method, &headers, "a facilitator token").await?;
    if !caller.may_facilitate() {
        let message = match caller {
            Caller::Token { .. } => HubError::NotFacilitator.to_string(),
            Caller::Account(_) => "an admin must let you facilitate before you can create sessions".into(),
        };
        return Err(ApiFailure::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message));
    }
    let request: CreateSession = read_json(&hub, &headers, body).await?;
    let created = match &caller {
        Caller::Token { claims, member } => {
            let name = claims.name.clone().unwrap_or_else(|| member.to_string());
            hub.create_session(member.clone(), name, request).await?
        }
        Caller::Account(signed) => {
            let created = hub.create_session(signed.member(), signed.account.name.clone(), request).await?;
            hub.accounts().put_seat(&signed.account.id, &created.session, &signed.member()).await?;
            created
        }
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// A guest joins with a name; a signed-in person (cookie and CSRF token) joins as
/// their account, and the seat is theirs the next time too.
async fn join(
    State(hub): State<Arc<Hub>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Joined>, ApiFailure> {
    let signed = match accounts::signed_in(&hub, &headers).await? {
        Some(signed) => {
            accounts::check_csrf(&method, &headers, &signed)?;
            Some(signed)
        }
        None => None,
    };
    let request: JoinRequest = read_json(&hub, &headers, body).await?;
    let Some(signed) = signed else {
        return Ok(Json(hub.join(&request.invite_code, &request.name, request.accept_ground_rules).await?));
    };
    let session = hub.invite(&request.invite_code).await?.session;
    // A community's session is its people's, on its terms, whichever way they come in.
    if let Some(community) = hub.practice().community_of_session(session.as_str()).await? {
        hub.practice().membership(&community, &signed.account.id).await?;
        hub.practice().check_terms(&community, &signed.account.id).await?;
    }
    let member = accounts::account_member(&hub, &signed, &session).await?.unwrap_or_else(|| signed.member());
    let name =
        Some(request.name.trim()).filter(|name| !name.is_empty()).unwrap_or(&signed.account.name).to_owned();
    let joined =
        hub.join_as(&request.invite_code, member.clone(), &name, request.accept_ground_rules).await?;
    hub.accounts().put_seat(&signed.account.id, &joined.session, &member).await?;
    Ok(Json(joined))
}

async fn invite(
    State(hub): State<Arc<Hub>>,
    Path(code): Path<String>,
) -> Result<Json<InviteInfo>, ApiFailure> {
    Ok(Json(hub.invite(&code).await?))
}

/// The sessions the caller facilitates or co-facilitates.
async fn facilitated_sessions(
    State(hub): State<Arc<Hub>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<FacilitatedSessions>, ApiFailure> {
    let sessions = match caller(&hub, &method, &headers, "a facilitator token").await? {
        Caller::Token { claims, member } => {
            if claims.kind != TokenKind::Facilitator {
                return Err(HubError::NotFacilitator.into());
            }
            hub.facilitated_by(&member).await
        }
        Caller::Account(signed) => {
            let seats = hub.accounts().seats(&signed.account.id).await?;
            hub.seated_sessions(seats)
                .await
                .into_iter()
                .filter(|seat| seat.role == caucus_protocol::Role::Facilitator)
                .map(|seat| caucus_protocol::api::FacilitatedSession {
                    session: seat.session,
                    title: seat.title,
                    phase: seat.phase,
                    invite_url: seat.invite_url,
                })
                .collect()
        }
    };
    Ok(Json(FacilitatedSessions { sessions }))
}

/// The caller's member id in session `id`, or the refusal a non-facilitator gets.
async fn member_in(caller: &Caller, hub: &Hub, id: &str) -> Result<(SessionId, MemberId), ApiFailure> {
    let id = SessionId::new(id).map_err(|_| HubError::NotItsFacilitator)?;
    let member = caller.member_in(hub, &id).await?.ok_or(HubError::NotItsFacilitator)?;
    Ok((id, member))
}

/// One of a session's facilitators adds a co-facilitator: by email (someone who signs
/// in), or by the name on their facilitator token.
async fn add_facilitator(
    State(hub): State<Arc<Hub>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<FacilitatorAdded>, ApiFailure> {
    let caller = caller(&hub, &method, &headers, "your facilitator token").await?;
    let request: AddFacilitator = read_json(&hub, &headers, body).await?;
    let (id, who) = member_in(&caller, &hub, &id).await?;
    match (request.email, request.name) {
        (Some(email), name) => {
            if !hub.facilitates(&id, &who).await {
                return Err(HubError::NotItsFacilitator.into());
            }
            let account = hub.accounts().account_for_email(&email, name.as_deref()).await?;
            let member = MemberId::new(account.id.clone()).expect("account ids are valid member ids");
            let existing = hub.accounts().seat(&account.id, &id).await?;
            let member = existing.unwrap_or(member);
            let added = hub.add_facilitator(&id, &who, member.clone(), &account.name).await?;
            hub.accounts().put_seat(&account.id, &id, &member).await?;
            Ok(Json(added))
        }
        (None, Some(name)) => {
            let name = name.trim();
            if !name.chars().any(char::is_alphanumeric) {
                return Err(ApiFailure::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::InvalidValue,
                    "a facilitator name needs at least one letter or digit",
                ));
            }
            Ok(Json(hub.add_facilitator(&id, &who, crate::auth::facilitator_id(name), name).await?))
        }
        _ => Err(ApiFailure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidValue,
            "send either `email` (someone who signs in) or `name` (a facilitator token's name)",
        )),
    }
}

/// `GET` shows the session's invite to one of its facilitators; `POST` replaces it.
async fn session_invite(
    State(hub): State<Arc<Hub>>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<InviteLink>, ApiFailure> {
    let caller = caller(&hub, &method, &headers, "your token").await?;
    let (id, member) = member_in(&caller, &hub, &id).await?;
    let link = if method == Method::POST {
        hub.rotate_invite(&id, &member).await?
    } else {
        hub.invite_link(&id, &member).await?
    };
    Ok(Json(link))
}

/// `?format=markdown` or `?format=json` (the default).
#[derive(Debug, serde::Deserialize)]
struct MinutesQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn minutes(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<MinutesQuery>,
) -> Result<Response, ApiFailure> {
    let caller = caller(&hub, &Method::GET, &headers, "your token").await?;
    let refused = || {
        ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "only the session's facilitators and secretary can export its minutes",
        )
    };
    let id = SessionId::new(id).map_err(|_| refused())?;
    let member = caller.member_in(&hub, &id).await?.ok_or_else(refused)?;
    let unavailable = || {
        ApiFailure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the server cannot read the session's record just now; retry",
        )
    };
    let session = hub.session(&id).await.map_err(|unreachable| match unreachable {
        crate::hub::Unreachable::Unknown => refused(),
        crate::hub::Unreachable::Unavailable => unavailable(),
    })?;
    let minutes = session.minutes(member).await.map_err(|_| unavailable())?.ok_or_else(refused)?;
    let filename = format!("attachment; filename=\"minutes-{}", minutes.session);
    match query.format.as_deref() {
        None | Some("json") => {
            let disposition =
                HeaderValue::from_str(&format!("{filename}.json\"")).expect("ids are header-safe");
            Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(minutes)).into_response())
        }
        Some("markdown" | "md") => {
            let disposition =
                HeaderValue::from_str(&format!("{filename}.md\"")).expect("ids are header-safe");
            let content_type = HeaderValue::from_static("text/markdown; charset=utf-8");
            Ok((
                [(header::CONTENT_TYPE, content_type), (header::CONTENT_DISPOSITION, disposition)],
                crate::minutes::to_markdown(&minutes),
            )
                .into_response())
        }
        Some(other) => Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidValue,
            format!("unknown format `{other}`; use `json` or `markdown`"),
        )),
    }
}
