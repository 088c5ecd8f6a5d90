//! `ctxd import`: upserts the documents of a JSON-lines file (or stdin), in batches.
//!
//! A reader thread reads the input line by line, checks each document against the collection
//! (so an error names its line, not just a batch), and hands batches over a small bounded
//! channel; this task sends them in order with `upsert`. Reading and parsing the next batch so
//! overlap the daemon's work on the previous one, and memory stays bounded by a couple of batches
//! whatever the file's size.
//!
//! Each batch is one request (the client may cut a batch of large documents into several, each
//! atomic), so atomicity is per batch. On an invalid line the documents before it are sent and
//! the import stops; on a failed batch it stops at once. Either way the report says exactly how
//! many documents were committed (all those on lines before a given line) and that they stay
//! committed.

use super::args::ImportArgs;
use super::output::{Output, error_code, exit, fail};
use ctxd_client::{Client, Error};
use ctxd_proto::limits::MAX_BATCH_DOCUMENTS;
use ctxd_proto::validate::{self, DocumentError};
use ctxd_proto::{Document, ErrorCode};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Batches read ahead of the one being sent: enough to keep the daemon busy while the reader
/// parses, few enough that memory stays at a few batches.
const READ_AHEAD: usize = 2;

/// Documents per request by default when the daemon embeds them.
const EMBED_BATCH: usize = 64;

/// Read buffer for the input: large sequential reads, whatever the line lengths.
const READ_BUFFER: usize = 1 << 20;

/// Runs `ctxd import`.
pub async fn run(client: &Client, args: ImportArgs, out: Output) -> ExitCode {
    // The collection's dimension lets the reader check every vector, so a wrong one is reported
    // with its line number before anything of its batch is sent.
    let info = match client.get_collection(&args.collection).await {
        Ok(result) => result.collection,
        Err(e) => return fail(&e),
    };
    let input = match Input::open(&args.file) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("ctxd: cannot open `{}`: {e}", args.file.display());
            return ExitCode::from(exit::FAILED);
        }
    };
    let checker = Checker {
        collection: info.name.clone(),
        dimension: AtomicU32::new(info.dimension),
    };
    // Text-only lines into a collection with an embedder wait for the model (a thousand
    // abstracts take about a minute on two cores, and the next batch waits behind them): small
    // batches answer well within the client's timeout and keep the progress bar moving.
    let batch_size = match args.batch {
        Some(batch) => batch as usize,
        None if info.embedder.is_some() => EMBED_BATCH,
        None => MAX_BATCH_DOCUMENTS,
    };
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    let reader = input.reader;
    let spawned = std::thread::Builder::new()
        .name("ctxd-import-reader".into())
        .spawn(move || read(reader, &checker, batch_size, &sender));
    if let Err(e) = spawned {
        eprintln!("ctxd: cannot start the input reader: {e}");
        return ExitCode::from(exit::FAILED);
    }

    let progress = progress_bar(input.size);
    let started = Instant::now();
    let mut import = Import {
        client,
        collection: &args.collection,
        progress: &progress,
        started,
        imported: 0,
        committed_through: 0,
    };
    let outcome = import.send_all(receiver).await;
    progress.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report {
        collection: args.collection.clone(),
        input: input.name.clone(),
        imported: import.imported,
        seconds,
        docs_per_s: rate(import.imported, seconds),
        failed: None,
    };
    let code = match outcome {
        Outcome::Done => ExitCode::from(exit::OK),
        Outcome::BadLine { line, reason } => {
            eprintln!("ctxd: {}, line {line}: {reason}", input.name);
            eprintln!(
                "ctxd: import stopped at line {line}: {}",
                committed(import.imported, import.committed_through, line, false)
            );
            report.failed = Some(Failure {
                line,
                message: reason,
                code: None,
                batch_may_be_written: false,
                also_committed: None,
            });
            ExitCode::from(exit::FAILED)
        }
        Outcome::BatchFailed {
            first_line,
            last_line,
            also_committed,
            error,
        } => {
            // Without a reply the daemon may or may not have committed the batch.
            let unknown = matches!(error, Error::Io(_) | Error::Timeout(_));
            let lines = if first_line == last_line {
                format!("line {first_line}")
            } else {
                format!("lines {first_line}–{last_line}")
            };
            eprintln!("ctxd: the batch of {lines} failed: {error}");
            eprintln!(
                "ctxd: import stopped at line {first_line}: {}",
                committed(
                    import.imported,
                    import.committed_through,
                    first_line,
                    unknown
                )
            );
            if let Some((from, to)) = also_committed {
                eprintln!(
                    "ctxd: lines {from}–{to}, sent before the failure was known, were committed too"
                );
            }
            report.failed = Some(Failure {
                line: first_line,
                message: error.to_string(),
                code: error.code(),
                batch_may_be_written: unknown,
                also_committed: also_committed.map(|(from, to)| [from, to]),
            });
            error_code(&error)
        }
        Outcome::ReaderStopped => {
            let line = import.committed_through + 1;
            eprintln!("ctxd: the input reader stopped unexpectedly");
            eprintln!(
                "ctxd: import stopped: {}",
                committed(import.imported, import.committed_through, line, false)
            );
            report.failed = Some(Failure {
                line,
                message: "the input reader stopped unexpectedly".into(),
                code: None,
                batch_may_be_written: false,
                also_committed: None,
            });
            ExitCode::from(exit::FAILED)
        }
    };
    if out.json || report.failed.is_none() {
        out.print(&report, |r| {
            format!(
                "imported {} documents into `{}` from {} in {:.2}s ({:.0} docs/s)",
                r.imported, r.collection, r.input, r.seconds, r.docs_per_s
            )
        });
    }
    code
}

/// What `--json` prints: the summary, and on failure where and why it stopped.
#[derive(Debug, Serialize)]
struct Report {
    /// The collection written into.
    collection: String,
    /// The input's path, or `standard input`.
    input: String,
    /// Documents committed (all of those on lines before `failed.line`, when it failed).
    imported: u64,
    /// Wall time of the import.
    seconds: f64,
    /// `imported / seconds`.
    docs_per_s: f64,
    /// Why the import stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Failure>,
}

/// Where and why an import stopped.
#[derive(Debug, Serialize)]
struct Failure {
    /// The invalid line, or the first line of the batch that failed; nothing from here on was
    /// committed (unless `batch_may_be_written`).
    line: u64,
    /// The reason.
    message: String,
    /// The daemon's error code, when the daemon refused the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    /// The connection failed before the daemon answered: the failing batch may have been
    /// written as well.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    batch_may_be_written: bool,
    /// First and last line of documents after the failed batch that were committed anyway
    /// (their batch was already sent when the failure came back).
    #[serde(skip_serializing_if = "Option::is_none")]
    also_committed: Option<[u64; 2]>,
}

/// How sending ended.
enum Outcome {
    /// Every line was read and every batch committed.
    Done,
    /// A line could not be read or is not a valid document.
    BadLine { line: u64, reason: String },
    /// The daemon refused a batch, or the connection failed; `first_line` is the first line not
    /// known to be committed.
    BatchFailed {
        first_line: u64,
        last_line: u64,
        /// Lines after the failed batch that were committed anyway (a batch already in flight).
        also_committed: Option<(u64, u64)>,
        error: Error,
    },
    /// The reader thread ended without saying why (it panicked).
    ReaderStopped,
}

/// What the reader sends.
enum Item {
    /// Documents to upsert, in input order.
    Batch(Batch),
    /// An unreadable or invalid line; the documents before it were sent first.
    Stop { line: u64, reason: String },
    /// End of input, after the last batch.
    End,
}

/// Consecutive documents of the input with their line numbers (1-based).
struct Batch {
    documents: Vec<Document>,
    lines: Vec<u64>,
    /// Input bytes consumed through this batch's last line, for the progress bar.
    end_offset: u64,
}

/// The sending side's state.
struct Import<'a> {
    client: &'a Client,
    collection: &'a str,
    progress: &'a ProgressBar,
    started: Instant,
    /// Documents committed so far.
    imported: u64,
    /// The line of the last committed document (0 before the first).
    committed_through: u64,
}

impl Import<'_> {
    async fn send_all(&mut self, mut receiver: mpsc::Receiver<Item>) -> Outcome {
        let mut next = None;
        loop {
            let item = match next.take() {
                Some(item) => item,
                None => match receiver.recv().await {
                    Some(item) => item,
                    None => return Outcome::ReaderStopped,
                },
            };
            match item {
                Item::Batch(first) => {
                    // Batches the reader already has ready go in the same call, which keeps
                    // one request in flight while the next is encoded (each stays atomic).
                    let mut batches = vec![first];
                    while batches.len() < ctxd_client::UPSERT_IN_FLIGHT {
                        match receiver.try_recv() {
                            Ok(Item::Batch(batch)) => batches.push(batch),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if let Err(outcome) = self.send(batches).await {
                        return outcome;
                    }
                }
                Item::Stop { line, reason } => return Outcome::BadLine { line, reason },
                Item::End => return Outcome::Done,
            }
        }
    }

    async fn send(&mut self, batches: Vec<Batch>) -> Result<(), Outcome> {
        let end_offset = batches.last().map_or(0, |b| b.end_offset);
        let mut lines = Vec::new();
        let mut documents = Vec::new();
        for batch in batches {
            lines.extend(batch.lines);
            documents.push(batch.documents);
        }
        let result = self.client.upsert_batches(self.collection, documents).await;
        let (committed, failed, error) = match result {
            Ok(_) => (lines.len(), None, None),
            Err(Error::PartialUpsert {
                committed,
                failed,
                source,
            }) => (committed as usize, Some(failed), Some(*source)),
            Err(error) => (0, Some(0..lines.len()), Some(error)),
        };
        let Some(error) = error else {
            self.imported += lines.len() as u64;
            self.committed_through = lines.last().copied().unwrap_or(self.committed_through);
            self.progress.set_position(end_offset);
            self.progress.set_message(format!(
                "{} documents, {:.0} docs/s",
                self.imported,
                rate(self.imported, self.started.elapsed().as_secs_f64())
            ));
            return Ok(());
        };
        // Committed: everything before the failed request, and the first `committed -
        // failed.start` documents after it (a request already in flight behind it).
        let failed = failed.unwrap_or(0..lines.len());
        let through = self.committed_through;
        let line = |i: usize| lines.get(i).copied().unwrap_or(through);
        let before = failed.start.min(committed);
        let after = committed - before;
        self.imported += committed as u64;
        if before > 0 {
            self.committed_through = line(before - 1);
        }
        Err(Outcome::BatchFailed {
            first_line: line(failed.start),
            last_line: line(failed.end.saturating_sub(1)),
            also_committed: (after > 0).then(|| (line(failed.end), line(failed.end + after - 1))),
            error,
        })
    }
}

/// "3 documents (through line 5) were committed and stay committed; nothing from line 6 on was
/// imported".
fn committed(imported: u64, through: u64, stop: u64, unknown: bool) -> String {
    let mut text = match imported {
        0 => "no documents were committed".to_owned(),
        1 => format!("1 document (line {through}) was committed and stays committed"),
        n => format!("{n} documents (through line {through}) were committed and stay committed"),
    };
    if unknown {
        text.push_str(&format!(
            "; the connection failed before the daemon answered, so the batch from line {stop} \
             may have been written too"
        ));
    } else {
        text.push_str(&format!("; nothing from line {stop} on was imported"));
    }
    text.push_str(" (importing again is safe: documents with the same id are replaced)");
    text
}

fn rate(documents: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        documents as f64 / seconds
    } else {
        0.0
    }
}

/// A bar over the file's bytes when stderr is a terminal (a spinner for stdin); hidden
/// otherwise, when the summary line is all that is printed.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match size {
        Some(len) => (
            ProgressBar::new(len),
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes}  {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {elapsed_precise} {bytes} read  {msg}",
        ),
    };
    // A template error would be a bug in the literal above; the default style still works.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The input: a file or stdin, buffered.
struct Input {
    reader: Box<dyn BufRead + Send>,
    /// The file's size, for the progress bar (none for stdin or a pipe).
    size: Option<u64>,
    /// How messages name it.
    name: String,
}

impl Input {
    fn open(path: &Path) -> io::Result<Input> {
        if path == Path::new("-") {
            return Ok(Input {
                reader: Box::new(BufReader::with_capacity(READ_BUFFER, io::stdin())),
                size: None,
                name: "standard input".to_owned(),
            });
        }
        let file = File::open(path)?;
        let size = file
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| m.len());
        Ok(Input {
            reader: Box::new(BufReader::with_capacity(READ_BUFFER, file)),
            size,
            name: path.display().to_string(),
        })
    }
}

/// The reader thread: lines → checked documents → batches, until the end, the first bad line,
/// or the receiver going away (the import stopped).
fn read(
    mut input: Box<dyn BufRead + Send>,
    checker: &Checker,
    batch_size: usize,
    sender: &mpsc::Sender<Item>,
) {
    let mut batch = Batch::new(batch_size);
    let mut line = Vec::with_capacity(64 * 1024);
    let mut number = 0_u64;
    let mut offset = 0_u64;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => {
                if flush(sender, &mut batch, batch_size) {
                    let _ = sender.blocking_send(Item::End);
                }
                return;
            }
            Ok(n) => {
                number += 1;
                offset += n as u64;
            }
            Err(e) => {
                if flush(sender, &mut batch, batch_size) {
                    let _ = sender.blocking_send(Item::Stop {
                        line: number + 1,
                        reason: format!("cannot read the input: {e}"),
                    });
                }
                return;
            }
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match checker.document(text) {
            Ok(document) => {
                batch.documents.push(document);
                batch.lines.push(number);
                batch.end_offset = offset;
                if batch.documents.len() >= batch_size && !flush(sender, &mut batch, batch_size) {
                    return;
                }
            }
            Err(reason) => {
                if flush(sender, &mut batch, batch_size) {
                    let _ = sender.blocking_send(Item::Stop {
                        line: number,
                        reason,
                    });
                }
                return;
            }
        }
    }
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        Batch {
            documents: Vec::with_capacity(capacity),
            lines: Vec::with_capacity(capacity),
            end_offset: 0,
        }
    }
}

/// Sends the batch if it holds anything and starts a new one; false once the import stopped.
fn flush(sender: &mpsc::Sender<Item>, batch: &mut Batch, batch_size: usize) -> bool {
    if batch.documents.is_empty() {
        return true;
    }
    let full = std::mem::replace(batch, Batch::new(batch_size));
    sender.blocking_send(Item::Batch(full)).is_ok()
}

/// Checks a line as a document of one collection, with the protocol's rules
/// ([`ctxd_proto::validate`]: the daemon applies the same ones; here they get a line number).
struct Checker {
    collection: String,
    /// The collection's dimension; 0 until a vector fixes it (a collection made without one).
    dimension: AtomicU32,
}

impl Checker {
    fn document(&self, line: &[u8]) -> Result<Document, String> {
        // serde's derived `Deserialize` also takes a struct as a JSON array (`["a","text"]`),
        // which is not a document line; only objects are.
        if line.first() != Some(&b'{') {
            return Err(format!(
                "expected a JSON object such as {{\"id\": \"a\", \"text\": \"...\"}}, found `{}`",
                super::output::one_line(&String::from_utf8_lossy(line), 40)
            ));
        }
        let document: Document = serde_json::from_slice(line).map_err(|e| json_error(&e))?;
        // A collection created without a dimension takes its first vector's (as the daemon
        // will): later lines are checked against it.
        let dimension = match (self.dimension.load(Ordering::Relaxed), &document.vector) {
            (0, Some(vector)) => {
                let first = u32::try_from(vector.len()).unwrap_or(u32::MAX);
                match self.dimension.compare_exchange(
                    0,
                    first,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => first,
                    Err(fixed) => fixed,
                }
            }
            (dimension, _) => dimension,
        };
        match validate::document(&document, dimension) {
            Ok(_) => Ok(document),
            // The one rule whose words need the collection's name.
            Err(DocumentError::Dimension {
                id,
                expected,
                received,
            }) => Err(format!(
                "the vector of document {id:?} has {received} dimensions, collection `{}` \
                 expects {expected}",
                self.collection
            )),
            Err(other) => Err(other.to_string()),
        }
    }
}

/// serde_json's message without its "at line 1 column N" (each line is one JSON value; our own
/// line number is the one that matters), with the column kept.
fn json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let bare = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(bare, _)| bare);
    if error.column() > 0 {
        format!("{bare} (column {})", error.column())
    } else {
        bare.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctxd_proto::limits::{MAX_ID_BYTES, MAX_METADATA_BYTES};
    use std::io::Cursor;

    fn checker() -> Checker {
        Checker {
            collection: "notes".into(),
            dimension: AtomicU32::new(2),
        }
    }

    #[test]
    fn valid_lines_become_documents() {
        let document = checker()
            .document(br#"{"id":"a","text":"otters","vector":[1,0.5],"metadata":{"k":["x",1]}}"#)
            .expect("valid");
        assert_eq!(document.id, "a");
        assert_eq!(document.vector, Some(vec![1.0, 0.5].into()));
        checker()
            .document(br#"{"id":"b","vector":[0,0]}"#)
            .expect("a vector alone is enough");
    }

    #[test]
    fn invalid_lines_say_why() {
        for (line, needle) in [
            (
                &br#"{"id":"a","text":"x""#[..],
                "EOF while parsing an object (column 20)",
            ),
            (br#"{"text":"x"}"#, "missing field `id`"),
            (
                br#"{"id":"a","text":"x","title":"t"}"#,
                "unknown field `title`",
            ),
            (br#"{"id":"","text":"x"}"#, "document id is empty"),
            (br#"{"id":"a"}"#, "neither `text` nor `vector`"),
            (
                br#"{"id":"a","vector":[1,2,3]}"#,
                "has 3 dimensions, collection `notes` expects 2",
            ),
            (
                br#"{"id":"a","vector":[1,1e39]}"#,
                "non-finite value at position 1",
            ),
            (
                br#"{"id":"a","text":"x","metadata":{"m":{"n":1}}}"#,
                "metadata `m` of document \"a\" is an object",
            ),
            (br#"{"id":"a","text":"x","metadata":{"m":null}}"#, "is null"),
            (
                br#"{"id":"a","text":"x","metadata":{"m":[[1]]}}"#,
                "a list holding",
            ),
            (b"[\"a\",\"x\"]", "expected a JSON object"),
            (b"42", "expected a JSON object"),
        ] {
            let error = checker().document(line).expect_err("invalid");
            assert!(
                error.contains(needle),
                "{}: {error}",
                String::from_utf8_lossy(line)
            );
        }
        let long = format!(r#"{{"id":"{}","text":"x"}}"#, "i".repeat(MAX_ID_BYTES + 1));
        assert!(checker().document(long.as_bytes()).is_err());
        let big = format!(
            r#"{{"id":"a","text":"x","metadata":{{"m":"{}"}}}}"#,
            "x".repeat(MAX_METADATA_BYTES)
        );
        assert!(
            checker()
                .document(big.as_bytes())
                .expect_err("too big")
                .contains("bytes as JSON")
        );
    }

    /// Runs the reader over `input` and collects what it sends.
    fn read_all(input: &str, batch_size: usize) -> Vec<String> {
        let (sender, mut receiver) = mpsc::channel(1000);
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(input.as_bytes().to_vec()));
        read(input, &checker(), batch_size, &sender);
        drop(sender);
        let mut seen = Vec::new();
        while let Some(item) = receiver.blocking_recv() {
            seen.push(match item {
                Item::Batch(b) => format!("batch {:?}", b.lines),
                Item::Stop { line, .. } => format!("stop {line}"),
                Item::End => "end".to_owned(),
            });
        }
        seen
    }

    #[test]
    fn the_reader_batches_skips_blank_lines_and_numbers_every_line() {
        let line = |id: &str| format!(r#"{{"id":"{id}","text":"x"}}"#);
        let input = [
            line("a"),
            String::new(),
            line("b"),
            line("c"),
            "  \r".into(),
            line("d"),
        ]
        .join("\n");
        assert_eq!(read_all(&input, 2), ["batch [1, 3]", "batch [4, 6]", "end"]);
        assert_eq!(read_all("", 2), ["end"]);
    }

    #[test]
    fn the_reader_sends_what_precedes_a_bad_line_then_stops() {
        let input = "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"text\":\"x\"}\n\
                     {\"id\":\"c\",\"text\":\"x\"}\nnot json\n{\"id\":\"e\",\"text\":\"x\"}\n";
        assert_eq!(read_all(input, 2), ["batch [1, 2]", "batch [3]", "stop 4"]);
    }

    #[test]
    fn the_report_says_what_stays_committed() {
        assert_eq!(
            committed(3, 5, 6, false),
            "3 documents (through line 5) were committed and stay committed; nothing from line 6 \
             on was imported (importing again is safe: documents with the same id are replaced)"
        );
        assert!(committed(0, 0, 1, false).starts_with("no documents were committed"));
        assert!(committed(2, 2, 3, true).contains("may have been written too"));
    }
}
