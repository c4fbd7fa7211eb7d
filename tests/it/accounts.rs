//! Accounts and sign-in over HTTP and the WebSocket: email links, the sign-in cookie and
//! its CSRF token, roles, co-facilitators by email, guests who keep their seat, sign-out
//! closing live connections, and a deleted account gone from the files.
//!
//! The OpenID Connect flows run against a real provider in the browser suite
//! (`tests/browser/signin-attacks.test.js` and `accounts.test.js`); here the link comes
//! from the same call `caucus signin-link` makes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use caucus_protocol::api::{Joined, Me, MySessions, SessionCreated};
use caucus_protocol::{Role, Room, close};
use caucus_tests::{Client, GuestToken, HttpResponse, http};

use crate::support::{GROUND_RULES, TestServer};

/// A browser: its sign-in cookie and CSRF token.
pub(crate) struct Browser {
    pub(crate) address: std::net::SocketAddr,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
    pub(crate) me: Me,
}

impl Browser {
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        csrf: Option<&str>,
    ) -> Result<HttpResponse> {
        let cookie = format!("caucus_signin={}", self.cookie);
        let mut headers = vec![("cookie", cookie.as_str())];
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        http(self.address, method, path, &headers, body).await
    }

    pub(crate) async fn get(&self, path: &str) -> Result<HttpResponse> {
        self.send("GET", path, None, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &str) -> Result<HttpResponse> {
        self.send("POST", path, Some(body), Some(&self.csrf.clone())).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<HttpResponse> {
        self.send("DELETE", path, None, Some(&self.csrf.clone())).await
    }

    /// A WebSocket opened by this browser, with its cookie and its own origin.
    pub(crate) async fn socket(&self) -> Result<Client> {
        let cookie = format!("caucus_signin={}", self.cookie);
        let origin = format!("http://{}", self.address);
        Ok(Client::connect_with_headers(self.address, &[("cookie", &cookie), ("origin", &origin)]).await?)
    }
}

/// The token inside a sign-in link.
fn link_token(link: &str) -> &str {
    link.split("#signin=").nth(1).expect("a sign-in link carries its token after #signin=")
}

/// The value a `Set-Cookie` header gives `name`, with the header's attributes.
fn set_cookie<'a>(response: &'a HttpResponse, name: &str) -> Option<(&'a str, &'a str)> {
    response
        .headers
        .iter()
        .filter(|(key, _)| key == "set-cookie")
        .map(|(_, value)| value.as_str())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            (pair.split_once('=').map_or("", |(_, value)| value), attributes)
        })
}

async fn verify(server: &TestServer, token: &str, extra: &[(&str, &str)]) -> Result<HttpResponse> {
    let body = serde_json::json!({ "token": token }).to_string();
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    http(server.address, "POST", "/api/auth/email/verify", &headers, Some(&body)).await
}

/// Signs `email` in with a link, as a person clicking it would.
pub(crate) async fn sign_in(server: &TestServer, email: &str) -> Result<Browser> {
    let link = server.hub.accounts().mint_email_link(email, Some("/#start")).await?;
    let response = verify(server, link_token(&link), &[]).await?;
    ensure!(response.status == 200, "signing in failed: {} {}", response.status, response.body);
    let (cookie, _) = set_cookie(&response, "caucus_signin").context("a sign-in cookie")?;
    let me: Me = response.json()?;
    Ok(Browser { address: server.address, cookie: cookie.to_owned(), csrf: me.csrf.clone(), me })
}

pub(crate) fn error_code(response: &HttpResponse) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&response.body).ok()?;
    body["error"]["code"].as_str().map(str::to_owned)
}

pub(crate) fn create_body(title: &str) -> String {
    serde_json::json!({ "title": title, "caucuses": { "a": "A", "b": "B" }, "ground_rules": GROUND_RULES })
        .to_string()
}

pub(crate) async fn admin_server() -> TestServer {
    TestServer::start_with(|config| config.accounts.admins = vec!["ada@example.org".into()]).await
}

#[tokio::test]
async fn an_email_link_signs_in_once_with_a_fresh_http_only_cookie() -> Result<()> {
    let server = TestServer::start().await;
    let link = server.hub.accounts().mint_email_link("Bea@Example.org", Some("/#invite=abc")).await?;
    ensure!(link.starts_with(&format!("http://{}/#signin=", server.address)), "{link}");

    // A cookie planted before sign-in is never the one that signs in.
    let response =
        verify(&server, link_token(&link), &[("cookie", "caucus_signin=planted-by-someone")]).await?;
    ensure!(response.status == 200, "{} {}", response.status, response.body);
    let (cookie, attributes) = set_cookie(&response, "caucus_signin").context("a sign-in cookie")?;
    ensure!(cookie != "planted-by-someone" && cookie.len() == 64, "a fresh random value: {cookie}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        ensure!(attributes.contains(flag), "{flag} in {attributes}");
    }
    ensure!(!attributes.contains("Secure"), "no Secure flag over plain http: {attributes}");
    let me: Me = response.json()?;
    ensure!(me.account.email.as_deref() == Some("bea@example.org"), "{me:?}");
    ensure!(me.return_to.as_deref() == Some("/#invite=abc"), "{me:?}");
    ensure!(me.roles.is_empty(), "a new account has no roles: {me:?}");

    let planted =
        http(server.address, "GET", "/api/me", &[("cookie", "caucus_signin=planted-by-someone")], None)
            .await?;
    ensure!(planted.status == 401, "a planted value signs nobody in: {}", planted.status);

    let again = verify(&server, link_token(&link), &[]).await?;
    ensure!(again.status == 400 && error_code(&again).as_deref() == Some("invalid_link"), "{}", again.body);
    ensure!(set_cookie(&again, "caucus_signin").is_none(), "a replayed link sets no cookie");
    Ok(())
}

#[tokio::test]
async fn an_expired_link_and_a_foreign_page_are_refused() -> Result<()> {
    let server = TestServer::start_with(|config| config.accounts.email_link_secs = 1).await;
    let link = server.hub.accounts().mint_email_link("bea@example.org", None).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = verify(&server, link_token(&link), &[]).await?;
    ensure!(
        expired.status == 400 && error_code(&expired).as_deref() == Some("invalid_link"),
        "{}",
        expired.body
    );

    let fresh = server.hub.accounts().mint_email_link("bea@example.org", None).await?;
    let foreign = verify(&server, link_token(&fresh), &[("origin", "https://evil.example")]).await?;
    ensure!(foreign.status == 403 && error_code(&foreign).as_deref() == Some("csrf"), "{}", foreign.body);
    ensure!(
        verify(&server, link_token(&fresh), &[]).await?.status == 200,
        "the refused request did not spend the link"
    );
    Ok(())
}

#[tokio::test]
async fn without_smtp_email_sign_in_says_so_and_return_paths_stay_local() -> Result<()> {
    let server = TestServer::start().await;
    let body = r#"{"email":"bea@example.org"}"#;
    let response =
        http(server.address, "POST", "/api/auth/email", &[("content-type", "application/json")], Some(body))
            .await?;
    ensure!(
        response.status == 503 && error_code(&response).as_deref() == Some("email_unavailable"),
        "{}",
        response.body
    );
    ensure!(response.body.contains("caucus signin-link"), "says what the operator can do: {}", response.body);

    for hostile in ["//evil.example", "https://evil.example", "/\\evil.example"] {
        let link = server.hub.accounts().mint_email_link("bea@example.org", Some(hostile)).await?;
        let me: Me = verify(&server, link_token(&link), &[]).await?.json()?;
        ensure!(me.return_to.as_deref() == Some("/"), "{hostile} became {:?}", me.return_to);
    }
    Ok(())
}

/// A server whose mail server refuses connections, allowing `per_client` sign-in links
/// per client an hour: every link that passes the limits is answered 502 "not sent", so
/// a refusal by the limit is the only 429.
async fn server_whose_mail_fails(
    per_client: u32,
    more: impl FnOnce(&mut caucus_server::config::Config),
) -> Result<TestServer> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    Ok(TestServer::start_with(move |config| {
        config.accounts.smtp_url = Some(caucus_server::config::SecretText(format!("smtp://{closed}")));
        config.accounts.email_links_per_client_per_hour = per_client;
        more(config);
    })
    .await)
}

#[tokio::test]
async fn one_client_asking_for_links_to_many_addresses_is_held_back() -> Result<()> {
    let server = server_whose_mail_fails(3, |_| {}).await?;
    let ask = |n: usize| {
        let body = format!(r#"{{"email":"person{n}@example.org"}}"#);
        async move {
            http(
                server.address,
                "POST",
                "/api/auth/email",
                &[("content-type", "application/json")],
                Some(&body),
            )
            .await
        }
    };
    for n in 0..3 {
        let response = ask(n).await?;
        ensure!(
            response.status == 502,
            "link {n} passes the limit and fails at the mail server: {}",
            response.body
        );
    }
    // A fourth address, from the same client, within the hour.
    let response = ask(3).await?;
    ensure!(
        response.status == 429 && error_code(&response).as_deref() == Some("rate_limited"),
        "{} {}",
        response.status,
        response.body
    );
    ensure!(response.body.contains("from your network"), "says why: {}", response.body);
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_link_allowance() -> Result<()> {
    // The test connects from 127.0.0.1, listed as the proxy in front.
    let server = server_whose_mail_fails(2, |config| {
        config.trusted_proxies = caucus_server::config::TrustedProxies(vec!["127.0.0.1".parse().unwrap()]);
    })
    .await?;
    let mut n = 0;
    let mut ask = |forwarded_for: Option<&'static str>| {
        n += 1;
        let body = format!(r#"{{"email":"person{n}@example.org"}}"#);
        async move {
            let mut headers = vec![("content-type", "application/json")];
            headers.extend(forwarded_for.map(|value| ("x-forwarded-for", value)));
            let response = http(server.address, "POST", "/api/auth/email", &headers, Some(&body)).await?;
            Ok::<u16, anyhow::Error>(response.status)
        }
    };
    // 502: passed the limit, and failed at the mail server.
    ensure!(ask(Some("198.51.100.1")).await? == 502, "the first client's first link");
    ensure!(ask(Some("198.51.100.1")).await? == 502, "the first client's second link");
    ensure!(ask(Some("198.51.100.1")).await? == 429, "the first client's third link is held back");
    // Naming someone else further left does not help: the proxy appended the real address.
    ensure!(ask(Some("203.0.113.50, 198.51.100.1")).await? == 429, "a forged entry to the left is ignored");
    ensure!(
        ask(Some("198.51.100.2")).await? == 502,
        "another client behind the same proxy has its own allowance"
    );
    ensure!(
        ask(None).await? == 502,
        "the proxy's own requests, naming no client, are not counted per client"
    );
    Ok(())
}

#[tokio::test]
async fn every_state_changing_request_needs_the_csrf_token() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;
    let session = created.session.to_string();
    let posts = [
        ("POST", "/api/me".to_owned(), r#"{"name":"Mallory"}"#.to_owned()),
        ("POST", "/api/sessions".to_owned(), create_body("Forged")),
        ("POST", format!("/api/sessions/{session}/invite"), String::new()),
        (
            "POST",
            format!("/api/sessions/{session}/facilitators"),
            r#"{"email":"eve@example.org"}"#.to_owned(),
        ),
        ("POST", "/api/admin/facilitators".to_owned(), r#"{"email":"eve@example.org"}"#.to_owned()),
        ("DELETE", "/api/admin/facilitators/ada@example.org".to_owned(), String::new()),
        ("POST", "/api/me/seats".to_owned(), r#"{"token":"x"}"#.to_owned()),
        (
            "POST",
            "/api/join".to_owned(),
            format!(r#"{{"invite_code":"{}","name":"Ada"}}"#, created.invite_code),
        ),
        ("POST", "/api/auth/signout".to_owned(), String::new()),
        ("POST", "/api/auth/signout-everywhere".to_owned(), String::new()),
        ("DELETE", "/api/me".to_owned(), String::new()),
    ];
    for (method, path, body) in &posts {
        let body = Some(body.as_str()).filter(|body| !body.is_empty());
        for csrf in [None, Some("not-the-token")] {
            let response = ada.send(method, path, body, csrf).await?;
            ensure!(
                response.status == 403 && error_code(&response).as_deref() == Some("csrf"),
                "{method} {path} with {csrf:?}: {} {}",
                response.status,
                response.body
            );
        }
    }
    // Nothing changed: the same name, one session, the same invite, still signed in.
    let me: Me = ada.get("/api/me").await?.json()?;
    ensure!(me.account.name == "ada", "{me:?}");
    let mine: MySessions = ada.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.len() == 1, "{mine:?}");
    ensure!(mine.sessions[0].invite_url.as_deref() == Some(created.invite_url.as_str()), "{mine:?}");
    Ok(())
}

#[tokio::test]
async fn admins_decide_who_may_facilitate_and_a_role_change_closes_live_connections() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    ensure!(ada.me.roles == ["admin", "facilitator"], "{:?}", ada.me.roles);
    let bea = sign_in(&server, "bea@example.org").await?;

    let refused = bea.post("/api/sessions", &create_body("Not yet")).await?;
    ensure!(refused.status == 403 && refused.body.contains("admin"), "{} {}", refused.status, refused.body);
    let not_admin = bea.post("/api/admin/facilitators", r#"{"email":"bea@example.org"}"#).await?;
    ensure!(not_admin.status == 403, "{}", not_admin.body);

    let granted = ada.post("/api/admin/facilitators", r#"{"email":"Bea@example.org"}"#).await?;
    ensure!(granted.status == 200 && granted.body.contains("bea@example.org"), "{}", granted.body);
    let created: SessionCreated = bea.post("/api/sessions", &create_body("Bea's circle")).await?.json()?;

    let mut socket = bea.socket().await?;
    let welcome = socket.hello(&created.session, "").await?;
    ensure!(welcome.you.role == Role::Facilitator, "{:?}", welcome.you);
    ensure!(welcome.you.id.as_str() == bea.me.account.id, "the account is the member: {:?}", welcome.you);

    let revoked = ada.delete("/api/admin/facilitators/bea@example.org").await?;
    ensure!(revoked.status == 200 && !revoked.body.contains("bea@"), "{}", revoked.body);
    let closed = socket.expect_close().await?;
    ensure!(closed.code == Some(close::ROLE_CHANGED), "{closed:?}");
    let again = bea.post("/api/sessions", &create_body("Another")).await?;
    ensure!(again.status == 403, "{}", again.body);
    Ok(())
}

#[tokio::test]
async fn a_co_facilitator_added_by_email_sees_the_session_when_they_first_sign_in() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Monthly circle")).await?.json()?;
    let added = ada
        .post(&format!("/api/sessions/{}/facilitators", created.session), r#"{"email":"Bea@Example.org"}"#)
        .await?;
    ensure!(added.status == 200, "{} {}", added.status, added.body);

    // Bea has never signed in; when she does, the session is hers to run.
    let bea = sign_in(&server, "bea@example.org").await?;
    let mine: MySessions = bea.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.len() == 1 && mine.sessions[0].role == Role::Facilitator, "{mine:?}");
    ensure!(mine.sessions[0].invite_url.as_deref() == Some(created.invite_url.as_str()), "{mine:?}");
    let rotated = bea.post(&format!("/api/sessions/{}/invite", created.session), "").await?;
    ensure!(rotated.status == 200 && !rotated.body.contains(&created.invite_code), "{}", rotated.body);

    let mut socket = bea.socket().await?;
    let welcome = socket.hello(&created.session, "").await?;
    ensure!(welcome.you.role == Role::Facilitator, "{:?}", welcome.you);
    // A stranger's account has no seat there, and learns nothing about it.
    let eve = sign_in(&server, "eve@example.org").await?;
    let mut stranger = eve.socket().await?;
    stranger
        .send_command(caucus_protocol::Command::Hello {
            session: created.session.clone(),
            token: String::new(),
            resume: Default::default(),
        })
        .await?;
    ensure!(stranger.expect_close().await?.code == Some(close::NO_SUCH_SESSION), "no seat, no entry");
    Ok(())
}

#[tokio::test]
async fn a_member_already_here_added_by_email_becomes_a_co_facilitator() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Monthly circle")).await?.json()?;
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let join = serde_json::json!({ "invite_code": created.invite_code, "name": "Kofi", "accept_ground_rules": GROUND_RULES });
    let joined: Joined = kofi.post("/api/join", &join.to_string()).await?.json()?;
    let mut socket = kofi.socket().await?;
    ensure!(socket.hello(&created.session, "").await?.you.role == Role::Member, "Kofi starts as a member");

    let added = ada
        .post(&format!("/api/sessions/{}/facilitators", created.session), r#"{"email":"kofi@example.org"}"#)
        .await?;
    ensure!(added.status == 200, "{} {}", added.status, added.body);
    // His open connection closes so that it comes back with what he may now do.
    ensure!(socket.expect_close().await?.code == Some(close::ROLE_CHANGED), "the member's connection closes");
    let mut socket = kofi.socket().await?;
    let welcome = socket.hello(&created.session, "").await?;
    ensure!(
        welcome.you.id == joined.member && welcome.you.role == Role::Facilitator,
        "the same seat, now a facilitator: {:?}",
        welcome.you
    );
    ensure!(welcome.members.iter().filter(|member| member.name == "Kofi").count() == 1, "one Kofi");
    let mine: MySessions = kofi.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.len() == 1 && mine.sessions[0].role == Role::Facilitator, "{mine:?}");
    // Adding him again changes nothing and is not an error.
    let again = ada
        .post(&format!("/api/sessions/{}/facilitators", created.session), r#"{"email":"kofi@example.org"}"#)
        .await?;
    ensure!(again.status == 200, "{} {}", again.status, again.body);
    Ok(())
}

#[tokio::test]
async fn a_guest_keeps_their_seat_in_an_account_which_retires_the_token_and_comes_back_after_a_restart()
-> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;

    let joined: Joined = server.join(&created.invite_code, "Amara").await?;
    let mut guest = server.client().await;
    guest.hello(&created.session, joined.guest_token()).await?;
    let said = guest.say(Room::Plenary, "Hello from a guest").await?;

    let minutes = format!("/api/sessions/{}/minutes", created.session);
    let bearer = format!("Bearer {}", joined.guest_token());
    let (address, headers) = (server.address, [("authorization", bearer.as_str())]);
    let as_guest = || http(address, "GET", &minutes, &headers, None);
    ensure!(as_guest().await?.status == 403, "the guest's token is good, though not for the minutes");

    let amara = sign_in(&server, "amara@example.org").await?;
    let attached = amara.post("/api/me/seats", &format!(r#"{{"token":"{}"}}"#, joined.guest_token())).await?;
    ensure!(attached.status == 200 && attached.body.contains(joined.member.as_str()), "{}", attached.body);
    // Nobody else can take the same seat.
    let eve = sign_in(&server, "eve@example.org").await?;
    let stolen = eve.post("/api/me/seats", &format!(r#"{{"token":"{}"}}"#, joined.guest_token())).await?;
    ensure!(stolen.status == 403, "{}", stolen.body);

    // The seat is the account's now, so its guest token opens nothing: the connection
    // entered with it closes, and it is refused at `hello` and over HTTP.
    let closed = guest.expect_close().await?;
    ensure!(closed.code == Some(close::SEAT_KEPT), "{closed:?}");
    let mut again = server.client().await;
    let refused = again.hello_refused(&created.session, joined.guest_token()).await?;
    ensure!(refused.code == Some(close::SEAT_KEPT) && refused.reason.contains("sign in"), "{refused:?}");
    let refused = as_guest().await?;
    ensure!(refused.status == 401 && refused.body.contains("kept in an account"), "{}", refused.body);

    // A day later: a new process on the same data; the cookie still signs Amara in, and
    // she is the same member, with her own message in the plenary.
    let (cookie, csrf) = (amara.cookie.clone(), amara.csrf.clone());
    let server = server.restart().await;
    let amara = Browser { address: server.address, cookie, csrf, me: amara.me };
    let mine: MySessions = amara.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.len() == 1 && mine.sessions[0].role == Role::Member, "{mine:?}");
    let mut socket = amara.socket().await?;
    let (welcome, replay) = socket.hello_resume(&created.session, "", Default::default()).await?;
    ensure!(welcome.you.id == joined.member && welcome.you.name == "Amara", "{:?}", welcome.you);
    ensure!(
        replay.iter().any(|event| event.seq == said && event.room == Room::Plenary),
        "her earlier message is there: {replay:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_kept_guest_token_stays_retired_after_the_account_is_deleted() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;
    let joined: Joined = server.join(&created.invite_code, "Amara").await?;
    let amara = sign_in(&server, "amara@example.org").await?;
    let keep = format!(r#"{{"token":"{}"}}"#, joined.guest_token());
    ensure!(amara.post("/api/me/seats", &keep).await?.status == 200);
    ensure!(amara.delete("/api/me").await?.status == 204);

    // A copy of the token left somewhere opens nothing: not the seat, not the API, and
    // it gives the seat to no new account.
    let mut copy = server.client().await;
    ensure!(
        copy.hello_refused(&created.session, joined.guest_token()).await?.code == Some(close::SEAT_KEPT),
        "the seat opened again"
    );
    let bearer = format!("Bearer {}", joined.guest_token());
    let minutes = format!("/api/sessions/{}/minutes", created.session);
    let refused = http(server.address, "GET", &minutes, &[("authorization", &bearer)], None).await?;
    ensure!(refused.status == 401, "{} {}", refused.status, refused.body);
    let mallory = sign_in(&server, "mallory@example.org").await?;
    let taken = mallory.post("/api/me/seats", &keep).await?;
    ensure!(
        taken.status == 403 && taken.body.contains("since been deleted"),
        "{} {}",
        taken.status,
        taken.body
    );
    Ok(())
}

#[tokio::test]
async fn a_signed_in_member_joins_once_and_a_members_only_session_refuses_guests() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let body = serde_json::json!({
        "title": "Members only", "caucuses": { "a": "A", "b": "B" }, "allow_guests": false
    });
    let created: SessionCreated = ada.post("/api/sessions", &body.to_string()).await?.json()?;

    let guest = server.join_response(&created.invite_code, "Guest").await?;
    ensure!(
        guest.status == 403 && error_code(&guest).as_deref() == Some("sign_in_required"),
        "{}",
        guest.body
    );

    let kofi = sign_in(&server, "kofi@example.org").await?;
    let join = format!(r#"{{"invite_code":"{}","name":"Kofi"}}"#, created.invite_code);
    let first: Joined = kofi.post("/api/join", &join).await?.json()?;
    ensure!(first.token.is_none(), "a signed-in seat needs no token: {first:?}");
    let second: Joined = kofi.post("/api/join", &join).await?.json()?;
    ensure!(second.member == first.member, "joining again is the same person");
    let mut socket = kofi.socket().await?;
    let welcome = socket.hello(&created.session, "").await?;
    ensure!(welcome.you.id == first.member && welcome.you.role == Role::Member, "{:?}", welcome.you);
    let members = welcome.members.iter().filter(|member| member.name == "Kofi").count();
    ensure!(members == 1, "one Kofi in the session: {:?}", welcome.members);
    Ok(())
}

#[tokio::test]
async fn signing_out_closes_the_connection_and_the_cookie_stops_working() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;
    let mut socket = ada.socket().await?;
    socket.hello(&created.session, "").await?;

    let out = ada.post("/api/auth/signout", "").await?;
    ensure!(out.status == 204, "{}", out.body);
    let (cleared, _) = set_cookie(&out, "caucus_signin").context("the cookie is cleared")?;
    ensure!(cleared.is_empty(), "{cleared}");
    let closed = socket.expect_close().await?;
    ensure!(closed.code == Some(close::SIGNED_OUT), "{closed:?}");
    ensure!(ada.get("/api/me").await?.status == 401, "the old cookie signs nobody in");

    // Everywhere: two browsers, both out.
    let first = sign_in(&server, "ada@example.org").await?;
    let second = sign_in(&server, "ada@example.org").await?;
    let mut other = second.socket().await?;
    other.hello(&created.session, "").await?;
    ensure!(first.post("/api/auth/signout-everywhere", "").await?.status == 204, "signed out everywhere");
    ensure!(other.expect_close().await?.code == Some(close::SIGNED_OUT), "the other browser's socket closed");
    ensure!(second.get("/api/me").await?.status == 401, "the other browser is signed out");
    Ok(())
}

#[tokio::test]
async fn a_person_exports_their_data_and_a_deleted_account_is_gone_from_the_files() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;
    let zed = sign_in(&server, "zed.unique.address@example.org").await?;
    let join = serde_json::json!({ "invite_code": created.invite_code, "name": "Zed", "accept_ground_rules": GROUND_RULES })
        .to_string();
    ensure!(zed.post("/api/join", &join).await?.status == 200, "Zed joins");

    let export = zed.get("/api/me/export").await?;
    ensure!(export.status == 200, "{}", export.body);
    ensure!(
        export.header("content-disposition").is_some_and(|value| value.contains("attachment")),
        "a download"
    );
    let data: serde_json::Value = export.json()?;
    ensure!(data["account"]["email"] == "zed.unique.address@example.org", "{data}");
    ensure!(data["seats"][0]["session"] == created.session.as_str(), "{data}");
    ensure!(
        !export.body.contains("caucus\":") && !export.body.contains("\"a\""),
        "nothing about caucuses: {}",
        export.body
    );

    let mut socket = zed.socket().await?;
    socket.hello(&created.session, "").await?;
    ensure!(zed.delete("/api/me").await?.status == 204, "deleted");
    ensure!(socket.expect_close().await?.code == Some(close::SIGNED_OUT), "the connection closed");
    ensure!(zed.get("/api/me").await?.status == 401, "signed out");
    let raw = server.raw_database();
    ensure!(
        !raw.windows(b"zed.unique.address".len()).any(|window| window == b"zed.unique.address"),
        "the deleted address is nowhere in the database files"
    );
    let again = sign_in(&server, "zed.unique.address@example.org").await?;
    ensure!(again.me.account.id != zed.me.account.id, "the address starts afresh");
    let mine: MySessions = again.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.is_empty(), "with no seats: {mine:?}");
    Ok(())
}

#[tokio::test]
async fn behind_https_the_sign_in_cookie_is_secure_and_only_this_host_can_set_it() -> Result<()> {
    let server =
        TestServer::start_with(|config| config.public_url = Some("https://caucus.example.org".into())).await;
    let link = server.hub.accounts().mint_email_link("bea@example.org", None).await?;
    ensure!(link.starts_with("https://caucus.example.org/#signin="), "{link}");
    let response = verify(&server, link_token(&link), &[]).await?;
    ensure!(set_cookie(&response, "caucus_signin").is_none(), "no cookie without the prefix");
    // `__Host-`: a browser takes it only from this host, with Secure and Path=/, so no
    // sibling host can plant one.
    let (value, attributes) = set_cookie(&response, "__Host-caucus_signin").context("a sign-in cookie")?;
    ensure!(
        attributes.contains("Secure") && attributes.contains("HttpOnly") && attributes.contains("Path=/;"),
        "{attributes}"
    );
    let me = |cookie: String| {
        let address = server.address;
        async move { http(address, "GET", "/api/me", &[("cookie", &cookie)], None).await }
    };
    ensure!(me(format!("__Host-caucus_signin={value}")).await?.status == 200, "the prefixed cookie signs in");
    // The same value under the name a sibling host could plant is not read.
    ensure!(me(format!("caucus_signin={value}")).await?.status == 401, "the unprefixed name is not read");
    Ok(())
}

#[tokio::test]
async fn a_removed_account_is_closed_out_and_cannot_come_back_through_the_invite() -> Result<()> {
    let server = admin_server().await;
    let ada = sign_in(&server, "ada@example.org").await?;
    let created: SessionCreated = ada.post("/api/sessions", &create_body("Circle")).await?.json()?;
    let kofi = sign_in(&server, "kofi@example.org").await?;
    let join = serde_json::json!({ "invite_code": created.invite_code, "name": "Kofi", "accept_ground_rules": GROUND_RULES })
        .to_string();
    let joined: Joined = kofi.post("/api/join", &join).await?.json()?;
    let mut kofis = kofi.socket().await?;
    kofis.hello(&created.session, "").await?;

    let mut desk = ada.socket().await?;
    desk.hello(&created.session, "").await?;
    desk.ok(caucus_protocol::Command::Remove { member: joined.member.clone() }).await?;
    ensure!(kofis.expect_close().await?.code == Some(close::REMOVED), "his connection closed");

    let again = kofi.post("/api/join", &join).await?;
    ensure!(again.status == 403 && again.body.contains("removed"), "{} {}", again.status, again.body);
    let mine: MySessions = kofi.get("/api/me/sessions").await?.json()?;
    ensure!(mine.sessions.is_empty(), "the session is no longer his: {mine:?}");
    Ok(())
}
