//! OS signals → the one [`Shutdown`]. A second signal while stopping exits at once (the
//! stores are crash-safe; this is the escape hatch for a drain that hangs).

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

use crate::shutdown::{Reason, Shutdown};

/// Starts listening for termination signals; the first triggers `shutdown`.
pub fn listen(shutdown: Shutdown) -> std::io::Result<()> {
    platform::listen(shutdown)
}

fn on_signal(shutdown: &Shutdown, reason: Reason) {
    if shutdown.is_triggered() {
        tracing::warn!("second {reason} while stopping: exiting now");
        std::process::exit(1);
    }
    shutdown.trigger(reason);
}
