//! The command line, as clap definitions. One name per operation: the wire `op`, the client
//! method and the subcommand agree.

use crate::config::parse_duration;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use ctxd_proto::limits::{MAX_BATCH_DOCUMENTS, MAX_DIMENSION, MAX_K};
use ctxd_proto::{Distance, Field, Filter, SearchMode, Tokenizer};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::time::Duration;

/// Exit status, environment and files, for `--help` and the man page.
const AFTER_LONG_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed (the error is printed once)
  2  usage error
  3  the daemon is not reachable (start it with `ctxd serve`)
  4  ctxd serve stopped with every file closed, but the disk was full as it closed the
     stores: SQLite's write-ahead log is kept and applied at the next start (nothing
     acknowledged is lost)
  5  ctxd serve did not start: another ctxd owns the data directory or the socket

Environment:
  CTXD_SOCKET        the daemon's socket, for the daemon and every client
  XDG_RUNTIME_DIR    the default socket is $XDG_RUNTIME_DIR/ctxd/ctxd.sock
  XDG_DATA_HOME      the default data directory is $XDG_DATA_HOME/ctxd
  STATE_DIRECTORY    under a systemd unit: the daemon's default data directory
  RUNTIME_DIRECTORY  under a systemd unit: the daemon's default socket directory
  RUST_LOG           the daemon's log filter when --log-level is not given";

/// ctxd: a local store for documents, full-text and vectors, owned by one daemon.
///
/// `ctxd serve` runs the daemon; every other subcommand talks to it over its socket.
#[derive(Debug, Parser)]
#[command(
    name = "ctxd",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// Options every client subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The daemon's socket [default: $CTXD_SOCKET, else $XDG_RUNTIME_DIR/ctxd/ctxd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up on the daemon after this long (e.g. 500ms, 10s, 2m).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd and the Windows service run this).
    Serve(ServeArgs),
    /// Show the daemon's state, paths, counts, leases and open files; exit 0 when serving.
    Status,
    /// Exit 0 when the daemon is serving, 1 when it is not, 3 when it is unreachable.
    Health,
    /// Stop the daemon and wait until it has closed every file.
    Stop,
    /// A Model Context Protocol server on stdio (for AI agents' memory): attaches to the daemon
    /// that owns --data (or --socket's), starting one that stops when unused if none runs.
    #[command(
        after_help = "Tools: store_document, search, get_documents, delete_documents, list_collections.\n\nExample host configuration (Claude Desktop, Cursor, …):\n  {\"mcpServers\": {\"memory\": {\"command\": \"ctxd\", \"args\": [\"mcp\", \"--data\", \"/home/me/.local/share/ctxd\"]}}}"
    )]
    Mcp(McpArgs),
    /// List collections (the default), or create, drop or show one.
    Collections(CollectionsArgs),
    /// Upsert the documents of a JSON-lines file, in batches, with progress.
    Import(ImportArgs),
    /// Print every document of a collection as JSON lines, the shape `import` reads.
    Export(ExportArgs),
    /// Lexical, vector or hybrid search; prints the hits best first.
    Search(SearchArgs),
    /// Print documents by id.
    Get(GetArgs),
    /// Delete documents by id and/or filter; prints how many were deleted.
    Delete(DeleteArgs),
    /// Count the documents of a collection, optionally filtered.
    Count(CountArgs),
    /// Close every file under a lease so the data directory can be copied; with `-- COMMAND`,
    /// run the command and always resume afterwards.
    Release(ReleaseArgs),
    /// End a lease (or all); the daemon reopens its files when none is left.
    Resume(ResumeArgs),
    /// Write a consistent, verified copy of the data directory while the daemon serves: a
    /// directory, a tar file, a tar stream to stdout (`-`), or a new entry of a directory of
    /// kept snapshots (`--keep`); `ctxd snapshot verify` checks one offline.
    Snapshot(SnapshotArgs),
    /// Verify both stores and their agreement; exit 0 when everything passes.
    Check(CheckArgs),
    /// Replace the daemon's data with a snapshot: verify it, then release, swap in atomically,
    /// resume verified; prints what it restored.
    Restore(RestoreArgs),
    /// Print a shell completion script (e.g. `ctxd completions bash > /etc/bash_completion.d/ctxd`).
    Completions(CompletionsArgs),
    /// Print the man page, generated from this command line (e.g. `ctxd man > ctxd.1`).
    Man(ManArgs),
    /// Install, remove or run ctxd as a Windows service.
    #[cfg(windows)]
    Service(crate::service::ServiceArgs),
}

/// Options of `ctxd man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ctxd.1 and one page per subcommand (ctxd-serve.1, ...) into this directory
    /// instead of printing ctxd.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Options of `ctxd completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Options of `ctxd restore`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxd restore /backups/ctxd-20261204T061500Z-g42\n  ctxd restore /backups/ctxd.tar\n  aws s3 cp s3://bucket/ctxd.tar - | ctxd restore -"
)]
pub struct RestoreArgs {
    /// A snapshot written by `ctxd snapshot`: a directory, a tar file, or `-` for a tar stream
    /// on stdin. Its manifest, its files and the data directory they form are all checked,
    /// while the daemon serves, before anything changes.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
}

/// Options of `ctxd check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check this data directory directly, without a daemon: for a stopped daemon's or a
    /// released data directory (a serving daemon is checked with plain `ctxd check`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Options of `ctxd snapshot`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  ctxd snapshot /backups/ctxd-2026-12-04\n  ctxd snapshot /backups/ctxd.tar\n  ctxd snapshot - | aws s3 cp - s3://bucket/ctxd.tar\n  ctxd snapshot /backups/ --keep 24 --format tar\n  ctxd snapshot verify /backups/ctxd.tar\n\nExit status: 0 written (and verified); 1 not written, including when the reader of `-` closes\nthe pipe early (what it received is not a snapshot); 3 the daemon is not reachable."
)]
pub struct SnapshotArgs {
    /// Where to write it: a path that does not exist yet, outside the data directory (a
    /// directory that is a data directory of its own, `ctxd serve --data DEST`, or with a
    /// `.tar` name one tar file); `-` for a tar stream on stdout; with `--keep`, an existing
    /// directory that holds the kept snapshots.
    #[arg(value_name = "DEST", required = true)]
    pub dest: Option<PathBuf>,
    /// Write `DEST/ctxd-<UTC time>-g<generation>` (`.tar` with `--format tar`) and remove the
    /// oldest of that form beyond the newest N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// `dir` or `tar` [default: tar for `-` and a DEST ending in .tar, else dir].
    #[arg(long, value_name = "FORMAT", value_parser = ["dir", "tar"])]
    pub format: Option<String>,
    /// Where the daemon makes a tar's temporary copy (at most one snapshot's size, removed
    /// however the snapshot ends) [default: beside the tar; for `-`, beside the data
    /// directory].
    #[arg(long = "tmp", value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
    /// Check a snapshot offline.
    #[command(subcommand)]
    pub command: Option<SnapshotCommand>,
}

/// `ctxd snapshot verify`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Verify a snapshot without a daemon: the manifest's rules, the size and SHA-256 of every
    /// file, and that the files open as a data directory that passes every check of
    /// `ctxd check`. Exit 0 only when it is valid.
    Verify(VerifyArgs),
}

/// Options of `ctxd snapshot verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A snapshot directory, a tar file, or `-` for a tar stream on stdin.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Where the files are copied to be opened (at most one snapshot's size, removed
    /// afterwards) [default: the system's temporary directory].
    #[arg(long = "tmp", value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,
}

/// Options of `ctxd release`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ctxd release --ttl 30m --holder nightly-backup\n  ctxd release --ttl 30m -- restic backup ~/.local/share/ctxd"
)]
pub struct ReleaseArgs {
    /// How long the lease lasts unless renewed or resumed; the daemon resumes by itself then.
    /// With `-- COMMAND` the lease is renewed while the command runs, so it ends only this
    /// long after ctxd itself stops.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub ttl: Duration,
    /// A label for `ctxd status` (default: the command, with `-- COMMAND`).
    #[arg(long, value_name = "NAME")]
    pub holder: Option<String>,
    /// A command to run while released; ctxd resumes when it ends (also on failure or Ctrl-C)
    /// and exits with its status.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Options of `ctxd resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The lease to end (as `ctxd release` printed it).
    #[arg(
        value_name = "LEASE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub lease: Option<String>,
    /// End every lease.
    #[arg(long)]
    pub all: bool,
}

/// `ctxd collections`: without an action, lists them.
#[derive(Debug, Args)]
pub struct CollectionsArgs {
    /// What to do [default: list].
    #[command(subcommand)]
    pub action: Option<CollectionsCommand>,
}

/// The actions of `ctxd collections`, one per collection operation.
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// List every collection with its settings and document count (`list_collections`).
    List,
    /// Create a collection (`create_collection`).
    Create(CreateArgs),
    /// Show one collection's settings and document count (`get_collection`).
    #[command(visible_alias = "show")]
    Get {
        /// The collection's name.
        #[arg(value_parser = collection_name)]
        name: String,
    },
    /// Delete a collection and all its documents (`drop_collection`).
    Drop {
        /// The collection's name.
        #[arg(value_parser = collection_name)]
        name: String,
    },
}

/// Options of `ctxd collections create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// 1–64 characters of A-Z a-z 0-9 _ . - (not starting with `.`).
    #[arg(value_parser = collection_name)]
    pub name: String,
    /// The length of every vector in the collection; left out, the first vector written fixes
    /// it (with --embedder it is the model's).
    #[arg(long = "dim", visible_alias = "dimension", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DIMENSION)))]
    pub dimension: Option<u32>,
    /// A model the daemon loaded (`ctxd serve --model NAME=DIR`) that computes the vectors of
    /// documents given as text, and of search queries.
    #[arg(long, value_name = "NAME")]
    pub embedder: Option<String>,
    /// How vectors are compared [default: cosine].
    #[arg(long, value_name = "DISTANCE", value_parser = wire::<Distance>(DISTANCES))]
    pub distance: Option<Distance>,
    /// How text is split into terms for full-text search [default: porter].
    #[arg(long, value_name = "TOKENIZER", value_parser = wire::<Tokenizer>(TOKENIZERS))]
    pub tokenizer: Option<Tokenizer>,
    /// Succeed when the collection already exists with the same settings.
    #[arg(long)]
    pub if_not_exists: bool,
}

/// Options of `ctxd import`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each line is one document: {\"id\": \"a\", \"text\": \"...\", \"vector\": [0.1, ...], \"metadata\": {...}},
with text, vector or both; blank lines are skipped. Lines are checked as they are read, and
documents are sent in batches, each written atomically. On an invalid line or a failed batch the
import stops, names the line, and says how many documents were committed: those stay committed.
Importing again is safe (documents with the same id are replaced).")]
pub struct ImportArgs {
    /// The collection to write into (it must exist).
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// The JSON-lines file to read, or `-` for standard input.
    #[arg(value_name = "FILE.jsonl", value_parser = readable_input)]
    pub file: PathBuf,
    /// Documents per upsert request: each batch is written completely or not at all
    /// [default: 1000; 64 into a collection with an embedder, where the daemon computes the
    /// vectors of text-only lines and a batch takes seconds].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_DOCUMENTS as i64))]
    pub batch: Option<u32>,
}

/// Options of `ctxd export`.
#[derive(Debug, Args)]
#[command(after_help = "\
Documents are read in pages of 1000 (`get` with limit and offset); a later page costs more than an
earlier one, so very large collections export in time that grows faster than their size. Writes
made while an export runs may or may not appear in it.")]
pub struct ExportArgs {
    /// The collection to export.
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// Include each document's vector (needed to re-import vector-only documents).
    #[arg(long)]
    pub include_vectors: bool,
    /// Export only the documents that match this metadata filter.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
}

/// Options of `ctxd search`.
#[derive(Debug, Args)]
#[command(after_help = "\
Filters use ChromaDB's `where` syntax, e.g. --filter '{\"year\": {\"$gte\": 2020}}' or
--filter '{\"$or\": [{\"lang\": \"en\"}, {\"lang\": \"de\"}]}'. Without --mode the search is
hybrid when both TEXT and a vector are given, else whichever one is; in a collection created
with --embedder, TEXT alone is embedded by the daemon and the search is hybrid (--mode vector:
by meaning only, --mode lexical: by words only).")]
pub struct SearchArgs {
    /// The collection to search.
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// Query text (plain words; never query syntax).
    pub text: Option<String>,
    /// Number of hits [default: 10].
    #[arg(short, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_K)))]
    pub k: Option<u32>,
    /// Rank only documents that match this metadata filter.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
    /// Query vector, as a JSON array of numbers.
    #[arg(long, value_name = "JSON_ARRAY", value_parser = parse_vector, conflicts_with = "vector_file")]
    pub vector: Option<QueryVector>,
    /// Read the query vector (a JSON array of numbers) from this file.
    #[arg(long, value_name = "FILE", value_parser = read_vector_file)]
    pub vector_file: Option<QueryVector>,
    /// Which ranked lists to compute.
    #[arg(long, value_parser = wire::<SearchMode>(MODES))]
    pub mode: Option<SearchMode>,
    /// Parts of each hit to return, comma-separated [default: text,metadata].
    #[arg(long, value_name = "PARTS", value_delimiter = ',', value_parser = wire::<Field>(FIELDS))]
    pub include: Option<Vec<Field>>,
    /// Rank the vector part by brute force over every vector (slow; for checking recall).
    #[arg(long)]
    pub exact: bool,
}

/// Options of `ctxd get`.
#[derive(Debug, Args)]
#[command(after_help = "Exits 1 when any ID is not found; the documents found are still printed.")]
pub struct GetArgs {
    /// The collection to read from.
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// The documents' ids.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// Parts of each document to return, comma-separated [default: text,metadata].
    #[arg(long, value_name = "PARTS", value_delimiter = ',', value_parser = wire::<Field>(FIELDS))]
    pub include: Option<Vec<Field>>,
}

/// Options of `ctxd delete`.
#[derive(Debug, Args)]
#[command(
    after_help = "With both IDs and --filter, a document is deleted only when it matches both."
)]
pub struct DeleteArgs {
    /// The collection to delete from.
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// The documents' ids.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Delete the documents that match this metadata filter.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
}

/// Options of `ctxd count`.
#[derive(Debug, Args)]
pub struct CountArgs {
    /// The collection to count in.
    #[arg(value_parser = collection_name)]
    pub collection: String,
    /// Count only the documents that match this metadata filter.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
}

impl Command {
    /// Rules that involve several arguments, beyond what clap checks. The CLI checks them
    /// before connecting, so they are usage errors (exit 2) even when the daemon is down. The
    /// error is the subcommand's name and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self {
            Command::Search(args) => args.check().map_err(|e| ("search", e)),
            Command::Delete(args) => args.check().map_err(|e| ("delete", e)),
            _ => Ok(()),
        }
    }
}

impl SearchArgs {
    /// A search needs text or a vector, and the ones its `--mode` uses. Text alone may serve
    /// `--mode vector` and `hybrid`: in a collection with an embedder the daemon embeds it (and
    /// elsewhere says the vector is missing).
    pub fn check(&self) -> Result<(), String> {
        let text = self.text.is_some();
        let vector = self.vector.is_some() || self.vector_file.is_some();
        match self.mode {
            _ if !text && !vector => {
                Err("search needs query TEXT, --vector or --vector-file".to_owned())
            }
            Some(mode @ (SearchMode::Lexical | SearchMode::Hybrid)) if !text => Err(format!(
                "--mode {} needs query TEXT",
                super::output::wire_name(&mode)
            )),
            _ => Ok(()),
        }
    }
}

impl DeleteArgs {
    /// Deleting needs ids or a filter: a bare `ctxd delete COLLECTION` deletes nothing rather
    /// than everything (`collections drop` is for that).
    pub fn check(&self) -> Result<(), String> {
        if self.ids.is_empty() && self.filter.is_none() {
            return Err("delete needs document IDs, --filter, or both".to_owned());
        }
        Ok(())
    }
}

/// A query vector given on the command line (a newtype, so clap takes it as one value rather
/// than a list of occurrences).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryVector(pub Vec<f32>);

/// The wire names of [`Distance`], as `--distance` accepts them.
const DISTANCES: &[&str] = &["cosine", "euclidean", "dot", "manhattan"];
/// The wire names of [`Tokenizer`].
const TOKENIZERS: &[&str] = &["porter", "unicode61", "trigram"];
/// The wire names of [`SearchMode`].
const MODES: &[&str] = &["lexical", "vector", "hybrid"];
/// The wire names of [`Field`].
const FIELDS: &[&str] = &["text", "metadata", "vector"];

/// A parser for a protocol enum that offers `names` (listed in `--help`) and decodes the chosen
/// one with the protocol's own serde mapping, so the command line and the wire cannot disagree.
fn wire<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names)
        .try_map(|name: String| serde_json::from_value::<T>(serde_json::Value::String(name)))
}

/// Checks a collection name locally (the protocol's rule), so a typo is a usage error, not a
/// round trip.
pub fn collection_name(name: &str) -> Result<String, String> {
    if ctxd_proto::limits::is_valid_collection_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{name}` is not a collection name: use 1–64 characters of A-Z a-z 0-9 _ . - \
             (not starting with `.`)"
        ))
    }
}

/// Parses a `--filter` argument: JSON in ChromaDB's `where` syntax.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("not valid JSON ({e}); a filter looks like '{{\"year\": {{\"$gte\": 2020}}}}'")
    })?;
    Filter::from_value(&value).map_err(|e| format!("not a valid filter: {e}"))
}

/// Parses a `--vector` argument: a non-empty JSON array of numbers that fit a 32-bit float.
pub fn parse_vector(text: &str) -> Result<QueryVector, String> {
    let numbers: Vec<f64> = serde_json::from_str(text).map_err(|e| {
        format!("not a JSON array of numbers ({e}); a vector looks like '[0.1, -0.2, 0.3]'")
    })?;
    if numbers.is_empty() {
        return Err("the vector is empty; it needs the collection's dimension of numbers".into());
    }
    let mut vector = Vec::with_capacity(numbers.len());
    for (index, number) in numbers.into_iter().enumerate() {
        // JSON has no NaN or infinity, but a number beyond f32's range becomes infinite.
        let narrowed = number as f32;
        if !narrowed.is_finite() {
            return Err(format!(
                "element {index} of the vector ({number}) does not fit a 32-bit float"
            ));
        }
        vector.push(narrowed);
    }
    Ok(QueryVector(vector))
}

/// Reads `--vector-file`: a file holding one JSON array of numbers.
pub fn read_vector_file(path: &str) -> Result<QueryVector, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    parse_vector(text.trim()).map_err(|e| format!("`{path}` holds {e}"))
}

/// Checks that an import's input can be opened (`-` is standard input), so a mistyped path is a
/// usage error reported before connecting. The file is opened again when the import starts.
pub fn readable_input(path: &str) -> Result<PathBuf, String> {
    if path != "-" {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open `{path}`: {e}"))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(format!("`{path}` is a directory, not a JSON-lines file"));
        }
    }
    Ok(PathBuf::from(path))
}

/// Options of `ctxd mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The data directory whose daemon to use (found whatever socket it listens on, or
    /// started) [default: the default data directory, as for `ctxd serve`]. With the global
    /// --socket, that daemon is used instead.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The collection tools use when a call names none (created if missing).
    #[arg(long, value_name = "NAME", default_value = "memory", value_parser = collection_name)]
    pub collection: String,
    /// Create that collection with this model of the daemon, so search is by meaning.
    #[arg(long, value_name = "NAME")]
    pub embedder: Option<String>,
    /// A model a daemon started here loads (`ctxd serve --model NAME=DIR`); repeatable.
    #[arg(long = "model", value_name = "NAME=DIR")]
    pub models: Vec<String>,
}

/// Options of `ctxd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The data directory [default: $STATE_DIRECTORY under a systemd unit, else $XDG_DATA_HOME/ctxd, i.e. ~/.local/share/ctxd].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The longest request line accepted, in bytes; longer lines get `frame_too_large`.
    #[arg(long, value_name = "BYTES", default_value_t = ctxd_proto::DEFAULT_MAX_FRAME)]
    pub max_frame: usize,
    /// How long stopping waits for in-flight requests.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// Collections with at least this many vectors also get an approximate (arroy) index,
    /// built in the background; smaller ones are scanned exactly. 0 = never.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_ANN_THRESHOLD)]
    pub ann_threshold: u64,
    /// The most client connections served at once; more are refused with `busy`
    /// [default: what the open-file limit leaves after storage's share, at most 1024].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// How long a request line may take to arrive once it has begun, and a reply to be read;
    /// a connection that stalls longer is closed. Between requests a connection may stay
    /// quiet as long as it likes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Threads that run reads (searches, gets, counts) [default: four per core, 4–64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub read_threads: Option<u32>,
    /// Reads that may wait for a read thread; beyond them a read is refused with `busy`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::storage::read_pool::DEFAULT_QUEUE as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub read_queue: u32,
    /// Take a snapshot this often into --snapshot-dir (a round is skipped when nothing was
    /// written since the last); `status` shows the last one.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, requires = "snapshot_dir")]
    pub snapshot_every: Option<Duration>,
    /// The existing directory scheduled snapshots are kept in, as
    /// `ctxd-<UTC time>-g<generation>`.
    #[arg(long, value_name = "DIR", requires = "snapshot_every")]
    pub snapshot_dir: Option<PathBuf>,
    /// How many scheduled snapshots are kept; the oldest beyond are removed.
    #[arg(long, value_name = "N", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    pub snapshot_keep: u32,
    /// Scheduled snapshots as directories or tar files.
    #[arg(long, value_name = "FORMAT", default_value = "dir", value_parser = ["dir", "tar"])]
    pub snapshot_format: String,
    /// Load a model to embed text, for collections created with `--embedder NAME`: a
    /// sentence-transformers model directory of the BERT family (config.json, tokenizer.json,
    /// model.safetensors, e.g. all-MiniLM-L6-v2). Repeatable [default: $CTXD_MODELS, NAME=DIR
    /// entries separated like PATH's].
    #[arg(long = "model", value_name = "NAME=DIR")]
    pub models: Vec<crate::embed::ModelSpec>,
    /// Stop (as on SIGTERM, closing every file) when the last client holding the daemon with
    /// `attach` lets go or disconnects, or when none has attached within --unused-grace of
    /// the start. For daemons started on demand by a client library (Python's
    /// `ctxd.PersistentClient`).
    #[arg(long)]
    pub stop_when_unused: bool,
    /// With --stop-when-unused: how long after the start the first client may take to attach.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "stop_when_unused")]
    pub unused_grace: Duration,
    /// Print one JSON line on stdout once serving (`{"ready":true,"pid":…,"socket":…,"data_dir":…}`)
    /// and nothing more: readiness for a program that started the daemon and reads its output.
    #[arg(long)]
    pub ready_line: bool,
}

/// A duration longer than zero (a schedule's interval).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval.is_zero() {
        return Err(format!("`{text}`: the interval must be longer than zero"));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn protocol_enums_parse_by_their_wire_names() {
        let names =
            |values: &[&str]| -> Vec<String> { values.iter().map(|v| (*v).to_owned()).collect() };
        let cli = Cli::try_parse_from([
            "ctxd",
            "collections",
            "create",
            "notes",
            "--dim",
            "4",
            "--distance",
            "manhattan",
            "--tokenizer",
            "trigram",
        ])
        .expect("parses");
        let Command::Collections(CollectionsArgs {
            action: Some(CollectionsCommand::Create(create)),
        }) = cli.command
        else {
            panic!("expected collections create");
        };
        assert_eq!(create.distance, Some(Distance::Manhattan));
        assert_eq!(create.tokenizer, Some(Tokenizer::Trigram));
        // Every listed name decodes, and decodes back to itself.
        fn round_trip<T: DeserializeOwned + serde::Serialize>(list: &[&str]) {
            for name in list {
                let value: T = serde_json::from_value(serde_json::Value::String((*name).into()))
                    .unwrap_or_else(|e| panic!("`{name}` is not a wire name: {e}"));
                assert_eq!(serde_json::to_value(&value).expect("encodes"), *name);
            }
        }
        round_trip::<Distance>(DISTANCES);
        round_trip::<Tokenizer>(TOKENIZERS);
        round_trip::<SearchMode>(MODES);
        round_trip::<Field>(FIELDS);
        assert_eq!(names(FIELDS).len(), Field::DEFAULT_INCLUDE.len() + 1);
    }

    #[test]
    fn search_takes_a_comma_separated_include_and_a_json_vector() {
        let cli = Cli::try_parse_from([
            "ctxd",
            "search",
            "notes",
            "otters",
            "-k",
            "5",
            "--vector",
            "[1, 0.5, -2e-3]",
            "--include",
            "text,vector",
            "--mode",
            "hybrid",
        ])
        .expect("parses");
        let Command::Search(search) = cli.command else {
            panic!("expected search");
        };
        assert_eq!(search.k, Some(5));
        assert_eq!(search.vector, Some(QueryVector(vec![1.0, 0.5, -2e-3])));
        assert_eq!(search.include, Some(vec![Field::Text, Field::Vector]));
        assert_eq!(search.mode, Some(SearchMode::Hybrid));
    }

    #[test]
    fn bad_json_arguments_are_usage_errors_that_name_the_problem() {
        for (args, needle) in [
            (
                &["search", "notes", "x", "--filter", "{year"][..],
                "not valid JSON",
            ),
            (
                &["search", "notes", "x", "--filter", "[1]"],
                "must be a JSON object",
            ),
            (
                &["count", "notes", "--filter", r#"{"a": {"$near": 1}}"#],
                "$near",
            ),
            (
                &["search", "notes", "--vector", "[1, 2"],
                "not a JSON array",
            ),
            (&["search", "notes", "--vector", "[]"], "empty"),
            (&["search", "notes", "--vector", "[1e39]"], "32-bit float"),
            (
                &["search", "notes", "--vector", r#"["a"]"#],
                "not a JSON array",
            ),
            (&["search", "bad name", "x"], "not a collection name"),
            (&["collections", "create", "notes", "--dim", "0"], "0"),
            (
                &[
                    "collections",
                    "create",
                    "notes",
                    "--dim",
                    "4",
                    "--distance",
                    "cos",
                ],
                "cos",
            ),
            (&["import", "notes", "/no/such/file.jsonl"], "cannot open"),
            (&["import", "notes", "-", "--batch", "1001"], "1001"),
            (&["search", "notes", "-k", "1001", "x"], "1001"),
        ] {
            let error = Cli::try_parse_from(std::iter::once("ctxd").chain(args.iter().copied()))
                .expect_err("a usage error");
            assert_eq!(error.exit_code(), 2, "{args:?}");
            let text = error.to_string();
            assert!(text.contains(needle), "{args:?}: {text}");
        }
    }

    #[test]
    fn rules_across_arguments_are_checked_after_parsing() {
        let check = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("ctxd").chain(args.iter().copied()))
                .expect("parses")
                .command
                .check()
        };
        for (args, needle) in [
            (
                &["search", "notes"][..],
                "needs query TEXT, --vector or --vector-file",
            ),
            (
                &["search", "notes", "--vector", "[1]", "--mode", "lexical"],
                "lexical needs",
            ),
            (
                &["search", "notes", "--mode", "vector"],
                "needs query TEXT, --vector",
            ),
            (
                &["search", "notes", "--vector", "[1]", "--mode", "hybrid"],
                "hybrid needs query TEXT",
            ),
            (&["delete", "notes"], "needs document IDs"),
        ] {
            let (_, message) = check(args).expect_err("a usage error");
            assert!(message.contains(needle), "{args:?}: {message}");
        }
        for args in [
            &["search", "notes", "otters"][..],
            &["search", "notes", "--vector", "[1]"],
            // The daemon embeds the text (or says the collection has no embedder).
            &["search", "notes", "otters", "--mode", "vector"],
            &["search", "notes", "otters", "--mode", "hybrid"],
            &[
                "search", "notes", "x", "--vector", "[1]", "--mode", "hybrid",
            ],
            &["delete", "notes", "a", "b"],
            &["delete", "notes", "--filter", r#"{"k": 1}"#],
        ] {
            assert_eq!(check(args), Ok(()), "{args:?}");
        }
    }

    #[test]
    fn collections_without_an_action_lists_and_show_is_get() {
        let cli = Cli::try_parse_from(["ctxd", "collections"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Collections(CollectionsArgs { action: None })
        ));
        let cli = Cli::try_parse_from(["ctxd", "collections", "show", "notes"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Collections(CollectionsArgs {
                action: Some(CollectionsCommand::Get { .. })
            })
        ));
    }

    #[test]
    fn durations_take_units_or_plain_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
