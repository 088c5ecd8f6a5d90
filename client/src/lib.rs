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
//! [`Client::upsert`] takes any number of documents and sends them in requests of at most
//! [`MAX_BATCH_DOCUMENTS`](ctxd_proto::limits::MAX_BATCH_DOCUMENTS) documents and about
//! [`UPSERT_BATCH_BYTES`] of JSON each; every request is atomic on its own, the whole call is
//! not (see [`Error::PartialUpsert`]).
#![deny(missing_docs)]

mod batch;
mod connection;
mod error;
pub mod socket;

pub use batch::UPSERT_BATCH_BYTES;
pub use ctxd_proto as proto;
pub use error::{Error, Result};

use connection::Connection;
use ctxd_proto::{
    Call, Check, CheckResult, CollectionResult, Count, CountResult, CreateCollection, Delete,
    DeleteResult, Document, DropCollection, DropCollectionResult, Empty, ErrorCode, Get,
    GetCollection, GetResult, Health, HealthResult, Hello, HelloResult, ListCollections,
    ListCollectionsResult, PROTOCOL_VERSION, Ping, Release, ReleaseResult, Renew, RenewResult,
    RequestId, Response, Resume, ResumeResult, Search, SearchResult, Shutdown, Snapshot,
    SnapshotResult, Status, StatusResult, Upsert, UpsertResult,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

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
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => {
                let mut connection = self.open().await?;
                self.handshake(&mut connection).await?;
                slot.insert(connection)
            }
        };
        let result = self.exchange(connection, &params, wait_ms).await;
        if matches!(
            result,
            Err(Error::Io(_) | Error::Timeout(_) | Error::Protocol(_))
        ) {
            // The stream may hold half a reply: never reuse it.
            *slot = None;
        }
        result
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
        let id = RequestId::from(self.next_id.fetch_add(1, Ordering::Relaxed));
        let line = ctxd_proto::encode_request(Some(&id), params, wait_ms)
            .map_err(|e| Error::Protocol(format!("cannot encode `{}`: {e}", C::OP)))?;
        let reply = match self.timeout {
            // A request that waits for a resume may legitimately take `wait_ms` longer.
            Some(limit) => {
                let limit = limit + Duration::from_millis(wait_ms.unwrap_or(0));
                tokio::time::timeout(limit, connection.round_trip(line))
                    .await
                    .map_err(|_| Error::Timeout(limit))??
            }
            None => connection.round_trip(line).await?,
        };
        let reply: Response<C::Output> = serde_json::from_slice(&reply)
            .map_err(|e| Error::Protocol(format!("unreadable reply to `{}`: {e}", C::OP)))?;
        // Errors about the connection itself (`permission_denied` on connect,
        // `frame_too_large`) come before the daemon could read an id: they carry `null`.
        if reply.id.is_none()
            && let Err(error) = reply.outcome
        {
            return Err(error.into());
        }
        if reply.id.as_ref() != Some(&id) {
            return Err(Error::Protocol(format!(
                "reply to `{}` carries id {:?}, expected {id}",
                C::OP,
                reply.id
            )));
        }
        reply.outcome.map_err(Error::from)
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
    /// about [`UPSERT_BATCH_BYTES`] (16 MiB) of encoded JSON each, one after another on this
    /// connection. The result sums `upserted` over the requests and carries the last request's
    /// `generation`.
    ///
    /// **Atomicity holds per request, not per call.** Each request is written completely or not
    /// at all; a call that needs several requests can fail part way. Then:
    ///
    /// - if no request had been acknowledged, the error is the failing request's own error,
    ///   and nothing was written (as for a call that fits in one request);
    /// - otherwise it is [`Error::PartialUpsert`]: the first `committed` documents, in the
    ///   order given, were written and stay written; the failing request and the documents
    ///   after it were not (the rest is never sent).
    ///
    /// When the failure is a transport error ([`Error::Io`], [`Error::Timeout`]) the request in
    /// flight may have been written too: the daemon may have committed it before the reply was
    /// lost. Sending the same documents again is always safe, since an upsert replaces documents
    /// by id.
    pub async fn upsert(&self, params: Upsert) -> Result<UpsertResult> {
        let batches = batch::plan_default(&params.documents);
        if batches.len() <= 1 {
            // Fits in one request (or is empty, which the daemon judges): atomic as a whole.
            return self.call(params).await;
        }
        let Upsert {
            collection,
            documents,
        } = params;
        let mut rest = documents.into_iter();
        let mut total = UpsertResult {
            upserted: 0,
            generation: 0,
        };
        let mut committed = 0_u64;
        for range in batches {
            let documents: Vec<Document> = rest.by_ref().take(range.len()).collect();
            let request = Upsert {
                collection: collection.clone(),
                documents,
            };
            match self.call(request).await {
                Ok(result) => {
                    total.upserted += result.upserted;
                    total.generation = result.generation;
                    committed += range.len() as u64;
                }
                Err(source) if committed == 0 => return Err(source),
                Err(source) => {
                    return Err(Error::PartialUpsert {
                        committed,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(total)
    }

    /// `delete`.
    pub async fn delete(&self, params: Delete) -> Result<DeleteResult> {
        self.call(params).await
    }

    /// `get`.
    pub async fn get(&self, params: Get) -> Result<GetResult> {
        self.call(params).await
    }

    /// `count`.
    pub async fn count(&self, params: Count) -> Result<CountResult> {
        self.call(params).await
    }

    /// `search`.
    pub async fn search(&self, params: Search) -> Result<SearchResult> {
        self.call(params).await
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

    /// `snapshot`.
    pub async fn snapshot(&self, dest: impl Into<String>) -> Result<SnapshotResult> {
        self.call(Snapshot { dest: dest.into() }).await
    }

    /// `check`.
    pub async fn check(&self) -> Result<CheckResult> {
        self.call(Check {}).await
    }
}
