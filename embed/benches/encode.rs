//! The encoder alone, no daemon: documents/s of SciFact abstracts through `Model::embed_tokens`
//! in passes of a given token budget, and every vector checked against the shared ones.
//!
//! `cargo bench -p ctxd-embed --bench encode [-- --docs N] [--pass TOKENS,...] [--rounds R]`
//! (defaults: 400 documents, passes of 8,192 tokens — the daemon's `PASS_TOKENS` —, 3 rounds).
//! Several pass sizes are measured in turn, round by round, so they share the machine's mood;
//! each line gives the median round. It reads `../shared/data/models/all-MiniLM-L6-v2` and
//! `../shared/data/scifact` (document input `title + " " + text`, as the shared vectors were
//! made); without them it prints a skip message and exits 0.
//!
//! The daemon's figure (`client/python/bench/run embed`) adds the socket, JSON and storage to
//! this, against sentence-transformers in the same run; this one isolates the forward pass for
//! work on the kernels.

use ctxd_embed::{Model, Tokens};

// As in the daemon (daemon/src/main.rs): a pass allocates and frees tensors of tens of MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    docs: usize,
    passes: Vec<usize>,
    rounds: usize,
}

fn args() -> Args {
    let mut parsed = Args {
        docs: 400,
        passes: vec![8192],
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--docs" => parsed.docs = value().parse().expect("--docs N"),
            "--rounds" => parsed.rounds = value().parse().expect("--rounds R"),
            "--pass" => {
                parsed.passes = value()
                    .split(',')
                    .map(|p| p.parse().expect("--pass TOKENS[,TOKENS…]"))
                    .collect()
            }
            // cargo bench passes `--bench`.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    parsed
}

fn main() {
    let args = args();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let model_dir = data.join("models/all-MiniLM-L6-v2");
    let scifact = data.join("scifact");
    if !model_dir.is_dir() || !scifact.is_dir() {
        println!(
            "skipped: {} or {} is missing",
            model_dir.display(),
            scifact.display()
        );
        return;
    }
    let model = Model::load(&model_dir).expect("the shared model loads");
    let texts: Vec<String> = std::fs::read_to_string(scifact.join("docs.jsonl"))
        .expect("docs.jsonl")
        .lines()
        .take(args.docs)
        .map(|line| {
            let doc: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            format!(
                "{} {}",
                doc["title"].as_str().unwrap_or(""),
                doc["text"].as_str().unwrap_or("")
            )
        })
        .collect();
    let expected: Vec<f32> = std::fs::read(scifact.join("doc_vectors.f32"))
        .expect("doc_vectors.f32")
        .chunks_exact(4)
        .take(texts.len() * model.dimension())
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let started = Instant::now();
    let tokens = model
        .tokenize(&texts.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("tokenizes");
    let total_tokens: usize = tokens.iter().map(Tokens::len).sum();
    println!(
        "{} SciFact abstracts, {total_tokens} tokens (window {}), tokenized in {:.0} ms; {} threads",
        texts.len(),
        model.max_tokens(),
        started.elapsed().as_secs_f64() * 1e3,
        rayon::current_num_threads()
    );

    let mut seconds = vec![Vec::new(); args.passes.len()];
    let mut worst_cosine = f32::INFINITY;
    for _ in 0..args.rounds {
        for (i, &budget) in args.passes.iter().enumerate() {
            let started = Instant::now();
            let vectors = embed_in_passes(&model, &tokens, budget);
            seconds[i].push(started.elapsed().as_secs_f64());
            for (got, want) in vectors.iter().zip(expected.chunks_exact(model.dimension())) {
                worst_cosine = worst_cosine.min(got.iter().zip(want).map(|(a, b)| a * b).sum());
            }
        }
    }
    for (budget, mut times) in args.passes.iter().zip(seconds) {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "passes of {budget:>6} tokens: {:7.1} documents/s, {:8.0} tokens/s (median of {} rounds: {:.2} s)",
            texts.len() as f64 / median,
            total_tokens as f64 / median,
            times.len(),
            median
        );
    }
    println!("lowest cosine with the shared vectors: {worst_cosine:.6}");
}

/// What the daemon's pool does with one long request: texts in order, a pass closed before it
/// would exceed `budget` tokens.
fn embed_in_passes(model: &Model, tokens: &[Tokens], budget: usize) -> Vec<Vec<f32>> {
    let mut vectors = Vec::with_capacity(tokens.len());
    let mut pass: Vec<&Tokens> = Vec::new();
    let mut in_pass = 0;
    for text in tokens {
        if !pass.is_empty() && in_pass + text.len() > budget {
            vectors.extend(model.embed_tokens(&pass).expect("a pass"));
            pass.clear();
            in_pass = 0;
        }
        pass.push(text);
        in_pass += text.len();
    }
    if !pass.is_empty() {
        vectors.extend(model.embed_tokens(&pass).expect("a pass"));
    }
    vectors
}
