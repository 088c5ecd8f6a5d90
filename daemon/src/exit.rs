//! Exit statuses of the `ctxd` binary, for every subcommand (the `--help` text and the man
//! page list them too).

/// The operation succeeded (for `ctxd serve`: the daemon stopped cleanly).
pub const OK: u8 = 0;
/// The operation failed (the error is printed once).
pub const FAILED: u8 = 1;
/// The command line was wrong (clap uses the same code for what it rejects itself).
pub const USAGE: u8 = 2;
/// The daemon is not reachable.
pub const UNREACHABLE: u8 = 3;
/// `ctxd serve` stopped, every file closed, but the disk was full when it closed the stores:
/// SQLite's write-ahead log could not be checkpointed and is applied at the next start. Nothing
/// acknowledged is lost; free space before (or after) starting again.
pub const DISK_FULL: u8 = 4;
/// `ctxd serve` did not start: another ctxd owns the data directory (or the socket). A client
/// library that starts daemons on demand reads this as "attach to the owner instead".
pub const IN_USE: u8 = 5;
