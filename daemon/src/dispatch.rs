//! Where a decoded request becomes an answer: one arm per operation.

use crate::error::Error;
use crate::shared::Shared;
use crate::shutdown::Reason;
use crate::storage::StorageError;
use ctxd_proto::{
    Empty, ErrorBody, ErrorCode, HealthResult, Hello, HelloResult, Operation, PROTOCOL_VERSION,
    Request, RequestId, Response, State, StatusResult,
};
use serde::Serialize;

/// What the session does after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    Continue,
    /// Keep the connection open, unread, until the daemon has finished shutting down.
    HoldUntilExit,
}

/// Answers one request: the encoded reply line (without `\n`) and what to do next.
pub async fn handle(shared: &Shared, request: Request) -> (Vec<u8>, After) {
    let id = request.id;
    let op = request.op.name();
    let mut after = After::Continue;
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
        Operation::CreateCollection(params) => {
            encode(id, storage(shared.store.create_collection(params).await))
        }
        Operation::DropCollection(params) => {
            encode(id, storage(shared.store.drop_collection(params).await))
        }
        Operation::Upsert(params) => encode(id, storage(shared.store.upsert(params).await)),
        Operation::Delete(params) => encode(id, storage(shared.store.delete(params).await)),
        Operation::ListCollections(_) => encode(id, storage(shared.store.list_collections().await)),
        Operation::GetCollection(params) => {
            encode(id, storage(shared.store.get_collection(params.name).await))
        }
        Operation::Get(params) => encode(id, storage(shared.store.get(params).await)),
        Operation::Count(params) => encode(id, storage(shared.store.count(params).await)),
        Operation::Search(params) => encode(id, storage(shared.store.search(params).await)),
        Operation::Release(_)
        | Operation::Renew(_)
        | Operation::Resume(_)
        | Operation::Snapshot(_)
        | Operation::Check(_) => encode::<Empty>(id, Err(Error::NotProvided { op })),
    };
    (line, after)
}

fn storage<T>(result: Result<T, StorageError>) -> Result<T, Error> {
    Ok(result?)
}

fn handle_hello(shared: &Shared, hello: &Hello) -> Result<HelloResult, Error> {
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

async fn status(shared: &Shared) -> Result<StatusResult, Error> {
    let stats = shared.store.stats().await?;
    Ok(StatusResult {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_s: shared.uptime_s(),
        state: shared.state(),
        data_dir: shared.data_dir.display().to_string(),
        socket: shared.socket.display().to_string(),
        generation: stats.generation,
        collections: stats.collections,
        documents: stats.documents,
        leases: Vec::new(),
        open_files: crate::open_files::count(&shared.data_dir),
        connections: shared.connections(),
        problem: None,
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
