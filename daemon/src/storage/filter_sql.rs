//! Metadata filters compiled to SQL, and evaluated in Rust.
//!
//! [`compile`] turns a [`Filter`] into a SQL boolean expression over the JSON text of a
//! document's metadata; [`matches`] evaluates the same filter on parsed metadata; the two agree
//! on every document (the tests check this over a varied corpus).
//!
//! # Semantics
//!
//! A field is looked up by its exact name: any UTF-8 string is a plain key (`a.b`, `$x`, `[0]`,
//! quotes, spaces and `\0` are never read as a path or syntax). Each comparison looks at the
//! values the field holds: its value, or every element when it holds a list.
//!
//! - **Equality** (`{"f": v}` or `{"f": {"$eq": v}}`): true when a value has the same JSON type
//!   as `v` and is equal to it. Numbers compare numerically (`1` equals `1.0`), strings byte for
//!   byte, booleans as booleans. `true` never equals `1`, and `"1"` never equals `1`.
//! - **`$ne`**: the negation of `$eq`. A document without the field (or without metadata), with a
//!   value of another type, or with a list holding no equal element matches.
//! - **`$gt`, `$gte`, `$lt`, `$lte`**: numbers against numbers numerically, strings against
//!   strings byte-wise (UTF-8 byte order, which is Unicode code point order; `"B" < "a"`). A value
//!   of another type or a missing field never matches; a list matches when any element does.
//!   Ordering with a boolean operand is an error.
//! - **`$in`**: true when a value equals one of the listed values (typed as for `$eq`). An empty
//!   list matches nothing.
//! - **`$nin`**: the negation of `$in`; an empty list matches every document.
//! - **`$and`**, **`$or`**, and an object with several keys (an `$and`): as usual.
//!
//! A filter holds at most 1000 comparisons (an `$in` or `$nin` list, however long, is one) and
//! nests `$and`/`$or` at most 100 levels deep.
//!
//! Numbers are compared as SQLite compares them: an integer that fits in 64 signed bits stays
//! exact, any other number is a double (so integers beyond 2^63 compare as the nearest double),
//! and an integer is compared with a double exactly.
//!
//! Values outside the metadata contract (nulls, nested lists, objects) are handled consistently
//! by both evaluators: `null` and nested lists equal nothing, and an object is treated like a
//! list of its member values.

use ctxd_proto::{Comparison, Filter, Scalar};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// A filter as a SQL boolean expression over the `metadata` column, with its parameters.
///
/// `sql` uses only anonymous `?` placeholders, one per element of `params`, in order. SQLite
/// numbers an anonymous `?` one above the highest parameter number seen before it in the
/// statement text, so the caller embeds `sql` (in parentheses) anywhere in its statement and
/// binds, in text order: its own parameters that come before the filter, then `params`, then
/// its own parameters that come after it. Its own placeholders before the filter may be
/// anonymous `?` or numbered `?1..?k` where `k` is the count of its leading parameters; after
/// the filter it must use anonymous `?` only. For example:
///
/// ```text
/// SELECT key FROM documents d WHERE d.collection = ? AND (<sql>) LIMIT ?
/// params: [collection, filter.params..., limit]
/// ```
///
/// `sql` depends only on the filter's shape (fields, operators, which types an `$in` list
/// holds), never on its values, so `prepare_cached` reuses statements across values.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// The boolean expression; always 0 or 1, never NULL.
    pub sql: String,
    /// The values of its `?` placeholders, in order.
    pub params: Vec<SqlValue>,
}

/// Compiles `filter`; `column` is the SQL expression of the metadata JSON text (e.g.
/// "d.metadata").
///
/// `column` is pasted into the SQL several times: it must be trusted SQL without side effects,
/// normally a column reference. It must hold JSON text (an object) or NULL; NULL means no
/// metadata. Not JSONB: a guard scans the text with GLOB, which stops at a zero byte, and
/// JSONB headers may hold some.
///
/// Errors (a message naming the field) for filters that are well-formed JSON but invalid, e.g.
/// ordering on booleans; see [`validate`].
pub fn compile(filter: &Filter, column: &str) -> Result<SqlFilter, String> {
    validate(filter)?;
    // SQLite's JSON path lookup (`$."key"`) compares object labels with an escape-decoding loop
    // that stops at the first U+0000: the path `$."a"` also finds a label "a\u0000x". So path
    // lookups are exact only for documents whose metadata holds no escaped NUL. Those (rare)
    // documents take an exact but slower form that scans the object's keys. The guard is one
    // byte scan per row, cheaper than the key scan for every row. JSON can only carry a NUL as
    // the escape `\u0000` (a raw control character is invalid), and GLOB is case-sensitive and
    // has no special characters in this pattern; a string containing a literal `\u0000` merely
    // takes the slow form too.
    let mut out = SqlFilter {
        sql: String::new(),
        params: Vec::new(),
    };
    let _ = write!(out.sql, "CASE WHEN {column} GLOB '*\\u0000*' THEN ");
    emit(filter, column, Lookup::ByKey, &mut out)?;
    out.sql.push_str(" ELSE ");
    emit(filter, column, Lookup::ByPath, &mut out)?;
    out.sql.push_str(" END");
    Ok(out)
}

/// The same semantics evaluated in Rust on a document's metadata (None = no metadata).
///
/// An invalid comparison (see [`validate`]) matches nothing; call [`validate`] first to report
/// it instead.
#[allow(
    dead_code,
    reason = "for callers holding parsed metadata (and the tests' cross-check); not every caller exists yet"
)]
pub fn matches(filter: &Filter, metadata: Option<&Map<String, Value>>) -> bool {
    match filter {
        Filter::And(parts) => parts.iter().all(|part| matches(part, metadata)),
        Filter::Or(parts) => parts.iter().any(|part| matches(part, metadata)),
        Filter::Field { field, op } => {
            let value = metadata.and_then(|m| m.get(field));
            match op {
                Comparison::Eq(operand) => any_value(value, |v| equals(v, operand)),
                Comparison::Ne(operand) => !any_value(value, |v| equals(v, operand)),
                Comparison::Gt(operand) => {
                    any_value(value, |v| ordered(v, operand, Ordering::is_gt))
                }
                Comparison::Gte(operand) => {
                    any_value(value, |v| ordered(v, operand, Ordering::is_ge))
                }
                Comparison::Lt(operand) => {
                    any_value(value, |v| ordered(v, operand, Ordering::is_lt))
                }
                Comparison::Lte(operand) => {
                    any_value(value, |v| ordered(v, operand, Ordering::is_le))
                }
                Comparison::In(list) => any_value(value, |v| list.iter().any(|s| equals(v, s))),
                Comparison::Nin(list) => !any_value(value, |v| list.iter().any(|s| equals(v, s))),
            }
        }
    }
}

/// Validates without compiling (same errors as `compile`).
pub fn validate(filter: &Filter) -> Result<(), String> {
    let mut comparisons = 0;
    check(filter, 1, &mut comparisons)?;
    if comparisons > MAX_COMPARISONS {
        return Err(format!(
            "the filter holds {comparisons} comparisons; at most {MAX_COMPARISONS} are allowed"
        ));
    }
    Ok(())
}

/// At most this many field comparisons in one filter. Each costs a few SQL parameters (SQLite
/// allows 32766 per statement) and one JSON parse per row; `$in` lists of any length count
/// once.
const MAX_COMPARISONS: usize = 1000;

/// At most this many levels of `$and`/`$or` nesting (a filter parsed from a request cannot get
/// near it: serde_json stops at 128 levels of JSON, two per level of filter). It bounds the
/// recursion here and keeps the SQL expression well under SQLite's depth limit of 1000.
const MAX_DEPTH: usize = 100;

fn check(filter: &Filter, depth: usize, comparisons: &mut usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the filter nests `$and`/`$or` more than {MAX_DEPTH} levels deep"
        ));
    }
    match filter {
        Filter::And(parts) | Filter::Or(parts) => parts
            .iter()
            .try_for_each(|part| check(part, depth + 1, comparisons)),
        Filter::Field { field, op } => {
            *comparisons += 1;
            let operands: &[Scalar] = match op {
                Comparison::Eq(s)
                | Comparison::Ne(s)
                | Comparison::Gt(s)
                | Comparison::Gte(s)
                | Comparison::Lt(s)
                | Comparison::Lte(s) => std::slice::from_ref(s),
                Comparison::In(list) | Comparison::Nin(list) => list,
            };
            for operand in operands {
                match operand {
                    Scalar::Bool(_) => {
                        if let Some(operator) = ordering_operator(op) {
                            return Err(format!(
                                "`{operator}` on `{field}` needs a number or a string, not a boolean"
                            ));
                        }
                    }
                    Scalar::Number(n) => {
                        if SqlNum::of(n).is_none() {
                            return Err(format!(
                                "`{field}` is compared with an unusable number {n}"
                            ));
                        }
                    }
                    Scalar::String(_) => {}
                }
            }
            Ok(())
        }
    }
}

fn ordering_operator(op: &Comparison) -> Option<&'static str> {
    match op {
        Comparison::Gt(_) => Some("$gt"),
        Comparison::Gte(_) => Some("$gte"),
        Comparison::Lt(_) => Some("$lt"),
        Comparison::Lte(_) => Some("$lte"),
        Comparison::Eq(_) | Comparison::Ne(_) | Comparison::In(_) | Comparison::Nin(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Rust evaluation

/// Whether `test` holds for the field's value or, for a list (or object), for any element.
fn any_value(value: Option<&Value>, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(test),
        // Mirrors `json_each`, which iterates an object's member values.
        Some(Value::Object(members)) => members.values().any(test),
        Some(v) => test(v),
    }
}

/// How a metadata value orders against an operand of the same type; `None` across types (and
/// for nulls, lists and objects, which compare with nothing).
fn compare(value: &Value, operand: &Scalar) -> Option<Ordering> {
    match (value, operand) {
        (Value::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Scalar::Number(b)) => SqlNum::of(a)?.compare(SqlNum::of(b)?),
        (Value::String(a), Scalar::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        _ => None,
    }
}

fn equals(value: &Value, operand: &Scalar) -> bool {
    compare(value, operand) == Some(Ordering::Equal)
}

fn ordered(value: &Value, operand: &Scalar, accept: fn(Ordering) -> bool) -> bool {
    // Booleans have no order (validation rejects the filter).
    !matches!(operand, Scalar::Bool(_)) && compare(value, operand).is_some_and(accept)
}

/// A JSON number as SQLite holds it: a 64-bit integer when it fits, else a double.
#[derive(Debug, Clone, Copy)]
enum SqlNum {
    Int(i64),
    Real(f64),
}

impl SqlNum {
    fn of(n: &Number) -> Option<SqlNum> {
        if let Some(i) = n.as_i64() {
            Some(SqlNum::Int(i))
        } else if let Some(u) = n.as_u64() {
            // Beyond i64::MAX SQLite's JSON reader converts to the nearest double, as this does.
            Some(SqlNum::Real(u as f64))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(SqlNum::Real)
        }
    }

    fn to_sql(self) -> SqlValue {
        match self {
            SqlNum::Int(i) => SqlValue::Integer(i),
            SqlNum::Real(f) => SqlValue::Real(f),
        }
    }

    /// SQLite's numeric comparison: exact between integers and doubles.
    fn compare(self, other: SqlNum) -> Option<Ordering> {
        match (self, other) {
            (SqlNum::Int(a), SqlNum::Int(b)) => Some(a.cmp(&b)),
            (SqlNum::Real(a), SqlNum::Real(b)) => a.partial_cmp(&b),
            (SqlNum::Int(a), SqlNum::Real(b)) => int_real(a, b),
            (SqlNum::Real(a), SqlNum::Int(b)) => int_real(b, a).map(Ordering::reverse),
        }
    }
}

/// Compares an integer with a double exactly (as `sqlite3IntFloatCompare` does).
fn int_real(i: i64, r: f64) -> Option<Ordering> {
    if r.is_nan() {
        return None;
    }
    // 2^63 is exact as a double; every i64 lies in [-2^63, 2^63).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if r < -TWO_63 {
        return Some(Ordering::Greater);
    }
    if r >= TWO_63 {
        return Some(Ordering::Less);
    }
    // In range, truncation is exact, and so is converting the truncated value back: a double of
    // magnitude ≥ 2^53 is already an integer, and below that every integer is representable.
    let t = r as i64;
    match i.cmp(&t) {
        // The fraction decides (`partial_cmp`, unlike `total_cmp`, has -0.0 equal to 0).
        Ordering::Equal => (t as f64).partial_cmp(&r),
        unequal => Some(unequal),
    }
}

// ---------------------------------------------------------------------------------------------
// SQL generation

/// Table aliases unlikely to collide with the caller's (`column` is resolved inside our
/// subqueries, so an alias of ours named like the caller's table would capture it).
const ELEM: &str = "ctxd_fe";
const MEMBER: &str = "ctxd_fm";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lookup {
    /// `json_each(column, '$."key"')`: one JSON parse, the fastest form; exact unless the
    /// document has a label holding U+0000 (see [`compile`]).
    ByPath,
    /// `json_each(column)` filtered on `key = ?`: exact for every document.
    ByKey,
}

fn emit(filter: &Filter, column: &str, lookup: Lookup, out: &mut SqlFilter) -> Result<(), String> {
    match filter {
        Filter::And(parts) | Filter::Or(parts) if parts.is_empty() => {
            // Not produced by the parser; the neutral element of each combinator.
            out.sql.push_str(if matches!(filter, Filter::And(_)) {
                "1"
            } else {
                "0"
            });
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            emit_balanced(parts, joiner, column, lookup, out)?;
        }
        Filter::Field { field, op } => {
            let (negate, predicate) = match op {
                Comparison::Eq(s) => (false, Predicate::compare("=", s)?),
                Comparison::Ne(s) => (true, Predicate::compare("=", s)?),
                Comparison::Gt(s) => (false, Predicate::compare(">", s)?),
                Comparison::Gte(s) => (false, Predicate::compare(">=", s)?),
                Comparison::Lt(s) => (false, Predicate::compare("<", s)?),
                Comparison::Lte(s) => (false, Predicate::compare("<=", s)?),
                Comparison::In(list) => (false, Predicate::one_of(list)?),
                Comparison::Nin(list) => (true, Predicate::one_of(list)?),
            };
            let Some(predicate) = predicate else {
                // An empty `$in` (or `$nin`) list.
                out.sql.push_str(if negate { "1" } else { "0" });
                return Ok(());
            };
            if negate {
                out.sql.push_str("NOT ");
            }
            // A key holding NUL cannot be written in a path (SQLite reads paths as C strings).
            if lookup == Lookup::ByPath && !field.contains('\0') {
                // On a scalar, json_each yields the value itself as its single row; on a list,
                // one row per element: both cases in one subquery and one parse.
                let _ = write!(
                    out.sql,
                    "EXISTS (SELECT 1 FROM json_each({column}, ?) AS {ELEM} WHERE "
                );
                out.params.push(SqlValue::Text(json_path(field)));
                predicate.emit(ELEM, out);
                out.sql.push(')');
            } else {
                let _ = write!(
                    out.sql,
                    "EXISTS (SELECT 1 FROM json_each({column}) AS {MEMBER} WHERE {MEMBER}.key = ? \
                     AND CASE WHEN {MEMBER}.type IN ('array', 'object') THEN EXISTS (SELECT 1 \
                     FROM json_each({MEMBER}.value) AS {ELEM} WHERE "
                );
                out.params.push(SqlValue::Text(field.clone()));
                predicate.emit(ELEM, out);
                out.sql.push_str(") ELSE ");
                predicate.emit(MEMBER, out);
                out.sql.push_str(" END)");
            }
        }
    }
    Ok(())
}

/// Joins `parts` (at least one) as a balanced tree of parenthesized pairs: SQLite parses
/// `a AND b AND c ...` as a left-deep tree, one level per operand, and refuses expressions
/// deeper than 1000; balanced, a wide list costs log2(n) levels.
fn emit_balanced(
    parts: &[Filter],
    joiner: &str,
    column: &str,
    lookup: Lookup,
    out: &mut SqlFilter,
) -> Result<(), String> {
    match parts {
        [single] => emit(single, column, lookup, out),
        _ => {
            let (left, right) = parts.split_at(parts.len() / 2);
            out.sql.push('(');
            emit_balanced(left, joiner, column, lookup, out)?;
            out.sql.push_str(joiner);
            emit_balanced(right, joiner, column, lookup, out)?;
            out.sql.push(')');
            Ok(())
        }
    }
}

/// The JSON path of the top-level member `key`: `$."key"` with `"` and `\` escaped. SQLite
/// reads the quoted label up to the first unescaped `"` and, when the label holds a backslash,
/// decodes JSON escapes before comparing, so this addresses exactly `key` (which must hold no
/// NUL) whatever other characters (`.`, `[`, `$`, spaces, Unicode) it holds.
fn json_path(key: &str) -> String {
    let mut path = String::with_capacity(key.len() + 4);
    path.push_str("$.\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            path.push('\\');
        }
        path.push(c);
    }
    path.push('"');
    path
}

/// A test on one JSON value given as the `type` and `value` columns of a `json_each` row.
/// `json_each` reports booleans as type `true`/`false` with value 1/0, so every test checks the
/// type before the value: that keeps `true` from equalling `1` and a list's JSON text from
/// equalling a string.
enum Predicate {
    /// `type` is one of `types` and `value <op> param`.
    Compare {
        types: &'static str,
        op: &'static str,
        param: SqlValue,
    },
    /// Any of: a number among `numbers`, a string among `strings` (each a JSON array text bound
    /// as one parameter, so a long list costs one placeholder), or a listed boolean.
    OneOf {
        numbers: Option<String>,
        strings: Option<String>,
        booleans: &'static str,
    },
}

const NUMBER_TYPES: &str = "'integer', 'real'";
const TEXT_TYPE: &str = "'text'";

impl Predicate {
    fn compare(op: &'static str, operand: &Scalar) -> Result<Option<Predicate>, String> {
        Ok(Some(match operand {
            Scalar::Bool(b) => Predicate::OneOf {
                numbers: None,
                strings: None,
                booleans: if *b { "'true'" } else { "'false'" },
            },
            Scalar::Number(n) => Predicate::Compare {
                types: NUMBER_TYPES,
                op,
                param: SqlNum::of(n)
                    .ok_or_else(|| format!("unusable number {n}"))?
                    .to_sql(),
            },
            Scalar::String(s) => Predicate::Compare {
                types: TEXT_TYPE,
                op,
                param: SqlValue::Text(s.clone()),
            },
        }))
    }

    /// `None` for an empty list.
    fn one_of(list: &[Scalar]) -> Result<Option<Predicate>, String> {
        if list.is_empty() {
            return Ok(None);
        }
        let numbers: Vec<&Number> = list
            .iter()
            .filter_map(|s| match s {
                Scalar::Number(n) => Some(n),
                _ => None,
            })
            .collect();
        let strings: Vec<&str> = list
            .iter()
            .filter_map(|s| match s {
                Scalar::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        let has = |b: bool| list.contains(&Scalar::Bool(b));
        // SQLite parses these numbers back exactly as it parses the documents' numbers, which
        // serde_json wrote the same way (shortest round-trip form, ≤ 17 digits, which SQLite's
        // reader rounds correctly), so `$in` and `$eq` agree.
        Ok(Some(Predicate::OneOf {
            numbers: if numbers.is_empty() {
                None
            } else {
                Some(json_list(&numbers)?)
            },
            strings: if strings.is_empty() {
                None
            } else {
                Some(json_list(&strings)?)
            },
            booleans: match (has(true), has(false)) {
                (true, true) => "'true', 'false'",
                (true, false) => "'true'",
                (false, true) => "'false'",
                (false, false) => "",
            },
        }))
    }

    /// Writes the test on the row of table alias `row`.
    fn emit(&self, row: &str, out: &mut SqlFilter) {
        match self {
            Predicate::Compare { types, op, param } => {
                let _ = write!(out.sql, "({row}.type IN ({types}) AND {row}.value {op} ?)");
                out.params.push(param.clone());
            }
            Predicate::OneOf {
                numbers,
                strings,
                booleans,
            } => {
                let mut terms = Vec::with_capacity(3);
                for (types, list) in [(NUMBER_TYPES, numbers), (TEXT_TYPE, strings)] {
                    if let Some(list) = list {
                        terms.push(format!(
                            "({row}.type IN ({types}) AND {row}.value IN (SELECT value FROM json_each(?)))"
                        ));
                        out.params.push(SqlValue::Text(list.clone()));
                    }
                }
                if !booleans.is_empty() {
                    terms.push(format!("{row}.type IN ({booleans})"));
                }
                let _ = write!(out.sql, "({})", terms.join(" OR "));
            }
        }
    }
}

/// JSON text of a list of operands, for binding as one parameter.
fn json_list<T: serde::Serialize>(list: &[T]) -> Result<String, String> {
    serde_json::to_string(list).map_err(|e| format!("cannot encode an `$in` list: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, params, params_from_iter};
    use serde_json::json;
    use std::collections::BTreeSet;

    type Doc = (i64, Option<Map<String, Value>>);

    /// Keys that a naive JSON path would misread, all held by document 34.
    const NASTY: &[(&str, i64)] = &[
        ("a\"b", 1),
        ("$x", 2),
        ("[0]", 3),
        ("é 🙂", 4),
        (" ", 5),
        ("", 6),
        ("a\\b", 7),
        ("$", 8),
        ("'", 9),
        ("a[0]", 10),
        ("\n", 11),
        ("a.b\"", 12),
        ("\\\"", 13),
        ("$.\"a\"", 14),
    ];

    fn corpus() -> Vec<Doc> {
        let mut nasty = Map::new();
        for (key, value) in NASTY {
            nasty.insert((*key).to_owned(), json!(value));
        }
        let docs: Vec<Option<Value>> = vec![
            None,                                                                         // 1
            Some(json!({})),                                                              // 2
            Some(json!({"n": 1})),                                                        // 3
            Some(json!({"n": 1.0})),                                                      // 4
            Some(json!({"n": 2})),                                                        // 5
            Some(json!({"n": -3})),                                                       // 6
            Some(json!({"n": 2.5})),                                                      // 7
            Some(json!({"n": 0})),                                                        // 8
            Some(json!({"n": true})),                                                     // 9
            Some(json!({"n": false})),                                                    // 10
            Some(json!({"n": "1"})),                                                      // 11
            Some(json!({"n": "abc"})),                                                    // 12
            Some(json!({"s": "abc"})),                                                    // 13
            Some(json!({"s": "abd"})),                                                    // 14
            Some(json!({"s": "ABC"})),                                                    // 15
            Some(json!({"s": ""})),                                                       // 16
            Some(json!({"s": "é 🙂"})),                                                   // 17
            Some(json!({"s": "a"})),                                                      // 18
            Some(json!({"s": "abc", "n": 10})),                                           // 19
            Some(json!({"b": true})),                                                     // 20
            Some(json!({"b": false})),                                                    // 21
            Some(json!({"b": 1})),                                                        // 22
            Some(json!({"b": "true"})),                                                   // 23
            Some(json!({"tags": ["x", "y"]})),                                            // 24
            Some(json!({"tags": ["y", "z"]})),                                            // 25
            Some(json!({"tags": []})),                                                    // 26
            Some(json!({"tags": "x"})),                                                   // 27
            Some(json!({"arr": [1, 5, 10]})),                                             // 28
            Some(json!({"arr": [-1, 2.5]})),                                              // 29
            Some(json!({"arr": ["1", 1, true]})),                                         // 30
            Some(json!({"arr": [true]})),                                                 // 31
            Some(json!({"arr": [[1], "x"]})), // 32: a nested list (outside the contract)
            Some(json!({"a": 1, "a.b": 2})),  // 33
            Some(Value::Object(nasty)),       // 34
            Some(json!({"a\u{0}x": 8})),      // 35: `$."a"` would find this label
            Some(json!({"a": 9, "a\u{0}": 10})), // 36
            Some(json!({"big": u64::MAX, "n": 9_007_199_254_740_993_i64})), // 37
            Some(json!({"n": 9_007_199_254_740_992.0, "s": "abc\u{0}def"})), // 38
            Some(json!({"n": -0.0, "s": "'); DROP TABLE documents; --"})), // 39
            Some(json!({"n": 0.1, "s": "B"})), // 40
            Some(json!({"tags": ["x", "x"], "n": [1, "1"]})), // 41
            Some(json!({"n": 1e300, "t": null})), // 42: a null (outside the contract)
            Some(json!({"n": i64::MIN, "m": -9_223_372_036_854_775_809.0})), // 43
            Some(json!({"n": 0.3, "m": 1.0e-300, "s": "\u{10FFFF}"})), // 44
            Some(json!({"n": 123_456.789, "m": 2.2250738585072014e-308, "s": "a\\\"b"})), // 45
            Some(json!({"obj": {"k": 1}})),   // 46: an object (outside the contract)
        ];
        docs.into_iter()
            .enumerate()
            .map(|(i, doc)| {
                let map = doc.map(|v| match v {
                    Value::Object(m) => m,
                    other => panic!("not an object: {other}"),
                });
                (i as i64 + 1, map)
            })
            .collect()
    }

    fn database(docs: &[Doc]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE documents (key INTEGER PRIMARY KEY, metadata TEXT)")
            .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO documents (key, metadata) VALUES (?1, ?2)")
            .unwrap();
        for (key, metadata) in docs {
            let text = metadata.as_ref().map(|m| serde_json::to_string(m).unwrap());
            insert.execute(params![key, text]).unwrap();
        }
        drop(insert);
        conn
    }

    fn sql_keys(conn: &Connection, filter: &Filter) -> BTreeSet<i64> {
        run(conn, compile(filter, "d.metadata").unwrap())
    }

    fn run(conn: &Connection, compiled: SqlFilter) -> BTreeSet<i64> {
        assert_eq!(
            compiled.sql.matches('?').count(),
            compiled.params.len(),
            "one parameter per placeholder in {}",
            compiled.sql
        );
        let sql = format!("SELECT key FROM documents d WHERE ({})", compiled.sql);
        let mut select = conn.prepare(&sql).unwrap();
        select
            .query_map(params_from_iter(compiled.params), |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn rust_keys(docs: &[Doc], filter: &Filter) -> BTreeSet<i64> {
        docs.iter()
            .filter(|(_, m)| matches(filter, m.as_ref()))
            .map(|(k, _)| *k)
            .collect()
    }

    fn parse(value: Value) -> Filter {
        Filter::from_value(&value).unwrap()
    }

    fn field(name: &str, op: Comparison) -> Filter {
        Filter::Field {
            field: name.to_owned(),
            op,
        }
    }

    fn scalar(value: Value) -> Scalar {
        serde_json::from_value(value).unwrap()
    }

    fn all_keys(docs: &[Doc]) -> BTreeSet<i64> {
        docs.iter().map(|(k, _)| *k).collect()
    }

    /// Asserts that SQL and Rust agree on `filter`, and returns the selection.
    fn check(conn: &Connection, docs: &[Doc], filter: &Filter) -> BTreeSet<i64> {
        let sql = sql_keys(conn, filter);
        let rust = rust_keys(docs, filter);
        assert_eq!(sql, rust, "SQL and Rust disagree on {filter:?}");
        // The exact form alone (which `compile` uses only for the few documents holding a NUL)
        // must be right on every document too.
        let mut by_key = SqlFilter {
            sql: String::new(),
            params: Vec::new(),
        };
        emit(filter, "d.metadata", Lookup::ByKey, &mut by_key).unwrap();
        let by_key = run(conn, by_key);
        assert_eq!(by_key, rust, "the by-key form disagrees on {filter:?}");
        sql
    }

    #[test]
    fn hand_checked_selections() {
        let docs = corpus();
        let conn = database(&docs);
        let all = all_keys(&docs);
        let but = |out: &[i64]| -> BTreeSet<i64> {
            all.iter().copied().filter(|k| !out.contains(k)).collect()
        };
        let cases: Vec<(Value, BTreeSet<i64>)> = vec![
            // Equality is typed: true is not 1, "1" is not 1; 1 equals 1.0; lists match any.
            (json!({"n": 1}), [3, 4, 41].into()),
            (json!({"n": 1.0}), [3, 4, 41].into()),
            (json!({"n": {"$eq": 1}}), [3, 4, 41].into()),
            (json!({"n": {"$ne": 1}}), but(&[3, 4, 41])),
            (json!({"n": true}), [9].into()),
            (json!({"n": false}), [10].into()),
            (json!({"n": "1"}), [11, 41].into()),
            (json!({"n": "abc"}), [12].into()),
            (json!({"n": 0}), [8, 39].into()),
            (json!({"b": 1}), [22].into()),
            (json!({"b": true}), [20].into()),
            (json!({"b": {"$ne": true}}), but(&[20])),
            (json!({"b": "true"}), [23].into()),
            (json!({"b": false}), [21].into()),
            // Ordering: numbers numerically, strings byte-wise, other types never.
            (json!({"n": {"$gt": 2}}), [7, 19, 37, 38, 42, 45].into()),
            (json!({"n": {"$gte": 2}}), [5, 7, 19, 37, 38, 42, 45].into()),
            (json!({"n": {"$lt": 0}}), [6, 43].into()),
            (json!({"n": {"$lte": 0}}), [6, 8, 39, 43].into()),
            (json!({"n": {"$lt": "b"}}), [11, 12, 41].into()),
            (json!({"s": {"$gt": "abc"}}), [14, 17, 38, 44].into()),
            (
                json!({"s": {"$gte": "a"}}),
                [13, 14, 17, 18, 19, 38, 44, 45].into(),
            ),
            (json!({"s": {"$lt": "a"}}), [15, 16, 39, 40].into()),
            (json!({"s": "abc"}), [13, 19].into()),
            (json!({"s": "abc\u{0}def"}), [38].into()),
            (json!({"s": {"$in": ["abc"]}}), [13, 19].into()),
            (
                json!({"s": {"$in": ["abc\u{0}def", "a\\\"b"]}}),
                [38, 45].into(),
            ),
            (json!({"s": "a\\\"b"}), [45].into()),
            (json!({"s": "\u{10FFFF}"}), [44].into()),
            // Lists.
            (json!({"tags": "x"}), [24, 27, 41].into()),
            (json!({"tags": {"$ne": "x"}}), but(&[24, 27, 41])),
            (json!({"tags": {"$in": ["z", "q"]}}), [25].into()),
            (
                json!({"tags": {"$nin": ["x", "y"]}}),
                but(&[24, 25, 27, 41]),
            ),
            (json!({"arr": 1}), [28, 30].into()),
            (json!({"arr": true}), [30, 31].into()),
            (json!({"arr": "1"}), [30].into()),
            (json!({"arr": "x"}), [32].into()),
            (json!({"arr": {"$gt": 2}}), [28, 29].into()),
            (json!({"arr": {"$lt": 0}}), [29].into()),
            // $in / $nin.
            (json!({"n": {"$in": []}}), [].into()),
            (json!({"n": {"$nin": []}}), all.clone()),
            (
                json!({"n": {"$in": [1, "abc", false]}}),
                [3, 4, 10, 12, 41].into(),
            ),
            (
                json!({"n": {"$nin": [1, "abc", false]}}),
                but(&[3, 4, 10, 12, 41]),
            ),
            (json!({"n": {"$in": [2.5, 0]}}), [7, 8, 39].into()),
            // Combinations.
            (
                json!({"$or": [{"s": "abc"}, {"b": true}]}),
                [13, 19, 20].into(),
            ),
            (json!({"s": "abc", "n": 10}), [19].into()),
            (
                json!({"$and": [{"n": {"$gte": 1}}, {"n": {"$lte": 2}}]}),
                [3, 4, 5, 41].into(),
            ),
            (
                json!({"$or": [{"$and": [{"s": "abc"}, {"n": {"$ne": 10}}]}, {"tags": "z"}]}),
                [13, 25].into(),
            ),
            // Keys are exact: "a" is not "a\0x", "a.b" is not a path.
            (json!({"a": 8}), [].into()),
            (json!({"a": {"$ne": 8}}), all.clone()),
            (json!({"a": 9}), [36].into()),
            (json!({"a": 1}), [33].into()),
            (json!({"a.b": 2}), [33].into()),
            (json!({"a\u{0}x": 8}), [35].into()),
            (json!({"a\u{0}": 10}), [36].into()),
            (json!({"a\u{0}": 9}), [].into()),
            // Large and exact numbers.
            (json!({"big": u64::MAX}), [37].into()),
            (json!({"big": u64::MAX - 1}), [37].into()),
            (json!({"big": 18_446_744_073_709_551_616.0}), [37].into()),
            (json!({"n": 9_007_199_254_740_993_i64}), [37].into()),
            (json!({"n": 9_007_199_254_740_992_i64}), [38].into()),
            (
                json!({"n": {"$gt": 9_007_199_254_740_992.0}}),
                [37, 42].into(),
            ),
            (json!({"n": i64::MIN}), [43].into()),
            (json!({"m": i64::MIN}), [43].into()),
            (json!({"m": {"$gt": i64::MIN}}), [44, 45].into()),
            (json!({"n": 0.3}), [44].into()),
            (json!({"big": {"$in": [u64::MAX - 1, "x"]}}), [37].into()),
            (
                json!({"n": {"$in": [1e300, 0.3, 9_007_199_254_740_993_i64, -0.0]}}),
                [8, 37, 39, 42, 44].into(),
            ),
            (
                json!({"m": {"$in": [i64::MIN, 2.2250738585072014e-308]}}),
                [43, 45].into(),
            ),
            (json!({"n": 1e300}), [42].into()),
            (json!({"m": 2.2250738585072014e-308}), [45].into()),
            // Out-of-contract values: null equals nothing, an object acts as a list.
            (json!({"t": {"$ne": "x"}}), all.clone()),
            (json!({"t": {"$in": ["null", 0, false]}}), [].into()),
            (json!({"obj": 1}), [46].into()),
        ];
        for (filter, expected) in cases {
            let parsed = parse(filter.clone());
            assert_eq!(check(&conn, &docs, &parsed), expected, "filter {filter}");
        }
    }

    #[test]
    fn nasty_keys_address_exactly_that_key() {
        let docs = corpus();
        let conn = database(&docs);
        let all = all_keys(&docs);
        for (key, value) in NASTY {
            let eq = field(key, Comparison::Eq(scalar(json!(value))));
            assert_eq!(check(&conn, &docs, &eq), [34].into(), "key {key:?}");
            let ne = field(key, Comparison::Ne(scalar(json!(value))));
            assert_eq!(check(&conn, &docs, &ne), &all - &[34].into(), "key {key:?}");
            let wrong = field(key, Comparison::Eq(scalar(json!(value + 100))));
            assert_eq!(check(&conn, &docs, &wrong), [].into(), "key {key:?}");
            let gte = field(key, Comparison::Gte(scalar(json!(value))));
            assert_eq!(check(&conn, &docs, &gte), [34].into(), "key {key:?}");
        }
        // Names that look like paths to the keys above, or to nothing.
        for key in [
            "$.a", "a\"", "\"a\"", "a\\", "[0", "$[0]", "a.b\\", "é", "  ", "\0", "a\0y",
        ] {
            let any = Filter::Or(vec![
                field(key, Comparison::Gte(scalar(json!(-1_000)))),
                field(key, Comparison::Gte(scalar(json!("")))),
                field(
                    key,
                    Comparison::In(vec![Scalar::Bool(true), Scalar::Bool(false)]),
                ),
            ]);
            assert_eq!(check(&conn, &docs, &any), [].into(), "key {key:?}");
        }
    }

    #[test]
    fn sql_and_rust_agree_on_every_operator_and_type() {
        let docs = corpus();
        let conn = database(&docs);
        let fields = [
            "n", "s", "b", "tags", "arr", "a", "a.b", "t", "big", "m", "obj", "missing", "a\u{0}",
        ];
        let operands = [
            json!(1),
            json!(1.0),
            json!(2),
            json!(-3),
            json!(0),
            json!(-0.0),
            json!(2.5),
            json!(10),
            json!(1e300),
            json!(u64::MAX),
            json!(i64::MIN),
            json!("1"),
            json!("abc"),
            json!("a"),
            json!("x"),
            json!(""),
            json!("true"),
            json!("é 🙂"),
            json!(true),
            json!(false),
        ];
        let lists = [
            json!([]),
            json!([1]),
            json!([1, "1", true]),
            json!(["x", "y", "abc"]),
            json!([false]),
            json!([2.5, -3, 10, 0]),
            json!(["", "z", 5]),
        ];
        let mut checked = 0;
        let mut non_trivial = 0;
        let all = all_keys(&docs);
        for name in fields {
            let mut per_field = Vec::new();
            for operand in &operands {
                let s = scalar(operand.clone());
                let mut ops = vec![Comparison::Eq(s.clone()), Comparison::Ne(s.clone())];
                if !matches!(s, Scalar::Bool(_)) {
                    ops.extend([
                        Comparison::Gt(s.clone()),
                        Comparison::Gte(s.clone()),
                        Comparison::Lt(s.clone()),
                        Comparison::Lte(s.clone()),
                    ]);
                }
                per_field.extend(ops);
            }
            for list in &lists {
                let list: Vec<Scalar> = serde_json::from_value(list.clone()).unwrap();
                per_field.push(Comparison::In(list.clone()));
                per_field.push(Comparison::Nin(list));
            }
            for op in per_field {
                let selected = check(&conn, &docs, &field(name, op));
                checked += 1;
                if !selected.is_empty() && selected != all {
                    non_trivial += 1;
                }
            }
        }
        // Combinations, including multi-key objects and nesting.
        let combos = [
            json!({"n": {"$gt": 0}, "s": {"$ne": "abc"}}),
            json!({"$or": [{"n": {"$lt": 1}}, {"tags": {"$in": ["y"]}}, {"b": false}]}),
            json!({"$and": [{"$or": [{"n": 1}, {"n": "1"}]}, {"tags": {"$nin": ["y"]}}]}),
            json!({"$or": [{"$and": [{"a": 1}, {"a.b": 2}]}, {"a\u{0}x": {"$gte": 8}}]}),
            json!({"$and": [{"s": {"$gte": "a"}}, {"s": {"$lt": "b"}}, {"n": {"$nin": [10]}}]}),
            json!({"$or": [{"missing": {"$ne": 1}}, {"n": 1}]}),
            json!({"$and": [{"missing": {"$nin": [1]}}, {"arr": {"$in": [true, "x"]}}]}),
        ];
        for combo in combos {
            let selected = check(&conn, &docs, &parse(combo));
            checked += 1;
            if !selected.is_empty() && selected != all {
                non_trivial += 1;
            }
        }
        for empty in [Filter::And(vec![]), Filter::Or(vec![])] {
            check(&conn, &docs, &empty);
        }
        assert!(checked > 1_000, "{checked} filters");
        assert!(
            non_trivial > checked / 5,
            "{non_trivial} of {checked} select a proper subset"
        );
    }

    #[test]
    fn ordering_on_a_boolean_is_an_error_naming_the_field() {
        for operator in ["$gt", "$gte", "$lt", "$lte"] {
            for filter in [
                json!({"flag": {operator: true}}),
                json!({"$or": [{"n": 1}, {"$and": [{"flag": {operator: false}}]}]}),
            ] {
                let filter = parse(filter);
                let error = validate(&filter).unwrap_err();
                assert!(error.contains("`flag`"), "{error}");
                assert!(error.contains(operator), "{error}");
                assert_eq!(compile(&filter, "metadata").unwrap_err(), error);
                // Rust evaluation treats the invalid comparison as false.
                assert!(!matches(
                    &filter,
                    Some(json!({"flag": true}).as_object().unwrap())
                ));
            }
        }
        for ok in [
            json!({"flag": true}),
            json!({"flag": {"$ne": false}}),
            json!({"flag": {"$in": [true, 1, "x"]}}),
            json!({"flag": {"$nin": [false]}}),
            json!({"n": {"$gt": 1.5}, "s": {"$lte": "z"}}),
        ] {
            let filter = parse(ok);
            validate(&filter).unwrap();
            compile(&filter, "metadata").unwrap();
        }
    }

    #[test]
    fn size_limits_are_errors_and_wide_filters_stay_within_sqlite_limits() {
        // A few documents (one without metadata, one holding a NUL) keep 1000 comparisons fast.
        let docs: Vec<Doc> = corpus()
            .into_iter()
            .filter(|(key, _)| [1, 3, 5, 35, 39].contains(key))
            .collect();
        let conn = database(&docs);
        let wide = |n: usize, or: bool| {
            let parts = (0..n)
                .map(|i| field(&format!("k{i}"), Comparison::Ne(scalar(json!(i)))))
                .collect();
            if or {
                Filter::Or(parts)
            } else {
                Filter::And(parts)
            }
        };
        // SQLite rejects expressions deeper than 1000; the balanced tree keeps 1000 operands of
        // one `$and` far below that. (Preparing 2000 subqueries takes SQLite ~0.2 s, so this
        // runs once; `$or` shares the code.)
        let widest = wide(MAX_COMPARISONS, false);
        assert_eq!(sql_keys(&conn, &widest), all_keys(&docs));
        assert_eq!(rust_keys(&docs, &widest), all_keys(&docs));
        let error = validate(&wide(MAX_COMPARISONS + 1, false)).unwrap_err();
        assert!(error.contains("1001 comparisons"), "{error}");
        assert_eq!(
            compile(&wide(MAX_COMPARISONS + 1, true), "m").unwrap_err(),
            error
        );
        // A long `$in` list is one comparison and one parameter per type.
        let long: Vec<Scalar> = (0..5_000).map(|i| scalar(json!(i))).collect();
        let long = field("n", Comparison::In(long));
        assert_eq!(check(&conn, &docs, &long), [3, 5, 39].into());
        let deep = |levels: usize| {
            let mut filter = field("n", Comparison::Eq(scalar(json!(1))));
            for level in 1..levels {
                let other = field("s", Comparison::Ne(scalar(json!(level))));
                filter = if level % 2 == 0 {
                    Filter::And(vec![filter, other])
                } else {
                    Filter::Or(vec![filter, other])
                };
            }
            filter
        };
        check(&conn, &docs, &deep(MAX_DEPTH));
        let error = validate(&deep(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.contains("levels deep"), "{error}");
    }

    #[test]
    fn injection_looking_strings_are_data() {
        let docs = corpus();
        let conn = database(&docs);
        let evil = "'); DROP TABLE documents; --";
        let filters = [
            parse(json!({"s": evil})),
            parse(json!({"s": {"$in": [evil, "\"]"]}})),
            field(evil, Comparison::Eq(Scalar::String(evil.to_owned()))),
            field(evil, Comparison::Ne(Scalar::String(evil.to_owned()))),
            field(
                "\"); DROP TABLE documents; --",
                Comparison::Gte(scalar(json!(""))),
            ),
            field("*\\u0000*' OR 1=1 --", Comparison::Eq(scalar(json!(1)))),
        ];
        let selections: Vec<_> = filters.iter().map(|f| check(&conn, &docs, f)).collect();
        assert_eq!(selections[0], [39].into());
        assert_eq!(selections[1], [39].into());
        assert_eq!(selections[2], [].into());
        assert_eq!(selections[3], all_keys(&docs));
        assert_eq!(selections[4], [].into());
        assert_eq!(selections[5], [].into());
        let count: i64 = conn
            .query_row("SELECT count(*) FROM documents", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, docs.len() as i64);
        // No value appears in the SQL text.
        let compiled = compile(&filters[2], "d.metadata").unwrap();
        assert!(!compiled.sql.contains("DROP"), "{}", compiled.sql);
    }

    #[test]
    fn parameters_combine_with_the_callers() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE documents (key INTEGER PRIMARY KEY, collection INTEGER, metadata TEXT)",
        )
        .unwrap();
        for key in 1..=20_i64 {
            let metadata =
                json!({"k": key, "even": key % 2 == 0, "tag": ["t", format!("t{}", key % 3)]});
            conn.execute(
                "INSERT INTO documents VALUES (?1, ?2, ?3)",
                params![key, key % 2 + 1, metadata.to_string()],
            )
            .unwrap();
        }
        let filter = parse(json!({"k": {"$gte": 5}, "tag": {"$in": ["t1", "t2"]}}));
        let compiled = compile(&filter, "d.metadata").unwrap();
        let run = |sql: &str, params: Vec<SqlValue>| -> Vec<i64> {
            let mut select = conn.prepare(sql).unwrap();
            select
                .query_map(params_from_iter(params), |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let with = |before: Vec<SqlValue>, after: Vec<SqlValue>| {
            let mut all = before;
            all.extend(compiled.params.iter().cloned());
            all.extend(after);
            all
        };
        // Collection 1 holds the even keys; keys ≥ 5 with key % 3 ≠ 0; the first three.
        let expected = vec![8, 10, 14];
        // Numbered leading parameter, anonymous trailing one.
        let sql = format!(
            "SELECT key FROM documents d WHERE d.collection = ?1 AND ({}) ORDER BY key LIMIT ?",
            compiled.sql
        );
        let params = with(vec![SqlValue::Integer(1)], vec![SqlValue::Integer(3)]);
        assert_eq!(run(&sql, params), expected);
        // Anonymous everywhere, with the filter nested in a subquery.
        let sql = format!(
            "SELECT key FROM documents WHERE key > ? AND key IN (SELECT d.key FROM documents d \
             WHERE d.collection = ? AND ({})) ORDER BY key LIMIT ? OFFSET ?",
            compiled.sql
        );
        let params = with(
            vec![SqlValue::Integer(0), SqlValue::Integer(1)],
            vec![SqlValue::Integer(3), SqlValue::Integer(0)],
        );
        assert_eq!(run(&sql, params), expected);
        // A caller whose table alias could collide with ours.
        for alias in ["e", "f", "ctxd"] {
            let compiled = compile(&filter, &format!("{alias}.metadata")).unwrap();
            let sql = format!(
                "SELECT key FROM documents {alias} WHERE {alias}.collection = ? AND ({}) \
                 ORDER BY key",
                compiled.sql
            );
            let mut params = vec![SqlValue::Integer(1)];
            params.extend(compiled.params);
            assert_eq!(run(&sql, params), vec![8, 10, 14, 16, 20]);
        }
    }

    #[test]
    fn the_sql_depends_on_the_shape_only() {
        let a = compile(&parse(json!({"x": {"$in": [1, 2, "a"]}, "y": 1})), "m").unwrap();
        let b = compile(
            &parse(json!({"x": {"$in": [7, "b", "c", 9]}, "y": 2.5})),
            "m",
        )
        .unwrap();
        assert_eq!(a.sql, b.sql);
        assert_ne!(a.params, b.params);
    }
}
