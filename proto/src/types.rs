//! Values that appear inside requests and results: documents, collections, hits, leases.

use crate::vector::Vector;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Implements `Deserialize` for a struct so that only a JSON object is accepted (serde's derive
/// would also take an array of the field values, `["a", "text"]`), delegating the fields to a
/// `#[serde(remote)]` twin that mirrors the struct (the compiler checks the two agree).
macro_rules! object_only {
    ($ty:ty, $twin:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Object;
                impl<'de> serde::de::Visitor<'de> for Object {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$ty, A::Error> {
                        <$twin>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                deserializer.deserialize_map(Object)
            }
        }
    };
}

/// A document's metadata: a JSON object whose values are strings, numbers, booleans or lists of
/// those (at most 64 KiB as compact JSON; see [`crate::validate`]).
///
/// It is kept as its compact JSON text, which is what the daemon stores and returns: metadata
/// passes through a request and a read without ever being built into a JSON tree (a tree costs
/// up to 30 bytes of memory for each byte of `[0,0,…]`). [`Metadata::to_map`] and
/// [`Metadata::get`] read it when a program wants the values.
///
/// ```
/// use ctxd_proto::Metadata;
/// let metadata = Metadata::from_json(r#"{ "kind": "fact", "year": 2024 }"#).unwrap();
/// assert_eq!(metadata.as_json(), r#"{"kind":"fact","year":2024}"#);
/// assert_eq!(metadata.get("year"), Some(serde_json::json!(2024)));
/// ```
#[derive(Clone)]
pub struct Metadata(Box<RawValue>);

impl Metadata {
    /// Metadata from JSON text: it must be an object; whitespace outside strings is dropped.
    /// (Which values an object may hold is checked by [`crate::validate::metadata`].)
    pub fn from_json(json: &str) -> Result<Metadata, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(json)?;
        Metadata::from_raw(raw)
    }

    /// Like [`Metadata::from_json`], taking the text without copying it.
    pub fn from_json_string(json: String) -> Result<Metadata, serde_json::Error> {
        Metadata::from_raw(RawValue::from_string(json)?)
    }

    fn from_raw(raw: Box<RawValue>) -> Result<Metadata, serde_json::Error> {
        use serde::de::Error;
        if !raw.get().starts_with('{') {
            return Err(serde_json::Error::custom(
                "metadata must be a JSON object of field names and values",
            ));
        }
        Ok(Metadata(match compact(raw.get()) {
            Some(compacted) => RawValue::from_string(compacted)?,
            None => raw,
        }))
    }

    /// The compact JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The metadata as a map of field names to values (empty if it holds a number no float can
    /// hold, which the daemon refuses: [`crate::validate::metadata`]).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.as_json()).unwrap_or_default()
    }

    /// The value of one field.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.to_map().remove(key)
    }
}

/// JSON text without the whitespace outside its strings, or `None` when it has none. Works on
/// bytes: whitespace, quotes and backslashes are ASCII, which never occurs inside the encoding
/// of another UTF-8 character.
fn compact(json: &str) -> Option<String> {
    let mut out: Option<Vec<u8>> = None;
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in json.as_bytes().iter().enumerate() {
        let skip = if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            false
        } else {
            in_string = b == b'"';
            matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        };
        match (&mut out, skip) {
            (None, true) => out = Some(json.as_bytes()[..i].to_vec()),
            (Some(out), false) => out.push(b),
            _ => {}
        }
    }
    out.map(|bytes| String::from_utf8(bytes).expect("only ASCII whitespace was removed"))
}

impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Metadata {
        let json = serde_json::to_string(&map).expect("a map always serializes");
        Metadata(RawValue::from_string(json).expect("a serialized map is valid JSON"))
    }
}

impl PartialEq for Metadata {
    /// The same fields with the same values, in any order.
    fn eq(&self, other: &Metadata) -> bool {
        self.as_json() == other.as_json() || self.to_map() == other.to_map()
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metadata({})", self.as_json())
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Metadata::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// Unix time in milliseconds (UTC), as used by every timestamp of the protocol.
pub type UnixMillis = u64;

/// How vectors of a collection are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// 1 − cosine similarity (the default).
    #[default]
    Cosine,
    /// Straight-line (L2) distance.
    Euclidean,
    /// Negative dot product (for vectors whose length carries meaning).
    Dot,
    /// L1 distance.
    Manhattan,
}

/// How the full-text index of a collection splits text into terms (FTS5 tokenizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// `porter unicode61`: Unicode words with English stemming (the default).
    #[default]
    Porter,
    /// `unicode61`: Unicode words, no stemming.
    Unicode61,
    /// `trigram`: substrings of three characters (for code, identifiers, CJK).
    Trigram,
}

/// A part of a document a read may return (`include`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The document's text.
    Text,
    /// The document's metadata object.
    Metadata,
    /// The document's vector.
    Vector,
}

impl Field {
    /// What a read returns when the request has no `include`: text and metadata.
    pub const DEFAULT_INCLUDE: [Field; 2] = [Field::Text, Field::Metadata];
}

/// Which ranked lists a search computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// FTS5 bm25 over the documents' text.
    Lexical,
    /// Nearest neighbours of the query vector.
    Vector,
    /// Both, fused with reciprocal rank fusion.
    Hybrid,
}

/// Per-list weights of a hybrid search: score = Σ weightᵢ / (rrf_k + rankᵢ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    /// Weight of the lexical list (default 1).
    #[serde(default = "one")]
    pub lexical: f64,
    /// Weight of the vector list (default 1).
    #[serde(default = "one")]
    pub vector: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(remote = "Weights", deny_unknown_fields)]
struct WeightsFields {
    #[serde(default = "one")]
    lexical: f64,
    #[serde(default = "one")]
    vector: f64,
}

object_only!(
    Weights,
    WeightsFields,
    "an object with `lexical` and/or `vector` weights"
);

impl Default for Weights {
    fn default() -> Self {
        Weights {
            lexical: 1.0,
            vector: 1.0,
        }
    }
}

/// A document as written by `upsert` and returned by `get` and `search`.
///
/// On input a document carries `text`, `vector` or both; on output only the fields the
/// request's `include` asked for are present.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Document {
    /// Unique within its collection: non-empty UTF-8, at most 512 bytes.
    pub id: String,
    /// Text indexed for full-text search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Exactly `dimension` finite numbers, indexed for vector search: a JSON array, or base64
    /// of little-endian `f32` ([`Vector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vector>,
    /// Free-form attributes that filters test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(remote = "Document", deny_unknown_fields)]
struct DocumentFields {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    vector: Option<Vector>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

object_only!(Document, DocumentFields, "a document object");

/// A collection's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
    pub name: String,
    /// Length of every vector in the collection (1–4096); 0 for a collection created without
    /// one that has had no vector yet (the first vector written fixes it).
    pub dimension: u32,
    /// How vectors are compared.
    pub distance: Distance,
    /// How text is split into terms.
    pub tokenizer: Tokenizer,
    /// Number of documents.
    pub count: u64,
    /// The model that computes this collection's vectors from text, if it has one. Added
    /// within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<CollectionEmbedder>,
}

/// The model a collection embeds text with, as the data directory records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionEmbedder {
    /// The model's name (`ctxd serve --model NAME=DIR`).
    pub name: String,
    /// SHA-256 of the model's weights (`model.safetensors`), lowercase hex.
    pub sha256: String,
}

/// A model the daemon loaded (`status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Its name (`ctxd serve --model NAME=DIR`).
    pub name: String,
    /// The length of the vectors it computes.
    pub dimension: u32,
    /// The most tokens of a text it reads; longer texts are truncated, as sentence-transformers
    /// does.
    pub max_tokens: u32,
    /// SHA-256 of its weights (`model.safetensors`), lowercase hex.
    pub sha256: String,
}

/// The rank a hit holds in each list of a search (1 = best), or `null` where the hit is not in
/// that list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ranks {
    /// Rank in the lexical list.
    pub lexical: Option<u32>,
    /// Rank in the vector list.
    pub vector: Option<u32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The document's id.
    pub id: String,
    /// Higher is better: bm25 relevance (lexical), similarity (vector; for `euclidean` and
    /// `manhattan` the negated distance), or the fused RRF score (hybrid).
    pub score: f64,
    /// The hit's rank in each list.
    pub ranks: Ranks,
    /// The document's text, when included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The document's metadata, when included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The document's vector, when included, in the request's `vector_encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vector>,
}

/// The daemon's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Storage is open and every operation is served.
    Serving,
    /// Every handle into the data directory is closed under one or more leases.
    Released,
    /// A release is waiting for in-flight requests before closing storage.
    Draining,
    /// The daemon is shutting down.
    Stopping,
}

impl State {
    /// The state as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Serving => "serving",
            State::Released => "released",
            State::Draining => "draining",
            State::Stopping => "stopping",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A release lease as listed by `status` and `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The id `renew` and `resume` take.
    pub lease_id: String,
    /// The label the holder gave in `release`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// When the lease ends by itself and the daemon resumes.
    pub expires_at: UnixMillis,
}

/// A file of a released data directory, relative to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the data directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// A file of a snapshot, relative to the snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Path relative to the snapshot directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// The outcome of one part of a `check`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckReport {
    /// Whether this part passed.
    pub ok: bool,
    /// What was found wrong (empty when `ok`).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The parts of a `check`: each store, and whether the two agree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CheckDetails {
    /// SQLite `integrity_check` and FTS5 `integrity-check`.
    pub text: CheckReport,
    /// Every vector index opens and reads.
    pub vectors: CheckReport,
    /// Both stores hold the same documents at the same generation.
    pub consistency: CheckReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_kept_compact_and_reads_as_a_map() {
        let spaced = "{ \"a b\" : [1, 2],\n\t\"q\": \"x \\\" y\" , \"é\": \"  \" }";
        let metadata = Metadata::from_json(spaced).expect("an object");
        assert_eq!(metadata.as_json(), r#"{"a b":[1,2],"q":"x \" y","é":"  "}"#);
        assert_eq!(metadata.get("q"), Some(Value::String("x \" y".into())));
        let compact = Metadata::from_json(r#"{"a":1}"#).expect("an object");
        assert_eq!(compact.as_json(), r#"{"a":1}"#);
        let reordered =
            Metadata::from_json(r#"{"q":"x \" y","é":"  ","a b":[1,2]}"#).expect("object");
        assert_eq!(metadata, reordered, "equal maps are equal metadata");
        assert!(Metadata::from_json("[1]").is_err());
        assert!(Metadata::from_json("\"text\"").is_err());
        let map: Map<String, Value> = serde_json::from_str(r#"{"k":[true,"v",1.5]}"#).expect("map");
        assert_eq!(Metadata::from(map.clone()).to_map(), map);
    }
}
