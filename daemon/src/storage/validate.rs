//! Request input checks that need no storage access: the protocol's rules
//! ([`ctxd_proto::validate`]) applied to a request, with their failures turned into storage
//! errors (so a dimension or a non-finite value gets its own wire code and details).

use super::StorageError;
use ctxd_proto::Document;
use ctxd_proto::limits::{MAX_BATCH_DOCUMENTS, MAX_DIMENSION, is_valid_collection_name};
use ctxd_proto::validate::{self as rules, DocumentError};
use std::collections::HashMap;

/// A collection name: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn collection_name(name: &str) -> Result<(), StorageError> {
    if is_valid_collection_name(name) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "collection name {name:?} is invalid: use 1–64 characters of A–Z, a–z, 0–9, `_`, `.`, `-`, not starting with `.`"
        )))
    }
}

/// A collection dimension: 1–4096.
pub fn dimension(dimension: u32) -> Result<(), StorageError> {
    if (1..=MAX_DIMENSION).contains(&dimension) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "dimension {dimension} is out of range (1–{MAX_DIMENSION})"
        )))
    }
}

/// A query vector against its collection: right length, finite values.
pub fn query_vector(vector: &[f32], expected: u32, collection: &str) -> Result<(), StorageError> {
    rules::vector("", vector, expected).map_err(|e| refused(e, collection, "query vector"))
}

/// An upsert batch: size, each id once, and each document by the protocol's rules.
pub fn upsert(
    documents: &[Document],
    dimension: u32,
    collection: &str,
) -> Result<(), StorageError> {
    batch(documents, "upsert")?;
    for doc in documents {
        rules::document(doc, dimension).map_err(|e| {
            let what = format!("vector of document {:?}", doc.id);
            refused(e, collection, &what)
        })?;
    }
    Ok(())
}

/// An update batch: size, each id once, something to change in each, the vectors of documents
/// that `exist` by the rules (the others are skipped; metadata is checked once merged with what
/// is stored).
pub fn update(
    documents: &[Document],
    dimension: u32,
    collection: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(), StorageError> {
    batch(documents, "update")?;
    for doc in documents {
        let refuse = |e| refused(e, collection, &format!("vector of document {:?}", doc.id));
        rules::id(&doc.id).map_err(refuse)?;
        if doc.text.is_none() && doc.vector.is_none() && doc.metadata.is_none() {
            return Err(StorageError::Invalid(format!(
                "document {:?} changes nothing: give it `text`, `vector` or `metadata`",
                doc.id
            )));
        }
        if let Some(vector) = doc.vector.as_ref().filter(|_| exists(&doc.id)) {
            rules::vector(&doc.id, vector, dimension).map_err(refuse)?;
        }
    }
    Ok(())
}

/// A batch's size, and each id once (`what` names the operation).
fn batch(documents: &[Document], what: &str) -> Result<(), StorageError> {
    if documents.is_empty() {
        return Err(StorageError::Invalid("`documents` is empty".to_owned()));
    }
    if documents.len() > MAX_BATCH_DOCUMENTS {
        return Err(StorageError::Invalid(format!(
            "{} documents in one {what}; the maximum is {MAX_BATCH_DOCUMENTS} (split the batch)",
            documents.len()
        )));
    }
    // One id twice in a request would be written twice and counted twice, with only the
    // last copy kept: refuse it, naming both places, as ChromaDB does.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(documents.len());
    for (position, doc) in documents.iter().enumerate() {
        if let Some(first) = seen.insert(doc.id.as_str(), position) {
            return Err(StorageError::Invalid(format!(
                "document id {:?} appears twice in one {what} (documents[{first}] and \
                 documents[{position}]); send each id once",
                doc.id
            )));
        }
    }
    Ok(())
}

/// A broken rule as a storage error: vectors get their own codes and details, the rest is
/// `bad_request`. `what` names the vector ("query vector", `vector of document "a"`).
fn refused(error: DocumentError, collection: &str, what: &str) -> StorageError {
    match error {
        DocumentError::Dimension {
            expected, received, ..
        } => StorageError::DimensionMismatch {
            what: what.to_owned(),
            collection: collection.to_owned(),
            expected,
            received,
        },
        DocumentError::NonFinite { position, .. } => StorageError::InvalidVector {
            what: what.to_owned(),
            position,
        },
        other => StorageError::Invalid(other.to_string()),
    }
}
