//! SIGTERM and SIGINT through signal-hook.

use super::on_signal;
use crate::shutdown::{Reason, Shutdown};
use futures_util::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

pub(super) fn listen(shutdown: Shutdown) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            let reason = if signal == SIGINT {
                Reason::Interrupt
            } else {
                Reason::Terminate
            };
            on_signal(&shutdown, reason);
        }
    });
    Ok(())
}
