//! The storage owner: the only code that opens files in the data directory.
//!
//! One dedicated thread owns the SQLite connection ([`text`]), the LMDB environment
//! ([`vectors`]) and reads `ctxd.json` ([`manifest`]). Everyone else holds a [`Store`], a cheap
//! handle. Writes are commands to that thread, committed in groups ([`writer`]); reads borrow
//! read-only handles through a gate ([`reader`]) and run concurrently on a fixed pool of read
//! threads with a bounded queue ([`read_pool`]).
//! "Close every file" is one command: the thread shuts the read gate, waits for reads in
//! progress, and closes SQLite and LMDB; commands are processed in arrival order, so no write
//! is half done when it closes.
//!
//! The handle is [`Store`] (`store.rs`); the thread's loop and the files it holds open are in
//! `owner.rs`; `replay.rs` brings LMDB up to SQLite after a crash; `ann_lifecycle.rs` opens,
//! starts and closes the ANN tier; `layout.rs` knows which files form a data directory.
//!
//! Collections with at least `--ann-threshold` vectors are also indexed by arroy, in a second
//! LMDB environment written by a background builder ([`ann`], [`ann_builder`], [`ann_state`]);
//! the storage thread opens and closes it with the rest.

mod ann;
mod ann_builder;
mod ann_lifecycle;
mod ann_state;
mod catalog;
mod check;
mod documents;
mod error;
pub mod filter_sql;
mod fts;
mod headroom;
mod journal_codec;
pub mod layout;
pub mod manifest;
mod map_size;
mod owner;
mod read;
pub mod read_pool;
mod reader;
mod replay;
mod search;
pub mod snapshot;
mod store;
pub mod text;
mod text_filter_sql;
mod validate;
pub mod vector_set;
pub mod vectors;
mod writer;

pub use check::check_offline;
pub use error::StorageError;
pub use store::Store;

/// How the store is run.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Collections with at least this many vectors get an arroy index (the ANN tier); 0 =
    /// never (every collection is searched by its in-memory scan).
    pub ann_threshold: u64,
    /// Threads that run reads ([`read_pool`]).
    pub read_threads: usize,
    /// Reads that may wait for a thread before more are refused with `busy`.
    pub read_queue: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            ann_threshold: 0,
            read_threads: read_pool::default_threads(),
            read_queue: read_pool::DEFAULT_QUEUE,
        }
    }
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
