//! Tokens, origins and the HTTP API's refusals.

use caucus_tests::GuestToken;
use std::time::Duration;

use anyhow::Result;
use caucus_protocol::api::ApiError;
use caucus_protocol::{Command, ErrorCode, Settings, close};
use caucus_server::auth::{Claims, TokenKind, unix_now};
use caucus_tests::{Client, http};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::support::{Scene, TestServer};

const TEST_KEY: &[u8] = b"an-only-for-tests-signing-key-of-32+-bytes";

fn claims(sub: &str) -> Claims {
    let now = unix_now();
    Claims {
        sub: sub.into(),
        iss: "caucus".into(),
        aud: "caucus".into(),
        exp: now + 3600,
        nbf: now,
        iat: now,
        kind: TokenKind::Facilitator,
        sid: None,
        name: Some("Ada".into()),
    }
}

fn sign(claims: &Claims, algorithm: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(TEST_KEY)).unwrap()
}

fn base64url(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn close_for(scene: &Scene, token: &str) -> Result<caucus_tests::Closed> {
    let mut client = scene.server.client().await;
    client.hello_refused(&scene.session, token).await
}

#[tokio::test]
async fn bad_tokens_are_refused_at_hello_with_a_code_and_reason_saying_why() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let good = claims(caucus_server::auth::facilitator_id("Ada").as_str());
    let none_token = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(serde_json::to_string(&good)?.as_bytes())
    );
    let cases: Vec<(String, String, u16, &str)> = vec![
        ("no token".into(), String::new(), close::INVALID_TOKEN, "malformed"),
        ("garbage".into(), "not.a.jwt".into(), close::INVALID_TOKEN, "malformed"),
        ("alg=none".into(), none_token, close::INVALID_TOKEN, ""),
        ("HS512".into(), sign(&good, Algorithm::HS512), close::INVALID_TOKEN, "HS256"),
        (
            "expired".into(),
            sign(&Claims { exp: unix_now() - 3600, ..good.clone() }, Algorithm::HS256),
            close::TOKEN_EXPIRED,
            "expired",
        ),
        (
            "nbf in the future".into(),
            sign(&Claims { nbf: unix_now() + 3600, ..good.clone() }, Algorithm::HS256),
            close::INVALID_TOKEN,
            "not valid yet",
        ),
        (
            "wrong audience".into(),
            sign(&Claims { aud: "other".into(), ..good.clone() }, Algorithm::HS256),
            close::INVALID_TOKEN,
            "another service",
        ),
        (
            "wrong issuer".into(),
            sign(&Claims { iss: "other".into(), ..good.clone() }, Algorithm::HS256),
            close::INVALID_TOKEN,
            "issued by someone else",
        ),
        (
            "wrong key".into(),
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(&[9u8; 32]),
            )?,
            close::INVALID_TOKEN,
            "signature",
        ),
    ];
    for (case, token, code, says) in cases {
        let closed = close_for(&scene, &token).await?;
        assert_eq!(closed.code, Some(code), "{case}: {closed:?}");
        assert!(closed.reason.contains(says), "{case}: reason `{}` does not say `{says}`", closed.reason);
    }
    // The good token works.
    let mut client = scene.server.client().await;
    client.hello(&scene.session, &sign(&good, Algorithm::HS256)).await?;
    Ok(())
}

#[tokio::test]
async fn a_token_for_another_session_reveals_nothing_about_it() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let other =
        scene.server.create_session(&scene.server.facilitator_token("Ada"), Settings::default()).await?;
    let member = scene.server.join(&scene.invite, "Amara").await?;
    // Amara's token, used for the other (real) session and for a session that does
    // not exist: the same refusal.
    let mut into_other = scene.server.client().await;
    let real = into_other.hello_refused(&other.session, member.guest_token()).await?;
    let mut into_nothing = scene.server.client().await;
    let missing = into_nothing
        .hello_refused(&caucus_protocol::SessionId::new("s-doesnotexist")?, member.guest_token())
        .await?;
    assert_eq!(real, missing);
    assert_eq!(real.code, Some(close::NO_SUCH_SESSION));
    // A facilitator of one session is nobody in another.
    let mut stranger = scene.server.client().await;
    assert_eq!(
        stranger.hello_refused(&other.session, &scene.server.facilitator_token("Someone Else")).await?,
        missing
    );
    Ok(())
}

#[tokio::test]
async fn a_token_that_expires_mid_session_closes_its_connection() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let short = sign(
        &Claims { exp: unix_now() + 2, ..claims(caucus_server::auth::facilitator_id("Ada").as_str()) },
        Algorithm::HS256,
    );
    let mut client = scene.server.client().await;
    client.hello(&scene.session, &short).await?;
    client.wait = Duration::from_secs(30);
    let closed = client.expect_close().await?;
    assert_eq!(closed.code, Some(close::TOKEN_EXPIRED), "{closed:?}");
    Ok(())
}

#[tokio::test]
async fn a_silent_connection_is_closed_when_hello_does_not_come() -> Result<()> {
    let server = TestServer::start_with(|config| config.timeouts.hello_secs = 1).await;
    let mut client = server.client().await;
    let closed = client.expect_close().await?;
    assert_eq!(closed.code, Some(close::HELLO_TIMEOUT));
    Ok(())
}

#[tokio::test]
async fn upgrades_from_origins_not_on_the_allowlist_get_403() -> Result<()> {
    let server =
        TestServer::start_with(|config| config.allowed_origins = vec!["https://app.example".into()]).await;
    let refused = Client::connect_with(server.address, Some("https://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    Client::connect_with(server.address, Some("https://app.example")).await?;
    let own = format!("http://{}", server.address);
    Client::connect_with(server.address, Some(&own)).await?;
    Ok(())
}

#[tokio::test]
async fn the_http_api_refuses_clearly() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let address = scene.server.address;
    let body = r#"{"title":"t","caucuses":{"a":"A","b":"B"}}"#;

    let anonymous = http(address, "POST", "/api/sessions", &[], Some(body)).await?;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json::<ApiError>()?.error.code, ErrorCode::Unauthorized);

    let member = scene.server.join(&scene.invite, "Amara").await?;
    let auth = format!("Bearer {}", member.guest_token());
    let as_member = http(address, "POST", "/api/sessions", &[("authorization", &auth)], Some(body)).await?;
    assert_eq!(as_member.status, 403);

    let fac = format!("Bearer {}", scene.server.facilitator_token("Ada"));
    let bad_body =
        http(address, "POST", "/api/sessions", &[("authorization", &fac)], Some(r#"{"title":"t"}"#)).await?;
    assert_eq!(bad_body.status, 422);
    assert!(bad_body.json::<ApiError>()?.error.message.contains("caucuses"), "{}", bad_body.body);

    let no_invite =
        http(address, "POST", "/api/join", &[], Some(r#"{"invite_code":"nope","name":"Eve"}"#)).await?;
    assert_eq!(no_invite.status, 404);
    assert_eq!(no_invite.json::<ApiError>()?.error.code, ErrorCode::NoSuchInvite);

    // The fields by name only: an array of them in order is refused, and nobody joins.
    let in_order = format!(r#"["{}","Eve",null]"#, scene.invite);
    let refused = http(address, "POST", "/api/join", &[], Some(&in_order)).await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("must be a JSON object"), "{}", refused.body);
    let twice = format!(r#"{{"invite_code":"{}","name":"Eve","name":"Mallory"}}"#, scene.invite);
    let refused = http(address, "POST", "/api/join", &[], Some(&twice)).await?;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("duplicate field `name`"), "{}", refused.body);

    let empty_name = format!(r#"{{"invite_code":"{}","name":"  "}}"#, scene.invite);
    let empty = http(address, "POST", "/api/join", &[], Some(&empty_name)).await?;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.json::<ApiError>()?.error.code, ErrorCode::Empty);

    let invite = http(address, "GET", &format!("/api/invites/{}", scene.invite), &[], None).await?;
    assert_eq!(invite.status, 200);
    assert!(invite.body.contains("What is said in a caucus stays in it."));

    let health = http(address, "GET", "/healthz", &[], None).await?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    Ok(())
}

#[tokio::test]
async fn metrics_and_readiness_are_served_without_any_content() -> Result<()> {
    let scene = Scene::new(Settings::default()).await?;
    let mut amara = scene.member("Amara").await?;
    amara.client.say(caucus_protocol::Room::Plenary, "METRICS-SECRET words").await?;
    amara
        .client
        .refused(Command::Say {
            room: caucus_tests::room(caucus_protocol::Room::Caucus(caucus_protocol::Caucus::A)),
            text: "x".into(),
        })
        .await?;
    let ready = http(scene.server.address, "GET", "/readyz", &[], None).await?;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    let metrics = http(scene.server.address, "GET", "/metrics", &[], None).await?;
    assert_eq!(metrics.status, 200);
    for name in [
        "caucus_connections",
        "caucus_sessions{phase=\"gathering\"}",
        "caucus_frames_in_total",
        "caucus_frames_out_total",
        "caucus_refusals_total{code=\"no_such_room\"}",
        "caucus_store_commit_seconds_bucket",
    ] {
        assert!(metrics.body.contains(name), "/metrics lacks {name}:\n{}", metrics.body);
    }
    assert!(!metrics.body.contains("METRICS-SECRET"));
    assert!(!metrics.body.contains(amara.id.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_session_whose_creator_cannot_join_is_never_created() -> Result<()> {
    let server = TestServer::start().await;
    // A facilitator name longer than a display name may be, in a token minted
    // elsewhere with the same key: the creator cannot join.
    assert!(server.hub.auth().mint_facilitator(&"N".repeat(200)).is_err(), "the CLI refuses such a name");
    let long = "N".repeat(200);
    let token = sign(
        &Claims { name: Some(long.clone()), ..claims(caucus_server::auth::facilitator_id(&long).as_str()) },
        Algorithm::HS256,
    );
    let refused = caucus_tests::create_session(server.address, &token, "Orphan").await;
    let message = refused.expect_err("the session is refused").to_string();
    assert!(message.contains("422") && message.contains("too_long"), "{message}");
    let stored = server.hub.store().directory().await?;
    assert!(stored.is_empty(), "a session without a facilitator was left behind: {}", stored.len());
    Ok(())
}
