//! ApiVersions (key 18): which APIs and versions this broker serves.

use bytes::Bytes;
use strom_protocol::apis::ADVERTISED;
use strom_protocol::header::RequestHeader;
use strom_protocol::messages::api_versions_response::{
    ApiVersion as ApiRow, FinalizedFeatureKey, SupportedFeatureKey,
};
use strom_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, StrBytes};
use strom_protocol::ErrorCode;

use super::HandlerResult;
use crate::dispatch::{encode_response, Outcome, Request};
use crate::state::State;

fn table() -> Vec<ApiRow> {
    ADVERTISED
        .iter()
        .map(|a| {
            let mut row = ApiRow::default();
            row.api_key = a.api_key;
            row.min_version = a.min_version;
            row.max_version = a.max_version;
            row
        })
        .collect()
}

/// Answers a supported ApiVersions request.
pub fn handle(state: &State, request: &Request<'_>, body: Bytes) -> HandlerResult {
    let req = request.decode::<ApiVersionsRequest>(state, body)?;
    let mut response = ApiVersionsResponse::default();
    // v3+ names the client software; Kafka refuses malformed names (KIP-511).
    if request.version >= 3
        && !(valid_software_field(req.client_software_name.as_str())
            && valid_software_field(req.client_software_version.as_str()))
    {
        response.error_code = ErrorCode::InvalidRequest.code();
    }
    response.api_keys = table();
    if request.version >= 3 {
        advertise_features(&mut response);
    }
    Ok(request.respond(&response))
}

/// The feature a client's transaction protocol depends on: Strom supports and
/// has finalized `transaction.version` 2 (KIP-890 part 2), so clients that
/// know it bump epochs on every EndTxn and let Produce v12 / TxnOffsetCommit
/// v5 add partitions to the transaction; older clients keep the classic
/// protocol, which is served too.
fn advertise_features(response: &mut ApiVersionsResponse) {
    let mut supported = SupportedFeatureKey::default();
    supported.name = StrBytes::from(TRANSACTION_VERSION_FEATURE);
    supported.min_version = 0;
    supported.max_version = TRANSACTION_VERSION_LEVEL;
    response.supported_features = vec![supported];
    let mut finalized = FinalizedFeatureKey::default();
    finalized.name = StrBytes::from(TRANSACTION_VERSION_FEATURE);
    finalized.min_version_level = TRANSACTION_VERSION_LEVEL;
    finalized.max_version_level = TRANSACTION_VERSION_LEVEL;
    response.finalized_features = vec![finalized];
    // Features never change on a running Strom broker.
    response.finalized_features_epoch = 1;
}

/// Kafka's feature name for the transaction protocol version.
const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// The highest (and finalized) level: epoch bump per transaction.
const TRANSACTION_VERSION_LEVEL: i16 = 2;

/// Kafka's rule for client software names and versions: letters, digits, `.`
/// and `-`, starting and ending with a letter or digit.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// KIP-511: a client that sends a newer ApiVersions than we know gets a v0
/// response with UNSUPPORTED_VERSION and our table, so it can retry with one we do.
pub fn unsupported_version(header: &RequestHeader) -> Outcome {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ErrorCode::UnsupportedVersion.code();
    response.api_keys = table();
    encode_response(header, 0, &response)
}
