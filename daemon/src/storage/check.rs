//! `check`: both stores verified on their own, and against each other.
//!
//! - text: SQLite `PRAGMA integrity_check`, and FTS5 `integrity-check` of every collection's
//!   index (FTS5 needs a read-write connection for it, so the online check runs on the storage
//!   thread);
//! - vectors: every vector of every collection reads back with its collection's dimension and
//!   finite values, and no vector belongs to an unknown collection;
//! - consistency: the documents SQLite says have a vector are exactly the vectors LMDB holds,
//!   each collection's stored count is its number of documents, both stores record the same
//!   generation, and no journaled change is waiting to be replayed.

use super::StorageError;
use super::catalog::Catalog;
use super::manifest;
use super::text::{self, TextStore};
use super::vectors::{VectorReader, VectorStore};
use ctxd_proto::{CheckDetails, CheckReport, CheckResult};
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// Runs every check over an open pair of stores.
pub fn run(conn: &Connection, vectors: &VectorStore) -> Result<CheckResult, StorageError> {
    let catalog = Catalog::load(conn)?;
    let reader = vectors.reader();
    let details = CheckDetails {
        text: report(text_problems(conn, &catalog)?),
        vectors: report(vector_problems(&reader, &catalog)?),
        consistency: report(consistency_problems(conn, vectors, &reader, &catalog)?),
    };
    Ok(CheckResult {
        passed: details.text.ok && details.vectors.ok && details.consistency.ok,
        details,
    })
}

/// The checks across the two stores and of every vector, without SQLite's and FTS5's own
/// integrity checks: what a fresh copy (a snapshot, written by SQLite's `VACUUM INTO` and LMDB's
/// compacting copy) must pass before it is published. The problems found, empty when it passes.
pub fn cross_store(conn: &Connection, vectors: &VectorStore) -> Result<Vec<String>, StorageError> {
    let catalog = Catalog::load(conn)?;
    let reader = vectors.reader();
    let mut problems = vector_problems(&reader, &catalog)?;
    problems.extend(consistency_problems(conn, vectors, &reader, &catalog)?);
    Ok(problems)
}

/// Every problem a check found, in one list (text, vectors, consistency).
pub fn problems(result: &CheckResult) -> Vec<&str> {
    let d = &result.details;
    d.text
        .problems
        .iter()
        .chain(&d.vectors.problems)
        .chain(&d.consistency.problems)
        .map(String::as_str)
        .collect()
}

fn report(problems: Vec<String>) -> CheckReport {
    CheckReport {
        ok: problems.is_empty(),
        problems,
    }
}

fn text_problems(conn: &Connection, catalog: &Catalog) -> Result<Vec<String>, StorageError> {
    let mut problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|line| line != "ok")
        .map(|line| format!("sqlite: {line}"))
        .collect();
    for collection in catalog.iter() {
        let table = collection.fts_table();
        if let Err(e) = conn.execute(
            &format!("INSERT INTO {table} ({table}) VALUES ('integrity-check')"),
            [],
        ) {
            problems.push(format!(
                "full-text index of `{}` is damaged: {e}",
                collection.name
            ));
        }
    }
    Ok(problems)
}

fn vector_problems(reader: &VectorReader, catalog: &Catalog) -> Result<Vec<String>, StorageError> {
    let rtxn = reader.read_txn()?;
    let mut problems = Vec::new();
    for collection in catalog.iter() {
        let expected = collection.dimension as usize * 4;
        let mut bad = 0u64;
        reader.for_each(&rtxn, collection.id, |_, bytes| {
            let finite = bytes
                .chunks_exact(4)
                .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite());
            if bytes.len() != expected || !finite {
                bad += 1;
            }
        })?;
        if bad > 0 {
            problems.push(format!(
                "{bad} vectors of `{}` do not have {} finite values",
                collection.name, collection.dimension
            ));
        }
    }
    let known: BTreeSet<u16> = catalog.iter().map(|c| c.id).collect();
    let strays = reader
        .collections(&rtxn)?
        .into_iter()
        .filter(|id| !known.contains(id))
        .count();
    if strays > 0 {
        problems.push(format!("vectors of {strays} unknown collection(s) remain"));
    }
    Ok(problems)
}

fn consistency_problems(
    conn: &Connection,
    vectors: &VectorStore,
    reader: &VectorReader,
    catalog: &Catalog,
) -> Result<Vec<String>, StorageError> {
    let mut problems = Vec::new();
    let text_generation = text::generation(conn)?;
    let vector_generation = vectors.generation()?;
    if text_generation != vector_generation {
        problems.push(format!(
            "generations differ: text store {text_generation}, vector store {vector_generation}"
        ));
    }
    let pending = text::journal_since(conn, vector_generation)?;
    if !pending.is_empty() {
        problems.push(format!(
            "{} journaled vector changes are not in the vector store yet (they are replayed at the next open)",
            pending.len()
        ));
    }
    let rtxn = reader.read_txn()?;
    for collection in catalog.iter() {
        let mut in_text: Vec<u32> = conn
            .prepare_cached(
                "SELECT key FROM documents WHERE collection = ?1 AND has_vector = 1 ORDER BY key",
            )?
            .query_map([collection.id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let mut in_vectors = Vec::new();
        reader.for_each(&rtxn, collection.id, |key, _| in_vectors.push(key))?;
        in_text.sort_unstable();
        if in_text != in_vectors {
            let text_only = in_text
                .iter()
                .filter(|k| in_vectors.binary_search(k).is_err())
                .count();
            let vector_only = in_vectors
                .iter()
                .filter(|k| in_text.binary_search(k).is_err())
                .count();
            problems.push(format!(
                "`{}`: {text_only} documents lack their vector, {vector_only} vectors lack their document",
                collection.name
            ));
        }
        let documents: i64 = conn.query_row(
            "SELECT count(*) FROM documents WHERE collection = ?1",
            [collection.id],
            |row| row.get(0),
        )?;
        if u64::try_from(documents).unwrap_or(0) != collection.count {
            problems.push(format!(
                "`{}`: the catalog counts {} documents, the table holds {documents}",
                collection.name, collection.count
            ));
        }
    }
    Ok(problems)
}

/// `check` of a data directory no daemon has open (stopped, or released): opens both stores
/// directly, without replaying the journal or changing anything, and closes them again.
pub fn check_offline(data_dir: &Path) -> Result<CheckResult, StorageError> {
    if !data_dir.join(manifest::FILE_NAME).exists() {
        return Err(StorageError::Format {
            path: data_dir.to_owned(),
            message: format!(
                "holds no {}: not a ctxd data directory",
                manifest::FILE_NAME
            ),
        });
    }
    manifest::load_or_create(data_dir, false)?;
    let text = TextStore::open(data_dir)?;
    let vectors = VectorStore::open(data_dir, Default::default())?;
    let result = run(text.conn(), &vectors);
    let closed = text.close().and(vectors.close());
    let result = result?;
    closed?;
    Ok(result)
}
