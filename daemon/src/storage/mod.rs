//! The storage owner: the only code that opens files in the data directory.
//!
//! One dedicated thread owns the SQLite connection ([`text`]), the LMDB environment
//! ([`vectors`]) and reads `ctxd.json` ([`manifest`]). Everyone else holds a [`Store`], a cheap
//! handle that sends commands to that thread and awaits the answer. "Close every file" is then
//! one command, processed after every command sent before it, so nothing is in the middle of
//! using a handle when it closes.

mod error;
pub mod filter_sql;
pub mod manifest;
pub mod text;
pub mod vector_set;
pub mod vectors;

pub use error::StorageError;

use std::path::{Path, PathBuf};
use std::thread;
use text::TextStore;
use tokio::sync::{mpsc, oneshot};
use vectors::VectorStore;

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
    Stats(Reply<Stats>),
    Close(Reply<()>),
}

/// A handle to the storage thread. Cloning is cheap; the thread ends when the last handle is
/// dropped (closing the files first if they are still open).
#[derive(Clone)]
pub struct Store {
    commands: mpsc::UnboundedSender<Command>,
}

impl Store {
    /// Opens the data directory `data_dir` (canonical, existing) on a new storage thread.
    pub async fn open(data_dir: PathBuf) -> Result<Store, StorageError> {
        let (commands, inbox) = mpsc::unbounded_channel();
        let (opened_tx, opened_rx) = oneshot::channel();
        let dir = data_dir.clone();
        thread::Builder::new()
            .name("ctxd-storage".to_owned())
            .spawn(move || match Storage::open(&dir) {
                Ok(storage) => {
                    let _ = opened_tx.send(Ok(()));
                    run(Some(storage), inbox);
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            })
            .map_err(StorageError::io(
                "cannot start the storage thread for",
                &data_dir,
            ))?;
        opened_rx.await.map_err(|_| StorageError::Closed)??;
        Ok(Store { commands })
    }

    /// The counts `status` reports; [`StorageError::Closed`] while closed.
    pub async fn stats(&self) -> Result<Stats, StorageError> {
        self.ask(Command::Stats).await
    }

    /// Closes every file: checkpoints and closes SQLite, then closes LMDB and waits until it
    /// has unmapped its files. Closing a closed store does nothing.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.ask(Command::Close).await
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }
}

/// The open files of a data directory.
struct Storage {
    text: TextStore,
    vectors: VectorStore,
}

impl Storage {
    fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        let fresh = is_fresh(data_dir)?;
        manifest::load_or_create(data_dir, fresh)?;
        let text = TextStore::open(data_dir)?;
        let vectors = VectorStore::open(data_dir)?;
        let storage = Storage { text, vectors };
        let stats = storage.text.stats()?;
        let vector_generation = storage.vectors.generation()?;
        tracing::info!(
            data_dir = %data_dir.display(),
            generation = stats.generation,
            vector_generation,
            collections = stats.collections,
            documents = stats.documents,
            "storage open"
        );
        Ok(storage)
    }

    /// Closes SQLite first (checkpoint, close), then LMDB; both are attempted even if the first
    /// fails, and the first error is returned.
    fn close(self) -> Result<(), StorageError> {
        let text = self.text.close();
        let vectors = self.vectors.close();
        text.and(vectors)
    }
}

/// The storage thread's loop: one command at a time, in arrival order.
fn run(mut storage: Option<Storage>, mut inbox: mpsc::UnboundedReceiver<Command>) {
    while let Some(command) = inbox.blocking_recv() {
        match command {
            Command::Stats(reply) => {
                let result = match &storage {
                    Some(s) => s.text.stats().map(|t| Stats {
                        generation: t.generation,
                        collections: t.collections,
                        documents: t.documents,
                    }),
                    None => Err(StorageError::Closed),
                };
                let _ = reply.send(result);
            }
            Command::Close(reply) => {
                let result = storage.take().map_or(Ok(()), Storage::close);
                if let Err(e) = &result {
                    tracing::error!("closing storage failed: {e}");
                } else {
                    tracing::info!("storage closed");
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
