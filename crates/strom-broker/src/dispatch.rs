//! Routes a request to its handler: version check, bounded decode, encode.

use std::future::Future;
use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::apis;
use strom_protocol::fetch_response::Frame;
use strom_protocol::header::{encode_response_header, response_header_version, RequestHeader};
use strom_protocol::messages::{ApiVersion, DecodeLimits, KafkaDecode, KafkaEncode};
use strom_storage::LogSlice;

use crate::handlers;
use crate::state::State;

/// What the connection does after a request.
pub enum Outcome {
    /// Send this whole frame (length prefix included).
    Respond(Bytes),
    /// Send this frame whose record sets are still in segment files (Fetch).
    RespondParts(Frame<LogSlice>),
    /// The answer is not ready yet (a produce waiting for its fsync and high
    /// watermark): the connection reads on and sends this answer, when it
    /// resolves, in its place among the responses.
    Deferred(Pin<Box<dyn Future<Output = Outcome> + Send>>),
    /// `acks=0` produce: Kafka sends nothing back.
    NoResponse,
    /// Close the connection (undecodable or unsupported request), as Kafka does.
    Close(String),
}

/// The request being served: header facts handlers need.
pub struct Request<'a> {
    pub header: &'a RequestHeader,
    pub version: i16,
    /// The client's address as Kafka reports it (`/127.0.0.1`).
    pub client_host: String,
}

impl Request<'_> {
    /// Decodes the body with limits derived from `socket.request.max.bytes`.
    pub fn decode<T: KafkaDecode>(&self, state: &State, body: Bytes) -> Result<T, String> {
        let mut limits = DecodeLimits::default();
        limits.max_frame_bytes = state.config.socket_request_max_bytes;
        limits.max_bytes_bytes = state.config.socket_request_max_bytes;
        T::decode_from_bytes(body, ApiVersion::new(self.version), limits).map_err(|e| e.to_string())
    }

    /// Encodes a response frame: size, header, body.
    pub fn respond<T: KafkaEncode>(&self, response: &T) -> Outcome {
        encode_response(self.header, self.version, response)
    }
}

/// Encodes `response` as a whole frame for `header`.
pub fn encode_response<T: KafkaEncode>(
    header: &RequestHeader,
    version: i16,
    response: &T,
) -> Outcome {
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0);
    encode_response_header(
        &mut out,
        header.correlation_id,
        response_header_version(header.api_key, version),
    );
    if let Err(e) = response.encode_into(&mut out, ApiVersion::new(version)) {
        // Our own response did not fit its schema: a bug, not the client's fault.
        return Outcome::Close(format!("failed to encode response: {e}"));
    }
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Outcome::Respond(out.freeze())
}

/// Handles one request.
pub async fn dispatch(
    state: &State,
    header: &RequestHeader,
    body: Bytes,
    peer: std::net::SocketAddr,
) -> Outcome {
    let supported = apis::advertised(header.api_key)
        .is_some_and(|r| (r.min_version..=r.max_version).contains(&header.api_version));
    if !supported {
        if header.api_key == apis::API_VERSIONS {
            // KIP-511: a too-new ApiVersions gets a v0 answer saying so, with our table.
            return handlers::api_versions::unsupported_version(header);
        }
        return Outcome::Close(format!(
            "unsupported API key {} version {}",
            header.api_key, header.api_version
        ));
    }
    let request = Request {
        header,
        version: header.api_version,
        client_host: format!("/{}", peer.ip()),
    };
    let result = match header.api_key {
        apis::API_VERSIONS => handlers::api_versions::handle(state, &request, body),
        apis::METADATA => handlers::metadata::handle(state, &request, body),
        apis::PRODUCE => handlers::produce::handle(state, &request, body).await,
        apis::FETCH => handlers::fetch::handle(state, &request, body).await,
        apis::LIST_OFFSETS => handlers::list_offsets::handle(state, &request, body),
        apis::CREATE_TOPICS => handlers::create_topics::handle(state, &request, body),
        apis::DELETE_TOPICS => handlers::delete_topics::handle(state, &request, body),
        apis::CREATE_PARTITIONS => handlers::create_partitions::handle(state, &request, body),
        apis::DELETE_RECORDS => handlers::delete_records::handle(state, &request, body),
        apis::INIT_PRODUCER_ID => handlers::init_producer_id::handle(state, &request, body).await,
        apis::ADD_PARTITIONS_TO_TXN => {
            handlers::add_partitions_to_txn::handle(state, &request, body).await
        }
        apis::ADD_OFFSETS_TO_TXN => {
            handlers::add_offsets_to_txn::handle(state, &request, body).await
        }
        apis::END_TXN => handlers::end_txn::handle(state, &request, body).await,
        apis::TXN_OFFSET_COMMIT => handlers::txn_offset_commit::handle(state, &request, body).await,
        apis::DESCRIBE_PRODUCERS => handlers::describe_producers::handle(state, &request, body),
        apis::DESCRIBE_TRANSACTIONS => {
            handlers::describe_transactions::handle(state, &request, body)
        }
        apis::LIST_TRANSACTIONS => handlers::list_transactions::handle(state, &request, body),
        apis::OFFSET_FOR_LEADER_EPOCH => {
            handlers::offset_for_leader_epoch::handle(state, &request, body)
        }
        apis::DESCRIBE_CONFIGS => handlers::describe_configs::handle(state, &request, body),
        apis::ALTER_CONFIGS => handlers::alter_configs::handle(state, &request, body),
        apis::INCREMENTAL_ALTER_CONFIGS => {
            handlers::alter_configs::handle_incremental(state, &request, body)
        }
        apis::DESCRIBE_CLUSTER => handlers::describe_cluster::handle(state, &request, body),
        apis::FIND_COORDINATOR => handlers::find_coordinator::handle(state, &request, body),
        apis::JOIN_GROUP => handlers::join_group::handle(state, &request, body).await,
        apis::SYNC_GROUP => handlers::sync_group::handle(state, &request, body).await,
        apis::HEARTBEAT => handlers::heartbeat::handle(state, &request, body).await,
        apis::LEAVE_GROUP => handlers::leave_group::handle(state, &request, body).await,
        apis::OFFSET_COMMIT => handlers::offset_commit::handle(state, &request, body).await,
        apis::OFFSET_FETCH => handlers::offset_fetch::handle(state, &request, body).await,
        apis::DESCRIBE_GROUPS => handlers::describe_groups::handle(state, &request, body).await,
        apis::LIST_GROUPS => handlers::list_groups::handle(state, &request, body).await,
        apis::DELETE_GROUPS => handlers::delete_groups::handle(state, &request, body).await,
        apis::OFFSET_DELETE => handlers::offset_delete::handle(state, &request, body).await,
        apis::CONSUMER_GROUP_HEARTBEAT => {
            handlers::consumer_group_heartbeat::handle(state, &request, body).await
        }
        apis::CONSUMER_GROUP_DESCRIBE => {
            handlers::consumer_group_describe::handle(state, &request, body).await
        }
        other => Err(format!("no handler for advertised API {other}")),
    };
    result.unwrap_or_else(|reason| Outcome::Close(format!("invalid request: {reason}")))
}
