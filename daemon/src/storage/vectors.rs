//! `vectors/`: the LMDB environment that holds every document vector.
//!
//! Layout: the `vectors` database maps `[collection u16 BE][key u32 BE]` to the vector's `f32`
//! values (little-endian), so one collection's vectors are one contiguous key range; the `meta`
//! database holds the generation this store last committed. Vectors are written here only after
//! the same write committed in SQLite (with the vectors in SQLite's redo journal), so this store
//! can never be ahead of SQLite, and a crash between the two commits is repaired by replaying
//! the journal at the next open (see `storage::writer`).
//!
//! The map starts large and grows when a write needs more (`storage::map_size`); the read
//! gate the store was opened with is paused while it does.
//!
//! The environment is opened by the storage thread only and closed with heed's
//! `prepare_for_closing().wait()`, which returns once LMDB has really closed the files and
//! unmapped them. Database handles are reopened after every environment open (handles from a
//! previous open panic when used).

use super::StorageError;
use super::map_size::{self, Growing};
use super::reader::ReadGate;
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U64};
use heed::{
    CommitOrAbort, CompactionOption, Database, Env, EnvOpenOptions, PutFlags, RoTxn, RwTxn,
    WithoutTls,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The directory name inside the data directory.
pub const DIR_NAME: &str = "vectors";

/// The environment's data file, relative to the data directory.
pub const DATA_FILE: &str = "vectors/data.mdb";

/// LMDB's reader table, relative to the data directory (never part of a copy).
pub const LOCK_FILE: &str = "vectors/lock.mdb";

/// What messages call this environment.
const WHAT: &str = "the vector store";

/// Named databases inside the environment: `vectors`, `meta`, and room for the ANN indexes.
const MAX_DBS: u32 = 16;

/// Slots in LMDB's reader table (its default is 126): every read transaction open at once takes
/// one. Reads run on at most `read_pool::MAX_THREADS` threads, each with one transaction at a
/// time; snapshots, the ANN builder and the storage thread take a few more. A slot is 64 bytes
/// of `lock.mdb`.
pub(crate) const MAX_READERS: u32 = 2 * super::read_pool::MAX_THREADS as u32 + 64;

/// How long closing waits for the environment to be released by every holder.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `meta` key of the ANN clean-close marker.
const ANN_CLEAN: &str = "ann_clean";

/// The key of a vector: collection, then document key, both big-endian so a collection is one
/// key range in key order.
pub fn vector_key(collection: u16, key: u32) -> [u8; 6] {
    let mut bytes = [0u8; 6];
    bytes[..2].copy_from_slice(&collection.to_be_bytes());
    bytes[2..].copy_from_slice(&key.to_be_bytes());
    bytes
}

/// Encodes a vector as little-endian `f32`s.
pub fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian `f32`s.
pub fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Decodes little-endian `f32`s into `out`, replacing its contents (no allocation once `out`
/// has room: re-scoring decodes hundreds of vectors per search).
pub fn decode_into(bytes: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
}

/// LMDB's node header and our 6-byte key, rounded up.
const NODE_GROWTH: u64 = 64;

/// What deleting one vector by id can add to the file at most: half a 4 KiB leaf (the copy of
/// the leaf it leaves; two 384-dimensional vectors share one).
pub const DELETE_GROWTH: u64 = 2048;

/// What one transaction adds besides its entries: branch and meta pages and LMDB's free list,
/// 64 pages.
pub const FIXED_GROWTH: u64 = 64 * 4096;

/// What putting a vector of `values` values can add to the file at most.
///
/// LMDB never overwrites a page a reader may see: a transaction writes every page it changes
/// anew, and the pages it replaces are reused only by later transactions. So a put costs at
/// most its vector plus the node that holds it, written once as a new leaf or overflow page and
/// once more when its leaf splits (twice both), with the branch pages above amortised over the
/// transaction ([`FIXED_GROWTH`]).
pub fn put_growth(values: usize) -> u64 {
    2 * (4 * values as u64 + NODE_GROWTH)
}

/// What committing `changes` can add to the file at most (for growing the map before it, and
/// for the disk space reserved ahead: `storage::headroom`). Clearing a collection adds no
/// estimate of its own: it shrinks what is stored, and the fixed part covers its copies.
pub fn growth_bound(changes: &[VectorChange]) -> u64 {
    let entries: u64 = changes
        .iter()
        .map(|change| match change {
            VectorChange::Put { vector, .. } => put_growth(vector.len()),
            VectorChange::Delete { .. } => DELETE_GROWTH,
            VectorChange::Clear { .. } => 0,
        })
        .sum();
    FIXED_GROWTH + entries
}

/// One change to the vector store, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorChange {
    /// Set a document's vector.
    Put {
        /// The collection's id.
        collection: u16,
        /// The document's key.
        key: u32,
        /// The vector.
        vector: Vec<f32>,
    },
    /// Remove a document's vector (if it has one).
    Delete {
        /// The collection's id.
        collection: u16,
        /// The document's key.
        key: u32,
    },
    /// Remove every vector of a collection (it was dropped).
    Clear {
        /// The collection's id.
        collection: u16,
    },
}

/// The open LMDB environment and its databases.
pub struct VectorStore {
    env: Env<WithoutTls>,
    /// The gate every read of the environment passes (paused to grow the map).
    gate: Arc<ReadGate>,
    vectors: Database<'static, Bytes, Bytes>,
    meta: Database<'static, Str, U64<BigEndian>>,
    /// Tests make the next commit fail as on a full disk.
    #[cfg(test)]
    pub(super) fail_next_commit: std::cell::Cell<bool>,
}

/// What readers need from the vector store: cheap to clone, valid until the store closes.
#[derive(Clone)]
pub struct VectorReader {
    env: Env<WithoutTls>,
    vectors: Database<'static, Bytes, Bytes>,
}

impl VectorStore {
    /// Opens (creating if needed) the environment in `data_dir/vectors`, its map at the
    /// initial size (`map_size::initial`); every read of it must pass `gate`.
    pub fn open(data_dir: &Path, gate: Arc<ReadGate>) -> Result<VectorStore, StorageError> {
        VectorStore::open_sized(data_dir, gate, map_size::initial())
    }

    /// [`VectorStore::open`] with a map of `map_size` bytes (LMDB makes it at least what the
    /// file already holds).
    fn open_sized(
        data_dir: &Path,
        gate: Arc<ReadGate>,
        map_size: usize,
    ) -> Result<VectorStore, StorageError> {
        let path = data_dir.join(DIR_NAME);
        std::fs::create_dir_all(&path).map_err(StorageError::io("cannot create", &path))?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(map_size)
            .max_dbs(MAX_DBS)
            .max_readers(MAX_READERS);
        // SAFETY (heed's `open` contract): the environment is opened once per process — only
        // the storage thread opens it, and the data directory lock keeps every other ctxd out;
        // no unsafe flags (NO_LOCK, NO_SYNC) are set; the path is a local directory we own.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(&path) }?;
        let (vectors, meta) = Growing {
            env: &env,
            gate: &gate,
            what: WHAT,
        }
        .write(FIXED_GROWTH as usize, || {
            let wtxn = env.write_txn()?;
            Ok::<_, StorageError>(
                env.create_databases_and_commit(wtxn, |opener, wtxn| {
                    let vectors = opener.create_database::<Bytes, Bytes>(wtxn, Some("vectors"))?;
                    let meta = opener.create_database::<Str, U64<BigEndian>>(wtxn, Some("meta"))?;
                    Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((vectors, meta)))
                })?
                .unwrap_commit(),
            )
        })?;
        Ok(VectorStore {
            env,
            gate,
            vectors,
            meta,
            #[cfg(test)]
            fail_next_commit: std::cell::Cell::new(false),
        })
    }

    /// The environment as [`map_size`] grows it.
    fn growing(&self) -> Growing<'_> {
        Growing {
            env: &self.env,
            gate: &self.gate,
            what: WHAT,
        }
    }

    /// Grows the map now if `bytes` more would not fit (before a write group commits in
    /// SQLite, so LMDB cannot refuse it for want of map afterwards); [`StorageError::NoRoom`]
    /// when it cannot grow.
    pub fn make_room(&self, bytes: u64) -> Result<(), StorageError> {
        self.growing()
            .make_room(usize::try_from(bytes).unwrap_or(usize::MAX))
    }

    /// A handle for readers.
    pub fn reader(&self) -> VectorReader {
        VectorReader {
            env: self.env.clone(),
            vectors: self.vectors,
        }
    }

    /// The generation the vector store last committed.
    pub fn generation(&self) -> Result<u64, StorageError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, "generation")?.unwrap_or(0))
    }

    /// Reads and removes the "ANN index closed cleanly at generation G" marker (see
    /// `storage::ann`): a marker is valid for one open only, so a crash after this open can
    /// never be mistaken for a clean stop. Removing it costs a durable commit, only when present.
    pub fn take_ann_clean(&self) -> Result<Option<u64>, StorageError> {
        let rtxn = self.env.read_txn()?;
        let marker = self.meta.get(&rtxn, ANN_CLEAN)?;
        drop(rtxn);
        if marker.is_some() {
            self.growing().write(FIXED_GROWTH as usize, || {
                let mut wtxn = self.env.write_txn()?;
                self.meta.delete(&mut wtxn, ANN_CLEAN)?;
                Ok::<_, StorageError>(wtxn.commit()?)
            })?;
        }
        Ok(marker)
    }

    /// Records that the ANN environment was closed cleanly while this store was at
    /// `generation` (durable: written after the ANN environment was synced and closed).
    pub fn set_ann_clean(&self, generation: u64) -> Result<(), StorageError> {
        self.growing().write(FIXED_GROWTH as usize, || {
            let mut wtxn = self.env.write_txn()?;
            self.meta.put(&mut wtxn, ANN_CLEAN, &generation)?;
            Ok(wtxn.commit()?)
        })
    }

    /// Applies `changes` in order and records `generation`, in one durable transaction,
    /// growing the map when they need more.
    pub fn commit(&self, changes: &[VectorChange], generation: u64) -> Result<(), StorageError> {
        #[cfg(test)]
        if self.fail_next_commit.take() {
            return Err(heed::Error::Io(std::io::ErrorKind::StorageFull.into()).into());
        }
        let needed = usize::try_from(growth_bound(changes)).unwrap_or(usize::MAX);
        self.growing().write(needed, || {
            let mut wtxn = self.env.write_txn()?;
            self.apply(&mut wtxn, changes)?;
            self.meta.put(&mut wtxn, "generation", &generation)?;
            Ok(wtxn.commit()?)
        })
    }

    fn apply(&self, wtxn: &mut RwTxn<'_>, changes: &[VectorChange]) -> Result<(), StorageError> {
        // The largest key in the store: a new key above it is appended. Keys are handed out in
        // ascending order, so that is nearly every new vector, and it matters for disk: a plain
        // put of ascending keys splits each full leaf in the middle and leaves the left half
        // behind, one 1.5 KiB vector per 4 KiB page (100k × 384: 409 MB), while an append
        // fills each page before starting the next (2 per page, 203 MB).
        let mut last: Option<Vec<u8>> = self.vectors.last(wtxn)?.map(|(k, _)| k.to_vec());
        for change in changes {
            match change {
                VectorChange::Put {
                    collection,
                    key,
                    vector,
                } => {
                    let entry = vector_key(*collection, *key);
                    let value = encode_vector(vector);
                    if last.as_deref().is_none_or(|last| entry.as_slice() > last) {
                        self.vectors
                            .put_with_flags(wtxn, PutFlags::APPEND, &entry, &value)?;
                        last = Some(entry.to_vec());
                    } else {
                        self.vectors.put(wtxn, &entry, &value)?;
                    }
                }
                VectorChange::Delete { collection, key } => {
                    self.vectors.delete(wtxn, &vector_key(*collection, *key))?;
                }
                VectorChange::Clear { collection } => {
                    let start = vector_key(*collection, 0);
                    let end = vector_key(*collection, u32::MAX);
                    let range: (std::ops::Bound<&[u8]>, std::ops::Bound<&[u8]>) = (
                        std::ops::Bound::Included(&start[..]),
                        std::ops::Bound::Included(&end[..]),
                    );
                    self.vectors.delete_range(wtxn, &range)?;
                }
            }
        }
        Ok(())
    }

    /// Closes the environment and waits until LMDB has closed its files and unmapped them.
    /// Every [`VectorReader`] must have been dropped before.
    pub fn close(self) -> Result<(), StorageError> {
        let VectorStore { env, .. } = self;
        let closed = env.prepare_for_closing();
        if closed.wait_timeout(CLOSE_TIMEOUT) {
            Ok(())
        } else {
            tracing::error!("vector store still referenced after {CLOSE_TIMEOUT:?}");
            Err(StorageError::CloseTimeout(CLOSE_TIMEOUT))
        }
    }
}

impl VectorReader {
    /// Writes a compacted, consistent copy of the environment to `path` (a `data.mdb`). LMDB
    /// copies from its own read transaction, so it neither waits for nor blocks the writer.
    pub fn copy_compacted(&self, path: &Path) -> Result<(), StorageError> {
        let file = self.env.copy_to_path(path, CompactionOption::Enabled)?;
        file.sync_all()
            .map_err(StorageError::io("cannot sync", path))
    }

    /// A read transaction: a consistent snapshot that never blocks or is blocked by writes.
    pub fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>, StorageError> {
        Ok(self.env.read_txn()?)
    }

    /// One document's vector.
    pub fn get(
        &self,
        rtxn: &RoTxn<'_, WithoutTls>,
        collection: u16,
        key: u32,
    ) -> Result<Option<Vec<f32>>, StorageError> {
        Ok(self
            .vectors
            .get(rtxn, &vector_key(collection, key))?
            .map(decode_vector))
    }

    /// Calls `each` with the vector of every key of `keys` that has one, in key order: `keys`
    /// is sorted and deduplicated first, so successive lookups walk the B-tree's pages in
    /// order instead of at random.
    pub fn each_of(
        &self,
        rtxn: &RoTxn<'_, WithoutTls>,
        collection: u16,
        keys: &mut Vec<u32>,
        mut each: impl FnMut(u32, &[f32]),
    ) -> Result<(), StorageError> {
        keys.sort_unstable();
        keys.dedup();
        let mut vector = Vec::new();
        for &key in keys.iter() {
            if let Some(bytes) = self.vectors.get(rtxn, &vector_key(collection, key))? {
                decode_into(bytes, &mut vector);
                each(key, &vector);
            }
        }
        Ok(())
    }

    /// The ids of every collection that has vectors (a scan: for `check`).
    pub fn collections(&self, rtxn: &RoTxn<'_, WithoutTls>) -> Result<Vec<u16>, StorageError> {
        let mut ids = Vec::new();
        for entry in self.vectors.iter(rtxn)? {
            let (key, _) = entry?;
            let id = u16::from_be_bytes([key[0], key[1]]);
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The keys of every vector of a collection (values are not read: LMDB keeps vectors this
    /// large on their own overflow pages, so this touches only the key pages).
    pub fn keys(
        &self,
        rtxn: &RoTxn<'_, WithoutTls>,
        collection: u16,
    ) -> Result<roaring::RoaringBitmap, StorageError> {
        let mut keys = roaring::RoaringBitmap::new();
        let prefix = collection.to_be_bytes();
        for entry in self
            .vectors
            .remap_data_type::<heed::types::DecodeIgnore>()
            .prefix_iter(rtxn, &prefix)?
        {
            let (key, ()) = entry?;
            keys.insert(u32::from_be_bytes([key[2], key[3], key[4], key[5]]));
        }
        Ok(keys)
    }

    /// Calls `each(key, vector)` for the vectors of a collection with keys from `from` on, in
    /// key order, until it returns false.
    pub fn for_each_from(
        &self,
        rtxn: &RoTxn<'_, WithoutTls>,
        collection: u16,
        from: u32,
        mut each: impl FnMut(u32, &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let (start, end) = (
            vector_key(collection, from),
            vector_key(collection, u32::MAX),
        );
        let range = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Included(&end[..]),
        );
        for entry in self.vectors.range(rtxn, &range)? {
            let (key, value) = entry?;
            if !each(u32::from_be_bytes([key[2], key[3], key[4], key[5]]), value) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `each(key, vector)` for every vector of a collection, in key order.
    pub fn for_each(
        &self,
        rtxn: &RoTxn<'_, WithoutTls>,
        collection: u16,
        mut each: impl FnMut(u32, &[u8]),
    ) -> Result<(), StorageError> {
        for entry in self.vectors.prefix_iter(rtxn, &collection.to_be_bytes())? {
            let (key, value) = entry?;
            let key = u32::from_be_bytes([key[2], key[3], key[4], key[5]]);
            each(key, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits many times past a map of 64 KiB while another thread reads through the gate:
    /// every commit succeeds, the map grows, and the reader always sees whole vectors.
    #[test]
    fn the_map_grows_under_concurrent_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gate = Arc::new(ReadGate::default());
        let store = VectorStore::open_sized(dir.path(), Arc::clone(&gate), 1 << 16).expect("open");
        let initial = store.env.info().map_size;
        let reader = store.reader();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reading = {
            let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let _reading = gate.reading();
                    let rtxn = reader.read_txn().expect("read txn");
                    reader
                        .for_each(&rtxn, 1, |key, bytes| {
                            let vector = decode_vector(bytes);
                            assert_eq!(vector.len(), 384);
                            assert!(vector.iter().all(|&v| v == key as f32), "a torn vector");
                        })
                        .expect("scan");
                    reads += 1;
                }
                reads
            })
        };
        let mut generation = 0;
        for batch in 0..40u32 {
            let changes: Vec<VectorChange> = (0..50)
                .map(|i| {
                    let key = batch * 50 + i;
                    VectorChange::Put {
                        collection: 1,
                        key,
                        vector: vec![key as f32; 384],
                    }
                })
                .collect();
            generation += 1;
            store.commit(&changes, generation).expect("commit");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reading.join().expect("the reader");
        assert!(reads > 0);
        let grown = store.env.info().map_size;
        assert!(grown >= 3 << 20 && grown > initial, "{initial} → {grown}");
        let reader = store.reader();
        let rtxn = reader.read_txn().expect("read txn");
        let keys = reader.keys(&rtxn, 1).expect("keys");
        assert_eq!(keys.len(), 2000);
        drop(rtxn);
        drop(reader);
        assert_eq!(store.generation().expect("generation"), 40);
        store.close().expect("close");
    }
}
