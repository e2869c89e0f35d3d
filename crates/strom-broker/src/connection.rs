//! One client connection: read frames within the memory limits, run requests
//! in order, write responses in order.
//!
//! Requests on a connection are handled one after another, as Kafka does: a
//! client's pipelined produce requests to one partition must append in the
//! order they were sent. Responses go to a writer task through a bounded
//! channel so that writing one response overlaps reading the next request.
//!
//! A produce request waiting for an fsync (`flush.messages`) is answered once
//! its records are durable; meanwhile the connection reads and appends the
//! client's next requests (up to [`MAX_QUEUED_RESPONSES`]), so the fsyncs of a
//! pipelining producer share (group commit). Appends still happen in request
//! order, and the writer sends answers in request order.
//!
//! A fetch response's record sets stay in their segment files until the
//! writer sends them with `sendfile` (DESIGN §5): the records never pass
//! through user space, and a queued fetch response pins no memory for them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::fetch_response::{Frame, FramePart};
use strom_protocol::frame::{frame_len, FRAME_PREFIX_LEN};
use strom_protocol::header::RequestHeader;
use strom_storage::{FileRange, LogSlice};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::dispatch::{dispatch, Outcome};
use crate::state::State;

/// Responses queued for the writer per connection. Bounds the memory a client
/// that stops reading can pin: after this many, the broker stops reading its requests.
pub const MAX_QUEUED_RESPONSES: usize = 16;

/// Serves one connection until the peer closes it, sends something that is not
/// Kafka, or idles past `connections.max.idle.ms`.
pub async fn serve(state: State, stream: TcpStream, peer: std::net::SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Response>(MAX_QUEUED_RESPONSES);
    let writer_task = tokio::spawn(async move {
        while let Some(response) = rx.recv().await {
            let response = match response {
                Response::Deferred(answer) => match answer.await {
                    Outcome::Respond(frame) => Response::Bytes(frame),
                    Outcome::RespondParts(frame) => Response::Parts(frame),
                    Outcome::NoResponse | Outcome::Deferred(_) => continue,
                    Outcome::Close(reason) => {
                        tracing::warn!(%peer, %reason, "closing connection");
                        break;
                    }
                },
                ready => ready,
            };
            let written = match response {
                Response::Bytes(frame) => writer.write_all(&frame).await,
                Response::Parts(frame) => write_parts(&mut writer, frame).await,
                Response::Deferred(_) => Ok(()),
            };
            if let Err(e) = written {
                tracing::debug!(%peer, error = %e, "closing connection: write failed");
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let idle = Duration::from_millis(state.config.connections_max_idle_ms);
    let max_frame = state.config.socket_request_max_bytes;
    loop {
        let mut prefix = [0u8; FRAME_PREFIX_LEN];
        match tokio::time::timeout(idle, reader.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                break;
            }
        }
        let len = match frame_len(prefix, max_frame) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        // Take the frame's bytes from the broker-wide budget before allocating them.
        let permits = len.clamp(1, state.request_memory_permits) as u32;
        let Ok(permit) = state
            .request_memory
            .clone()
            .acquire_many_owned(permits)
            .await
        else {
            break;
        };
        // Uninitialised capacity: the socket fills it, no zeroing first.
        let mut frame = BytesMut::with_capacity(len);
        let mut body = (&mut reader).take(len as u64);
        while frame.len() < len {
            match body.read_buf(&mut frame).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        if frame.len() < len {
            break;
        }
        let frame = frame.freeze();
        let (header, body) = match RequestHeader::split(&frame) {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                break;
            }
        };
        let span = tracing::debug_span!(
            "request",
            api_key = header.api_key,
            api_version = header.api_version,
            correlation_id = header.correlation_id,
            client_id = header.client_id.as_deref().unwrap_or("")
        );
        let outcome = dispatch(&state, &header, body, peer).instrument(span).await;
        drop(permit);
        match outcome {
            Outcome::Respond(response) => {
                if tx.send(Response::Bytes(response)).await.is_err() {
                    break;
                }
            }
            Outcome::RespondParts(frame) => {
                if tx.send(Response::Parts(frame)).await.is_err() {
                    break;
                }
            }
            Outcome::Deferred(answer) => {
                if tx.send(Response::Deferred(answer)).await.is_err() {
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::warn!(
                    %peer,
                    api_key = header.api_key,
                    api_version = header.api_version,
                    %reason,
                    "closing connection"
                );
                break;
            }
        }
    }
    drop(tx);
    let _ = writer_task.await;
}

/// A response on its way to the writer task.
enum Response {
    Bytes(Bytes),
    Parts(Frame<LogSlice>),
    /// Awaited by the writer in its turn, so responses keep request order.
    Deferred(Pin<Box<dyn Future<Output = Outcome> + Send>>),
}

/// Writes a response frame made of parts: encoded bytes as they are, record
/// sets in segment files with `sendfile`.
async fn write_parts(writer: &mut OwnedWriteHalf, frame: Frame<LogSlice>) -> io::Result<()> {
    for part in frame.parts {
        match part {
            FramePart::Bytes(b) | FramePart::Records(LogSlice::Memory(b)) => {
                writer.write_all(&b).await?
            }
            FramePart::Records(LogSlice::File(range)) => send_file(writer.as_ref(), &range).await?,
        }
    }
    Ok(())
}

/// Sends a range of a segment file to the socket with `sendfile(2)`: the
/// kernel moves page-cache pages to the socket without a copy through user
/// space. A file that turns out shorter than the range (truncated since the
/// read) fails the write, which closes the connection: the frame's length is
/// already on the wire and cannot be honoured.
async fn send_file(stream: &TcpStream, range: &FileRange) -> io::Result<()> {
    let mut offset = range.position;
    let mut remaining = range.len;
    while remaining > 0 {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*range.file, Some(&mut offset), remaining)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the fetch response",
                ))
            }
            Ok(n) => remaining -= n.min(remaining),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
