//! Ctrl-C, Ctrl-Break, console close and system shutdown through tokio's Windows signals.

use super::on_signal;
use crate::shutdown::{Reason, Shutdown};
use tokio::signal::windows;

pub(super) fn listen(shutdown: Shutdown) -> std::io::Result<()> {
    let mut ctrl_c = windows::ctrl_c()?;
    let mut ctrl_break = windows::ctrl_break()?;
    let mut close = windows::ctrl_close()?;
    let mut system_shutdown = windows::ctrl_shutdown()?;
    tokio::spawn(async move {
        loop {
            let reason = tokio::select! {
                _ = ctrl_c.recv() => Reason::Interrupt,
                _ = ctrl_break.recv() => Reason::Interrupt,
                _ = close.recv() => Reason::Terminate,
                _ = system_shutdown.recv() => Reason::Terminate,
            };
            on_signal(&shutdown, reason);
        }
    });
    Ok(())
}
