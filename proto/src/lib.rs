//! The ctxd wire protocol, version 1, as typed Rust.
//!
//! This crate is the contract between the `ctxd` daemon and every client. It holds types and
//! their serde mapping only: no I/O, no storage.
//!
//! # Transport and framing
//!
//! A client connects to the daemon's local socket (a Unix domain socket, default
//! `$XDG_RUNTIME_DIR/ctxd/ctxd.sock`; a named pipe `\\.\pipe\ctxd-<user>` on Windows) and writes
//! one **compact UTF-8 JSON object per line**, terminated by `\n`. The daemon answers each request
//! with one line, **in order** per connection, so a client may pipeline. Blank lines are ignored.
//! A line longer than the daemon's `--max-frame` (default 32 MiB) is answered with
//! `frame_too_large` and the connection is closed; any other bad message gets an error reply and
//! the connection stays usable.
//!
//! # Envelope
//!
//! | | shape |
//! |---|---|
//! | request | `{"id": <number or string, optional>, "op": "<operation>", ...parameters, "wait_ms": <optional>}` |
//! | success | `{"id": <same>, "ok": true, ...result}` |
//! | failure | `{"id": <same>, "ok": false, "error": {"code": "<code>", "message": "<text>", ...details}}` |
//!
//! Unknown request fields are rejected with `bad_request`, and so is a field given twice. Result
//! objects may grow new fields within protocol 1, so clients must ignore fields they do not know.
//! `wait_ms` is accepted by every operation: while the daemon is released, the request waits up
//! to that long for a resume instead of failing with `released`.
//!
//! The reply's `id` is the request's, **byte for byte as sent** (`123456789012345678901234567890`
//! and `-0` come back exactly so), at most [`MAX_ID_JSON_BYTES`] of JSON.
//!
//! # Limits
//!
//! [`limits`] names every bound; those that keep a request's memory in proportion to its line are
//! enforced while the line is decoded, before the rest of it is read into memory: at most
//! [`limits::MAX_DIMENSION`] values in a vector, [`limits::MAX_BATCH_DOCUMENTS`] documents in
//! an upsert, [`limits::MAX_IDS`] ids in a `get` or `delete`, and [`limits::MAX_FILTER_BYTES`]
//! of filter. Metadata travels as compact JSON text ([`Metadata`]). Labels people read (a lease's
//! `holder`, a client's name) are printable text on one line of at most
//! [`limits::MAX_LABEL_BYTES`] ([`validate::label`]). Hybrid weights are at most
//! [`limits::MAX_WEIGHT`], so every score is a finite number. The rules for documents are in
//! [`validate`], shared by the daemon and clients.
//!
//! # Operations
//!
//! Each operation is a parameter struct in [`ops`] implementing [`Call`], whose
//! [`Call::Output`] is the result: [`Hello`] → [`HelloResult`], [`Ping`] → [`Empty`],
//! [`Health`], [`Status`], [`CreateCollection`], [`ListCollections`], [`GetCollection`],
//! [`DropCollection`], [`Upsert`], [`Delete`], [`Get`], [`Count`], [`Search`], [`Release`],
//! [`Renew`], [`Resume`], [`Snapshot`], [`SnapshotStream`], [`Check`], [`Shutdown`],
//! [`Attach`], [`Detach`] (the last two added within protocol 1). Error
//! codes are [`ErrorCode`] (`disk_full` and `embedder_unavailable` joined them within protocol 1); metadata filters are
//! [`Filter`]. A vector ([`Vector`]) is a JSON array, or base64 of little-endian `f32` (also an
//! addition within protocol 1); `get` and `search` return vectors in their `vector_encoding`.
//!
//! One reply is followed by bytes that are not a JSON line: `snapshot_stream`'s (added within
//! protocol 1) announces `bytes`, and exactly that many bytes of a tar stream follow it before
//! the next reply line.
//!
//! A connection should begin with `hello`; a daemon that does not speak the requested
//! `protocol` answers `unsupported_protocol` with `supported` (a list of versions) in the
//! error's details.
//!
//! # A worked exchange
//!
//! `>` is what the client writes, `<` what the daemon answers (one line each on the wire):
//!
//! ```text
//! > {"id":1,"op":"hello","protocol":1,"client":"ctxd-cli/0.1.0"}
//! < {"id":1,"ok":true,"protocol":1,"version":"0.1.0","pid":4242,"state":"serving"}
//! > {"id":2,"op":"create_collection","name":"notes","dimension":3}
//! < {"id":2,"ok":true,"collection":{"name":"notes","dimension":3,"distance":"cosine","tokenizer":"porter","count":0}}
//! > {"id":3,"op":"upsert","collection":"notes","documents":[{"id":"a","text":"otters hold hands","vector":[0.1,0.2,0.3],"metadata":{"kind":"fact"}}]}
//! < {"id":3,"ok":true,"upserted":1,"generation":2}
//! > {"id":4,"op":"search","collection":"notes","text":"otter","vector":[0.1,0.2,0.3],"k":5}
//! < {"id":4,"ok":true,"hits":[{"id":"a","score":0.0328,"ranks":{"lexical":1,"vector":1},"text":"otters hold hands","metadata":{"kind":"fact"}}]}
//! > {"id":5,"op":"serch"}
//! < {"id":5,"ok":false,"error":{"code":"unknown_op","message":"unknown operation `serch`"}}
//! > {"id":6,"op":"ping","verbose":true}
//! < {"id":6,"ok":false,"error":{"code":"bad_request","message":"invalid `ping` request: unknown field `verbose`, there are no fields"}}
//! > {"id":7,"op":"ping"}
//! < {"id":7,"ok":true}
//! ```
//!
//! The same exchange in Rust, building and reading the messages with this crate:
//!
//! ```
//! use ctxd_proto::{encode_request, Empty, Hello, HelloResult, Request, Response, Ping};
//!
//! // The client encodes a typed call...
//! let line = encode_request(Some(&1.into()), &Hello { protocol: 1, client: None }, None)?;
//! assert_eq!(line, br#"{"id":1,"op":"hello","protocol":1}"#);
//!
//! // ...the daemon decodes it into an operation...
//! let request = Request::decode(&line).expect("a valid request");
//! assert_eq!(request.op.name(), "hello");
//!
//! // ...and the client decodes the typed reply.
//! let reply = br#"{"id":1,"ok":true,"protocol":1,"version":"0.1.0","pid":7,"state":"serving"}"#;
//! let reply: Response<HelloResult> = serde_json::from_slice(reply)?;
//! assert_eq!(reply.outcome.unwrap().pid, 7);
//!
//! // A request the daemon cannot read still gets an answer with its id.
//! let rejected = Request::decode(br#"{"id":"x","op":"ping","extra":1}"#).unwrap_err();
//! assert_eq!(rejected.error.code.as_str(), "bad_request");
//! # let _ = (Empty {}, Ping {});
//! # Ok::<(), serde_json::Error>(())
//! ```
#![deny(missing_docs)]

mod bounded;
mod envelope;
mod error;
pub mod filter;
pub mod limits;
pub mod ops;
pub mod text_filter;
pub mod types;
pub mod validate;
pub mod vector;

pub use envelope::{MAX_ID_JSON_BYTES, Rejected, Request, RequestId, Response, encode_request};
pub use error::{ErrorBody, ErrorCode};
pub use filter::{Comparison, Filter, Scalar};
pub use ops::*;
pub use text_filter::TextFilter;
pub use types::*;
pub use vector::{Vector, VectorEncoding};

/// The protocol version this crate describes.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest line a daemon accepts by default (32 MiB); `ctxd serve --max-frame` changes it.
pub const DEFAULT_MAX_FRAME: usize = 32 * 1024 * 1024;
