//! What the writer, searches and the builder share about collections served by the ANN tier.
//!
//! A collection enters the tier when its vector count reaches `--ann-threshold`. From then on,
//! every vector change is recorded here as *pending* (key → generation of its last change)
//! until a completed build has folded it into the arroy index:
//!
//! - the *fresh* set holds the current vector of every pending key that has one (a small
//!   [`VectorSet`], scanned exactly like today's collections), and
//! - the *tombstones* are every pending key: the built index's copy of them is stale (replaced
//!   or deleted), so searches exclude them from arroy's results.
//!
//! A search therefore sees the index as of its last build, minus the tombstones, plus the fresh
//! set: every acknowledged write is visible the moment it is acknowledged (the writer updates
//! this state before replying), without waiting for a build.
//!
//! Until a collection's first build completes, `built` is false and searches keep using the
//! collection's full in-memory set; the build then drops that set (the tier exists for
//! collections too large to keep it, see `ann_builder`).
//!
//! Ordering rules that keep searches consistent with a build finishing concurrently:
//! - the builder commits the index *before* it removes the built keys from pending
//!   ([`AnnCollection::publish`]);
//! - a search copies the fresh results and the tombstones *before* it opens its read
//!   transaction on the index.
//!
//! So a search either sees the old pending state (and excludes the keys whatever index it then
//! reads), or the new one — which implies the new index is committed and its read sees it.

use super::ann::AnnReader;
use super::vector_set::VectorSet;
use ctxd_proto::Distance;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// One collection's state in the tier.
#[derive(Debug)]
pub struct AnnCollection {
    /// Whether the index holds a completed build that searches use.
    pub built: bool,
    dimension: usize,
    distance: Distance,
    /// Keys changed since the last completed build → the generation of their last change.
    pending: HashMap<u32, u64>,
    /// The pending keys, as arroy's filter wants them.
    tombstones: RoaringBitmap,
    /// The current vectors of the pending keys that have one.
    fresh: VectorSet,
}

/// A collection's state, shared.
pub type SharedAnn = Arc<RwLock<AnnCollection>>;

impl AnnCollection {
    /// A collection that just entered the tier: nothing built, nothing pending (its first
    /// build reads every vector).
    pub fn new(dimension: usize, distance: Distance) -> AnnCollection {
        AnnCollection {
            built: false,
            dimension,
            distance,
            pending: HashMap::new(),
            tombstones: RoaringBitmap::new(),
            fresh: VectorSet::new(dimension, distance),
        }
    }

    /// The vector dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The distance.
    pub fn distance(&self) -> Distance {
        self.distance
    }

    /// A committed upsert of `key` at `generation`.
    pub fn put(&mut self, key: u32, vector: &[f32], generation: u64) {
        self.pending.insert(key, generation);
        self.tombstones.insert(key);
        self.fresh.upsert(key, vector);
    }

    /// A committed removal of `key`'s vector at `generation`.
    pub fn delete(&mut self, key: u32, generation: u64) {
        self.pending.insert(key, generation);
        self.tombstones.insert(key);
        self.fresh.remove(key);
    }

    /// The pending keys (for the next build and for a clean close).
    pub fn pending(&self) -> &RoaringBitmap {
        &self.tombstones
    }

    /// Whether a build has something to do.
    pub fn needs_build(&self) -> bool {
        !self.built || !self.pending.is_empty()
    }

    /// A build that saw every change up to `generation` was committed: those keys are no longer
    /// pending. Changes after `generation` stay (the build may or may not have read them).
    pub fn publish(&mut self, generation: u64) {
        let (tombstones, fresh) = (&mut self.tombstones, &mut self.fresh);
        self.pending.retain(|&key, &mut changed| {
            if changed <= generation {
                tombstones.remove(key);
                fresh.remove(key);
                false
            } else {
                true
            }
        });
        self.built = true;
    }

    /// The `n` best fresh keys by approximate score, optionally only keys `allow` accepts.
    pub fn scan_fresh(
        &self,
        query: &[f32],
        n: usize,
        allow: Option<&dyn Fn(u32) -> bool>,
    ) -> Vec<u32> {
        self.fresh
            .scan(query, n, allow)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// The tombstones (a copy, taken before reading the index).
    pub fn tombstones(&self) -> RoaringBitmap {
        self.tombstones.clone()
    }

    /// Number of pending keys.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// The tier's shared state, part of the read side.
pub struct AnnSide {
    /// Collections with at least this many vectors are served by the tier; 0 = never.
    pub threshold: u64,
    /// The open index, once the ANN environment is open.
    reader: RwLock<Option<AnnReader>>,
    /// The collections in the tier, by id.
    collections: RwLock<HashMap<u16, SharedAnn>>,
    /// Collections whose index should be removed (dropped, or left the tier).
    dropped: Mutex<Vec<u16>>,
    /// Counts changes, so the builder waits on something a writer can signal.
    changes: Mutex<u64>,
    changed: Condvar,
    /// Set by close and shutdown: the builder stops, a running build is cancelled.
    stop: AtomicBool,
}

impl AnnSide {
    /// A tier with no collection yet.
    pub fn new(threshold: u64) -> AnnSide {
        AnnSide {
            threshold,
            reader: RwLock::new(None),
            collections: RwLock::new(HashMap::new()),
            dropped: Mutex::new(Vec::new()),
            changes: Mutex::new(0),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether a collection with `vectors` vectors belongs in the tier.
    pub fn qualifies(&self, vectors: u64) -> bool {
        self.threshold > 0 && vectors >= self.threshold
    }

    /// Sets the open index.
    pub fn set_reader(&self, reader: Option<AnnReader>) {
        *self.reader.write().unwrap_or_else(|e| e.into_inner()) = reader;
    }

    /// The open index, if any.
    pub fn reader(&self) -> Option<AnnReader> {
        self.reader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The collection's state, if it is in the tier.
    pub fn collection(&self, id: u16) -> Option<SharedAnn> {
        self.collections().get(&id).cloned()
    }

    /// Every collection in the tier.
    pub fn collections(&self) -> RwLockReadGuard<'_, HashMap<u16, SharedAnn>> {
        self.collections.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any collection is in the tier.
    pub fn is_empty(&self) -> bool {
        self.collections().is_empty()
    }

    /// Puts a collection into the tier.
    pub fn insert(&self, id: u16, state: AnnCollection) {
        self.collections
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(RwLock::new(state)));
    }

    /// Takes a collection out of the tier (it was dropped); its index is removed later.
    pub fn remove(&self, id: u16) {
        let removed = self
            .collections
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if removed.is_some() {
            lock(&self.dropped).push(id);
        }
    }

    /// Schedules the removal of these indexes.
    pub fn drop_indexes(&self, ids: impl IntoIterator<Item = u16>) {
        lock(&self.dropped).extend(ids);
    }

    /// Takes the indexes to remove. A collection id that is back in the tier is not removed
    /// here: its first build clears the index anyway.
    pub fn take_dropped(&self) -> Vec<u16> {
        let dropped = std::mem::take(&mut *lock(&self.dropped));
        let collections = self.collections();
        dropped
            .into_iter()
            .filter(|id| !collections.contains_key(id))
            .collect()
    }

    /// Tells the builder something changed.
    pub fn notify(&self) {
        *lock(&self.changes) += 1;
        self.changed.notify_all();
    }

    /// Stops the builder and cancels a running build.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.notify();
    }

    /// Whether the builder must stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Waits until there is work (`has_work`) that may start now (not before `not_before`),
    /// or stop; returns false on stop.
    pub fn wait_for_work(&self, not_before: Instant, has_work: impl Fn() -> bool) -> bool {
        let mut changes = lock(&self.changes);
        loop {
            if self.stopping() {
                return false;
            }
            let work = has_work() || !lock(&self.dropped).is_empty();
            let now = Instant::now();
            if work && now >= not_before {
                return true;
            }
            // Without work, wait for a writer's signal; with work that must wait for its
            // turn, wake at the turn (pacing, not polling).
            let timeout = if work {
                not_before - now
            } else {
                Duration::from_secs(3600)
            };
            changes = self
                .changed
                .wait_timeout(changes, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_keeps_changes_newer_than_the_build() {
        let mut state = AnnCollection::new(2, Distance::Cosine);
        state.built = true;
        state.put(1, &[1.0, 0.0], 10);
        state.put(2, &[0.0, 1.0], 11);
        state.delete(3, 11);
        state.put(4, &[1.0, 1.0], 12);
        assert_eq!(state.tombstones().len(), 4);
        state.publish(11);
        assert_eq!(state.pending().iter().collect::<Vec<_>>(), [4]);
        assert_eq!(state.scan_fresh(&[1.0, 0.0], 10, None), [4]);
        // A later change to a built key makes it pending again.
        state.delete(1, 13);
        assert!(state.tombstones().contains(1));
        assert_eq!(state.pending_len(), 2);
    }
}
