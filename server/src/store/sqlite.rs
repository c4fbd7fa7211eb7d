//! The embedded SQLite store: one file in the data folder, written by one thread.
//!
//! Writes queue to the writer thread, which takes everything waiting (up to a batch),
//! applies each write in its own savepoint (when there are several), and commits the batch as one transaction:
//! group commit. A caller hears back only after the commit, so an acknowledged event is
//! on disk (WAL, `synchronous=FULL`, synced with `fdatasync`; see `.cargo/config.toml`).
//! One failing write fails alone; a failing commit fails the batch, and nothing of it
//! is applied. `store.synchronous = "normal"` lets commits reach the disk at
//! checkpoints only, for operators who accept losing the last moments on power loss.
//!
//! Purges and erasures are acknowledged only after their content is gone from every
//! file: deleted cells are zeroed (`secure_delete`), then the database is rebuilt from
//! its live rows and the WAL emptied (see [`scrub`]). Backups are written the same way,
//! from live rows only.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use caucus_protocol::{EncodedEvent, EventBody, MemberId, Room, RoomEvent, SessionId};
use futures::future::BoxFuture;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{ListedSession, SessionRecord, Store, StoreError, StoredSession};
use crate::config::Synchronous;
use crate::session::Listing;

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;
/// Writes that may wait for the writer before callers wait too.
const QUEUE: usize = 4096;

/// Versioned schema migrations; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: sessions, their events, and the record of erasures.
    "CREATE TABLE sessions (
        id          TEXT PRIMARY KEY,
        invite_code TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL,
        record      TEXT NOT NULL
    );
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        session TEXT NOT NULL REFERENCES sessions(id),
        room    TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        at      INTEGER NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_room ON events(session, room, seq);
    CREATE TABLE erasures (
        id      INTEGER PRIMARY KEY,
        member  TEXT NOT NULL,
        session TEXT NOT NULL,
        at      INTEGER NOT NULL
    );",
    // 2: accounts, how they sign in, their seats in sessions, and who may facilitate.
    crate::accounts::db::SCHEMA,
    // 3: the practice: communities, their people, terms of reference and series.
    crate::practice::db::SCHEMA,
    // 4: the actions a community's secretary records.
    crate::practice::db::ACTIONS_SCHEMA,
    // 5: calendar feeds.
    crate::practice::db::FEEDS_SCHEMA,
    // 6: each session's listing, so that start-up reads no events.
    "ALTER TABLE sessions ADD COLUMN listing TEXT;",
    // 7: guest seats kept in an account, whose member tokens are retired for good.
    crate::accounts::db::RETIRED_SCHEMA,
];

/// How to open the store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file.
    pub path: PathBuf,
    /// Commit many writes per transaction. Off, every write is its own transaction.
    pub group_commit: bool,
    /// Whether each commit waits for the disk (`full`) or only checkpoints do.
    pub synchronous: Synchronous,
    /// How long a write waits for a lock held by someone else before failing.
    pub busy_timeout: Duration,
}

/// The SQLite store. Cheap to share; the writer thread stops when the last handle goes.
#[derive(Debug)]
pub struct SqliteStore {
    /// Sent by session actors and the hub; received by the writer thread.
    writes: mpsc::Sender<Write>,
    path: PathBuf,
    /// A read connection, opened on first use: the writer thread owns its own.
    reader: Arc<std::sync::Mutex<Option<Connection>>>,
}

#[derive(Debug)]
enum Work {
    CreateSession(SessionRecord),
    SetInvite(SessionId, String),
    /// Events, and the listing they changed, serialized.
    Append(SessionId, Vec<EncodedEvent>, Option<String>),
    SetListing(SessionId, String),
    Purge(SessionId, Vec<Room>),
    Rewrite(SessionId, Vec<RoomEvent>),
    Erasure(MemberId, SessionId, u64),
    /// Writes nothing; asks for a scrub, for rows deleted by another connection.
    Scrub,
}

#[derive(Debug)]
struct Write {
    work: Work,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Creates `path` readable by its owner only, if it does not exist yet. SQLite gives its
/// WAL and shared-memory files the same permissions as the database.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::new(format!("cannot create {}: {err}", path.display()))),
    }
}

pub(crate) fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)
        .map_err(|err| StoreError::new(format!("cannot open {}: {err}", path.display())))?;
    connection.busy_timeout(busy_timeout).map_err(StoreError::new)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(StoreError::new)?;
    Ok(connection)
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 =
        connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(StoreError::new)?;
    let applied = super::migrations_applied(applied, MIGRATIONS.len())?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(StoreError::new)?;
        transaction.execute_batch(migration).map_err(StoreError::new)?;
        transaction.pragma_update(None, "user_version", (index + 1) as i64).map_err(StoreError::new)?;
        transaction.commit().map_err(StoreError::new)?;
        info!(version = index + 1, "applied a schema migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Creates the database file if need be and runs pending migrations, without
    /// starting a writer: for the accounts and communities, which stay in the data
    /// folder's file beside a shared store, and for the commands that change them.
    pub fn prepare(options: &SqliteOptions) -> Result<(), StoreError> {
        Self::open_migrated(options).map(drop)
    }

    fn open_migrated(options: &SqliteOptions) -> Result<Connection, StoreError> {
        if let Some(parent) = options.path.parent() {
            crate::config::create_data_dir(parent)
                .map_err(|err| StoreError::new(format!("cannot create {}: {err}", parent.display())))?;
        }
        create_private(&options.path)?;
        let mut connection = open_connection(&options.path, options.busy_timeout)?;
        migrate(&mut connection)?;
        Ok(connection)
    }

    /// Opens (creating if needed) the database, runs pending migrations, and starts
    /// the writer thread.
    pub fn open(options: SqliteOptions) -> Result<Self, StoreError> {
        let connection = Self::open_migrated(&options)?;
        if options.synchronous == Synchronous::Normal {
            connection.execute_batch("PRAGMA synchronous = NORMAL;").map_err(StoreError::new)?;
            info!("store.synchronous = normal: commits reach the disk at checkpoints only");
        }
        let (writes, queue) = mpsc::channel(QUEUE);
        let batch = if options.group_commit { MAX_BATCH } else { 1 };
        std::thread::Builder::new()
            .name("caucus-store".into())
            .spawn(move || run_writer(connection, queue, batch))
            .map_err(|err| StoreError::new(format!("cannot start the store's writer: {err}")))?;
        Ok(Self { writes, path: options.path, reader: Arc::default() })
    }

    /// Runs `query` on the read connection, opened if need be, on a thread where
    /// blocking is allowed. Reads are short (one session's rows), so they take turns.
    fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let reader = Arc::clone(&self.reader);
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = reader.lock().unwrap_or_else(|poison| poison.into_inner());
                let connection = match guard.take() {
                    Some(connection) => connection,
                    None => open_connection(&path, Duration::from_secs(5))?,
                };
                let result = query(&connection).map_err(StoreError::new);
                *guard = Some(connection);
                result
            })
            .await
            .map_err(|err| StoreError::new(format!("a store read stopped: {err}")))?
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn submit(&self, work: Work) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (done, answer) = oneshot::channel();
            self.writes
                .send(Write { work, done })
                .await
                .map_err(|_| StoreError::new("the store's writer has stopped"))?;
            answer.await.unwrap_or_else(|_| Err(StoreError::new("the store's writer has stopped")))
        })
    }
}

/// The writer thread: takes queued writes in batches and commits each batch once.
fn run_writer(mut connection: Connection, mut queue: mpsc::Receiver<Write>, batch_limit: usize) {
    let mut scrub_due = false;
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < batch_limit {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let results = commit(&mut connection, &batch);
        let scrubbing =
            |write: &Write| matches!(write.work, Work::Purge(..) | Work::Rewrite(..) | Work::Scrub);
        scrub_due |= batch.iter().zip(&results).any(|(write, result)| scrubbing(write) && result.is_ok());
        // Everything else in the batch is answered first: it need not wait for a rebuild.
        let (scrubbed, others): (Vec<_>, Vec<_>) =
            batch.into_iter().zip(results).partition(|(write, _)| scrubbing(write));
        for (write, result) in others {
            let _ = write.done.send(result);
        }
        // A purge or erasure is answered once its content is gone from the files. If a
        // reader keeps the WAL from being emptied, the committed change still stands (the
        // session must not show what the database no longer holds): the scrub is
        // retried after every later batch until it succeeds.
        if scrub_due {
            match scrub(&connection) {
                Ok(()) => scrub_due = false,
                Err(err) => warn!(
                    error = %err,
                    "purged content may remain in the database files until a later write retries the clean-up"
                ),
            }
        }
        for (write, result) in scrubbed {
            let _ = write.done.send(result);
        }
    }
}

/// Leaves no trace of deleted rows in any file. `secure_delete` zeroes deleted cells,
/// but a B-tree rebalance moves cells between pages and leaves their old bytes in the
/// unused part of a page, and the WAL keeps old page images. So: checkpoint and empty
/// the WAL, rebuild the database from its live rows (`VACUUM`, whose scratch copy lives
/// in memory), and empty the WAL of the rebuild's pages.
pub(crate) fn scrub(connection: &Connection) -> Result<(), StoreError> {
    let truncate = |when: &str| -> Result<(), StoreError> {
        // The first column is 1 when a reader kept the checkpoint from finishing.
        let busy: i64 = connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE);", [], |row| row.get(0))
            .map_err(StoreError::new)?;
        if busy != 0 {
            return Err(StoreError::new(format!("a reader kept the WAL from being emptied {when}")));
        }
        Ok(())
    };
    truncate("before the rebuild")?;
    connection.execute_batch("VACUUM;").map_err(StoreError::new)?;
    truncate("after the rebuild")
}

/// Applies a batch in one transaction. Returns one result per write.
///
/// The statements that frame it are prepared once and kept: parsing `BEGIN`, `COMMIT`
/// and a savepoint's three statements for every batch was a measurable part of a
/// small room's cost per message. A batch of one write needs no savepoint: its failure
/// rolls the whole transaction back, which is the same thing.
fn commit(connection: &mut Connection, batch: &[Write]) -> Vec<Result<(), StoreError>> {
    let failed_all = |err: rusqlite::Error| {
        error!(error = %err, writes = batch.len(), "a store commit failed");
        batch.iter().map(|_| Err(StoreError::new(&err))).collect()
    };
    let run = |sql: &str| connection.prepare_cached(sql).and_then(|mut statement| statement.execute([]));
    if let Err(err) = run("BEGIN IMMEDIATE") {
        return failed_all(err);
    }
    let mut results = Vec::with_capacity(batch.len());
    if let [write] = batch {
        if let Err(err) = apply(connection, &write.work) {
            let _ = run("ROLLBACK");
            warn!(error = %err, "a store write was refused");
            return vec![Err(StoreError::new(err))];
        }
        results.push(Ok(()));
    } else {
        for write in batch {
            let result = run("SAVEPOINT write").and_then(|_| match apply(connection, &write.work) {
                Ok(()) => run("RELEASE write"),
                Err(err) => {
                    // Undo this write alone; the others in the batch stand.
                    run("ROLLBACK TO write").and_then(|_| run("RELEASE write"))?;
                    Err(err)
                }
            });
            results.push(result.map(|_| ()).map_err(|err| {
                warn!(error = %err, "a store write was refused");
                StoreError::new(err)
            }));
        }
    }
    match run("COMMIT") {
        Ok(_) => results,
        Err(err) => {
            let _ = run("ROLLBACK");
            failed_all(err)
        }
    }
}

fn apply(connection: &Connection, work: &Work) -> rusqlite::Result<()> {
    match work {
        Work::Scrub => {}
        Work::CreateSession(record) => {
            let json = serde_json::to_string(record).expect("records serialize");
            connection.execute(
                "INSERT INTO sessions (id, invite_code, created_at, record) VALUES (?1, ?2, ?3, ?4)",
                params![record.id.as_str(), record.invite_code, record.created_at as i64, json],
            )?;
        }
        Work::SetInvite(session, code) => {
            // The record keeps its own copy of the code, for loading.
            connection.execute(
                "UPDATE sessions SET invite_code = ?2, record = json_set(record, '$.invite_code', ?2) WHERE id = ?1",
                params![session.as_str(), code],
            )?;
        }
        Work::SetListing(session, listing) => {
            connection.execute(
                "UPDATE sessions SET listing = ?2 WHERE id = ?1",
                params![session.as_str(), listing],
            )?;
        }
        Work::Append(session, events, listing) => {
            if let Some(listing) = listing {
                connection.execute(
                    "UPDATE sessions SET listing = ?2 WHERE id = ?1",
                    params![session.as_str(), listing],
                )?;
            }
            let mut insert = connection.prepare_cached(
                "INSERT INTO events (session, room, seq, at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for event in events {
                insert.execute(params![
                    session.as_str(),
                    event.room.as_str(),
                    event.seq as i64,
                    event.at as i64,
                    event.body
                ])?;
            }
        }
        Work::Purge(session, rooms) => {
            let mut delete =
                connection.prepare_cached("DELETE FROM events WHERE session = ?1 AND room = ?2")?;
            for room in rooms {
                delete.execute(params![session.as_str(), room.as_str()])?;
            }
        }
        Work::Rewrite(session, events) => {
            let mut update = connection.prepare_cached(
                "UPDATE events SET body = ?4 WHERE session = ?1 AND room = ?2 AND seq = ?3",
            )?;
            for event in events {
                let body = serde_json::to_string(&event.body).expect("events serialize");
                update.execute(params![session.as_str(), event.room.as_str(), event.seq as i64, body])?;
            }
        }
        Work::Erasure(member, session, at) => {
            connection.execute(
                "INSERT INTO erasures (member, session, at) VALUES (?1, ?2, ?3)",
                params![member.as_str(), session.as_str(), *at as i64],
            )?;
        }
    }
    Ok(())
}

fn load_directory(connection: &Connection) -> rusqlite::Result<Vec<ListedSession>> {
    let mut sessions = connection.prepare("SELECT record, listing FROM sessions ORDER BY created_at, id")?;
    let rows =
        sessions.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)))?;
    let mut listed = Vec::new();
    for row in rows {
        let (record, listing) = row?;
        let record: SessionRecord = serde_json::from_str(&record).map_err(|err| bad_row(&err))?;
        // A listing that does not decode is rebuilt from the events, like a missing one.
        let listing = listing.and_then(|json| serde_json::from_str::<Listing>(&json).ok());
        listed.push(ListedSession { record, listing });
    }
    Ok(listed)
}

fn load_one(connection: &Connection, id: &SessionId) -> rusqlite::Result<Option<StoredSession>> {
    use rusqlite::OptionalExtension;
    let record: Option<String> = connection
        .query_row("SELECT record FROM sessions WHERE id = ?1", [id.as_str()], |row| row.get(0))
        .optional()?;
    let Some(record) = record else { return Ok(None) };
    let record: SessionRecord = serde_json::from_str(&record).map_err(|err| bad_row(&err))?;
    let mut events =
        connection.prepare("SELECT room, seq, at, body FROM events WHERE session = ?1 ORDER BY id")?;
    let rows = events.query_map([id.as_str()], |row| {
        let room: String = row.get(0)?;
        let seq: i64 = row.get(1)?;
        let at: i64 = row.get(2)?;
        let body: String = row.get(3)?;
        Ok((room, seq, at, body))
    })?;
    let mut list = Vec::new();
    for row in rows {
        let (room, seq, at, body) = row?;
        list.push(decode_event(&room, seq, at, &body)?);
    }
    Ok(Some(StoredSession { record, events: list }))
}

fn load_room(
    connection: &Connection,
    session: &SessionId,
    room: Room,
    seqs: Range<u64>,
) -> rusqlite::Result<Vec<RoomEvent>> {
    let bound = |seq: u64| i64::try_from(seq).unwrap_or(i64::MAX);
    let mut events = connection.prepare_cached(
        "SELECT seq, at, body FROM events WHERE session = ?1 AND room = ?2 AND seq >= ?3 AND seq < ?4 \
         ORDER BY seq",
    )?;
    let rows = events
        .query_map(params![session.as_str(), room.as_str(), bound(seqs.start), bound(seqs.end)], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
        })?;
    let mut list = Vec::new();
    for row in rows {
        let (seq, at, body) = row?;
        list.push(decode_event(room.as_str(), seq, at, &body)?);
    }
    Ok(list)
}

fn decode_event(room: &str, seq: i64, at: i64, body: &str) -> rusqlite::Result<RoomEvent> {
    let room = Room::from_name(room).ok_or_else(|| bad_row(&format!("unknown room {room}")))?;
    let body: EventBody = serde_json::from_str(body).map_err(|err| bad_row(&err))?;
    Ok(RoomEvent { room, seq: seq as u64, at: at as u64, body })
}

fn bad_row(err: &dyn std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(format!("a stored row does not decode: {err}").into())
}

/// Copies a live database to `destination` with `VACUUM INTO`: a consistent snapshot,
/// safe while the server runs and writes, built from the live rows only, so that no
/// purged or erased text left in free space travels into the copy. Refuses to
/// overwrite an existing file.
pub fn backup(database: &Path, destination: &Path) -> Result<(), StoreError> {
    if destination.exists() {
        return Err(StoreError::new(format!("{} already exists; choose a new file", destination.display())));
    }
    if !database.exists() {
        return Err(StoreError::new(format!("there is no database at {}", database.display())));
    }
    // Written beside the destination and renamed into place once complete and synced,
    // so that a crash never leaves a partial file that looks like a backup.
    let partial = destination.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    create_private(&partial)?;
    let failed = |err: &dyn std::fmt::Display| {
        let _ = std::fs::remove_file(&partial);
        StoreError::new(format!("the backup failed: {err}"))
    };
    let source = open_connection(database, Duration::from_secs(5))?;
    let target = partial
        .to_str()
        .ok_or_else(|| StoreError::new(format!("{} is not a UTF-8 path", partial.display())))?;
    source.execute("VACUUM INTO ?1", [target]).map_err(|err| failed(&err))?;
    std::fs::File::open(&partial).and_then(|file| file.sync_all()).map_err(|err| failed(&err))?;
    std::fs::rename(&partial, destination).map_err(|err| failed(&err))?;
    if let Some(folder) = destination.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        let _ = std::fs::File::open(folder).and_then(|folder| folder.sync_all());
    }
    Ok(())
}

impl Store for SqliteStore {
    fn create_session<'a>(&'a self, record: &'a SessionRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(Work::CreateSession(record.clone()))
    }

    fn set_invite<'a>(
        &'a self,
        session: &'a SessionId,
        code: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(Work::SetInvite(session.clone(), code.to_owned()))
    }

    fn append<'a>(
        &'a self,
        session: &'a SessionId,
        events: Vec<EncodedEvent>,
        listing: Option<&'a Listing>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let listing = listing.map(|listing| serde_json::to_string(listing).expect("listings serialize"));
        self.submit(Work::Append(session.clone(), events, listing))
    }

    fn set_listing<'a>(
        &'a self,
        session: &'a SessionId,
        listing: &'a Listing,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let listing = serde_json::to_string(listing).expect("listings serialize");
        self.submit(Work::SetListing(session.clone(), listing))
    }

    fn purge<'a>(
        &'a self,
        session: &'a SessionId,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(Work::Purge(session.clone(), rooms.to_vec()))
    }

    fn rewrite<'a>(
        &'a self,
        session: &'a SessionId,
        events: &'a [RoomEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(Work::Rewrite(session.clone(), events.to_vec()))
    }

    fn record_erasure<'a>(
        &'a self,
        member: &'a MemberId,
        session: &'a SessionId,
        at: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.submit(Work::Erasure(member.clone(), session.clone(), at))
    }

    fn scrub(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.submit(Work::Scrub)
    }

    fn directory(&self) -> BoxFuture<'_, Result<Vec<ListedSession>, StoreError>> {
        self.read(load_directory)
    }

    fn load_session<'a>(
        &'a self,
        id: &'a SessionId,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, StoreError>> {
        let id = id.clone();
        self.read(move |connection| load_one(connection, &id))
    }

    fn room_events<'a>(
        &'a self,
        session: &'a SessionId,
        room: Room,
        seqs: Range<u64>,
    ) -> BoxFuture<'a, Result<Vec<RoomEvent>, StoreError>> {
        let session = session.clone();
        self.read(move |connection| load_room(connection, &session, room, seqs))
    }
}

#[cfg(test)]
mod tests {
    use caucus_protocol::{CaucusLabels, Settings};

    use super::*;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            id: SessionId::new(id).unwrap(),
            title: "t".into(),
            labels: CaucusLabels { a: "A".into(), b: "B".into() },
            settings: Settings::default(),
            ground_rules: None,
            invite_code: format!("invite-{id}"),
            created_by: MemberId::new("f-ada").unwrap(),
            created_at: 1,
            allow_guests: true,
        }
    }

    fn encode(events: &[RoomEvent]) -> Vec<EncodedEvent> {
        events.iter().map(EncodedEvent::of).collect()
    }

    fn message(room: Room, seq: u64, text: &str) -> RoomEvent {
        RoomEvent {
            room,
            seq,
            at: 10,
            body: EventBody::Message {
                from: MemberId::new("m-1").unwrap(),
                text: text.into(),
                client_id: None,
            },
        }
    }

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(SqliteOptions {
            path: dir.path().join("caucus.db"),
            group_commit: true,
            synchronous: Default::default(),
            busy_timeout: Duration::from_millis(100),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn events_come_back_in_the_order_they_were_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let session = record("s-1");
        store.create_session(&session).await.unwrap();
        let events =
            [message(Room::Plenary, 1, "one"), message(Room::Caucus(caucus_protocol::Caucus::A), 1, "two")];
        store.append(&session.id, encode(&events), None).await.unwrap();
        store.append(&session.id, encode(&[message(Room::Plenary, 2, "three")]), None).await.unwrap();
        drop(store);
        let store = open(&dir);
        assert_eq!(store.directory().await.unwrap().len(), 1);
        let loaded = store.load_session(&session.id).await.unwrap().expect("stored");
        assert_eq!(loaded.record, session);
        let texts: Vec<_> = loaded
            .events
            .iter()
            .map(|event| match &event.body {
                EventBody::Message { text, .. } => text.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(texts, ["one", "two", "three"]);
    }

    #[tokio::test]
    async fn a_duplicate_sequence_number_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let session = record("s-1");
        store.create_session(&session).await.unwrap();
        store.append(&session.id, encode(&[message(Room::Plenary, 1, "one")]), None).await.unwrap();
        let again = [message(Room::Plenary, 2, "two"), message(Room::Plenary, 1, "dup")];
        assert!(store.append(&session.id, encode(&again), None).await.is_err());
        assert_eq!(store.load_session(&session.id).await.unwrap().unwrap().events.len(), 1);
    }

    #[tokio::test]
    async fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(&dir));
        drop(open(&dir));
        let connection = Connection::open(dir.path().join("caucus.db")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let err = SqliteStore::open(SqliteOptions {
            path: dir.path().join("caucus.db"),
            group_commit: true,
            synchronous: Default::default(),
            busy_timeout: Duration::from_millis(100),
        })
        .unwrap_err();
        assert!(err.reason.contains("newer than this server"), "{err}");
    }
}

#[cfg(test)]
mod purge_tests {
    use caucus_protocol::{Caucus, CaucusLabels, EventBody, MemberId, Room, RoomEvent, SessionId, Settings};

    use super::*;

    /// Thousands of caucus and plenary rows, interleaved irregularly and of varied
    /// lengths, then the private rooms purged: deletions rebalance the pages, and a
    /// rebalance leaves copies of moved rows in the unused bytes of a page unless the
    /// database is rebuilt.
    #[tokio::test]
    async fn a_purge_leaves_no_byte_of_the_purged_rows_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caucus.db");
        let store = SqliteStore::open(SqliteOptions {
            path: path.clone(),
            group_commit: true,
            synchronous: Default::default(),
            busy_timeout: Duration::from_millis(100),
        })
        .unwrap();
        let session = SessionRecord {
            id: SessionId::new("s-purge").unwrap(),
            title: "t".into(),
            labels: CaucusLabels { a: "A".into(), b: "B".into() },
            settings: Settings::default(),
            ground_rules: None,
            invite_code: "invite".into(),
            created_by: MemberId::new("f-ada").unwrap(),
            created_at: 1,
            allow_guests: true,
        };
        store.create_session(&session).await.unwrap();
        let rooms = [Room::Plenary, Caucus::A.room(), Caucus::B.room(), Room::Facilitators];
        let mut heads = [0u64; 4];
        let mut state = 11u64;
        let mut next = |below: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        for _ in 0..3000 {
            let index = next(4) as usize;
            heads[index] += 1;
            let marker = if index == 0 { "KEPT" } else { "SECRET" };
            let text = format!("{marker} {}", "x".repeat(20 + next(1500) as usize));
            let from = MemberId::new("m-1").unwrap();
            let body = EventBody::Message { from, text, client_id: None };
            let event = RoomEvent { room: rooms[index], seq: heads[index], at: 10, body };
            store.append(&session.id, vec![EncodedEvent::of(&event)], None).await.unwrap();
        }
        store.purge(&session.id, &rooms[1..]).await.unwrap();
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            raw.extend(std::fs::read(entry.path()).unwrap());
        }
        let holds = |needle: &[u8]| raw.windows(needle.len()).any(|window| window == needle);
        assert!(holds(b"KEPT"), "the plenary is kept");
        assert!(!holds(b"SECRET"), "purged text is still in the database files");
    }
}
