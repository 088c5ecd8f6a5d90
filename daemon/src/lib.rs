//! ctxd: a daemon that is the single owner of every open handle to one data directory of
//! documents, full-text and vectors, and the `ctxd` command line that talks to it.
//!
//! The daemon keeps an LMDB environment (vectors) and a SQLite database (documents, metadata,
//! FTS5) open on behalf of every other program, which reach it over a local socket speaking
//! JSON lines ([`ctxd_proto`]). Because nothing else opens the files, the daemon can close all
//! of them on request (release), on SIGTERM, or for a snapshot, and backups never catch them
//! mid-write.
//!
//! The crate's entry points are [`cli`] (what `main.rs` calls) and [`daemon::run`] (the daemon's
//! whole life, also usable by a service host). A map of the modules:
//!
//! | concern | module |
//! |---|---|
//! | start, serve, the shutdown sequence | [`daemon`] |
//! | accept loop and drain | `server` |
//! | one connection's request loop | `session` |
//! | bytes → lines (framing, `--max-frame`) | `connection` |
//! | request → answer, one arm per operation | `dispatch` |
//! | a snapshot's tar stream after its reply line | `stream` |
//! | snapshots on a schedule (`--snapshot-every`) | `schedule` |
//! | models that embed text (`--model`), before storage sees a request | [`embed`] |
//! | failures → wire error codes | `error` |
//! | the storage owner thread (SQLite, LMDB, `ctxd.json`) | `storage` |
//! | data directory and socket locks | `lock` |
//! | binding the socket, peer checks | `listener` |
//! | signals, readiness notification | `signals`, `notify` |
//! | the Windows service (install, SCM host, pause → release) | `service` (Windows only) |
//!
//! # Example
//!
//! Running a daemon from Rust (tests and service hosts do this; users run `ctxd serve`):
//!
//! ```no_run
//! # async fn run() -> Result<(), ctxd::daemon::DaemonError> {
//! let config = ctxd::config::ServeConfig::resolve(Some("/tmp/ctxd-data".into()), None);
//! ctxd::daemon::run(config).await // returns after SIGTERM, SIGINT or a `shutdown` request
//! # }
//! ```
#![deny(missing_docs)]

mod budget;
pub mod cli;
mod clock;
pub mod config;
mod connection;
pub mod daemon;
mod dispatch;
pub mod embed;
mod error;
pub mod exit;
mod fd_limit;
mod holders;
mod lifecycle;
mod listener;
mod lock;
pub mod mcp;
mod notify;
mod open_files;
mod schedule;
mod server;
#[cfg(windows)]
pub mod service;
mod session;
mod shared;
mod shutdown;
mod signals;
mod storage;
mod stream;
mod swap;
