//! The practice's tables, beside the accounts tables (migration 3 of the store).

use caucus_protocol::community::CommunityRole;
use rusqlite::{Connection, OptionalExtension, params};

/// The practice's tables.
pub const SCHEMA: &str = "
    CREATE TABLE communities (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        labels      TEXT NOT NULL,
        settings    TEXT NOT NULL,
        invite_code TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE community_people (
        community TEXT NOT NULL,
        account   TEXT NOT NULL,
        role      TEXT NOT NULL,
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (community, account)
    );
    CREATE INDEX community_people_by_account ON community_people(account);
    CREATE TABLE terms (
        community    TEXT NOT NULL,
        version      INTEGER NOT NULL,
        text         TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        published_by TEXT,
        PRIMARY KEY (community, version)
    );
    CREATE TABLE terms_accepted (
        community   TEXT NOT NULL,
        version     INTEGER NOT NULL,
        account     TEXT NOT NULL,
        accepted_at INTEGER NOT NULL,
        PRIMARY KEY (community, version, account)
    );
    CREATE TABLE series (
        session          TEXT PRIMARY KEY,
        community        TEXT NOT NULL,
        title            TEXT NOT NULL,
        starts_at        INTEGER NOT NULL,
        duration_minutes INTEGER NOT NULL,
        agenda           TEXT
    );
    CREATE INDEX series_by_community ON series(community, starts_at);";

/// The actions the secretary records (migration 4).
pub const ACTIONS_SCHEMA: &str = "
    CREATE TABLE actions (
        id         INTEGER PRIMARY KEY,
        community  TEXT NOT NULL,
        text       TEXT NOT NULL,
        owner      TEXT,
        due        TEXT,
        opened_in  TEXT,
        opened_at  INTEGER NOT NULL,
        opened_by  TEXT NOT NULL,
        closed_at  INTEGER,
        closed_in  TEXT,
        closed_by  TEXT
    );
    CREATE INDEX actions_by_community ON actions(community, id);";

/// A community's row.
#[derive(Debug, Clone)]
pub struct CommunityRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its caucus labels, as JSON.
    pub labels: String,
    /// Its default session settings, as JSON.
    pub settings: String,
    /// Its invite code.
    pub invite_code: String,
}

/// A scheduled session's row.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    /// The session.
    pub session: String,
    /// Its title.
    pub title: String,
    /// Unix seconds.
    pub starts_at: i64,
    /// Minutes.
    pub duration_minutes: u32,
    /// Its agenda.
    pub agenda: Option<String>,
}

fn role_name(role: CommunityRole) -> &'static str {
    match role {
        CommunityRole::CoChair => "co_chair",
        CommunityRole::Secretary => "secretary",
        CommunityRole::Member => "member",
    }
}

fn parse_role(name: &str) -> CommunityRole {
    match name {
        "co_chair" => CommunityRole::CoChair,
        "secretary" => CommunityRole::Secretary,
        _ => CommunityRole::Member,
    }
}

fn community_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CommunityRow> {
    Ok(CommunityRow {
        id: row.get(0)?,
        name: row.get(1)?,
        labels: row.get(2)?,
        settings: row.get(3)?,
        invite_code: row.get(4)?,
    })
}

/// Makes a community.
pub fn create_community(connection: &Connection, row: &CommunityRow, now: i64) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO communities (id, name, labels, settings, invite_code, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![row.id, row.name, row.labels, row.settings, row.invite_code, now],
    )?;
    Ok(())
}

/// A community by id.
pub fn community(connection: &Connection, id: &str) -> rusqlite::Result<Option<CommunityRow>> {
    connection
        .query_row(
            "SELECT id, name, labels, settings, invite_code FROM communities WHERE id = ?1",
            [id],
            community_row,
        )
        .optional()
}

/// A community by its invite code.
pub fn community_by_invite(connection: &Connection, code: &str) -> rusqlite::Result<Option<CommunityRow>> {
    connection
        .query_row(
            "SELECT id, name, labels, settings, invite_code FROM communities WHERE invite_code = ?1",
            [code],
            community_row,
        )
        .optional()
}

/// Puts someone in a community, or changes their part in it.
pub fn put_person(
    connection: &Connection,
    community: &str,
    account: &str,
    role: CommunityRole,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO community_people (community, account, role, joined_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (community, account) DO UPDATE SET role = excluded.role",
        params![community, account, role_name(role), now],
    )?;
    Ok(())
}

/// Takes someone out of a community, when they leave or are erased. Their calendar
/// feed key goes with them, so that it opens nothing even if they come back (they
/// make a new one).
pub fn remove_person(connection: &Connection, community: &str, account: &str) -> rusqlite::Result<()> {
    connection.execute(
        "DELETE FROM community_people WHERE community = ?1 AND account = ?2",
        [community, account],
    )?;
    connection
        .execute("DELETE FROM calendar_feeds WHERE community = ?1 AND account = ?2", [community, account])?;
    Ok(())
}

/// Someone's part in a community.
pub fn role(
    connection: &Connection,
    community: &str,
    account: &str,
) -> rusqlite::Result<Option<CommunityRole>> {
    connection
        .query_row(
            "SELECT role FROM community_people WHERE community = ?1 AND account = ?2",
            [community, account],
            |row| row.get::<_, String>(0),
        )
        .optional()
        .map(|role| role.as_deref().map(parse_role))
}

/// A community's people: (account, name, part), by part then name.
pub fn people(
    connection: &Connection,
    community: &str,
) -> rusqlite::Result<Vec<(String, String, CommunityRole)>> {
    let mut statement = connection.prepare(
        "SELECT p.account, a.name, p.role FROM community_people p JOIN accounts a ON a.id = p.account
         WHERE p.community = ?1",
    )?;
    let mut people: Vec<(String, String, CommunityRole)> = statement
        .query_map([community], |row| Ok((row.get(0)?, row.get(1)?, parse_role(&row.get::<_, String>(2)?))))?
        .collect::<rusqlite::Result<_>>()?;
    people.sort_by(|a, b| (a.2, &a.1).cmp(&(b.2, &b.1)));
    Ok(people)
}

/// The communities an account is in: (id, name, part), by name.
pub fn communities_of(
    connection: &Connection,
    account: &str,
) -> rusqlite::Result<Vec<(String, String, CommunityRole)>> {
    let mut statement = connection.prepare(
        "SELECT c.id, c.name, p.role FROM community_people p JOIN communities c ON c.id = p.community
         WHERE p.account = ?1 ORDER BY c.name",
    )?;
    statement
        .query_map([account], |row| Ok((row.get(0)?, row.get(1)?, parse_role(&row.get::<_, String>(2)?))))?
        .collect()
}

/// The current terms: (version, text, published_at).
pub fn current_terms(
    connection: &Connection,
    community: &str,
) -> rusqlite::Result<Option<(u32, String, i64)>> {
    connection
        .query_row(
            "SELECT version, text, published_at FROM terms WHERE community = ?1 ORDER BY version DESC LIMIT 1",
            [community],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
}

/// One version's text.
pub fn terms_text(
    connection: &Connection,
    community: &str,
    version: u32,
) -> rusqlite::Result<Option<String>> {
    connection
        .query_row(
            "SELECT text FROM terms WHERE community = ?1 AND version = ?2",
            params![community, version],
            |row| row.get(0),
        )
        .optional()
}

/// Publishes the next version; returns its number.
pub fn publish_terms(
    connection: &mut Connection,
    community: &str,
    text: &str,
    by: &str,
    now: i64,
) -> rusqlite::Result<u32> {
    let transaction = connection.transaction()?;
    let version: u32 = transaction.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM terms WHERE community = ?1",
        [community],
        |row| row.get(0),
    )?;
    transaction.execute(
        "INSERT INTO terms (community, version, text, published_at, published_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![community, version, text, now, by],
    )?;
    transaction.commit()?;
    Ok(version)
}

/// Records an acceptance.
pub fn accept_terms(
    connection: &Connection,
    community: &str,
    version: u32,
    account: &str,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT OR IGNORE INTO terms_accepted (community, version, account, accepted_at) VALUES (?1, ?2, ?3, ?4)",
        params![community, version, account, now],
    )?;
    Ok(())
}

/// The latest version an account accepted.
pub fn accepted_version(
    connection: &Connection,
    community: &str,
    account: &str,
) -> rusqlite::Result<Option<u32>> {
    connection.query_row(
        "SELECT MAX(version) FROM terms_accepted WHERE community = ?1 AND account = ?2",
        [community, account],
        |row| row.get(0),
    )
}

/// Records a scheduled session.
pub fn schedule(connection: &Connection, community: &str, row: &SeriesRow) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO series (session, community, title, starts_at, duration_minutes, agenda) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![row.session, community, row.title, row.starts_at, row.duration_minutes, row.agenda],
    )?;
    Ok(())
}

/// A community's scheduled sessions, by start.
pub fn series(connection: &Connection, community: &str) -> rusqlite::Result<Vec<SeriesRow>> {
    let mut statement = connection.prepare(
        "SELECT session, title, starts_at, duration_minutes, agenda FROM series WHERE community = ?1 ORDER BY starts_at",
    )?;
    statement
        .query_map([community], |row| {
            Ok(SeriesRow {
                session: row.get(0)?,
                title: row.get(1)?,
                starts_at: row.get(2)?,
                duration_minutes: row.get(3)?,
                agenda: row.get(4)?,
            })
        })?
        .collect()
}

/// The community a session belongs to, if any.
pub fn community_of_session(connection: &Connection, session: &str) -> rusqlite::Result<Option<String>> {
    connection
        .query_row("SELECT community FROM series WHERE session = ?1", [session], |row| row.get(0))
        .optional()
}

/// An action's row.
#[derive(Debug, Clone)]
pub struct ActionRow {
    /// Its id.
    pub id: i64,
    /// What is to be done.
    pub text: String,
    /// Who, by name.
    pub owner: Option<String>,
    /// By when.
    pub due: Option<String>,
    /// Recorded in.
    pub opened_in: Option<String>,
    /// Recorded at.
    pub opened_at: i64,
    /// Closed at.
    pub closed_at: Option<i64>,
    /// Closed in.
    pub closed_in: Option<String>,
}

/// Records an action; returns its id.
pub fn record_action(
    connection: &Connection,
    community: &str,
    row: &ActionRow,
    by: &str,
) -> rusqlite::Result<i64> {
    connection.execute(
        "INSERT INTO actions (community, text, owner, due, opened_in, opened_at, opened_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![community, row.text, row.owner, row.due, row.opened_in, row.opened_at, by],
    )?;
    Ok(connection.last_insert_rowid())
}

/// Closes an open action; false if there is no such open action in the community.
pub fn close_action(
    connection: &Connection,
    community: &str,
    id: i64,
    session: Option<&str>,
    by: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = connection.execute(
        "UPDATE actions SET closed_at = ?3, closed_in = ?4, closed_by = ?5
         WHERE community = ?1 AND id = ?2 AND closed_at IS NULL",
        params![community, id, now, session, by],
    )?;
    Ok(changed == 1)
}

/// A community's actions, in the order they were recorded.
pub fn actions(connection: &Connection, community: &str) -> rusqlite::Result<Vec<ActionRow>> {
    let mut statement = connection.prepare(
        "SELECT id, text, owner, due, opened_in, opened_at, closed_at, closed_in FROM actions
         WHERE community = ?1 ORDER BY id",
    )?;
    statement
        .query_map([community], |row| {
            Ok(ActionRow {
                id: row.get(0)?,
                text: row.get(1)?,
                owner: row.get(2)?,
                due: row.get(3)?,
                opened_in: row.get(4)?,
                opened_at: row.get(5)?,
                closed_at: row.get(6)?,
                closed_in: row.get(7)?,
            })
        })?
        .collect()
}

/// Forgets someone's acceptances of a community's terms.
pub fn forget_acceptances(connection: &Connection, community: &str, account: &str) -> rusqlite::Result<()> {
    connection
        .execute("DELETE FROM terms_accepted WHERE community = ?1 AND account = ?2", [community, account])?;
    Ok(())
}

/// Every acceptance an account made: (community, version, accepted_at).
pub fn acceptances_of(connection: &Connection, account: &str) -> rusqlite::Result<Vec<(String, u32, i64)>> {
    let mut statement = connection.prepare(
        "SELECT community, version, accepted_at FROM terms_accepted WHERE account = ?1 ORDER BY accepted_at",
    )?;
    statement.query_map([account], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?.collect()
}

/// Calendar feeds (migration 5): a secret per person and community that calendar
/// programs, which cannot sign in, use to read the series. Only its hash is kept.
pub const FEEDS_SCHEMA: &str = "
    CREATE TABLE calendar_feeds (
        key_hash   TEXT PRIMARY KEY,
        community  TEXT NOT NULL,
        account    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (community, account)
    );";

/// Replaces a person's feed key for a community.
pub fn put_feed(
    connection: &Connection,
    key_hash: &str,
    community: &str,
    account: &str,
    now: i64,
) -> rusqlite::Result<()> {
    connection
        .execute("DELETE FROM calendar_feeds WHERE community = ?1 AND account = ?2", [community, account])?;
    connection.execute(
        "INSERT INTO calendar_feeds (key_hash, community, account, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_hash, community, account, now],
    )?;
    Ok(())
}

/// The person a feed key belongs to, if they are still in the community.
pub fn feed_owner(
    connection: &Connection,
    key_hash: &str,
    community: &str,
) -> rusqlite::Result<Option<String>> {
    connection
        .query_row(
            "SELECT f.account FROM calendar_feeds f JOIN community_people p
             ON p.community = f.community AND p.account = f.account
             WHERE f.key_hash = ?1 AND f.community = ?2",
            [key_hash, community],
            |row| row.get(0),
        )
        .optional()
}
