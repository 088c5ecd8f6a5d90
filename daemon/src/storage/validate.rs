//! Checks on request input that need no storage access, with messages that name the bad value.

use super::StorageError;
use ctxd_proto::limits::{
    MAX_BATCH_DOCUMENTS, MAX_DIMENSION, MAX_ID_BYTES, MAX_METADATA_BYTES, is_valid_collection_name,
};
use ctxd_proto::{Document, Metadata};
use serde_json::Value;
use std::collections::HashMap;

/// A collection name per DESIGN §2.
pub fn collection_name(name: &str) -> Result<(), StorageError> {
    if is_valid_collection_name(name) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "collection name {name:?} is invalid: use 1–64 characters of A–Z, a–z, 0–9, `_`, `.`, `-`, not starting with `.`"
        )))
    }
}

/// A collection dimension per DESIGN §2.
pub fn dimension(dimension: u32) -> Result<(), StorageError> {
    if (1..=MAX_DIMENSION).contains(&dimension) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "dimension {dimension} is out of range (1–{MAX_DIMENSION})"
        )))
    }
}

/// A vector against its collection: right length, finite values.
pub fn vector(
    vector: &[f32],
    expected: u32,
    collection: &str,
    what: impl Fn() -> String,
) -> Result<(), StorageError> {
    if vector.len() != expected as usize {
        return Err(StorageError::DimensionMismatch {
            what: what(),
            collection: collection.to_owned(),
            expected,
            received: vector.len(),
        });
    }
    if let Some(position) = vector.iter().position(|v| !v.is_finite()) {
        return Err(StorageError::InvalidVector {
            what: what(),
            position,
        });
    }
    Ok(())
}

/// An upsert batch: size, and each document's id, content, vector and metadata. Returns each
/// document's metadata serialized (what is stored), so it is serialized once.
pub fn upsert(
    documents: &[Document],
    dimension: u32,
    collection: &str,
) -> Result<Vec<Option<String>>, StorageError> {
    if documents.is_empty() {
        return Err(StorageError::Invalid("`documents` is empty".to_owned()));
    }
    if documents.len() > MAX_BATCH_DOCUMENTS {
        return Err(StorageError::Invalid(format!(
            "{} documents in one upsert; the maximum is {MAX_BATCH_DOCUMENTS} (split the batch)",
            documents.len()
        )));
    }
    // One id twice in a request would be written twice and counted twice, with only the
    // last copy kept: refuse it, naming both places, as ChromaDB does.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(documents.len());
    for (position, doc) in documents.iter().enumerate() {
        if let Some(first) = seen.insert(doc.id.as_str(), position) {
            return Err(StorageError::Invalid(format!(
                "document id {:?} appears twice in one upsert (documents[{first}] and \
                 documents[{position}]); send each id once",
                doc.id
            )));
        }
    }
    documents
        .iter()
        .map(|doc| {
            id(&doc.id)?;
            if doc.text.is_none() && doc.vector.is_none() {
                return Err(StorageError::Invalid(format!(
                    "document {:?} has neither `text` nor `vector`",
                    doc.id
                )));
            }
            if let Some(v) = &doc.vector {
                vector(v, dimension, collection, || {
                    format!("vector of document {:?}", doc.id)
                })?;
            }
            doc.metadata
                .as_ref()
                .map(|m| metadata(&doc.id, m))
                .transpose()
        })
        .collect()
}

/// A document id: non-empty, at most 512 bytes.
pub fn id(id: &str) -> Result<(), StorageError> {
    if id.is_empty() {
        return Err(StorageError::Invalid("document id is empty".to_owned()));
    }
    if id.len() > MAX_ID_BYTES {
        let preview: String = id.chars().take(40).collect();
        return Err(StorageError::Invalid(format!(
            "document id {preview:?}… is {} bytes; the maximum is {MAX_ID_BYTES}",
            id.len()
        )));
    }
    Ok(())
}

/// Metadata values are strings, numbers, booleans or arrays of those; at most 64 KiB as JSON.
fn metadata(id: &str, metadata: &Metadata) -> Result<String, StorageError> {
    for (key, value) in metadata {
        let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
        let ok = match value {
            Value::Array(items) => items.iter().all(scalar),
            other => scalar(other),
        };
        if !ok {
            return Err(StorageError::Invalid(format!(
                "metadata `{key}` of document {id:?} is {value}; values must be strings, numbers, booleans or lists of those"
            )));
        }
    }
    let text = serde_json::to_string(metadata)
        .map_err(|e| StorageError::Invalid(format!("metadata of document {id:?}: {e}")))?;
    if text.len() > MAX_METADATA_BYTES {
        return Err(StorageError::Invalid(format!(
            "metadata of document {id:?} is {} bytes as JSON; the maximum is {MAX_METADATA_BYTES}",
            text.len()
        )));
    }
    Ok(text)
}
