//! `text.sqlite3`: documents, metadata, the FTS5 index and the collection catalog.
//!
//! One read-write connection, owned by the storage thread. WAL mode so readers never block the
//! writer; closing checkpoints with `TRUNCATE` first, so that after close no `-wal` or `-shm`
//! file remains and the database file alone is a complete copy.

use super::StorageError;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "text.sqlite3";

/// The schema version this build creates (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for a lock held by another connection of ours (checkpoints and
/// backups take such locks briefly).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The open SQLite database.
pub struct TextStore {
    conn: Connection,
    path: PathBuf,
}

/// Counts `status` reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextStats {
    /// The last committed generation.
    pub generation: u64,
    /// Number of collections.
    pub collections: u64,
    /// Number of documents over all collections.
    pub documents: u64,
}

impl TextStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<TextStore, StorageError> {
        let path = data_dir.join(FILE_NAME);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers and the writer do not block each other. synchronous=FULL: a commit is
        // on disk (fsynced) before it is acknowledged.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Format {
                path,
                message: format!("cannot switch to WAL mode (journal_mode is {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let store = TextStore { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StorageError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?;
        match version {
            0 => {
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
                Ok(())
            }
            SCHEMA_VERSION => Ok(()),
            other => Err(StorageError::Format {
                path: self.path.clone(),
                message: format!(
                    "schema version {other} is newer than this ctxd understands ({SCHEMA_VERSION})"
                ),
            }),
        }
    }

    /// The counts `status` reports.
    pub fn stats(&self) -> Result<TextStats, StorageError> {
        let generation: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'generation'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let (collections, documents): (i64, i64) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(count), 0) FROM collections",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(TextStats {
            generation: generation.unwrap_or(0).try_into().unwrap_or(0),
            collections: collections.try_into().unwrap_or(0),
            documents: documents.try_into().unwrap_or(0),
        })
    }

    /// Checkpoints the WAL into the database file and closes the connection, so no `-wal` or
    /// `-shm` file remains.
    pub fn close(self) -> Result<(), StorageError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                let busy: i64 = row.get(0)?;
                Ok(busy)
            })
            .and_then(|busy| {
                if busy == 0 {
                    Ok(())
                } else {
                    Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("WAL checkpoint could not complete".to_owned()),
                    ))
                }
            })?;
        self.conn.close().map_err(|(_, e)| StorageError::Sqlite(e))
    }
}
