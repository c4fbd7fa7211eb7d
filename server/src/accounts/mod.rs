//! Accounts and sign-in: who a person is across sessions, without an operator.
//!
//! - [`rules`]: the pure rules (emails, return paths, which account an identity is,
//!   roles).
//! - [`db`]: the tables, in the store's SQLite file.
//! - [`oidc`]: sign-in with an organisation's OpenID Connect provider.
//! - [`email`]: single-use sign-in links sent over SMTP.
//! - [`live`]: what closes live connections when a sign-in or an account's roles end,
//!   or a guest's seat is kept in an account.
//!
//! A sign-in is a row keyed by the SHA-256 of a random cookie value, so the database
//! never holds a value that signs anyone in. [`Accounts`] also keeps, in memory, a
//! cancellation token for each live sign-in, each account's roles and each guest seat
//! entered with its token: signing out, deleting the account, changing its roles or
//! keeping a guest's seat in an account cancels them, and the connections that watch
//! them close at once.

pub mod db;
pub mod email;
pub mod live;
pub mod oidc;
pub mod rules;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use caucus_protocol::api::{
    AccountExport, ExportedAcceptance, ExportedAccount, ExportedIdentity, ExportedSeat, ExportedSignIn,
    FacilitatorGrants, RoleGrant,
};
use caucus_protocol::{MemberId, SessionId};
use dashmap::DashMap;
use rand::RngCore;
use sha2::Digest;
use tracing::{info, warn};

pub use self::db::{Account, AccountDb};
use self::email::{MailError, Mailer};
use self::live::LiveTokens;
pub use self::live::Watched;
use self::oidc::{OidcError, Provider};
pub use self::rules::Roles;
use crate::config::Config;
use crate::store::StoreError;

/// The issuer recorded for identities proven by an emailed link.
const EMAIL_ISSUER: &str = "email";
/// How long an OpenID Connect sign-in may take at the provider.
const FLOW_SECS: i64 = 10 * 60;
/// Sign-ins in progress at once; more are refused rather than held.
const MAX_FLOWS: usize = 10_000;
/// Sign-in mails the server sends in a minute, to all addresses together.
const MAIL_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(60).expect("not zero");

/// Why an accounts operation failed. The text is for the person.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("you are not signed in")]
    NotSignedIn,
    #[error("{0}")]
    Forbidden(String),
    #[error("this sign-in link has expired or was already used; ask for a new one")]
    InvalidLink,
    #[error(
        "this server cannot send email; ask its operator for a sign-in link (`caucus signin-link EMAIL`)"
    )]
    EmailUnavailable,
    #[error("too many sign-in links were asked for just now; wait a while and try again")]
    TooManyLinks,
    #[error(
        "too many sign-in links were asked for from your network just now; wait a few minutes and try again"
    )]
    TooManyLinksFromHere,
    #[error("{0}")]
    Invalid(String),
    #[error("there is no sign-in provider `{0}` here")]
    UnknownProvider(String),
    #[error("this sign-in was not started in this browser, or took too long; start again")]
    UnknownFlow,
    #[error("too many sign-ins are in progress; try again in a minute")]
    TooManyFlows,
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("the server cannot store this just now; nothing was saved, so retry")]
    Store(#[from] StoreError),
}

/// A browser that is signed in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Its account.
    pub account: Account,
    /// The SHA-256 of the cookie's value: the sign-in's key.
    pub signin: String,
    /// The CSRF token state-changing requests must carry.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// What the account may do.
    pub roles: Roles,
}

impl SignedIn {
    /// The account's member id in sessions it creates or joins itself.
    pub fn member(&self) -> MemberId {
        MemberId::new(self.account.id.clone()).expect("account ids are valid member ids")
    }
}

/// A new sign-in: the cookie value to set, once.
#[derive(Debug)]
pub struct NewSignIn {
    /// The cookie's value. Only its hash is kept.
    pub cookie: String,
    /// Where the browser goes next.
    pub return_to: String,
    /// The account.
    pub account: Account,
}

/// What a connection watches to close when its sign-in ends, its roles change, or the
/// guest seat it entered with a token is kept in an account.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Cancelled when the sign-in ends.
    pub signin: Watched,
    /// Cancelled when the account's roles change.
    pub roles: Watched,
    /// Cancelled when the guest seat entered with a member token is kept in an account.
    pub guest_seat: Watched,
}

/// An OpenID Connect sign-in between the redirect and the callback.
#[derive(Debug)]
struct Flow {
    provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    started: i64,
}

/// Accounts, sign-in, and the live sign-ins that connections watch.
#[derive(Debug)]
pub struct Accounts {
    db: AccountDb,
    settings: crate::config::AccountsConfig,
    name_chars: usize,
    public_url: String,
    providers: HashMap<String, Arc<Provider>>,
    mailer: Option<Mailer>,
    flows: DashMap<String, Flow>,
    links_asked: DashMap<String, Vec<i64>>,
    /// Sign-in links asked for from each network address: without it, one client asking
    /// for links to many addresses could use up `mail_rate` and so keep everyone else
    /// from signing in by email.
    links_by_client: governor::DefaultKeyedRateLimiter<IpAddr>,
    /// Reverse proxies, whose requests all come from their own address: exempt from
    /// `links_by_client`, like the gate's per-address cap.
    trusted_proxies: crate::config::TrustedProxies,
    /// All sign-in mail, whoever it is for: a bound on what the server can be made to send.
    mail_rate: governor::DefaultDirectRateLimiter,
    /// Live sign-ins by their key, tagged with their account.
    live_signins: LiveTokens<String, String>,
    /// Live accounts' roles, by account.
    live_roles: LiveTokens<String>,
    /// Guest seats entered with their member token, by session and member: cancelled
    /// when the seat is kept in an account, which retires the token.
    live_guest_seats: LiveTokens<(SessionId, MemberId)>,
}

/// Where a request came from: the connection's peer, and what a proxy in front said in
/// `X-Forwarded-For` (every such header's entries, joined with commas). The second is
/// read only when the peer is one of `trusted_proxies`.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// The address the connection came from.
    pub peer: IpAddr,
    /// The `X-Forwarded-For` entries, oldest first.
    pub forwarded_for: &'a str,
}

/// 32 random bytes as hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The SHA-256 of a secret, as hex: what the database keeps instead of the secret.
pub fn digest(secret: &str) -> String {
    hex(&sha2::Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (sha2::Sha256::digest(a.as_bytes()), sha2::Sha256::digest(b.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// Seconds since the Unix epoch, as the database keeps them.
pub fn now() -> i64 {
    i64::try_from(crate::auth::unix_now()).unwrap_or(i64::MAX)
}

fn new_account_id() -> String {
    format!("a-{}", &random_secret()[..16])
}

impl Accounts {
    /// Accounts over `db`, with the providers and mailer the configuration names.
    pub fn new(config: &Config, db: AccountDb, public_url: &str) -> Result<Self, AccountError> {
        let mut providers = HashMap::new();
        for provider in &config.oidc {
            providers.insert(provider.id.clone(), Provider::new(provider.clone(), public_url)?);
        }
        let mailer = match &config.accounts.smtp_url {
            Some(url) => Some(Mailer::new(&url.0, &config.accounts.smtp_from)?),
            None => None,
        };
        Ok(Self {
            db,
            settings: config.accounts.clone(),
            name_chars: config.limits.text.name_chars,
            public_url: public_url.to_owned(),
            providers,
            mailer,
            flows: DashMap::new(),
            links_asked: DashMap::new(),
            links_by_client: governor::RateLimiter::keyed(governor::Quota::per_hour(
                NonZeroU32::new(config.accounts.email_links_per_client_per_hour).unwrap_or(NonZeroU32::MIN),
            )),
            trusted_proxies: config.trusted_proxies.clone(),
            mail_rate: governor::RateLimiter::direct(governor::Quota::per_minute(MAIL_PER_MINUTE)),
            live_signins: LiveTokens::default(),
            live_roles: LiveTokens::default(),
            live_guest_seats: LiveTokens::default(),
        })
    }

    /// The tables.
    pub fn db(&self) -> &AccountDb {
        &self.db
    }

    /// Whether cookies must be `Secure`: the server is reached over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// How long a sign-in lasts, in seconds.
    pub fn signin_secs(&self) -> i64 {
        i64::from(self.settings.signin_days) * 24 * 60 * 60
    }

    /// The providers people can sign in with: (id, button label), sorted by id.
    pub fn providers(&self) -> Vec<(String, String)> {
        let mut listed: Vec<_> = self
            .providers
            .values()
            .map(|provider| (provider.config.id.clone(), provider.config.name.clone()))
            .collect();
        listed.sort();
        listed
    }

    /// Whether email sign-in links can be sent.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    // ----- OpenID Connect -------------------------------------------------------------

    /// Starts a sign-in with `provider`: returns the flow's key (for a cookie that binds
    /// the sign-in to this browser) and the URL to send the browser to.
    pub async fn start_oidc(
        &self,
        provider: &str,
        return_to: Option<&str>,
    ) -> Result<(String, String), AccountError> {
        let found =
            self.providers.get(provider).ok_or_else(|| AccountError::UnknownProvider(provider.to_owned()))?;
        let now = now();
        self.flows.retain(|_, flow| now.saturating_sub(flow.started) < FLOW_SECS);
        if self.flows.len() >= MAX_FLOWS {
            return Err(AccountError::TooManyFlows);
        }
        let started = found.start().await?;
        let key = random_secret();
        self.flows.insert(
            key.clone(),
            Flow {
                provider: provider.to_owned(),
                state: started.state,
                nonce: started.nonce,
                pkce_verifier: started.pkce_verifier,
                return_to: rules::safe_return_to(return_to),
                started: now,
            },
        );
        Ok((key, started.authorize_url))
    }

    /// Finishes a sign-in at the callback. The flow is used up whatever happens: a
    /// second try with the same `state` finds nothing.
    pub async fn finish_oidc(
        &self,
        provider: &str,
        flow_key: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<NewSignIn, AccountError> {
        let (_, flow) = flow_key.and_then(|key| self.flows.remove(key)).ok_or(AccountError::UnknownFlow)?;
        if flow.provider != provider
            || !same_secret(&flow.state, state)
            || now().saturating_sub(flow.started) >= FLOW_SECS
        {
            return Err(AccountError::UnknownFlow);
        }
        let found =
            self.providers.get(provider).ok_or_else(|| AccountError::UnknownProvider(provider.to_owned()))?;
        let verified = found.finish(code, &flow.nonce, &flow.pkce_verifier).await?;
        let identity = db::Identity {
            issuer: verified.issuer.clone(),
            subject: verified.subject.clone(),
            email: verified.email.clone(),
            created_at: now(),
        };
        let name = rules::initial_name(verified.name.as_deref(), verified.email.as_deref(), self.name_chars);
        let email_verified = verified.email_verified || found.config.trust_email;
        let account = self.account_for_identity(identity, email_verified, name).await?;
        info!(account = %account.id, provider, "signed in with OpenID Connect");
        self.sign_in(account, flow.return_to).await
    }

    /// The account an identity signs in to, made or linked as [`rules::choose_account`]
    /// decides, in one transaction.
    async fn account_for_identity(
        &self,
        identity: db::Identity,
        email_verified: bool,
        name: String,
    ) -> Result<Account, AccountError> {
        let account = self
            .db
            .call(move |connection| {
                let transaction = connection.transaction()?;
                let by_identity = db::account_by_identity(&transaction, &identity.issuer, &identity.subject)?;
                let by_email = match &identity.email {
                    Some(email) => db::account_by_email(&transaction, email)?.map(|account| account.id),
                    None => None,
                };
                let id = match rules::choose_account(by_identity, by_email, email_verified) {
                    rules::AccountChoice::Known(id) | rules::AccountChoice::LinkByEmail(id) => id,
                    rules::AccountChoice::New => {
                        let email = identity.email.as_deref().filter(|_| email_verified);
                        let taken = match email {
                            Some(email) => db::account_by_email(&transaction, email)?.is_some(),
                            None => false,
                        };
                        let id = new_account_id();
                        db::create_account(
                            &transaction,
                            &id,
                            &name,
                            email.filter(|_| !taken),
                            identity.created_at,
                        )?;
                        id
                    }
                };
                db::add_identity(&transaction, &identity, &id)?;
                if let (Some(email), true) = (&identity.email, email_verified) {
                    db::adopt_email(&transaction, &id, email)?;
                }
                let account = db::account(&transaction, &id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                transaction.commit()?;
                Ok(account)
            })
            .await?;
        Ok(account)
    }

    // ----- Email links ----------------------------------------------------------------

    /// Makes a single-use sign-in link for `email`, keeping only its hash.
    pub async fn mint_email_link(
        &self,
        email: &str,
        return_to: Option<&str>,
    ) -> Result<String, AccountError> {
        let email = rules::normalize_email(email).map_err(|why| AccountError::Invalid(why.into()))?;
        let token = random_secret();
        let (hash, return_to) = (digest(&token), rules::safe_return_to(return_to));
        let expires_at = now() + i64::try_from(self.settings.email_link_secs).unwrap_or(i64::MAX / 2);
        self.db
            .call(move |connection| db::put_email_link(connection, &hash, &email, &return_to, expires_at))
            .await?;
        Ok(format!("{}/#signin={token}", self.public_url))
    }

    /// Emails a sign-in link to `email`, asked for from `client`. The same answer whether
    /// or not an account has that address, so that nobody can learn who has one.
    pub async fn request_email_link(
        &self,
        email: &str,
        return_to: Option<&str>,
        asker: Asker<'_>,
    ) -> Result<(), AccountError> {
        let mailer = self.mailer.clone().ok_or(AccountError::EmailUnavailable)?;
        let normalized = rules::normalize_email(email).map_err(|why| AccountError::Invalid(why.into()))?;
        self.check_client(asker)?;
        let now = now();
        if self.links_asked.len() > 1_000 {
            self.links_asked.retain(|_, asked| asked.iter().any(|at| now.saturating_sub(*at) < 3600));
        }
        {
            let mut asked = self.links_asked.entry(normalized.clone()).or_default();
            asked.retain(|at| now.saturating_sub(*at) < 3600);
            if asked.len() >= self.settings.email_links_per_hour as usize {
                return Err(AccountError::TooManyLinks);
            }
            if self.mail_rate.check().is_err() {
                return Err(AccountError::TooManyLinks);
            }
            asked.push(now);
        }
        let link = self.mint_email_link(&normalized, return_to).await?;
        mailer.send_link(&normalized, &link, self.settings.email_link_secs.div_ceil(60)).await.map_err(
            |err| {
                warn!(error = %err, "a sign-in link could not be sent");
                err
            },
        )?;
        Ok(())
    }

    /// Counts a link asked for by `asker` against its network's allowance.
    fn check_client(&self, asker: Asker<'_>) -> Result<(), AccountError> {
        let is_proxy = |address| self.trusted_proxies.contains(address);
        let Some(client) = rules::client_of(asker.peer, asker.forwarded_for, is_proxy) else {
            return Ok(());
        };
        if self.links_by_client.len() > 10_000 {
            self.links_by_client.retain_recent();
        }
        self.links_by_client
            .check_key(&rules::network_of(client))
            .map_err(|_| AccountError::TooManyLinksFromHere)
    }

    /// Signs in with an emailed link's token. The link is used up either way.
    pub async fn verify_email_link(&self, token: &str) -> Result<NewSignIn, AccountError> {
        let hash = digest(token.trim());
        let (email, return_to) = self
            .db
            .call(move |connection| db::take_email_link(connection, &hash, now()))
            .await?
            .ok_or(AccountError::InvalidLink)?;
        let identity = db::Identity {
            issuer: EMAIL_ISSUER.into(),
            subject: email.clone(),
            email: Some(email.clone()),
            created_at: now(),
        };
        let name = rules::initial_name(None, Some(&email), self.name_chars);
        let account = self.account_for_identity(identity, true, name).await?;
        info!(account = %account.id, "signed in with an email link");
        self.sign_in(account, return_to).await
    }

    // ----- Sign-ins -------------------------------------------------------------------

    /// A new sign-in for `account`, always with a fresh cookie value.
    async fn sign_in(&self, account: Account, return_to: String) -> Result<NewSignIn, AccountError> {
        let cookie = random_secret();
        let (hash, csrf, id) = (digest(&cookie), random_secret(), account.id.clone());
        let now = now();
        let expires_at = now + self.signin_secs();
        self.db
            .call(move |connection| {
                db::delete_expired_signins(connection, now)?;
                db::create_signin(connection, &hash, &id, &csrf, now, expires_at)
            })
            .await?;
        Ok(NewSignIn { cookie, return_to, account })
    }

    /// The sign-in a cookie's value belongs to, if it is still valid.
    pub async fn signed_in(&self, cookie: &str) -> Result<Option<SignedIn>, AccountError> {
        let hash = digest(cookie);
        let Some(row) = self.db.call(move |connection| db::signin(connection, &hash, now())).await? else {
            return Ok(None);
        };
        let roles = self.roles_of(&row.account).await?;
        Ok(Some(SignedIn {
            account: row.account,
            signin: row.id_hash,
            csrf: row.csrf,
            expires_at: row.expires_at,
            roles,
        }))
    }

    /// What `account` may do.
    pub async fn roles_of(&self, account: &Account) -> Result<Roles, AccountError> {
        let (id, email) = (account.id.clone(), account.email.clone());
        let (subjects, granted) = self
            .db
            .call(move |connection| {
                let subjects =
                    db::identities(connection, &id)?.into_iter().map(|identity| identity.subject).collect();
                let granted = match &email {
                    Some(email) => db::granted_roles(connection, email)?,
                    None => Vec::new(),
                };
                Ok::<(Vec<String>, Vec<String>), rusqlite::Error>((subjects, granted))
            })
            .await?;
        Ok(rules::roles(account.email.as_deref(), &subjects, &self.settings.admins, &granted))
    }

    /// What a connection of this sign-in watches.
    pub fn watch(&self, signed_in: &SignedIn) -> Watch {
        let signin = self.live_signins.watch(signed_in.signin.clone(), || signed_in.account.id.clone());
        let roles = self.live_roles.watch(signed_in.account.id.clone(), || ());
        Watch { signin, roles, guest_seat: Watched::default() }
    }

    /// What a connection entered with a guest's member token watches: its seat being
    /// kept in an account.
    pub fn watch_guest_seat(&self, session: &SessionId, member: &MemberId) -> Watch {
        let guest_seat = self.live_guest_seats.watch((session.clone(), member.clone()), || ());
        Watch { signin: Watched::default(), roles: Watched::default(), guest_seat }
    }

    /// Whether a guest's seat is kept in an account, which retires its member token:
    /// from then on the account's sign-in opens the seat, and the token opens nothing.
    pub async fn guest_token_retired(
        &self,
        session: &SessionId,
        member: &MemberId,
    ) -> Result<bool, AccountError> {
        let (session, member) = (session.to_string(), member.to_string());
        Ok(self.db.call(move |connection| db::guest_seat_retired(connection, &session, &member)).await?)
    }

    /// Whether a sign-in still stands. A connection asks after it starts watching, so
    /// that a sign-out between its upgrade and its `hello` is not missed.
    pub async fn still_signed_in(&self, signed_in: &SignedIn) -> Result<bool, AccountError> {
        let hash = signed_in.signin.clone();
        Ok(self.db.call(move |connection| db::signin(connection, &hash, now())).await?.is_some())
    }

    /// Ends one sign-in: its connections close.
    pub async fn sign_out(&self, signed_in: &SignedIn) -> Result<(), AccountError> {
        let hash = signed_in.signin.clone();
        self.db.call(move |connection| db::delete_signin(connection, &hash)).await?;
        self.live_signins.cancel(&signed_in.signin);
        info!(account = %signed_in.account.id, "signed out");
        Ok(())
    }

    /// Ends every sign-in of `account`: all its connections close.
    pub async fn sign_out_everywhere(&self, account: &str) -> Result<(), AccountError> {
        let id = account.to_owned();
        self.db.call(move |connection| db::delete_signins(connection, &id, now())).await?;
        self.cancel_signins(account);
        info!(account, "signed out everywhere");
        Ok(())
    }

    fn cancel_signins(&self, account: &str) {
        self.live_signins.cancel_where(|owner| owner == account);
    }

    /// Closes the connections of `account` because its roles changed.
    fn roles_changed(&self, account: &str) {
        self.live_roles.cancel(account);
    }

    // ----- The account's own data -----------------------------------------------------

    /// Renames an account.
    pub async fn rename(&self, account: &str, name: &str) -> Result<(), AccountError> {
        let name = name.trim().to_owned();
        if !name.chars().any(char::is_alphanumeric) {
            return Err(AccountError::Invalid("a name needs at least one letter or digit".into()));
        }
        if name.chars().count() > self.name_chars {
            return Err(AccountError::Invalid(format!(
                "a name may be at most {} characters",
                self.name_chars
            )));
        }
        let id = account.to_owned();
        self.db.call(move |connection| db::rename(connection, &id, &name)).await?;
        Ok(())
    }

    /// Everything Caucus keeps about an account. Seats name the session; no caucus
    /// choice is ever kept on an account, so none is here.
    pub async fn export(&self, signed_in: &SignedIn) -> Result<AccountExport, AccountError> {
        let id = signed_in.account.id.clone();
        let email = signed_in.account.email.clone();
        let (identities, signins, seats, grants, (communities, acceptances)) = self
            .db
            .call(move |connection| {
                let grants = match &email {
                    Some(email) => db::granted_roles(connection, email)?,
                    None => Vec::new(),
                };
                let practice = (
                    crate::practice::db::communities_of(connection, &id)?,
                    crate::practice::db::acceptances_of(connection, &id)?,
                );
                Ok::<_, rusqlite::Error>((
                    db::identities(connection, &id)?,
                    db::signins(connection, &id)?,
                    db::seats(connection, &id)?,
                    grants,
                    practice,
                ))
            })
            .await?;
        let account = &signed_in.account;
        Ok(AccountExport {
            account: ExportedAccount {
                created_at: account.created_at,
                email: account.email.clone(),
                id: account.id.clone(),
                name: account.name.clone(),
            },
            acceptances: acceptances
                .into_iter()
                .map(|(community, version, accepted_at)| ExportedAcceptance {
                    accepted_at,
                    community,
                    version,
                })
                .collect(),
            communities: communities
                .into_iter()
                .map(|(community, name, role)| caucus_protocol::community::CommunityEntry {
                    community,
                    name,
                    role,
                })
                .collect(),
            exported_at: now(),
            grants,
            identities: identities
                .into_iter()
                .map(|identity| ExportedIdentity {
                    created_at: identity.created_at,
                    email: identity.email,
                    issuer: identity.issuer,
                    subject: identity.subject,
                })
                .collect(),
            roles: signed_in.roles.names().into_iter().map(str::to_owned).collect(),
            seats: seats
                .into_iter()
                .map(|seat| ExportedSeat {
                    joined_at: seat.joined_at,
                    member: seat.member,
                    session: seat.session,
                })
                .collect(),
            sign_ins: signins
                .into_iter()
                .map(|(created_at, expires_at, hash)| ExportedSignIn {
                    created_at,
                    current: hash == signed_in.signin,
                    expires_at,
                })
                .collect(),
        })
    }

    /// Deletes an account: its row, identities, sign-ins, seats and grants. Its
    /// connections close. The caller then has the store rewrite the file, so that none
    /// of it stays on the disk. What the person said in sessions belongs to those
    /// sessions.
    pub async fn delete(&self, account: &str) -> Result<(), AccountError> {
        let id = account.to_owned();
        if let Err(led_alone) = self.db.call(move |connection| db::delete_account(connection, &id)).await? {
            let names = led_alone.iter().map(|name| format!("“{name}”")).collect::<Vec<_>>().join(", ");
            return Err(AccountError::Invalid(format!(
                "you are the only co-chair of {names}: make someone else co-chair there first, so that it still has someone to lead it"
            )));
        }
        self.cancel_signins(account);
        self.roles_changed(account);
        info!(account, "account deleted");
        Ok(())
    }

    // ----- Seats ----------------------------------------------------------------------

    /// The account's member id in a session, if it has a seat there.
    pub async fn seat(&self, account: &str, session: &SessionId) -> Result<Option<MemberId>, AccountError> {
        let (id, session) = (account.to_owned(), session.to_string());
        let member = self.db.call(move |connection| db::seat(connection, &id, &session)).await?;
        Ok(member.and_then(|member| MemberId::new(member).ok()))
    }

    /// Records the account's seat in a session.
    pub async fn put_seat(
        &self,
        account: &str,
        session: &SessionId,
        member: &MemberId,
    ) -> Result<(), AccountError> {
        let (id, session, member) = (account.to_owned(), session.to_string(), member.to_string());
        self.db.call(move |connection| db::put_seat(connection, &id, &session, &member, now())).await?;
        Ok(())
    }

    /// Gives a guest's seat to an account. Refused if another account already holds
    /// it, or this account already has a different seat in that session.
    pub async fn attach_seat(
        &self,
        account: &str,
        session: &SessionId,
        member: &MemberId,
    ) -> Result<(), AccountError> {
        let key = (session.clone(), member.clone());
        let (id, session, member) = (account.to_owned(), session.to_string(), member.to_string());
        let outcome = self
            .db
            .call(move |connection| {
                let holder = db::seat_holder(connection, &session, &member)?;
                let own = db::seat(connection, &id, &session)?;
                match (holder, own) {
                    (Some(holder), _) if holder != id => {
                        Ok(Err("that seat already belongs to another account"))
                    }
                    (_, Some(own)) if own != member => {
                        Ok(Err("your account already has a seat in that session"))
                    }
                    // Kept once, by an account since deleted: the token opens nothing.
                    (None, _) if db::guest_seat_retired(connection, &session, &member)? => {
                        Ok(Err("that guest seat was kept in an account that has since been deleted"))
                    }
                    _ => {
                        db::put_seat(connection, &id, &session, &member, now())?;
                        db::retire_guest_seat(connection, &session, &member).map(Ok)
                    }
                }
            })
            .await?;
        outcome.map_err(|why| AccountError::Forbidden(why.into()))?;
        // The token is retired: whoever still holds it is closed out (the account's own
        // browsers come straight back with the cookie).
        self.live_guest_seats.cancel(&key);
        Ok(())
    }

    /// The account's seats: (session, member).
    pub async fn seats(&self, account: &str) -> Result<Vec<(SessionId, MemberId)>, AccountError> {
        let id = account.to_owned();
        let seats = self.db.call(move |connection| db::seats(connection, &id)).await?;
        Ok(seats
            .into_iter()
            .filter_map(|seat| Some((SessionId::new(seat.session).ok()?, MemberId::new(seat.member).ok()?)))
            .collect())
    }

    /// The account for an address, made if there is none yet, so that a co-facilitator
    /// can be added before they first sign in.
    /// `name` is the name the new account starts with; its owner can change it.
    pub async fn account_for_email(&self, email: &str, name: Option<&str>) -> Result<Account, AccountError> {
        let email = rules::normalize_email(email).map_err(|why| AccountError::Invalid(why.into()))?;
        let name = rules::initial_name(name, Some(&email), self.name_chars);
        let account = self
            .db
            .call(move |connection| {
                if let Some(account) = db::account_by_email(connection, &email)? {
                    return Ok(account);
                }
                db::create_account(connection, &new_account_id(), &name, Some(&email), now())
            })
            .await?;
        Ok(account)
    }

    // ----- Who may facilitate ---------------------------------------------------------

    /// The addresses that may facilitate, and the admins.
    pub async fn facilitator_grants(&self) -> Result<FacilitatorGrants, AccountError> {
        let (facilitators, admins) = self
            .db
            .call(|connection| {
                Ok::<_, rusqlite::Error>((
                    db::grants(connection, "facilitator")?,
                    db::grants(connection, "admin")?,
                ))
            })
            .await?;
        let mut admin_list = self.settings.admins.clone();
        admin_list.extend(admins.into_iter().map(|grant| grant.email));
        let facilitators = facilitators
            .into_iter()
            .map(|grant| RoleGrant {
                email: grant.email,
                granted_at: grant.granted_at,
                granted_by: grant.granted_by,
                role: grant.role,
            })
            .collect();
        Ok(FacilitatorGrants { admins: admin_list, facilitators })
    }

    /// Grants or takes back a role for an address. The account's live connections
    /// close with "role changed" so that they come back with what they may now do.
    pub async fn set_role(
        &self,
        email: &str,
        role: &'static str,
        on: bool,
        by: Option<&str>,
    ) -> Result<(), AccountError> {
        let email = rules::normalize_email(email).map_err(|why| AccountError::Invalid(why.into()))?;
        let by = by.map(str::to_owned);
        let lookup = email.clone();
        let account = self
            .db
            .call(move |connection| {
                if on {
                    db::grant(connection, &email, role, by.as_deref(), now())?;
                } else {
                    db::revoke(connection, &email, role)?;
                }
                db::account_by_email(connection, &lookup)
            })
            .await?;
        if let Some(account) = account {
            self.roles_changed(&account.id);
        }
        Ok(())
    }
}
