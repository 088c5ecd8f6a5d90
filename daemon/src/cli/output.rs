//! Printing results: human text by default, JSON with `--json`; errors once, on stderr.

use serde::Serialize;
use std::process::ExitCode;

/// Exit codes of DESIGN §8.
pub mod exit {
    /// The operation succeeded.
    pub const OK: u8 = 0;
    /// The operation failed (the error is printed once).
    pub const FAILED: u8 = 1;
    /// The daemon is not reachable.
    pub const UNREACHABLE: u8 = 3;
}

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or as the text `human` makes of it.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("ctxd: cannot print the result as JSON: {e}"),
            }
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

/// Prints a client error once, with a hint where one helps, and returns its exit code.
pub fn fail(error: &ctxd_client::Error) -> ExitCode {
    eprintln!("ctxd: {error}");
    match error {
        ctxd_client::Error::NotRunning { .. } => {
            eprintln!(
                "hint: start it with `ctxd serve` (or `systemctl --user start ctxd`), or point \
                 --socket / CTXD_SOCKET at the socket of a running daemon"
            );
            ExitCode::from(exit::UNREACHABLE)
        }
        _ => ExitCode::from(exit::FAILED),
    }
}
