//! End-to-end tests of `strom group` and `strom topic alter` against a spawned
//! `strom server`. Records are produced and offsets committed with
//! `strom-client`; live classic members are driven with raw JoinGroup /
//! SyncGroup requests and stay members for the rest of their test.

mod common;

use std::collections::BTreeMap;
use std::future::Future;

use bytes::{Bytes, BytesMut};
use common::{json, ok, start_server, stderr, strom};
use serde_json::json as j;
use strom_client::{
    Admin, Connection, ConnectionConfig, OffsetAndMetadata, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_protocol::messages::consumer_protocol_assignment::TopicPartition as Assigned;
use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    encode_consumer_protocol_assignment, encode_consumer_protocol_subscription, ApiVersion,
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, JoinGroupRequest,
    OffsetCommitRequest, StrBytes, SyncGroupRequest,
};

/// A tokio runtime for the client side of a test; live members' connections
/// run on it until it is dropped at the end of the test.
struct Client {
    runtime: tokio::runtime::Runtime,
    addr: String,
}

impl Client {
    fn new(addr: &str) -> Client {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Client {
            runtime,
            addr: addr.to_owned(),
        }
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime
            .block_on(async { tokio::time::timeout(common::TIMEOUT, f).await })
            .expect("client call timed out")
    }

    fn admin(&self) -> Admin {
        self.block_on(Admin::connect(&self.addr)).unwrap()
    }

    /// Produces one record per timestamp (None: now) to `topic`/`partition`.
    fn produce(&self, topic: &str, partition: i32, timestamps: &[Option<i64>]) {
        self.block_on(async {
            let config = ProducerConfig::from_properties([("bootstrap.servers", &self.addr)]);
            let producer = Producer::new(config.unwrap()).await.unwrap();
            for ts in timestamps {
                let mut record = ProducerRecord::new(topic)
                    .partition(partition)
                    .value(Bytes::from_static(b"v"));
                if let Some(ts) = ts {
                    record = record.timestamp(*ts);
                }
                producer.send(record).await.unwrap();
            }
            producer.close().await;
        })
    }

    /// Commits offsets for a group without members, as an administrator.
    fn commit(&self, group: &str, offsets: &[(&str, i32, i64)]) {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
            .iter()
            .map(|(t, p, o)| (TopicPartition::new(*t, *p), OffsetAndMetadata::new(*o)))
            .collect();
        let admin = self.admin();
        let results = self
            .block_on(admin.alter_group_offsets(group, &offsets))
            .unwrap();
        assert!(results.values().all(Result::is_ok), "{results:?}");
    }

    fn committed(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        let admin = self.admin();
        self.block_on(admin.list_group_offsets(group, None))
            .unwrap()
            .into_iter()
            .map(|(tp, o)| ((tp.topic, tp.partition), o.offset))
            .collect()
    }

    /// Joins `group` as a classic consumer owning `partitions` of `topic` and
    /// commits `commit` offsets as that member. Waits out the broker's
    /// `group.initial.rebalance.delay.ms` (3 s).
    fn join(&self, group: &str, topic: &str, partitions: &[i32], commit: &[(i32, i64)]) -> Member {
        self.block_on(async {
            let conn = Connection::connect(&self.addr, ConnectionConfig::default())
                .await
                .unwrap();
            let mut subscription = ConsumerProtocolSubscription::default();
            subscription.topics = vec![StrBytes::from(topic.to_owned())];
            let mut metadata = BytesMut::new();
            encode_consumer_protocol_subscription(&mut metadata, &subscription, ApiVersion::new(1))
                .unwrap();
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = StrBytes::from("range");
            protocol.metadata = metadata.freeze();
            let mut join = JoinGroupRequest::default();
            join.group_id = StrBytes::from(group.to_owned());
            join.session_timeout_ms = 60_000;
            join.rebalance_timeout_ms = 60_000;
            join.protocol_type = StrBytes::from("consumer");
            join.protocols = vec![protocol];
            let first = conn.send(&join).await.unwrap();
            join.member_id = first.member_id.clone();
            let joined = conn.send(&join).await.unwrap();
            assert_eq!(joined.error_code, 0);

            let mut assigned = Assigned::default();
            assigned.topic = StrBytes::from(topic.to_owned());
            assigned.partitions = partitions.to_vec();
            let mut assignment = ConsumerProtocolAssignment::default();
            assignment.assigned_partitions = vec![assigned];
            let mut bytes = BytesMut::new();
            encode_consumer_protocol_assignment(&mut bytes, &assignment, ApiVersion::new(0))
                .unwrap();
            let mut mine = SyncGroupRequestAssignment::default();
            mine.member_id = joined.member_id.clone();
            mine.assignment = bytes.freeze();
            let mut sync = SyncGroupRequest::default();
            sync.group_id = StrBytes::from(group.to_owned());
            sync.generation_id = joined.generation_id;
            sync.member_id = joined.member_id.clone();
            sync.protocol_type = Some(StrBytes::from("consumer"));
            sync.protocol_name = Some(StrBytes::from("range"));
            sync.assignments = vec![mine];
            assert_eq!(conn.send(&sync).await.unwrap().error_code, 0);

            if !commit.is_empty() {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = StrBytes::from(topic.to_owned());
                for (partition, offset) in commit {
                    let mut p = OffsetCommitRequestPartition::default();
                    p.partition_index = *partition;
                    p.committed_offset = *offset;
                    t.partitions.push(p);
                }
                let mut req = OffsetCommitRequest::default();
                req.group_id = StrBytes::from(group.to_owned());
                req.generation_id_or_member_epoch = joined.generation_id;
                req.member_id = joined.member_id.clone();
                req.topics = vec![t];
                let resp = conn.send(&req).await.unwrap();
                assert!(resp.topics[0].partitions.iter().all(|p| p.error_code == 0));
            }
            Member {
                _conn: conn,
                member_id: joined.member_id.to_string(),
            }
        })
    }
}

/// A live classic member; it stays in the group (session timeout 60 s).
struct Member {
    _conn: Connection,
    member_id: String,
}

fn create_topic(b: &str, topic: &str, partitions: &str) {
    ok(&[
        "topic",
        "create",
        topic,
        "-b",
        b,
        "--partitions",
        partitions,
    ]);
}

/// Runs a tool that must fail with exit code 1 and returns its stderr line.
fn fails(args: &[&str]) -> String {
    let o = strom(args);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "{args:?}");
    stderr(&o).trim().to_owned()
}

#[test]
fn group_list_and_describe_show_members_committed_offsets_and_exact_lag() {
    let server = start_server();
    let b = server.addr.as_str();
    let client = Client::new(b);
    create_topic(b, "orders", "2");
    client.produce("orders", 0, &[None; 10]);
    client.produce("orders", 1, &[None; 4]);
    client.commit("billing", &[("orders", 0, 7), ("orders", 1, 4)]);

    assert_eq!(
        json(&["group", "list", "-b", b, "--json"]),
        j!([{"group": "billing", "type": "classic", "state": "Empty"}])
    );
    let d = json(&["group", "describe", "billing", "-b", b, "--json"]);
    assert_eq!(d["state"], "Empty");
    assert_eq!(d["members"], j!([]));
    let row = |topic: &str, p: i32, cur: i64, end: i64, lag: i64| {
        j!({"topic": topic, "partition": p, "current_offset": cur, "log_end_offset": end,
            "lag": lag, "consumer_id": null, "host": null, "client_id": null})
    };
    assert_eq!(
        d["offsets"],
        j!([row("orders", 0, 7, 10, 3), row("orders", 1, 4, 4, 0)])
    );
    let text = ok(&["group", "describe", "billing", "-b", b]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0]
            .starts_with("Group: billing  Type: Classic  State: Empty  Assignor: -  Members: 0"),
        "{text}"
    );
    assert_eq!(lines[1], "Consumer group 'billing' has no active members.");
    assert_eq!(
        &lines[3..],
        [
            "TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID",
            "orders  0          7               10              3    -            -     -",
            "orders  1          4               4               0    -            -     -",
        ]
    );

    // A live member owning partition 0 that committed 6 there; partition 1
    // has neither an owner nor an offset, so it is not listed.
    let member = client.join("live", "orders", &[0], &[(0, 6)]);
    let list = json(&["group", "list", "-b", b, "--json"]);
    assert_eq!(
        list,
        j!([
            {"group": "billing", "type": "classic", "state": "Empty"},
            {"group": "live", "type": "classic", "state": "Stable"}
        ])
    );
    let table = ok(&["group", "list", "-b", b]);
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        [
            "GROUP    TYPE     STATE",
            "billing  Classic  Empty",
            "live     Classic  Stable"
        ]
    );
    let d = json(&["group", "describe", "live", "-b", b, "--json"]);
    assert_eq!(
        (&d["state"], &d["assignor"], &d["type"]),
        (&j!("Stable"), &j!("range"), &j!("classic"))
    );
    let host = d["members"][0]["host"].as_str().unwrap().to_owned();
    assert!(host.contains("127.0.0.1"), "{d}");
    assert_eq!(
        d["members"],
        j!([{"member_id": member.member_id, "group_instance_id": null,
             "client_id": "strom-client", "host": host,
             "partitions": [{"topic": "orders", "partition": 0}]}])
    );
    assert_eq!(
        d["offsets"],
        j!([{"topic": "orders", "partition": 0, "current_offset": 6, "log_end_offset": 10,
             "lag": 4, "consumer_id": member.member_id, "host": host,
             "client_id": "strom-client"}])
    );
    let text = ok(&["group", "describe", "live", "-b", b]);
    assert!(
        text.contains("State: Stable  Assignor: range  Members: 1"),
        "{text}"
    );
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "orders",
            "0",
            "6",
            "10",
            "4",
            member.member_id.as_str(),
            host.as_str(),
            "strom-client"
        ]
    );

    assert_eq!(
        fails(&["group", "describe", "nope", "-b", b]),
        "strom: group 'nope' does not exist"
    );
}

/// `group reset-offsets G ARGS... -b B --json` as (topic, partition, new offset).
fn reset(b: &str, args: &[&str]) -> Vec<(String, i64, i64)> {
    let mut all = vec!["group", "reset-offsets", "-b", b, "--json"];
    all.extend_from_slice(args);
    json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap().to_owned(),
                r["partition"].as_i64().unwrap(),
                r["new_offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Flags of one `reset-offsets --execute`, the plan it prints, and the
/// committed offsets afterwards.
type ResetCase<'a> = (
    &'a [&'a str],
    &'a [(&'a str, i64, i64)],
    &'a [(&'a str, i32, i64)],
);

fn plan(rows: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    rows.iter()
        .map(|(t, p, o)| (t.to_string(), *p, *o))
        .collect()
}

fn offsets(rows: &[(&str, i32, i64)]) -> BTreeMap<(String, i32), i64> {
    rows.iter()
        .map(|(t, p, o)| ((t.to_string(), *p), *o))
        .collect()
}

#[test]
fn reset_offsets_plans_by_default_and_commits_each_mode_with_execute() {
    let server = start_server();
    let b = server.addr.as_str();
    let client = Client::new(b);
    create_topic(b, "t", "2");
    // Partition 0: ten records at 1 s, 2 s, ... 10 s after the epoch; partition 1: five now.
    let old: Vec<Option<i64>> = (1..=10).map(|s| Some(s * 1_000)).collect();
    client.produce("t", 0, &old);
    client.produce("t", 1, &[None; 5]);
    client.commit("g", &[("t", 0, 5), ("t", 1, 2)]);
    let start = offsets(&[("t", 0, 5), ("t", 1, 2)]);

    // Without --execute nothing changes, and stderr says so.
    let o = strom(&[
        "group",
        "reset-offsets",
        "g",
        "-b",
        b,
        "--topic",
        "t",
        "--to-earliest",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        common::stdout(&o).lines().collect::<Vec<_>>(),
        [
            "TOPIC  PARTITION  NEW-OFFSET",
            "t      0          0",
            "t      1          0"
        ]
    );
    assert!(stderr(&o).contains("dry run"), "{}", stderr(&o));
    let explicit = reset(b, &["g", "--topic", "t", "--to-latest", "--dry-run"]);
    assert_eq!(explicit, plan(&[("t", 0, 10), ("t", 1, 5)]));
    assert_eq!(client.committed("g"), start);

    let cases: &[ResetCase] = &[
        (
            &["--topic", "t", "--to-earliest"],
            &[("t", 0, 0), ("t", 1, 0)],
            &[("t", 0, 0), ("t", 1, 0)],
        ),
        (
            &["--all-topics", "--to-latest"],
            &[("t", 0, 10), ("t", 1, 5)],
            &[("t", 0, 10), ("t", 1, 5)],
        ),
        (
            &["--topic", "t:0", "--to-offset", "3"],
            &[("t", 0, 3)],
            &[("t", 0, 3), ("t", 1, 5)],
        ),
        // Clamped to the log end offset.
        (
            &["--topic", "t:1", "--to-offset", "99"],
            &[("t", 1, 5)],
            &[("t", 0, 3), ("t", 1, 5)],
        ),
        (
            &["--all-topics", "--shift-by", "-2"],
            &[("t", 0, 1), ("t", 1, 3)],
            &[("t", 0, 1), ("t", 1, 3)],
        ),
        // Clamped to the log start offset.
        (
            &["--topic", "t:0", "--shift-by", "-5"],
            &[("t", 0, 0)],
            &[("t", 0, 0), ("t", 1, 3)],
        ),
        (
            &["--topic", "t:0", "--shift-by", "4"],
            &[("t", 0, 4)],
            &[("t", 0, 4), ("t", 1, 3)],
        ),
        // The first record at or after 4.5 s is offset 4 (at 5 s); none is that new: the log end.
        (
            &["--topic", "t:0", "--to-datetime", "1970-01-01T00:00:04.500"],
            &[("t", 0, 4)],
            &[("t", 0, 4), ("t", 1, 3)],
        ),
        (
            &[
                "--topic",
                "t:0",
                "--to-datetime",
                "1970-01-01T01:00:04.500+01:00",
            ],
            &[("t", 0, 4)],
            &[("t", 0, 4), ("t", 1, 3)],
        ),
        (
            &["--topic", "t:0", "--to-datetime", "2999-01-01T00:00:00.000"],
            &[("t", 0, 10)],
            &[("t", 0, 10), ("t", 1, 3)],
        ),
        (
            &["--topic", "t:1", "--by-duration", "P1D"],
            &[("t", 1, 0)],
            &[("t", 0, 10), ("t", 1, 0)],
        ),
        (
            &["--topic", "t:1", "--by-duration", "PT0S"],
            &[("t", 1, 5)],
            &[("t", 0, 10), ("t", 1, 5)],
        ),
    ];
    for (args, expected_plan, expected_after) in cases {
        let mut full = vec!["g", "--execute"];
        full.extend_from_slice(args);
        assert_eq!(reset(b, &full), plan(expected_plan), "{args:?}");
        assert_eq!(client.committed("g"), offsets(expected_after), "{args:?}");
    }

    // A group that does not exist yet is created by the reset, as in Kafka.
    assert_eq!(
        reset(
            b,
            &["fresh", "--topic", "t:1", "--to-offset", "2", "--execute"]
        ),
        plan(&[("t", 1, 2)])
    );
    assert_eq!(client.committed("fresh"), offsets(&[("t", 1, 2)]));

    assert_eq!(
        fails(&[
            "group",
            "reset-offsets",
            "g",
            "-b",
            b,
            "--topic",
            "nope",
            "--to-earliest"
        ]),
        "strom: topic 'nope' does not exist"
    );
    assert_eq!(
        fails(&[
            "group",
            "reset-offsets",
            "g",
            "-b",
            b,
            "--topic",
            "t:7",
            "--to-earliest"
        ]),
        "strom: topic 't' has no partition 7 (it has 2)"
    );
    assert_eq!(
        fails(&[
            "group",
            "reset-offsets",
            "fresh",
            "-b",
            b,
            "--topic",
            "t:0",
            "--shift-by",
            "1"
        ]),
        "strom: cannot shift t-0 of group 'fresh': it has no committed offset"
    );

    // A group with a live member is refused, dry run or not, and keeps its offsets.
    let _member = client.join("g", "t", &[0, 1], &[]);
    for mode in ["--dry-run", "--execute"] {
        assert_eq!(
            fails(&[
                "group",
                "reset-offsets",
                "g",
                "-b",
                b,
                "--all-topics",
                "--to-earliest",
                mode
            ]),
            "strom: group 'g' is not empty (state Stable); stop its members first"
        );
    }
    assert_eq!(client.committed("g"), offsets(&[("t", 0, 10), ("t", 1, 5)]));

    // Usage errors: no scope, no target, two targets, --dry-run with --execute.
    for args in [
        vec!["g", "--to-earliest"],
        vec!["g", "--topic", "t"],
        vec!["g", "--topic", "t", "--to-earliest", "--to-latest"],
        vec![
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
            "--execute",
        ],
        vec!["g", "--topic", "t", "--to-datetime", "yesterday"],
        vec!["g", "--topic", "t", "--by-duration", "30m"],
        vec!["g", "--topic", "t:x", "--to-earliest"],
    ] {
        let mut full = vec!["group", "reset-offsets", "-b", b];
        full.extend(args.iter().copied());
        assert_eq!(strom(&full).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn group_delete_removes_empty_groups_and_refuses_live_and_unknown_ones() {
    let server = start_server();
    let b = server.addr.as_str();
    let client = Client::new(b);
    create_topic(b, "t", "1");
    client.commit("a", &[("t", 0, 0)]);
    client.commit("b", &[("t", 0, 0)]);
    let _member = client.join("live", "t", &[0], &[]);

    assert_eq!(
        ok(&["group", "delete", "a", "b", "-b", b]),
        "Deleted group a.\nDeleted group b.\n"
    );
    assert!(client.committed("a").is_empty());
    assert_eq!(
        fails(&["group", "delete", "live", "-b", b]),
        "strom: group 'live' is not empty; stop its members before deleting it"
    );
    assert_eq!(
        fails(&["group", "delete", "a", "-b", b]),
        "strom: group 'a' does not exist"
    );
    assert_eq!(
        json(&["group", "list", "-b", b, "--json"]),
        j!([{"group": "live", "type": "classic", "state": "Stable"}])
    );
    assert_eq!(strom(&["group", "delete", "-b", b]).status.code(), Some(2));
}

#[test]
fn topic_alter_grows_partitions_sets_and_deletes_configs_and_refuses_a_decrease() {
    let server = start_server();
    let b = server.addr.as_str();
    create_topic(b, "t", "2");

    assert_eq!(
        ok(&["topic", "alter", "t", "-b", b, "--partitions", "4"]).trim(),
        "Topic t now has 4 partitions."
    );
    let d = json(&["topic", "describe", "t", "-b", b, "--json"]);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 4);

    let out = ok(&[
        "topic",
        "alter",
        "t",
        "-b",
        b,
        "--config",
        "retention.ms=60000",
        "--config",
        "cleanup.policy=compact",
    ]);
    assert_eq!(out.trim(), "Updated the configs of topic t.");
    let d = json(&["topic", "describe", "t", "-b", b, "--json"]);
    assert_eq!(
        d["configs"],
        j!({"cleanup.policy": "compact", "retention.ms": "60000"})
    );
    ok(&[
        "topic",
        "alter",
        "t",
        "-b",
        b,
        "--delete-config",
        "cleanup.policy",
    ]);
    let d = json(&["topic", "describe", "t", "-b", b, "--json"]);
    assert_eq!(d["configs"], j!({"retention.ms": "60000"}));

    assert_eq!(
        fails(&["topic", "alter", "t", "-b", b, "--partitions", "2"]),
        "strom: topic 't' has 4 partitions; partitions can only be added, not removed (asked for 2)"
    );
    assert_eq!(
        fails(&["topic", "alter", "t", "-b", b, "--partitions", "4"]),
        "strom: topic 't' already has 4 partitions"
    );
    assert_eq!(
        fails(&["topic", "alter", "t", "-b", b, "--config", "no.such=1"]),
        "strom: invalid config for topic 't': Unknown topic config name: no.such"
    );
    assert_eq!(
        fails(&["topic", "alter", "nope", "-b", b, "--partitions", "3"]),
        "strom: topic 'nope' does not exist"
    );
    let d = json(&["topic", "describe", "t", "-b", b, "--json"]);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(d["configs"], j!({"retention.ms": "60000"}));
    assert_eq!(
        strom(&["topic", "alter", "t", "-b", b]).status.code(),
        Some(2)
    );
}

#[test]
fn group_help_names_every_subcommand_and_flag() {
    let top = ok(&["--help"]);
    assert!(
        top.contains("group    List, describe, reset and delete consumer groups with their lag\n"),
        "{top}"
    );
    let help = ok(&["group", "--help"]);
    for line in [
        "list           List consumer groups with their type and state\n",
        "describe       Show a group's state, members and, per partition, committed offset, log end offset and lag\n",
        "reset-offsets  Reset committed offsets of a group without active members (a dry run unless --execute)\n",
        "delete         Delete groups that have no active members, with their committed offsets\n",
    ] {
        assert!(help.contains(line), "{line:?} missing in\n{help}");
    }
    let reset = ok(&["group", "reset-offsets", "--help"]);
    for flag in [
        "--topic <TOPIC[:P,P...]>",
        "--all-topics",
        "--to-earliest",
        "--to-latest",
        "--to-offset <OFFSET>",
        "--shift-by <N>",
        "--to-datetime <DATETIME>",
        "--by-duration <DURATION>",
        "--dry-run",
        "--execute",
        "--bootstrap-server <HOST:PORT>",
    ] {
        assert!(reset.contains(flag), "{flag} missing in\n{reset}");
    }
    for sub in ["list", "describe", "delete"] {
        let h = ok(&["group", sub, "--help"]);
        assert!(h.contains("--bootstrap-server <HOST:PORT>"), "{h}");
    }
    let alter = ok(&["topic", "alter", "--help"]);
    for flag in [
        "--partitions <N>",
        "--config <KEY=VALUE>",
        "--delete-config <KEY>",
    ] {
        assert!(alter.contains(flag), "{flag} missing in\n{alter}");
    }
}
