//! The async client library for the ctxd daemon.
//!
//! ctxd is a daemon that owns every open handle to one data directory of documents, full-text
//! and vectors. Applications talk to it through this crate; it links no storage engine.
//!
//! [`Client`] connects to the daemon's socket (by default the same one `ctxd serve` uses:
//! `CTXD_SOCKET`, else the per-user runtime directory), checks the protocol version, and offers
//! one async method per operation with typed parameters and results from [`ctxd_proto`].
//! Failures are an [`Error`]: [`Error::NotRunning`] names the socket it tried,
//! [`Error::Daemon`] carries the daemon's stable error code.
//!
//! # Example
//!
//! ```no_run
//! use ctxd_client::{Client, Error};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Error> {
//! let client = Client::builder().timeout(Duration::from_secs(5)).connect().await?;
//! println!("connected to ctxd {} (pid {})", client.server().version, client.server().pid);
//!
//! let status = client.status().await?;
//! println!("{} documents in {} collections", status.documents, status.collections);
//!
//! match client.ping().await {
//!     Ok(()) => println!("alive"),
//!     Err(Error::NotRunning { socket, .. }) => println!("nothing at {}", socket.display()),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! One `Client` holds one connection and answers calls one at a time (it may be shared across
//! tasks behind an `Arc`); open several clients for parallel requests. After an I/O error or a
//! timeout the connection is dropped, and the next call reconnects.
//!
//! Vectors travel as bytes: the client sends them, and asks for them, as base64 of
//! little-endian `f32` (exact, and about a third of the characters of decimal JSON); results
//! read the same as if they had come as JSON arrays.
//!
//! # Text only: the daemon embeds
//!
//! A collection created with an `embedder` (a model the daemon was started with, `ctxd serve
//! --model minilm=DIR`) gets the vectors of documents that carry text and no vector, and of
//! a search's `text`; such a search is hybrid unless `mode` says otherwise.
//!
//! ```no_run
//! use ctxd_client::proto::{CreateCollection, Document, Search, SearchMode, Upsert};
//! # async fn run(client: ctxd_client::Client) -> Result<(), ctxd_client::Error> {
//! client
//!     .create_collection(CreateCollection {
//!         name: "notes".into(),
//!         embedder: Some("minilm".into()), // the dimension is the model's
//!         ..Default::default()
//!     })
//!     .await?;
//! client
//!     .upsert(Upsert {
//!         collection: "notes".into(),
//!         documents: vec![Document {
//!             id: "otters".into(),
//!             text: Some("Sea otters hold hands while they sleep.".into()),
//!             ..Default::default()
//!         }],
//!     })
//!     .await?;
//! let hits = client
//!     .search(Search {
//!         collection: "notes".into(),
//!         text: Some("animals that rest together".into()),
//!         mode: Some(SearchMode::Vector),
//!         ..Default::default()
//!     })
//!     .await?;
//! # let _ = hits; Ok(()) }
//! ```
//!
//! [`Client::upsert`] takes any number of documents and sends them in requests of at most
//! [`MAX_BATCH_DOCUMENTS`](ctxd_proto::limits::MAX_BATCH_DOCUMENTS) documents and about
//! [`UPSERT_BATCH_BYTES`] of JSON each; every request is atomic on its own, the whole call is
//! not (see [`Error::PartialUpsert`]).
#![deny(missing_docs)]

mod batch;
mod connection;
mod error;
pub mod owner;
pub mod socket;
mod vector_bytes;

pub use batch::UPSERT_BATCH_BYTES;
pub use ctxd_proto as proto;
pub use error::{Error, Result};

use connection::Connection;
use ctxd_proto::{
    Call, Check, CheckResult, CollectionResult, Count, CountResult, CreateCollection, Delete,
    DeleteResult, DropCollection, DropCollectionResult, Empty, ErrorCode, Get, GetCollection,
    GetResult, Health, HealthResult, Hello, HelloResult, ListCollections, ListCollectionsResult,
    PROTOCOL_VERSION, Ping, Release, ReleaseResult, Renew, RenewResult, RequestId, Response,
    Resume, ResumeResult, Search, SearchResult, Shutdown, Snapshot, SnapshotResult, SnapshotStream,
    SnapshotStreamResult, Status, StatusResult, Upsert, UpsertResult,
};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// Requests of one split upsert that are sent before the first reply is read: two keep the
/// daemon busy while the client encodes the next (measured: 10.6k docs/s against 8.4k with one,
/// SciFact through the socket) and bound what a refusal leaves committed after it to one request.
pub const UPSERT_IN_FLIGHT: usize = 2;

/// Puts a connection back after an exchange, unless its stream may hold half a reply.
fn check_in(slot: &mut Option<Connection>, connection: Connection, error: Option<&Error>) {
    let broken = |e: &Error| matches!(e, Error::Io(_) | Error::Timeout(_) | Error::Protocol(_));
    let broken = match error {
        Some(Error::PartialUpsert { source, .. }) => broken(source),
        Some(e) => broken(e),
        None => false,
    };
    if !broken {
        *slot = Some(connection);
    }
}

/// Decodes the reply to a `C` request that was sent with `id`.
fn decode_reply<C: Call>(reply: &[u8], id: &RequestId) -> Result<C::Output> {
    let reply: Response<C::Output> = serde_json::from_slice(reply)
        .map_err(|e| Error::Protocol(format!("unreadable reply to `{}`: {e}", C::OP)))?;
    // Errors about the connection itself (`permission_denied` on connect, `frame_too_large`)
    // come before the daemon could read an id: they carry `null`.
    if reply.id.is_none()
        && let Err(error) = reply.outcome
    {
        return Err(error.into());
    }
    if reply.id.as_ref() != Some(id) {
        return Err(Error::Protocol(format!(
            "reply to `{}` carries id {:?}, expected {id}",
            C::OP,
            reply.id
        )));
    }
    reply.outcome.map_err(Error::from)
}

/// Settings for [`Client`]; start with [`Client::builder`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    socket: Option<PathBuf>,
    timeout: Option<Duration>,
    name: Option<String>,
}

impl ClientBuilder {
    /// Connect to this socket instead of the default.
    pub fn socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.socket = Some(socket.into());
        self
    }

    /// Fail a call with [`Error::Timeout`] when its reply takes longer (default: no limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The name this client gives in `hello`, for the daemon's log.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Connects and performs the `hello` handshake.
    pub async fn connect(self) -> Result<Client> {
        let socket = socket::resolve(self.socket);
        let client = Client {
            socket,
            timeout: self.timeout,
            name: self
                .name
                .unwrap_or_else(|| format!("ctxd-client/{}", env!("CARGO_PKG_VERSION"))),
            next_id: AtomicU64::new(1),
            connection: Mutex::new(None),
            server: HelloResult {
                protocol: PROTOCOL_VERSION,
                version: String::new(),
                pid: 0,
                state: ctxd_proto::State::Serving,
            },
        };
        let mut connection = client.open().await?;
        let server = client.handshake(&mut connection).await?;
        *client.connection.lock().await = Some(connection);
        Ok(Client { server, ..client })
    }
}

/// A connection to the ctxd daemon.
pub struct Client {
    socket: PathBuf,
    timeout: Option<Duration>,
    name: String,
    next_id: AtomicU64,
    connection: Mutex<Option<Connection>>,
    server: HelloResult,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Settings for a new client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to the default socket (`CTXD_SOCKET`, else the per-user runtime directory).
    pub async fn connect() -> Result<Client> {
        ClientBuilder::default().connect().await
    }

    /// Connects to the daemon at `socket`.
    pub async fn connect_to(socket: impl Into<PathBuf>) -> Result<Client> {
        ClientBuilder::default().socket(socket).connect().await
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What the daemon said in the handshake (version, pid, state at connect time).
    pub fn server(&self) -> &HelloResult {
        &self.server
    }

    /// Sends any operation, as exactly one request, and returns its typed result. (An
    /// [`Upsert`] sent this way is not split: [`Client::upsert`] is the method that takes any
    /// number of documents.)
    pub async fn call<C: Call>(&self, params: C) -> Result<C::Output> {
        self.call_waiting(params, None).await
    }

    /// Like [`Client::call`], but while the daemon is released the request waits up to `wait`
    /// for it to resume instead of failing with `released`.
    pub async fn call_waiting<C: Call>(
        &self,
        params: C,
        wait: Option<Duration>,
    ) -> Result<C::Output> {
        let wait_ms = wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
        let mut slot = self.connection.lock().await;
        let mut connection = self.check_out(&mut slot).await?;
        let result = self.exchange(&mut connection, &params, wait_ms).await;
        check_in(&mut slot, connection, result.as_ref().err());
        result
    }

    /// The open connection, taken out of its slot for one exchange (opening one, with its
    /// handshake, if there is none). An exchange abandoned half way (its future dropped: a
    /// `select!`, a caller's timeout) drops the connection with it, since its stream may hold
    /// half a request or a reply nobody read; [`check_in`] puts it back after an exchange that
    /// ended in step.
    async fn check_out(&self, slot: &mut Option<Connection>) -> Result<Connection> {
        match slot.take() {
            Some(connection) => Ok(connection),
            None => {
                let mut connection = self.open().await?;
                self.handshake(&mut connection).await?;
                Ok(connection)
            }
        }
    }

    async fn open(&self) -> Result<Connection> {
        Connection::open(&self.socket).await.map_err(|source| {
            if matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) {
                Error::NotRunning {
                    socket: self.socket.clone(),
                    source,
                }
            } else {
                Error::Io(source)
            }
        })
    }

    async fn handshake(&self, connection: &mut Connection) -> Result<HelloResult> {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            client: Some(self.name.clone()),
        };
        match self.exchange(connection, &hello, None).await {
            Ok(server) if server.protocol == PROTOCOL_VERSION => Ok(server),
            Ok(server) => Err(Error::VersionMismatch {
                client: PROTOCOL_VERSION,
                daemon: server.protocol.to_string(),
                message: format!("ctxd {} answered with another protocol", server.version),
            }),
            Err(Error::Daemon {
                code: ErrorCode::UnsupportedProtocol,
                message,
                details,
            }) => Err(Error::VersionMismatch {
                client: PROTOCOL_VERSION,
                daemon: details
                    .get("supported")
                    .map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    async fn exchange<C: Call>(
        &self,
        connection: &mut Connection,
        params: &C,
        wait_ms: Option<u64>,
    ) -> Result<C::Output> {
        let (id, line) = self.encode(params, wait_ms)?;
        // A request that waits for a resume may legitimately take `wait_ms` longer.
        let reply = self.within(wait_ms, connection.round_trip(line)).await??;
        decode_reply::<C>(&reply, &id)
    }

    /// A request line for `params` with a fresh id.
    fn encode<C: Call>(&self, params: &C, wait_ms: Option<u64>) -> Result<(RequestId, Vec<u8>)> {
        let id = RequestId::from(self.next_id.fetch_add(1, Ordering::Relaxed));
        let line = ctxd_proto::encode_request(Some(&id), params, wait_ms)
            .map_err(|e| Error::Protocol(format!("cannot encode `{}`: {e}", C::OP)))?;
        Ok((id, line))
    }

    /// Runs `io` within the per-request timeout (extended by `wait_ms`), if one is set.
    async fn within<T>(&self, wait_ms: Option<u64>, io: impl Future<Output = T>) -> Result<T> {
        match self.timeout {
            Some(limit) => {
                let limit = limit + Duration::from_millis(wait_ms.unwrap_or(0));
                tokio::time::timeout(limit, io)
                    .await
                    .map_err(|_| Error::Timeout(limit))
            }
            None => Ok(io.await),
        }
    }

    /// `hello` again: the daemon's version, pid and current state.
    pub async fn hello(&self) -> Result<HelloResult> {
        self.call(Hello {
            protocol: PROTOCOL_VERSION,
            client: Some(self.name.clone()),
        })
        .await
    }

    /// `ping`: a round trip that touches no storage.
    pub async fn ping(&self) -> Result<()> {
        self.call(Ping {}).await.map(|Empty {}| ())
    }

    /// `health`: the lifecycle state.
    pub async fn health(&self) -> Result<HealthResult> {
        self.call(Health {}).await
    }

    /// `status`: state, paths, counts, leases and open handles.
    pub async fn status(&self) -> Result<StatusResult> {
        self.call(Status {}).await
    }

    /// `shutdown`: asks the daemon to stop and waits until it has closed every file, removed
    /// its socket and dropped its lock (it closes this connection last).
    pub async fn shutdown(&self) -> Result<()> {
        self.call(Shutdown {}).await?;
        self.wait_closed().await
    }

    /// Waits until the daemon closes this client's connection (after `shutdown`, or the last
    /// `detach` of a daemon that stops when unused), within the client's timeout.
    pub(crate) async fn wait_closed(&self) -> Result<()> {
        let mut slot = self.connection.lock().await;
        if let Some(mut connection) = slot.take() {
            match self.timeout {
                Some(limit) => tokio::time::timeout(limit, connection.wait_closed())
                    .await
                    .map_err(|_| Error::Timeout(limit))??,
                None => connection.wait_closed().await?,
            }
        }
        Ok(())
    }

    /// `create_collection`.
    pub async fn create_collection(&self, params: CreateCollection) -> Result<CollectionResult> {
        self.call(params).await
    }

    /// `list_collections`.
    pub async fn list_collections(&self) -> Result<ListCollectionsResult> {
        self.call(ListCollections {}).await
    }

    /// `get_collection`.
    pub async fn get_collection(&self, name: impl Into<String>) -> Result<CollectionResult> {
        self.call(GetCollection { name: name.into() }).await
    }

    /// `drop_collection`.
    pub async fn drop_collection(&self, name: impl Into<String>) -> Result<DropCollectionResult> {
        self.call(DropCollection { name: name.into() }).await
    }

    /// `upsert`: inserts or replaces any number of documents.
    ///
    /// The documents are sent in order, in requests of at most
    /// [`MAX_BATCH_DOCUMENTS`](ctxd_proto::limits::MAX_BATCH_DOCUMENTS) (1000) documents and
    /// about [`UPSERT_BATCH_BYTES`] (16 MiB) of encoded JSON each, [`UPSERT_IN_FLIGHT`] at a
    /// time on this connection (the daemon executes them in order). The result sums `upserted`
    /// over the requests and carries the highest `generation`.
    ///
    /// **Atomicity holds per request, not per call.** Each request is written completely or not
    /// at all; a call that needs several requests can fail part way. Then:
    ///
    /// - if no request was acknowledged, the error is the failing request's own error;
    /// - otherwise it is [`Error::PartialUpsert`]: the documents before `failed` were written
    ///   and stay written, those of `failed` were not, and at most one request after it, which
    ///   was already in flight, may have been written too (`committed` counts it); nothing
    ///   later was sent.
    ///
    /// When the failure is a transport error ([`Error::Io`], [`Error::Timeout`]) the requests in
    /// flight may have been written too: the daemon may have committed them before the reply
    /// was lost. Sending the same documents again is always safe, since an upsert replaces
    /// documents by id.
    pub async fn upsert(&self, mut params: Upsert) -> Result<UpsertResult> {
        vector_bytes::send_documents(&mut params.documents);
        let batches = batch::plan_default(&params.documents);
        if batches.len() <= 1 {
            // Fits in one request (or is empty, which the daemon judges): atomic as a whole.
            return self.call(params).await;
        }
        let mut slot = self.connection.lock().await;
        let mut connection = self.check_out(&mut slot).await?;
        let result = self
            .upsert_pipelined(&mut connection, params, batches)
            .await;
        check_in(&mut slot, connection, result.as_ref().err());
        result
    }

    /// Like [`Client::upsert`], but each of `batches` is its own request (atomic on its own),
    /// unless it exceeds the request limits and must be split further. For callers with their
    /// own unit of atomicity (`ctxd import --batch`); document indexes in
    /// [`Error::PartialUpsert`] count across all batches, in order.
    pub async fn upsert_batches(
        &self,
        collection: &str,
        mut batches: Vec<Vec<ctxd_proto::Document>>,
    ) -> Result<UpsertResult> {
        let mut ranges = Vec::new();
        let mut offset = 0;
        for batch in &mut batches {
            vector_bytes::send_documents(batch);
            ranges.extend(
                batch::plan_default(batch)
                    .into_iter()
                    .map(|r| r.start + offset..r.end + offset),
            );
            offset += batch.len();
        }
        let params = Upsert {
            collection: collection.to_owned(),
            documents: batches.into_iter().flatten().collect(),
        };
        let mut slot = self.connection.lock().await;
        let mut connection = self.check_out(&mut slot).await?;
        let result = self.upsert_pipelined(&mut connection, params, ranges).await;
        check_in(&mut slot, connection, result.as_ref().err());
        result
    }

    /// Sends the requests of a split upsert with [`UPSERT_IN_FLIGHT`] outstanding, so encoding
    /// and transfer of one overlap the daemon's commit of the one before (the daemon executes
    /// them in order). After a refused request no new one is sent; the reply of one already in
    /// flight is still read, and counted if it was committed.
    async fn upsert_pipelined(
        &self,
        connection: &mut Connection,
        params: Upsert,
        batches: Vec<Range<usize>>,
    ) -> Result<UpsertResult> {
        let Upsert {
            collection,
            documents,
        } = params;
        let mut documents = documents.into_iter();
        let mut pending = batches.into_iter();
        let mut in_flight: VecDeque<(RequestId, Range<usize>)> = VecDeque::new();
        let mut total = UpsertResult {
            upserted: 0,
            generation: 0,
        };
        let mut committed = 0_u64;
        let mut refused: Option<(Range<usize>, Error)> = None;
        let partial = |committed: u64, failed: Range<usize>, source: Error| {
            if committed == 0 {
                source
            } else {
                Error::PartialUpsert {
                    committed,
                    failed,
                    source: Box::new(source),
                }
            }
        };
        loop {
            while refused.is_none() && in_flight.len() < UPSERT_IN_FLIGHT {
                let Some(range) = pending.next() else { break };
                let request = Upsert {
                    collection: collection.clone(),
                    documents: documents.by_ref().take(range.len()).collect(),
                };
                let (id, line) = self.encode(&request, None)?;
                if let Err(e) = self
                    .within(None, connection.send(line))
                    .await
                    .and_then(|r| r.map_err(Error::from))
                {
                    // Nothing after the last acknowledgement is known to be committed.
                    let failed = in_flight.front().map_or(range, |(_, r)| r.clone());
                    return Err(partial(committed, failed, e));
                }
                in_flight.push_back((id, range));
            }
            let Some((id, range)) = in_flight.pop_front() else {
                break;
            };
            let reply = match self
                .within(None, connection.receive())
                .await
                .and_then(|r| r.map_err(Error::from))
            {
                Ok(reply) => reply,
                Err(e) => return Err(partial(committed, range, e)),
            };
            match decode_reply::<Upsert>(&reply, &id) {
                Ok(result) => {
                    total.upserted += result.upserted;
                    total.generation = total.generation.max(result.generation);
                    committed += range.len() as u64;
                }
                Err(error @ Error::Daemon { .. }) => {
                    if refused.is_none() {
                        refused = Some((range, error));
                    }
                }
                Err(error) => return Err(partial(committed, range, error)),
            }
        }
        match refused {
            None => Ok(total),
            Some((failed, source)) => Err(partial(committed, failed, source)),
        }
    }

    /// `delete`.
    pub async fn delete(&self, params: Delete) -> Result<DeleteResult> {
        self.call(params).await
    }

    /// `update`: changes only the parts given of existing documents, in one request (at most
    /// 1000 documents; atomic). Vectors travel as bytes, as with [`Client::upsert`].
    pub async fn update(&self, mut params: ctxd_proto::Update) -> Result<ctxd_proto::UpdateResult> {
        vector_bytes::send_documents(&mut params.documents);
        self.call(params).await
    }

    /// `get`.
    pub async fn get(&self, mut params: Get) -> Result<GetResult> {
        let chosen_here = vector_bytes::send_get(&mut params);
        let result = self.call(params).await?;
        Ok(vector_bytes::received_get(result, chosen_here))
    }

    /// `count`.
    pub async fn count(&self, params: Count) -> Result<CountResult> {
        self.call(params).await
    }

    /// `search`.
    pub async fn search(&self, mut params: Search) -> Result<SearchResult> {
        let chosen_here = vector_bytes::send_search(&mut params);
        let result = self.call(params).await?;
        Ok(vector_bytes::received_search(result, chosen_here))
    }

    /// `release`: returns once every handle into the data directory is closed.
    pub async fn release(&self, params: Release) -> Result<ReleaseResult> {
        self.call(params).await
    }

    /// `renew`.
    pub async fn renew(&self, params: Renew) -> Result<RenewResult> {
        self.call(params).await
    }

    /// `resume`.
    pub async fn resume(&self, params: Resume) -> Result<ResumeResult> {
        self.call(params).await
    }

    /// `snapshot`: a directory at `dest` (see [`Snapshot`] for tar files and retention).
    pub async fn snapshot(&self, dest: impl Into<String>) -> Result<SnapshotResult> {
        self.call(Snapshot {
            dest: dest.into(),
            ..Snapshot::default()
        })
        .await
    }

    /// `snapshot_stream`: a consistent, verified snapshot written to `out` as a tar stream
    /// (the layout of [`SnapshotStream`]), without touching the live files; returns what the
    /// stream holds once every byte of it is written. The daemon's temporary copy is made in
    /// `params.tmp_dir` (default: beside its data directory) and removed when the stream ends.
    ///
    /// The client's timeout covers the wait for the snapshot to be taken, not the transfer
    /// (which runs at the pace of `out`). If `out` fails, or the stream ends short, the error
    /// says so and the connection is dropped; what reached `out` is then not a snapshot.
    pub async fn snapshot_to<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        params: SnapshotStream,
        out: &mut W,
    ) -> Result<SnapshotStreamResult> {
        let mut slot = self.connection.lock().await;
        let mut connection = self.check_out(&mut slot).await?;
        let header = match self.exchange(&mut connection, &params, None).await {
            Ok(header) => header,
            Err(e) => {
                check_in(&mut slot, connection, Some(&e));
                return Err(e);
            }
        };
        // In step again only once every byte of the stream has been read.
        connection.copy_exact(header.bytes, out).await?;
        check_in(&mut slot, connection, None);
        Ok(header)
    }

    /// `check`.
    pub async fn check(&self) -> Result<CheckResult> {
        self.call(Check {}).await
    }
}
