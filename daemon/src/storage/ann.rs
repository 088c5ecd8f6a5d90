//! `vectors/ann/`: the approximate-nearest-neighbour tier — a second LMDB environment holding
//! one arroy index per large collection.
//!
//! Why a second environment: an arroy build runs inside one LMDB write transaction for 0.25 s
//! (an incremental build at 100k) to minutes (a first build at 1M), and LMDB allows one writer
//! per environment. In the main environment a build would hold up every acknowledged write.
//! Here it holds up nobody: the writer commits to the main environment, searches read this one
//! through MVCC snapshots, and only the builder thread (`ann_builder`) writes to it.
//!
//! Everything here is *derived* data: it can always be rebuilt from the main environment, and
//! it never decides what a search returns — only which candidates are re-scored exactly from
//! the main environment (ids the main environment no longer holds are dropped there). A stale
//! or damaged index can therefore cost recall, never correctness. That is what makes the
//! unsafe-looking choices below safe:
//!
//! - The environment is opened with `NO_SYNC`: a commit is not fsynced (a build commits often,
//!   and its durability is worthless). After a process crash the page cache still holds every
//!   commit; after a system crash the file may be torn. Either way the index is never trusted
//!   after an unclean stop: trust needs the clean-close marker, written to the *main*
//!   environment (durably) only after this one was synced and closed, and consumed at the next
//!   open. Without it the directory is deleted *before* it is opened, so a torn file is never
//!   even mapped.
//! - The set of keys changed since the last build ("pending") lives in memory while serving
//!   and is written here at a clean close, so a restart or a resume continues from the last
//!   build instead of starting over.
//!
//! Layout: the `arroy` database (one arroy index per collection, the collection id as arroy's
//! `u16` index) and `meta`, one [`Record`] per indexed collection (`collection/<id>`), written
//! at a clean close. `lock.mdb` is removed after every close (it is LMDB's reader table,
//! recreated at open, and meaningless in a copy), so a released data directory lists only
//! `vectors/ann/data.mdb`.

use super::StorageError;
use super::map_size::{self, Growing, MaybeMapFull};
use super::reader::ReadGate;
use super::vectors;
use arroy::distances::{Cosine, DotProduct, Euclidean, Manhattan};
use ctxd_proto::Distance;
use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use rand::SeedableRng;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What messages call this environment.
const WHAT: &str = "the ANN index";

/// The directory name, inside the main environment's directory.
pub const DIR_NAME: &str = "ann";

/// The index environment's data file, relative to the data directory.
pub const DATA_FILE: &str = "vectors/ann/data.mdb";

/// Its reader table, relative to the data directory (removed after every close).
pub const LOCK_FILE: &str = "vectors/ann/lock.mdb";

/// arroy's search budget per wanted hit and per tree, for each unit of the request's `effort`:
/// `search_k = k × trees × SEARCH_K_PER_EFFORT × effort`. On the shared 100k real embeddings
/// (measured with arroy alone) `search_k = 10 × trees × m` reached recall@10 0.94 at m = 10 and 0.97 at m = 20,
/// so the default effort (5) gives m = 20. Through the daemon (`CTXD_BENCH_ANN_THRESHOLD=1
/// cargo bench -p ctxd --bench scifact`, README) recall@10 at 100k was 0.930 / 0.968 / 0.984 /
/// 0.993 at effort 2 / 5 / 10 / 20.
pub const SEARCH_K_PER_EFFORT: usize = 4;

/// The arroy database type, with the cosine codec: other distances remap its data type (one
/// database, one arroy index per collection whatever its distance).
type ArroyDb = arroy::Database<'static, Cosine>;

/// A failure of the ANN tier. It never reaches a client as such: searches fall back to the
/// exact paths and the builder logs and retries later.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    /// arroy failed (including `NeedBuild` / `MissingMetadata` for an index never built).
    #[error("arroy: {0}")]
    Arroy(#[from] arroy::Error),
    /// LMDB failed.
    #[error("lmdb: {0}")]
    Lmdb(#[from] heed::Error),
    /// A file operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The main store failed while the builder read from it.
    #[error("{0}")]
    Main(#[from] Box<StorageError>),
    /// A build was cancelled (release, shutdown); its changes stay pending.
    #[error("the build was cancelled")]
    Cancelled,
    /// The environment did not close in time.
    #[error("the ANN index did not close within {0:?}")]
    CloseTimeout(std::time::Duration),
}

impl From<StorageError> for AnnError {
    fn from(e: StorageError) -> AnnError {
        AnnError::Main(Box::new(e))
    }
}

impl MaybeMapFull for AnnError {
    /// Only this environment's own `MDB_MAP_FULL`: the main store's failures while feeding a
    /// build are [`AnnError::Main`], and growing this map would not help them.
    fn is_map_full(&self) -> bool {
        match self {
            AnnError::Lmdb(e) | AnnError::Arroy(arroy::Error::Heed(e)) => e.is_map_full(),
            _ => false,
        }
    }
}

impl From<AnnError> for StorageError {
    fn from(e: AnnError) -> StorageError {
        match e {
            AnnError::Lmdb(e) => StorageError::Lmdb(e),
            AnnError::Io {
                context,
                path,
                source,
            } => StorageError::Io {
                context,
                path,
                source,
            },
            AnnError::Main(e) => *e,
            AnnError::CloseTimeout(t) => StorageError::CloseTimeout(t),
            other => StorageError::Corrupt(format!("ANN index: {other}")),
        }
    }
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AnnError {
    let path = path.to_owned();
    move |source| AnnError::Io {
        context,
        path,
        source,
    }
}

/// Runs `$body` with `$D` bound to the arroy distance type of `$distance`.
macro_rules! with_distance {
    ($distance:expr, $D:ident => $body:expr) => {
        match $distance {
            Distance::Cosine => {
                type $D = Cosine;
                $body
            }
            Distance::Euclidean => {
                type $D = Euclidean;
                $body
            }
            Distance::Dot => {
                type $D = DotProduct;
                $body
            }
            Distance::Manhattan => {
                type $D = Manhattan;
                $body
            }
        }
    };
}

/// What a clean close remembers about one collection's index.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The collection's dimension when the index was built.
    pub dimension: u32,
    /// Its distance.
    pub distance: Distance,
    /// Keys changed in the main store since the last completed build: the index is stale for
    /// exactly these.
    pub pending: RoaringBitmap,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + self.pending.serialized_size());
        bytes.extend_from_slice(&self.dimension.to_le_bytes());
        bytes.push(distance_code(self.distance));
        // Writing into a Vec cannot fail.
        let _ = self.pending.serialize_into(&mut bytes);
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Record> {
        let dimension = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
        let distance = distance_from_code(*bytes.get(4)?)?;
        let pending = RoaringBitmap::deserialize_from(bytes.get(5..)?).ok()?;
        Some(Record {
            dimension,
            distance,
            pending,
        })
    }
}

fn distance_code(distance: Distance) -> u8 {
    match distance {
        Distance::Cosine => 0,
        Distance::Euclidean => 1,
        Distance::Dot => 2,
        Distance::Manhattan => 3,
    }
}

fn distance_from_code(code: u8) -> Option<Distance> {
    Some(match code {
        0 => Distance::Cosine,
        1 => Distance::Euclidean,
        2 => Distance::Dot,
        3 => Distance::Manhattan,
        _ => return None,
    })
}

fn record_key(collection: u16) -> String {
    format!("collection/{collection}")
}

/// The directory of the ANN environment inside `data_dir`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(vectors::DIR_NAME).join(DIR_NAME)
}

/// Deletes the ANN environment of `data_dir` (it is closed); missing is fine.
pub fn remove(data_dir: &Path) -> Result<(), AnnError> {
    let path = dir(data_dir);
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("cannot remove", &path)(e)),
        _ => Ok(()),
    }
}

/// The open ANN environment, owned by the storage thread.
pub struct AnnEnv {
    env: Env<WithoutTls>,
    /// The gate every read of the environment passes (paused to grow the map).
    gate: Arc<ReadGate>,
    arroy: ArroyDb,
    meta: Database<'static, Str, Bytes>,
    path: PathBuf,
}

/// What searches and the builder need: cheap to clone, valid until the environment closes.
#[derive(Clone)]
pub struct AnnReader {
    env: Env<WithoutTls>,
    arroy: ArroyDb,
}

/// Which index a build is for.
#[derive(Debug, Clone, Copy)]
pub struct Index {
    /// The collection (arroy's index number).
    pub collection: u16,
    /// Its vector dimension.
    pub dimension: usize,
    /// Its distance.
    pub distance: Distance,
}

/// The last step of a build: one change fed to the index (a vector, or `None` for a removal).
pub type Feed<'a> = dyn FnMut(u32, Option<&[f32]>) -> Result<(), AnnError> + 'a;

impl AnnEnv {
    /// Opens (creating if needed) the ANN environment of `data_dir`. Unless `trusted` (the
    /// clean-close marker matched), whatever is there is deleted first, unopened. Every read
    /// of it must pass `gate`; its map starts at `map_size::initial` and grows as builds need.
    pub fn open(data_dir: &Path, trusted: bool, gate: Arc<ReadGate>) -> Result<AnnEnv, AnnError> {
        let path = dir(data_dir);
        if !trusted {
            remove(data_dir)?;
        }
        std::fs::create_dir_all(&path).map_err(io("cannot create", &path))?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(map_size::initial())
            .max_dbs(4)
            .max_readers(vectors::MAX_READERS);
        // SAFETY (heed's `flags` and `open` contracts): NO_SYNC only drops the fsync of each
        // commit; the module documentation explains why an unsynced index is never trusted
        // after an unclean stop. The environment is opened once per process (the storage
        // thread owns it; the data directory lock keeps other processes out).
        #[allow(unsafe_code)]
        let env = unsafe {
            options.flags(EnvFlags::NO_SYNC);
            options.open(&path)
        }?;
        let (arroy, meta) = Growing {
            env: &env,
            gate: &gate,
            what: WHAT,
        }
        .write(vectors::FIXED_GROWTH as usize, || {
            let wtxn = env.write_txn()?;
            Ok::<_, AnnError>(
                env.create_databases_and_commit(wtxn, |opener, wtxn| {
                    let arroy = opener.create_database(wtxn, Some("arroy"))?;
                    let meta = opener.create_database::<Str, Bytes>(wtxn, Some("meta"))?;
                    Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((arroy, meta)))
                })?
                .unwrap_commit(),
            )
        })?;
        Ok(AnnEnv {
            env,
            gate,
            arroy,
            meta,
            path,
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

    /// The gate every read of this environment (and of the main one) passes: the builder
    /// counts its reads of the main store with it.
    pub fn gate(&self) -> &ReadGate {
        &self.gate
    }

    /// A handle for searches and the builder.
    pub fn reader(&self) -> AnnReader {
        AnnReader {
            env: self.env.clone(),
            arroy: self.arroy,
        }
    }

    /// The records a clean close left, by collection id; undecodable ones are left out.
    pub fn records(&self) -> Result<HashMap<u16, Record>, AnnError> {
        let rtxn = self.env.read_txn()?;
        let mut records = HashMap::new();
        for entry in self.meta.prefix_iter(&rtxn, "collection/")? {
            let (key, value) = entry?;
            let id = key
                .strip_prefix("collection/")
                .and_then(|id| id.parse::<u16>().ok());
            if let (Some(id), Some(record)) = (id, Record::decode(value)) {
                records.insert(id, record);
            }
        }
        Ok(records)
    }

    /// Replaces every record by `records` and syncs the environment to disk: the last step
    /// before the clean-close marker.
    pub fn save(&self, records: &[(u16, Record)]) -> Result<(), AnnError> {
        let needed: u64 = records
            .iter()
            .map(|(_, record)| record.pending.serialized_size() as u64 * 2)
            .sum();
        self.growing()
            .write((vectors::FIXED_GROWTH + needed) as usize, || {
                let mut wtxn = self.env.write_txn()?;
                let old: Vec<String> = self
                    .meta
                    .prefix_iter(&wtxn, "collection/")?
                    .map(|entry| entry.map(|(key, _)| key.to_owned()))
                    .collect::<Result<_, _>>()?;
                for key in old {
                    self.meta.delete(&mut wtxn, &key)?;
                }
                for (id, record) in records {
                    self.meta
                        .put(&mut wtxn, &record_key(*id), &record.encode())?;
                }
                Ok::<_, AnnError>(wtxn.commit()?)
            })?;
        self.env.force_sync()?;
        Ok(())
    }

    /// Removes the indexes of these collections (dropped, or no longer large enough).
    pub fn clear(&self, collections: &[u16]) -> Result<(), AnnError> {
        if collections.is_empty() {
            return Ok(());
        }
        self.growing().write(vectors::FIXED_GROWTH as usize, || {
            let mut wtxn = self.env.write_txn()?;
            for &id in collections {
                // Clearing ignores the distance: it deletes the index's key range.
                arroy::Writer::<Cosine>::new(self.arroy, id, 1).clear(&mut wtxn)?;
                self.meta.delete(&mut wtxn, &record_key(id))?;
            }
            Ok(wtxn.commit()?)
        })
    }

    /// The arroy indexes present (a collection id each), found by seeking from index to index.
    pub fn indexes(&self) -> Result<Vec<u16>, AnnError> {
        let rtxn = self.env.read_txn()?;
        let raw = self.arroy.remap_types::<Bytes, heed::types::DecodeIgnore>();
        let mut found = Vec::new();
        let mut from: u32 = 0;
        while from <= u32::from(u16::MAX) {
            let start = (from as u16).to_be_bytes();
            let range = (
                std::ops::Bound::Included(&start[..]),
                std::ops::Bound::Unbounded,
            );
            let Some(entry) = raw.range(&rtxn, &range)?.next() else {
                break;
            };
            let (key, ()) = entry?;
            let Some(id) = key.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                break;
            };
            found.push(id);
            from = u32::from(id) + 1;
        }
        Ok(found)
    }

    /// Applies changes to one collection's index and builds it, in one write transaction.
    ///
    /// With `full`, the index is cleared first (a first build, or a collection id reused).
    /// `feed` is called once with a sink for the changes. The build runs on `pool` and stops
    /// at arroy's next checkpoint once `cancel` returns true; nothing is committed then.
    /// Returns the number of items in the built index.
    ///
    /// `changes` (about how many the feed gives) sizes the room made in the map first: an
    /// item, and its share of the trees and of the pages copied, per change. A build that
    /// still meets `MDB_MAP_FULL` is aborted whole, and after the map has grown it is run
    /// again from the feed (`feed` is called once per attempt).
    pub fn build(
        &self,
        index: Index,
        full: bool,
        changes: u64,
        feed: &mut dyn FnMut(&mut Feed<'_>) -> Result<(), AnnError>,
        cancel: &(dyn Fn() -> bool + Sync + Send),
        pool: &rayon::ThreadPool,
    ) -> Result<u64, AnnError> {
        let needed = changes
            .saturating_mul(2 * vectors::put_growth(index.dimension))
            .saturating_add(vectors::FIXED_GROWTH);
        self.growing()
            .write(usize::try_from(needed).unwrap_or(usize::MAX), || {
                let mut wtxn = self.env.write_txn()?;
                let items = with_distance!(index.distance, D => build_typed::<D>(
                    &mut wtxn,
                    self.arroy.remap_data_type(),
                    index.collection,
                    index.dimension,
                    full,
                    feed,
                    cancel,
                    pool,
                ))?;
                wtxn.commit()?;
                Ok(items)
            })
    }

    /// Closes the environment, waits until LMDB has unmapped it, and removes its reader table.
    /// Every [`AnnReader`] must have been dropped before.
    pub fn close(self) -> Result<(), AnnError> {
        let AnnEnv { env, path, .. } = self;
        let closed = env.prepare_for_closing();
        if !closed.wait_timeout(vectors::CLOSE_TIMEOUT) {
            return Err(AnnError::CloseTimeout(vectors::CLOSE_TIMEOUT));
        }
        // Nothing holds the environment any more (this process owns the data directory), so
        // the reader table is empty; LMDB recreates it at the next open.
        let lock = path.join("lock.mdb");
        match std::fs::remove_file(&lock) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io("cannot remove", &lock)(e))
            }
            _ => Ok(()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_typed<D: arroy::Distance>(
    wtxn: &mut RwTxn<'_>,
    database: arroy::Database<'static, D>,
    collection: u16,
    dimension: usize,
    full: bool,
    feed: &mut dyn FnMut(&mut Feed<'_>) -> Result<(), AnnError>,
    cancel: &(dyn Fn() -> bool + Sync + Send),
    pool: &rayon::ThreadPool,
) -> Result<u64, AnnError> {
    let writer = arroy::Writer::<D>::new(database, collection, dimension);
    if full {
        writer.clear(wtxn)?;
    }
    feed(&mut |key, vector| {
        match vector {
            Some(vector) => writer.add_item(wtxn, key, vector)?,
            None => {
                writer.del_item(wtxn, key)?;
            }
        }
        Ok(())
    })?;
    if cancel() {
        return Err(AnnError::Cancelled);
    }
    // A fixed seed per collection: the same changes build the same trees, which keeps
    // benchmark figures and any recall problem reproducible.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00c7_7d00 ^ u64::from(collection));
    pool.install(|| writer.builder(&mut rng).cancel(cancel).build(wtxn))
        .map_err(|e| match e {
            arroy::Error::BuildCancelled => AnnError::Cancelled,
            other => AnnError::Arroy(other),
        })?;
    let reader = arroy::Reader::<D>::open(wtxn, collection, database)?;
    Ok(reader.n_items())
}

/// One query against a built index.
pub struct Query<'a> {
    /// The collection (arroy index).
    pub collection: u16,
    /// Its distance.
    pub distance: Distance,
    /// The query vector.
    pub vector: &'a [f32],
    /// How many results to return.
    pub count: usize,
    /// The number of hits the caller ranks (`k`): the search budget is sized for it.
    pub k: usize,
    /// The request's effort (≥ 1).
    pub effort: usize,
    /// Only these keys (a filter), if any.
    pub candidates: Option<&'a RoaringBitmap>,
    /// Never these keys: changed since the build, so the index's copy is stale.
    pub exclude: &'a RoaringBitmap,
}

impl AnnReader {
    /// The keys of the nearest items, by arroy's own scores (the caller re-scores exactly).
    /// Fails with arroy's `MissingMetadata` / `NeedBuild` when there is no usable build.
    pub fn nns(&self, query: &Query<'_>) -> Result<Vec<u32>, AnnError> {
        let rtxn = self.env.read_txn()?;
        with_distance!(query.distance, D => nns_typed::<D>(&rtxn, self.arroy.remap_data_type(), query))
    }

    /// Whether the collection has a completed, current build, and the keys it holds.
    pub fn built_items(
        &self,
        collection: u16,
        distance: Distance,
    ) -> Result<(usize, RoaringBitmap), AnnError> {
        let rtxn = self.env.read_txn()?;
        with_distance!(distance, D => {
            let reader = arroy::Reader::<D>::open(&rtxn, collection, self.arroy.remap_data_type())?;
            Ok((reader.dimensions(), reader.item_ids().clone()))
        })
    }
}

fn nns_typed<D: arroy::Distance>(
    rtxn: &RoTxn<'_, WithoutTls>,
    database: arroy::Database<'static, D>,
    query: &Query<'_>,
) -> Result<Vec<u32>, AnnError> {
    let reader = arroy::Reader::<D>::open(rtxn, query.collection, database)?;
    // arroy filters by one bitmap; excluded keys are taken out of it (or out of everything).
    let allowed = match query.candidates {
        Some(candidates) => Some(candidates - query.exclude),
        None if !query.exclude.is_empty() => Some(reader.item_ids() - query.exclude),
        None => None,
    };
    let search_k = query
        .k
        .saturating_mul(reader.n_trees().max(1))
        .saturating_mul(SEARCH_K_PER_EFFORT)
        .saturating_mul(query.effort.max(1));
    let mut builder = reader.nns(query.count);
    builder.search_k(NonZeroUsize::new(search_k).unwrap_or(NonZeroUsize::MIN));
    if let Some(allowed) = &allowed {
        builder.candidates(allowed);
    }
    Ok(builder
        .by_vector(rtxn, query.vector)?
        .into_iter()
        .map(|(key, _)| key)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            dimension: 384,
            distance: Distance::Manhattan,
            pending: RoaringBitmap::from_iter([1, 5, 70_000]),
        };
        assert_eq!(Record::decode(&record.encode()), Some(record));
        assert_eq!(Record::decode(&[1, 2]), None);
    }

    /// Builds, queries, changes and rebuilds an index; cancelling commits nothing.
    #[test]
    fn build_search_cancel() {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = AnnEnv::open(dir.path(), false, Default::default()).expect("open");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let vectors: Vec<Vec<f32>> = (0..500u32)
            .map(|i| vec![(i as f32).sin(), (i as f32 * 0.37).cos(), i as f32 / 500.0])
            .collect();
        let index = Index {
            collection: 7,
            dimension: 3,
            distance: Distance::Euclidean,
        };
        let mut feed_all = |sink: &mut Feed<'_>| {
            for (key, vector) in vectors.iter().enumerate() {
                sink(key as u32, Some(vector))?;
            }
            Ok(())
        };
        let items = env
            .build(index, true, 100, &mut feed_all, &|| false, &pool)
            .expect("build");
        assert_eq!(items, 500);
        let reader = env.reader();
        let exclude = RoaringBitmap::from_iter([42]);
        let query = Query {
            collection: 7,
            distance: Distance::Euclidean,
            vector: &vectors[42],
            count: 5,
            k: 5,
            effort: 50,
            candidates: None,
            exclude: &RoaringBitmap::new(),
        };
        assert_eq!(reader.nns(&query).expect("nns")[0], 42);
        let without = Query {
            exclude: &exclude,
            ..query
        };
        assert!(!reader.nns(&without).expect("nns").contains(&42));

        // A cancelled build leaves the committed index as it was.
        let mut delete = |sink: &mut Feed<'_>| sink(42, None);
        let cancelled = env.build(index, false, 1, &mut delete, &|| true, &pool);
        assert!(matches!(cancelled, Err(AnnError::Cancelled)));
        let (_, items) = reader
            .built_items(7, Distance::Euclidean)
            .expect("still built");
        assert!(items.contains(42));
        assert_eq!(env.indexes().expect("indexes"), [7]);
        env.clear(&[7]).expect("clear");
        assert!(env.indexes().expect("indexes").is_empty());
        drop(reader);
        env.close().expect("close");
        assert!(!dir.path().join("vectors/ann/lock.mdb").exists());
    }
}
