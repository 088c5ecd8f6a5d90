//! Filters on a document's text: the `text_filter` parameter of `get`, `count`, `delete` and
//! `search` (added within protocol 1).
//!
//! The syntax is ChromaDB's `where_document`:
//!
//! | JSON | matches a document whose text |
//! |---|---|
//! | `{"$contains": "otter"}` | contains `otter` (case-sensitive, as a substring) |
//! | `{"$not_contains": "otter"}` | does not contain it, or that has no text |
//! | `{"$regex": "(?i)ott(er)?s?"}` | matches the regular expression (Rust `regex` syntax: no look-around or backreferences; matching time is linear) |
//! | `{"$not_regex": "…"}` | does not match it, or that has no text |
//! | `{"$and": [f1, f2]}`, `{"$or": [f1, f2]}` | combinations (one filter or more) |
//!
//! A document without text matches no `$contains` and no `$regex`. Combined with `filter`
//! (metadata), a document must match both. The daemon checks a `$regex` pattern before running
//! it: an invalid one is `bad_request` naming the error.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A parsed text filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextFilter {
    /// `$contains`: the text contains this substring.
    Contains(String),
    /// `$not_contains`: the text does not contain it (or there is no text).
    NotContains(String),
    /// `$regex`: the text matches this pattern.
    Regex(String),
    /// `$not_regex`: the text does not match it (or there is no text).
    NotRegex(String),
    /// `$and`: every filter matches.
    And(Vec<TextFilter>),
    /// `$or`: at least one filter matches.
    Or(Vec<TextFilter>),
}

const OPERATORS: &str = "$contains, $not_contains, $regex, $not_regex, $and, $or";

impl TextFilter {
    /// Parses a text filter from its JSON form; the error names the offending part.
    pub fn from_value(value: &Value) -> Result<TextFilter, String> {
        let object = value
            .as_object()
            .ok_or("a text filter must be a JSON object like {\"$contains\": \"word\"}")?;
        let mut entries = object.iter();
        let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "a text filter holds exactly one operator ({OPERATORS}); combine several with \
                 $and or $or"
            ));
        };
        let text = || -> Result<String, String> {
            match operand.as_str() {
                Some("") => Err(format!("`{operator}` needs a non-empty string")),
                Some(text) => Ok(text.to_owned()),
                None => Err(format!("`{operator}` takes a string")),
            }
        };
        let list = || -> Result<Vec<TextFilter>, String> {
            let list = operand
                .as_array()
                .ok_or_else(|| format!("`{operator}` takes a list of text filters"))?;
            if list.is_empty() {
                return Err(format!("`{operator}` needs at least one text filter"));
            }
            list.iter().map(TextFilter::from_value).collect()
        };
        Ok(match operator.as_str() {
            "$contains" => TextFilter::Contains(text()?),
            "$not_contains" => TextFilter::NotContains(text()?),
            "$regex" => TextFilter::Regex(text()?),
            "$not_regex" => TextFilter::NotRegex(text()?),
            "$and" => TextFilter::And(list()?),
            "$or" => TextFilter::Or(list()?),
            other => {
                return Err(format!(
                    "`{other}` is not a text filter operator (use {OPERATORS})"
                ));
            }
        })
    }

    fn operator(&self) -> &'static str {
        match self {
            TextFilter::Contains(_) => "$contains",
            TextFilter::NotContains(_) => "$not_contains",
            TextFilter::Regex(_) => "$regex",
            TextFilter::NotRegex(_) => "$not_regex",
            TextFilter::And(_) => "$and",
            TextFilter::Or(_) => "$or",
        }
    }
}

impl Serialize for TextFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            TextFilter::Contains(text)
            | TextFilter::NotContains(text)
            | TextFilter::Regex(text)
            | TextFilter::NotRegex(text) => map.serialize_entry(self.operator(), text)?,
            TextFilter::And(parts) | TextFilter::Or(parts) => {
                map.serialize_entry(self.operator(), parts)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TextFilter {
    /// Reads the filter as JSON text first, so one larger than [`MAX_FILTER_BYTES`](crate::limits::MAX_FILTER_BYTES) is refused
    /// before it is parsed into a tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = crate::bounded::filter_json(deserializer, "text filter")?;
        TextFilter::from_value(&value).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chroma_where_document_forms_parse_and_print_back() {
        for value in [
            json!({"$contains": "otter"}),
            json!({"$not_contains": "otter"}),
            json!({"$regex": "(?i)^ott"}),
            json!({"$not_regex": "x+"}),
            json!({"$and": [{"$contains": "a"}, {"$or": [{"$regex": "b"}, {"$not_contains": "c"}]}]}),
        ] {
            let filter: TextFilter = serde_json::from_value(value.clone()).expect("parses");
            assert_eq!(serde_json::to_value(&filter).expect("prints"), value);
        }
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        for (value, wanted) in [
            (json!({"$foo": "x"}), "not a text filter operator"),
            (json!({"$contains": 3}), "takes a string"),
            (json!({"$contains": ""}), "non-empty"),
            (json!({"$and": []}), "at least one"),
            (
                json!({"$contains": "a", "$regex": "b"}),
                "exactly one operator",
            ),
            (json!({}), "exactly one operator"),
            (json!("otter"), "JSON object"),
        ] {
            let error = TextFilter::from_value(&value).expect_err("refused");
            assert!(error.contains(wanted), "{value}: {error}");
        }
    }
}
