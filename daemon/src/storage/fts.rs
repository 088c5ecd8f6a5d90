//! Turning user text into a safe FTS5 query.
//!
//! The query string is user text, never FTS5 syntax: it is split into words (runs of letters
//! and digits), and each word becomes a quoted FTS5 string, OR-ed together. A quoted string
//! cannot contain FTS5 operators, so `AND`, `NEAR(`, `*`, `:`, `"` or `-` in the input are just
//! text; characters that are not letters or digits (punctuation, emoji) only separate words.
//! (Quoting whole whitespace-separated words instead, so `covid-19` is a phrase, measured worse
//! on SciFact: NDCG@10 0.689 against 0.700.) A query without any word matches nothing.
//!
//! Natural-language queries OR many words, and bm25 scores every document any of them matches,
//! so a word found in most documents ("the", "of", "cells" in a biology corpus) costs a scan of
//! most of the collection while adding almost nothing to the ranking: FTS5's bm25 weighs a term
//! by `ln((N − n + 0.5) / (n + 0.5))` and clamps it to ~0 once a term is in half the documents.
//! [`plan`] therefore drops such words, using each collection's document frequencies
//! ([`TermStats`]) and FTS5's own tokenizer to find a word's indexed form.

use super::StorageError;
use ctxd_proto::Tokenizer;
use rusqlite::{Connection, params};
use std::collections::{HashMap, HashSet};

/// The most distinct words a query contributes: enough for any natural-language question,
/// and a bound on the cost of pasting a whole document (a 100 KB query) into the search box.
pub const MAX_TERMS: usize = 64;

/// The FTS5 trigram tokenizer cannot match strings shorter than three characters.
const TRIGRAM_MIN_CHARS: usize = 3;

/// A word in more than this share of a collection's documents is left out of a costly query
/// (unless every word is). Above one half, FTS5's bm25 gives a word no weight at all, so leaving
/// it out changes no score, only the work: on SciFact NDCG@10 stays 0.7009 lexical and 0.7202
/// hybrid (a 0.3 share measured 0.6997 and 0.7165).
pub const MAX_DOCUMENT_SHARE: f64 = 0.5;

/// The distinct searchable words (runs of letters and digits) of `text`, lowercased, at most
/// [`MAX_TERMS`].
pub fn words(text: &str, tokenizer: Tokenizer) -> Vec<String> {
    let mut seen = HashSet::new();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .filter(|word| tokenizer != Tokenizer::Trigram || word.chars().count() >= TRIGRAM_MIN_CHARS)
        .map(str::to_lowercase)
        .filter(|word| seen.insert(word.clone()))
        .take(MAX_TERMS)
        .collect()
}

/// The FTS5 MATCH expression OR-ing `words` as quoted strings, or `None` when there is none.
/// (Words hold only letters and digits; doubling `"` keeps the quoting safe regardless.)
pub fn match_expression<S: AsRef<str>>(words: &[S]) -> Option<String> {
    if words.is_empty() {
        return None;
    }
    let quoted: Vec<String> = words
        .iter()
        .map(|word| format!("\"{}\"", word.as_ref().replace('"', "\"\"")))
        .collect();
    Some(quoted.join(" OR "))
}

/// How many documents of a collection hold each indexed term.
pub struct TermStats {
    document_frequency: HashMap<String, u32>,
    /// The collection's document count when these were read.
    pub documents: u64,
}

impl TermStats {
    /// Reads the document frequency of every term of `fts_table` (a scan of the index's
    /// vocabulary: ~17 ms for SciFact's 26k terms).
    pub fn load(
        conn: &Connection,
        fts_table: &str,
        documents: u64,
    ) -> Result<TermStats, StorageError> {
        let vocab = format!("temp.{fts_table}_vocab");
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {vocab};
             CREATE VIRTUAL TABLE {vocab} USING fts5vocab(main, {fts_table}, row);"
        ))?;
        let loaded = (|| {
            let mut select = conn.prepare(&format!("SELECT term, doc FROM {vocab}"))?;
            let rows = select.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
            })?;
            rows.collect::<Result<HashMap<_, _>, _>>()
        })();
        // A vocabulary table names its FTS table; never leave one behind for a dropped
        // collection whose id (and table name) may be reused.
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {vocab}"))?;
        Ok(TermStats {
            document_frequency: loaded?,
            documents,
        })
    }

    /// Whether a collection that now holds `documents` has drifted enough (10 %) from these
    /// statistics that they should be read again.
    pub fn stale(&self, documents: u64) -> bool {
        self.documents.abs_diff(documents) > self.documents / 10 + 50
    }
}

/// The indexed tokens (FTS5's own tokenizer, e.g. porter stems) of each word, via a temporary
/// table with the same tokenizer; empty for a word the tokenizer drops.
pub fn indexed_forms(
    conn: &Connection,
    tokenizer: Tokenizer,
    words: &[String],
) -> Result<Vec<Vec<String>>, StorageError> {
    let (table, tokenize) = match tokenizer {
        Tokenizer::Porter => ("ctxd_tokens_porter", "porter unicode61"),
        Tokenizer::Unicode61 => ("ctxd_tokens_unicode61", "unicode61"),
        Tokenizer::Trigram => return Ok(vec![Vec::new(); words.len()]),
    };
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table} USING fts5(t, tokenize='{tokenize}');
         CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_instances USING fts5vocab(temp, {table}, instance);"
    ))?;
    conn.execute_batch("SAVEPOINT tokenize")?;
    let forms = (|| {
        let mut insert = conn.prepare_cached(&format!(
            "INSERT INTO temp.{table} (rowid, t) VALUES (?1, ?2)"
        ))?;
        for (i, word) in words.iter().enumerate() {
            insert.execute(params![i as i64, word])?;
        }
        let mut forms = vec![Vec::new(); words.len()];
        let mut select = conn.prepare_cached(&format!(
            "SELECT doc, term FROM temp.{table}_instances ORDER BY doc, offset"
        ))?;
        let rows = select.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (doc, term) = row?;
            if let Some(tokens) = usize::try_from(doc).ok().and_then(|i| forms.get_mut(i)) {
                tokens.push(term);
            }
        }
        Ok::<_, StorageError>(forms)
    })();
    conn.execute_batch("ROLLBACK TO tokenize; RELEASE tokenize")?;
    forms
}

/// Postings (document matches summed over the words) a query may score before common words are
/// left out: below it bm25 is cheap (~1 µs per match) and the query is run exactly as typed.
pub const POSTINGS_BUDGET: u64 = 2_000;

/// The words worth matching. When the words' postings together stay within `budget`, all of
/// them; else those in at most [`MAX_DOCUMENT_SHARE`] of the documents, or, when every word is
/// more common than that, the rarest one. A word's frequency is its rarest token's (a phrase is
/// no more frequent than that); a word the statistics do not know (written since they were
/// read) is always kept.
pub fn plan(words: &[String], forms: &[Vec<String>], stats: &TermStats, budget: u64) -> Plan {
    let limit = (stats.documents as f64 * MAX_DOCUMENT_SHARE).max(1.0);
    let frequency = |tokens: &Vec<String>| -> Option<u32> {
        tokens
            .iter()
            .map(|t| stats.document_frequency.get(t).copied())
            .collect::<Option<Vec<u32>>>()
            .and_then(|dfs| dfs.into_iter().min())
    };
    let scored: Vec<(&String, Option<u32>)> = words
        .iter()
        .zip(forms)
        .map(|(word, tokens)| (word, frequency(tokens)))
        .collect();
    let postings: u64 = scored.iter().filter_map(|(_, df)| df.map(u64::from)).sum();
    if postings <= budget {
        return Plan {
            words: words.to_vec(),
            postings,
        };
    }
    let mut kept: Vec<(&String, Option<u32>)> = scored
        .iter()
        .copied()
        .filter(|(_, df)| df.is_none_or(|df| f64::from(df) <= limit))
        .collect();
    if kept.is_empty() {
        kept.extend(scored.iter().copied().min_by_key(|(_, df)| *df));
    }
    Plan {
        postings: kept.iter().filter_map(|(_, df)| df.map(u64::from)).sum(),
        words: kept.into_iter().map(|(word, _)| word.clone()).collect(),
    }
}

/// The words a lexical query matches, and the postings (document matches) they will score.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Words to OR.
    pub words: Vec<String>,
    /// Their document frequencies summed (known words only).
    pub postings: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expression(text: &str, tokenizer: Tokenizer) -> Option<String> {
        match_expression(&words(text, tokenizer))
    }

    #[test]
    fn words_are_quoted_and_or_ed() {
        assert_eq!(
            expression("Otters hold hands!", Tokenizer::Porter).as_deref(),
            Some(r#""otters" OR "hold" OR "hands""#)
        );
    }

    #[test]
    fn syntax_is_just_text() {
        let q =
            expression(r#"a AND "b" NEAR(c d) e* f:g -h ^i"#, Tokenizer::Unicode61).expect("words");
        assert_eq!(
            q,
            r#""a" OR "and" OR "b" OR "near" OR "c" OR "d" OR "e" OR "f" OR "g" OR "h" OR "i""#
        );
    }

    #[test]
    fn no_words_no_query() {
        assert_eq!(expression("", Tokenizer::Porter), None);
        assert_eq!(expression("🦦 — ?!", Tokenizer::Porter), None);
        assert_eq!(expression("ab cd", Tokenizer::Trigram), None);
    }

    #[test]
    fn terms_are_deduplicated_and_bounded() {
        let long = "word ".repeat(10_000) + &(0..200).map(|i| format!("w{i} ")).collect::<String>();
        let q = expression(&long, Tokenizer::Porter).expect("words");
        assert_eq!(q.matches(" OR ").count() + 1, MAX_TERMS);
    }

    #[test]
    fn common_words_are_left_out_using_the_index_own_stems() {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(
            "CREATE VIRTUAL TABLE fts_1 USING fts5(text, content='', contentless_delete=1, tokenize='porter unicode61');",
        )
        .expect("fts");
        let texts = [
            "the otters are running",
            "the river runs",
            "the cells of the river",
            "the otter sleeps",
        ];
        for (i, text) in texts.iter().enumerate() {
            conn.execute(
                "INSERT INTO fts_1 (rowid, text) VALUES (?1, ?2)",
                params![i as i64 + 1, text],
            )
            .expect("insert");
        }
        let stats = TermStats::load(&conn, "fts_1", 4).expect("stats");
        let query = words("The Otters running in rivers", Tokenizer::Porter);
        let forms = indexed_forms(&conn, Tokenizer::Porter, &query).expect("forms");
        let first: Vec<&str> = forms.iter().map(|t| t[0].as_str()).collect();
        assert_eq!(first, ["the", "otter", "run", "in", "river"]);
        // "the" is in every document, otter, run and river in 2 of 4 (at the 50 % share).
        // Within the budget the query runs as typed.
        assert_eq!(plan(&query, &forms, &stats, 100).words, query);
        // Over it, words in more than half the documents go; "in" is unknown to the statistics
        // (it may be new since they were read), so it stays.
        let planned = plan(&query, &forms, &stats, 0);
        assert_eq!(planned.words, ["otters", "running", "in", "rivers"]);
        assert_eq!(planned.postings, 6);
        let all_common = words("the the", Tokenizer::Porter);
        let forms = indexed_forms(&conn, Tokenizer::Porter, &all_common).expect("forms");
        assert_eq!(
            plan(&all_common, &forms, &stats, 0).words,
            ["the"],
            "the rarest word is kept"
        );
    }
}
