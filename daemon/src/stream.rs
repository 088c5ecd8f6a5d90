//! Writing a snapshot's tar stream down a connection, after the `snapshot_stream` reply line.
//!
//! The tar is produced on a blocking thread (it reads the sealed copy's files) in chunks of
//! [`CHUNK`] bytes handed over a small channel; the session writes each to the client, cut off
//! after the idle timeout like any reply. When the client stops reading or the daemon shuts
//! down, the channel closes, the producer's next chunk fails, and dropping the sealed copy
//! removes its temporary directory: nothing is left behind however the stream ends.

use crate::session::ReplyWriter;
use crate::shared::Shared;
use crate::storage::snapshot::Streamable;
use std::io::{self, Write};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Bytes per chunk: large enough that the channel costs nothing next to the copy.
const CHUNK: usize = 1 << 20;

/// Chunks produced ahead of the socket.
const AHEAD: usize = 4;

/// Writes `archive`'s tar stream to `writer`.
pub async fn write(
    writer: &mut ReplyWriter,
    archive: Streamable,
    shared: &Shared,
) -> io::Result<()> {
    let (sender, mut chunks) = mpsc::channel::<Vec<u8>>(AHEAD);
    let producer = tokio::task::spawn_blocking(move || {
        archive.write_to(Chunks {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        })
    });
    let timeout = shared.limits.idle_timeout;
    let sent = async {
        while let Some(chunk) = chunks.recv().await {
            tokio::select! {
                biased;
                _ = shared.shutdown.triggered() => {
                    return Err(io::Error::other("the daemon is shutting down"));
                }
                written = tokio::time::timeout(timeout, writer.write_all(&chunk)) => {
                    written.map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client did not read the stream within --idle-timeout",
                        )
                    })??;
                }
            }
        }
        writer.flush().await
    }
    .await;
    // Closing the channel stops a producer still writing (the client went away).
    drop(chunks);
    let produced = producer
        .await
        .map_err(|e| io::Error::other(format!("the snapshot stream task failed: {e}")))?;
    sent?;
    produced.map(|_| ())
}

/// The producer's side: a `Write` that hands full chunks to the session.
struct Chunks {
    sender: mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl Chunks {
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client stopped reading"))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}
