//! Every operation of protocol 1: its parameters, its result, and the [`Call`] trait that ties
//! the two together.
//!
//! Parameter structs reject unknown fields (a typo never passes silently). Result structs accept
//! unknown fields, so a newer daemon may add result fields without breaking older clients; the
//! exception is [`Document`], whose fields protocol 1 fixes, because upsert input and read output
//! share it.

use crate::filter::Filter;
use crate::text_filter::TextFilter;
use crate::types::{
    CheckDetails, CollectionInfo, Distance, Document, Field, FileEntry, Hit, Lease, ModelInfo,
    SearchMode, SnapshotFile, State, Tokenizer, UnixMillis, Weights,
};
use crate::vector::{Vector, VectorEncoding};
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One operation with its parameters: the `op` field of a request selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Version handshake.
    Hello(Hello),
    /// Liveness probe.
    Ping(Ping),
    /// Lifecycle state, cheap.
    Health(Health),
    /// Everything an operator wants to know.
    Status(Status),
    /// Create a collection.
    CreateCollection(CreateCollection),
    /// List collections.
    ListCollections(ListCollections),
    /// Describe one collection.
    GetCollection(GetCollection),
    /// Delete a collection and its documents.
    DropCollection(DropCollection),
    /// Insert or replace documents.
    Upsert(Upsert),
    /// Delete documents by id and/or filter.
    Delete(Delete),
    /// Read documents by id and/or filter.
    Get(Get),
    /// Count documents, optionally filtered.
    Count(Count),
    /// Lexical, vector or hybrid search.
    Search(Search),
    /// Close every file under a lease.
    Release(Release),
    /// Extend a lease.
    Renew(Renew),
    /// End a lease (or all) and reopen when none is left.
    Resume(Resume),
    /// Write a consistent copy of the data directory.
    Snapshot(Snapshot),
    /// Send a consistent copy of the data directory down the connection, as a tar stream.
    SnapshotStream(SnapshotStream),
    /// Verify both stores and their agreement.
    Check(Check),
    /// Stop the daemon as on SIGTERM.
    Shutdown(Shutdown),
    /// Hold the daemon for as long as this connection is open (`ctxd serve --stop-when-unused`).
    Attach(Attach),
    /// Let go of the hold taken with `attach` on this connection.
    Detach(Detach),
    /// Change some parts of existing documents.
    Update(Update),
}

impl Operation {
    /// Every operation name of protocol 1, as written in `op`.
    pub const NAMES: [&'static str; 23] = [
        "hello",
        "ping",
        "health",
        "status",
        "create_collection",
        "list_collections",
        "get_collection",
        "drop_collection",
        "upsert",
        "delete",
        "get",
        "count",
        "search",
        "release",
        "renew",
        "resume",
        "snapshot",
        "snapshot_stream",
        "check",
        "shutdown",
        "attach",
        "detach",
        "update",
    ];

    /// The operation's name, as written in `op`.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Hello(_) => Hello::OP,
            Operation::Ping(_) => Ping::OP,
            Operation::Health(_) => Health::OP,
            Operation::Status(_) => Status::OP,
            Operation::CreateCollection(_) => CreateCollection::OP,
            Operation::ListCollections(_) => ListCollections::OP,
            Operation::GetCollection(_) => GetCollection::OP,
            Operation::DropCollection(_) => DropCollection::OP,
            Operation::Upsert(_) => Upsert::OP,
            Operation::Delete(_) => Delete::OP,
            Operation::Get(_) => Get::OP,
            Operation::Count(_) => Count::OP,
            Operation::Search(_) => Search::OP,
            Operation::Release(_) => Release::OP,
            Operation::Renew(_) => Renew::OP,
            Operation::Resume(_) => Resume::OP,
            Operation::Snapshot(_) => Snapshot::OP,
            Operation::SnapshotStream(_) => SnapshotStream::OP,
            Operation::Check(_) => Check::OP,
            Operation::Shutdown(_) => Shutdown::OP,
            Operation::Attach(_) => Attach::OP,
            Operation::Detach(_) => Detach::OP,
            Operation::Update(_) => Update::OP,
        }
    }
}

/// A request's parameters together with the type of its successful result.
///
/// Clients send `C` and decode the reply as `C::Output`; the daemon decodes an [`Operation`]
/// and answers with the matching output.
pub trait Call: Into<Operation> + Serialize {
    /// The operation's name (`op`).
    const OP: &'static str;
    /// The successful result.
    type Output: Serialize + DeserializeOwned;
}

macro_rules! calls {
    ($($params:ident => $output:ty, $op:literal;)*) => {
        impl Operation {
            /// Decodes the parameters of the operation `name` from a request's fields (without
            /// `id`, `op` and `wait_ms`), each still JSON text. The error names the offending
            /// field, e.g. ``dimension: invalid type: string "x", expected u32``. `None` if
            /// `name` is not an operation.
            pub(crate) fn from_params<'a>(
                name: &str,
                params: Vec<(Cow<'a, str>, &'a RawValue)>,
            ) -> Option<Result<Operation, String>> {
                Some(match name {
                    $($op => decode_params::<$params>(params).map(Operation::$params),)*
                    _ => return None,
                })
            }
        }
        $(
        impl Call for $params {
            const OP: &'static str = $op;
            type Output = $output;
        }
        impl From<$params> for Operation {
            fn from(params: $params) -> Operation {
                Operation::$params(params)
            }
        }
    )*};
}

/// Decodes `T` from fields whose values are JSON text, straight into `T` (no JSON tree).
fn decode_params<'a, T: Deserialize<'a>>(
    params: Vec<(Cow<'a, str>, &'a RawValue)>,
) -> Result<T, String> {
    let fields = MapDeserializer::<_, serde_json::Error>::new(params.into_iter());
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let message = without_position(e.inner());
        let mut path = e.path().to_string();
        if message.starts_with("unknown field") {
            // The path ends with the unknown key, which the message already names: keep only
            // where it was found.
            path = path
                .rsplit_once('.')
                .map_or(String::new(), |(parent, _)| parent.to_owned());
        }
        if path.is_empty() || path == "." {
            message
        } else {
            format!("`{path}`: {message}")
        }
    })
}

/// serde_json's message without its " at line L column C": the position is inside one field's
/// value, which the path already names.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if error.line() == 0 {
        return message;
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    message
        .strip_suffix(&suffix)
        .map_or_else(|| message.clone(), str::to_owned)
}

calls! {
    Hello => HelloResult, "hello";
    Ping => Empty, "ping";
    Health => HealthResult, "health";
    Status => StatusResult, "status";
    CreateCollection => CollectionResult, "create_collection";
    ListCollections => ListCollectionsResult, "list_collections";
    GetCollection => CollectionResult, "get_collection";
    DropCollection => DropCollectionResult, "drop_collection";
    Upsert => UpsertResult, "upsert";
    Delete => DeleteResult, "delete";
    Get => GetResult, "get";
    Count => CountResult, "count";
    Search => SearchResult, "search";
    Release => ReleaseResult, "release";
    Renew => RenewResult, "renew";
    Resume => ResumeResult, "resume";
    Snapshot => SnapshotResult, "snapshot";
    SnapshotStream => SnapshotStreamResult, "snapshot_stream";
    Check => CheckResult, "check";
    Shutdown => Empty, "shutdown";
    Attach => AttachResult, "attach";
    Detach => DetachResult, "detach";
    Update => UpdateResult, "update";
}

/// The result of operations that return nothing but success (`ping`, `shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

// ---------------------------------------------------------------------------------------------
// Parameters

/// `hello`: the version handshake a client sends first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The client's name and version, for the daemon's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// `ping`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {}

/// `health`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {}

/// `status`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}

/// `create_collection`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
    pub name: String,
    /// Vector length, 1–4096. With `embedder` it may be left out (it is the model's), and if
    /// given must equal the model's. Left out without an embedder, the first vector written
    /// fixes it, in that write's transaction (added within protocol 1; until then the
    /// collection reads as `dimension: 0` and a vector search of it finds nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<u32>,
    /// The name of a model the daemon was started with (`ctxd serve --model NAME=DIR`) that
    /// computes the vectors of this collection's documents from their text, and of a search's
    /// query text. The collection records the model's name and the SHA-256 of its weights;
    /// a daemon without that model, or with other weights, keeps the collection readable and
    /// searchable by vector and text but refuses to embed for it (`embedder_unavailable`).
    /// Added within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder: Option<String>,
    /// Default `cosine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<Distance>,
    /// Default `porter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<Tokenizer>,
    /// Succeed (returning the existing collection) when it already exists with, of
    /// `dimension`, `embedder`, `distance` and `tokenizer`, the ones given, instead of failing with
    /// `collection_exists` (a setting left out matches whatever the collection has).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_not_exists: bool,
}

/// `list_collections`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCollections {}

/// `get_collection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetCollection {
    /// The collection's name.
    pub name: String,
}

/// `drop_collection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropCollection {
    /// The collection's name.
    pub name: String,
}

/// `upsert`: insert or replace whole documents, atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upsert {
    /// The collection's name.
    pub collection: String,
    /// The documents (at most 1000); each carries `text`, `vector` or both.
    #[serde(deserialize_with = "crate::bounded::documents")]
    pub documents: Vec<Document>,
}

/// `update`: changes only the parts given of documents that exist, atomically (every
/// document of the request, or none). Added within protocol 1.
///
/// Each document names its `id` and any of: `text` (replaces the text and its full-text
/// entry), `vector` (replaces the vector; in a collection with an embedder, a new `text`
/// without a `vector` gets its vector computed, as in `upsert`), `metadata` (merged into the
/// stored metadata: keys given replace, a key set to `null` is removed; ChromaDB's `update`).
/// Ids that do not exist are skipped and listed in the result (ChromaDB ignores them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// The collection's name.
    pub collection: String,
    /// The changes (at most 1000 documents), one per id.
    #[serde(deserialize_with = "crate::bounded::documents")]
    pub documents: Vec<Document>,
}

/// `delete`: by ids, by filter, or both (a document must match both to be deleted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    /// The collection's name.
    pub collection: String,
    /// Documents to delete (at most 100,000 ids).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::bounded::ids"
    )]
    pub ids: Option<Vec<String>>,
    /// Delete the documents that match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only documents whose text matches, ChromaDB's `where_document`
    /// ([`crate::text_filter`]); with `filter`, both must match. Added within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_filter: Option<TextFilter>,
}

/// `get`: read documents by ids and/or filter, paged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    /// The collection's name.
    pub collection: String,
    /// Documents to read, in this order (missing ids and repeats are skipped; at most 100,000
    /// ids).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::bounded::ids"
    )]
    pub ids: Option<Vec<String>>,
    /// Read the documents that match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only documents whose text matches, ChromaDB's `where_document`
    /// ([`crate::text_filter`]); with `filter`, both must match. Added within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_filter: Option<TextFilter>,
    /// Page size (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Documents to skip (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Parts to return (default text and metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Field>>,
    /// How the documents' vectors (with `include: ["vector"]`) are written: `"json"` (the
    /// default) or `"base64"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_encoding: Option<VectorEncoding>,
}

/// `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    /// The collection's name.
    pub collection: String,
    /// Count only the documents that match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only documents whose text matches, ChromaDB's `where_document`
    /// ([`crate::text_filter`]); with `filter`, both must match. Added within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_filter: Option<TextFilter>,
}

/// `search`: lexical, vector or hybrid.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// The collection's name.
    pub collection: String,
    /// Query text (plain user text, never FTS5 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Query vector: a JSON array, or base64 of little-endian `f32` ([`Vector`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vector>,
    /// Number of hits, default 10, at most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Only documents that match are ranked (pre-filtering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only documents whose text matches, ChromaDB's `where_document`
    /// ([`crate::text_filter`]); with `filter`, both must match. Added within protocol 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_filter: Option<TextFilter>,
    /// Omitted: hybrid when both `text` and `vector` are given, else the one given. In a
    /// collection with an embedder, `text` alone is embedded for `vector` and `hybrid` (and
    /// so, omitted, the search is hybrid); `lexical` never runs the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SearchMode>,
    /// Parts to return with each hit (default text and metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Field>>,
    /// RRF constant (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrf_k: Option<u32>,
    /// Per-list RRF weights (default 1 and 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Rank the vector part by brute force over every vector (for measuring recall).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Vector search effort: how many candidates the approximate index examines per wanted
    /// hit. Higher trades latency for recall; omitted uses the daemon's default, which is tuned
    /// for recall@10 ≥ 0.95. Ignored where the search is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<u32>,
    /// How the hits' vectors (with `include: ["vector"]`) are written: `"json"` (the default)
    /// or `"base64"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_encoding: Option<VectorEncoding>,
}

/// `release`: close every handle into the data directory under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// A label for `status` (for example the backup tool's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Lease length in seconds (default 600); the daemon resumes by itself when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// How long in-flight writes may take before the release fails with `busy` (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ms: Option<u64>,
}

/// `renew`: extend a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// The lease to extend.
    pub lease_id: String,
    /// New length in seconds, counted from now.
    pub ttl_s: u64,
}

/// `resume`: end one lease (`lease_id`) or every lease (`all: true`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The lease to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// End every lease.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// `snapshot`: write a consistent copy of the data directory to `dest`.
///
/// Without `keep`, `dest` is the snapshot itself: a directory, or with `format: "tar"` one tar
/// file (the layout of [`SnapshotStream`]). With `keep`, `dest` is a directory that holds
/// snapshots: the new one is written into it as `ctxd-<UTC time>-g<generation>` (`.tar` for a
/// tar) and then the oldest of that form beyond the newest `keep` are removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// An absolute path outside the data directory: without `keep`, one that must not exist
    /// yet, whose parent exists; with `keep`, an existing directory. Any reason the snapshot
    /// is not written, these included, is `snapshot_failed`.
    pub dest: String,
    /// `dir` (the default) or `tar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SnapshotFormat>,
    /// Keep this many snapshots in `dest` (at least 1), the new one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Where a tar's temporary copy is made (an existing absolute directory; default: beside
    /// the tar). A directory snapshot is written in place under a temporary name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_dir: Option<String>,
}

/// What a snapshot is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFormat {
    /// A directory that is a data directory of its own, with `manifest.json`.
    #[default]
    Dir,
    /// One tar file: `manifest.json` first, then the store files.
    Tar,
}

/// `snapshot_stream`: a consistent, verified snapshot sent down this connection as a tar
/// stream.
///
/// The reply line is followed on the connection by exactly
/// [`SnapshotStreamResult::bytes`] bytes of tar (ustar, no compression): `manifest.json`
/// first, then `ctxd.json`, `text.sqlite3` and `vectors/data.mdb`, each a regular file with
/// the size and SHA-256 the manifest gives; then the connection carries JSON lines again. The
/// daemon makes the copy in a temporary directory of `tmp_dir` (default: beside the data
/// directory) and removes it when the stream ends, also when the client stops reading; a
/// stream that ends short (the daemon failed or stopped half way) is not a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStream {
    /// An existing absolute directory outside the data directory for the temporary copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmp_dir: Option<String>,
}

/// `check`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {}

/// `shutdown`: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {}

/// `attach`: no parameters. Added within protocol 1.
///
/// The connection that sends it holds the daemon until it sends [`Detach`] or closes (for any
/// reason: a client killed with SIGKILL lets go too). A daemon started with
/// `--stop-when-unused` stops, through its one shutdown sequence, when the last hold ends; other
/// daemons count holds and keep serving. A connection holds at most once: attaching again
/// changes nothing. Whatever stops the daemon, a holding connection is kept open, unread, until
/// every file is closed (as a `shutdown` requester's is), so its end always means the files
/// are closed; once stopping has begun no new hold is taken.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    /// The data directory the client means to use (its canonical path). A daemon that serves
    /// another one refuses with `bad_request` and takes no hold: a client that found the socket
    /// through a stale or planted file never uses the wrong data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
}

/// `detach`: no parameters. Added within protocol 1.
///
/// Ends this connection's hold. When it was the last hold of a daemon started with
/// `--stop-when-unused`, the reply says `stopping: true` and, as after `shutdown`, the daemon
/// keeps the connection open, unread, until every file is closed and its locks are released:
/// its closing tells the client that the data directory may be copied or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detach {}

// ---------------------------------------------------------------------------------------------
// Results

/// Result of `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    /// The protocol version the daemon speaks.
    pub protocol: u32,
    /// The daemon's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's state.
    pub state: State,
}

/// Result of `health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// The daemon's state.
    pub state: State,
    /// Whether data operations are served now (state is `serving`).
    pub ready: bool,
}

/// Result of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResult {
    /// The daemon's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// The daemon's state.
    pub state: State,
    /// The data directory (canonical path).
    pub data_dir: String,
    /// The socket (or pipe) the daemon listens on.
    pub socket: String,
    /// The last committed write's generation.
    pub generation: u64,
    /// Number of collections.
    pub collections: u64,
    /// Number of documents over all collections.
    pub documents: u64,
    /// Leases held.
    pub leases: Vec<Lease>,
    /// Handles the daemon holds into the data directory (files and memory maps); 0 while
    /// released. `null` where the platform gives no way to count them.
    pub open_files: Option<u64>,
    /// Client connections open now (including the one asking).
    pub connections: u64,
    /// Why the daemon stays released or cannot serve, if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The last scheduled snapshot (`--snapshot-every`), once one has been taken or tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<ScheduledSnapshot>,
    /// The models the daemon loaded (`ctxd serve --model`), by name. Added within protocol 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelInfo>,
    /// Connections holding the daemon with `attach`. Added within protocol 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub holders: u64,
    /// Whether the daemon stops when the last hold ends (`--stop-when-unused`). Added within
    /// protocol 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_when_unused: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Result of `attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachResult {
    /// Connections holding the daemon now, this one included.
    pub holders: u64,
    /// Whether the daemon stops when the last hold ends (`--stop-when-unused`).
    pub stop_when_unused: bool,
}

/// Result of `detach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachResult {
    /// Connections still holding the daemon.
    pub holders: u64,
    /// Whether the daemon is stopping because this was the last hold: the connection then
    /// closes once every file is closed.
    pub stopping: bool,
}

/// Result of `create_collection` and `get_collection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionResult {
    /// The collection.
    pub collection: CollectionInfo,
}

/// Result of `list_collections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListCollectionsResult {
    /// Every collection, by name.
    pub collections: Vec<CollectionInfo>,
}

/// Result of `drop_collection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCollectionResult {
    /// Whether a collection was dropped.
    pub dropped: bool,
}

/// Result of `upsert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertResult {
    /// Documents written.
    pub upserted: u64,
    /// The generation this write committed as.
    pub generation: u64,
}

/// Result of `update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResult {
    /// Documents changed.
    pub updated: u64,
    /// Ids of the request that name no document (nothing was done for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<String>,
    /// The generation this write committed as (the current one when nothing changed).
    pub generation: u64,
}

/// Result of `delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    /// Documents deleted.
    pub deleted: u64,
    /// The generation after this write.
    pub generation: u64,
}

/// Result of `get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetResult {
    /// The documents, with the included parts.
    pub documents: Vec<Document>,
}

/// Result of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountResult {
    /// Matching documents.
    pub count: u64,
}

/// Result of `search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Best first.
    pub hits: Vec<Hit>,
}

/// Result of `release`: the lease, and what a backup should copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResult {
    /// The id `renew` and `resume` take.
    pub lease_id: String,
    /// When the lease ends by itself.
    pub expires_at: UnixMillis,
    /// The generation of the released files.
    pub generation: u64,
    /// Files to copy.
    pub files: Vec<FileEntry>,
    /// Files a copy should skip (relative paths), for example LMDB's `vectors/lock.mdb`.
    pub exclude: Vec<String>,
}

/// Result of `renew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResult {
    /// The lease's new end.
    pub expires_at: UnixMillis,
}

/// Result of `resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeResult {
    /// The state after the resume (`released` while other leases remain).
    pub state: State,
    /// Leases still held.
    pub leases: Vec<Lease>,
}

/// Result of `snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResult {
    /// The snapshot directory.
    pub path: String,
    /// The generation the snapshot holds.
    pub generation: u64,
    /// Every file of the snapshot, with its checksum.
    pub files: Vec<SnapshotFile>,
}

/// Result of `snapshot_stream`: the reply line that precedes the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStreamResult {
    /// The generation the snapshot holds.
    pub generation: u64,
    /// Every store file of the snapshot, with its checksum (as in its `manifest.json`).
    pub files: Vec<SnapshotFile>,
    /// How many bytes of tar follow this line.
    pub bytes: u64,
}

/// The last snapshot the daemon's schedule (`--snapshot-every`) took or tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledSnapshot {
    /// When the round ended.
    pub at: UnixMillis,
    /// The generation it holds (or, if it failed, the generation it was taken at).
    pub generation: u64,
    /// Its size in bytes (0 if it failed).
    pub bytes: u64,
    /// Where it was written (absent if it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why it failed (absent if it was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Result of `check`.
///
/// The verdict is `passed`, not `ok`: result fields sit beside the envelope's own `ok`, which
/// says whether the check could run at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Whether every part passed.
    pub passed: bool,
    /// Each part's outcome.
    pub details: CheckDetails,
}
