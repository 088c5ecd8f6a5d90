//! Turning user text into a safe FTS5 query.
//!
//! The query string is user text, never FTS5 syntax: it is split into words (runs of
//! alphanumeric characters), and each word becomes a quoted FTS5 string, OR-ed together. A
//! quoted string cannot contain FTS5 operators, so `AND`, `NEAR(`, `*`, `:`, `"` or `-` in the
//! input are just text; characters that are not letters or digits (punctuation, emoji) only
//! separate words. A query without any word matches nothing.

use ctxd_proto::Tokenizer;
use std::collections::HashSet;

/// The most distinct words a query contributes: enough for any natural-language question,
/// and a bound on the cost of pasting a whole document (a 100 KB query) into the search box.
pub const MAX_TERMS: usize = 64;

/// The FTS5 trigram tokenizer cannot match strings shorter than three characters.
const TRIGRAM_MIN_CHARS: usize = 3;

/// The FTS5 MATCH expression for `text`, or `None` when it has no searchable word.
pub fn match_expression(text: &str, tokenizer: Tokenizer) -> Option<String> {
    let mut seen = HashSet::new();
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .filter(|word| tokenizer != Tokenizer::Trigram || word.chars().count() >= TRIGRAM_MIN_CHARS)
        .map(str::to_lowercase)
        .filter(|word| seen.insert(word.clone()))
        .take(MAX_TERMS)
        .map(|word| format!("\"{word}\""))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" OR "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_and_or_ed() {
        assert_eq!(
            match_expression("Otters hold hands!", Tokenizer::Porter).as_deref(),
            Some(r#""otters" OR "hold" OR "hands""#)
        );
    }

    #[test]
    fn syntax_is_just_text() {
        let q = match_expression(r#"a AND "b" NEAR(c d) e* f:g -h ^i"#, Tokenizer::Unicode61)
            .expect("words");
        assert_eq!(
            q,
            r#""a" OR "and" OR "b" OR "near" OR "c" OR "d" OR "e" OR "f" OR "g" OR "h" OR "i""#
        );
    }

    #[test]
    fn no_words_no_query() {
        assert_eq!(match_expression("", Tokenizer::Porter), None);
        assert_eq!(match_expression("🦦 — ?!", Tokenizer::Porter), None);
        assert_eq!(match_expression("ab cd", Tokenizer::Trigram), None);
    }

    #[test]
    fn terms_are_deduplicated_and_bounded() {
        let long = "word ".repeat(10_000) + &(0..200).map(|i| format!("w{i} ")).collect::<String>();
        let q = match_expression(&long, Tokenizer::Porter).expect("words");
        assert_eq!(q.matches(" OR ").count() + 1, MAX_TERMS);
    }
}
