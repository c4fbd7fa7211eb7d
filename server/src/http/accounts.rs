//! The sign-in surface: OpenID Connect redirects, email links, the sign-in cookie and
//! its CSRF token, the account's own data, and admins' grants.
//!
//! The cookie holds a random value whose hash keys the sign-in on the server. Every
//! POST and DELETE that the cookie authenticates must also carry `X-CSRF-Token`, which
//! another site's page cannot read; the sign-in requests themselves, made before there
//! is a cookie, must come from this server's own pages (`Origin`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use caucus_protocol::api::{
    AccountInfo, AttachSeat, EmailSent, EmailSignIn, EmailVerify, GrantFacilitator, Me, MySessions, Rename,
    SeatAttached, SignInOptions, SignInProvider,
};
use caucus_protocol::{ErrorCode, MemberId};

use super::{ApiFailure, read_json};
use crate::accounts::{AccountError, Asker, NewSignIn, SignedIn};
use crate::auth::{TokenKind, origin_allowed};
use crate::hub::Hub;

/// The server's cookies.
#[derive(Debug, Clone, Copy)]
enum Cookie {
    /// The sign-in.
    SignIn,
    /// Binds an OpenID Connect sign-in to the browser that started it.
    Flow,
}

impl Cookie {
    /// Its name. Over HTTPS it has the `__Host-` prefix: browsers take such a cookie
    /// only from this very host, with `Secure` and `Path=/`, so no other host of the same
    /// site can plant one (a planted sign-in would sign the browser in as its planter).
    fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Cookie::SignIn, false) => "caucus_signin",
            (Cookie::SignIn, true) => "__Host-caucus_signin",
            (Cookie::Flow, false) => "caucus_flow",
            (Cookie::Flow, true) => "__Host-caucus_flow",
        }
    }

    /// The path it is sent for: `/` wherever the prefix asks for it.
    fn path(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Cookie::Flow, false) => "/auth",
            _ => "/",
        }
    }

    /// Its value in the request, if any.
    fn read(self, hub: &Hub, headers: &HeaderMap) -> Option<String> {
        cookie(headers, self.name(hub.accounts().secure_cookies())).map(str::to_owned)
    }

    /// Sets it to `value` for `max_age` seconds; 0 clears it.
    fn set(self, hub: &Hub, value: &str, max_age: i64) -> HeaderValue {
        let secure = hub.accounts().secure_cookies();
        let (name, path) = (self.name(secure), self.path(secure));
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .expect("cookie values are hex")
    }
}
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

impl From<AccountError> for ApiFailure {
    fn from(err: AccountError) -> Self {
        let (status, code) = match &err {
            AccountError::NotSignedIn => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            AccountError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            AccountError::InvalidLink => (StatusCode::BAD_REQUEST, ErrorCode::InvalidLink),
            AccountError::EmailUnavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::EmailUnavailable),
            AccountError::TooManyLinks | AccountError::TooManyLinksFromHere => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited)
            }
            AccountError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue),
            AccountError::UnknownProvider(_) => (StatusCode::NOT_FOUND, ErrorCode::InvalidValue),
            AccountError::UnknownFlow | AccountError::Oidc(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::Unauthorized)
            }
            AccountError::TooManyFlows => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            AccountError::Mail(_) => (StatusCode::BAD_GATEWAY, ErrorCode::Unavailable),
            AccountError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        };
        ApiFailure::new(status, code, err.to_string())
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The signed-in browser behind the request's cookie, if any.
pub async fn signed_in(hub: &Hub, headers: &HeaderMap) -> Result<Option<SignedIn>, ApiFailure> {
    match Cookie::SignIn.read(hub, headers) {
        Some(value) if !value.is_empty() => Ok(hub.accounts().signed_in(&value).await?),
        _ => Ok(None),
    }
}

/// The signed-in browser, or 401; for POST and DELETE, only with the right CSRF token.
pub(super) async fn require_signed_in(
    hub: &Hub,
    method: &Method,
    headers: &HeaderMap,
) -> Result<SignedIn, ApiFailure> {
    let signed = signed_in(hub, headers).await?.ok_or(AccountError::NotSignedIn)?;
    check_csrf(method, headers, &signed)?;
    Ok(signed)
}

/// The signed-in browser, as an extractor: a handler that takes a [`SignedIn`] runs only
/// for a valid sign-in cookie, and for POST and DELETE only with its CSRF token.
impl FromRequestParts<Arc<Hub>> for SignedIn {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, Self::Rejection> {
        require_signed_in(hub, &parts.method, &parts.headers).await
    }
}

/// Refuses a state-changing request whose `X-CSRF-Token` is missing or wrong.
pub fn check_csrf(method: &Method, headers: &HeaderMap, signed: &SignedIn) -> Result<(), ApiFailure> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let sent = headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or("");
    if sent.is_empty() || !crate::accounts::same_secret(sent, &signed.csrf) {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Csrf,
            "missing or wrong X-CSRF-Token header; reload the page and try again",
        ));
    }
    Ok(())
}

/// Refuses a sign-in request sent from another site's page.
fn check_origin(hub: &Hub, headers: &HeaderMap) -> Result<(), ApiFailure> {
    let text = |name| headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
    if origin_allowed(text(header::ORIGIN), text(header::HOST), &hub.config().allowed_origins) {
        Ok(())
    } else {
        Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Csrf,
            "sign-in requests must come from this server's own pages",
        ))
    }
}

fn me(signed: &SignedIn, return_to: Option<String>) -> Me {
    Me {
        account: AccountInfo {
            id: signed.account.id.clone(),
            name: signed.account.name.clone(),
            email: signed.account.email.clone(),
        },
        roles: signed.roles.names().into_iter().map(str::to_owned).collect(),
        csrf: signed.csrf.clone(),
        expires_at: signed.expires_at,
        return_to,
    }
}

/// The new sign-in's cookie, replacing any the browser had: a value set before sign-in
/// is never the one that signs in.
fn signin_cookie(hub: &Hub, new: &NewSignIn) -> HeaderValue {
    Cookie::SignIn.set(hub, &new.cookie, hub.accounts().signin_secs())
}

fn clear_signin_cookie(hub: &Hub) -> HeaderValue {
    Cookie::SignIn.set(hub, "", 0)
}

pub(super) async fn providers(State(hub): State<Arc<Hub>>) -> Json<SignInOptions> {
    let accounts = hub.accounts();
    Json(SignInOptions {
        providers: accounts.providers().into_iter().map(|(id, name)| SignInProvider { id, name }).collect(),
        email: accounts.email_enabled(),
    })
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct StartQuery {
    return_to: Option<String>,
}

/// Sends the browser to the provider, with a cookie that only this browser's callback
/// will carry.
pub(super) async fn oidc_start(
    State(hub): State<Arc<Hub>>,
    Path(provider): Path<String>,
    Query(query): Query<StartQuery>,
) -> Response {
    match hub.accounts().start_oidc(&provider, query.return_to.as_deref()).await {
        Ok((flow, url)) => {
            let Ok(location) = HeaderValue::from_str(&url) else {
                return failure_page(
                    StatusCode::BAD_GATEWAY,
                    "the identity provider's sign-in address is not valid",
                );
            };
            let flow_cookie = Cookie::Flow.set(&hub, &flow, 600);
            (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, flow_cookie)])
                .into_response()
        }
        Err(err) => {
            let status = match err {
                AccountError::UnknownProvider(_) => StatusCode::NOT_FOUND,
                AccountError::Oidc(crate::accounts::oidc::OidcError::Unreachable(_)) => {
                    StatusCode::BAD_GATEWAY
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            failure_page(status, &err.to_string())
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider sends the browser back here. Every failure is a page that says what
/// went wrong, and sets no sign-in cookie.
pub(super) async fn oidc_callback(
    State(hub): State<Arc<Hub>>,
    Path(provider): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let clear_flow = Cookie::Flow.set(&hub, "", 0);
    // Only the provider's error code is shown, and only if it looks like one: the query
    // is anyone's to write, and this page speaks with Caucus's voice.
    if let Some(error) = query.error {
        let code = Some(error.as_str())
            .filter(|code| code.len() <= 64 && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .unwrap_or("an unknown error");
        let mut page = failure_page(
            StatusCode::BAD_REQUEST,
            &format!("the identity provider refused the sign-in ({code})"),
        );
        page.headers_mut().append(header::SET_COOKIE, clear_flow);
        return page;
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        let mut page =
            failure_page(StatusCode::BAD_REQUEST, "the sign-in came back without its code and state");
        page.headers_mut().append(header::SET_COOKIE, clear_flow);
        return page;
    };
    let flow = Cookie::Flow.read(&hub, &headers);
    let mut response = match hub.accounts().finish_oidc(&provider, flow.as_deref(), &state, &code).await {
        Ok(new) => {
            let location = HeaderValue::from_str(&new.return_to).unwrap_or(HeaderValue::from_static("/"));
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, location), (header::SET_COOKIE, signin_cookie(&hub, &new))],
            )
                .into_response()
        }
        Err(err) => {
            tracing::info!(provider, error = %err, "an OpenID Connect sign-in failed");
            let status = match err {
                AccountError::Oidc(crate::accounts::oidc::OidcError::Unreachable(_)) => {
                    StatusCode::BAD_GATEWAY
                }
                AccountError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            failure_page(status, &err.to_string())
        }
    };
    response.headers_mut().append(header::SET_COOKIE, clear_flow);
    response
}

/// A small page for a sign-in that failed, with a way back.
fn failure_page(status: StatusCode, message: &str) -> Response {
    let escaped =
        message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed: Caucus</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head><body><main class=\"page\">\
         <h1>Sign-in failed</h1><p id=\"signin-error\">{escaped}</p><p><a href=\"/\">Back to Caucus</a></p>\
         </main></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(super::CONTENT_SECURITY_POLICY)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        html,
    )
        .into_response()
}

pub(super) async fn email_request(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<EmailSent>), ApiFailure> {
    check_origin(&hub, &headers)?;
    if !hub.accounts().email_enabled() {
        return Err(AccountError::EmailUnavailable.into());
    }
    let request: EmailSignIn = read_json(&hub, &headers, body).await?;
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let asker = Asker { peer: client.ip(), forwarded_for: &forwarded_for };
    hub.accounts().request_email_link(&request.email, request.return_to.as_deref(), asker).await?;
    Ok((StatusCode::ACCEPTED, Json(EmailSent { sent: true })))
}

pub(super) async fn email_verify(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiFailure> {
    check_origin(&hub, &headers)?;
    let request: EmailVerify = read_json(&hub, &headers, body).await?;
    let new = hub.accounts().verify_email_link(&request.token).await?;
    let cookie = signin_cookie(&hub, &new);
    let signed = hub.accounts().signed_in(&new.cookie).await?.ok_or(AccountError::NotSignedIn)?;
    Ok(([(header::SET_COOKIE, cookie)], Json(me(&signed, Some(new.return_to)))).into_response())
}

pub(super) async fn who_am_i(signed: SignedIn) -> Result<Json<Me>, ApiFailure> {
    Ok(Json(me(&signed, None)))
}

pub(super) async fn rename(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Me>, ApiFailure> {
    let request: Rename = read_json(&hub, &headers, body).await?;
    hub.accounts().rename(&signed.account.id, &request.name).await?;
    let cookie = Cookie::SignIn.read(&hub, &headers).unwrap_or_default();
    let signed = hub.accounts().signed_in(&cookie).await?.ok_or(AccountError::NotSignedIn)?;
    Ok(Json(me(&signed, None)))
}

pub(super) async fn export(State(hub): State<Arc<Hub>>, signed: SignedIn) -> Result<Response, ApiFailure> {
    let data = hub.accounts().export(&signed).await?;
    let disposition = HeaderValue::from_static("attachment; filename=\"caucus-account.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(data)).into_response())
}

pub(super) async fn delete_account(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
) -> Result<Response, ApiFailure> {
    hub.accounts().delete(&signed.account.id).await?;
    // The store rewrites the file (and retries after later writes if a reader holds
    // it), so that the deleted address leaves no bytes behind.
    if let Err(err) = hub.store().scrub().await {
        tracing::warn!(error = %err, "a deleted account's rows are gone, but the file is not rewritten yet");
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_signin_cookie(&hub))]).into_response())
}

pub(super) async fn sign_out(State(hub): State<Arc<Hub>>, signed: SignedIn) -> Result<Response, ApiFailure> {
    hub.accounts().sign_out(&signed).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_signin_cookie(&hub))]).into_response())
}

pub(super) async fn sign_out_everywhere(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
) -> Result<Response, ApiFailure> {
    hub.accounts().sign_out_everywhere(&signed.account.id).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear_signin_cookie(&hub))]).into_response())
}

pub(super) async fn my_sessions(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
) -> Result<Json<MySessions>, ApiFailure> {
    let seats = hub.accounts().seats(&signed.account.id).await?;
    Ok(Json(MySessions { sessions: hub.seated_sessions(seats).await }))
}

/// A guest's seat becomes the account's: the guest proves it with their member token.
pub(super) async fn attach_seat(
    State(hub): State<Arc<Hub>>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SeatAttached>, ApiFailure> {
    let request: AttachSeat = read_json(&hub, &headers, body).await?;
    let invalid =
        |message: String| ApiFailure::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValue, message);
    let (claims, member) = hub.auth().verify(&request.token).map_err(|err| invalid(err.to_string()))?;
    let (TokenKind::Member, Some(session)) = (claims.kind, claims.sid) else {
        return Err(invalid("that is not a guest's member token".into()));
    };
    hub.accounts().attach_seat(&signed.account.id, &session, &member).await?;
    tracing::info!(account = %signed.account.id, session = %session, member = %member, "guest seat attached to an account");
    Ok(Json(SeatAttached { session, member }))
}

/// A signed-in admin, as an extractor: anyone else gets 403.
#[derive(Debug)]
pub(super) struct Admin(pub(super) SignedIn);

impl FromRequestParts<Arc<Hub>> for Admin {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, Self::Rejection> {
        let signed = SignedIn::from_request_parts(parts, hub).await?;
        if !signed.roles.admin {
            return Err(AccountError::Forbidden("only admins can decide who may facilitate".into()).into());
        }
        Ok(Admin(signed))
    }
}

pub(super) async fn facilitator_grants(
    State(hub): State<Arc<Hub>>,
    Admin(signed): Admin,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<caucus_protocol::api::FacilitatorGrants>, ApiFailure> {
    if method == Method::POST {
        let request: GrantFacilitator = read_json(&hub, &headers, body).await?;
        hub.accounts().set_role(&request.email, "facilitator", true, Some(&signed.account.id)).await?;
        tracing::info!(by = %signed.account.id, "facilitator granted");
    }
    Ok(Json(hub.accounts().facilitator_grants().await?))
}

pub(super) async fn revoke_facilitator(
    State(hub): State<Arc<Hub>>,
    Admin(signed): Admin,
    Path(email): Path<String>,
) -> Result<Json<caucus_protocol::api::FacilitatorGrants>, ApiFailure> {
    hub.accounts().set_role(&email, "facilitator", false, None).await?;
    tracing::info!(by = %signed.account.id, "facilitator grant taken back");
    Ok(Json(hub.accounts().facilitator_grants().await?))
}

/// The member an account is in a session: its seat there.
pub async fn account_member(
    hub: &Hub,
    signed: &SignedIn,
    session: &caucus_protocol::SessionId,
) -> Result<Option<MemberId>, ApiFailure> {
    Ok(hub.accounts().seat(&signed.account.id, session).await?)
}
