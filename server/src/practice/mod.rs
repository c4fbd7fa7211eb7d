//! The practice: a standing community with co-chairs, a secretary and members, terms
//! of reference in versions that people accept before they enter a session, and a
//! series of sessions that each start with the community's labels and settings.
//!
//! - [`rules`]: the pure rules (who leads, who must accept, what changed, order).
//! - [`db`]: the tables, beside the accounts tables in the store's file.
//! - [`calendar`]: the series as an iCalendar file.
//! - [`archive`]: the archive's search and its Markdown export.
//!
//! Nothing here ever records a caucus: a community knows who its people are and which
//! sessions it held, never who sat where.

pub mod archive;
pub mod calendar;
pub mod db;
pub mod rules;

use caucus_protocol::community::{
    Action, CommunityEntry, CommunityInvite, CommunityPerson, CommunityRole, RecordAction, TermsAcceptance,
    TermsStatus,
};
use caucus_protocol::{CaucusLabels, Settings};

use crate::accounts::{AccountDb, AccountError, now};

/// The longest action, in characters.
const ACTION_CHARS: usize = 2000;
/// The longest owner's name on an action, in characters.
const OWNER_CHARS: usize = 80;

/// Why a practice operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    #[error("there is no such community, or you are not in it")]
    NotInCommunity,
    #[error("only the community's co-chairs can do that")]
    NotCoChair,
    #[error("the community's invite code is unknown")]
    NoSuchInvite,
    #[error("accept the community's terms of reference (version {0}) before you enter its sessions")]
    TermsRequired(u32),
    #[error("version {given} is not the current terms of reference; the current one is {current}")]
    NotCurrentTerms { given: u32, current: u32 },
    #[error("that session is not one of this community's")]
    NotInSeries,
    #[error("only the community's secretary and co-chairs can do that")]
    NotRecorder,
    #[error("there is no such open action")]
    NoSuchAction,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<crate::store::StoreError> for PracticeError {
    fn from(err: crate::store::StoreError) -> Self {
        PracticeError::Account(err.into())
    }
}

/// A community as the server needs it to start sessions.
#[derive(Debug, Clone)]
pub struct Community {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its caucus labels.
    pub labels: CaucusLabels,
    /// Its default settings.
    pub settings: Settings,
    /// Its invite code.
    pub invite_code: String,
}

impl TryFrom<db::CommunityRow> for Community {
    type Error = PracticeError;

    fn try_from(row: db::CommunityRow) -> Result<Self, Self::Error> {
        let bad =
            |err: serde_json::Error| PracticeError::Invalid(format!("a stored community is damaged: {err}"));
        Ok(Community {
            labels: serde_json::from_str(&row.labels).map_err(bad)?,
            settings: serde_json::from_str(&row.settings).map_err(bad)?,
            id: row.id,
            name: row.name,
            invite_code: row.invite_code,
        })
    }
}

/// Communities, their people, terms and series, over the accounts' connection.
#[derive(Debug, Clone)]
pub struct Practice {
    db: AccountDb,
    public_url: String,
}

fn random_code(length: usize) -> String {
    crate::accounts::random_secret()[..length].to_owned()
}

impl Practice {
    /// The practice over the accounts' database.
    pub fn new(db: AccountDb, public_url: &str) -> Self {
        Self { db, public_url: public_url.to_owned() }
    }

    /// The link that joins a community.
    pub fn invite(&self, community: &Community) -> CommunityInvite {
        CommunityInvite {
            community: community.id.clone(),
            invite_code: community.invite_code.clone(),
            invite_url: format!("{}/#community={}", self.public_url, community.invite_code),
        }
    }

    /// Makes a community with `founder` as its first co-chair, and its first terms.
    pub async fn create(
        &self,
        founder: &str,
        name: String,
        labels: CaucusLabels,
        settings: Settings,
        terms: Option<String>,
    ) -> Result<Community, PracticeError> {
        let community = Community {
            id: format!("c-{}", random_code(12)),
            name,
            labels,
            settings,
            invite_code: random_code(16),
        };
        let row = db::CommunityRow {
            id: community.id.clone(),
            name: community.name.clone(),
            labels: serde_json::to_string(&community.labels).expect("labels serialize"),
            settings: serde_json::to_string(&community.settings).expect("settings serialize"),
            invite_code: community.invite_code.clone(),
        };
        let founder = founder.to_owned();
        self.db
            .call(move |connection| {
                let transaction = connection.transaction()?;
                let now = now();
                db::create_community(&transaction, &row, now)?;
                db::put_person(&transaction, &row.id, &founder, CommunityRole::CoChair, now)?;
                if let Some(text) = terms.filter(|text| !text.trim().is_empty()) {
                    transaction.execute(
                        "INSERT INTO terms (community, version, text, published_at, published_by) VALUES (?1, 1, ?2, ?3, ?4)",
                        rusqlite::params![row.id, text, now, founder],
                    )?;
                }
                transaction.commit()
            })
            .await?;
        Ok(community)
    }

    /// The community and `account`'s part in it; refused if they are not in it.
    pub async fn membership(
        &self,
        id: &str,
        account: &str,
    ) -> Result<(Community, CommunityRole), PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        let (row, role) = self
            .db
            .call(move |connection| {
                Ok((db::community(connection, &id)?, db::role(connection, &id, &account)?))
            })
            .await?;
        match (row, role) {
            (Some(row), Some(role)) => Ok((row.try_into()?, role)),
            _ => Err(PracticeError::NotInCommunity),
        }
    }

    /// Like [`Practice::membership`], for co-chairs only.
    pub async fn leading(&self, id: &str, account: &str) -> Result<Community, PracticeError> {
        let (community, role) = self.membership(id, account).await?;
        if rules::may_lead(role) { Ok(community) } else { Err(PracticeError::NotCoChair) }
    }

    /// The communities `account` is in.
    pub async fn communities_of(&self, account: &str) -> Result<Vec<CommunityEntry>, PracticeError> {
        let account = account.to_owned();
        let rows = self.db.call(move |connection| db::communities_of(connection, &account)).await?;
        Ok(rows.into_iter().map(|(community, name, role)| CommunityEntry { community, name, role }).collect())
    }

    /// Puts `account` in the community with `role`, or changes their part; with no
    /// role, a newcomer is a member and someone already in it keeps their part. The
    /// last co-chair cannot be made anything else: a community needs someone to lead it.
    pub async fn put_person(
        &self,
        id: &str,
        account: &str,
        role: Option<CommunityRole>,
    ) -> Result<CommunityRole, PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        let outcome = self
            .db
            .call(move |connection| {
                let transaction = connection.transaction()?;
                let current = db::role(&transaction, &id, &account)?;
                let role = role.or(current).unwrap_or(CommunityRole::Member);
                let co_chairs = db::people(&transaction, &id)?
                    .iter()
                    .filter(|(_, _, role)| *role == CommunityRole::CoChair)
                    .count();
                if current == Some(CommunityRole::CoChair) && role != CommunityRole::CoChair && co_chairs <= 1
                {
                    return Ok(None);
                }
                db::put_person(&transaction, &id, &account, role, now())?;
                transaction.commit()?;
                Ok(Some(role))
            })
            .await?;
        outcome.ok_or_else(|| {
            PracticeError::Invalid("that is the only co-chair: make someone else co-chair first".into())
        })
    }

    /// A signed-in person joins by the community's invite code, as a member. Someone
    /// already in it keeps their part.
    pub async fn join(&self, code: &str, account: &str) -> Result<Community, PracticeError> {
        let (code, account) = (code.trim().to_owned(), account.to_owned());
        let row = self
            .db
            .call(move |connection| {
                let Some(row) = db::community_by_invite(connection, &code)? else { return Ok(None) };
                if db::role(connection, &row.id, &account)?.is_none() {
                    db::put_person(connection, &row.id, &account, CommunityRole::Member, now())?;
                }
                Ok(Some(row))
            })
            .await?
            .ok_or(PracticeError::NoSuchInvite)?;
        row.try_into()
    }

    /// Someone leaves. The last co-chair cannot: a community needs someone to lead it.
    /// Counting and leaving are one transaction, so two co-chairs leaving at once
    /// cannot leave nobody.
    pub async fn leave(&self, id: &str, account: &str) -> Result<(), PracticeError> {
        self.membership(id, account).await?;
        let (id, account) = (id.to_owned(), account.to_owned());
        let left = self
            .db
            .call(move |connection| {
                let transaction = connection.transaction()?;
                let people = db::people(&transaction, &id)?;
                let co_chairs = people.iter().filter(|(_, _, role)| *role == CommunityRole::CoChair).count();
                let leaving_co_chair =
                    people.iter().any(|(who, _, role)| *who == account && *role == CommunityRole::CoChair);
                if leaving_co_chair && co_chairs <= 1 {
                    return Ok(false);
                }
                db::remove_person(&transaction, &id, &account)?;
                transaction.commit()?;
                Ok(true)
            })
            .await?;
        if left {
            Ok(())
        } else {
            Err(PracticeError::Invalid("you are its only co-chair: make someone else co-chair first".into()))
        }
    }

    /// The community's people.
    pub async fn people(&self, id: &str) -> Result<Vec<CommunityPerson>, PracticeError> {
        let id = id.to_owned();
        let rows = self.db.call(move |connection| db::people(connection, &id)).await?;
        Ok(rows.into_iter().map(|(account, name, role)| CommunityPerson { account, name, role }).collect())
    }

    /// The terms as `account` stands with them: the current version, the one they
    /// accepted, and what changed since.
    pub async fn terms_for(&self, id: &str, account: &str) -> Result<Option<TermsStatus>, PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        let found = self
            .db
            .call(move |connection| {
                let Some((version, text, published_at)) = db::current_terms(connection, &id)? else {
                    return Ok(None);
                };
                let accepted = db::accepted_version(connection, &id, &account)?;
                let before = match accepted {
                    Some(accepted) if accepted != version => db::terms_text(connection, &id, accepted)?,
                    _ => None,
                };
                Ok(Some((version, text, published_at, accepted, before)))
            })
            .await?;
        Ok(found.map(|(version, text, published_at, accepted, before)| TermsStatus {
            changes: rules::changes(before.as_deref(), &text, accepted.unwrap_or(0), version),
            version,
            text,
            published_at,
            accepted,
        }))
    }

    /// Who has accepted the current terms, by name.
    pub async fn acceptance(&self, id: &str) -> Result<Option<TermsAcceptance>, PracticeError> {
        let id = id.to_owned();
        let found = self
            .db
            .call(move |connection| {
                let Some((version, _, _)) = db::current_terms(connection, &id)? else { return Ok(None) };
                let mut accepted = Vec::new();
                let mut pending = Vec::new();
                for (account, name, _) in db::people(connection, &id)? {
                    if db::accepted_version(connection, &id, &account)? == Some(version) {
                        accepted.push(name);
                    } else {
                        pending.push(name);
                    }
                }
                Ok(Some(TermsAcceptance { version, accepted, pending }))
            })
            .await?;
        Ok(found)
    }

    /// Co-chairs publish a new version of the terms; everyone accepts it again before
    /// their next session.
    pub async fn publish_terms(&self, id: &str, by: &str, text: String) -> Result<u32, PracticeError> {
        if text.trim().is_empty() {
            return Err(PracticeError::Invalid("the terms of reference cannot be empty".into()));
        }
        let (id, by) = (id.to_owned(), by.to_owned());
        Ok(self.db.call(move |connection| db::publish_terms(connection, &id, &text, &by, now())).await?)
    }

    /// `account` accepts `version`, which must be the current one.
    pub async fn accept_terms(&self, id: &str, account: &str, version: u32) -> Result<(), PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        let outcome = self
            .db
            .call(move |connection| {
                let current = db::current_terms(connection, &id)?.map(|(version, _, _)| version);
                match current {
                    Some(current) if current == version => {
                        db::accept_terms(connection, &id, version, &account, now())?;
                        Ok(Ok(()))
                    }
                    current => Ok(Err(current)),
                }
            })
            .await?;
        outcome.map_err(|current| match current {
            Some(current) => PracticeError::NotCurrentTerms { given: version, current },
            None => PracticeError::Invalid("this community has no terms of reference yet".into()),
        })
    }

    /// Refuses unless `account` has accepted the current terms, if there are any.
    pub async fn check_terms(&self, id: &str, account: &str) -> Result<(), PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        let (current, accepted) = self
            .db
            .call(move |connection| {
                let current = db::current_terms(connection, &id)?.map(|(version, _, _)| version);
                Ok((current, db::accepted_version(connection, &id, &account)?))
            })
            .await?;
        match current {
            Some(current) if rules::must_accept(Some(current), accepted) => {
                Err(PracticeError::TermsRequired(current))
            }
            _ => Ok(()),
        }
    }

    /// Records a session of the series.
    pub async fn schedule(&self, id: &str, row: db::SeriesRow) -> Result<(), PracticeError> {
        let id = id.to_owned();
        self.db.call(move |connection| db::schedule(connection, &id, &row)).await?;
        Ok(())
    }

    /// The community's sessions.
    pub async fn series(&self, id: &str) -> Result<Vec<db::SeriesRow>, PracticeError> {
        let id = id.to_owned();
        Ok(self.db.call(move |connection| db::series(connection, &id)).await?)
    }

    /// The community a session belongs to, if any.
    pub async fn community_of_session(&self, session: &str) -> Result<Option<String>, PracticeError> {
        let session = session.to_owned();
        Ok(self.db.call(move |connection| db::community_of_session(connection, &session)).await?)
    }

    /// Records an action, for the secretary or a co-chair.
    pub async fn record_action(
        &self,
        id: &str,
        by: &str,
        request: RecordAction,
    ) -> Result<Action, PracticeError> {
        let text = request.text.trim().to_owned();
        if text.is_empty() {
            return Err(PracticeError::Invalid("an action needs some text".into()));
        }
        if text.chars().count() > ACTION_CHARS
            || request.owner.as_ref().is_some_and(|owner| owner.chars().count() > OWNER_CHARS)
        {
            return Err(PracticeError::Invalid(format!(
                "an action is at most {ACTION_CHARS} characters, and its owner's name at most {OWNER_CHARS}"
            )));
        }
        if let Some(due) = &request.due
            && !rules::is_date(due)
        {
            return Err(PracticeError::Invalid("`due` is a date written YYYY-MM-DD".into()));
        }
        let mut row = db::ActionRow {
            id: 0,
            text,
            owner: request.owner.map(|owner| owner.trim().to_owned()).filter(|owner| !owner.is_empty()),
            due: request.due,
            opened_in: request.session.map(|session| session.to_string()),
            opened_at: now(),
            closed_at: None,
            closed_in: None,
        };
        let (id, by, stored) = (id.to_owned(), by.to_owned(), row.clone());
        row.id = self.db.call(move |connection| db::record_action(connection, &id, &stored, &by)).await?;
        Ok(action(row))
    }

    /// Closes an open action.
    pub async fn close_action(
        &self,
        id: &str,
        action_id: i64,
        session: Option<String>,
        by: &str,
    ) -> Result<(), PracticeError> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let closed = self
            .db
            .call(move |connection| {
                db::close_action(connection, &id, action_id, session.as_deref(), &by, now())
            })
            .await?;
        if closed { Ok(()) } else { Err(PracticeError::NoSuchAction) }
    }

    /// A community's actions, in the order they were recorded.
    pub async fn actions(&self, id: &str) -> Result<Vec<Action>, PracticeError> {
        let id = id.to_owned();
        let rows = self.db.call(move |connection| db::actions(connection, &id)).await?;
        Ok(rows.into_iter().map(action).collect())
    }

    /// Takes someone out of a community and forgets their acceptances: the end of an
    /// erasure.
    pub async fn forget_person(&self, id: &str, account: &str) -> Result<(), PracticeError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        self.db
            .call(move |connection| {
                db::remove_person(connection, &id, &account)?;
                db::forget_acceptances(connection, &id, &account)
            })
            .await?;
        Ok(())
    }

    /// A new calendar feed key for `account` in the community; an earlier one stops
    /// working. Returns the key, which only its owner sees.
    pub async fn new_feed(&self, id: &str, account: &str) -> Result<String, PracticeError> {
        let key = crate::accounts::random_secret();
        let (hash, id, account) = (crate::accounts::digest(&key), id.to_owned(), account.to_owned());
        self.db.call(move |connection| db::put_feed(connection, &hash, &id, &account, now())).await?;
        Ok(key)
    }

    /// Whether a feed key opens the community's calendar.
    pub async fn feed_opens(&self, id: &str, key: &str) -> Result<bool, PracticeError> {
        let (hash, id) = (crate::accounts::digest(key), id.to_owned());
        Ok(self.db.call(move |connection| db::feed_owner(connection, &hash, &id)).await?.is_some())
    }

    /// A community by id.
    pub async fn community(&self, id: &str) -> Result<Option<Community>, PracticeError> {
        let id = id.to_owned();
        let row = self.db.call(move |connection| db::community(connection, &id)).await?;
        row.map(Community::try_from).transpose()
    }
}

fn action(row: db::ActionRow) -> Action {
    let session = |id: Option<String>| id.and_then(|id| caucus_protocol::SessionId::new(id).ok());
    Action {
        id: u64::try_from(row.id).unwrap_or(0),
        text: row.text,
        owner: row.owner,
        due: row.due,
        opened_in: session(row.opened_in),
        opened_at: row.opened_at,
        closed_at: row.closed_at,
        closed_in: session(row.closed_in),
    }
}
