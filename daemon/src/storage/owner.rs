//! The storage thread: the one owner of every open file of the data directory.
//!
//! It runs [`run`]: commands from [`Store`](super::Store) handles in arrival order, consecutive
//! writes committed as one group. [`Storage`] is what it holds open: the SQLite connection,
//! the LMDB environment, the read side it lends, and the ANN tier. Closing shuts the read gate,
//! waits for lent reads, and closes everything in one order.

use super::ann_lifecycle::{self, AnnRuntime};
use super::ann_state::AnnSide;
use super::catalog::Catalog;
use super::headroom::Headroom;
use super::reader::{ReadGate, ReadSide, SharedVectorSet};
use super::text::TextStore;
use super::vector_set::VectorSet;
use super::vectors::{self, VectorStore};
use super::writer::{self, GroupFailure, WriteOp, Written};
use super::{StorageError, StoreOptions, check, layout, manifest, replay};
use ctxd_proto::CheckResult;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

/// The most write requests committed together in one group (one fsync pair).
const MAX_GROUP: usize = 64;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// What a [`Store`](super::Store) asks of the storage thread.
pub(super) enum Command {
    Write(WriteOp, Reply<Written>),
    Close(Reply<()>),
    /// Reopen; with `verify`, run every check before serving and close again if one fails.
    Reopen(bool, Reply<()>),
    /// Keep journal rows newer than the current generation until `UnholdJournal` with the id
    /// answered (a snapshot needs them to replay into its copy).
    HoldJournal(Reply<u64>),
    /// End the hold with this id.
    UnholdJournal(u64),
    Check(Reply<CheckResult>),
}

/// The open files of a data directory, owned by the storage thread.
pub(super) struct Storage {
    pub(super) text: TextStore,
    pub(super) vectors: VectorStore,
    pub(super) side: Arc<ReadSide>,
    /// The ANN environment and its builder, while some collection is in the tier.
    ann: Option<AnnRuntime>,
    /// The gate every read of the environments passes: lent to searches, paused to grow a map,
    /// shut at close.
    gate: Arc<ReadGate>,
    data_dir: PathBuf,
    /// Set when a group committed in SQLite but not in LMDB: the next write first replays the
    /// journal into LMDB (`writer::catch_up`).
    vectors_behind: bool,
    /// Disk space reserved beyond the end of LMDB's file (`headroom`).
    headroom: Headroom,
    /// Holds on the journal by id, each at the generation it was taken: rows newer than the
    /// oldest are kept (the snapshots in progress replay them).
    holds: BTreeMap<u64, u64>,
    next_hold: u64,
}

/// The in-memory vector sets of a closed store and the generation they reflect: kept across a
/// release (they are memory, not handles) so an unchanged store resumes without rebuilding them.
type Parked = (u64, HashMap<u16, SharedVectorSet>);

impl Storage {
    /// Opens the store; every read of it will pass `gate`, which the caller opens.
    pub(super) fn open(
        data_dir: &Path,
        options: StoreOptions,
        gate: Arc<ReadGate>,
    ) -> Result<Storage, StorageError> {
        Storage::open_reusing(data_dir, None, options, gate)
    }

    /// Opens the store; `parked` vector sets are reused if they reflect the generation found.
    fn open_reusing(
        data_dir: &Path,
        parked: Option<Parked>,
        options: StoreOptions,
        gate: Arc<ReadGate>,
    ) -> Result<Storage, StorageError> {
        let fresh = layout::is_fresh(data_dir)?;
        manifest::load_or_create(data_dir, fresh)?;
        let text = TextStore::open(data_dir)?;
        let vectors = VectorStore::open(data_dir, Arc::clone(&gate))?;
        let generation = replay::replay(&text, &vectors)?;
        let catalog = Catalog::load(text.conn())?;
        let ann_side = AnnSide::new(options.ann_threshold);
        let ann_env =
            ann_lifecycle::open_ann(data_dir, &vectors, &catalog, generation, &ann_side, &gate)?;
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
        side.open_pool(options.read_threads)?;
        let ann = match ann_env {
            Some(env) => Some(ann_lifecycle::start_ann(&side, env)?),
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
            gate,
            data_dir: data_dir.to_owned(),
            vectors_behind: false,
            headroom: Headroom::new(data_dir.join(vectors::DATA_FILE)),
            holds: BTreeMap::new(),
            next_hold: 0,
        })
    }

    /// Stops the ANN builder (cancelling a running build), shuts the read gate, waits for
    /// reads, then closes SQLite first (checkpoint, close), the ANN environment (saving what
    /// is pending) and LMDB last; all are attempted even if one fails, and the first error is
    /// returned.
    pub(super) fn close(self) -> Result<(), StorageError> {
        let Storage {
            text,
            vectors,
            side,
            ann,
            gate,
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
        let saved = ann.as_ref().map(|env| ann_lifecycle::save_ann(env, &side));
        // The last reference: dropping it closes the pooled read connections and the LMDB
        // reader handles, which must be gone before the checkpoint and the env closes.
        drop(side);
        let text = text.close().map_err(|e| {
            if e.is_disk_full() {
                StorageError::CloseDiskFull(e.to_string())
            } else {
                e
            }
        });
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

    /// Commits one group and answers each of its requests.
    ///
    /// First the stores must agree: after a group whose LMDB commit failed, the journal is
    /// replayed into LMDB before anything new is written (and while that fails, each new group
    /// is refused, with nothing written). Before SQLite commits, the room the group's vectors
    /// may need in LMDB is made — the map grown if they would not fit (`map_size`), disk space
    /// reserved (`headroom`) — so that neither can stop the group after SQLite committed it;
    /// if that fails the group is refused, with nothing written.
    fn write_group(&mut self, group: Vec<(WriteOp, Reply<Written>)>) {
        let (ops, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let refuse = |replies: Vec<Reply<Written>>, error: &StorageError| {
            for reply in replies {
                let _ = reply.send(Err(refusal(error)));
            }
        };
        if self.vectors_behind {
            if let Err(e) = writer::catch_up(&self.text, &self.vectors, &self.side) {
                tracing::warn!("the vector store still cannot catch up: {e}");
                return refuse(replies, &e);
            }
            self.vectors_behind = false;
        }
        let (vectors, headroom) = (&self.vectors, &mut self.headroom);
        let mut make_room = |bytes: u64| {
            vectors
                .make_room(bytes)
                .and_then(|()| headroom.reserve(bytes))
        };
        match writer::commit_group(
            &self.text,
            &self.vectors,
            &self.side,
            self.holds.values().min().copied(),
            ops,
            &mut make_room,
        ) {
            Ok(results) => {
                for (result, reply) in results.into_iter().zip(replies) {
                    let _ = reply.send(result);
                }
                ann_lifecycle::ensure(&mut self.ann, &self.side, &self.data_dir, &self.gate);
            }
            Err(GroupFailure::NotWritten(e)) if e.is_disk_full() => {
                tracing::warn!("a write group was refused: {e}");
                refuse(replies, &e);
            }
            Err(GroupFailure::NotWritten(e)) => {
                tracing::error!("write failed, nothing of it was written: {e}");
                refuse(replies, &e);
            }
            Err(GroupFailure::VectorsBehind(e)) => {
                tracing::error!(
                    "the vector store failed after the text store committed ({e}); the writes \
                     are journaled and are applied before the next write"
                );
                self.vectors_behind = true;
                for reply in replies {
                    let _ = reply.send(Err(StorageError::VectorsBehind(e.to_string())));
                }
            }
        }
    }
}

/// The error each request of a refused group gets: a full disk as `disk_full`, anything else
/// as a failure that wrote nothing (both say why).
fn refusal(error: &StorageError) -> StorageError {
    if error.is_disk_full() {
        match error {
            StorageError::DiskFull(what) => StorageError::DiskFull(what.clone()),
            StorageError::NoRoom(what) => StorageError::NoRoom(what.clone()),
            other => StorageError::DiskFull(other.to_string()),
        }
    } else {
        StorageError::NotWritten(error.to_string())
    }
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
        if sets.contains_key(&collection.id)
            || !wanted(collection.id)
            || collection.dimension_unfixed()
        {
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

/// The storage thread's loop: commands in arrival order; consecutive writes form one group.
pub(super) fn run(
    mut storage: Option<Storage>,
    data_dir: &Path,
    options: StoreOptions,
    gate: &Arc<ReadGate>,
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
                    s.close()
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
                        let id = storage.next_hold;
                        storage.next_hold += 1;
                        storage.holds.insert(id, storage.side.generation());
                        Ok(id)
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
            Command::UnholdJournal(id) => {
                if let Some(storage) = storage.as_mut() {
                    storage.holds.remove(&id);
                }
            }
            Command::Reopen(verify, reply) => {
                // Files that changed (verify) get their vector sets rebuilt from disk.
                let reuse = if verify { None } else { parked.take() };
                parked = None;
                let result = match storage {
                    Some(_) => Ok(()),
                    None => Storage::open_reusing(data_dir, reuse, options, Arc::clone(gate))
                        .and_then(|opened| {
                            if verify {
                                let report = check::run(opened.text.conn(), &opened.vectors)?;
                                if !report.passed {
                                    let problems = check::problems(&report).join("; ");
                                    let _ = opened.close();
                                    return Err(StorageError::Corrupt(format!(
                                        "the files changed while released and fail verification: \
                                     {problems}"
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
        if let Err(e) = storage.close() {
            tracing::error!("closing storage failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxd_proto::{CreateCollection, Document, Upsert};

    fn upsert(id: &str, x: f32) -> WriteOp {
        WriteOp::Upsert(
            Upsert {
                collection: "c".into(),
                documents: vec![Document {
                    id: id.into(),
                    text: Some("text".into()),
                    vector: Some(vec![x, 1.0].into()),
                    metadata: None,
                }],
            },
            None,
        )
    }

    /// Writes one request as its own group; returns its result.
    fn write(storage: &mut Storage, op: WriteOp) -> Result<Written, StorageError> {
        let (reply, answer) = oneshot::channel();
        storage.write_group(vec![(op, reply)]);
        answer.blocking_recv().expect("answered")
    }

    /// A group whose LMDB commit fails after SQLite committed it is journaled; the next write
    /// replays it into LMDB and memory first, so both stores agree again and nothing is lost.
    #[test]
    fn a_failed_vector_commit_is_caught_up_before_the_next_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions {
            read_threads: 1,
            ..StoreOptions::default()
        };
        let mut storage = Storage::open(dir.path(), options, Arc::default()).expect("open");
        let create = WriteOp::CreateCollection(
            CreateCollection {
                name: "c".into(),
                dimension: Some(2),
                ..CreateCollection::default()
            },
            None,
        );
        write(&mut storage, create).expect("create");
        write(&mut storage, upsert("a", 1.0)).expect("a");

        storage.vectors.fail_next_commit.set(true);
        let behind = write(&mut storage, upsert("b", 2.0)).expect_err("the vector commit fails");
        assert!(matches!(behind, StorageError::VectorsBehind(_)), "{behind}");
        assert_eq!(storage.side.generation(), 2, "memory is where LMDB is");

        write(&mut storage, upsert("c", 3.0)).expect("the next write catches up first");
        assert_eq!(storage.side.generation(), 4);
        assert_eq!(storage.vectors.generation().expect("generation"), 4);
        let set = storage
            .side
            .set(storage.side.catalog().require("c").expect("c").id);
        assert_eq!(
            set.expect("a set").read().expect("lock").len(),
            3,
            "a, b and c"
        );
        assert_eq!(storage.side.catalog().require("c").expect("c").count, 3);
        let report = check::run(storage.text.conn(), &storage.vectors).expect("check");
        assert!(report.passed, "{report:?}");
        storage.close().expect("close");
    }
}
