//! Where bytes become messages: JSON-lines framing over one connection.
//!
//! [`FrameReader`] yields one line at a time (without `\n`, and without a trailing `\r`),
//! refusing to buffer more than `max_frame` bytes of one line. It keeps all state in itself, so
//! `next_frame` may be cancelled (by shutdown, say) without losing bytes.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A line grew past the limit; the connection cannot be resynchronised.
    #[error("line exceeds the frame limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection failed, or closed in the middle of a line.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Splits a byte stream into lines.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for `\n`.
    scanned: usize,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads lines of at most `max_frame` bytes from `inner`.
    pub fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(READ_CHUNK),
            scanned: 0,
            max_frame,
        }
    }

    /// The next non-blank line, or `None` at a clean end of stream.
    pub async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(line) = self.take_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.buf.len() > self.max_frame {
                return Err(FrameError::TooLarge {
                    limit: self.max_frame,
                });
            }
            self.buf.reserve(READ_CHUNK);
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.iter().all(u8::is_ascii_whitespace) {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a line",
                    )
                    .into())
                };
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Result<Option<Vec<u8>>, String>> {
        let mut reader = FrameReader::new(input, max);
        let mut out = Vec::new();
        loop {
            let next = reader.next_frame().await.map_err(|e| e.to_string());
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
}
