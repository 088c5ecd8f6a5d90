//! [`Store`]: the cheap handle everyone but the storage thread holds. Writes and lifecycle
//! commands go to the thread over a channel; reads borrow the read side through the gate and
//! run on the read pool ([`ReadPool`]).

use super::owner::{self, Command, Reply};
use super::read_pool::ReadPool;
use super::reader::{ReadGate, ReadLease};
use super::writer::{WriteOp, Written};
use super::{Stats, StorageError, StoreOptions, read, search, snapshot};
use ctxd_proto::{
    CheckResult, CollectionEmbedder, CollectionResult, Count, CountResult, CreateCollection,
    Delete, DeleteResult, DropCollection, DropCollectionResult, Get, GetResult,
    ListCollectionsResult, Search, SearchResult, Snapshot, SnapshotResult, Update, UpdateResult,
    Upsert, UpsertResult,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

/// A handle to the storage thread. Cloning is cheap; the thread ends when the last handle is
/// dropped (closing the files first if they are still open).
#[derive(Clone)]
pub struct Store {
    commands: mpsc::UnboundedSender<Command>,
    gate: Arc<ReadGate>,
    /// Turns for snapshots to copy ([`snapshot::MAX_CONCURRENT`]).
    snapshots: Arc<Semaphore>,
    /// The threads reads run on.
    reads: ReadPool,
}

/// A hold on the redo journal ([`Store::hold_journal`]); dropping it ends the hold, also when
/// the snapshot that took it is abandoned half way.
pub(super) struct JournalHold {
    commands: mpsc::UnboundedSender<Command>,
    id: u64,
}

impl Drop for JournalHold {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::UnholdJournal(self.id));
    }
}

impl Store {
    /// Opens the data directory `data_dir` (canonical, existing) on a new storage thread.
    pub async fn open(data_dir: PathBuf, options: StoreOptions) -> Result<Store, StorageError> {
        let reads = ReadPool::start(options.read_threads, options.read_queue)?;
        let (commands, inbox) = mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = oneshot::channel();
        let gate = Arc::new(ReadGate::default());
        let thread_gate = Arc::clone(&gate);
        thread::Builder::new()
            .name("ctxd-storage".to_owned())
            .spawn(move || {
                match owner::Storage::open(&data_dir, options, Arc::clone(&thread_gate)) {
                    Ok(storage) => {
                        thread_gate.open(Arc::clone(&storage.side));
                        let _ = opened_tx.send(Ok(()));
                        owner::run(Some(storage), &data_dir, options, &thread_gate, inbox);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })
            .map_err(StorageError::io("cannot start the storage thread", "."))?;
        opened_rx.await.map_err(|_| StorageError::Closed)??;
        Ok(Store {
            commands,
            gate,
            snapshots: Arc::new(Semaphore::new(snapshot::MAX_CONCURRENT)),
            reads,
        })
    }

    /// The counts `status` reports; [`StorageError::Closed`] while closed.
    pub async fn stats(&self) -> Result<Stats, StorageError> {
        let side = self.gate.enter().await?;
        let catalog = side.catalog();
        Ok(Stats {
            generation: side.generation(),
            collections: catalog.len() as u64,
            documents: catalog.documents(),
        })
    }

    /// `create_collection`; `embedder` is the identity of the model the request named, which
    /// the collection records.
    pub async fn create_collection(
        &self,
        params: CreateCollection,
        embedder: Option<CollectionEmbedder>,
    ) -> Result<CollectionResult, StorageError> {
        match self
            .write(WriteOp::CreateCollection(params, embedder))
            .await?
        {
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

    /// `upsert`: returns once the batch is durable in both stores. `embedded` is the embedder
    /// that computed the vectors of its text-only documents, if one did: the write is refused
    /// (`busy`, nothing written) unless the collection still has exactly that embedder, and a
    /// document without a vector in a collection with an embedder is refused the same way.
    pub async fn upsert(
        &self,
        params: Upsert,
        embedded: Option<CollectionEmbedder>,
    ) -> Result<UpsertResult, StorageError> {
        match self.write(WriteOp::Upsert(params, embedded)).await? {
            Written::Upserted(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// `update`: returns once the change is durable in both stores.
    pub async fn update(
        &self,
        params: Update,
        embedded: Option<CollectionEmbedder>,
    ) -> Result<UpdateResult, StorageError> {
        match self.write(WriteOp::Update(params, embedded)).await? {
            Written::Updated(result) => Ok(result),
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

    /// The embedder collection `name` records (`collection_not_found` if there is none).
    /// Reads the in-memory catalog only.
    pub async fn embedder_of(
        &self,
        name: &str,
    ) -> Result<Option<CollectionEmbedder>, StorageError> {
        let side = self.gate.enter().await?;
        let catalog = side.catalog();
        Ok(catalog.require(name)?.embedder.clone())
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

    /// `snapshot`: a consistent, verified copy of `data_dir` as `params` asks, written while
    /// serving (see the `snapshot` module for why writes never wait for it).
    pub async fn snapshot(
        &self,
        params: &Snapshot,
        data_dir: PathBuf,
    ) -> Result<SnapshotResult, StorageError> {
        snapshot::take(self, params, data_dir).await
    }

    /// `snapshot_stream`: a snapshot sealed in a temporary directory, ready to be written as a
    /// tar stream.
    pub async fn snapshot_for_stream(
        &self,
        tmp_dir: Option<&str>,
        data_dir: PathBuf,
    ) -> Result<snapshot::Streamable, StorageError> {
        snapshot::take_for_stream(self, tmp_dir, data_dir).await
    }

    /// Waits for one of the [`snapshot::MAX_CONCURRENT`] turns to copy (held by the snapshot
    /// until it is published or its stream ends).
    pub(super) async fn snapshot_turn(&self) -> Result<OwnedSemaphorePermit, StorageError> {
        Arc::clone(&self.snapshots)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)
    }

    /// Borrows the read side (`Closed` while closed); closing waits until it is returned.
    pub(super) async fn enter_read(&self) -> Result<ReadLease, StorageError> {
        self.gate.enter().await
    }

    /// Keeps the redo journal's rows newer than the current generation until the hold is
    /// dropped (a snapshot in progress replays them into its copy).
    pub(super) async fn hold_journal(&self) -> Result<JournalHold, StorageError> {
        let id = self.ask(Command::HoldJournal).await?;
        Ok(JournalHold {
            commands: self.commands.clone(),
            id,
        })
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

    /// Runs a read on the read pool with a lent read side (`busy` when the pool and its queue
    /// are full).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadLease) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let lease = self.gate.enter().await?;
        self.reads.run(move || f(&lease)).await
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
