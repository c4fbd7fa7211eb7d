//! Sign-in with OpenID Connect: the authorization code flow with PKCE (S256), `state`
//! and `nonce`, and the ID token checked against the provider's published keys, all by
//! the `openidconnect` crate. Caucus keeps only the provider's issuer and subject (and
//! the email and name it gives) on the account.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, reqwest,
};
use tokio::sync::Mutex;

use crate::config::OidcProvider;

/// How long discovered metadata (with the provider's keys) is used before fetching it
/// again, so that a provider's key rotation is picked up.
const METADATA_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a provider may take to answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an OpenID Connect sign-in failed. The text is shown to the person.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or answered strangely: {0}")]
    Unreachable(String),
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the identity provider's answer did not prove who you are: {0}")]
    BadToken(String),
    #[error("this server's sign-in settings for that provider are not valid: {0}")]
    Misconfigured(String),
}

/// One provider, with its metadata fetched on first use.
#[derive(Debug)]
pub struct Provider {
    /// Its configuration.
    pub config: OidcProvider,
    secret: String,
    redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// A sign-in in progress, between the redirect to the provider and its return.
#[derive(Debug)]
pub struct Started {
    /// Where to send the browser.
    pub authorize_url: String,
    /// The `state` sent, to compare with the one that comes back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier for the code exchange.
    pub pkce_verifier: String,
}

/// What a provider vouched for.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The issuer URL.
    pub issuer: String,
    /// The subject at that issuer.
    pub subject: String,
    /// The email the provider gave, lower-cased.
    pub email: Option<String>,
    /// Whether the provider says it verified that email.
    pub email_verified: bool,
    /// The name it gave.
    pub name: Option<String>,
}

impl Provider {
    /// A provider whose callback is at `{public_url}/auth/oidc/{id}/callback`.
    pub fn new(config: OidcProvider, public_url: &str) -> Result<Arc<Self>, OidcError> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(secret), _) => secret.0.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| {
                    OidcError::Misconfigured(format!(
                        "cannot read the client secret file {}: {err}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
            (None, None) => return Err(OidcError::Misconfigured("no client secret".into())),
        };
        let http = reqwest::ClientBuilder::new()
            // Following redirects would let a provider's answer send requests anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|err| OidcError::Misconfigured(err.to_string()))?;
        let redirect_uri = format!("{public_url}/auth/oidc/{}/callback", config.id);
        Ok(Arc::new(Self { config, secret, redirect_uri, http, metadata: Mutex::new(None) }))
    }

    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let metadata = {
            let mut cached = self.metadata.lock().await;
            match cached.as_ref() {
                Some((fetched, metadata)) if fetched.elapsed() < METADATA_TTL => metadata.clone(),
                _ => {
                    let issuer = IssuerUrl::new(self.config.issuer.clone())
                        .map_err(|err| OidcError::Misconfigured(format!("issuer: {err}")))?;
                    let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                        .await
                        .map_err(|err| OidcError::Unreachable(error_chain(&err)))?;
                    *cached = Some((Instant::now(), metadata.clone()));
                    metadata
                }
            }
        };
        let redirect = RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|err| OidcError::Misconfigured(format!("redirect URI: {err}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the URL to send the browser to, with a fresh `state`, `nonce`
    /// and PKCE challenge.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier) and checks the ID
    /// token's signature against the provider's keys, its issuer, audience, expiry and
    /// nonce.
    pub async fn finish(&self, code: &str, nonce: &str, pkce_verifier: &str) -> Result<Verified, OidcError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| OidcError::Misconfigured(err.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|err| OidcError::Refused(error_chain(&err)))?;
        let id_token =
            response.id_token().ok_or_else(|| OidcError::BadToken("no ID token came back".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|err| OidcError::BadToken(error_chain(&err)))?;
        Ok(Verified {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|email| email.as_str().trim().to_lowercase()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|name| name.get(None)).map(|name| name.as_str().to_owned()),
        })
    }
}

/// An error and its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
