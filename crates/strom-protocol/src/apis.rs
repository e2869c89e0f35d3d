//! The APIs and versions Strom advertises in ApiVersions, and version facts
//! (flexible or not) for every API Kafka defines.
//!
//! The advertised table is the contract with clients: an API appears here only
//! when its handler implements Kafka's semantics at every listed version.

use kafka_wire::API_DESCRIPTORS;

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const LIST_OFFSETS: i16 = 2;
pub const METADATA: i16 = 3;
pub const OFFSET_COMMIT: i16 = 8;
pub const OFFSET_FETCH: i16 = 9;
pub const FIND_COORDINATOR: i16 = 10;
pub const JOIN_GROUP: i16 = 11;
pub const HEARTBEAT: i16 = 12;
pub const LEAVE_GROUP: i16 = 13;
pub const SYNC_GROUP: i16 = 14;
pub const DESCRIBE_GROUPS: i16 = 15;
pub const LIST_GROUPS: i16 = 16;
pub const API_VERSIONS: i16 = 18;
pub const CREATE_TOPICS: i16 = 19;
pub const DELETE_TOPICS: i16 = 20;
pub const DELETE_RECORDS: i16 = 21;
pub const INIT_PRODUCER_ID: i16 = 22;
pub const OFFSET_FOR_LEADER_EPOCH: i16 = 23;
pub const ADD_PARTITIONS_TO_TXN: i16 = 24;
pub const ADD_OFFSETS_TO_TXN: i16 = 25;
pub const END_TXN: i16 = 26;
pub const WRITE_TXN_MARKERS: i16 = 27;
pub const TXN_OFFSET_COMMIT: i16 = 28;
pub const DESCRIBE_CONFIGS: i16 = 32;
pub const DELETE_GROUPS: i16 = 42;
pub const ALTER_CONFIGS: i16 = 33;
pub const CREATE_PARTITIONS: i16 = 37;
pub const INCREMENTAL_ALTER_CONFIGS: i16 = 44;
pub const OFFSET_DELETE: i16 = 47;
pub const DESCRIBE_CLUSTER: i16 = 60;
pub const CONSUMER_GROUP_HEARTBEAT: i16 = 68;
pub const DESCRIBE_PRODUCERS: i16 = 61;
pub const DESCRIBE_TRANSACTIONS: i16 = 65;
pub const LIST_TRANSACTIONS: i16 = 66;
pub const CONSUMER_GROUP_DESCRIBE: i16 = 69;

/// One row of the ApiVersions answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

const fn r(api_key: i16, min_version: i16, max_version: i16) -> ApiRange {
    ApiRange {
        api_key,
        min_version,
        max_version,
    }
}

/// What the broker advertises. Ranges follow Kafka 4.x minimums (Produce v3+,
/// Fetch v4+) and stop below versions whose semantics Strom does not yet have
/// (e.g. Produce v13 addresses topics by id).
pub const ADVERTISED: &[ApiRange] = &[
    r(PRODUCE, 3, 12),
    r(FETCH, 4, 16),
    r(LIST_OFFSETS, 1, 8),
    r(METADATA, 0, 12),
    r(OFFSET_COMMIT, 2, 9),
    r(OFFSET_FETCH, 1, 9),
    r(FIND_COORDINATOR, 0, 5),
    r(JOIN_GROUP, 0, 9),
    r(HEARTBEAT, 0, 4),
    r(LEAVE_GROUP, 0, 5),
    r(SYNC_GROUP, 0, 5),
    r(DESCRIBE_GROUPS, 0, 6),
    r(LIST_GROUPS, 0, 5),
    r(API_VERSIONS, 0, 4),
    r(CREATE_TOPICS, 2, 7),
    r(DELETE_TOPICS, 1, 6),
    r(DELETE_RECORDS, 0, 2),
    r(INIT_PRODUCER_ID, 0, 4),
    r(OFFSET_FOR_LEADER_EPOCH, 2, 4),
    r(ADD_PARTITIONS_TO_TXN, 0, 5),
    r(ADD_OFFSETS_TO_TXN, 0, 4),
    r(END_TXN, 0, 5),
    r(TXN_OFFSET_COMMIT, 0, 5),
    r(DESCRIBE_CONFIGS, 1, 4),
    r(ALTER_CONFIGS, 0, 2),
    r(CREATE_PARTITIONS, 0, 3),
    r(DELETE_GROUPS, 0, 2),
    r(INCREMENTAL_ALTER_CONFIGS, 0, 1),
    r(OFFSET_DELETE, 0, 0),
    r(DESCRIBE_CLUSTER, 0, 1),
    r(DESCRIBE_PRODUCERS, 0, 0),
    r(DESCRIBE_TRANSACTIONS, 0, 0),
    r(LIST_TRANSACTIONS, 0, 1),
    r(CONSUMER_GROUP_HEARTBEAT, 0, 1),
    r(CONSUMER_GROUP_DESCRIBE, 0, 1),
];

/// The advertised range for `api_key`, if the broker serves it.
pub fn advertised(api_key: i16) -> Option<ApiRange> {
    ADVERTISED.iter().copied().find(|a| a.api_key == api_key)
}

/// Whether `api_key` at `api_version` uses the flexible (tagged-field) encoding.
/// Versions above the newest known one count as flexible when the API has a
/// flexible range at all (flexible ranges are open-ended in Kafka).
pub fn is_flexible(api_key: i16, api_version: i16) -> bool {
    API_DESCRIPTORS
        .iter()
        .find(|d| d.api_key.value() == api_key)
        .and_then(|d| d.flexible_versions)
        .is_some_and(|range| api_version >= range.min().value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_decodable_by_kafka_wire() {
        for a in ADVERTISED {
            let d = API_DESCRIPTORS
                .iter()
                .find(|d| d.api_key.value() == a.api_key)
                .expect("kafka-wire knows every advertised API");
            assert!(d.supported_versions.min().value() <= a.min_version, "{a:?}");
            assert!(d.supported_versions.max().value() >= a.max_version, "{a:?}");
        }
    }

    #[test]
    fn flexible_versions_match_kafka() {
        assert!(!is_flexible(METADATA, 8));
        assert!(is_flexible(METADATA, 9));
        assert!(is_flexible(API_VERSIONS, 3));
        assert!(is_flexible(API_VERSIONS, 99));
        assert!(!is_flexible(PRODUCE, 8));
        assert!(is_flexible(FETCH, 12));
    }
}
