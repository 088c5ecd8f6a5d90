//! `ctxd search`: lexical, vector or hybrid search, printed as a ranked list.

use super::args::SearchArgs;
use super::documents::{compact, preview};
use super::output::{Output, WIDTH, exit, fail, one_line};
use ctxd_client::Client;
use ctxd_proto::{Hit, Search};
use std::fmt::Write;
use std::process::ExitCode;

/// Runs `ctxd search`.
pub async fn run(client: &Client, args: SearchArgs, out: Output) -> ExitCode {
    // `Command::check` has made sure the mode's inputs are present.
    let vector = args.vector.or(args.vector_file).map(|v| v.0);
    let params = Search {
        collection: args.collection,
        text: args.text,
        vector: vector.map(Into::into),
        k: args.k,
        filter: args.filter,
        mode: args.mode,
        include: args.include,
        rrf_k: None,
        weights: None,
        exact: args.exact,
        effort: None,
        vector_encoding: None,
        text_filter: None,
    };
    match client.search(params).await {
        Ok(result) => {
            out.print(&result, |r| render_hits(&r.hits));
            ExitCode::from(exit::OK)
        }
        Err(e) => fail(&e),
    }
}

/// One block per hit, best first:
///
/// ```text
///  1. doc-a  score 0.0328  lexical #1  vector #3
///     otters hold hands while they sleep so that they do not drift apart…
///     {"kind":"fact"}
/// ```
fn render_hits(hits: &[Hit]) -> String {
    if hits.is_empty() {
        return "no hits".to_owned();
    }
    let rank_width = hits.len().to_string().len();
    let indent = " ".repeat(rank_width + 2);
    let body_width = WIDTH.saturating_sub(indent.len());
    let mut text = String::new();
    for (i, hit) in hits.iter().enumerate() {
        let _ = writeln!(
            text,
            "{:>rank_width$}. {}  score {}  lexical {}  vector {}",
            i + 1,
            hit.id,
            score(hit.score),
            rank(hit.ranks.lexical),
            rank(hit.ranks.vector),
        );
        if let Some(body) = &hit.text {
            let _ = writeln!(text, "{indent}{}", one_line(body, body_width));
        }
        if let Some(metadata) = &hit.metadata {
            let _ = writeln!(text, "{indent}{}", one_line(&compact(metadata), body_width));
        }
        if let Some(vector) = &hit.vector {
            let _ = writeln!(text, "{indent}{}", preview(vector));
        }
    }
    text
}

/// Four significant decimals for small (RRF) scores, fewer digits for large (bm25) ones.
fn score(score: f64) -> String {
    if score.abs() >= 100.0 {
        format!("{score:.1}")
    } else {
        format!("{score:.4}")
    }
}

fn rank(rank: Option<u32>) -> String {
    rank.map_or_else(|| "-".to_owned(), |r| format!("#{r}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxd_proto::Ranks;

    #[test]
    fn hits_render_as_a_ranked_list_with_snippets() {
        let hits = vec![
            Hit {
                id: "a".into(),
                score: 0.032_786_9,
                ranks: Ranks {
                    lexical: Some(1),
                    vector: Some(3),
                },
                text: Some(format!("otters hold\nhands {}", "x".repeat(200))),
                metadata: serde_json::json!({"kind": "fact"})
                    .as_object()
                    .cloned()
                    .map(Into::into),
                vector: None,
            },
            Hit {
                id: "b".into(),
                score: 0.5,
                ranks: Ranks {
                    lexical: None,
                    vector: Some(1),
                },
                text: None,
                metadata: None,
                vector: None,
            },
        ];
        let text = render_hits(&hits);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "1. a  score 0.0328  lexical #1  vector #3");
        assert!(
            lines[1].starts_with("   otters hold hands xxx"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with('…'));
        assert_eq!(lines[1].chars().count(), WIDTH);
        assert_eq!(lines[2], "   {\"kind\":\"fact\"}");
        assert_eq!(lines[3], "2. b  score 0.5000  lexical -  vector #1");
        assert_eq!(render_hits(&[]), "no hits");
    }
}
