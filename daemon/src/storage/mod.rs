//! The storage owner: the only code that opens files in the data directory.
//!
//! One dedicated thread owns the SQLite connection ([`text`]), the LMDB environment
//! ([`vectors`]) and reads `ctxd.json` ([`manifest`]). Everyone else holds a [`Store`], a cheap
//! handle. Writes are commands to that thread, committed in groups ([`writer`]); reads borrow
//! read-only handles through a gate ([`reader`]) and run concurrently on tokio's blocking pool.
//! "Close every file" is one command: the thread shuts the read gate, waits for reads in
//! progress, and closes SQLite and LMDB; commands are processed in arrival order, so no write
//! is half done when it closes.
//!
//! Collections with at least `--ann-threshold` vectors are also indexed by arroy, in a second
//! LMDB environment written by a background builder ([`ann`], [`ann_builder`], [`ann_state`]);
//! the storage thread opens and closes it with the rest.

mod ann;
mod ann_builder;
mod ann_state;
mod catalog;
mod check;
mod documents;
mod error;
pub mod filter_sql;
mod fts;
mod journal_codec;
pub mod manifest;
mod read;
mod reader;
mod search;
mod snapshot;
pub mod text;
mod validate;
pub mod vector_set;
pub mod vectors;
mod writer;

pub use error::StorageError;
use writer::{WriteOp, Written};

use ann::{AnnEnv, Record};
use ann_builder::Builder;
use ann_state::{AnnCollection, AnnSide};
use catalog::Catalog;
use ctxd_proto::{
    CheckResult, CollectionResult, Count, CountResult, CreateCollection, Delete, DeleteResult,
    DropCollection, DropCollectionResult, Get, GetResult, ListCollectionsResult, Search,
    SearchResult, SnapshotResult, Upsert, UpsertResult,
};
use reader::{ReadGate, ReadLease, ReadSide, SharedVectorSet};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::thread;
use text::TextStore;
use tokio::sync::{mpsc, oneshot};
use vector_set::VectorSet;
use vectors::VectorStore;

/// The most write requests committed together in one group (one fsync pair).
const MAX_GROUP: usize = 64;

/// How the store is run.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    /// Collections with at least this many vectors get an arroy index (the ANN tier); 0 =
    /// never (every collection is searched by its in-memory scan).
    pub ann_threshold: u64,
}

/// Counts `status` reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// The last committed generation.
    pub generation: u64,
    /// Number of collections.
    pub collections: u64,
    /// Number of documents over all collections.
    pub documents: u64,
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

enum Command {
    Write(WriteOp, Reply<Written>),
    Close(Reply<()>),
    /// Reopen; with `verify`, run every check before serving and close again if one fails.
    Reopen(bool, Reply<()>),
    /// Keep journal rows newer than the current generation until `Unhold` (a snapshot needs
    /// them); answers that generation.
    HoldJournal(Reply<u64>),
    UnholdJournal(Reply<()>),
    Check(Reply<CheckResult>),
}

/// A handle to the storage thread. Cloning is cheap; the thread ends when the last handle is
/// dropped (closing the files first if they are still open).
#[derive(Clone)]
pub struct Store {
    commands: mpsc::UnboundedSender<Command>,
    gate: Arc<ReadGate>,
}

impl Store {
    /// Opens the data directory `data_dir` (canonical, existing) on a new storage thread.
    pub async fn open(data_dir: PathBuf, options: StoreOptions) -> Result<Store, StorageError> {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = oneshot::channel();
        let gate = Arc::new(ReadGate::default());
        let thread_gate = Arc::clone(&gate);
        thread::Builder::new()
            .name("ctxd-storage".to_owned())
            .spawn(move || match Storage::open(&data_dir, options) {
                Ok(storage) => {
                    thread_gate.open(Arc::clone(&storage.side));
                    let _ = opened_tx.send(Ok(()));
                    run(Some(storage), &data_dir, options, &thread_gate, inbox);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(StorageError::io("cannot start the storage thread", "."))?;
        opened_rx.await.map_err(|_| StorageError::Closed)??;
        Ok(Store { commands, gate })
    }

    /// The counts `status` reports; [`StorageError::Closed`] while closed.
    pub async fn stats(&self) -> Result<Stats, StorageError> {
        let side = self.gate.enter()?;
        let catalog = side.catalog();
        Ok(Stats {
            generation: side.generation(),
            collections: catalog.len() as u64,
            documents: catalog.documents(),
        })
    }

    /// `create_collection`.
    pub async fn create_collection(
        &self,
        params: CreateCollection,
    ) -> Result<CollectionResult, StorageError> {
        match self.write(WriteOp::CreateCollection(params)).await? {
            Written::Collection(collection) => Ok(CollectionResult { collection }),
            other => Err(unexpected(other)),
        }
    }

    /// `drop_collection`.
    pub async fn drop_collection(
        &self,
        params: DropCollection,
    ) -> Result<DropCollectionResult, StorageError> {
        match self.write(WriteOp::DropCollection(params)).await? {
            Written::Dropped(dropped) => Ok(DropCollectionResult { dropped }),
            other => Err(unexpected(other)),
        }
    }

    /// `upsert`: returns once the batch is durable in both stores.
    pub async fn upsert(&self, params: Upsert) -> Result<UpsertResult, StorageError> {
        match self.write(WriteOp::Upsert(params)).await? {
            Written::Upserted(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// `delete`: returns once the deletion is durable in both stores.
    pub async fn delete(&self, params: Delete) -> Result<DeleteResult, StorageError> {
        match self.write(WriteOp::Delete(params)).await? {
            Written::Deleted(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// Commits one write (grouped with concurrent writes); returns after both stores committed.
    async fn write(&self, op: WriteOp) -> Result<Written, StorageError> {
        self.ask(|reply| Command::Write(op, reply)).await
    }

    /// `list_collections`.
    pub async fn list_collections(&self) -> Result<ListCollectionsResult, StorageError> {
        self.read(|side| Ok(read::list_collections(side))).await
    }

    /// `get_collection`.
    pub async fn get_collection(&self, name: String) -> Result<CollectionResult, StorageError> {
        self.read(move |side| read::get_collection(side, &name))
            .await
    }

    /// `get`.
    pub async fn get(&self, params: Get) -> Result<GetResult, StorageError> {
        self.read(move |side| read::get(side, &params)).await
    }

    /// `count`.
    pub async fn count(&self, params: Count) -> Result<CountResult, StorageError> {
        self.read(move |side| read::count(side, &params)).await
    }

    /// `search`.
    pub async fn search(&self, params: Search) -> Result<SearchResult, StorageError> {
        self.read(move |side| search::search(side, &params)).await
    }

    /// Closes every file: shuts the read gate and waits for reads in progress, checkpoints and
    /// closes SQLite, then closes LMDB and waits until it has unmapped its files. Closing a
    /// closed store does nothing.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.ask(Command::Close).await
    }

    /// `snapshot`: a consistent, verified copy of `data_dir` at `dest`, written while serving
    /// (see the `snapshot` module for why writes never wait for it).
    pub async fn snapshot(
        &self,
        dest: &str,
        data_dir: PathBuf,
    ) -> Result<SnapshotResult, StorageError> {
        let dest = snapshot::check_destination(Path::new(dest), &data_dir)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per snapshot: two concurrent snapshots to one destination never share a
        // temporary directory (the second fails at the rename, the first is untouched).
        static SNAPSHOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SNAPSHOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dest.with_file_name(format!(".{name}.partial-{}-{n}", std::process::id()));
        // Holding a read lease: a release or shutdown waits for the copy to finish.
        let lease = self.gate.enter()?;
        self.ask(Command::HoldJournal).await?;
        let copying = tmp.clone();
        let copied = tokio::task::spawn_blocking(move || {
            snapshot::copy_stores(&lease.vectors, lease.text_path(), &data_dir, &copying)
        })
        .await;
        let _ = self.ask(Command::UnholdJournal).await;
        let finishing = (tmp.clone(), dest.clone());
        let result = match copied {
            Ok(Ok(generation)) => tokio::task::spawn_blocking(move || {
                snapshot::finish(&finishing.0, &finishing.1, generation)
                    .map(|files| (generation, files))
            })
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::Snapshot(format!(
                    "the snapshot task failed: {e}"
                )))
            }),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(StorageError::Snapshot(format!("the copy task failed: {e}"))),
        };
        match result {
            Ok((generation, files)) => {
                tracing::info!(path = %dest.display(), generation, "snapshot written");
                Ok(SnapshotResult {
                    path: dest.display().to_string(),
                    generation,
                    files,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(match e {
                    StorageError::Snapshot(_) | StorageError::Invalid(_) | StorageError::Closed => {
                        e
                    }
                    other => StorageError::Snapshot(other.to_string()),
                })
            }
        }
    }

    /// `check`, online: runs on the storage thread (FTS5's check needs the read-write
    /// connection), so writes wait for it; reads continue.
    pub async fn check(&self) -> Result<CheckResult, StorageError> {
        self.ask(Command::Check).await
    }

    /// Opens the files again after [`Store::close`] (opening an open store does nothing). The
    /// files are read as they are now: if they were replaced while closed (a restored
    /// backup), that is what is served, after the same checks as at start.
    pub async fn reopen(&self) -> Result<(), StorageError> {
        self.ask(|reply| Command::Reopen(false, reply)).await
    }

    /// Like [`Store::reopen`], but every `check` must pass before the files are served (for
    /// files that changed while closed, say restored from a backup); if one fails the store
    /// stays closed and the error lists the problems.
    pub async fn reopen_verified(&self) -> Result<(), StorageError> {
        self.ask(|reply| Command::Reopen(true, reply)).await
    }

    /// Runs a read on the blocking pool with a lent read side.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadLease) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let lease = self.gate.enter()?;
        tokio::task::spawn_blocking(move || f(&lease))
            .await
            .map_err(|e| StorageError::Corrupt(format!("a read panicked: {e}")))?
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }
}

/// The writer answered with the result of another kind of write: a bug.
fn unexpected(written: Written) -> StorageError {
    StorageError::Corrupt(format!(
        "a write produced an unexpected result: {written:?}"
    ))
}

/// The open files of a data directory, owned by the storage thread.
struct Storage {
    text: TextStore,
    vectors: VectorStore,
    side: Arc<ReadSide>,
    /// The ANN environment and its builder, while some collection is in the tier.
    ann: Option<AnnRuntime>,
    data_dir: PathBuf,
    /// Set when a group committed in SQLite but not in LMDB: writes stop until a restart
    /// replays the journal.
    broken: Option<String>,
    /// Journal rows newer than this are kept (a snapshot in progress replays them).
    hold_journal: Option<u64>,
}

/// The open ANN environment and the thread building in it.
struct AnnRuntime {
    env: Arc<AnnEnv>,
    builder: Builder,
}

/// The in-memory vector sets of a closed store and the generation they reflect: kept across a
/// release (they are memory, not handles) so an unchanged store resumes without rebuilding them.
type Parked = (u64, HashMap<u16, SharedVectorSet>);

impl Storage {
    fn open(data_dir: &Path, options: StoreOptions) -> Result<Storage, StorageError> {
        Storage::open_reusing(data_dir, None, options)
    }

    /// Opens the store; `parked` vector sets are reused if they reflect the generation found.
    fn open_reusing(
        data_dir: &Path,
        parked: Option<Parked>,
        options: StoreOptions,
    ) -> Result<Storage, StorageError> {
        let fresh = is_fresh(data_dir)?;
        manifest::load_or_create(data_dir, fresh)?;
        let text = TextStore::open(data_dir)?;
        let vectors = VectorStore::open(data_dir)?;
        let generation = replay(&text, &vectors)?;
        let catalog = Catalog::load(text.conn())?;
        let ann_side = AnnSide::new(options.ann_threshold);
        let ann_env = open_ann(data_dir, &vectors, &catalog, generation, &ann_side)?;
        let mut sets = match parked {
            Some((parked_generation, sets)) if parked_generation == generation => sets,
            _ => HashMap::new(),
        };
        // A collection served by a built index keeps no full in-memory set; every other one
        // needs it.
        {
            let tier = ann_side.collections();
            let built = |id: &u16| {
                tier.get(id)
                    .is_some_and(|s| s.read().unwrap_or_else(|e| e.into_inner()).built)
            };
            sets.retain(|id, _| !built(id));
            load_sets(&catalog, &vectors, &mut sets, |id| !built(&id))?;
        }
        let side = Arc::new(ReadSide::new(
            vectors.reader(),
            catalog,
            sets,
            generation,
            text.path().to_owned(),
            ann_side,
        ));
        let ann = match ann_env {
            Some(env) => Some(start_ann(&side, env)?),
            None => None,
        };
        {
            let catalog = side.catalog();
            tracing::info!(
                data_dir = %data_dir.display(),
                generation,
                collections = catalog.len(),
                documents = catalog.documents(),
                "storage open"
            );
        }
        Ok(Storage {
            text,
            vectors,
            side,
            ann,
            data_dir: data_dir.to_owned(),
            broken: None,
            hold_journal: None,
        })
    }

    /// Opens the ANN environment once a collection has entered the tier at runtime.
    fn ensure_ann(&mut self) {
        if self.ann.is_some() || self.side.ann.is_empty() {
            return;
        }
        // Nothing was in the tier at open, so whatever is on disk is stale: start empty.
        let started = AnnEnv::open(&self.data_dir, false)
            .map_err(StorageError::from)
            .and_then(|env| start_ann(&self.side, env));
        match started {
            Ok(runtime) => self.ann = Some(runtime),
            // Searches keep using the full in-memory sets; the next write tries again.
            Err(e) => tracing::error!("cannot open the ANN index: {e}"),
        }
    }

    /// Stops the ANN builder (cancelling a running build), shuts the read gate, waits for
    /// reads, then closes SQLite first (checkpoint, close), the ANN environment (saving what
    /// is pending) and LMDB last; all are attempted even if one fails, and the first error is
    /// returned.
    fn close(self, gate: &ReadGate) -> Result<(), StorageError> {
        let Storage {
            text,
            vectors,
            side,
            ann,
            ..
        } = self;
        let ann = ann.map(|runtime| {
            side.ann.stop();
            runtime.builder.join();
            runtime.env
        });
        let lent = gate.close();
        drop(lent);
        let generation = side.generation();
        let saved = ann.as_ref().map(|env| save_ann(env, &side));
        // The last reference: dropping it closes the pooled read connections and the LMDB
        // reader handles, which must be gone before the checkpoint and the env closes.
        drop(side);
        let text = text.close();
        let ann_closed = match ann {
            Some(env) => match Arc::try_unwrap(env) {
                Ok(env) => env.close().map_err(StorageError::from),
                Err(_) => Err(StorageError::Corrupt(
                    "the ANN index is still referenced at close".to_owned(),
                )),
            },
            None => Ok(()),
        };
        // Trust the ANN index at the next open only if it is complete on disk and closed.
        if ann_closed.is_ok()
            && let Some(Ok(())) = saved
            && let Err(e) = vectors.set_ann_clean(generation)
        {
            tracing::warn!("cannot mark the ANN index clean (it is rebuilt at next open): {e}");
        }
        let vectors = vectors.close();
        text.and(ann_closed).and(vectors)
    }

    fn write_group(&mut self, group: Vec<(WriteOp, Reply<Written>)>) {
        if let Some(problem) = &self.broken {
            for (_, reply) in group {
                let _ = reply.send(Err(StorageError::Corrupt(problem.clone())));
            }
            return;
        }
        let (ops, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match writer::commit_group(
            &self.text,
            &self.vectors,
            &self.side,
            self.hold_journal,
            ops,
        ) {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(result);
                }
                self.ensure_ann();
            }
            Err(e) => {
                tracing::error!("write failed: {e}");
                if matches!(e, StorageError::Lmdb(_)) {
                    self.broken = Some(format!(
                        "the vector store failed after the text store committed ({e}); the \
                         writes are journaled and will be applied when ctxd restarts"
                    ));
                }
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Corrupt(message.clone())));
                }
            }
        }
    }
}

/// Brings LMDB up to SQLite's generation by replaying the redo journal (after a crash between
/// the two commits); returns the generation both stores now hold.
fn replay(text: &TextStore, vectors: &VectorStore) -> Result<u64, StorageError> {
    let text_generation = text::generation(text.conn())?;
    let vector_generation = vectors.generation()?;
    if vector_generation > text_generation {
        return Err(StorageError::Corrupt(format!(
            "the vector store is at generation {vector_generation} but the text store only at \
             {text_generation}: the two were restored from different backups"
        )));
    }
    if vector_generation < text_generation {
        let changes = text::journal_since(text.conn(), vector_generation)?;
        tracing::warn!(
            from = vector_generation,
            to = text_generation,
            changes = changes.len(),
            "replaying the redo journal into the vector store (the last run stopped between commits)"
        );
        vectors.commit(&changes, text_generation)?;
    }
    Ok(text_generation)
}

/// `check` of a data directory no daemon has open (stopped, or released): opens both stores
/// directly, without replaying the journal or changing anything, and closes them again.
pub fn check_offline(data_dir: &Path) -> Result<CheckResult, StorageError> {
    if !data_dir.join(manifest::FILE_NAME).exists() {
        return Err(StorageError::Format {
            path: data_dir.to_owned(),
            message: format!(
                "holds no {}: not a ctxd data directory",
                manifest::FILE_NAME
            ),
        });
    }
    manifest::load_or_create(data_dir, false)?;
    let text = TextStore::open(data_dir)?;
    let vectors = VectorStore::open(data_dir)?;
    let result = check::run(text.conn(), &vectors);
    let closed = text.close().and(vectors.close());
    let result = result?;
    closed?;
    Ok(result)
}

/// Builds the in-memory vector set from LMDB of every collection `wanted` that `sets` lacks.
fn load_sets(
    catalog: &Catalog,
    vectors: &VectorStore,
    sets: &mut HashMap<u16, SharedVectorSet>,
    wanted: impl Fn(u16) -> bool,
) -> Result<(), StorageError> {
    let reader = vectors.reader();
    let rtxn = reader.read_txn()?;
    for collection in catalog.iter() {
        if sets.contains_key(&collection.id) || !wanted(collection.id) {
            continue;
        }
        let mut set = VectorSet::new(collection.dimension as usize, collection.distance);
        // An upper bound (documents without vectors count too), so the buffer never regrows.
        set.reserve(usize::try_from(collection.count).unwrap_or(0));
        reader.for_each(&rtxn, collection.id, |key, bytes| {
            set.upsert(key, &vectors::decode_vector(bytes));
        })?;
        sets.insert(collection.id, Arc::new(RwLock::new(set)));
    }
    Ok(())
}

/// Decides, at open, which collections are in the ANN tier and whether their indexes can be
/// used as they are; opens the ANN environment if any collection is in the tier.
///
/// An index is reused only after a clean close at exactly this generation (the marker in the
/// main store), when its record matches the collection, arroy reads it as built, and the keys
/// it holds differ from the main store's only in keys recorded as pending. Anything else is
/// rebuilt from the main store in the background (searches use the full in-memory set
/// meanwhile). With no collection in the tier, the directory is removed.
fn open_ann(
    data_dir: &Path,
    vectors: &VectorStore,
    catalog: &Catalog,
    generation: u64,
    tier: &AnnSide,
) -> Result<Option<AnnEnv>, StorageError> {
    let marker = vectors.take_ann_clean()?;
    let reader = vectors.reader();
    let rtxn = reader.read_txn()?;
    let mut qualifying = Vec::new();
    for collection in catalog.iter() {
        // The document count bounds the vector count: most collections skip the key scan.
        if !tier.qualifies(collection.count) {
            continue;
        }
        let keys = reader.keys(&rtxn, collection.id)?;
        if tier.qualifies(keys.len()) {
            qualifying.push((collection, keys));
        }
    }
    if qualifying.is_empty() {
        ann::remove(data_dir)?;
        return Ok(None);
    }
    let trusted = marker == Some(generation) && ann::dir(data_dir).exists();
    let env = AnnEnv::open(data_dir, trusted)?;
    let records = if trusted {
        env.records()?
    } else {
        HashMap::new()
    };
    let ann_reader = env.reader();
    let mut reused = Vec::new();
    for (collection, keys) in qualifying {
        let dimension = collection.dimension as usize;
        let mut state = AnnCollection::new(dimension, collection.distance);
        let usable = records.get(&collection.id).filter(|record| {
            record.dimension == collection.dimension
                && record.distance == collection.distance
                && ann_reader
                    .built_items(collection.id, collection.distance)
                    .is_ok_and(|(built_dimension, items)| {
                        built_dimension == dimension && (&items ^ &keys).is_subset(&record.pending)
                    })
        });
        if let Some(record) = usable {
            // Resume from the last build: only the pending keys are searched fresh.
            for key in &record.pending {
                match reader.get(&rtxn, collection.id, key)? {
                    Some(vector) => state.put(key, &vector, generation),
                    None => state.delete(key, generation),
                }
            }
            state.built = true;
            reused.push(collection.id);
        }
        tracing::info!(
            collection = %collection.name,
            vectors = keys.len(),
            reused = state.built,
            pending = state.pending_len(),
            "collection in the ANN tier"
        );
        tier.insert(collection.id, state);
    }
    drop(ann_reader);
    // Indexes nothing reuses (dropped collections, collections no longer in the tier) are
    // removed by the builder; a collection rebuilt from scratch clears its own.
    tier.drop_indexes(
        env.indexes()
            .map_err(StorageError::from)?
            .into_iter()
            .filter(|id| !reused.contains(id)),
    );
    Ok(Some(env))
}

/// Lends the ANN environment to searches and starts its builder.
fn start_ann(side: &Arc<ReadSide>, env: AnnEnv) -> Result<AnnRuntime, StorageError> {
    let env = Arc::new(env);
    side.ann.set_reader(Some(env.reader()));
    let builder = Builder::start(Arc::clone(side), Arc::clone(&env))
        .map_err(StorageError::io("cannot start the ANN builder thread", "."))?;
    Ok(AnnRuntime { env, builder })
}

/// Saves what a clean close must remember: each built collection's pending keys.
fn save_ann(env: &AnnEnv, side: &ReadSide) -> Result<(), StorageError> {
    let records: Vec<(u16, Record)> = side
        .ann
        .collections()
        .iter()
        .filter_map(|(&id, state)| {
            let state = state.read().unwrap_or_else(|e| e.into_inner());
            state.built.then(|| {
                (
                    id,
                    Record {
                        dimension: state.dimension() as u32,
                        distance: state.distance(),
                        pending: state.pending().clone(),
                    },
                )
            })
        })
        .collect();
    env.save(&records).map_err(|e| {
        tracing::warn!("cannot save the ANN index state (it is rebuilt at next open): {e}");
        StorageError::from(e)
    })
}

/// The storage thread's loop: commands in arrival order; consecutive writes form one group.
fn run(
    mut storage: Option<Storage>,
    data_dir: &Path,
    options: StoreOptions,
    gate: &ReadGate,
    mut inbox: mpsc::UnboundedReceiver<Command>,
) {
    let mut next = None;
    let mut parked: Option<Parked> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            None => match inbox.blocking_recv() {
                Some(command) => command,
                None => break,
            },
        };
        match command {
            Command::Write(op, reply) => {
                let mut group = vec![(op, reply)];
                while group.len() < MAX_GROUP {
                    match inbox.try_recv() {
                        Ok(Command::Write(op, reply)) => group.push((op, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match storage.as_mut() {
                    Some(storage) => storage.write_group(group),
                    None => {
                        for (_, reply) in group {
                            let _ = reply.send(Err(StorageError::Closed));
                        }
                    }
                }
            }
            Command::Close(reply) => {
                let result = storage.take().map_or(Ok(()), |s| {
                    let sets = s
                        .side
                        .sets
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    parked = Some((s.side.generation(), sets));
                    s.close(gate)
                });
                match &result {
                    Ok(()) => tracing::info!("storage closed"),
                    Err(e) => tracing::error!("closing storage failed: {e}"),
                }
                let _ = reply.send(result);
            }
            Command::HoldJournal(reply) => {
                let _ = reply.send(match storage.as_mut() {
                    Some(storage) => {
                        let generation = storage.side.generation();
                        storage.hold_journal = Some(generation);
                        Ok(generation)
                    }
                    None => Err(StorageError::Closed),
                });
            }
            Command::Check(reply) => {
                let _ = reply.send(match storage.as_ref() {
                    Some(storage) => check::run(storage.text.conn(), &storage.vectors),
                    None => Err(StorageError::Closed),
                });
            }
            Command::UnholdJournal(reply) => {
                if let Some(storage) = storage.as_mut() {
                    storage.hold_journal = None;
                }
                let _ = reply.send(Ok(()));
            }
            Command::Reopen(verify, reply) => {
                // Files that changed (verify) get their vector sets rebuilt from disk.
                let reuse = if verify { None } else { parked.take() };
                parked = None;
                let result = match storage {
                    Some(_) => Ok(()),
                    None => Storage::open_reusing(data_dir, reuse, options).and_then(|opened| {
                        if verify {
                            let report = check::run(opened.text.conn(), &opened.vectors)?;
                            if !report.passed {
                                let d = &report.details;
                                let problems: Vec<&String> = d
                                    .text
                                    .problems
                                    .iter()
                                    .chain(&d.vectors.problems)
                                    .chain(&d.consistency.problems)
                                    .collect();
                                let _ = opened.close(&ReadGate::default());
                                return Err(StorageError::Corrupt(format!(
                                    "the files changed while released and fail verification: {}",
                                    problems
                                        .iter()
                                        .map(|p| p.as_str())
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                )));
                            }
                        }
                        gate.open(Arc::clone(&opened.side));
                        storage = Some(opened);
                        Ok(())
                    }),
                };
                if let Err(e) = &result {
                    tracing::error!("reopening storage failed: {e}");
                }
                let _ = reply.send(result);
            }
        }
    }
    if let Some(storage) = storage.take() {
        tracing::warn!("storage handle dropped while open; closing now");
        if let Err(e) = storage.close(gate) {
            tracing::error!("closing storage failed: {e}");
        }
    }
}

/// Whether `data_dir` is a new, empty directory. A non-empty directory without `ctxd.json` is
/// refused, so pointing `--data` at the wrong directory never scatters files into it.
fn is_fresh(data_dir: &Path) -> Result<bool, StorageError> {
    let mut entries =
        std::fs::read_dir(data_dir).map_err(StorageError::io("cannot read", data_dir))?;
    if entries.next().is_none() {
        return Ok(true);
    }
    if data_dir.join(manifest::FILE_NAME).exists() {
        return Ok(false);
    }
    Err(StorageError::Format {
        path: data_dir.to_owned(),
        message: format!(
            "not empty and holds no {}: refusing to use it as a data directory",
            manifest::FILE_NAME
        ),
    })
}

/// Makes a rename or creation inside `dir` durable.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("cannot sync", dir))
}

/// Windows makes renames durable with the file's own flush; directories cannot be synced.
#[cfg(windows)]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), StorageError> {
    Ok(())
}
