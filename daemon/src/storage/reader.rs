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
use tokio::sync::Notify;

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
///
/// Besides opening and closing, the gate can be *paused* (`map_size` does, to resize an LMDB
/// map): no transaction may be open on a map while it is resized, so a pause waits for every
/// read in progress to end and makes new reads wait, not fail, until it is over. Every read of
/// an LMDB environment therefore goes through the gate: searches and snapshots borrow the read
/// side ([`ReadGate::enter`]); the ANN builder, which reads the environments it was started
/// with, counts its reads with [`ReadGate::reading`].
#[derive(Default)]
pub struct ReadGate {
    state: Mutex<GateState>,
    /// Signalled when the last read in progress ends.
    idle: Condvar,
    /// Signalled when a pause ends, for threads that wait for it.
    resumed: Condvar,
    /// Notified when a pause ends, for tasks that wait for it.
    unpaused: Notify,
}

#[derive(Default)]
struct GateState {
    side: Option<Arc<ReadSide>>,
    /// Reads in progress: leases lent and [`Reading`]s (`close` waits for them).
    active: usize,
    /// Those of them that may have an LMDB transaction open (a pause waits for them): all but
    /// the leases turned into [`TextLease`]s.
    lmdb: usize,
    /// Whether a pause is in progress (or waiting for the reads to end). Pauses are exclusive.
    paused: bool,
}

/// A lent read: the side stays valid until this is dropped.
pub struct ReadLease {
    gate: Arc<ReadGate>,
    side: Arc<ReadSide>,
    /// Whether it still counts as a read of LMDB (false once a [`TextLease`]).
    lmdb: bool,
}

impl std::ops::Deref for ReadLease {
    type Target = ReadSide;

    fn deref(&self) -> &ReadSide {
        &self.side
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        self.gate.leave(self.lmdb);
    }
}

impl ReadLease {
    /// The lease of a read that is done with LMDB and goes on in SQLite only (a snapshot's
    /// text copy): it still keeps the store open, but a pause no longer waits for it.
    pub fn into_text_only(mut self) -> TextLease {
        self.gate.leave_lmdb();
        self.lmdb = false;
        TextLease(self)
    }
}

/// A lease that reads SQLite only ([`ReadLease::into_text_only`]): `close` waits for it, a
/// pause does not.
pub struct TextLease(ReadLease);

impl TextLease {
    /// A spare read connection ([`ReadSide::spare`]).
    pub fn spare(&self) -> Result<Pooled<'_>, StorageError> {
        self.0.side.spare()
    }
}

/// A read in progress outside the lent side ([`ReadGate::reading`]).
pub struct Reading<'a> {
    gate: &'a ReadGate,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.gate.leave(true);
    }
}

/// Why a read could not enter at once.
enum Refused {
    Closed,
    Paused,
}

impl ReadGate {
    /// Borrows the read side, waiting while the gate is paused; `Closed` while the store is
    /// closed.
    pub async fn enter(self: &Arc<Self>) -> Result<ReadLease, StorageError> {
        loop {
            // Registered before looking, so a pause that ends in between still wakes us.
            let unpaused = self.unpaused.notified();
            tokio::pin!(unpaused);
            unpaused.as_mut().enable();
            match self.try_enter() {
                Ok(lease) => return Ok(lease),
                Err(Refused::Closed) => return Err(StorageError::Closed),
                Err(Refused::Paused) => unpaused.await,
            }
        }
    }

    fn try_enter(self: &Arc<Self>) -> Result<ReadLease, Refused> {
        let mut state = lock(&self.state);
        let side = state.side.clone().ok_or(Refused::Closed)?;
        if state.paused {
            return Err(Refused::Paused);
        }
        state.active += 1;
        state.lmdb += 1;
        Ok(ReadLease {
            gate: Arc::clone(self),
            side,
            lmdb: true,
        })
    }

    /// Counts a read that does not borrow the side (the ANN builder reading an environment it
    /// holds), blocking while the gate is paused; the read lasts as long as the guard. Works
    /// whether or not the gate is open: the builder starts before the gate opens and is
    /// stopped before it closes.
    pub fn reading(&self) -> Reading<'_> {
        let mut state = lock(&self.state);
        while state.paused {
            state = self.resumed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.active += 1;
        state.lmdb += 1;
        Reading { gate: self }
    }

    fn leave(&self, lmdb: bool) {
        let mut state = lock(&self.state);
        state.active -= 1;
        if lmdb {
            state.lmdb -= 1;
        }
        if state.active == 0 || state.lmdb == 0 {
            self.idle.notify_all();
        }
    }

    fn leave_lmdb(&self) {
        let mut state = lock(&self.state);
        state.lmdb -= 1;
        if state.lmdb == 0 {
            self.idle.notify_all();
        }
    }

    /// Pauses the gate: waits for another pause to end, then until no read of LMDB is in
    /// progress; no read starts until the returned guard is dropped. The caller must hold no
    /// lease and no [`Reading`] itself (it would wait for itself).
    pub fn pause(&self) -> Pause<'_> {
        let mut state = lock(&self.state);
        while state.paused {
            state = self.resumed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.paused = true;
        while state.lmdb > 0 {
            state = self.idle.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        Pause { gate: self }
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
        drop(state);
        // Reads waiting for a pause to end see the gate closed and give up.
        self.unpaused.notify_waiters();
        side
    }
}

/// A pause of the gate: no read is in progress and none starts until it is dropped.
pub struct Pause<'a> {
    gate: &'a ReadGate,
}

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).paused = false;
        self.gate.resumed.notify_all();
        self.gate.unpaused.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Long enough for a wrong gate to show itself; a right one never returns in it.
    const LOOK: Duration = Duration::from_millis(200);

    #[test]
    fn a_pause_waits_for_reads_in_progress_and_holds_new_ones_back() {
        let gate = &ReadGate::default();
        let (paused_tx, paused) = mpsc::channel();
        let (end_tx, end) = mpsc::channel::<()>();
        let (entered_tx, entered) = mpsc::channel();
        std::thread::scope(|s| {
            let first = gate.reading();
            s.spawn(move || {
                let pause = gate.pause();
                paused_tx.send(()).expect("send");
                end.recv().expect("told to end");
                drop(pause);
            });
            assert!(
                paused.recv_timeout(LOOK).is_err(),
                "the pause began while a read was in progress"
            );
            drop(first);
            paused.recv().expect("the pause begins once the read ends");

            s.spawn(move || {
                let _second = gate.reading();
                entered_tx.send(()).expect("send");
            });
            assert!(
                entered.recv_timeout(LOOK).is_err(),
                "a read began during the pause"
            );
            end_tx.send(()).expect("send");
            entered.recv().expect("the read begins once the pause ends");
        });
    }

    /// A snapshot's text copy keeps the store open (`close` waits for it) but does not hold up
    /// a pause to grow a map.
    #[test]
    fn a_text_only_lease_holds_up_close_but_not_a_pause() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gate: Arc<ReadGate> = Arc::default();
        let options = super::super::StoreOptions {
            read_threads: 1,
            ..Default::default()
        };
        let storage = super::super::owner::Storage::open(dir.path(), options, Arc::clone(&gate))
            .expect("open");
        gate.open(Arc::clone(&storage.side));
        let lease = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(gate.enter())
            .expect("a lease");
        let text = lease.into_text_only();
        let (paused_tx, paused) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        std::thread::scope(|s| {
            let gate = &gate;
            s.spawn(move || {
                drop(gate.pause());
                paused_tx.send(()).expect("send");
            });
            paused
                .recv_timeout(Duration::from_secs(60))
                .expect("a pause waited for a text-only lease");
            s.spawn(move || {
                drop(gate.close());
                closed_tx.send(()).expect("send");
            });
            assert!(
                closed.recv_timeout(LOOK).is_err(),
                "closed while a text lease was out"
            );
            drop(text);
            closed.recv().expect("closed once the lease returned");
        });
        storage.close().expect("close");
    }

    #[test]
    fn pauses_take_turns() {
        let gate = &ReadGate::default();
        let (second_tx, second) = mpsc::channel();
        std::thread::scope(|s| {
            let first = gate.pause();
            s.spawn(move || {
                let _pause = gate.pause();
                second_tx.send(()).expect("send");
            });
            assert!(second.recv_timeout(LOOK).is_err(), "two pauses at once");
            drop(first);
            second.recv().expect("the second pause follows the first");
        });
    }
}
