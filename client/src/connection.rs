//! One connection to the daemon: write a request line, read the reply line.

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::tokio::Stream as _;
use interprocess::local_socket::{GenericFilePath, ToFsName};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};

/// A connected socket: replies are read through a buffer, requests written directly.
pub(crate) struct Connection {
    reader: BufReader<ReadSide>,
    stream: Arc<Stream>,
}

/// The reading side of a shared stream (`&Stream` reads and writes without splitting).
struct ReadSide(Arc<Stream>);

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl Connection {
    pub(crate) async fn open(socket: &Path) -> io::Result<Connection> {
        let name = socket.to_fs_name::<GenericFilePath>()?;
        let stream = Stream::connect(name).await?;
        let stream = Arc::new(stream);
        Ok(Connection {
            reader: BufReader::with_capacity(64 * 1024, ReadSide(Arc::clone(&stream))),
            stream,
        })
    }

    /// Sends one request line (`line` has no `\n`) and returns the reply line without its `\n`.
    pub(crate) async fn round_trip(&mut self, line: Vec<u8>) -> io::Result<Vec<u8>> {
        let written = self.send(line).await;
        match (written, self.receive().await) {
            (_, Ok(reply)) => Ok(reply),
            // The daemon may refuse a connection (`permission_denied`) and close it before our
            // request arrives: its reply is still there to read, and says more than EPIPE.
            (Err(write_error), Err(_)) => Err(write_error),
            (Ok(()), Err(read_error)) => Err(read_error),
        }
    }

    /// Writes one request line (`line` has no `\n`) without waiting for the reply; the daemon
    /// answers pipelined requests in order.
    pub(crate) async fn send(&mut self, mut line: Vec<u8>) -> io::Result<()> {
        line.push(b'\n');
        let mut writer = &*self.stream;
        writer.write_all(&line).await?;
        writer.flush().await
    }

    /// Reads the next reply line, without its `\n`.
    pub(crate) async fn receive(&mut self) -> io::Result<Vec<u8>> {
        let mut reply = Vec::new();
        self.read_line(&mut reply).await?;
        Ok(reply)
    }

    /// Reads one line; end of stream before a full line is an error.
    async fn read_line(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let n = self.reader.read_until(b'\n', out).await?;
        if n == 0 || out.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ctxd closed the connection",
            ));
        }
        out.pop();
        Ok(())
    }

    /// Copies exactly `bytes` bytes that follow a reply line to `out` (a `snapshot_stream`).
    pub(crate) async fn copy_exact<W: AsyncWrite + Unpin>(
        &mut self,
        bytes: u64,
        out: &mut W,
    ) -> io::Result<()> {
        let mut stream = (&mut self.reader).take(bytes);
        let copied = tokio::io::copy_buf(&mut stream, out).await?;
        out.flush().await?;
        if copied != bytes {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the snapshot stream ended after {copied} of its {bytes} bytes (the daemon \
                     failed or stopped half way); what was written is not a snapshot"
                ),
            ));
        }
        Ok(())
    }

    /// Waits until the daemon closes the connection (after `shutdown`, it does so only once it
    /// has closed every file and removed its socket).
    pub(crate) async fn wait_closed(&mut self) -> io::Result<()> {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            if self.reader.read_until(b'\n', &mut rest).await? == 0 {
                return Ok(());
            }
        }
    }
}
