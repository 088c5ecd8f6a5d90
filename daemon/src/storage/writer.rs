//! The write path: a group of write requests committed atomically across both stores.
//!
//! Order of a commit (the crash-safety argument):
//!
//! 1. One SQLite transaction applies every request of the group (each inside a savepoint, so a
//!    failing request is rolled back alone), journals their vector changes in `redo`, records
//!    the new generation, and commits with `synchronous=FULL` (fsync). From here the writes are
//!    durable: if the process dies now, the next open replays `redo` into LMDB.
//! 2. One LMDB transaction applies the vector changes and records the same generation, and
//!    commits (fsync). The stores agree again.
//! 3. The in-memory state (catalog, vector sets, generation) is updated, then every request is
//!    answered. A reply therefore implies both commits: read-your-writes holds, and nothing
//!    acknowledged can be lost by `kill -9` at any instant.
//!
//! The journal rows of a generation are deleted by the next write transaction once LMDB has
//! committed it, so `redo` stays small. Concurrent writers share one group: one fsync pair for
//! many requests (group commit), each request still atomic and with its own generation.

use super::StorageError;
use super::ann_state::AnnCollection;
use super::catalog::{self, Catalog, Collection};
use super::documents::{self, Selection};
use super::reader::ReadSide;
use super::text::{self, TextStore};
use super::validate;
use super::vector_set::VectorSet;
use super::vectors::{self, VectorChange, VectorStore};
use ctxd_proto::{
    CollectionEmbedder, CollectionInfo, CreateCollection, Delete, DeleteResult, DropCollection,
    Metadata, Upsert, UpsertResult,
};
use rusqlite::Connection;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

/// A write request.
#[derive(Debug)]
pub enum WriteOp {
    /// `create_collection`, with the identity of its embedder (resolved from the request's
    /// `embedder` by the daemon, which knows the models).
    CreateCollection(CreateCollection, Option<CollectionEmbedder>),
    /// `drop_collection`.
    DropCollection(DropCollection),
    /// `upsert`, with the embedder that computed the vectors of its text-only documents, if
    /// one did: the collection must still have it when the write commits.
    Upsert(Upsert, Option<CollectionEmbedder>),
    /// `update`, with the embedder that computed the vectors of its new texts, if one did.
    Update(ctxd_proto::Update, Option<CollectionEmbedder>),
    /// `delete`.
    Delete(Delete),
}

/// A write's result.
#[derive(Debug, Clone)]
pub enum Written {
    /// The created (or existing) collection.
    Collection(CollectionInfo),
    /// Whether a collection was dropped.
    Dropped(bool),
    /// Documents written.
    Upserted(UpsertResult),
    /// Documents changed.
    Updated(ctxd_proto::UpdateResult),
    /// Documents deleted.
    Deleted(DeleteResult),
}

/// A change to a collection's in-memory vector set itself.
enum SetEffect {
    New(u16, usize, ctxd_proto::Distance),
    Drop(u16),
}

/// A change to the in-memory state, applied in order after both commits.
enum Effect {
    Set(SetEffect),
    /// The group's journaled vector changes in this range: applied from the journal itself, so
    /// the vectors of a write are never copied for memory.
    Changes(std::ops::Range<usize>),
}

/// What one request did inside the transaction.
struct Applied {
    written: Written,
    changes: Vec<VectorChange>,
    sets: Vec<SetEffect>,
    /// Whether it changed anything (a no-op does not take a generation).
    wrote: bool,
}

/// Why a whole group failed.
#[derive(Debug)]
pub enum GroupFailure {
    /// Before the SQLite commit: nothing of the group was written.
    NotWritten(StorageError),
    /// SQLite committed (the group is durable, its vector changes journaled) but LMDB did not:
    /// the stores disagree until [`catch_up`] (or a restart) replays the journal, and nothing
    /// may be written before that.
    VectorsBehind(StorageError),
}

/// Commits a group of writes; one result per request, in order.
///
/// Before SQLite commits, `make_room` is asked for what the group's vector changes can add to
/// LMDB's file at most ([`vectors::growth_bound`] of the journal, so deletes by filter and
/// dropped collections are counted too): growing the map and reserving disk there means
/// neither can refuse the LMDB commit afterwards. If it cannot, the group is rolled back, with
/// nothing written.
pub fn commit_group(
    text: &TextStore,
    vectors: &VectorStore,
    side: &ReadSide,
    oldest_hold: Option<u64>,
    ops: Vec<WriteOp>,
    make_room: &mut dyn FnMut(u64) -> Result<(), StorageError>,
) -> Result<Vec<Result<Written, StorageError>>, GroupFailure> {
    let started = std::time::Instant::now();
    let conn = text.conn();
    let start_generation = side.generation();
    let mut catalog = side.catalog().clone();
    let mut generation = start_generation;
    let mut results = Vec::with_capacity(ops.len());
    let mut journal = Vec::new();
    let mut effects = Vec::new();

    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| GroupFailure::NotWritten(e.into()))?;
    let transaction = (|| -> Result<(), StorageError> {
        // LMDB committed everything up to the current generation (else we would not be
        // writing), so its journal rows are no longer needed — unless a snapshot in progress
        // holds them, to replay into its own copy of LMDB: the oldest hold decides.
        text::prune_journal(
            conn,
            oldest_hold.map_or(start_generation, |held| held.min(start_generation)),
        )?;
        for op in ops {
            let before = catalog.clone();
            conn.execute_batch("SAVEPOINT request")?;
            match apply(conn, &mut catalog, op, generation + 1) {
                Ok(applied) => {
                    conn.execute_batch("RELEASE request")?;
                    if applied.wrote {
                        generation += 1;
                        effects.extend(applied.sets.into_iter().map(Effect::Set));
                        let start = journal.len();
                        journal.extend(applied.changes);
                        effects.push(Effect::Changes(start..journal.len()));
                    }
                    results.push(Ok(applied.written));
                }
                Err(e) => {
                    conn.execute_batch("ROLLBACK TO request; RELEASE request")?;
                    catalog = before;
                    results.push(Err(e.classified()));
                }
            }
        }
        if generation != start_generation {
            text::journal(conn, generation, &journal)?;
            text::set_generation(conn, generation)?;
            // Inside the transaction: a pause to grow the map waits only for reads, and no
            // read waits for SQLite's write lock.
            make_room(vectors::growth_bound(&journal))?;
        }
        Ok(())
    })();
    if let Err(e) = transaction.and_then(|()| Ok(conn.execute_batch("COMMIT")?)) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(GroupFailure::NotWritten(e));
    }
    if generation == start_generation {
        return Ok(results);
    }

    let text_committed = started.elapsed();
    vectors
        .commit(&journal, generation)
        .map_err(GroupFailure::VectorsBehind)?;
    let vectors_committed = started.elapsed();

    *side.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
    apply_effects(side, effects, &journal, generation);
    side.generation.store(generation, Ordering::Release);
    tracing::debug!(
        requests = results.len(),
        generation,
        vector_changes = journal.len(),
        text_ms = text_committed.as_secs_f64() * 1e3,
        vectors_ms = (vectors_committed - text_committed).as_secs_f64() * 1e3,
        memory_ms = (started.elapsed() - vectors_committed).as_secs_f64() * 1e3,
        "write group committed"
    );
    Ok(results)
}

/// Brings LMDB up to SQLite's generation after a group's LMDB commit failed, and the in-memory
/// state with it (catalog, vector sets, the ANN tier's pending changes); does nothing when the
/// stores agree. Run before any new write: a new group must not begin until both stores are at
/// one generation again.
pub fn catch_up(
    text: &TextStore,
    vectors: &VectorStore,
    side: &ReadSide,
) -> Result<(), StorageError> {
    let conn = text.conn();
    let (behind, ahead) = (vectors.generation()?, text::generation(conn)?);
    if behind >= ahead {
        return Ok(());
    }
    let journal = text::journal_since(conn, behind)?;
    vectors.commit(&journal, ahead)?;
    // The committed catalog, and the set changes it implies: a collection created since has no
    // set yet, a dropped one still has one.
    let catalog = Catalog::load(conn)?;
    let mut effects = Vec::new();
    {
        let sets = side.sets.read().unwrap_or_else(|e| e.into_inner());
        for collection in catalog.iter() {
            if !sets.contains_key(&collection.id) && !collection.dimension_unfixed() {
                effects.push(Effect::Set(SetEffect::New(
                    collection.id,
                    collection.dimension as usize,
                    collection.distance,
                )));
            }
        }
        for id in sets.keys() {
            if catalog.iter().all(|c| c.id != *id) {
                effects.push(Effect::Set(SetEffect::Drop(*id)));
            }
        }
    }
    effects.push(Effect::Changes(0..journal.len()));
    *side.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
    apply_effects(side, effects, &journal, ahead);
    side.generation.store(ahead, Ordering::Release);
    tracing::info!(
        from = behind,
        to = ahead,
        changes = journal.len(),
        "the vector store caught up with the text store"
    );
    Ok(())
}

/// Applies one request inside the group's transaction. It takes the request by value: an
/// upsert's vectors move into the journal instead of being copied.
fn apply(
    conn: &Connection,
    catalog: &mut Catalog,
    op: WriteOp,
    generation: u64,
) -> Result<Applied, StorageError> {
    match op {
        WriteOp::CreateCollection(params, embedder) => {
            create_collection(conn, catalog, &params, embedder)
        }
        WriteOp::DropCollection(params) => drop_collection(conn, catalog, &params),
        WriteOp::Upsert(params, embedded) => upsert(conn, catalog, params, embedded, generation),
        WriteOp::Update(params, embedded) => update(conn, catalog, params, embedded, generation),
        WriteOp::Delete(params) => delete(conn, catalog, &params, generation),
    }
}

fn create_collection(
    conn: &Connection,
    catalog: &mut Catalog,
    params: &CreateCollection,
    embedder: Option<CollectionEmbedder>,
) -> Result<Applied, StorageError> {
    validate::collection_name(&params.name)?;
    // Left out (and no embedder fixed it), the first vector written fixes it; until then the
    // collection has no vector set and reads as dimension 0.
    let dimension = match params.dimension {
        Some(dimension) => {
            validate::dimension(dimension)?;
            dimension
        }
        None => catalog::UNFIXED_DIMENSION,
    };
    let distance = params.distance.unwrap_or_default();
    let tokenizer = params.tokenizer.unwrap_or_default();
    if let Some(existing) = catalog.get(&params.name) {
        // A setting the request leaves out is not a difference: `if_not_exists` asks for
        // "a collection of this name", plus whatever settings it names.
        let same = params
            .dimension
            .is_none_or(|d| d == existing.dimension || existing.dimension_unfixed())
            && params.distance.is_none_or(|d| d == existing.distance)
            && params.tokenizer.is_none_or(|t| t == existing.tokenizer)
            && embedder
                .as_ref()
                .is_none_or(|e| existing.embedder.as_ref().is_some_and(|x| x.name == e.name));
        if params.if_not_exists && same {
            // Asked with a dimension, a collection that has none yet takes it now (or a later
            // vector of another length would fix it otherwise, unasked).
            if let Some(dimension) = params.dimension.filter(|_| existing.dimension_unfixed()) {
                let mut collection = existing.clone();
                collection.dimension = dimension;
                catalog::set_dimension(conn, &collection)?;
                let info = collection.info();
                let set = SetEffect::New(collection.id, dimension as usize, collection.distance);
                catalog.insert(collection);
                return Ok(Applied {
                    written: Written::Collection(info),
                    changes: Vec::new(),
                    sets: vec![set],
                    wrote: true,
                });
            }
            return Ok(Applied {
                written: Written::Collection(existing.info()),
                changes: Vec::new(),
                sets: Vec::new(),
                wrote: false,
            });
        }
        return Err(StorageError::CollectionExists {
            name: existing.name.clone(),
            settings: existing.settings(),
        });
    }
    let id = catalog.free_id().ok_or_else(|| {
        StorageError::Invalid(format!(
            "{} collections exist; drop one first",
            catalog::MAX_COLLECTIONS
        ))
    })?;
    let collection = Collection {
        id,
        name: params.name.clone(),
        dimension,
        distance,
        tokenizer,
        count: 0,
        embedder,
    };
    catalog::create(conn, &collection)?;
    let info = collection.info();
    catalog.insert(collection);
    Ok(Applied {
        written: Written::Collection(info),
        // A reused id may still have vectors of a collection dropped long ago only if that
        // drop's Clear was lost, which the journal prevents; clearing again costs nothing.
        changes: vec![VectorChange::Clear { collection: id }],
        sets: if dimension == catalog::UNFIXED_DIMENSION {
            Vec::new()
        } else {
            vec![SetEffect::New(id, dimension as usize, distance)]
        },
        wrote: true,
    })
}

fn drop_collection(
    conn: &Connection,
    catalog: &mut Catalog,
    params: &DropCollection,
) -> Result<Applied, StorageError> {
    let Some(collection) = catalog.remove(&params.name) else {
        return Ok(Applied {
            written: Written::Dropped(false),
            changes: Vec::new(),
            sets: Vec::new(),
            wrote: false,
        });
    };
    catalog::delete(conn, &collection)?;
    Ok(Applied {
        written: Written::Dropped(true),
        changes: vec![VectorChange::Clear {
            collection: collection.id,
        }],
        sets: vec![SetEffect::Drop(collection.id)],
        wrote: true,
    })
}

fn upsert(
    conn: &Connection,
    catalog: &mut Catalog,
    params: Upsert,
    embedded: Option<CollectionEmbedder>,
    generation: u64,
) -> Result<Applied, StorageError> {
    let mut collection = catalog.require(&params.collection)?.clone();
    let first = params.documents.iter().find_map(|d| d.vector.as_ref());
    let sets = fix_dimension(conn, catalog, &mut collection, first)?;
    validate::upsert(&params.documents, collection.dimension, &collection.name)?;
    same_embedder(&collection, embedded.as_ref(), || {
        params.documents.iter().any(|d| d.vector.is_none())
    })?;
    let upserted = params.documents.len() as u64;
    let mut changes = Vec::with_capacity(params.documents.len());
    let mut added = 0u64;
    let mut existing =
        documents::lookup_many(conn, collection.id, params.documents.iter().map(|d| &d.id))?;
    for doc in params.documents {
        let has_vector = doc.vector.is_some();
        let metadata = doc.metadata.as_ref().map(Metadata::as_json);
        // A later duplicate of an id in the same batch replaces the earlier one.
        let key = match existing.insert(doc.id.clone(), (0, has_vector)) {
            Some((key, had_vector)) => {
                documents::replace(
                    conn,
                    &collection,
                    key,
                    doc.text.as_deref(),
                    metadata,
                    has_vector,
                )?;
                if had_vector && !has_vector {
                    changes.push(VectorChange::Delete {
                        collection: collection.id,
                        key,
                    });
                }
                key
            }
            None => {
                added += 1;
                documents::insert(
                    conn,
                    &collection,
                    &doc.id,
                    doc.text.as_deref(),
                    metadata,
                    has_vector,
                )?
            }
        };
        if let Some(vector) = doc.vector {
            changes.push(VectorChange::Put {
                collection: collection.id,
                key,
                vector: vector.into_values(),
            });
        }
        existing.insert(doc.id, (key, has_vector));
    }
    let entry = catalog
        .get_mut(&collection.name)
        .ok_or_else(|| StorageError::CollectionNotFound(collection.name.clone()))?;
    entry.count += added;
    catalog::set_count(conn, entry)?;
    Ok(Applied {
        written: Written::Upserted(UpsertResult {
            upserted,
            generation,
        }),
        changes,
        sets,
        wrote: true,
    })
}

/// A collection created without a dimension takes the first vector's of this write, in its
/// transaction: the request fails whole if that length is out of range or another vector of
/// it disagrees. Returns the set to create.
fn fix_dimension(
    conn: &Connection,
    catalog: &mut Catalog,
    collection: &mut Collection,
    first: Option<&ctxd_proto::Vector>,
) -> Result<Vec<SetEffect>, StorageError> {
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    if !collection.dimension_unfixed() {
        return Ok(Vec::new());
    }
    let dimension = u32::try_from(first.len()).unwrap_or(u32::MAX);
    validate::dimension(dimension)?;
    collection.dimension = dimension;
    let entry = catalog
        .get_mut(&collection.name)
        .ok_or_else(|| StorageError::CollectionNotFound(collection.name.clone()))?;
    entry.dimension = dimension;
    catalog::set_dimension(conn, entry)?;
    Ok(vec![SetEffect::New(
        collection.id,
        dimension as usize,
        collection.distance,
    )])
}

/// The daemon computed the vectors of text-only documents for the embedder the collection had
/// when the request arrived; had it been dropped and created again since, with another
/// embedder or none, those vectors (or their absence) would not be the collection's.
/// `needed_vectors` says whether the request has documents an embedder would have embedded.
fn same_embedder(
    collection: &Collection,
    embedded: Option<&CollectionEmbedder>,
    needed_vectors: impl FnOnce() -> bool,
) -> Result<(), StorageError> {
    let changed = match (&collection.embedder, embedded) {
        (Some(has), Some(used)) => has != used,
        (Some(_), None) => needed_vectors(),
        (None, Some(_)) => true,
        (None, None) => false,
    };
    if changed {
        return Err(StorageError::Busy(format!(
            "collection `{}` was replaced while this request's vectors were computed; nothing \
             was written: send it again",
            collection.name
        )));
    }
    Ok(())
}

/// `update`: only the parts given change; metadata is merged (a `null` removes its key).
fn update(
    conn: &Connection,
    catalog: &mut Catalog,
    params: ctxd_proto::Update,
    embedded: Option<CollectionEmbedder>,
    generation: u64,
) -> Result<Applied, StorageError> {
    let mut collection = catalog.require(&params.collection)?.clone();
    let existing =
        documents::lookup_many(conn, collection.id, params.documents.iter().map(|d| &d.id))?;
    // Only a vector of a document that exists may fix the dimension.
    let first = params
        .documents
        .iter()
        .filter(|d| existing.contains_key(&d.id))
        .find_map(|d| d.vector.as_ref());
    let sets = fix_dimension(conn, catalog, &mut collection, first)?;
    validate::update(
        &params.documents,
        collection.dimension,
        &collection.name,
        |id| existing.contains_key(id),
    )?;
    same_embedder(&collection, embedded.as_ref(), || {
        params
            .documents
            .iter()
            .any(|d| d.vector.is_none() && d.text.is_some())
    })?;
    let mut changes = Vec::new();
    let mut not_found = Vec::new();
    let mut updated = 0u64;
    for doc in params.documents {
        let Some(&(key, had_vector)) = existing.get(&doc.id) else {
            not_found.push(doc.id);
            continue;
        };
        let stored = documents::fetch(conn, &[key], &mut documents::ReplyBytes::new(0))?
            .pop()
            .flatten()
            .ok_or_else(|| StorageError::Corrupt(format!("document key {key} vanished")))?;
        let text = doc.text.or(stored.text);
        let metadata = match &doc.metadata {
            Some(patch) => merge_metadata(stored.metadata.as_deref(), patch)
                .map_err(|e| StorageError::Invalid(format!("document {:?}: {e}", doc.id)))?,
            None => stored.metadata,
        };
        let has_vector = had_vector || doc.vector.is_some();
        documents::replace(
            conn,
            &collection,
            key,
            text.as_deref(),
            metadata.as_deref(),
            has_vector,
        )?;
        if let Some(vector) = doc.vector {
            changes.push(VectorChange::Put {
                collection: collection.id,
                key,
                vector: vector.into_values(),
            });
        }
        updated += 1;
    }
    let wrote = updated > 0;
    Ok(Applied {
        written: Written::Updated(ctxd_proto::UpdateResult {
            updated,
            not_found,
            generation: if wrote { generation } else { generation - 1 },
        }),
        changes,
        sets,
        wrote,
    })
}

/// Stored metadata with `patch` merged in: its keys replace, a `null` removes the key. The
/// result is checked like an upsert's metadata; `None` when no key is left.
fn merge_metadata(stored: Option<&str>, patch: &Metadata) -> Result<Option<String>, String> {
    let mut merged: serde_json::Map<String, serde_json::Value> = match stored {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("stored metadata: {e}"))?,
        None => serde_json::Map::new(),
    };
    let patch: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(patch.as_json()).map_err(|e| format!("metadata: {e}"))?;
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    if merged.is_empty() {
        return Ok(None);
    }
    let json = serde_json::to_string(&merged).map_err(|e| e.to_string())?;
    let checked = Metadata::from_json(&json).map_err(|e| e.to_string())?;
    ctxd_proto::validate::metadata("", &checked).map_err(|e| e.to_string())?;
    Ok(Some(json))
}

fn delete(
    conn: &Connection,
    catalog: &mut Catalog,
    params: &Delete,
    generation: u64,
) -> Result<Applied, StorageError> {
    let collection = catalog.require(&params.collection)?.clone();
    if params.ids.is_none() && params.filter.is_none() && params.text_filter.is_none() {
        return Err(StorageError::Invalid(
            "`delete` needs `ids`, `filter`, `text_filter`, or several of them".to_owned(),
        ));
    }
    let filter = super::read::compile(params.filter.as_ref(), params.text_filter.as_ref())?;
    let selection = Selection {
        ids: params.ids.as_deref(),
        filter: filter.as_ref(),
    };
    let keys = documents::select_keys(conn, collection.id, &selection)?;
    if keys.is_empty() {
        return Ok(Applied {
            written: Written::Deleted(DeleteResult {
                deleted: 0,
                generation: generation - 1,
            }),
            changes: Vec::new(),
            sets: Vec::new(),
            wrote: false,
        });
    }
    let with_vectors = documents::delete(conn, &collection, &keys)?;
    let entry = catalog
        .get_mut(&collection.name)
        .ok_or_else(|| StorageError::CollectionNotFound(collection.name.clone()))?;
    entry.count = entry.count.saturating_sub(keys.len() as u64);
    catalog::set_count(conn, entry)?;
    let changes: Vec<VectorChange> = with_vectors
        .into_iter()
        .map(|key| VectorChange::Delete {
            collection: collection.id,
            key,
        })
        .collect();
    Ok(Applied {
        written: Written::Deleted(DeleteResult {
            deleted: keys.len() as u64,
            generation,
        }),
        changes,
        sets: Vec::new(),
        wrote: true,
    })
}

/// Applies committed changes to the in-memory vector sets and the ANN tier's pending state,
/// in commit order. Changes are stamped with the group's last `generation` (an upper bound of
/// each one's own): a build that saw that generation saw them all.
fn apply_effects(side: &ReadSide, effects: Vec<Effect>, journal: &[VectorChange], generation: u64) {
    let mut sets = side.sets.write().unwrap_or_else(|e| e.into_inner());
    let mut grown = Vec::new();
    let mut ann_changed = false;
    for effect in effects {
        match effect {
            Effect::Set(SetEffect::New(id, dimension, distance)) => {
                sets.insert(
                    id,
                    Arc::new(RwLock::new(VectorSet::new(dimension, distance))),
                );
            }
            Effect::Set(SetEffect::Drop(id)) => {
                sets.remove(&id);
                side.ann.remove(id);
                side.forget(id);
            }
            Effect::Changes(range) => {
                for change in &journal[range] {
                    match change {
                        VectorChange::Put {
                            collection,
                            key,
                            vector,
                        } => {
                            if let Some(set) = sets.get(collection) {
                                set.write()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .upsert(*key, vector);
                                grown.push(*collection);
                            }
                            if let Some(state) = side.ann.collection(*collection) {
                                state
                                    .write()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .put(*key, vector, generation);
                                ann_changed = true;
                            }
                        }
                        VectorChange::Delete { collection, key } => {
                            if let Some(set) = sets.get(collection) {
                                set.write().unwrap_or_else(|e| e.into_inner()).remove(*key);
                            }
                            if let Some(state) = side.ann.collection(*collection) {
                                state
                                    .write()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .delete(*key, generation);
                                ann_changed = true;
                            }
                        }
                        VectorChange::Clear { .. } => {}
                    }
                }
            }
        }
    }
    // A collection that grew to the threshold enters the ANN tier: its first build starts in
    // the background, and until it completes searches keep scanning its full set.
    grown.sort_unstable();
    grown.dedup();
    for id in grown {
        let Some(set) = sets.get(&id) else { continue };
        let set = set.read().unwrap_or_else(|e| e.into_inner());
        if side.ann.qualifies(set.len() as u64) && side.ann.collection(id).is_none() {
            side.ann
                .insert(id, AnnCollection::new(set.dimension(), set.distance()));
            ann_changed = true;
        }
    }
    drop(sets);
    if ann_changed {
        side.ann.notify();
    }
}
