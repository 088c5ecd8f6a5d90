//! The collection catalog: the `collections` table, its per-collection FTS5 table, and the
//! in-memory copy every request consults.

use super::StorageError;
use ctxd_proto::{CollectionEmbedder, CollectionInfo, Distance, Tokenizer};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;

/// Collection ids double as the vector index number in LMDB keys (`u16`), so at most this many
/// collections exist at once; ids of dropped collections are reused.
pub const MAX_COLLECTIONS: u32 = u16::MAX as u32;

/// A collection as the storage layer knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Stable id: the key prefix of its vectors and the suffix of its FTS5 table.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// Vector length.
    pub dimension: u32,
    /// How vectors compare.
    pub distance: Distance,
    /// How text is tokenized.
    pub tokenizer: Tokenizer,
    /// Number of documents.
    pub count: u64,
    /// The model that embeds its text, if any (name and weights SHA-256).
    pub embedder: Option<CollectionEmbedder>,
}

impl Collection {
    /// The protocol's description of this collection.
    pub fn info(&self) -> CollectionInfo {
        CollectionInfo {
            name: self.name.clone(),
            dimension: self.dimension,
            distance: self.distance,
            tokenizer: self.tokenizer,
            count: self.count,
            embedder: self.embedder.clone(),
        }
    }

    /// Whether it was created without a dimension and has had no vector yet.
    pub fn dimension_unfixed(&self) -> bool {
        self.dimension == UNFIXED_DIMENSION
    }

    /// Its settings in words, for messages.
    pub fn settings(&self) -> String {
        let embedder = match &self.embedder {
            Some(e) => format!(", embedder {}", e.name),
            None => String::new(),
        };
        let dimension = if self.dimension_unfixed() {
            "not fixed yet".to_owned()
        } else {
            self.dimension.to_string()
        };
        format!(
            "dimension {dimension}, distance {}, tokenizer {}{embedder}",
            enum_str(&self.distance),
            enum_str(&self.tokenizer)
        )
    }

    /// The name of its FTS5 table.
    pub fn fts_table(&self) -> String {
        fts_table(self.id)
    }
}

/// The FTS5 table of collection `id`.
pub fn fts_table(id: u16) -> String {
    format!("fts_{id}")
}

/// Every collection, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_name: BTreeMap<String, Collection>,
}

impl Catalog {
    /// Reads the catalog from the database.
    pub fn load(conn: &Connection) -> Result<Catalog, StorageError> {
        let mut statement = conn.prepare(
            "SELECT id, name, dimension, distance, tokenizer, count, embedder, embedder_sha256
             FROM collections ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                (
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ),
                (
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                ),
            ))
        })?;
        let mut by_name = BTreeMap::new();
        for row in rows {
            let ((id, name, dimension, distance, tokenizer, count), embedder) = row?;
            let corrupt =
                |what: &str| StorageError::Corrupt(format!("collection `{name}`: {what}"));
            let collection = Collection {
                id: u16::try_from(id).map_err(|_| corrupt("id out of range"))?,
                dimension: u32::try_from(dimension).map_err(|_| corrupt("bad dimension"))?,
                distance: parse_enum(&distance).ok_or_else(|| corrupt("unknown distance"))?,
                tokenizer: parse_enum(&tokenizer).ok_or_else(|| corrupt("unknown tokenizer"))?,
                count: u64::try_from(count).map_err(|_| corrupt("negative count"))?,
                embedder: match embedder {
                    (Some(name), Some(sha256)) => Some(CollectionEmbedder { name, sha256 }),
                    (None, None) => None,
                    _ => return Err(corrupt("an embedder without its weights' sha256")),
                },
                name: name.clone(),
            };
            by_name.insert(name, collection);
        }
        Ok(Catalog { by_name })
    }

    /// The collection called `name`.
    pub fn get(&self, name: &str) -> Option<&Collection> {
        self.by_name.get(name)
    }

    /// The collection called `name`, or `collection_not_found`.
    pub fn require(&self, name: &str) -> Result<&Collection, StorageError> {
        self.get(name)
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_owned()))
    }

    /// Every collection, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Collection> {
        self.by_name.values()
    }

    /// Number of collections.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Documents over all collections.
    pub fn documents(&self) -> u64 {
        self.by_name.values().map(|c| c.count).sum()
    }

    /// The lowest id no collection uses.
    pub fn free_id(&self) -> Option<u16> {
        let used: std::collections::BTreeSet<u16> = self.by_name.values().map(|c| c.id).collect();
        (1..=u16::MAX).find(|id| !used.contains(id))
    }

    pub(crate) fn insert(&mut self, collection: Collection) {
        self.by_name.insert(collection.name.clone(), collection);
    }

    pub(crate) fn remove(&mut self, name: &str) -> Option<Collection> {
        self.by_name.remove(name)
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Collection> {
        self.by_name.get_mut(name)
    }
}

/// Creates the collection's catalog row and FTS5 table (inside the caller's transaction).
pub fn create(conn: &Connection, collection: &Collection) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO collections
             (id, name, dimension, distance, tokenizer, count, created_at, embedder, embedder_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
        params![
            collection.id,
            collection.name,
            collection.dimension,
            enum_str(&collection.distance),
            enum_str(&collection.tokenizer),
            i64::try_from(crate::clock::unix_millis()).unwrap_or(i64::MAX),
            collection.embedder.as_ref().map(|e| e.name.as_str()),
            collection.embedder.as_ref().map(|e| e.sha256.as_str()),
        ],
    )?;
    // Contentless with deletes: the text lives once, in `documents`; the index only maps terms
    // to document keys (the FTS rowid is the document key).
    let tokenize = match collection.tokenizer {
        Tokenizer::Porter => "porter unicode61",
        Tokenizer::Unicode61 => "unicode61",
        Tokenizer::Trigram => "trigram",
    };
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {} USING fts5(text, content='', contentless_delete=1, tokenize='{tokenize}')",
        collection.fts_table()
    ))?;
    Ok(())
}

/// Deletes the collection, its documents and its FTS5 table (inside the caller's transaction).
pub fn delete(conn: &Connection, collection: &Collection) -> Result<(), StorageError> {
    conn.execute(
        "DELETE FROM documents WHERE collection = ?1",
        [collection.id],
    )?;
    conn.execute("DELETE FROM collections WHERE id = ?1", [collection.id])?;
    conn.execute_batch(&format!("DROP TABLE {}", collection.fts_table()))?;
    Ok(())
}

/// The dimension of a collection created without one, until its first vector fixes it.
pub const UNFIXED_DIMENSION: u32 = 0;

/// Stores a collection's dimension, fixed by its first vector (inside the caller's
/// transaction).
pub fn set_dimension(conn: &Connection, collection: &Collection) -> Result<(), StorageError> {
    conn.execute(
        "UPDATE collections SET dimension = ?2 WHERE id = ?1",
        params![collection.id, collection.dimension],
    )?;
    Ok(())
}

/// Stores a collection's document count (inside the caller's transaction).
pub fn set_count(conn: &Connection, collection: &Collection) -> Result<(), StorageError> {
    conn.execute(
        "UPDATE collections SET count = ?2 WHERE id = ?1",
        params![
            collection.id,
            i64::try_from(collection.count).unwrap_or(i64::MAX)
        ],
    )?;
    Ok(())
}

/// The wire name of a unit enum (`"cosine"`, `"porter"`).
fn enum_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}
