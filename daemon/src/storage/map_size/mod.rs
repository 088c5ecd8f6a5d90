//! How large the LMDB maps are, and how they grow.
//!
//! An LMDB environment is one memory map of a fixed size, and a write that needs more than it
//! fails with `MDB_MAP_FULL`. So both environments (the vectors, the ANN tier) start at a size
//! that costs nothing but address space and grow by doubling when a write needs more:
//!
//! | platform | initial map | grows to | what a map costs |
//! |---|---|---|---|
//! | Unix | 1 TiB | 64 TiB, doubling | address space only: `data.mdb` grows as data is written |
//! | Windows | 4 GiB | 64 TiB, doubling | address space only: the LMDB heed bundles grows `data.mdb` as it writes (it reserves the view, `SEC_RESERVE`, without extending the file) |
//! | under `ulimit -v` | the largest size four maps fit in, at least 64 MiB | as the limit allows | |
//!
//! (The 1 GiB Windows map of before assumed LMDB grew the file to the map at open; the bundled
//! `mdb.c` does that only when built with `MDB_FIXEDSIZE`, which heed does not set.)
//!
//! Growing needs no transaction open on the environment anywhere in the process: the thread
//! that writes it (the storage thread for the vectors, the ANN builder for its index) pauses
//! the read gate, which waits for the reads in progress and holds new ones back, resizes, and
//! lets them go ([`Growing::write`]). Before a write group commits in SQLite, the storage
//! thread grows the main map if the group's bound would not fit, so a write is not committed in
//! SQLite and then refused by LMDB for want of map; a transaction that still meets
//! `MDB_MAP_FULL` was aborted whole by LMDB and is run again after growing. A map that cannot grow (64 TiB, or a process out of address
//! space) refuses the write as `disk_full` ([`StorageError::NoRoom`]), with nothing written.
//!
//! `CTXD_INITIAL_MAP_SIZE` (bytes, for tests) starts both maps smaller, so growing can be
//! exercised without writing gigabytes.

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

use super::StorageError;
use super::reader::ReadGate;
use heed::{Env, WithoutTls};

/// Where both maps start on Unix.
#[cfg(unix)]
const INITIAL: usize = 1 << 40;
/// Where both maps start on Windows: far past a first store, and a size no 64-bit process has
/// trouble reserving; a larger store is served by growing.
#[cfg(windows)]
const INITIAL: usize = 4 << 30;

/// The most a map grows to: 64 TiB, half the address space of a 64-bit process on Linux and
/// Windows.
const MAX: usize = 1 << 46;

/// The environment variable that starts both maps smaller (for tests).
pub const INITIAL_ENV: &str = "CTXD_INITIAL_MAP_SIZE";

/// The least a map starts at when the process cannot map the platform's initial size.
const FLOOR: usize = 64 << 20;

/// The size a map starts at: `CTXD_INITIAL_MAP_SIZE` when set (at least 64 KiB, rounded up to a
/// multiple of it: a multiple of every page size LMDB meets), else the platform's — or less
/// when the process may not map that much (`ulimit -v`).
pub fn initial() -> usize {
    let wanted = std::env::var(INITIAL_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(INITIAL, |bytes| {
            bytes.max(1 << 16).next_multiple_of(1 << 16)
        });
    fitting(wanted)
}

/// `wanted`, halved (down to [`FLOOR`]) until four maps of the size would fit in the address
/// space the process may still map: the two environments, each with room to double once.
/// Without this, a limit on virtual memory below 4 TiB would stop the store from opening at all.
fn fitting(wanted: usize) -> usize {
    let mut size = wanted;
    while size > FLOOR && !platform::can_map(size.saturating_mul(4)) {
        size /= 2;
    }
    if size < wanted {
        tracing::info!(
            map = size,
            "the process may not map {wanted} bytes (a limit on its virtual memory): the memory \
             maps start smaller and grow as long as the limit allows"
        );
    }
    size
}

/// The size to grow a map of `current` bytes, `used` of them in use, to so that it holds
/// `needed` more: at least double, doubling until it does, rounded up to whole 64 KiB (a
/// multiple of every page size: `current` need not be one, since LMDB opens a map at what its
/// file holds, counted in its own pages), at most [`MAX`]. `None` when even that is not enough.
pub fn next(current: usize, used: usize, needed: usize) -> Option<usize> {
    const ALIGN: usize = 1 << 16;
    let want = used.checked_add(needed)?;
    if current >= MAX || want > MAX {
        return None;
    }
    let mut size = current.max(ALIGN);
    loop {
        size = size.saturating_mul(2);
        if size >= want {
            break;
        }
    }
    Some(size.next_multiple_of(ALIGN).min(MAX))
}

/// A failure that may be LMDB's `MDB_MAP_FULL`.
pub trait MaybeMapFull {
    /// Whether it is.
    fn is_map_full(&self) -> bool;
}

impl MaybeMapFull for heed::Error {
    fn is_map_full(&self) -> bool {
        matches!(self, heed::Error::Mdb(heed::MdbError::MapFull))
    }
}

/// One environment that grows: the environment, the gate every read of it passes, and what to
/// call it in messages.
#[derive(Clone, Copy)]
pub struct Growing<'a> {
    /// The environment.
    pub env: &'a Env<WithoutTls>,
    /// The gate its readers pass.
    pub gate: &'a ReadGate,
    /// "the vector store", "the ANN index".
    pub what: &'static str,
}

impl Growing<'_> {
    /// Runs `write`, one write transaction on the environment, so that it finds room: the map
    /// is grown first when `needed` bytes more would not fit, and again, with `write` run anew,
    /// each time it still meets `MDB_MAP_FULL` (LMDB aborts such a transaction, so nothing of
    /// it is written). A map that cannot grow any more is [`StorageError::NoRoom`].
    ///
    /// The caller must hold no transaction of the environment, and `write` must drop its own
    /// before returning an error.
    pub fn write<T, E>(self, needed: usize, mut write: impl FnMut() -> Result<T, E>) -> Result<T, E>
    where
        E: MaybeMapFull + From<StorageError>,
    {
        self.make_room(needed)?;
        loop {
            match write() {
                Err(e) if e.is_map_full() => self.grow(needed)?,
                other => return other,
            }
        }
    }

    /// Grows the map now if `needed` bytes more would not fit in it.
    pub fn make_room(self, needed: usize) -> Result<(), StorageError> {
        let (used, size) = self.usage();
        if used.saturating_add(needed) > size {
            self.grow(needed)?;
        }
        Ok(())
    }

    /// The bytes in use (up to the last page written) and the map's size.
    fn usage(self) -> (usize, usize) {
        let info = self.env.info();
        let page = self.env.unnamed_database_stat().page_size as usize;
        (
            info.last_page_number.saturating_add(1) * page,
            info.map_size,
        )
    }

    /// Grows the map so that it holds `needed` bytes more: pauses the gate (every read in
    /// progress ends first, new ones wait), resizes, and lets the reads go.
    fn grow(self, needed: usize) -> Result<(), StorageError> {
        let (used, current) = self.usage();
        let what = self.what;
        let size = next(current, used, needed).ok_or_else(|| {
            StorageError::NoRoom(format!(
                "{what} holds {} MiB and its memory map cannot grow beyond {} GiB",
                used >> 20,
                MAX >> 30
            ))
        })?;
        // LMDB unmaps the old view before it maps the new one, and an environment whose new
        // view cannot be mapped is left pointing at memory it no longer has: probe first, so a
        // process short of address space (`ulimit -v`) gets an error it can recover from.
        if !platform::can_map(size) {
            return Err(StorageError::NoRoom(format!(
                "{what} needs a memory map of {} MiB and the process cannot map that much \
                 address space (raise its virtual memory limit)",
                size >> 20
            )));
        }
        let pausing = std::time::Instant::now();
        let pause = self.gate.pause();
        let waited = pausing.elapsed();
        // SAFETY (heed's `resize` contract: no transaction open on the environment anywhere in
        // the process): every read of it from another thread passes the gate (searches,
        // snapshots and `status` borrow the read side, the ANN builder counts its reads of the
        // main store), and the pause has waited for each of them to end and holds new ones
        // back. The calling thread is the environment's one writer and reads it only between
        // its resizes (opening, `check`, closing), and `write`'s contract says its own
        // transaction has ended. The size is a multiple of 64 KiB (`next`), so of the system
        // page size, as heed requires.
        #[allow(unsafe_code)]
        let resized = unsafe { self.env.resize(size) };
        drop(pause);
        let paused = pausing.elapsed();
        if let Err(e) = resized {
            // Past the probe this is the mapping itself failing, and the environment can no
            // longer be touched safely, not even to close it. Every acknowledged write is
            // durable in SQLite and its journal, and is replayed at the next start.
            tracing::error!(
                "{what}: cannot map {} MiB after unmapping the old view ({e}); stopping at \
                 once, nothing acknowledged is lost",
                size >> 20
            );
            std::process::abort();
        }
        tracing::info!(
            what,
            path = %self.env.path().display(),
            from = current,
            to = size,
            used,
            // How long reads were held back: waiting for those in progress, then resizing.
            waited_us = waited.as_micros() as u64,
            paused_us = paused.as_micros() as u64,
            "memory map grown"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heed::types::Bytes;
    use heed::{Database, EnvOpenOptions};

    /// A write that does not say what it needs meets `MDB_MAP_FULL`, and is run again after
    /// growing, as often as it takes.
    #[test]
    fn a_write_that_meets_map_full_grows_the_map_and_runs_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(1 << 16).max_dbs(2);
        // SAFETY: a fresh environment in a temporary directory, opened once.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(dir.path()) }.expect("open");
        let wtxn = env.write_txn().expect("write txn");
        let db: Database<'_, Bytes, Bytes> = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let db = opener.create_database(wtxn, Some("values"))?;
                Ok::<_, heed::Error>(heed::CommitOrAbort::<_, ()>::Commit(db))
            })
            .expect("db")
            .unwrap_commit();
        let gate = ReadGate::default();
        let growing = Growing {
            env: &env,
            gate: &gate,
            what: "a test store",
        };
        let mut attempts = 0;
        let value = vec![7u8; 1 << 20];
        growing
            .write(0, || {
                attempts += 1;
                let mut wtxn = env.write_txn()?;
                for key in 0u32..4 {
                    db.put(&mut wtxn, &key.to_be_bytes(), &value)?;
                }
                Ok::<_, StorageError>(wtxn.commit()?)
            })
            .expect("written after growing");
        assert!(attempts > 1, "it met MDB_MAP_FULL first");
        assert!(env.info().map_size >= 4 << 20);
        let rtxn = env.read_txn().expect("read txn");
        assert_eq!(db.len(&rtxn).expect("len"), 4);
    }

    #[test]
    fn maps_double_until_the_data_fits() {
        assert_eq!(
            next(1 << 20, 1 << 19, 1 << 10),
            Some(2 << 20),
            "always grows"
        );
        assert_eq!(next(1 << 20, 1 << 20, 3 << 20), Some(4 << 20));
        // A map opened at what its file holds, in 4 KiB pages, grows to whole 64 KiB.
        assert_eq!(next(5 * 4096, 5 * 4096, 1), Some(2 << 16));
        assert_eq!(next(3 << 16 | 4096, 0, 1), Some(7 << 16));
        assert_eq!(
            next(MAX / 2 + 4096, 0, 1),
            Some(MAX),
            "the last step stops at the most"
        );
        assert_eq!(next(MAX, 0, 1), None);
        assert_eq!(next(1 << 20, MAX, 1), None);
        assert_eq!(next(1 << 20, usize::MAX, 1), None);
    }
}
