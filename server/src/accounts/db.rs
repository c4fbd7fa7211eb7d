//! Accounts on disk: the tables, and one SQLite connection that reads and writes them.
//!
//! Sign-in is rare next to chat, so one connection behind a mutex, used from
//! `spawn_blocking`, is enough. The tables live in the same file as the sessions (so a
//! backup holds both), and in memory when the store does.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::StoreError;

/// The accounts tables; migration 2 of the store.
pub const SCHEMA: &str = "
    CREATE TABLE accounts (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        email      TEXT UNIQUE,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE identities (
        issuer     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        account    TEXT NOT NULL,
        email      TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (issuer, subject)
    );
    CREATE INDEX identities_by_account ON identities(account);
    CREATE TABLE signins (
        id_hash    TEXT PRIMARY KEY,
        account    TEXT NOT NULL,
        csrf       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX signins_by_account ON signins(account);
    CREATE TABLE email_links (
        token_hash TEXT PRIMARY KEY,
        email      TEXT NOT NULL,
        return_to  TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE seats (
        account   TEXT NOT NULL,
        session   TEXT NOT NULL,
        member    TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (account, session)
    );
    CREATE UNIQUE INDEX seats_by_member ON seats(session, member);
    CREATE TABLE grants (
        email      TEXT NOT NULL,
        role       TEXT NOT NULL,
        granted_by TEXT,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (email, role)
    );";

/// An account: a stable id, a display name, and the email address it signs in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// `a-…`; also the account's member id in the sessions it joins.
    pub id: String,
    /// The name others see.
    pub name: String,
    /// Lower-cased; `None` for an account known only by a provider that gave none.
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A live sign-in, as its cookie finds it.
#[derive(Debug, Clone)]
pub struct SignInRow {
    /// The account signed in.
    pub account: Account,
    /// The SHA-256 of the cookie's value.
    pub id_hash: String,
    /// The CSRF token for this sign-in.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A seat: which member an account is in one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seat {
    /// The session.
    pub session: String,
    /// The member id there.
    pub member: String,
    /// Unix seconds.
    pub joined_at: i64,
}

/// A grant of a role to an email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The address.
    pub email: String,
    /// `admin` or `facilitator`.
    pub role: String,
    /// The account that granted it; `None` from the command line.
    pub granted_by: Option<String>,
    /// Unix seconds.
    pub granted_at: i64,
}

/// An identity at a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The provider's issuer URL, or `email` for email sign-in.
    pub issuer: String,
    /// The provider's subject.
    pub subject: String,
    /// The email the provider gave.
    pub email: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The accounts tables behind one connection.
#[derive(Debug, Clone)]
pub struct AccountDb {
    connection: Arc<Mutex<Connection>>,
}

fn store_error(err: rusqlite::Error) -> StoreError {
    StoreError::new(err)
}

impl AccountDb {
    /// Opens the accounts tables in the store's database file, which the store has
    /// already created and migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = crate::store::sqlite::open_connection(path, Duration::from_secs(5))?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    /// Accounts in memory, for a server whose store is in memory.
    pub fn in_memory() -> Result<Self, StoreError> {
        let connection = Connection::open_in_memory().map_err(store_error)?;
        connection.execute_batch(SCHEMA).map_err(store_error)?;
        connection.execute_batch(crate::practice::db::SCHEMA).map_err(store_error)?;
        connection.execute_batch(crate::practice::db::ACTIONS_SCHEMA).map_err(store_error)?;
        connection.execute_batch(crate::practice::db::FEEDS_SCHEMA).map_err(store_error)?;
        connection.execute_batch(RETIRED_SCHEMA).map_err(store_error)?;
        Ok(Self { connection: Arc::new(Mutex::new(connection)) })
    }

    /// Runs `work` on the connection, off the async threads.
    pub async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut connection).map_err(store_error)
        })
        .await
        .map_err(StoreError::new)?
    }

    /// Runs `work` on the connection from a blocking context (the command line).
    pub fn call_blocking<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut connection).map_err(store_error)
    }
}

fn account_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { id: row.get(0)?, name: row.get(1)?, email: row.get(2)?, created_at: row.get(3)? })
}

/// The account with `id`.
pub fn account(connection: &Connection, id: &str) -> rusqlite::Result<Option<Account>> {
    connection
        .query_row("SELECT id, name, email, created_at FROM accounts WHERE id = ?1", [id], account_row)
        .optional()
}

/// The account holding `email`.
pub fn account_by_email(connection: &Connection, email: &str) -> rusqlite::Result<Option<Account>> {
    connection
        .query_row("SELECT id, name, email, created_at FROM accounts WHERE email = ?1", [email], account_row)
        .optional()
}

/// The account an identity belongs to.
pub fn account_by_identity(
    connection: &Connection,
    issuer: &str,
    subject: &str,
) -> rusqlite::Result<Option<String>> {
    connection
        .query_row(
            "SELECT account FROM identities WHERE issuer = ?1 AND subject = ?2",
            [issuer, subject],
            |row| row.get(0),
        )
        .optional()
}

/// Makes an account.
pub fn create_account(
    connection: &Connection,
    id: &str,
    name: &str,
    email: Option<&str>,
    now: i64,
) -> rusqlite::Result<Account> {
    connection.execute(
        "INSERT INTO accounts (id, name, email, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, email, now],
    )?;
    Ok(Account { id: id.to_owned(), name: name.to_owned(), email: email.map(str::to_owned), created_at: now })
}

/// Records that an identity belongs to an account.
pub fn add_identity(connection: &Connection, identity: &Identity, account: &str) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO identities (issuer, subject, account, email, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![identity.issuer, identity.subject, account, identity.email, identity.created_at],
    )?;
    Ok(())
}

/// Sets the email of an account that has none yet, if no other account holds it.
pub fn adopt_email(connection: &Connection, account: &str, email: &str) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE accounts SET email = ?2 WHERE id = ?1 AND email IS NULL
         AND NOT EXISTS (SELECT 1 FROM accounts WHERE email = ?2)",
        params![account, email],
    )?;
    Ok(())
}

/// An account's identities.
pub fn identities(connection: &Connection, account: &str) -> rusqlite::Result<Vec<Identity>> {
    let mut statement = connection.prepare(
        "SELECT issuer, subject, email, created_at FROM identities WHERE account = ?1 ORDER BY created_at",
    )?;
    statement
        .query_map([account], |row| {
            Ok(Identity {
                issuer: row.get(0)?,
                subject: row.get(1)?,
                email: row.get(2)?,
                created_at: row.get(3)?,
            })
        })?
        .collect()
}

/// Starts a sign-in.
pub fn create_signin(
    connection: &Connection,
    id_hash: &str,
    account: &str,
    csrf: &str,
    now: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO signins (id_hash, account, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash, account, csrf, now, expires_at],
    )?;
    Ok(())
}

/// The live sign-in whose cookie hashes to `id_hash`.
pub fn signin(connection: &Connection, id_hash: &str, now: i64) -> rusqlite::Result<Option<SignInRow>> {
    connection
        .query_row(
            "SELECT a.id, a.name, a.email, a.created_at, s.id_hash, s.csrf, s.expires_at
             FROM signins s JOIN accounts a ON a.id = s.account
             WHERE s.id_hash = ?1 AND s.expires_at > ?2",
            params![id_hash, now],
            |row| {
                Ok(SignInRow {
                    account: account_row(row)?,
                    id_hash: row.get(4)?,
                    csrf: row.get(5)?,
                    expires_at: row.get(6)?,
                })
            },
        )
        .optional()
}

/// An account's sign-ins: (created, expires, id hash).
pub fn signins(connection: &Connection, account: &str) -> rusqlite::Result<Vec<(i64, i64, String)>> {
    let mut statement = connection.prepare(
        "SELECT created_at, expires_at, id_hash FROM signins WHERE account = ?1 ORDER BY created_at",
    )?;
    statement.query_map([account], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?.collect()
}

/// Forgets sign-ins that have expired.
pub fn delete_expired_signins(connection: &Connection, now: i64) -> rusqlite::Result<()> {
    connection.execute("DELETE FROM signins WHERE expires_at <= ?1", [now])?;
    Ok(())
}

/// Ends one sign-in.
pub fn delete_signin(connection: &Connection, id_hash: &str) -> rusqlite::Result<()> {
    connection.execute("DELETE FROM signins WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

/// Ends every sign-in of an account, and those that expired long ago.
pub fn delete_signins(connection: &Connection, account: &str, now: i64) -> rusqlite::Result<()> {
    connection
        .execute("DELETE FROM signins WHERE account = ?1 OR expires_at <= ?2", params![account, now])?;
    Ok(())
}

/// Keeps an email link: only its hash is stored.
pub fn put_email_link(
    connection: &Connection,
    token_hash: &str,
    email: &str,
    return_to: &str,
    expires_at: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO email_links (token_hash, email, return_to, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, email, return_to, expires_at],
    )?;
    Ok(())
}

/// Uses up an email link: it is deleted whether or not it is still valid, and its
/// address and return path come back only if it was. Expired links go too.
pub fn take_email_link(
    connection: &mut Connection,
    token_hash: &str,
    now: i64,
) -> rusqlite::Result<Option<(String, String)>> {
    let transaction = connection.transaction()?;
    let found: Option<(String, String, i64)> = transaction
        .query_row(
            "SELECT email, return_to, expires_at FROM email_links WHERE token_hash = ?1",
            [token_hash],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    transaction.execute(
        "DELETE FROM email_links WHERE token_hash = ?1 OR expires_at <= ?2",
        params![token_hash, now],
    )?;
    transaction.commit()?;
    Ok(found.filter(|(_, _, expires_at)| *expires_at > now).map(|(email, return_to, _)| (email, return_to)))
}

/// Records a seat; an existing seat in the same session is kept.
pub fn put_seat(
    connection: &Connection,
    account: &str,
    session: &str,
    member: &str,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO seats (account, session, member, joined_at) VALUES (?1, ?2, ?3, ?4)",
        params![account, session, member, now],
    )?;
    Ok(())
}

/// The account's member id in a session.
pub fn seat(connection: &Connection, account: &str, session: &str) -> rusqlite::Result<Option<String>> {
    connection
        .query_row(
            "SELECT member FROM seats WHERE account = ?1 AND session = ?2",
            [account, session],
            |row| row.get(0),
        )
        .optional()
}

/// Whether a session's member is already some account's seat.
pub fn seat_holder(connection: &Connection, session: &str, member: &str) -> rusqlite::Result<Option<String>> {
    connection
        .query_row("SELECT account FROM seats WHERE session = ?1 AND member = ?2", [session, member], |row| {
            row.get(0)
        })
        .optional()
}

/// An account's seats, newest first.
pub fn seats(connection: &Connection, account: &str) -> rusqlite::Result<Vec<Seat>> {
    let mut statement = connection
        .prepare("SELECT session, member, joined_at FROM seats WHERE account = ?1 ORDER BY joined_at DESC")?;
    statement
        .query_map([account], |row| {
            Ok(Seat { session: row.get(0)?, member: row.get(1)?, joined_at: row.get(2)? })
        })?
        .collect()
}

/// Renames an account.
pub fn rename(connection: &Connection, account: &str, name: &str) -> rusqlite::Result<()> {
    connection.execute("UPDATE accounts SET name = ?2 WHERE id = ?1", [account, name])?;
    Ok(())
}

/// Deletes an account and everything that links to it. Grants to its address go too:
/// an address that comes back later starts with nothing.
/// Guest seats kept in an account: their member tokens open nothing, even after the
/// account is deleted. Ids only: no address, no name. Every seat already kept is
/// retired on the way in (one an account joined with needs no token, so retiring it
/// changes nothing).
pub const RETIRED_SCHEMA: &str = "
    CREATE TABLE retired_guest_seats (
        session TEXT NOT NULL,
        member  TEXT NOT NULL,
        PRIMARY KEY (session, member)
    );
    INSERT INTO retired_guest_seats (session, member) SELECT session, member FROM seats;";

/// Records that a guest seat's member token is retired.
pub fn retire_guest_seat(connection: &Connection, session: &str, member: &str) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO retired_guest_seats (session, member) VALUES (?1, ?2)",
        [session, member],
    )?;
    Ok(())
}

/// Whether a guest seat's member token is retired.
pub fn guest_seat_retired(connection: &Connection, session: &str, member: &str) -> rusqlite::Result<bool> {
    connection
        .query_row(
            "SELECT 1 FROM retired_guest_seats WHERE session = ?1 AND member = ?2",
            [session, member],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

/// Deletes an account and what names it, unless it is the only co-chair of a community:
/// then nothing changes, and the answer is those communities' names (a community must
/// always have someone to lead it). Checked in the same transaction as the deletion.
pub fn delete_account(
    connection: &mut Connection,
    account: &str,
) -> rusqlite::Result<Result<(), Vec<String>>> {
    let transaction = connection.transaction()?;
    let led_alone: Vec<String> = transaction
        .prepare(
            "SELECT c.name FROM communities c JOIN community_people p ON p.community = c.id
             WHERE p.account = ?1 AND p.role = 'co_chair'
               AND (SELECT count(*) FROM community_people o WHERE o.community = c.id AND o.role = 'co_chair') = 1
             ORDER BY c.name",
        )?
        .query_map([account], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !led_alone.is_empty() {
        return Ok(Err(led_alone));
    }
    let email: Option<String> = transaction
        .query_row("SELECT email FROM accounts WHERE id = ?1", [account], |row| row.get(0))
        .optional()?
        .flatten();
    for table in ["seats", "signins", "identities", "community_people", "terms_accepted", "calendar_feeds"] {
        transaction.execute(&format!("DELETE FROM {table} WHERE account = ?1"), [account])?;
    }
    if let Some(email) = email {
        transaction.execute("DELETE FROM grants WHERE email = ?1", [&email])?;
        transaction.execute("DELETE FROM email_links WHERE email = ?1", [&email])?;
    }
    // What the community keeps (actions, terms) no longer names the account.
    transaction.execute("UPDATE actions SET opened_by = '' WHERE opened_by = ?1", [account])?;
    transaction.execute("UPDATE actions SET closed_by = NULL WHERE closed_by = ?1", [account])?;
    transaction.execute("UPDATE terms SET published_by = NULL WHERE published_by = ?1", [account])?;
    transaction.execute("DELETE FROM accounts WHERE id = ?1", [account])?;
    transaction.commit().map(Ok)
}

/// The roles granted to an address.
pub fn granted_roles(connection: &Connection, email: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare("SELECT role FROM grants WHERE email = ?1")?;
    statement.query_map([email], |row| row.get(0))?.collect()
}

/// Grants a role to an address; granting it again changes nothing.
pub fn grant(
    connection: &Connection,
    email: &str,
    role: &str,
    granted_by: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO grants (email, role, granted_by, granted_at) VALUES (?1, ?2, ?3, ?4)",
        params![email, role, granted_by, now],
    )?;
    Ok(())
}

/// Takes a role back from an address.
pub fn revoke(connection: &Connection, email: &str, role: &str) -> rusqlite::Result<()> {
    connection.execute("DELETE FROM grants WHERE email = ?1 AND role = ?2", [email, role])?;
    Ok(())
}

/// Every grant of `role`, by address.
pub fn grants(connection: &Connection, role: &str) -> rusqlite::Result<Vec<Grant>> {
    let mut statement = connection
        .prepare("SELECT email, role, granted_by, granted_at FROM grants WHERE role = ?1 ORDER BY email")?;
    statement
        .query_map([role], |row| {
            Ok(Grant {
                email: row.get(0)?,
                role: row.get(1)?,
                granted_by: row.get(2)?,
                granted_at: row.get(3)?,
            })
        })?
        .collect()
}
