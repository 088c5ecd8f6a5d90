//! Text filters (ChromaDB's `where_document`, [`ctxd_proto::text_filter`]) compiled to SQL
//! over a document's stored text.
//!
//! `$contains` is SQLite's `instr` (case-sensitive, by characters); `$regex` calls
//! [`REGEXP_FUNCTION`], which every connection registers ([`register`]) and which runs Rust's
//! `regex` (linear time in the text, whatever the pattern). A pattern is compiled once per
//! statement (SQLite's auxiliary data) and checked here first, so an invalid one is a
//! `bad_request` naming the problem rather than an error half way through a scan. A document
//! without text matches no `$contains` and no `$regex`, and every `$not_…`.

use super::filter_sql::SqlFilter;
use ctxd_proto::TextFilter;
use regex::Regex;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value as SqlValue;
use std::sync::Arc;

/// The SQL function `ctxd_regexp(pattern, text)`: 1 when `text` matches, 0 when not, NULL when
/// `text` is NULL.
pub const REGEXP_FUNCTION: &str = "ctxd_regexp";

/// The largest compiled pattern accepted (the `regex` crate's own default is 10 MiB, which a
/// filter of 64 KiB cannot reach by accident but can by design).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Registers [`REGEXP_FUNCTION`] on a connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        REGEXP_FUNCTION,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let pattern: Arc<Regex> = ctx.get_or_create_aux(0, |value| {
                regex(value.as_str()?)
                    .map_err(Into::<Box<dyn std::error::Error + Send + Sync>>::into)
            })?;
            let text = ctx
                .get_raw(1)
                .as_str_or_null()
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            Ok(text.map(|text| pattern.is_match(text)))
        },
    )
}

fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Compiles `filter` to a boolean SQL expression over `column` (the text, e.g. `d.text`; NULL
/// for none). Errors name an invalid pattern.
pub fn compile(filter: &TextFilter, column: &str) -> Result<SqlFilter, String> {
    let mut sql = String::new();
    let mut params = Vec::new();
    write(filter, column, &mut sql, &mut params)?;
    Ok(SqlFilter { sql, params })
}

fn write(
    filter: &TextFilter,
    column: &str,
    sql: &mut String,
    params: &mut Vec<SqlValue>,
) -> Result<(), String> {
    match filter {
        TextFilter::Contains(text) | TextFilter::NotContains(text) => {
            let negated = matches!(filter, TextFilter::NotContains(_));
            sql.push_str(&format!(
                "(coalesce(instr({column}, ?), 0) {} 0)",
                if negated { "=" } else { ">" }
            ));
            params.push(SqlValue::Text(text.clone()));
        }
        TextFilter::Regex(pattern) | TextFilter::NotRegex(pattern) => {
            regex(pattern).map_err(|e| format!("invalid `$regex` pattern: {e}"))?;
            let negated = matches!(filter, TextFilter::NotRegex(_));
            sql.push_str(&format!(
                "({}coalesce({REGEXP_FUNCTION}(?, {column}), 0))",
                if negated { "NOT " } else { "" }
            ));
            params.push(SqlValue::Text(pattern.clone()));
        }
        TextFilter::And(parts) | TextFilter::Or(parts) => {
            let joiner = if matches!(filter, TextFilter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push('(');
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push_str(joiner);
                }
                write(part, column, sql, params)?;
            }
            sql.push(')');
        }
    }
    Ok(())
}

/// Both filters as one: a document must match each that is given.
pub fn both(metadata: Option<SqlFilter>, text: Option<SqlFilter>) -> Option<SqlFilter> {
    match (metadata, text) {
        (Some(m), Some(t)) => Some(SqlFilter {
            sql: format!("({}) AND ({})", m.sql, t.sql),
            params: m.params.into_iter().chain(t.params).collect(),
        }),
        (one, None) | (None, one) => one,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params_from_iter;
    use serde_json::json;

    fn matching(filter: serde_json::Value) -> Vec<i64> {
        let conn = Connection::open_in_memory().expect("sqlite");
        register(&conn).expect("register");
        conn.execute_batch(
            "CREATE TABLE d (key INTEGER PRIMARY KEY, text TEXT);
             INSERT INTO d VALUES (1, 'Otters hold hands'), (2, 'otters sleep'), (3, NULL),
                                  (4, 'a heron'), (5, '');",
        )
        .expect("corpus");
        let filter: TextFilter = serde_json::from_value(filter).expect("filter");
        let compiled = compile(&filter, "text").expect("compiles");
        let mut select = conn
            .prepare(&format!(
                "SELECT key FROM d WHERE {} ORDER BY key",
                compiled.sql
            ))
            .expect("prepare");
        select
            .query_map(params_from_iter(compiled.params), |row| row.get(0))
            .expect("query")
            .map(|key| key.expect("row"))
            .collect()
    }

    #[test]
    fn operators_match_as_chroma_documents_them() {
        assert_eq!(
            matching(json!({"$contains": "otters"})),
            [2],
            "case-sensitive"
        );
        assert_eq!(matching(json!({"$not_contains": "otters"})), [1, 3, 4, 5]);
        assert_eq!(matching(json!({"$regex": "(?i)^otters"})), [1, 2]);
        assert_eq!(matching(json!({"$not_regex": "(?i)^otters"})), [3, 4, 5]);
        assert_eq!(
            matching(json!({"$and": [{"$regex": "s$"}, {"$not_contains": "sleep"}]})),
            [1]
        );
        assert_eq!(
            matching(json!({"$or": [{"$contains": "heron"}, {"$contains": "hold"}]})),
            [1, 4]
        );
        // Characters that mean something to LIKE or GLOB are plain text here.
        assert_eq!(matching(json!({"$contains": "%"})), Vec::<i64>::new());
    }

    #[test]
    fn an_invalid_pattern_is_named_before_anything_runs() {
        let filter = TextFilter::Regex("(unclosed".to_owned());
        let error = compile(&filter, "text").expect_err("refused");
        assert!(error.contains("invalid `$regex`"), "{error}");
        let lookaround = TextFilter::Regex("a(?=b)".to_owned());
        assert!(compile(&lookaround, "text").is_err(), "no look-around");
    }
}
