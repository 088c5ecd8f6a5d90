//! The background builder: folds pending vector changes into the arroy indexes, in batches.
//!
//! One thread per open store. It waits for a writer's signal, picks the collection that most
//! needs a build, reads the changed vectors from the main environment (in short read
//! transactions, all ended before the build, so a long build never pins old pages of the main
//! store), applies them in one ANN write transaction, builds, commits, and only then tells the
//! shared state that those changes are in the index (`AnnCollection::publish`). A write is
//! acknowledged long before that; searches see it through the fresh set meanwhile.
//!
//! Batching: a build re-reads every item of the index, so it costs about the same for one
//! change as for a thousand (0.25–2 s at 100k, measured before the tier was built). The builder therefore takes every
//! pending change at once and, after a build of `t` seconds, waits `t` before the next one:
//! at most half of one core goes to building under a steady write load, and the batches grow
//! with the build time by themselves.
//!
//! Growing: the feed reads the main environment in runs, each counted at the read gate (the
//! storage thread may be growing that map, and waits for one run at most), and a build that
//! meets `MDB_MAP_FULL` in its own environment grows it and runs again (`AnnEnv::build`,
//! `storage::map_size`).
//!
//! Cancelling: close, release and shutdown set the tier's stop flag; arroy checks it at every
//! tree node, the feed every [`CANCEL_EVERY`] vectors (and stops too if the collection was
//! dropped). A cancelled build commits nothing, so its changes simply stay pending (and are
//! saved as pending at the clean close).
//!
//! Parallelism: builds run on their own rayon pool of half the cores (at least one): a build
//! never takes the cores request handling needs.

use super::ann::{AnnEnv, AnnError, Feed, Index};
use super::ann_state::SharedAnn;
use super::reader::ReadSide;
use super::vectors::decode_vector;
use roaring::RoaringBitmap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many vectors the feed reads per read transaction; it checks for cancellation between.
const CANCEL_EVERY: u64 = 1024;

/// The longest wait after failed builds (they back off exponentially up to this).
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The running builder thread.
pub struct Builder {
    thread: JoinHandle<()>,
}

impl Builder {
    /// Starts the builder for the open store `side`, writing to `env`.
    pub fn start(side: Arc<ReadSide>, env: Arc<AnnEnv>) -> Result<Builder, std::io::Error> {
        let thread = std::thread::Builder::new()
            .name("ctxd-ann-builder".to_owned())
            .spawn(move || run(&side, &env))?;
        Ok(Builder { thread })
    }

    /// Waits for the thread to end (after `AnnSide::stop`).
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the ANN builder thread panicked");
        }
    }
}

fn run(side: &ReadSide, env: &AnnEnv) {
    let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ctxd-ann-{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!("cannot start the ANN build pool ({e}); searches stay exact");
            return;
        }
    };
    let mut not_before = Instant::now();
    let mut failures = 0u32;
    while side
        .ann
        .wait_for_work(not_before, || next_job(side).is_some())
    {
        let dropped = side.ann.take_dropped();
        if let Err(e) = env.clear(&dropped) {
            tracing::error!(collections = ?dropped, "cannot remove ANN indexes: {e}");
        }
        let Some((id, state)) = next_job(side) else {
            continue;
        };
        let name = side
            .catalog()
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let (first, pending) = {
            let s = state.read().unwrap_or_else(|e| e.into_inner());
            (!s.built, s.pending_len())
        };
        tracing::info!(collection = %name, first, pending, "ann build started");
        let started = Instant::now();
        let outcome = build(side, env, id, &state, &pool);
        let seconds = started.elapsed().as_secs_f64();
        let pending = state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .pending_len();
        match outcome {
            Ok(built) => {
                failures = 0;
                tracing::info!(
                    collection = %name,
                    items = built.items,
                    changes = built.changes,
                    first = built.first,
                    pending,
                    seconds,
                    cancelled = false,
                    "ann build finished"
                );
            }
            Err(AnnError::Cancelled) => {
                tracing::info!(
                    collection = %name,
                    pending,
                    seconds,
                    cancelled = true,
                    "ann build cancelled"
                );
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::error!(
                    collection = %name,
                    pending,
                    seconds,
                    "ann build failed (searches stay correct; retrying later): {e}"
                );
            }
        }
        // Pacing: wait as long as the build took (twice as long per consecutive failure).
        let pause = started
            .elapsed()
            .max(if failures > 0 {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            })
            .saturating_mul(1 << failures.min(10))
            .min(MAX_BACKOFF);
        not_before = Instant::now() + pause;
    }
}

/// The collection to build next: one never built first, then the most pending changes.
fn next_job(side: &ReadSide) -> Option<(u16, SharedAnn)> {
    let collections = side.ann.collections();
    collections
        .iter()
        .filter_map(|(&id, state)| {
            let s = state.read().unwrap_or_else(|e| e.into_inner());
            s.needs_build()
                .then(|| ((!s.built, s.pending_len()), id, Arc::clone(state)))
        })
        .max_by_key(|(rank, id, _)| (*rank, std::cmp::Reverse(*id)))
        .map(|(_, id, state)| (id, state))
}

/// What one build did.
struct Built {
    items: u64,
    changes: u64,
    first: bool,
}

fn build(
    side: &ReadSide,
    env: &AnnEnv,
    id: u16,
    state: &SharedAnn,
    pool: &rayon::ThreadPool,
) -> Result<Built, AnnError> {
    // Every change up to this generation is in pending (the writer records changes before it
    // publishes their generation), and the read transactions below see at least this much.
    let generation = side.generation();
    let (dimension, distance, first, keys) = {
        let s = state.read().unwrap_or_else(|e| e.into_inner());
        let keys: Option<RoaringBitmap> = (s.built).then(|| s.pending().clone());
        (s.dimension(), s.distance(), !s.built, keys)
    };
    // About how many changes the feed gives, to size the map before the build.
    let expected = match &keys {
        Some(keys) => keys.len(),
        None => side
            .catalog()
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.count),
    };
    let mut changes = 0u64;
    // Still the collection this build is for (not dropped, its id not reused), and no stop.
    let go_on = || {
        !side.ann.stopping()
            && side
                .ann
                .collection(id)
                .is_some_and(|current| Arc::ptr_eq(&current, state))
    };
    // The main store is read in runs of [`CANCEL_EVERY`] vectors, each in a read transaction
    // of its own counted at the gate: growing the main map waits for one run, not for the whole
    // feed. A later run may see a newer generation than `generation`, which is harmless: what
    // changed since is pending and is applied again by the next build.
    let mut feed = |sink: &mut Feed<'_>| -> Result<(), AnnError> {
        // Once per attempt: a build that had to grow its map is fed again.
        changes = 0;
        let main = |e| AnnError::Main(Box::new(e));
        match &keys {
            // A first build (or a rebuild) reads every vector of the collection.
            None => {
                let mut from = 0u32;
                loop {
                    if !go_on() {
                        return Err(AnnError::Cancelled);
                    }
                    let _reading = env.gate().reading();
                    let rtxn = side.vectors.read_txn().map_err(main)?;
                    let (mut run, mut last, mut failed) = (0u64, None, None);
                    side.vectors
                        .for_each_from(&rtxn, id, from, |key, bytes| {
                            changes += 1;
                            run += 1;
                            last = Some(key);
                            if let Err(e) = sink(key, Some(&decode_vector(bytes))) {
                                failed = Some(e);
                            }
                            failed.is_none() && run < CANCEL_EVERY
                        })
                        .map_err(main)?;
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    match last {
                        Some(key) if run == CANCEL_EVERY && key < u32::MAX => from = key + 1,
                        _ => break,
                    }
                }
            }
            // Later builds read the pending keys only: changed vectors, or removals.
            Some(keys) => {
                let keys: Vec<u32> = keys.iter().collect();
                for run in keys.chunks(CANCEL_EVERY as usize) {
                    if !go_on() {
                        return Err(AnnError::Cancelled);
                    }
                    let _reading = env.gate().reading();
                    let rtxn = side.vectors.read_txn().map_err(main)?;
                    for &key in run {
                        changes += 1;
                        let vector = side.vectors.get(&rtxn, id, key).map_err(main)?;
                        sink(key, vector.as_deref())?;
                    }
                }
            }
        }
        Ok(())
    };
    let stop = || side.ann.stopping();
    let index = Index {
        collection: id,
        dimension,
        distance,
    };
    let items = env.build(index, first, expected, &mut feed, &stop, pool)?;
    // Committed: the changes up to `generation` are in the index now.
    state
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .publish(generation);
    if first
        && side
            .ann
            .collection(id)
            .is_some_and(|current| Arc::ptr_eq(&current, state))
    {
        // The index serves this collection from now on: its full in-memory copy goes (the
        // point of the tier is collections too large to keep one; see ann_state).
        side.sets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    Ok(Built {
        items,
        changes,
        first,
    })
}
