//! `text.sqlite3`: documents, metadata, the FTS5 indexes, the collection catalog and the redo
//! journal of vector changes.
//!
//! One read-write connection belongs to the storage thread; read-only connections are lent to
//! readers (WAL mode: readers see the last committed state and never block the writer).
//! `synchronous=FULL`: a commit is fsynced before it is acknowledged. Closing checkpoints with
//! `TRUNCATE` first, so that after close no `-wal` or `-shm` file remains and the database file
//! alone is a complete copy.

use super::StorageError;
use super::journal_codec;
use super::vectors::VectorChange;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "text.sqlite3";

/// The schema version this build creates (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for a lock held by another connection of ours (a checkpoint, or
/// the writer while a reader starts).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per connection: 32 MiB (SQLite's default is 2 MiB), so FTS5 and document reads
/// of a 100k-document collection stay in memory.
const CACHE_KIB: i64 = 32 * 1024;

/// WAL pages after which a commit also checkpoints: 16384 pages (64 MiB) instead of SQLite's
/// 1000 (4 MB), which a 1000-document batch exceeds, so bulk imports checkpoint every few
/// batches instead of at every commit.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// The read-write connection.
pub struct TextStore {
    conn: Connection,
    path: PathBuf,
}

impl TextStore {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<TextStore, StorageError> {
        let path = data_dir.join(FILE_NAME);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        super::text_filter_sql::register(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Format {
                path,
                message: format!("cannot switch to WAL mode (journal_mode is {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        let store = TextStore { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// The connection (the storage thread's, for writes).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StorageError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StorageError::Format {
                path: self.path.clone(),
                message: format!(
                    "schema version {version} is newer than this ctxd understands ({SCHEMA_VERSION})"
                ),
            });
        }
        if version < 1 {
            self.conn.execute_batch(
                "BEGIN;
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) STRICT;
                 INSERT INTO meta (key, value) VALUES ('generation', 0);
                 CREATE TABLE collections (
                     id INTEGER PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE,
                     dimension INTEGER NOT NULL,
                     distance TEXT NOT NULL,
                     tokenizer TEXT NOT NULL,
                     count INTEGER NOT NULL DEFAULT 0,
                     created_at INTEGER NOT NULL
                 ) STRICT;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        if version < 2 {
            // Documents get a key that never changes and is never reused (AUTOINCREMENT): it is
            // the FTS5 rowid and the vector's LMDB key, so a stale index entry can never point
            // at another document.
            self.conn.execute_batch(
                "BEGIN;
                 CREATE TABLE documents (
                     key INTEGER PRIMARY KEY AUTOINCREMENT,
                     collection INTEGER NOT NULL,
                     id TEXT NOT NULL,
                     text TEXT,
                     metadata TEXT,
                     has_vector INTEGER NOT NULL,
                     UNIQUE (collection, id)
                 ) STRICT;
                 CREATE INDEX documents_by_collection ON documents (collection);
                 CREATE TABLE redo (
                     generation INTEGER PRIMARY KEY,
                     changes BLOB NOT NULL
                 ) STRICT;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        }
        if version < 3 {
            // A collection may name the model that embeds its text, with the SHA-256 of the
            // weights, so a daemon with another model under that name refuses to mix vectors.
            self.conn.execute_batch(
                "BEGIN;
                 ALTER TABLE collections ADD COLUMN embedder TEXT;
                 ALTER TABLE collections ADD COLUMN embedder_sha256 TEXT;
                 PRAGMA user_version = 3;
                 COMMIT;",
            )?;
        }
        Ok(())
    }

    /// Checkpoints the WAL into the database file and closes the connection, so no `-wal` or
    /// `-shm` file remains. Every reader connection must be closed before.
    pub fn close(self) -> Result<(), StorageError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy != 0 {
            return Err(StorageError::Corrupt(
                "the WAL checkpoint could not complete (a reader is still open)".to_owned(),
            ));
        }
        self.conn.close().map_err(|(_, e)| StorageError::Sqlite(e))
    }
}

/// Opens a read-only connection for a reader.
pub fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    super::text_filter_sql::register(&conn)?;
    Ok(conn)
}

/// The generation SQLite last committed.
pub fn generation(conn: &Connection) -> Result<u64, StorageError> {
    let generation: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'generation'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(generation.unwrap_or(0).try_into().unwrap_or(0))
}

/// Records the generation (inside the caller's transaction).
pub fn set_generation(conn: &Connection, generation: u64) -> Result<(), StorageError> {
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'generation'",
        [i64::try_from(generation).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// Journals the vector changes of a group whose last generation is `generation` (inside the
/// caller's transaction), so they survive a crash between the SQLite and the LMDB commit. One
/// row per group: a single blob write costs far less than a row per vector.
pub fn journal(
    conn: &Connection,
    generation: u64,
    changes: &[VectorChange],
) -> Result<(), StorageError> {
    let mut insert =
        conn.prepare_cached("INSERT INTO redo (generation, changes) VALUES (?1, ?2)")?;
    insert.execute(params![
        i64::try_from(generation).unwrap_or(i64::MAX),
        journal_codec::encode(changes)
    ])?;
    Ok(())
}

/// Journaled vector changes of groups newer than `after`, in commit order: what LMDB is
/// missing after a crash.
pub fn journal_since(conn: &Connection, after: u64) -> Result<Vec<VectorChange>, StorageError> {
    let mut select =
        conn.prepare("SELECT changes FROM redo WHERE generation > ?1 ORDER BY generation")?;
    let blobs = select.query_map([i64::try_from(after).unwrap_or(i64::MAX)], |row| {
        row.get::<_, Vec<u8>>(0)
    })?;
    let mut changes = Vec::new();
    for blob in blobs {
        changes.extend(journal_codec::decode(&blob?)?);
    }
    Ok(changes)
}

/// Writes a compact, consistent copy of the database to `dest` through a read-only connection
/// (one read transaction: writers are not blocked) and returns the generation it holds.
pub fn copy_into(conn: &Connection, dest: &Path) -> Result<u64, StorageError> {
    conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])?;
    let copy = open_reader(dest)?;
    generation(&copy)
}

/// Forgets journaled changes LMDB has committed (inside the caller's transaction).
pub fn prune_journal(conn: &Connection, through: u64) -> Result<(), StorageError> {
    conn.execute(
        "DELETE FROM redo WHERE generation <= ?1",
        [i64::try_from(through).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}
