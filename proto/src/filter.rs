//! Metadata filters: the `filter` parameter of `get`, `count`, `delete` and `search`.
//!
//! The syntax is ChromaDB's `where`:
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"genre": "poetry"}` | `genre` equals `"poetry"` |
//! | `{"year": {"$gte": 2020}}` | `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte` |
//! | `{"lang": {"$in": ["en", "de"]}}` | `$in`, `$nin` |
//! | `{"$and": [f1, f2]}`, `{"$or": [f1, f2]}` | combinations |
//!
//! An object with several keys means all of them (`{"a": 1, "b": 2}` = `$and`). A document that
//! lacks the field, or holds a value of another type, matches no comparison except `$ne` and
//! `$nin`.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// A parsed metadata filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every filter matches.
    And(Vec<Filter>),
    /// At least one filter matches.
    Or(Vec<Filter>),
    /// One field compared with a value.
    Field {
        /// The metadata key.
        field: String,
        /// How it is compared.
        op: Comparison,
    },
}

/// A comparison of one metadata field.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// `$eq` (also written as a bare value).
    Eq(Scalar),
    /// `$ne`.
    Ne(Scalar),
    /// `$gt`.
    Gt(Scalar),
    /// `$gte`.
    Gte(Scalar),
    /// `$lt`.
    Lt(Scalar),
    /// `$lte`.
    Lte(Scalar),
    /// `$in`: equals one of the values.
    In(Vec<Scalar>),
    /// `$nin`: equals none of the values.
    Nin(Vec<Scalar>),
}

/// A value a field is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` or `false`.
    Bool(bool),
    /// Any JSON number.
    Number(Number),
    /// Any string.
    String(String),
}

impl Comparison {
    fn operator(&self) -> &'static str {
        match self {
            Comparison::Eq(_) => "$eq",
            Comparison::Ne(_) => "$ne",
            Comparison::Gt(_) => "$gt",
            Comparison::Gte(_) => "$gte",
            Comparison::Lt(_) => "$lt",
            Comparison::Lte(_) => "$lte",
            Comparison::In(_) => "$in",
            Comparison::Nin(_) => "$nin",
        }
    }
}

const OPERATORS: &str = "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin";

impl Filter {
    /// Parses a filter from its JSON form; the error names the offending part.
    pub fn from_value(value: &Value) -> Result<Filter, String> {
        let object = value
            .as_object()
            .ok_or_else(|| format!("filter must be a JSON object, got {}", kind(value)))?;
        if object.is_empty() {
            return Err("filter object is empty".to_owned());
        }
        let mut parts = object
            .iter()
            .map(|(key, value)| Filter::from_entry(key, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn from_entry(key: &str, value: &Value) -> Result<Filter, String> {
        match key {
            "$and" | "$or" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| format!("`{key}` takes a list of filters"))?;
                if list.is_empty() {
                    return Err(format!("`{key}` needs at least one filter"));
                }
                let filters = list
                    .iter()
                    .map(Filter::from_value)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "$and" {
                    Filter::And(filters)
                } else {
                    Filter::Or(filters)
                })
            }
            _ if key.starts_with('$') => Err(format!(
                "`{key}` is not a filter combinator (use $and or $or, or a field name)"
            )),
            field => Ok(Filter::Field {
                field: field.to_owned(),
                op: Comparison::from_value(field, value)?,
            }),
        }
    }
}

impl Comparison {
    fn from_value(field: &str, value: &Value) -> Result<Comparison, String> {
        let Some(object) = value.as_object() else {
            return Ok(Comparison::Eq(scalar(field, value)?));
        };
        let mut entries = object.iter();
        let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
            return Err(format!(
                "the condition on `{field}` must hold exactly one operator ({OPERATORS})"
            ));
        };
        let single = || scalar(field, operand);
        let list = || -> Result<Vec<Scalar>, String> {
            operand
                .as_array()
                .ok_or_else(|| format!("`{operator}` on `{field}` takes a list of values"))?
                .iter()
                .map(|v| scalar(field, v))
                .collect()
        };
        Ok(match operator.as_str() {
            "$eq" => Comparison::Eq(single()?),
            "$ne" => Comparison::Ne(single()?),
            "$gt" => Comparison::Gt(single()?),
            "$gte" => Comparison::Gte(single()?),
            "$lt" => Comparison::Lt(single()?),
            "$lte" => Comparison::Lte(single()?),
            "$in" => Comparison::In(list()?),
            "$nin" => Comparison::Nin(list()?),
            other => {
                return Err(format!(
                    "`{other}` on `{field}` is not a supported operator (use {OPERATORS})"
                ));
            }
        })
    }
}

fn scalar(field: &str, value: &Value) -> Result<Scalar, String> {
    match value {
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => Ok(Scalar::Number(n.clone())),
        Value::String(s) => Ok(Scalar::String(s.clone())),
        other => Err(format!(
            "`{field}` is compared with {}; use a string, number or boolean",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Filter::And(parts) => map.serialize_entry("$and", parts)?,
            Filter::Or(parts) => map.serialize_entry("$or", parts)?,
            Filter::Field {
                field,
                op: Comparison::Eq(value),
            } => map.serialize_entry(field, value)?,
            Filter::Field { field, op } => {
                let mut condition = Map::new();
                let operand = match op {
                    Comparison::Eq(v)
                    | Comparison::Ne(v)
                    | Comparison::Gt(v)
                    | Comparison::Gte(v)
                    | Comparison::Lt(v)
                    | Comparison::Lte(v) => serde_json::to_value(v),
                    Comparison::In(list) | Comparison::Nin(list) => serde_json::to_value(list),
                }
                .map_err(serde::ser::Error::custom)?;
                condition.insert(op.operator().to_owned(), operand);
                map.serialize_entry(field, &condition)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Filter {
    /// Reads the filter as JSON text first, so one larger than [`MAX_FILTER_BYTES`](crate::limits::MAX_FILTER_BYTES) is refused
    /// before it is parsed into a tree.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = crate::bounded::filter_json(deserializer, "filter")?;
        Filter::from_value(&value).map_err(de::Error::custom)
    }
}
