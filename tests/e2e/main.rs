//! End-to-end tests: every test starts its own real `ctxd serve` process on its own socket and
//! temporary data directory, and talks to it through the client crate, raw JSON lines, or the
//! `ctxd` binary. Readiness comes from the daemon's `READY=1` notification, never from a sleep.

#![cfg(unix)]

mod ann;
mod backups;
mod bounds;
mod check;
mod cli;
mod cli_data;
mod crash;
mod data;
mod disk_full;
mod embed;
mod holders;
mod labels;
mod lifecycle;
mod load;
mod locking;
mod map_growth;
mod memory;
mod numbers;
mod packaging;
mod permissions;
mod protocol;
mod release;
mod restore;
mod search;
mod service;
mod snapshot;
mod support;
mod vector_bytes;
mod vector_recall;
mod writers;
