//! SQL over the `documents` table and the collections' FTS5 tables.
//!
//! Writers call these inside the storage thread's transaction; readers call the `select`
//! functions on their own read-only connections.

use super::StorageError;
use super::catalog::Collection;
use super::filter_sql::SqlFilter;
use ctxd_proto::limits::MAX_REPLY_BYTES;
use ctxd_proto::{Document, Field, Metadata};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::collections::HashMap;

/// A document row as stored.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// The internal key (FTS5 rowid, LMDB key).
    pub key: u32,
    /// The user's id.
    pub id: String,
    /// The text, if any.
    pub text: Option<String>,
    /// The metadata as compact JSON text, if any.
    pub metadata: Option<String>,
}

impl StoredDoc {
    /// The protocol document with the parts `include` asks for (the vector is added by the
    /// caller, who reads it from the vector store).
    pub fn into_document(self, include: &[Field]) -> Document {
        Document {
            id: self.id,
            text: if include.contains(&Field::Text) {
                self.text
            } else {
                None
            },
            metadata: if include.contains(&Field::Metadata) {
                // Stored as the compact text the request carried: passed through as it is.
                self.metadata
                    .and_then(|m| Metadata::from_json_string(m).ok())
            } else {
                None
            },
            vector: None,
        }
    }
}

/// The key and vector flag of every listed id that exists, in one query.
pub fn lookup_many(
    conn: &Connection,
    collection: u16,
    ids: impl Iterator<Item = impl AsRef<str>>,
) -> Result<HashMap<String, (u32, bool)>, StorageError> {
    let ids: Vec<String> = ids.map(|id| id.as_ref().to_owned()).collect();
    let mut select = conn.prepare_cached(
        "SELECT id, key, has_vector FROM documents
         WHERE collection = ?1 AND id IN (SELECT value FROM json_each(?2))",
    )?;
    let json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_owned());
    let rows = select.query_map(params![collection, json], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, bool>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (id, key, has_vector) = row?;
        Ok((id, (to_key(key)?, has_vector)))
    })
    .collect()
}

/// Inserts a new document and returns its key.
pub fn insert(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    text: Option<&str>,
    metadata: Option<&str>,
    has_vector: bool,
) -> Result<u32, StorageError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO documents (collection, id, text, metadata, has_vector) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    insert.execute(params![collection.id, id, text, metadata, has_vector])?;
    let key = to_key(conn.last_insert_rowid())?;
    if let Some(text) = text {
        index_text(conn, collection, key, text)?;
    }
    Ok(key)
}

/// Replaces an existing document's content (its key stays).
pub fn replace(
    conn: &Connection,
    collection: &Collection,
    key: u32,
    text: Option<&str>,
    metadata: Option<&str>,
    has_vector: bool,
) -> Result<(), StorageError> {
    let mut update = conn.prepare_cached(
        "UPDATE documents SET text = ?2, metadata = ?3, has_vector = ?4 WHERE key = ?1",
    )?;
    update.execute(params![key, text, metadata, has_vector])?;
    unindex_text(conn, collection, key)?;
    if let Some(text) = text {
        index_text(conn, collection, key, text)?;
    }
    Ok(())
}

/// Deletes documents by key; returns the keys that had a vector.
pub fn delete(
    conn: &Connection,
    collection: &Collection,
    keys: &[u32],
) -> Result<Vec<u32>, StorageError> {
    let mut with_vector = Vec::new();
    let mut delete =
        conn.prepare_cached("DELETE FROM documents WHERE key = ?1 RETURNING has_vector")?;
    for &key in keys {
        let had_vector: Option<bool> = delete.query_row([key], |row| row.get(0)).optional()?;
        if had_vector == Some(true) {
            with_vector.push(key);
        }
        unindex_text(conn, collection, key)?;
    }
    Ok(with_vector)
}

fn index_text(
    conn: &Connection,
    collection: &Collection,
    key: u32,
    text: &str,
) -> Result<(), StorageError> {
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {} (rowid, text) VALUES (?1, ?2)",
        collection.fts_table()
    ))?;
    insert.execute(params![key, text])?;
    Ok(())
}

fn unindex_text(conn: &Connection, collection: &Collection, key: u32) -> Result<(), StorageError> {
    let mut delete = conn.prepare_cached(&format!(
        "DELETE FROM {} WHERE rowid = ?1",
        collection.fts_table()
    ))?;
    delete.execute([key])?;
    Ok(())
}

/// Which documents a read or delete selects.
pub struct Selection<'a> {
    /// Only these ids (in this order, for reads).
    pub ids: Option<&'a [String]>,
    /// Only documents that match.
    pub filter: Option<&'a SqlFilter>,
}

impl Selection<'_> {
    /// The WHERE clause (documents aliased `d`) and its parameters, after `collection = ?`.
    fn clause(&self, collection: u16) -> (String, Vec<SqlValue>) {
        let mut sql = String::from("d.collection = ?");
        let mut params = vec![SqlValue::Integer(i64::from(collection))];
        if let Some(ids) = self.ids {
            sql.push_str(" AND d.id IN (SELECT value FROM json_each(?))");
            params.push(SqlValue::Text(
                serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned()),
            ));
        }
        if let Some(filter) = self.filter {
            sql.push_str(" AND (");
            sql.push_str(&filter.sql);
            sql.push(')');
            params.extend(filter.params.iter().cloned());
        }
        (sql, params)
    }
}

/// The keys of the selected documents, in key order.
pub fn select_keys(
    conn: &Connection,
    collection: u16,
    selection: &Selection<'_>,
) -> Result<Vec<u32>, StorageError> {
    let (clause, params) = selection.clause(collection);
    let mut select = conn.prepare_cached(&format!(
        "SELECT d.key FROM documents d WHERE {clause} ORDER BY d.key"
    ))?;
    select
        .query_map(params_from_iter(params), |row| row.get::<_, i64>(0))?
        .map(|key| key.map_err(StorageError::from).and_then(to_key))
        .collect()
}

/// The selected documents: in the order of `ids` when given (an id asked twice counts at its
/// first place), else in key (insertion) order; `offset` and `limit` page through that order.
///
/// With ids, the matching keys are found through the `(collection, id)` index (one probe per
/// id), put in the order asked in memory, and only the page's documents are read: the work is
/// linear in the ids, whatever the page. Both steps read one snapshot (one read transaction),
/// so a write in between cannot change what the page holds.
pub fn select_docs(
    conn: &Connection,
    collection: u16,
    selection: &Selection<'_>,
    limit: u32,
    offset: u64,
    reply: &mut ReplyBytes,
) -> Result<Vec<StoredDoc>, StorageError> {
    let (clause, mut params) = selection.clause(collection);
    let Some(ids) = selection.ids else {
        params.push(SqlValue::Integer(i64::from(limit)));
        params.push(SqlValue::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let mut select = conn.prepare_cached(&format!(
            "SELECT d.key, d.id, d.text, d.metadata FROM documents d WHERE {clause} \
             ORDER BY d.key LIMIT ? OFFSET ?"
        ))?;
        let rows = select.query_map(params_from_iter(params), read_doc)?;
        return rows.map(|row| reply.charge(row??)).collect();
    };
    let snapshot = conn.unchecked_transaction()?;
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (at, id) in ids.iter().enumerate() {
        position.entry(id.as_str()).or_insert(at);
    }
    let mut select = conn.prepare_cached(&format!(
        "SELECT d.key, d.id FROM documents d WHERE {clause}"
    ))?;
    let mut found: Vec<(usize, u32)> = select
        .query_map(params_from_iter(params), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?
        .map(|row| {
            let (key, id) = row?;
            let at = position.get(id.as_str()).copied().unwrap_or(usize::MAX);
            Ok((at, to_key(key)?))
        })
        .collect::<Result<_, StorageError>>()?;
    found.sort_unstable();
    let page: Vec<u32> = found
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|(_, key)| key)
        .collect();
    let docs = fetch(conn, &page, reply)?.into_iter().flatten().collect();
    snapshot.commit()?;
    Ok(docs)
}

/// The documents with these keys, in the order given (`None` for keys that do not exist).
pub fn fetch(
    conn: &Connection,
    keys: &[u32],
    reply: &mut ReplyBytes,
) -> Result<Vec<Option<StoredDoc>>, StorageError> {
    let mut select =
        conn.prepare_cached("SELECT key, id, text, metadata FROM documents WHERE key = ?1")?;
    keys.iter()
        .map(|&key| {
            select
                .query_row([key], read_doc)
                .optional()?
                .transpose()?
                .map(|doc| reply.charge(doc))
                .transpose()
        })
        .collect()
}

/// How much of [`MAX_REPLY_BYTES`] the documents read for one reply have used: reading stops
/// with a clear refusal at the document that would cross it, before the rest is loaded, so no
/// request makes the daemon build a reply of gigabytes.
pub struct ReplyBytes {
    left: usize,
    /// What each document costs besides its text and metadata: its id's quotes and field names,
    /// its vector's JSON when included.
    per_document: usize,
}

impl ReplyBytes {
    /// A reply whose documents each carry a vector of `vector_values` values (0 when vectors are
    /// not included).
    pub fn new(vector_values: usize) -> ReplyBytes {
        ReplyBytes::within(MAX_REPLY_BYTES, vector_values)
    }

    fn within(limit: usize, vector_values: usize) -> ReplyBytes {
        // A JSON f32 is at most 16 bytes with its comma (`-1.2345678e-38,`).
        ReplyBytes {
            left: limit,
            per_document: 128 + 16 * vector_values,
        }
    }

    fn charge(&mut self, doc: StoredDoc) -> Result<StoredDoc, StorageError> {
        let bytes = self.per_document
            + doc.id.len()
            + doc.text.as_ref().map_or(0, String::len)
            + doc.metadata.as_ref().map_or(0, String::len);
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(doc)
            }
            None => Err(StorageError::Invalid(format!(
                "the reply would hold more than {} MiB of documents, the most a reply may; ask \
                 for fewer (`limit`, `k`), page with `offset`, or leave vectors out of `include`",
                MAX_REPLY_BYTES >> 20
            ))),
        }
    }
}

/// The lowest and highest document key of a collection (0, 0 when it is empty).
pub fn key_range(conn: &Connection, collection: u16) -> Result<(i64, i64), StorageError> {
    // Two index probes: SQLite's min/max shortcut applies to a lone min() or max() only, and
    // both in one query scan the whole collection.
    let mut select = conn.prepare_cached(
        "SELECT coalesce((SELECT key FROM documents WHERE collection = ?1 ORDER BY key LIMIT 1), 0),
                coalesce((SELECT key FROM documents WHERE collection = ?1 ORDER BY key DESC LIMIT 1), 0)",
    )?;
    Ok(select.query_row([collection], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// Number of selected documents.
pub fn count(
    conn: &Connection,
    collection: u16,
    selection: &Selection<'_>,
) -> Result<u64, StorageError> {
    let (clause, params) = selection.clause(collection);
    let mut select =
        conn.prepare_cached(&format!("SELECT count(*) FROM documents d WHERE {clause}"))?;
    let n: i64 = select.query_row(params_from_iter(params), |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn read_doc(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredDoc, StorageError>> {
    let key: i64 = row.get(0)?;
    let (id, text, metadata) = (row.get(1)?, row.get(2)?, row.get(3)?);
    Ok(to_key(key).map(|key| StoredDoc {
        key,
        id,
        text,
        metadata,
    }))
}

/// Document keys are `u32` (the vector index's item id); SQLite hands out `i64`.
fn to_key(key: i64) -> Result<u32, StorageError> {
    u32::try_from(key).map_err(|_| {
        StorageError::Corrupt(format!(
            "document key {key} exceeds the 32-bit key space of the vector index"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::text::TextStore;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// SQLite VM instructions `run` executes on `conn` (counted by a progress handler called
    /// after every instruction): a measure of work that does not depend on the machine.
    fn instructions(conn: &mut Connection, run: impl FnOnce(&Connection)) -> u64 {
        let count = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&count);
        conn.progress_handler(
            1,
            Some(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                false
            }),
        )
        .expect("install the progress handler");
        run(conn);
        conn.progress_handler(0, None::<fn() -> bool>)
            .expect("remove the progress handler");
        count.load(Ordering::Relaxed)
    }

    #[test]
    fn reading_stops_at_the_document_that_would_cross_the_reply_limit() {
        let mut reply = ReplyBytes::within(1000, 0);
        let doc = |n: usize| StoredDoc {
            key: 1,
            id: "d".into(),
            text: Some("x".repeat(n)),
            metadata: None,
        };
        reply.charge(doc(300)).expect("fits");
        reply.charge(doc(300)).expect("fits");
        let refused = reply.charge(doc(300)).expect_err("crosses the limit");
        assert!(refused.to_string().contains("`limit`"), "{refused}");
        let mut with_vectors = ReplyBytes::within(10_000, 384);
        assert!(with_vectors.charge(doc(0)).is_ok());
        assert!(
            with_vectors.charge(doc(0)).is_err(),
            "two 384-d vectors are ~12 KB of JSON"
        );
    }

    /// `get` by ids once parsed the whole id list again for every matched row: four times the
    /// ids cost 12–25 times the time. Now four times the ids cost about four times the work.
    #[test]
    fn get_by_ids_is_linear_in_the_ids() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = TextStore::open(dir.path()).expect("open");
        let conn = store.conn();
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..8000 {
            conn.execute(
                "INSERT INTO documents (collection, id, text, metadata, has_vector) VALUES (1, ?1, 't', NULL, 0)",
                [format!("d{i}")],
            )
            .expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
        drop(store);
        let mut conn =
            Connection::open(dir.path().join(crate::storage::text::FILE_NAME)).expect("open");
        let mut work = |n: usize| {
            // Ten ids asked for each one that exists, newest first, as in the reported case.
            let ids: Vec<String> = (0..n * 10)
                .rev()
                .map(|i| {
                    if i % 10 == 0 {
                        format!("d{}", i / 10)
                    } else {
                        format!("no-{i}")
                    }
                })
                .collect();
            instructions(&mut conn, |conn| {
                let selection = Selection {
                    ids: Some(&ids),
                    filter: None,
                };
                let docs = select_docs(conn, 1, &selection, 10_000, 0, &mut ReplyBytes::new(0))
                    .expect("select");
                assert_eq!(docs.len(), n);
                assert_eq!(docs[0].id, format!("d{}", n - 1), "in the order asked");
            })
        };
        let (small, large) = (work(1000), work(4000));
        let ratio = large as f64 / small as f64;
        assert!(
            ratio < 6.0,
            "4× the ids cost {ratio:.1}× the work ({small} → {large} instructions)"
        );
    }
}
