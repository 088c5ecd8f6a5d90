//! `search`: the lexical list (FTS5 bm25), the vector list (quantized scan re-scored exactly,
//! or an exact scan), and their reciprocal rank fusion.
//!
//! Filters apply before ranking: the filter selects the candidate documents first, and both
//! lists rank only candidates, so the filtered top k is the exact filtered top k.

use super::StorageError;
use super::ann;
use super::catalog::Collection;
use super::documents::{self, Selection};
use super::fts;
use super::read::{compile, include_or_default};
use super::reader::ReadSide;
use super::validate;
use super::vector_set::exact_score;
use super::vectors::decode_vector;
use ctxd_proto::limits::{DEFAULT_K, DEFAULT_RRF_K, MAX_K, MAX_WEIGHT};
use ctxd_proto::{
    Field, Hit, Ranks, Search, SearchMode, SearchResult, Tokenizer, Vector, VectorEncoding, Weights,
};
use roaring::RoaringBitmap;
use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use std::collections::HashMap;

/// How deep each list goes in a hybrid search: reciprocal rank fusion of the top 100 of each
/// list reached NDCG@10 0.720 on SciFact (`cargo bench -p ctxd --bench scifact`), and deeper lists
/// add little.
const HYBRID_DEPTH: usize = 100;

/// Candidates re-scored exactly per wanted hit when the request has no `effort`: for k = 10 the
/// in-memory copy's best 50, recall@10 0.998 (cosine's sketch) and 1.0 (the `u8` codes) at 100k
/// real embeddings, 0.998 at 1M (`cargo bench -p ctxd --bench vector_scan [-- 1m]`).
const DEFAULT_EFFORT: usize = 5;

/// The most candidates one search re-scores (bounds `effort` × `k`).
const MAX_RESCORE: usize = 20_000;

/// A filtered candidate set at most this large is scored exactly, vector by vector, instead of
/// scanning the whole quantized set: reading a few thousand vectors costs less than a scan.
const SMALL_CANDIDATES: u64 = 2_000;

/// A lexical query scoring at least this many postings runs as two halves in parallel: below
/// it, a thread costs more than it saves (bm25 scores ~1 µs per posting).
const PARALLEL_POSTINGS: u64 = 1_500;

/// A ranked list: document keys with their scores, best first.
type Ranked = Vec<(u32, f64)>;

/// Runs a search.
pub fn search(side: &ReadSide, params: &Search) -> Result<SearchResult, StorageError> {
    let collection = side.catalog().require(&params.collection)?.clone();
    let mode = mode(params)?;
    let k = params.k.unwrap_or(DEFAULT_K);
    if k == 0 || k > MAX_K {
        return Err(StorageError::Invalid(format!(
            "`k` {k} is out of range (1–{MAX_K})"
        )));
    }
    let k = k as usize;
    // A collection created without a dimension that has no vector yet matches no query
    // vector, whatever its length (as an empty collection would).
    let no_vectors = collection.dimension_unfixed();
    if let Some(vector) = &params.vector
        && !no_vectors
    {
        validate::query_vector(vector, collection.dimension, &collection.name)?;
    }
    let weights = params.weights.unwrap_or_default();
    for (name, w) in [("lexical", weights.lexical), ("vector", weights.vector)] {
        // Bounded, so the fused score (at most the sum of the weights) is always a number.
        if !(0.0..=MAX_WEIGHT).contains(&w) {
            return Err(StorageError::Invalid(format!(
                "weight `{name}` is {w}; weights are numbers from 0 to {MAX_WEIGHT}"
            )));
        }
    }
    let include = include_or_default(params.include.as_deref());
    let filter = compile(params.filter.as_ref(), params.text_filter.as_ref())?;
    let candidates = match &filter {
        Some(filter) => {
            let selection = Selection {
                ids: None,
                filter: Some(filter),
            };
            let keys =
                side.with_conn(|conn| documents::select_keys(conn, collection.id, &selection))?;
            Some(keys.into_iter().collect::<RoaringBitmap>())
        }
        None => None,
    };
    if candidates.as_ref().is_some_and(RoaringBitmap::is_empty) {
        return Ok(SearchResult { hits: Vec::new() });
    }

    let depth = if mode == SearchMode::Hybrid {
        k.max(HYBRID_DEPTH)
    } else {
        k
    };
    let lexical = match (mode, &params.text) {
        (SearchMode::Lexical | SearchMode::Hybrid, Some(text)) => {
            lexical_list(side, &collection, text, filter.as_ref(), depth)?
        }
        _ => Vec::new(),
    };
    let vector = match (mode, &params.vector) {
        (SearchMode::Vector | SearchMode::Hybrid, Some(query)) if !no_vectors => vector_list(
            side,
            &collection,
            query,
            candidates.as_ref(),
            depth,
            k,
            params.exact,
            params.effort,
        )?,
        _ => Vec::new(),
    };

    let ranked = match mode {
        SearchMode::Lexical => single(lexical, k, |rank| Ranks {
            lexical: Some(rank),
            vector: None,
        }),
        SearchMode::Vector => single(vector, k, |rank| Ranks {
            lexical: None,
            vector: Some(rank),
        }),
        SearchMode::Hybrid => fuse(
            &lexical,
            &vector,
            params.rrf_k.unwrap_or(DEFAULT_RRF_K),
            weights,
            k,
        ),
    };
    let encoding = params.vector_encoding.unwrap_or_default();
    let hits = hydrate(side, &collection, ranked, &include, encoding)?;
    Ok(SearchResult { hits })
}

/// The mode: as asked (with its inputs present), else hybrid with both inputs, else the one
/// given.
fn mode(params: &Search) -> Result<SearchMode, StorageError> {
    let (text, vector) = (params.text.is_some(), params.vector.is_some());
    let missing = |what: &str, mode: &str| {
        let hint = if what == "vector" {
            " (a collection created with an `embedder` computes it from `text`; this one has none)"
        } else {
            ""
        };
        Err(StorageError::Invalid(format!(
            "`mode` {mode} needs `{what}`{hint}"
        )))
    };
    match (params.mode, text, vector) {
        (Some(SearchMode::Lexical), false, _) => missing("text", "lexical"),
        (Some(SearchMode::Vector), _, false) => missing("vector", "vector"),
        (Some(SearchMode::Hybrid), false, _) => missing("text", "hybrid"),
        (Some(SearchMode::Hybrid), _, false) => missing("vector", "hybrid"),
        (Some(mode), _, _) => Ok(mode),
        (None, true, true) => Ok(SearchMode::Hybrid),
        (None, true, false) => Ok(SearchMode::Lexical),
        (None, false, true) => Ok(SearchMode::Vector),
        (None, false, false) => Err(StorageError::Invalid(
            "`search` needs `text`, `vector` or both".to_owned(),
        )),
    }
}

/// FTS5 bm25 ranking of the candidates; scores are negated bm25 (higher is better).
fn lexical_list(
    side: &ReadSide,
    collection: &Collection,
    text: &str,
    filter: Option<&super::filter_sql::SqlFilter>,
    depth: usize,
) -> Result<Ranked, StorageError> {
    let words = fts::words(text, collection.tokenizer);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let plan = if collection.tokenizer == Tokenizer::Trigram {
        // Trigram terms are substrings, not words: there is no per-word frequency to weigh.
        fts::Plan { words, postings: 0 }
    } else {
        side.with_conn(|conn| {
            let stats = side.term_stats(conn, collection)?;
            let forms = fts::indexed_forms(conn, collection.tokenizer, &words)?;
            Ok(fts::plan(&words, &forms, &stats, fts::POSTINGS_BUDGET))
        })?
    };
    let Some(expression) = fts::match_expression(&plan.words) else {
        return Ok(Vec::new());
    };
    let table = collection.fts_table();
    // The score is computed once and sorted on: `ORDER BY rank` beside a selected `bm25()`
    // would compute bm25 twice per match (2.5 ms against 3.8 ms per SciFact query).
    let mut sql =
        format!("SELECT rowid, bm25({table}) AS score FROM {table} WHERE {table} MATCH ?");
    sql.push_str(" AND rowid BETWEEN ? AND ?");
    if let Some(filter) = filter {
        sql.push_str(&format!(
            " AND rowid IN (SELECT d.key FROM documents d WHERE d.collection = ? AND ({}))",
            filter.sql
        ));
    }
    sql.push_str(" ORDER BY score LIMIT ?");
    let run = |range: (i64, i64), conn: &rusqlite::Connection| -> Result<Ranked, StorageError> {
        let mut params = vec![
            SqlValue::Text(expression.clone()),
            SqlValue::Integer(range.0),
            SqlValue::Integer(range.1),
        ];
        if let Some(filter) = filter {
            params.push(SqlValue::Integer(i64::from(collection.id)));
            params.extend(filter.params.iter().cloned());
        }
        params.push(SqlValue::Integer(depth as i64));
        let mut select = conn.prepare_cached(&sql)?;
        let rows = select.query_map(params_from_iter(params), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, f64>(1)?))
        })?;
        rows.map(|row| {
            let (key, bm25) = row?;
            let key = u32::try_from(key)
                .map_err(|_| StorageError::Corrupt(format!("FTS rowid {key} out of range")))?;
            Ok((key, -bm25))
        })
        .collect()
    };
    if plan.postings < PARALLEL_POSTINGS {
        return side.with_conn(|conn| run((0, i64::MAX), conn));
    }
    // A costly query scores its matches in two key ranges on two threads. bm25's statistics
    // (document count, average length, term frequencies) are the whole index's, so the two
    // halves' scores compare directly and the merged top `depth` is exact.
    let conn = side.conn()?;
    let (low, high) = documents::key_range(&conn, collection.id)?;
    let middle = low + (high - low) / 2;
    // The second half gets a thread of its own only with a connection idle right now: under
    // concurrent load every read thread has its own, and the cores are busy anyway.
    let Some(second_conn) = side.try_spare() else {
        return run((low, high), &conn);
    };
    let run = &run;
    let (first, second) = std::thread::scope(|scope| {
        let upper = scope.spawn(move || run((middle + 1, high), &second_conn));
        let lower = run((low, middle), &conn);
        let upper = upper
            .join()
            .unwrap_or_else(|_| Err(StorageError::Corrupt("a search thread panicked".to_owned())));
        (lower, upper)
    });
    let mut merged = first?;
    merged.extend(second?);
    merged.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    merged.truncate(depth);
    Ok(merged)
}

/// The `depth` nearest candidates by exact score.
///
/// Four paths, all ending in exact scores from LMDB (so a result is never a document the
/// vector store no longer holds, nor scored by a stale copy):
/// - `exact` (and not a small filter): every vector of the collection, from LMDB;
/// - a small filtered candidate set: each candidate, from LMDB;
/// - a collection in the ANN tier with a completed build: arroy's candidates (stale keys
///   excluded) and the fresh set's, re-scored ([`ann_shortlist`]);
/// - otherwise the in-memory copy's scan, its best `effort` × `depth` re-scored.
#[allow(clippy::too_many_arguments)]
fn vector_list(
    side: &ReadSide,
    collection: &Collection,
    query: &[f32],
    candidates: Option<&RoaringBitmap>,
    depth: usize,
    k: usize,
    exact: bool,
    effort: Option<u32>,
) -> Result<Ranked, StorageError> {
    let distance = collection.distance;
    let rtxn = side.vectors.read_txn()?;
    let mut scored: Ranked = Vec::new();
    let small = candidates.is_some_and(|c| c.len() <= SMALL_CANDIDATES);
    let effort = effort.map_or(DEFAULT_EFFORT, |e| e.max(1) as usize);
    let rescore = (depth * effort).clamp(depth, MAX_RESCORE);
    let exactly = |scored: &mut Ranked| {
        // Every vector of the collection (or every candidate), exactly.
        side.vectors.for_each(&rtxn, collection.id, |key, bytes| {
            if candidates.is_none_or(|c| c.contains(key)) {
                scored.push((key, exact_score(distance, query, &decode_vector(bytes))));
            }
        })
    };
    if exact && !small {
        exactly(&mut scored)?;
    } else if let Some(candidates) = candidates.filter(|_| small) {
        let mut keys: Vec<u32> = candidates.iter().collect();
        side.vectors
            .each_of(&rtxn, collection.id, &mut keys, |key, vector| {
                scored.push((key, exact_score(distance, query, vector)));
            })?;
    } else {
        // Taken before the tier is asked: a first build that completes meanwhile removes the
        // set from the map, but this search keeps a consistent copy (see ann_state).
        let full = side.set(collection.id);
        let mut shortlist =
            match ann_shortlist(side, collection, query, candidates, depth, k, effort) {
                Some(shortlist) => shortlist,
                None => match full {
                    Some(set) => {
                        let set = set.read().unwrap_or_else(|e| e.into_inner());
                        match candidates {
                            Some(c) => set.scan(query, rescore, Some(&|key| c.contains(key))),
                            None => set.scan(query, rescore, None),
                        }
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect()
                    }
                    None if side.ann.collection(collection.id).is_some() => {
                        // In the tier, but its index cannot be read (logged by ann_shortlist):
                        // exact, slower, still right.
                        exactly(&mut scored)?;
                        Vec::new()
                    }
                    None => Vec::new(),
                },
            };
        side.vectors
            .each_of(&rtxn, collection.id, &mut shortlist, |key, vector| {
                scored.push((key, exact_score(distance, query, vector)));
            })?;
    }
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.dedup_by_key(|(key, _)| *key);
    scored.truncate(depth);
    Ok(scored)
}

/// The candidates of a collection served by the ANN tier, to be re-scored exactly: arroy's
/// nearest `depth` from the last build (searched with a budget sized for `k` and `effort`),
/// without the keys changed since, plus the fresh set's best `effort` × `depth`. `None` when
/// the collection is not (yet) served by a built index.
fn ann_shortlist(
    side: &ReadSide,
    collection: &Collection,
    query: &[f32],
    candidates: Option<&RoaringBitmap>,
    depth: usize,
    k: usize,
    effort: usize,
) -> Option<Vec<u32>> {
    let state = side.ann.collection(collection.id)?;
    // The fresh results and the tombstones first, the index second (see ann_state).
    let (mut shortlist, tombstones) = {
        let state = state.read().unwrap_or_else(|e| e.into_inner());
        if !state.built {
            return None;
        }
        let rescore = (depth * effort).clamp(depth, MAX_RESCORE);
        let fresh = match candidates {
            Some(c) => state.scan_fresh(query, rescore, Some(&|key| c.contains(key))),
            None => state.scan_fresh(query, rescore, None),
        };
        (fresh, state.tombstones())
    };
    let reader = side.ann.reader()?;
    let found = reader.nns(&ann::Query {
        collection: collection.id,
        distance: collection.distance,
        vector: query,
        count: depth,
        k,
        effort,
        candidates,
        exclude: &tombstones,
    });
    match found {
        Ok(keys) => {
            shortlist.extend(keys);
            Some(shortlist)
        }
        Err(e) => {
            tracing::warn!(
                collection = %collection.name,
                "the ANN index cannot be searched ({e}); searching exactly"
            );
            None
        }
    }
}

/// One list as the result: its top k with its own scores.
fn single(list: Ranked, k: usize, ranks: impl Fn(u32) -> Ranks) -> Vec<(u32, f64, Ranks)> {
    list.into_iter()
        .take(k)
        .enumerate()
        .map(|(i, (key, score))| (key, score, ranks(i as u32 + 1)))
        .collect()
}

/// Reciprocal rank fusion: score = Σ weightᵢ / (rrf_k + rankᵢ), ranks from 1.
fn fuse(
    lexical: &Ranked,
    vector: &Ranked,
    rrf_k: u32,
    weights: Weights,
    k: usize,
) -> Vec<(u32, f64, Ranks)> {
    let mut fused: HashMap<u32, Ranks> = HashMap::new();
    for (i, (key, _)) in lexical.iter().enumerate() {
        fused.entry(*key).or_default().lexical = Some(i as u32 + 1);
    }
    for (i, (key, _)) in vector.iter().enumerate() {
        fused.entry(*key).or_default().vector = Some(i as u32 + 1);
    }
    let rrf = |weight: f64, rank: Option<u32>| {
        rank.map_or(0.0, |r| weight / (f64::from(rrf_k) + f64::from(r)))
    };
    let mut ranked: Vec<(u32, f64, Ranks)> = fused
        .into_iter()
        .map(|(key, ranks)| {
            let score = rrf(weights.lexical, ranks.lexical) + rrf(weights.vector, ranks.vector);
            (key, score, ranks)
        })
        .collect();
    // Equal fused scores are common (a lexical-only and a vector-only hit at the same rank).
    // Ties go to the hit found by more lists, then by lexical rank (an exact word match is the
    // more specific evidence), then by vector rank: on SciFact this order scores NDCG@10 0.720
    // against 0.718 for an arbitrary one. The document key settles the rest.
    let lists = |r: &Ranks| u8::from(r.lexical.is_some()) + u8::from(r.vector.is_some());
    let rank = |r: Option<u32>| r.unwrap_or(u32::MAX);
    ranked.sort_unstable_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(lists(&b.2).cmp(&lists(&a.2)))
            .then(rank(a.2.lexical).cmp(&rank(b.2.lexical)))
            .then(rank(a.2.vector).cmp(&rank(b.2.vector)))
            .then(a.0.cmp(&b.0))
    });
    ranked.truncate(k);
    ranked
}

/// Turns ranked keys into hits with the included parts; documents deleted meanwhile are
/// skipped.
fn hydrate(
    side: &ReadSide,
    collection: &Collection,
    ranked: Vec<(u32, f64, Ranks)>,
    include: &[Field],
    encoding: VectorEncoding,
) -> Result<Vec<Hit>, StorageError> {
    let keys: Vec<u32> = ranked.iter().map(|(key, _, _)| *key).collect();
    let vector_values = if include.contains(&Field::Vector) {
        collection.dimension as usize
    } else {
        0
    };
    let mut reply = documents::ReplyBytes::new(vector_values);
    let rows = side.with_conn(|conn| documents::fetch(conn, &keys, &mut reply))?;
    let rtxn = if include.contains(&Field::Vector) {
        Some(side.vectors.read_txn()?)
    } else {
        None
    };
    let mut hits = Vec::with_capacity(ranked.len());
    for ((key, score, ranks), row) in ranked.into_iter().zip(rows) {
        let Some(row) = row else { continue };
        let doc = row.into_document(include);
        let vector = match &rtxn {
            Some(rtxn) => side
                .vectors
                .get(rtxn, collection.id, key)?
                .map(|v| Vector::from(v).encoded(encoding)),
            None => None,
        };
        hits.push(Hit {
            id: doc.id,
            score,
            ranks,
            text: doc.text,
            metadata: doc.metadata,
            vector,
        });
    }
    Ok(hits)
}
