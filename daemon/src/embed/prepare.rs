//! Gives a request the vectors its text stands for, before storage sees it: the documents of an
//! upsert into a collection with an embedder that carry text and no vector, and the query text
//! of a vector or hybrid search there. Explicit vectors are always used as sent.
//!
//! The collection's embedder is looked up under a release permit, which is let go before the
//! model runs: a release or a shutdown never waits for embedding work. The upsert then goes
//! through the release gate as any other, and the storage thread checks that the collection
//! still has the embedder whose vectors it carries ([`crate::storage::Store::upsert`]).

use super::{Embedder, Embedders, PoolError};
use crate::error::Error;
use crate::shared::Shared;
use ctxd_proto::{CollectionEmbedder, CreateCollection, SearchMode, Upsert, Vector};

/// Why a request could not get its vectors.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// `create_collection` named a model the daemon did not load.
    #[error(
        "no model `{name}` is loaded (loaded: {loaded}); start the daemon with `--model {name}=DIR`"
    )]
    NotLoaded {
        /// The name asked for.
        name: String,
        /// The loaded models' names.
        loaded: String,
    },
    /// The collection's model is not loaded, or has other weights.
    #[error(
        "collection `{collection}` embeds text with model `{}` (weights sha256 {}…), {reason}; \
         its stored vectors stay searchable by vector, and text by `mode: lexical`",
        .embedder.name, short(&.embedder.sha256)
    )]
    Unavailable {
        /// The collection.
        collection: String,
        /// What the collection records.
        embedder: CollectionEmbedder,
        /// What this daemon has instead.
        reason: String,
    },
    /// `create_collection` gave a dimension other than the model's.
    #[error(
        "model `{name}` computes vectors of {expected} dimensions, not {received}: leave `dimension` out or give {expected}"
    )]
    Dimension {
        /// The model.
        name: String,
        /// The model's dimension.
        expected: u32,
        /// The requested one.
        received: u32,
    },
    /// A text to embed is empty.
    #[error("{0}")]
    Empty(String),
    /// The model's queue is full, or it failed.
    #[error("embedding failed: {0}")]
    Pool(#[from] PoolError),
    /// The daemon began to stop while the vectors were computed; nothing was written.
    #[error(
        "the daemon is stopping; the request's vectors were not computed and nothing was written"
    )]
    Stopping,
}

fn short(sha256: &str) -> &str {
    sha256.get(..8).unwrap_or(sha256)
}

/// `create_collection` with `embedder`: the dimension is the model's (given, it must match),
/// and the collection records the model's identity.
pub fn create_collection(
    embedders: &Embedders,
    params: &mut CreateCollection,
) -> Result<Option<CollectionEmbedder>, EmbedError> {
    let Some(name) = params.embedder.as_deref() else {
        return Ok(None);
    };
    let embedder = embedders.get(name).ok_or_else(|| EmbedError::NotLoaded {
        name: name.to_owned(),
        loaded: embedders.names(),
    })?;
    match params.dimension {
        Some(received) if received != embedder.dimension() => Err(EmbedError::Dimension {
            name: name.to_owned(),
            expected: embedder.dimension(),
            received,
        }),
        _ => {
            params.dimension = Some(embedder.dimension());
            Ok(Some(embedder.identity()))
        }
    }
}

/// An upsert: computes the vector of every document that has text and no vector, if the
/// collection has an embedder. Returns the embedder the vectors came from, which the storage
/// thread checks the collection still has.
pub async fn upsert(
    shared: &Shared,
    params: &mut Upsert,
    wait_ms: Option<u64>,
) -> Result<Option<CollectionEmbedder>, Error> {
    documents(
        shared,
        &params.collection,
        &mut params.documents,
        wait_ms,
        Missing::Text,
    )
    .await
}

/// An update: computes the vector of every document given a new text and no vector, if the
/// collection has an embedder (a document whose text does not change keeps its vector).
pub async fn update(
    shared: &Shared,
    params: &mut ctxd_proto::Update,
    wait_ms: Option<u64>,
) -> Result<Option<CollectionEmbedder>, Error> {
    documents(
        shared,
        &params.collection,
        &mut params.documents,
        wait_ms,
        Missing::Skip,
    )
    .await
}

/// What a document without a vector and without text means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// An error: it would be stored without either (upsert).
    Text,
    /// Nothing to embed: its text and vector stay as they are (update).
    Skip,
}

async fn documents(
    shared: &Shared,
    collection: &str,
    docs: &mut [ctxd_proto::Document],
    wait_ms: Option<u64>,
    missing: Missing,
) -> Result<Option<CollectionEmbedder>, Error> {
    let needs = |d: &ctxd_proto::Document| {
        d.vector.is_none() && (missing == Missing::Text || d.text.is_some())
    };
    if !docs.iter().any(needs) {
        return Ok(None);
    }
    let Some((embedder, identity)) = collection_embedder(shared, collection, wait_ms).await? else {
        return Ok(None);
    };
    let mut texts = Vec::new();
    let mut targets = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if !needs(doc) {
            continue;
        }
        match doc.text.as_deref() {
            Some(text) if !text.trim().is_empty() => {
                texts.push(text.to_owned());
                targets.push(i);
            }
            _ => {
                return Err(EmbedError::Empty(format!(
                    "document {:?} has no text to embed and no vector (collection `{}` embeds \
                     its documents' text with model `{}`): give it text or a vector",
                    doc.id, collection, identity.name
                ))
                .into());
            }
        }
    }
    let vectors = run(shared, &embedder, texts).await?;
    for (i, vector) in targets.into_iter().zip(vectors) {
        docs[i].vector = Some(Vector::new(vector));
    }
    Ok(Some(identity))
}

/// A search: embeds the query text when the collection has an embedder, no vector is given
/// and the mode is not lexical (omitted, it becomes hybrid: both lists, fused).
pub async fn search(
    shared: &Shared,
    params: &mut ctxd_proto::Search,
    wait_ms: Option<u64>,
) -> Result<(), Error> {
    if params.vector.is_some() || params.mode == Some(SearchMode::Lexical) {
        return Ok(());
    }
    let Some(text) = params.text.as_deref() else {
        return Ok(());
    };
    let Some((embedder, _)) = collection_embedder(shared, &params.collection, wait_ms).await?
    else {
        return Ok(());
    };
    if text.trim().is_empty() {
        return Err(EmbedError::Empty(
            "`text` is empty: there is nothing to search for".to_owned(),
        )
        .into());
    }
    let mut vectors = run(shared, &embedder, vec![text.to_owned()]).await?;
    params.vector = vectors.pop().map(Vector::new);
    Ok(())
}

/// The collection's embedder, if it has one: `embedder_unavailable` when this daemon does not
/// have its model with its weights.
async fn collection_embedder(
    shared: &Shared,
    collection: &str,
    wait_ms: Option<u64>,
) -> Result<Option<(Embedder, CollectionEmbedder)>, Error> {
    let identity = {
        let _permit = shared.lifecycle.admit(wait_ms).await?;
        shared.store().embedder_of(collection).await?
    };
    let Some(identity) = identity else {
        return Ok(None);
    };
    let unavailable = |reason: String| EmbedError::Unavailable {
        collection: collection.to_owned(),
        embedder: identity.clone(),
        reason,
    };
    match shared.embedders.get(&identity.name) {
        None => Err(unavailable(format!(
            "which this daemon did not load: start it with `--model {}=DIR`",
            identity.name
        ))
        .into()),
        Some(embedder) if embedder.identity().sha256 != identity.sha256 => {
            Err(unavailable(format!(
                "but this daemon's `{}` has other weights (sha256 {}…)",
                identity.name,
                short(&embedder.identity().sha256)
            ))
            .into())
        }
        Some(embedder) => Ok(Some((embedder.clone(), identity))),
    }
}

/// Runs the model, giving up (nothing written) when the daemon begins to stop.
async fn run(
    shared: &Shared,
    embedder: &Embedder,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    tokio::select! {
        vectors = embedder.embed(texts) => Ok(vectors?),
        _ = shared.shutdown.triggered() => Err(EmbedError::Stopping),
    }
}
