//! One client connection: read a line, answer it, in order, until the client leaves or the
//! daemon stops.

use crate::connection::{FrameError, FrameReader};
use crate::dispatch::{self, After};
use crate::listener;
use crate::shared::Shared;
use ctxd_proto::{Empty, ErrorBody, ErrorCode, Request};
use interprocess::local_socket::tokio::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

/// Serves one connection to its end.
pub async fn run(stream: Stream, shared: Arc<Shared>) {
    let _counted = shared.connection_opened();
    let stream = Arc::new(stream);
    let mut writer = BufWriter::new(Side(Arc::clone(&stream)));
    if let Err(message) = listener::check_peer(&stream) {
        tracing::warn!("refused a connection: {message}");
        let reply = dispatch::encode_body::<Empty>(
            None,
            Err(ErrorBody::new(ErrorCode::PermissionDenied, message)),
        );
        let _ = send(&mut writer, reply, true).await;
        return;
    }
    let mut reader = FrameReader::new(Side(Arc::clone(&stream)), shared.max_frame);
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.shutdown.triggered() => break,
            frame = reader.next_frame() => frame,
        };
        let line = match frame {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(FrameError::TooLarge { limit }) => {
                let reply = dispatch::encode_body::<Empty>(
                    None,
                    Err(ErrorBody::new(
                        ErrorCode::FrameTooLarge,
                        format!("request line exceeds the frame limit of {limit} bytes; closing the connection"),
                    )
                    .with_detail("max_frame", limit)),
                );
                let _ = send(&mut writer, reply, true).await;
                break;
            }
            Err(FrameError::Io(e)) => {
                tracing::debug!("connection ended: {e}");
                break;
            }
        };
        let (reply, after) = match Request::decode(&line) {
            Ok(request) => dispatch::handle(&shared, request).await,
            Err(rejected) => (
                dispatch::encode_body::<Empty>(rejected.id, Err(rejected.error)),
                After::Continue,
            ),
        };
        // Pipelined requests already buffered are answered before one flush.
        let flush = after != After::Continue || !reader.has_buffered_frame();
        if let Err(e) = send(&mut writer, reply, flush).await {
            tracing::debug!("cannot answer: {e}");
            break;
        }
        if after == After::HoldUntilExit {
            shared.hold_until_exit(stream);
            return;
        }
    }
}

async fn send(writer: &mut BufWriter<Side>, mut line: Vec<u8>, flush: bool) -> io::Result<()> {
    line.push(b'\n');
    writer.write_all(&line).await?;
    if flush {
        writer.flush().await?;
    }
    Ok(())
}

/// A shared stream used as a reader or a writer (`&Stream` does both without splitting).
struct Side(Arc<Stream>);

impl AsyncRead for Side {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Side {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}
