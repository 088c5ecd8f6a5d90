//! The data subcommands of the `ctxd` binary (exit codes: `daemon/src/exit.rs`) against a real daemon: `collections`,
//! `import`, `export`, `search`, `get`, `delete`, `count` — their text and `--json` output, and
//! their exit codes (0 success, 1 the operation failed, 2 usage error).

use crate::support::{CTXD, Daemon, Scratch, ctxd};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `ctxd --socket SOCKET args...`.
fn run(daemon: &Daemon, args: &[&str]) -> Output {
    let socket = daemon.socket.to_str().expect("a UTF-8 socket path");
    let mut full = vec!["--socket", socket];
    full.extend_from_slice(args);
    ctxd(&full)
}

/// Runs the command, asserts exit 0, and returns its stdout.
fn ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = run(daemon, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "ctxd {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs the command with `--json`, asserts exit 0, and parses its stdout.
fn ok_json(daemon: &Daemon, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let text = ok(daemon, &full);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("--json {args:?} printed non-JSON ({e}): {text}"))
}

/// A small corpus: texts, 4-dimension vectors (unit length, so every distance agrees) and
/// metadata, plus one vector-only and one text-only document.
fn corpus() -> Vec<Value> {
    vec![
        json!({"id": "otter", "text": "Sea otters hold hands while they sleep so they do not drift apart",
               "vector": [1.0, 0.0, 0.0, 0.0], "metadata": {"kind": "animal", "year": 2019, "tags": ["sea", "mammal"]}}),
        json!({"id": "beaver", "text": "Beavers build dams from branches and mud across streams",
               "vector": [0.8, 0.6, 0.0, 0.0], "metadata": {"kind": "animal", "year": 2021}}),
        json!({"id": "heron", "text": "Herons stand still in shallow water waiting for fish",
               "vector": [0.6, 0.8, 0.0, 0.0], "metadata": {"kind": "animal", "year": 2023, "rare": false}}),
        json!({"id": "rust", "text": "Rust is a systems programming language built around ownership",
               "vector": [0.0, 0.0, 1.0, 0.0], "metadata": {"kind": "tech", "year": 2015}}),
        json!({"id": "sqlite", "text": "SQLite keeps a whole database in one single file",
               "vector": [0.0, 0.0, 0.6, 0.8], "metadata": {"kind": "tech", "year": 2000}}),
        json!({"id": "note-vec", "vector": [0.0, 1.0, 0.0, 0.0], "metadata": {"kind": "note"}}),
        json!({"id": "note-text", "text": "A text only note about otters and rivers",
               "metadata": {"kind": "note", "year": 2024}}),
    ]
}

fn write_jsonl(path: &Path, documents: &[Value]) {
    let mut text = String::new();
    for document in documents {
        text.push_str(&document.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).expect("write the JSONL file");
}

fn ids(result: &Value, key: &str) -> Vec<String> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is a list: {result}"))
        .iter()
        .map(|d| d["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Documents of JSON lines by id.
fn by_id(lines: &str) -> BTreeMap<String, Value> {
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let document: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (document["id"].as_str().expect("an id").to_owned(), document)
        })
        .collect()
}

/// Vectors come back as 32-bit floats: compare them with a tolerance, everything else exactly.
fn assert_same_document(got: &Value, want: &Value) {
    assert_eq!(got["text"], want["text"], "text of {want}");
    assert_eq!(got["metadata"], want["metadata"], "metadata of {want}");
    match (got["vector"].as_array(), want["vector"].as_array()) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            assert_eq!(a.len(), b.len(), "vector length of {want}");
            for (x, y) in a.iter().zip(b) {
                let (x, y) = (x.as_f64().expect("a number"), y.as_f64().expect("a number"));
                assert!((x - y).abs() < 1e-6, "vector of {want}: got {got}");
            }
        }
        _ => panic!("vector presence differs: got {got}, want {want}"),
    }
    let keys =
        |d: &Value| -> Vec<String> { d.as_object().expect("an object").keys().cloned().collect() };
    assert_eq!(keys(got), keys(want), "the same fields, no others");
}

#[test]
fn collections_are_created_listed_shown_and_dropped() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);

    let text = ok(&daemon, &["collections"]);
    assert!(text.contains("no collections"), "{text}");
    assert_eq!(ok_json(&daemon, &["collections"])["collections"], json!([]));

    let text = ok(&daemon, &["collections", "create", "notes", "--dim", "4"]);
    assert!(
        text.contains("created") && text.contains("`notes`"),
        "{text}"
    );
    let created = ok_json(
        &daemon,
        &[
            "collections",
            "create",
            "code",
            "--dim",
            "8",
            "--distance",
            "dot",
            "--tokenizer",
            "trigram",
        ],
    );
    assert_eq!(
        created["collection"],
        json!({"name": "code", "dimension": 8, "distance": "dot", "tokenizer": "trigram", "count": 0})
    );

    let listed = ok_json(&daemon, &["collections", "list"]);
    let names: Vec<&str> = listed["collections"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["code", "notes"], "by name");
    let table = ok(&daemon, &["collections"]);
    let header = table.lines().next().expect("a header");
    for column in ["NAME", "DIMENSION", "DISTANCE", "TOKENIZER", "DOCUMENTS"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("code") && l.contains("dot") && l.contains("trigram")),
        "{table}"
    );

    let shown = ok_json(&daemon, &["collections", "show", "notes"]);
    assert_eq!(shown["collection"]["dimension"], 4);
    assert_eq!(shown["collection"]["distance"], "cosine", "the default");
    assert_eq!(shown["collection"]["tokenizer"], "porter", "the default");
    let text = ok(&daemon, &["collections", "get", "notes"]);
    assert!(text.contains("dimension 4"), "{text}");

    // Creating it again fails with the daemon's code, once; --if-not-exists succeeds.
    let out = run(&daemon, &["collections", "create", "notes", "--dim", "4"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("collection_exists").count(), 1, "{stderr}");
    ok(
        &daemon,
        &[
            "collections",
            "create",
            "notes",
            "--dim",
            "4",
            "--if-not-exists",
        ],
    );

    let dropped = ok_json(&daemon, &["collections", "drop", "code"]);
    assert_eq!(dropped["dropped"], true);
    let text = ok(&daemon, &["collections", "drop", "notes"]);
    assert!(text.contains("dropped"), "{text}");
    assert_eq!(ok_json(&daemon, &["collections"])["collections"], json!([]));

    let out = run(&daemon, &["collections", "show", "notes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("collection_not_found"));
}

#[test]
fn import_count_get_search_export_and_delete() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let corpus = corpus();
    let file = scratch.path("notes.jsonl");
    write_jsonl(&file, &corpus);
    let file = file.to_str().expect("UTF-8 path");

    ok(&daemon, &["collections", "create", "notes", "--dim", "4"]);
    let text = ok(&daemon, &["import", "notes", file]);
    assert!(text.contains("imported 7 documents into `notes`"), "{text}");
    assert!(text.contains("docs/s"), "{text}");
    // Importing again replaces by id: same count. --json prints the summary object.
    let report = ok_json(&daemon, &["import", "notes", file, "--batch", "3"]);
    assert_eq!(report["imported"], 7, "{report}");
    assert_eq!(report["collection"], "notes");
    assert!(
        report["docs_per_s"].as_f64().expect("a rate") > 0.0,
        "{report}"
    );
    assert!(report.get("failed").is_none(), "{report}");

    // count
    assert_eq!(ok(&daemon, &["count", "notes"]).trim(), "7");
    assert_eq!(ok_json(&daemon, &["count", "notes"]), json!({"count": 7}));
    let animals = ok(
        &daemon,
        &["count", "notes", "--filter", r#"{"kind": "animal"}"#],
    );
    assert_eq!(animals.trim(), "3");
    let recent = ok(
        &daemon,
        &["count", "notes", "--filter", r#"{"year": {"$gte": 2021}}"#],
    );
    assert_eq!(recent.trim(), "3", "beaver, heron, note-text");
    assert_eq!(
        ok_json(&daemon, &["collections", "show", "notes"])["collection"]["count"],
        7
    );

    // get
    let got = ok_json(
        &daemon,
        &[
            "get",
            "notes",
            "otter",
            "note-vec",
            "--include",
            "text,metadata,vector",
        ],
    );
    let mut got_ids = ids(&got, "documents");
    got_ids.sort();
    assert_eq!(got_ids, ["note-vec", "otter"]);
    for document in got["documents"].as_array().expect("a list") {
        let want = corpus
            .iter()
            .find(|d| d["id"] == document["id"])
            .expect("known");
        assert_same_document(document, want);
    }
    let got = ok_json(&daemon, &["get", "notes", "otter"]);
    assert!(
        got["documents"][0].get("vector").is_none(),
        "default include: {got}"
    );
    assert_eq!(
        got["documents"][0]["metadata"]["tags"],
        json!(["sea", "mammal"])
    );
    let text = ok(&daemon, &["get", "notes", "otter"]);
    assert!(text.starts_with("otter\n"), "{text}");
    assert!(text.contains("Sea otters hold hands"), "{text}");
    assert!(text.contains(r#""kind":"animal""#), "{text}");
    // A missing id: the others are printed, the missing one named once, exit 1.
    let out = run(&daemon, &["get", "notes", "otter", "no-such-id"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Sea otters"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("no-such-id").count(), 1, "{stderr}");

    // search, lexical: only the otter mentions drifting apart.
    let lexical = ok_json(
        &daemon,
        &["search", "notes", "drift apart", "--mode", "lexical"],
    );
    assert_eq!(ids(&lexical, "hits")[0], "otter", "{lexical}");
    assert_eq!(lexical["hits"][0]["ranks"]["lexical"], 1);
    assert_eq!(lexical["hits"][0]["ranks"]["vector"], Value::Null);
    assert!(
        lexical["hits"][0]["text"]
            .as_str()
            .expect("text included")
            .contains("otters")
    );
    // Odd input is plain text, never query syntax.
    ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "\"otters AND (NEAR* -",
            "--mode",
            "lexical",
        ],
    );

    // search, vector: nearest first, k respected, --exact agrees.
    let vector = ok_json(
        &daemon,
        &["search", "notes", "--vector", "[0, 0, 1, 0]", "-k", "2"],
    );
    assert_eq!(ids(&vector, "hits"), ["rust", "sqlite"], "{vector}");
    assert_eq!(vector["hits"][0]["ranks"]["vector"], 1);
    assert_eq!(vector["hits"][0]["ranks"]["lexical"], Value::Null);
    let exact = ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "--vector",
            "[1, 0, 0, 0]",
            "-k",
            "3",
            "--exact",
        ],
    );
    assert_eq!(ids(&exact, "hits"), ["otter", "beaver", "heron"], "{exact}");
    let approx = ok_json(
        &daemon,
        &["search", "notes", "--vector", "[1, 0, 0, 0]", "-k", "3"],
    );
    assert_eq!(ids(&approx, "hits"), ids(&exact, "hits"));

    // search, hybrid (implied by text and vector): the otter is first in both lists.
    let dir = scratch.path("query.json");
    std::fs::write(&dir, "[1.0, 0.0, 0.0, 0.0]\n").expect("write the vector file");
    let hybrid = ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "otters",
            "--vector-file",
            dir.to_str().expect("UTF-8"),
        ],
    );
    let first = &hybrid["hits"][0];
    assert_eq!(first["id"], "otter", "{hybrid}");
    assert!(
        first["ranks"]["lexical"].is_u64() && first["ranks"]["vector"] == 1,
        "{hybrid}"
    );
    let explicit = ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "otters",
            "--vector",
            "[1,0,0,0]",
            "--mode",
            "hybrid",
        ],
    );
    assert_eq!(ids(&explicit, "hits"), ids(&hybrid, "hits"));

    // search with a filter: pre-filtering, so both tech documents come back for any vector.
    let filtered = ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "--vector",
            "[1, 0, 0, 0]",
            "--filter",
            r#"{"kind": "tech"}"#,
        ],
    );
    let mut filtered_ids = ids(&filtered, "hits");
    filtered_ids.sort();
    assert_eq!(filtered_ids, ["rust", "sqlite"], "{filtered}");
    let filtered = ok_json(
        &daemon,
        &[
            "search",
            "notes",
            "otters",
            "--vector",
            "[1,0,0,0]",
            "--filter",
            r#"{"$or": [{"kind": "note"}, {"year": {"$lt": 2016}}]}"#,
            "--include",
            "metadata",
        ],
    );
    for hit in filtered["hits"].as_array().expect("hits") {
        assert!(
            ["note-text", "note-vec", "rust", "sqlite"].contains(&hit["id"].as_str().expect("id"))
        );
        assert!(hit.get("text").is_none(), "--include metadata only: {hit}");
        assert!(hit["metadata"].is_object(), "{hit}");
    }
    assert!(
        ids(&filtered, "hits").contains(&"note-text".to_owned()),
        "the only matching document that mentions otters: {filtered}"
    );

    // search, text output: a ranked list with the ranks and a snippet.
    let text = ok(
        &daemon,
        &["search", "notes", "drift apart", "--mode", "lexical"],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("1. otter  score "), "{text}");
    assert!(
        lines[0].contains("lexical #1") && lines[0].contains("vector -"),
        "{text}"
    );
    assert!(lines[1].contains("Sea otters hold hands"), "{text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");

    // export: the shape import reads; with vectors it round-trips every document.
    let exported = by_id(&ok(&daemon, &["export", "notes", "--include-vectors"]));
    assert_eq!(exported.len(), corpus.len());
    for want in &corpus {
        let got = &exported[want["id"].as_str().expect("an id")];
        assert_same_document(got, want);
    }
    let out = run(&daemon, &["export", "notes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let without_vectors = by_id(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(without_vectors.len(), corpus.len());
    assert!(without_vectors.values().all(|d| d.get("vector").is_none()));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--include-vectors"),
        "the vector-only document cannot be re-imported without vectors: {out:?}"
    );
    let animals = by_id(&ok(
        &daemon,
        &["export", "notes", "--filter", r#"{"kind":"animal"}"#],
    ));
    assert_eq!(
        animals.keys().collect::<Vec<_>>(),
        ["beaver", "heron", "otter"]
    );
    // ...and importing the export into another collection gives the same documents.
    let copy = scratch.path("copy.jsonl");
    std::fs::write(
        &copy,
        ok(&daemon, &["export", "notes", "--include-vectors"]),
    )
    .expect("write");
    ok(&daemon, &["collections", "create", "copy", "--dim", "4"]);
    ok(&daemon, &["import", "copy", copy.to_str().expect("UTF-8")]);
    let copied = by_id(&ok(&daemon, &["export", "copy", "--include-vectors"]));
    assert_eq!(copied, exported);

    // delete by id, by filter, by both; counts follow.
    let text = ok(&daemon, &["delete", "notes", "otter"]);
    assert!(text.contains("deleted 1 document from `notes`"), "{text}");
    let deleted = ok_json(
        &daemon,
        &["delete", "notes", "--filter", r#"{"kind": "tech"}"#],
    );
    assert_eq!(deleted["deleted"], 2, "{deleted}");
    assert!(deleted["generation"].is_u64(), "{deleted}");
    let deleted = ok_json(
        &daemon,
        &[
            "delete",
            "notes",
            "beaver",
            "heron",
            "--filter",
            r#"{"year": 2021}"#,
        ],
    );
    assert_eq!(deleted["deleted"], 1, "only beaver matches both: {deleted}");
    let deleted = ok_json(&daemon, &["delete", "notes", "otter", "no-such-id"]);
    assert_eq!(deleted["deleted"], 0, "already gone: {deleted}");
    assert_eq!(ok(&daemon, &["count", "notes"]).trim(), "3");
    let left = by_id(&ok(&daemon, &["export", "notes"]));
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["heron", "note-text", "note-vec"]
    );

    // drop: the collection and its documents are gone.
    ok(&daemon, &["collections", "drop", "notes"]);
    let out = run(&daemon, &["count", "notes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("collection_not_found").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_collection_created_without_a_dimension_takes_its_first_imported_vector() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    ok(&daemon, &["collections", "create", "free"]);
    assert_eq!(
        ok_json(&daemon, &["collections", "show", "free"])["collection"]["dimension"],
        0
    );
    let file = scratch.path("corpus.jsonl");
    write_jsonl(&file, &corpus());
    let report = ok_json(&daemon, &["import", "free", file.to_str().expect("UTF-8")]);
    assert_eq!(report["imported"], 7, "{report}");
    assert_eq!(
        ok_json(&daemon, &["collections", "show", "free"])["collection"]["dimension"],
        4
    );
    let text = ok(&daemon, &["collections", "show", "free"]);
    assert!(text.contains("dimension 4"), "{text}");
    // Another length is refused as in any collection of dimension 4.
    let bad = scratch.path("bad.jsonl");
    write_jsonl(&bad, &[json!({"id": "x", "vector": [1.0, 2.0]})]);
    let out = run(&daemon, &["import", "free", bad.to_str().expect("UTF-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn import_reads_standard_input() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    ok(&daemon, &["collections", "create", "notes", "--dim", "4"]);
    let mut input = String::new();
    for document in corpus() {
        input.push_str(&document.to_string());
        input.push_str("\n\n"); // blank lines are skipped
    }
    let mut child = Command::new(CTXD)
        .args([
            "--socket",
            daemon.socket.to_str().expect("UTF-8"),
            "import",
            "notes",
            "-",
        ])
        .env_remove("CTXD_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctxd import");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for ctxd import");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("imported 7 documents") && text.contains("standard input"),
        "{text}"
    );
    assert_eq!(ok(&daemon, &["count", "notes"]).trim(), "7");
}

#[test]
fn an_import_stops_at_a_bad_line_and_says_what_was_committed() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    ok(&daemon, &["collections", "create", "notes", "--dim", "4"]);
    let good = |i: usize| {
        json!({"id": format!("d{i}"), "text": format!("document {i}"), "vector": [1, 0, 0, i]})
            .to_string()
    };

    // Line 6 has a 3-dimension vector; batches of 2 mean lines 1–4 went in two batches and
    // line 5 is sent alone before the import stops.
    let mut lines: Vec<String> = (1..=5).map(good).collect();
    lines.push(json!({"id": "bad", "text": "x", "vector": [1, 2, 3]}).to_string());
    lines.extend((7..=9).map(good));
    let file = scratch.path("bad-vector.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = run(
        &daemon,
        &[
            "import",
            "notes",
            file.to_str().expect("UTF-8"),
            "--batch",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 6"), "names the line: {stderr}");
    assert!(
        stderr.contains("3 dimensions") && stderr.contains("expects 4"),
        "{stderr}"
    );
    assert!(
        stderr.contains("5 documents (through line 5) were committed and stay committed"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no success summary: {out:?}");
    assert_eq!(ok(&daemon, &["count", "notes"]).trim(), "5");

    // Broken JSON in the middle of a fresh collection, with --json: the report on stdout.
    ok(&daemon, &["collections", "create", "other", "--dim", "4"]);
    let mut lines: Vec<String> = (1..=3).map(good).collect();
    lines.push(r#"{"id": "broken", "text": "#.to_owned());
    lines.extend((5..=6).map(good));
    let file = scratch.path("bad-json.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let out = run(
        &daemon,
        &["--json", "import", "other", file.to_str().expect("UTF-8")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints the report");
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(report["failed"]["line"], 4, "{report}");
    assert!(
        report["failed"]["message"]
            .as_str()
            .expect("a message")
            .contains("EOF"),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("3 documents"),
        "{stderr}"
    );
    assert_eq!(ok(&daemon, &["count", "other"]).trim(), "3");

    // Into a collection that does not exist: nothing is read, the daemon's error is printed.
    let out = run(
        &daemon,
        &["import", "missing", file.to_str().expect("UTF-8")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("collection_not_found"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    let missing = scratch.path("nope.json");
    let missing = missing.to_str().expect("UTF-8");
    for (args, needle) in [
        (
            &["search", "notes", "x", "--filter", "{kind: 1}"][..],
            "not valid JSON",
        ),
        (
            &["count", "notes", "--filter", r#"{"kind": {"$regex": "a"}}"#],
            "$regex",
        ),
        (
            &["delete", "notes", "--filter", "[]"],
            "must be a JSON object",
        ),
        (
            &["search", "notes", "--vector", "[1, 2,"],
            "not a JSON array",
        ),
        (
            &["search", "notes", "--vector", r#"{"x": 1}"#],
            "not a JSON array",
        ),
        (
            &["search", "notes", "--vector-file", missing],
            "cannot read",
        ),
        (&["search", "notes"], "needs query TEXT"),
        // (TEXT alone with `--mode vector` is for the daemon to judge: a collection with an
        // embedder embeds it; tests/e2e/embed.rs.)
        (&["search", "notes", "--mode", "vector"], "needs query TEXT"),
        (&["delete", "notes"], "needs document IDs"),
        (&["get", "notes"], "ID"),
        (&["import", "notes", missing], "cannot open"),
        (
            &["collections", "create", ".hidden", "--dim", "4"],
            "not a collection name",
        ),
        (
            &["search", "notes", "x", "--include", "text,title"],
            "title",
        ),
    ] {
        let out = run(&daemon, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn fifty_thousand_documents_import_through_the_cli() {
    const N: usize = 50_000;
    const DIM: usize = 8;
    let scratch = Scratch::new();
    let daemon = Daemon::start(&scratch);
    ok(&daemon, &["collections", "create", "bulk", "--dim", "8"]);

    // Seeded xorshift: the same file every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const WORDS: [&str; 16] = [
        "otter", "river", "stone", "vector", "index", "query", "daemon", "socket", "lattice",
        "harbor", "meadow", "signal", "copper", "window", "garden", "thread",
    ];
    let path = scratch.path("bulk.jsonl");
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..N {
        let words: Vec<&str> = (0..8).map(|_| WORDS[(next() % 16) as usize]).collect();
        let vector: Vec<String> = (0..DIM)
            .map(|_| format!("{:.4}", (next() % 20_000) as f64 / 10_000.0 - 1.0))
            .collect();
        writeln!(
            out,
            r#"{{"id":"doc-{i}","text":"{}","vector":[{}],"metadata":{{"group":{},"even":{}}}}}"#,
            words.join(" "),
            vector.join(","),
            i % 10,
            i % 2 == 0
        )
        .expect("write");
    }
    out.flush().expect("flush");
    drop(out);

    let text = ok(&daemon, &["import", "bulk", path.to_str().expect("UTF-8")]);
    assert!(text.contains(&format!("imported {N} documents")), "{text}");
    assert_eq!(ok(&daemon, &["count", "bulk"]).trim(), N.to_string());
    let group = ok(&daemon, &["count", "bulk", "--filter", r#"{"group": 3}"#]);
    assert_eq!(group.trim(), (N / 10).to_string());
    let last = ok_json(&daemon, &["get", "bulk", &format!("doc-{}", N - 1)]);
    assert_eq!(last["documents"][0]["metadata"]["group"], (N - 1) % 10);
}
