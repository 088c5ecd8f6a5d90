//! Where a decoded request becomes an answer: one arm per operation.

use crate::embed::prepare;
use crate::error::Error;
use crate::holders::{Hold, LetGo};
use crate::lifecycle;
use crate::shared::Shared;
use crate::shutdown::Reason;
use crate::storage::StorageError;
use crate::storage::snapshot::Streamable;
use ctxd_proto::{
    AttachResult, CollectionEmbedder, DetachResult, Empty, ErrorBody, ErrorCode, HealthResult,
    Hello, HelloResult, Operation, PROTOCOL_VERSION, Release, ReleaseResult, RenewResult, Request,
    RequestId, Response, ResumeResult, State, StatusResult,
};
use serde::Serialize;
use std::time::Duration;

/// What the session does after sending the reply.
pub enum After {
    /// Read the next request.
    Continue,
    /// Keep the connection open, unread, until the daemon has finished shutting down.
    HoldUntilExit,
    /// Write this snapshot's tar stream (the bytes the reply announced), then read the next
    /// request.
    Stream(Box<Streamable>),
}

/// Answers one request: the encoded reply line (without `\n`) and what to do next. `hold` is
/// the connection's hold on the daemon (`attach`), which lives as long as the connection.
pub async fn handle<'s>(
    shared: &'s Shared,
    mut request: Request,
    hold: &mut Option<Hold<'s>>,
) -> (Vec<u8>, After) {
    let id = request.id;
    let mut after = After::Continue;
    // Text becomes vectors before the release gate, so a release or a shutdown never waits for
    // a model; storage then checks the collection still has the embedder that computed them.
    let embedded = match embed(shared, &mut request.op, request.wait_ms).await {
        Ok(embedded) => embedded,
        Err(e) => return (encode::<Empty>(id, Err(e)), after),
    };
    // Data operations pass the release gate: they wait for (or fail during) a release, and a
    // release waits for them. Lifecycle operations work in every state.
    let _permit = if is_data_operation(&request.op) {
        match shared.lifecycle.admit(request.wait_ms).await {
            Ok(permit) => Some(permit),
            Err(e) => return (encode::<Empty>(id, Err(e)), after),
        }
    } else {
        None
    };
    let line = match request.op {
        Operation::Hello(hello) => encode(id, handle_hello(shared, &hello)),
        Operation::Ping(_) => encode(id, Ok(Empty {})),
        Operation::Health(_) => {
            let state = shared.state();
            encode(
                id,
                Ok(HealthResult {
                    state,
                    ready: state == State::Serving,
                }),
            )
        }
        Operation::Status(_) => encode(id, status(shared).await),
        Operation::Shutdown(_) => {
            tracing::info!("shutdown requested by a client");
            shared.shutdown.trigger(Reason::Request);
            after = After::HoldUntilExit;
            encode(id, Ok(Empty {}))
        }
        Operation::CreateCollection(params) => encode(
            id,
            storage(shared.store().create_collection(params, embedded).await),
        ),
        Operation::DropCollection(params) => {
            encode(id, storage(shared.store().drop_collection(params).await))
        }
        Operation::Upsert(params) => {
            encode(id, storage(shared.store().upsert(params, embedded).await))
        }
        Operation::Update(params) => {
            encode(id, storage(shared.store().update(params, embedded).await))
        }
        Operation::Delete(params) => encode(id, storage(shared.store().delete(params).await)),
        Operation::ListCollections(_) => {
            encode(id, storage(shared.store().list_collections().await))
        }
        Operation::GetCollection(params) => encode(
            id,
            storage(shared.store().get_collection(params.name).await),
        ),
        Operation::Get(params) => encode(id, storage(shared.store().get(params).await)),
        Operation::Count(params) => encode(id, storage(shared.store().count(params).await)),
        Operation::Search(params) => encode(id, storage(shared.store().search(params).await)),
        Operation::Release(params) => encode(id, release(shared, params).await),
        Operation::Renew(params) => encode(
            id,
            ttl(params.ttl_s).and_then(|ttl| {
                shared
                    .lifecycle
                    .renew(&params.lease_id, ttl)
                    .map(|expires_at| RenewResult { expires_at })
            }),
        ),
        Operation::Resume(params) => encode(
            id,
            shared
                .lifecycle
                .resume(params.lease_id.as_deref(), params.all)
                .await
                .map(|(state, leases)| ResumeResult { state, leases }),
        ),
        Operation::Snapshot(params) => encode(
            id,
            storage(
                shared
                    .store()
                    .snapshot(&params, shared.data_dir().to_owned())
                    .await,
            ),
        ),
        Operation::SnapshotStream(params) => {
            let taken = shared
                .store()
                .snapshot_for_stream(params.tmp_dir.as_deref(), shared.data_dir().to_owned())
                .await;
            match taken {
                Ok(archive) => {
                    let line = encode(id, Ok(archive.result()));
                    after = After::Stream(Box::new(archive));
                    line
                }
                Err(e) => encode::<Empty>(id, Err(e.into())),
            }
        }
        Operation::Check(_) => encode(id, storage(shared.store().check().await)),
        Operation::Attach(params) => encode(id, attach(shared, &params, hold)),
        Operation::Detach(_) => {
            let let_go = hold.take().map_or(
                LetGo {
                    holders: shared.holders.count(),
                    stopping: false,
                },
                Hold::detach,
            );
            if let_go.stopping {
                tracing::info!("the last client holding the daemon detached; stopping");
                // As after `shutdown`: the connection closes once every file is closed.
                after = After::HoldUntilExit;
            }
            encode(
                id,
                Ok(DetachResult {
                    holders: let_go.holders,
                    stopping: let_go.stopping,
                }),
            )
        }
    };
    (line, after)
}

/// Whether `op` reads or writes the data (and so must wait while the files are released).
fn is_data_operation(op: &Operation) -> bool {
    !matches!(
        op,
        Operation::Hello(_)
            | Operation::Ping(_)
            | Operation::Health(_)
            | Operation::Status(_)
            | Operation::Release(_)
            | Operation::Renew(_)
            | Operation::Resume(_)
            | Operation::Shutdown(_)
            | Operation::Attach(_)
            | Operation::Detach(_)
    )
}

/// `attach`: takes the connection's hold, once, if this daemon serves the directory the client
/// means.
fn attach<'s>(
    shared: &'s Shared,
    params: &ctxd_proto::Attach,
    hold: &mut Option<Hold<'s>>,
) -> Result<AttachResult, Error> {
    if let Some(wanted) = &params.data_dir
        && std::path::Path::new(wanted) != shared.data_dir()
    {
        return Err(Error::BadRequest(format!(
            "this ctxd serves {}, not {wanted}; no hold was taken",
            shared.data_dir().display()
        )));
    }
    let holders = match hold {
        Some(_) => shared.holders.count(),
        None => {
            let (taken, holders) = shared.holders.attach()?;
            *hold = Some(taken);
            holders
        }
    };
    Ok(AttachResult {
        holders,
        stop_when_unused: shared.holders.stop_when_unused(),
    })
}

async fn release(shared: &Shared, params: Release) -> Result<ReleaseResult, Error> {
    if let Some(holder) = &params.holder {
        label("holder", holder)?;
    }
    let ttl = params.ttl_s.map_or(Ok(lifecycle::DEFAULT_TTL), ttl)?;
    let drain = params
        .drain_ms
        .map_or(lifecycle::DEFAULT_DRAIN, Duration::from_millis);
    let released = shared.lifecycle.release(params.holder, ttl, drain).await?;
    Ok(ReleaseResult {
        lease_id: released.lease.lease_id,
        expires_at: released.lease.expires_at,
        generation: released.generation,
        files: released.files,
        exclude: crate::storage::layout::EXCLUDE
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    })
}

/// A lease length: at least a second, at most a week (a lease nobody renews must end).
fn ttl(seconds: u64) -> Result<Duration, Error> {
    const WEEK: u64 = 7 * 24 * 3600;
    if (1..=WEEK).contains(&seconds) {
        Ok(Duration::from_secs(seconds))
    } else {
        Err(Error::BadRequest(format!(
            "`ttl_s` {seconds} is out of range (1–{WEEK} seconds)"
        )))
    }
}

fn storage<T>(result: Result<T, StorageError>) -> Result<T, Error> {
    Ok(result?)
}

/// A label that people will read (in `status`, the service manager's status line, the log):
/// printable and bounded, or the request is refused.
fn label(what: &str, text: &str) -> Result<(), Error> {
    ctxd_proto::validate::label(what, text).map_err(|e| Error::BadRequest(e.to_string()))
}

fn handle_hello(shared: &Shared, hello: &Hello) -> Result<HelloResult, Error> {
    if let Some(client) = &hello.client {
        label("client", client)?;
    }
    if hello.protocol != PROTOCOL_VERSION {
        return Err(Error::UnsupportedProtocol {
            requested: hello.protocol,
        });
    }
    tracing::debug!(
        client = hello.client.as_deref().unwrap_or("unnamed"),
        "hello"
    );
    Ok(HelloResult {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        state: shared.state(),
    })
}

/// Computes the vectors a request's text stands for (`embed::prepare`); returns the embedder
/// the collection is to be created with, or that computed an upsert's vectors.
async fn embed(
    shared: &Shared,
    op: &mut Operation,
    wait_ms: Option<u64>,
) -> Result<Option<CollectionEmbedder>, Error> {
    match op {
        Operation::CreateCollection(params) => {
            Ok(prepare::create_collection(&shared.embedders, params)?)
        }
        Operation::Upsert(params) => prepare::upsert(shared, params, wait_ms).await,
        Operation::Update(params) => prepare::update(shared, params, wait_ms).await,
        Operation::Search(params) => prepare::search(shared, params, wait_ms)
            .await
            .map(|()| None),
        _ => Ok(None),
    }
}

async fn status(shared: &Shared) -> Result<StatusResult, Error> {
    // While released the store is closed; its counts are those it was closed with.
    let stats = match shared.store().stats().await {
        Ok(stats) => stats,
        Err(StorageError::Closed) => shared.lifecycle.last_stats(),
        Err(e) => return Err(e.into()),
    };
    Ok(StatusResult {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_s: shared.uptime_s(),
        state: shared.state(),
        data_dir: shared.data_dir().display().to_string(),
        socket: shared.socket.display().to_string(),
        generation: stats.generation,
        collections: stats.collections,
        documents: stats.documents,
        leases: shared.lifecycle.leases(),
        open_files: crate::open_files::count(shared.data_dir()),
        connections: shared.connections(),
        problem: shared.lifecycle.problem(),
        last_snapshot: shared.last_snapshot(),
        models: shared.embedders.infos(),
        holders: shared.holders.count(),
        stop_when_unused: shared.holders.stop_when_unused(),
    })
}

/// Encodes a reply. The wire never carries `Debug` output: errors go through
/// [`Error::to_body`].
pub fn encode<T: Serialize>(id: Option<RequestId>, outcome: Result<T, Error>) -> Vec<u8> {
    encode_body(id, outcome.map_err(|e| e.to_body()))
}

/// Encodes a reply whose error is already a wire error object.
pub fn encode_body<T: Serialize>(id: Option<RequestId>, outcome: Result<T, ErrorBody>) -> Vec<u8> {
    let response = Response { id, outcome };
    serde_json::to_vec(&response).unwrap_or_else(|e| {
        tracing::error!("cannot encode a reply: {e}");
        let failure: Response<Empty> = Response {
            id: response.id,
            outcome: Err(ErrorBody::new(
                ErrorCode::Internal,
                format!("cannot encode the reply: {e}"),
            )),
        };
        serde_json::to_vec(&failure).expect("an error reply always encodes")
    })
}
