//! One client connection: read frames within the memory limits, run requests
//! in order, write responses in order.
//!
//! Requests on a connection are handled one after another, as Kafka does: a
//! client's pipelined produce requests to one partition must append in the
//! order they were sent. Responses go to a writer task through a bounded
//! channel so that writing one response overlaps reading the next request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::frame::{frame_len, FRAME_PREFIX_LEN};
use strom_protocol::header::RequestHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let (tx, mut rx) = mpsc::channel::<Bytes>(MAX_QUEUED_RESPONSES);
    let writer_task = tokio::spawn(async move {
        while let Some(response) = rx.recv().await {
            if writer.write_all(&response).await.is_err() {
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
        let mut frame = BytesMut::zeroed(len);
        if reader.read_exact(&mut frame).await.is_err() {
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
                if tx.send(response).await.is_err() {
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
