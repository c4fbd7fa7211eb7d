//! Tokens and origins.
//!
//! Tokens are JWTs signed with HS256 and checked as RFC 8725 advises: the algorithm is
//! pinned, `exp`, `iss`, `aud` and `sub` are required, `nbf` is checked, and the leeway
//! is a few seconds. A token says who someone is; what they may do and see comes from
//! the session's own table, never from a claim.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use caucus_protocol::{MemberId, SessionId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::{Config, Secret};

/// The shortest signing key accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
const SECRET_FILE: &str = "jwt-secret";

/// What kind of person a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Minted by an operator with `caucus token facilitator`; may create sessions.
    Facilitator,
    /// Issued by `POST /api/join`; good for one session only.
    Member,
}

/// The claims of a Caucus token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The person: a [`MemberId`].
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Facilitator or member.
    pub kind: TokenKind,
    /// For member tokens, the one session they are good for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// The person's display name, for facilitator tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a token was refused. The text goes into the close reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token must be signed with HS256")]
    WrongAlgorithm,
    #[error("the token has expired; get a new one")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another service")]
    WrongAudience,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    #[error("the token's subject is not a valid member id")]
    BadSubject,
}

/// Why the signing key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key must be at least {MIN_SECRET_BYTES} bytes; {0} has fewer")]
    TooShort(String),
    #[error("cannot read or create the signing key at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Issues and checks tokens.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl_secs: u64,
    /// The longest display name, in characters: a facilitator's name is one.
    name_chars: usize,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// A facilitator's member id: a digest of their exact name, so that different names
/// are different people and the id, which appears in logs, reveals no name.
pub fn facilitator_id(name: &str) -> MemberId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.trim().as_bytes());
    let hex: String = digest.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
    MemberId::new(format!("f-{hex}")).expect("hex ids are valid")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

impl Auth {
    /// Builds from the configured key: `CAUCUS_JWT_SECRET`, else `jwt_secret_file`, else
    /// `jwt-secret` in the data folder, generated on first start.
    pub fn from_config(config: &Config) -> Result<Self, KeyError> {
        let secret = match (&config.jwt_secret, &config.jwt_secret_file) {
            (Some(secret), _) => check_length(secret.clone(), "CAUCUS_JWT_SECRET")?,
            (None, Some(path)) => read_secret(path)?,
            (None, None) => load_or_create_secret(&config.data_dir)?,
        };
        Ok(Self::new(&secret, config))
    }

    /// Builds from a key already checked for length.
    pub fn new(secret: &Secret, config: &Config) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.token_issuer]);
        validation.set_audience(&[&config.token_issuer]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = config.token_leeway_secs;
        Self {
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: DecodingKey::from_secret(&secret.0),
            validation,
            issuer: config.token_issuer.clone(),
            ttl_secs: config.token_ttl_secs,
            name_chars: config.limits.text.name_chars,
        }
    }

    /// A facilitator token for `name`. The member id is derived from the name, so the
    /// same name always means the same facilitator.
    pub fn mint_facilitator(&self, name: &str) -> Result<String, String> {
        let name = name.trim();
        if !name.chars().any(char::is_alphanumeric) {
            return Err("a facilitator name needs at least one letter or digit".into());
        }
        if name.chars().count() > self.name_chars {
            return Err(format!("a facilitator name may be at most {} characters", self.name_chars));
        }
        let id = facilitator_id(name);
        Ok(self.mint(id.as_str(), TokenKind::Facilitator, None, Some(name.to_owned())))
    }

    /// A member token for one session.
    pub fn mint_member(&self, session: &SessionId, member: &MemberId) -> String {
        self.mint(member.as_str(), TokenKind::Member, Some(session.clone()), None)
    }

    fn mint(&self, sub: &str, kind: TokenKind, sid: Option<SessionId>, name: Option<String>) -> String {
        let now = unix_now();
        let claims = Claims {
            sub: sub.to_owned(),
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
            exp: now + self.ttl_secs,
            nbf: now,
            iat: now,
            kind,
            sid,
            name,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims. Tests use it to build expired or odd tokens.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks a token and returns its claims and the member id it names.
    pub fn verify(&self, token: &str) -> Result<(Claims, MemberId), TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(
            |err| match err.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
                _ => TokenError::Malformed,
            },
        )?;
        let member = MemberId::new(data.claims.sub.clone()).map_err(|_| TokenError::BadSubject)?;
        Ok((data.claims, member))
    }
}

fn check_length(secret: Secret, source: &str) -> Result<Secret, KeyError> {
    if secret.0.len() < MIN_SECRET_BYTES {
        return Err(KeyError::TooShort(source.to_owned()));
    }
    Ok(secret)
}

fn read_secret(path: &Path) -> Result<Secret, KeyError> {
    let bytes =
        std::fs::read(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    // Surrounding whitespace (a trailing newline) is trimmed, and nothing else changes:
    // a binary key is used byte for byte.
    let trimmed = bytes.trim_ascii().to_vec();
    check_length(Secret(trimmed), &path.display().to_string())
}

fn load_or_create_secret(data_dir: &Path) -> Result<Secret, KeyError> {
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        return read_secret(&path);
    }
    let io_error = |source| KeyError::Io { path: path.display().to_string(), source };
    crate::config::create_data_dir(data_dir).map_err(io_error)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private(&path, hex.as_bytes()).map_err(io_error)?;
    Ok(Secret(hex.into_bytes()))
}

/// Writes a file that only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Whether a WebSocket upgrade from `origin` is allowed. Browsers always send `Origin`;
/// a request without one comes from a program, which a token check still guards.
/// The server's own origin (the request's `Host`) is always allowed.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|entry| entry.trim_end_matches('/') == origin) {
        return true;
    }
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(&Secret(vec![7; 32]), &Config::default())
    }

    #[test]
    fn a_minted_token_verifies_and_names_its_member() {
        let auth = auth();
        let token = auth.mint_facilitator("Ada Lovelace").unwrap();
        let (claims, member) = auth.verify(&token).unwrap();
        assert_eq!(member, facilitator_id("Ada Lovelace"));
        assert_ne!(facilitator_id("José"), facilitator_id("Jos"), "different names are different people");
        assert!(!member.as_str().contains("ada"), "the id reveals no name");
        assert_eq!(claims.kind, TokenKind::Facilitator);
        assert_eq!(claims.name.as_deref(), Some("Ada Lovelace"));
        assert!(auth.mint_facilitator("  !! ").is_err());
    }

    #[test]
    fn tokens_signed_with_another_key_are_refused() {
        let other = Auth::new(&Secret(vec![8; 32]), &Config::default());
        let token = other.mint_facilitator("eve").unwrap();
        assert_eq!(auth().verify(&token).unwrap_err(), TokenError::BadSignature);
        assert_eq!(auth().verify("not.a.token").unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn origins_are_checked_against_the_host_and_the_list() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(None, Some("h:1"), &allowed));
        assert!(origin_allowed(Some("http://h:1"), Some("h:1"), &allowed));
        assert!(origin_allowed(Some("https://app.example"), Some("h:1"), &allowed));
        assert!(!origin_allowed(Some("https://evil.example"), Some("h:1"), &allowed));
        assert!(!origin_allowed(Some("null"), Some("h:1"), &allowed));
    }
}
