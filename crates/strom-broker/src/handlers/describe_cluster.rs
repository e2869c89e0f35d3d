//! DescribeCluster (key 60): brokers, cluster id, controller.

use bytes::Bytes;
use strom_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use strom_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::Request;
use crate::state::State;

/// Endpoint type "brokers" (KIP-919); "controllers" (2) are not served by a broker listener.
const ENDPOINT_BROKERS: i8 = 1;

pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req: DescribeClusterRequest = request.decode(state, body)?;
    let image = state.controller.image();
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = ENDPOINT_BROKERS;
    if request.version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        response.error_code = ErrorCode::UnsupportedEndpointType.code();
        response.error_message = Some(StrBytes::from("only broker endpoints are served here"));
        return Ok(request.respond(&response));
    }
    response.cluster_id = StrBytes::from(image.cluster_id.as_str());
    response.controller_id = image.controller_id;
    response.brokers = image
        .brokers
        .values()
        .map(|b| {
            let mut out = DescribeClusterBroker::default();
            out.broker_id = b.node_id;
            out.host = StrBytes::from(b.host.as_str());
            out.port = b.port;
            out.rack = b.rack.as_deref().map(StrBytes::from);
            out
        })
        .collect();
    Ok(request.respond(&response))
}
