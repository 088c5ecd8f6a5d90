//! One client connection: read lines, answer them in order, until the client leaves or the
//! daemon stops.
//!
//! Two stages run in the same task: the reader decodes the next request while the executor
//! runs the current one (a large upsert's JSON is parsed while the previous batch commits).
//! Requests still execute one at a time and in order, so a client that pipelines an upsert and
//! a search sees its own write.

use crate::budget::Reservation;
use crate::connection::{Frame, FrameError, FrameReader};
use crate::dispatch::{self, After};
use crate::listener;
use crate::shared::Shared;
use crate::stream;
use ctxd_proto::{Empty, ErrorBody, ErrorCode, Rejected, Request};
use interprocess::local_socket::tokio::Stream;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::sync::mpsc;

/// Requests decoded ahead of the one executing: enough to overlap decoding with execution,
/// small enough that shutdown abandons little.
const DECODED_AHEAD: usize = 2;

/// What the reader hands the executor.
enum Incoming {
    /// A decoded request, and the budget its line holds until it has been executed.
    Request(Box<Result<Request, Rejected>>, Reservation),
    TooLarge(usize),
    /// A line began but did not end within the idle timeout.
    Stalled(Duration),
}

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
        let _ = send(&mut writer, reply, true, shared.limits.idle_timeout).await;
        return;
    }
    let (decoded, queue) = mpsc::channel(DECODED_AHEAD);
    let reader = read_requests(
        FrameReader::new(
            Side(Arc::clone(&stream)),
            shared.limits.max_frame,
            Arc::clone(&shared.budget),
            shared.limits.idle_timeout,
        ),
        decoded,
        &shared,
    );
    let executor = async {
        // Owned here, so returning drops it and the reader stops at once.
        let mut queue = queue;
        // The connection's `attach`: let go when the connection ends, however it ends.
        let mut hold = None;
        while let Some(incoming) = queue.recv().await {
            if shared.shutdown.is_triggered() {
                break;
            }
            let (reply, after) = match incoming {
                Incoming::Request(request, reservation) => {
                    let answer = match *request {
                        Ok(request) => dispatch::handle(&shared, request, &mut hold).await,
                        Err(rejected) => (
                            dispatch::encode_body::<Empty>(rejected.id, Err(rejected.error)),
                            After::Continue,
                        ),
                    };
                    // The request is done with: its bytes go back to the budget before the
                    // reply is written (a client slow to read holds none of it).
                    drop(reservation);
                    answer
                }
                Incoming::Stalled(after) => {
                    let reply = dispatch::encode_body::<Empty>(
                        None,
                        Err(ErrorBody::new(
                            ErrorCode::BadRequest,
                            format!(
                                "incomplete request line: it did not end within {} of its first \
                                 byte (--idle-timeout); closing the connection",
                                humantime::format_duration(after)
                            ),
                        )),
                    );
                    let _ = send(&mut writer, reply, true, shared.limits.idle_timeout).await;
                    return None;
                }
                Incoming::TooLarge(limit) => {
                    let reply = dispatch::encode_body::<Empty>(
                        None,
                        Err(ErrorBody::new(
                            ErrorCode::FrameTooLarge,
                            format!(
                                "request line exceeds the frame limit of {limit} bytes; closing the connection"
                            ),
                        )
                        .with_detail("max_frame", limit)),
                    );
                    let _ = send(&mut writer, reply, true, shared.limits.idle_timeout).await;
                    return None;
                }
            };
            // Replies to requests already waiting are flushed together.
            let flush = !matches!(after, After::Continue) || queue.is_empty();
            if let Err(e) = send(&mut writer, reply, flush, shared.limits.idle_timeout).await {
                tracing::debug!("cannot answer: {e}");
                return None;
            }
            match after {
                After::Continue => {}
                After::HoldUntilExit => return Some(()),
                After::Stream(archive) => {
                    if let Err(e) = stream::write(&mut writer, *archive, &shared).await {
                        // The client learns it from a stream that ends short.
                        tracing::warn!("snapshot stream not completed: {e}");
                        return None;
                    }
                }
            }
        }
        // A holder learns that the files are closed from its connection's end, however the
        // daemon came to stop: its connection stays open, unread, until the very end.
        hold.as_ref()
            .filter(|_| shared.shutdown.is_triggered())
            .map(|_| ())
    };
    // The reader ends when the executor drops the queue (it returns) or at end of input.
    let ((), hold) = tokio::join!(reader, executor);
    if hold.is_some() {
        shared.hold_until_exit(stream);
    }
}

/// Answers a connection beyond `--max-connections` with `busy`, then closes it.
pub async fn refuse(stream: Stream, max: usize) {
    let mut writer = BufWriter::new(Side(Arc::new(stream)));
    let reply = dispatch::encode_body::<Empty>(
        None,
        Err(ErrorBody::new(
            ErrorCode::Busy,
            format!(
                "this ctxd serves at most {max} connections at once and all are open; this one \
                 is closed (close idle connections, or raise --max-connections)"
            ),
        )
        .with_detail("max_connections", max)),
    );
    let _ = send(&mut writer, reply, true, REFUSAL_TIMEOUT).await;
}

/// How long a refusal may take to be written before the connection is just closed: a client
/// that does not read its socket for a second after connecting does not get to hold a
/// descriptor longer (a local socket's buffer takes the line at once otherwise).
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads and decodes requests until end of input, a framing error, shutdown, or the executor
/// going away.
async fn read_requests(
    mut frames: FrameReader<Side>,
    decoded: mpsc::Sender<Incoming>,
    shared: &Shared,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = shared.shutdown.triggered() => return,
            _ = decoded.closed() => return,
            frame = frames.next_frame() => frame,
        };
        let incoming = match frame {
            Ok(Some(Frame { line, reservation })) => {
                let request = Request::decode(&line);
                // The line is decoded: its bytes are freed before the request waits its turn.
                drop(line);
                Incoming::Request(Box::new(request), reservation)
            }
            Ok(None) => return,
            Err(FrameError::TooLarge { limit }) => Incoming::TooLarge(limit),
            Err(FrameError::Stalled { after }) => Incoming::Stalled(after),
            Err(FrameError::Io(e)) => {
                tracing::debug!("connection ended: {e}");
                return;
            }
        };
        let last = matches!(incoming, Incoming::TooLarge(_) | Incoming::Stalled(_));
        if last {
            // Nothing more is read: the budget the line held is given back before the wait
            // for the executor to take the error.
            frames.abandon();
        }
        if decoded.send(incoming).await.is_err() || last {
            return;
        }
    }
}

/// Writes one reply line. A client that does not read its replies for `timeout` is cut off,
/// so it cannot hold the connection (and what the reply holds) forever.
async fn send(
    writer: &mut BufWriter<Side>,
    mut line: Vec<u8>,
    flush: bool,
    timeout: Duration,
) -> io::Result<()> {
    line.push(b'\n');
    let write = async {
        writer.write_all(&line).await?;
        if flush {
            writer.flush().await?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, write).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read its reply within --idle-timeout",
        )
    })?
}

/// The writing half of a connection, for what follows a reply line.
pub type ReplyWriter = BufWriter<Side>;

/// A shared stream used as a reader or a writer (`&Stream` does both without splitting).
pub struct Side(Arc<Stream>);

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
