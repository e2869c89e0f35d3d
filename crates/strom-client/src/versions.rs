//! The highest version of each API this client's code fills in correctly.
//!
//! kafka-wire may know newer versions than the client's request builders handle:
//! Produce v13 and Fetch v13+ address topics by id rather than name, Metadata v13
//! adds a top-level error. Capping here keeps negotiation to versions the
//! builders were written for.

use strom_protocol::apis;

const CAPS: &[(i16, i16)] = &[
    (apis::PRODUCE, 12),
    (apis::FETCH, 12),
    (apis::METADATA, 12),
    (apis::API_VERSIONS, 3),
    (apis::INIT_PRODUCER_ID, 4),
    (apis::CREATE_TOPICS, 7),
    (apis::DELETE_TOPICS, 6),
    (apis::DELETE_RECORDS, 2),
    (apis::DESCRIBE_CONFIGS, 4),
    (apis::INCREMENTAL_ALTER_CONFIGS, 1),
    (apis::DESCRIBE_CLUSTER, 1),
    (apis::LIST_OFFSETS, 8),
    // v10 addresses topics by id.
    (apis::OFFSET_FETCH, 9),
    (apis::OFFSET_COMMIT, 9),
    // v4+ is the brokers' batched, verify-only form (KIP-890); clients send v3.
    (apis::ADD_PARTITIONS_TO_TXN, 3),
    (apis::ADD_OFFSETS_TO_TXN, 4),
    // v5 is transaction version 2: the answer carries the bumped epoch.
    (apis::END_TXN, 5),
    // v6 addresses topics by id.
    (apis::TXN_OFFSET_COMMIT, 5),
];

/// The client's highest version for `api_key`, if it caps it.
pub fn client_max_version(api_key: i16) -> Option<i16> {
    CAPS.iter().find(|(k, _)| *k == api_key).map(|(_, v)| *v)
}
