//! The rules for what a request carries, in one place: the daemon enforces them, and clients
//! (`ctxd import`, say) check input with the same functions before sending it, so a bad line is
//! reported with its line number and the same words the daemon would use.
//!
//! | what | rule |
//! |---|---|
//! | document id | non-empty UTF-8, at most [`MAX_ID_BYTES`] bytes |
//! | document | carries `text`, `vector` or both |
//! | vector | exactly the collection's dimension of finite numbers |
//! | metadata | values are strings, numbers, booleans or lists of those; at most [`MAX_METADATA_BYTES`] as compact JSON |
//! | label (`holder`, a client's name) | 1–[`MAX_LABEL_BYTES`] bytes of printable text (see [`label`]) |

use crate::limits::{MAX_ID_BYTES, MAX_LABEL_BYTES, MAX_METADATA_BYTES};
use crate::types::{Document, Metadata};
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::fmt;

/// Why a document breaks the rules. `Display` is the message, naming the document and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// The id is the empty string.
    EmptyId,
    /// The id is longer than [`MAX_ID_BYTES`].
    IdTooLong {
        /// The first characters of the id.
        preview: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// The document has neither `text` nor `vector`.
    NoContent {
        /// The document's id.
        id: String,
    },
    /// The vector's length is not the collection's dimension.
    Dimension {
        /// The document's id.
        id: String,
        /// The collection's dimension.
        expected: u32,
        /// The vector's length.
        received: usize,
    },
    /// The vector holds NaN or an infinity (a JSON number beyond `f32`'s range becomes one).
    NonFinite {
        /// The document's id.
        id: String,
        /// Index of the first bad value.
        position: usize,
    },
    /// A metadata value is null, an object, or a list holding something other than scalars.
    MetadataValue {
        /// The document's id.
        id: String,
        /// The metadata key.
        key: String,
        /// What the value is, in words ("null", "an object", ...).
        kind: &'static str,
    },
    /// The metadata holds something JSON allows but metadata does not (a number beyond the
    /// range of a 64-bit float, `1e400`).
    MetadataInvalid {
        /// The document's id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The metadata is larger than [`MAX_METADATA_BYTES`] as compact JSON.
    MetadataTooLarge {
        /// The document's id.
        id: String,
        /// Its size as compact JSON.
        bytes: usize,
    },
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::EmptyId => f.write_str("document id is empty"),
            DocumentError::IdTooLong { preview, bytes } => write!(
                f,
                "document id {preview:?}… is {bytes} bytes; the maximum is {MAX_ID_BYTES}"
            ),
            DocumentError::NoContent { id } => write!(
                f,
                "document {id:?} has neither `text` nor `vector`; it needs at least one"
            ),
            DocumentError::Dimension {
                id,
                expected,
                received,
            } => write!(
                f,
                "vector of document {id:?} has {received} dimensions, the collection expects \
                 {expected}"
            ),
            DocumentError::NonFinite { id, position } => write!(
                f,
                "vector of document {id:?} holds a non-finite value at position {position} \
                 (a number beyond the range of a 32-bit float)"
            ),
            DocumentError::MetadataValue { id, key, kind } => write!(
                f,
                "metadata `{key}` of document {id:?} is {kind}; values must be strings, numbers, \
                 booleans or lists of those"
            ),
            DocumentError::MetadataInvalid { id, reason } => {
                write!(f, "metadata of document {id:?} is not valid: {reason}")
            }
            DocumentError::MetadataTooLarge { id, bytes } => write!(
                f,
                "metadata of document {id:?} is {bytes} bytes as JSON; the maximum is \
                 {MAX_METADATA_BYTES}"
            ),
        }
    }
}

impl std::error::Error for DocumentError {}

/// A document id: non-empty, at most [`MAX_ID_BYTES`] bytes.
pub fn id(id: &str) -> Result<(), DocumentError> {
    if id.is_empty() {
        return Err(DocumentError::EmptyId);
    }
    if id.len() > MAX_ID_BYTES {
        return Err(DocumentError::IdTooLong {
            preview: id.chars().take(40).collect(),
            bytes: id.len(),
        });
    }
    Ok(())
}

/// A vector of document `id` against a collection of `dimension`: its length, finite values.
pub fn vector(id: &str, vector: &[f32], dimension: u32) -> Result<(), DocumentError> {
    if vector.len() != dimension as usize {
        return Err(DocumentError::Dimension {
            id: id.to_owned(),
            expected: dimension,
            received: vector.len(),
        });
    }
    match vector.iter().position(|v| !v.is_finite()) {
        Some(position) => Err(DocumentError::NonFinite {
            id: id.to_owned(),
            position,
        }),
        None => Ok(()),
    }
}

/// A document for a collection of `dimension`: every rule of the table above.
pub fn document(doc: &Document, dimension: u32) -> Result<(), DocumentError> {
    id(&doc.id)?;
    if doc.text.is_none() && doc.vector.is_none() {
        return Err(DocumentError::NoContent { id: doc.id.clone() });
    }
    if let Some(v) = &doc.vector {
        vector(&doc.id, v, dimension)?;
    }
    match &doc.metadata {
        Some(m) => metadata(&doc.id, m),
        None => Ok(()),
    }
}

/// Metadata of document `id`: scalar values or lists of scalars, at most [`MAX_METADATA_BYTES`]
/// as compact JSON. Read from its JSON text without building a tree.
pub fn metadata(id: &str, metadata: &Metadata) -> Result<(), DocumentError> {
    // The text is a JSON object (a `Metadata` is never anything else), but JSON text that was
    // only scanned may still hold a number no float can hold: reading it says so.
    match serde_json::from_str::<Shape>(metadata.as_json()) {
        Ok(Shape(None)) => {}
        Ok(Shape(Some((key, kind)))) => {
            return Err(DocumentError::MetadataValue {
                id: id.to_owned(),
                key,
                kind,
            });
        }
        Err(e) => {
            return Err(DocumentError::MetadataInvalid {
                id: id.to_owned(),
                reason: e.to_string(),
            });
        }
    }
    let bytes = metadata.as_json().len();
    if bytes > MAX_METADATA_BYTES {
        return Err(DocumentError::MetadataTooLarge {
            id: id.to_owned(),
            bytes,
        });
    }
    Ok(())
}

/// The first metadata field whose value is not allowed, and what it is in words.
struct Shape(Option<(String, &'static str)>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metadata object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut first = None;
                while let Some(key) = map.next_key::<String>()? {
                    let Kind(kind) = map.next_value()?;
                    if first.is_none()
                        && let Some(kind) = kind
                    {
                        first = Some((key, kind));
                    }
                }
                Ok(Shape(first))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A metadata value: `None` when allowed, else what it is in words.
struct Kind(Option<&'static str>);

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(KindVisitor { in_list: false })
    }
}

/// Classifies a value; inside a list, only scalars are allowed.
struct KindVisitor {
    in_list: bool,
}

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metadata value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind(None))
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind(Some(if self.in_list { LIST_KIND } else { "null" })))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Kind(Some(if self.in_list {
            LIST_KIND
        } else {
            "an object"
        })))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        if self.in_list {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Kind(Some(LIST_KIND)));
        }
        let mut bad = None;
        while let Some(Kind(kind)) = seq.next_element_seed(ListElement)? {
            bad = bad.or(kind);
        }
        Ok(Kind(bad))
    }
}

/// What a list holding something other than scalars is, in words.
const LIST_KIND: &str = "a list holding a list, an object or null";

/// An element of a metadata list.
struct ListElement;

impl<'de> DeserializeSeed<'de> for ListElement {
    type Value = Kind;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kind, D::Error> {
        deserializer.deserialize_any(KindVisitor { in_list: true })
    }
}

/// Why a label was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError(String);

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabelError {}

/// A label a client chooses that the daemon shows to people: a lease's `holder` (in `status`,
/// the service manager's status line and the log) or a client's name in `hello` (in the log).
///
/// 1–[`MAX_LABEL_BYTES`] bytes without control characters (which includes newlines, so a label
/// can never add a line to a `KEY=value` status message or a log), line or paragraph separators,
/// or bidirectional overrides (which make a log line read differently from what it holds).
/// `what` names the field in the message.
pub fn label(what: &str, label: &str) -> Result<(), LabelError> {
    if label.is_empty() {
        return Err(LabelError(format!("`{what}` is empty")));
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err(LabelError(format!(
            "`{what}` is {} bytes; the maximum is {MAX_LABEL_BYTES}",
            label.len()
        )));
    }
    if let Some((position, c)) = label.char_indices().find(|&(_, c)| !printable(c)) {
        return Err(LabelError(format!(
            "`{what}` holds the control character U+{:04X} at byte {position}; labels are \
             printable text on one line",
            c as u32
        )));
    }
    Ok(())
}

/// Not a control character (C0, DEL, C1), not a line or paragraph separator, not a
/// bidirectional embedding, override or isolate.
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn doc(value: Value) -> Document {
        serde_json::from_value(value).expect("a document")
    }

    #[test]
    fn documents_follow_the_rules() {
        let ok =
            doc(json!({"id": "a", "text": "x", "vector": [1, 0.5], "metadata": {"k": ["x", 1]}}));
        assert_eq!(document(&ok, 2), Ok(()));
        assert_eq!(
            document(&doc(json!({"id": "b", "vector": [0, 0]})), 2),
            Ok(())
        );
        for (value, needle) in [
            (json!({"id": "", "text": "x"}), "document id is empty"),
            (json!({"id": "a"}), "neither `text` nor `vector`"),
            (
                json!({"id": "a", "vector": [1, 2, 3]}),
                "has 3 dimensions, the collection expects 2",
            ),
            (
                json!({"id": "a", "vector": [1, 1e39]}),
                "non-finite value at position 1",
            ),
            (
                json!({"id": "a", "text": "x", "metadata": {"m": {"n": 1}}}),
                "`m` of document \"a\" is an object",
            ),
            (
                json!({"id": "a", "text": "x", "metadata": {"m": null}}),
                "is null",
            ),
            (
                json!({"id": "a", "text": "x", "metadata": {"m": [[1]]}}),
                "a list holding",
            ),
        ] {
            let error = document(&doc(value.clone()), 2)
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(needle), "{value}: {error}");
        }
        let huge: Document =
            serde_json::from_str(r#"{"id": "a", "text": "x", "metadata": {"m": 1e400}}"#)
                .expect("scanned, not parsed");
        assert!(matches!(
            document(&huge, 2),
            Err(DocumentError::MetadataInvalid { .. })
        ));
        let long = doc(json!({"id": "i".repeat(MAX_ID_BYTES + 1), "text": "x"}));
        assert!(matches!(
            document(&long, 2),
            Err(DocumentError::IdTooLong { .. })
        ));
        let big =
            doc(json!({"id": "a", "text": "x", "metadata": {"m": "x".repeat(MAX_METADATA_BYTES)}}));
        assert!(matches!(
            document(&big, 2),
            Err(DocumentError::MetadataTooLarge { .. })
        ));
    }

    #[test]
    fn labels_are_printable_and_bounded() {
        for good in [
            "nightly",
            "restic backup",
            "ctxd release -- rsync",
            "Sicherung über Nacht",
        ] {
            assert_eq!(label("holder", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a\nX_INJECTED=1",
            "a\rb",
            "tab\there",
            "nul\0",
            "\u{85}",
            "a\u{2028}b",
            "\u{202E}evil",
        ] {
            assert!(label("holder", bad).is_err(), "{bad:?}");
        }
        assert!(label("holder", &"x".repeat(MAX_LABEL_BYTES)).is_ok());
        assert!(label("holder", &"x".repeat(MAX_LABEL_BYTES + 1)).is_err());
        let message = label("holder", "a\nb").expect_err("refused").to_string();
        assert!(message.contains("U+000A"), "{message}");
    }
}
