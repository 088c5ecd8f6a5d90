//! Lending read access: readers run concurrently with each other and with the writer.
//!
//! The storage thread owns every handle. While the store is open it lends a [`ReadSide`]
//! (read-only SQLite connections, an LMDB reader, the catalog and the in-memory vector sets)
//! through the [`ReadGate`]. Closing shuts the gate (new reads fail with `Closed`), waits until
//! every lent read has returned, and only then closes the files — so "closed" never races with
//! a read in progress.

use super::StorageError;
use super::ann_state::AnnSide;
use super::catalog::{Catalog, Collection};
use super::fts::TermStats;
use super::text;
use super::vector_set::VectorSet;
use super::vectors::VectorReader;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

/// A collection's in-memory vectors, shared by searches (read lock) and the writer.
pub type SharedVectorSet = Arc<RwLock<VectorSet>>;

/// What readers borrow while the store is open.
pub struct ReadSide {
    /// Vector reads (LMDB snapshots).
    pub vectors: VectorReader,
    /// Every collection, kept current by the writer.
    pub catalog: RwLock<Catalog>,
    /// Each collection's in-memory vector set, by collection id.
    pub sets: RwLock<HashMap<u16, SharedVectorSet>>,
    /// The last committed generation.
    pub generation: AtomicU64,
    /// The ANN tier: collections served by arroy indexes, their pending changes.
    pub ann: AnnSide,
    text_path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    spares: Mutex<Vec<Connection>>,
    term_stats: Mutex<HashMap<u16, Arc<TermStats>>>,
}

impl ReadSide {
    /// A read side over freshly opened stores.
    pub fn new(
        vectors: VectorReader,
        catalog: Catalog,
        sets: HashMap<u16, SharedVectorSet>,
        generation: u64,
        text_path: PathBuf,
        ann: AnnSide,
    ) -> ReadSide {
        ReadSide {
            vectors,
            catalog: RwLock::new(catalog),
            sets: RwLock::new(sets),
            generation: AtomicU64::new(generation),
            ann,
            text_path,
            pool: Mutex::new(Vec::new()),
            spares: Mutex::new(Vec::new()),
            term_stats: Mutex::new(HashMap::new()),
        }
    }

    /// A collection's term statistics, read again once the collection has drifted 10 % from
    /// them.
    pub fn term_stats(
        &self,
        conn: &Connection,
        collection: &Collection,
    ) -> Result<Arc<TermStats>, StorageError> {
        let mut cache = lock(&self.term_stats);
        if let Some(stats) = cache.get(&collection.id)
            && !stats.stale(collection.count)
        {
            return Ok(Arc::clone(stats));
        }
        let stats = Arc::new(TermStats::load(
            conn,
            &collection.fts_table(),
            collection.count,
        )?);
        cache.insert(collection.id, Arc::clone(&stats));
        Ok(stats)
    }

    /// Forgets what is cached about a dropped collection (its id may be reused).
    pub fn forget(&self, id: u16) {
        lock(&self.term_stats).remove(&id);
    }

    /// The catalog, for reading.
    pub fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The vector set of collection `id`.
    pub fn set(&self, id: u16) -> Option<SharedVectorSet> {
        self.sets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// The last committed generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Opens the pool: `n` read-only connections, one per read thread, and [`SPARES`] more for
    /// work beside the reads (the second half of a costly lexical query, a snapshot's copy), so
    /// the daemon's handles are the same before, during and after any burst.
    ///
    /// A fixed set rather than one opened per read and closed after: in WAL mode every SQLite
    /// connection holds a shared lock on the database for as long as it is open, and SQLite
    /// cannot close a descriptor while the process holds a lock on the file (POSIX locks
    /// belong to the process), so a connection closed after a burst would leave its
    /// descriptor open until the store closes.
    pub fn open_pool(&self, n: usize) -> Result<(), StorageError> {
        let open = |count: usize| -> Result<Vec<Connection>, StorageError> {
            (0..count)
                .map(|_| text::open_reader(&self.text_path))
                .collect()
        };
        let (main, spares) = (open(n)?, open(if n == 0 { 0 } else { SPARES })?);
        lock(&self.pool).extend(main);
        lock(&self.spares).extend(spares);
        Ok(())
    }

    /// A read-only connection for a read, given back when dropped. Each read thread holds one
    /// at a time, so the pool is never empty while serving; without a pool (a store opened to
    /// check a copy) one is opened for the occasion.
    pub fn conn(&self) -> Result<Pooled<'_>, StorageError> {
        let pooled = lock(&self.pool).pop();
        self.lend(pooled, Pool::Main)
    }

    /// A spare connection if one is idle now, for work that can also run without it (the
    /// second half of a costly lexical query).
    pub fn try_spare(&self) -> Option<Pooled<'_>> {
        let conn = lock(&self.spares).pop()?;
        Some(Pooled {
            side: self,
            conn: Some(conn),
            home: Some(Pool::Spare),
        })
    }

    /// A spare connection, or a new one if none is idle (a snapshot's copy).
    pub fn spare(&self) -> Result<Pooled<'_>, StorageError> {
        let pooled = lock(&self.spares).pop();
        self.lend(pooled, Pool::Spare)
    }

    fn lend(&self, pooled: Option<Connection>, pool: Pool) -> Result<Pooled<'_>, StorageError> {
        Ok(match pooled {
            Some(conn) => Pooled {
                side: self,
                conn: Some(conn),
                home: Some(pool),
            },
            None => Pooled {
                side: self,
                conn: Some(text::open_reader(&self.text_path)?),
                home: None,
            },
        })
    }

    /// Runs `f` with a read-only SQLite connection from the pool.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let conn = self.conn()?;
        f(&conn)
    }
}

/// Spare connections beside one per read thread: two for the second halves of costly lexical
/// queries (more would rarely find a free core), one for each snapshot that may copy at once.
pub const SPARES: usize = 2 + super::snapshot::MAX_CONCURRENT;

/// Which pool a connection goes back to.
#[derive(Clone, Copy)]
enum Pool {
    Main,
    Spare,
}

/// A connection borrowed from the [`ReadSide`]'s pools.
pub struct Pooled<'a> {
    side: &'a ReadSide,
    conn: Option<Connection>,
    /// The pool it goes back to (`None`: opened for the occasion, closed when dropped).
    home: Option<Pool>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        match self.home {
            Some(Pool::Main) => lock(&self.side.pool).push(conn),
            Some(Pool::Spare) => lock(&self.side.spares).push(conn),
            None => {}
        }
    }
}

/// Hands out the [`ReadSide`] while the store is open.
#[derive(Default)]
pub struct ReadGate {
    state: Mutex<GateState>,
    idle: Condvar,
}

#[derive(Default)]
struct GateState {
    side: Option<Arc<ReadSide>>,
    active: usize,
}

/// A lent read: the side stays valid until this is dropped.
pub struct ReadLease {
    gate: Arc<ReadGate>,
    side: Arc<ReadSide>,
}

impl std::ops::Deref for ReadLease {
    type Target = ReadSide;

    fn deref(&self) -> &ReadSide {
        &self.side
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let mut state = lock(&self.gate.state);
        state.active -= 1;
        if state.active == 0 {
            self.gate.idle.notify_all();
        }
    }
}

impl ReadGate {
    /// Borrows the read side; `Closed` while the store is closed.
    pub fn enter(self: &Arc<Self>) -> Result<ReadLease, StorageError> {
        let mut state = lock(&self.state);
        let side = state.side.clone().ok_or(StorageError::Closed)?;
        state.active += 1;
        Ok(ReadLease {
            gate: Arc::clone(self),
            side,
        })
    }

    /// Opens the gate.
    pub fn open(&self, side: Arc<ReadSide>) {
        lock(&self.state).side = Some(side);
    }

    /// Shuts the gate and waits until no read is in progress; returns the side so the caller
    /// can drop the last reference before closing the files.
    pub fn close(&self) -> Option<Arc<ReadSide>> {
        let mut state = lock(&self.state);
        let side = state.side.take();
        while state.active > 0 {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        side
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
