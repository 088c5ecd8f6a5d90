//! The ANN tier's lifecycle on the storage thread: deciding at open which collections are in
//! the tier and whether their indexes can be reused, starting the builder, opening the
//! environment when a collection grows into the tier, and saving what a clean close must
//! remember.

use super::StorageError;
use super::ann::{self, AnnEnv, Record};
use super::ann_builder::Builder;
use super::ann_state::{AnnCollection, AnnSide};
use super::catalog::Catalog;
use super::reader::{ReadGate, ReadSide};
use super::vectors::VectorStore;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The open ANN environment and the thread building in it.
pub(super) struct AnnRuntime {
    pub(super) env: Arc<AnnEnv>,
    pub(super) builder: Builder,
}

/// Decides, at open, which collections are in the ANN tier and whether their indexes can be
/// used as they are; opens the ANN environment if any collection is in the tier.
///
/// An index is reused only after a clean close at exactly this generation (the marker in the
/// main store), when its record matches the collection, arroy reads it as built, and the keys
/// it holds differ from the main store's only in keys recorded as pending. Anything else is
/// rebuilt from the main store in the background (searches use the full in-memory set
/// meanwhile). With no collection in the tier, the directory is removed.
pub(super) fn open_ann(
    data_dir: &Path,
    vectors: &VectorStore,
    catalog: &Catalog,
    generation: u64,
    tier: &AnnSide,
    gate: &Arc<ReadGate>,
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
    let env = AnnEnv::open(data_dir, trusted, Arc::clone(gate))?;
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
pub(super) fn start_ann(side: &Arc<ReadSide>, env: AnnEnv) -> Result<AnnRuntime, StorageError> {
    let env = Arc::new(env);
    side.ann.set_reader(Some(env.reader()));
    let builder = Builder::start(Arc::clone(side), Arc::clone(&env))
        .map_err(StorageError::io("cannot start the ANN builder thread", "."))?;
    Ok(AnnRuntime { env, builder })
}

/// Saves what a clean close must remember: each built collection's pending keys.
pub(super) fn save_ann(env: &AnnEnv, side: &ReadSide) -> Result<(), StorageError> {
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

/// Opens the ANN environment once a collection has entered the tier at runtime.
pub(super) fn ensure(
    ann: &mut Option<AnnRuntime>,
    side: &Arc<ReadSide>,
    data_dir: &Path,
    gate: &Arc<ReadGate>,
) {
    if ann.is_some() || side.ann.is_empty() {
        return;
    }
    // Nothing was in the tier at open, so whatever is on disk is stale: start empty.
    let started = AnnEnv::open(data_dir, false, Arc::clone(gate))
        .map_err(StorageError::from)
        .and_then(|env| start_ann(side, env));
    match started {
        Ok(runtime) => *ann = Some(runtime),
        // Searches keep using the full in-memory sets; the next write tries again.
        Err(e) => tracing::error!("cannot open the ANN index: {e}"),
    }
}
