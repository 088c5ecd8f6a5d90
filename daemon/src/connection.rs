//! Where bytes become messages: JSON-lines framing over one connection.
//!
//! [`FrameReader`] yields one line at a time (without `\n`, and without a trailing `\r`),
//! refusing to buffer more than `max_frame` bytes of one line. Three bounds hold per line:
//!
//! - its length, `--max-frame` ([`FrameError::TooLarge`]);
//! - its memory: past [`FREE_BYTES`] a line reserves its bytes from the daemon's
//!   [`DecodeBudget`] as it arrives, and is not read further while the budget is spent; the
//!   [`Reservation`] travels with the line until its request has been executed;
//! - its time: once a line has begun (any byte, whitespace included) it must end within
//!   `--idle-timeout` ([`FrameError::Stalled`]). Between lines a connection may stay quiet as
//!   long as it likes.
//!
//! All state is kept in the reader, so `next_frame` may be cancelled (by shutdown, say) without
//! losing bytes.

use crate::budget::{DecodeBudget, FREE_BYTES, Reservation};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What a new connection's buffer starts with: most requests are far smaller than a chunk, and
/// thousands of idle connections should not hold a chunk each.
const INITIAL_BUFFER: usize = 4 * 1024;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A line grew past the limit; the connection cannot be resynchronised.
    #[error("line exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A line began but did not end in time; the connection cannot be resynchronised.
    #[error("the request line did not end within {after:?} of its first byte")]
    Stalled {
        /// The idle timeout.
        after: Duration,
    },
    /// The connection failed, or closed in the middle of a line.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One request line, with the budget it holds.
pub struct Frame {
    /// The line, without its end.
    pub line: Vec<u8>,
    /// What the line reserved of the budget (nothing for a short line); give it back once the
    /// request has been executed.
    pub reservation: Reservation,
}

/// Splits a byte stream into lines.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for `\n`.
    scanned: usize,
    max_frame: usize,
    budget: Arc<DecodeBudget>,
    /// The budget held by the line being read.
    reservation: Reservation,
    idle_timeout: Duration,
    /// When the line being read must have ended (set by its first byte).
    deadline: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads lines of at most `max_frame` bytes from `inner`, reserving long ones from
    /// `budget`; a line must end within `idle_timeout` of its first byte.
    pub fn new(
        inner: R,
        max_frame: usize,
        budget: Arc<DecodeBudget>,
        idle_timeout: Duration,
    ) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(INITIAL_BUFFER),
            scanned: 0,
            max_frame,
            budget,
            reservation: Reservation::default(),
            idle_timeout,
            deadline: None,
        }
    }

    /// The next non-blank line, or `None` at a clean end of stream.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            if let Some(line) = self.take_line() {
                let mut reservation = std::mem::take(&mut self.reservation);
                reservation.arrived();
                // Whatever follows in the buffer begins the next line: its clock starts now.
                self.deadline = (!self.buf.is_empty()).then(|| Instant::now() + self.idle_timeout);
                if blank(&line) {
                    continue;
                }
                return Ok(Some(Frame { line, reservation }));
            }
            if self.buf.len() > self.max_frame {
                return Err(FrameError::TooLarge {
                    limit: self.max_frame,
                });
            }
            let wanted = self.buf.len() + READ_CHUNK;
            if wanted > FREE_BYTES {
                // Doubling: a long line takes a few turns at the budget, not one per chunk.
                let reserve = (2 * self.buf.len()).clamp(wanted, self.max_frame + READ_CHUNK);
                let waiting = Instant::now();
                self.reservation.grow_to(&self.budget, reserve).await;
                // Time spent waiting for the budget is the daemon's, not the client's.
                if let Some(deadline) = &mut self.deadline {
                    *deadline += waiting.elapsed();
                }
            }
            self.buf.reserve(READ_CHUNK);
            let before = self.buf.len();
            let read = self.inner.read_buf(&mut self.buf);
            let n = match self.deadline {
                // In the middle of a line: it must end in time.
                Some(deadline) => {
                    tokio::time::timeout_at(deadline, read)
                        .await
                        .map_err(|_| FrameError::Stalled {
                            after: self.idle_timeout,
                        })??
                }
                None => read.await?,
            };
            if n == 0 {
                return if blank(&self.buf) {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a line",
                    )
                    .into())
                };
            }
            // Any byte starts the clock: a line of nothing but spaces must end in time too.
            if self.deadline.is_none() && self.buf.len() > before {
                self.deadline = Some(Instant::now() + self.idle_timeout);
            }
        }
    }

    /// Gives back what the line being read holds of the budget (the reader stops here: the line
    /// was too long or too slow).
    pub fn abandon(&mut self) {
        self.reservation = Reservation::default();
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
            self.scanned = self.buf.len();
            return None;
        };
        let end = self.scanned + offset;
        if end > self.max_frame {
            // Leave it buffered: the caller reports TooLarge.
            self.scanned = end;
            return None;
        }
        let rest = self.buf.split_off(end + 1);
        let mut line = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }
}

/// Whether `bytes` hold nothing but whitespace (a blank line, or nothing of a line yet).
fn blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(input: &[u8], max: usize) -> FrameReader<&[u8]> {
        FrameReader::new(
            input,
            max,
            Arc::new(DecodeBudget::for_frame(max)),
            Duration::from_secs(60),
        )
    }

    async fn frames(input: &[u8], max: usize) -> Vec<Result<Option<Vec<u8>>, String>> {
        let mut reader = reader(input, max);
        let mut out = Vec::new();
        loop {
            let next = reader
                .next_frame()
                .await
                .map(|f| f.map(|f| f.line))
                .map_err(|e| e.to_string());
            let done = !matches!(next, Ok(Some(_)));
            out.push(next);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_skips_blank_ones() {
        let out = frames(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n", 100).await;
        assert_eq!(
            out,
            vec![
                Ok(Some(b"{\"a\":1}".to_vec())),
                Ok(Some(b"{\"b\":2}".to_vec())),
                Ok(None)
            ]
        );
    }

    #[tokio::test]
    async fn a_line_at_the_limit_passes_and_one_byte_more_fails() {
        let ok = [vec![b'x'; 10], b"\n".to_vec()].concat();
        assert_eq!(frames(&ok, 10).await[0], Ok(Some(vec![b'x'; 10])));
        let too_long = [vec![b'x'; 11], b"\n".to_vec()].concat();
        assert!(frames(&too_long, 10).await[0].is_err());
        let endless = vec![b'x'; 1000];
        assert!(frames(&endless, 10).await[0].is_err());
    }

    #[tokio::test]
    async fn eof_inside_a_line_is_an_error() {
        assert!(frames(b"{\"a\":1}", 100).await[0].is_err());
    }

    #[tokio::test]
    async fn a_long_line_holds_its_reservation_and_a_short_one_none() {
        let long = [vec![b'x'; 3 * FREE_BYTES], b"\n{}\n".to_vec()].concat();
        let budget = Arc::new(DecodeBudget::for_frame(4 * FREE_BYTES));
        let mut reader = FrameReader::new(
            &long[..],
            4 * FREE_BYTES,
            Arc::clone(&budget),
            Duration::from_secs(60),
        );
        let first = reader.next_frame().await.expect("read").expect("a line");
        assert_eq!(first.line.len(), 3 * FREE_BYTES);
        assert!(first.reservation.bytes() >= 3 * FREE_BYTES);
        assert_eq!(budget.reserved(), first.reservation.bytes());
        let second = reader.next_frame().await.expect("read").expect("a line");
        assert_eq!(second.reservation.bytes(), 0);
        drop(first);
        assert_eq!(budget.reserved(), 0, "given back when the request is done");
    }

    #[tokio::test]
    async fn a_line_that_stalls_times_out_and_a_quiet_connection_does_not() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(
            server,
            1000,
            Arc::new(DecodeBudget::for_frame(1000)),
            Duration::from_millis(100),
        );
        use tokio::io::AsyncWriteExt;
        // Quiet between lines: no timeout (the read is still pending after five timeouts).
        let quiet = tokio::time::timeout(Duration::from_millis(500), reader.next_frame()).await;
        assert!(quiet.is_err(), "still waiting for a line");
        client.write_all(b"{\"op\":").await.expect("write");
        let stalled = reader.next_frame().await;
        assert!(
            matches!(stalled, Err(FrameError::Stalled { .. })),
            "half a line times out"
        );
    }
}
