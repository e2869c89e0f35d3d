"""strom-client's Consumer in a consumer group together with Java kafka-clients 3.9.1.

The Rust member is `compat_tool group-consume` (crates/strom-client/examples/compat_tool.rs,
compatlib.RustGroupMember), the Java one `Tool group-consume` (JavaGroupMember): the same
arguments, the same JSON lines and the same signals, so both are driven and checked alike.

1. Classic protocol (JoinGroup/SyncGroup): the member started first owns the topic, then the
   other joins; the first one stays the group leader and runs the range assignor for both
   (parametrized: Rust leads, or Java leads). A 4-partition topic splits 2+2 — per the
   members' own rebalance callbacks and per describe_consumer_groups — and each of 1,000
   records is consumed by exactly one member, from its own partitions. The Java member is
   then killed with SIGKILL; once its session (10 s, both members) expires the Rust member
   owns all 4 partitions and receives the next 1,000 records, resuming at the offsets the
   dead member committed: nothing lost, nothing twice. The Rust member then exits cleanly
   on SIGTERM.
2. Consumer protocol (KIP-848, `group.protocol=consumer` on both; broker with a 1 s heartbeat
   interval and a 45 s session timeout): the same split by the broker's uniform assignor;
   the Rust member's commits (OffsetCommit with its member epoch) are visible through the
   admin API; on SIGTERM it leaves (heartbeat with epoch -1) and the Java member owns all 4
   partitions well before any session could expire, resuming at the Rust member's commits.

Every wait is bounded; both processes are SIGKILLed at teardown whatever happened.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import ConsumerGroupType

from compatlib import (
    JavaGroupMember,
    JavaGroupMemberWithProperties,
    RustGroupMember,
    committed_offsets,
    create_topic,
    group_assignment,
    produce_text,
    wait_for_stable_group,
    wait_until,
)
from test_groups import GROUP_FORM_TIMEOUT_S, assert_each_once, positions, settle, text_records, wait_for_total

# Both members' session.timeout.ms in the classic test: short, above the broker's
# group.min.session.timeout.ms (6000).
SESSION_TIMEOUT_MS = 10_000
PARTITIONS = 4
PER_PARTITION = 250  # 1,000 records per phase

# Consumer-protocol broker: members heartbeat every second (so a new assignment reaches them
# fast); the session is Kafka's default 45 s, so a takeover within seconds comes from the
# leave, not from an expired session.
CP_HEARTBEAT_INTERVAL_MS = 1_000
CP_SESSION_TIMEOUT_MS = 45_000
CP_BROKER_SETTINGS = {
    "group.consumer.session.timeout.ms": CP_SESSION_TIMEOUT_MS,
    "group.consumer.heartbeat.interval.ms": CP_HEARTBEAT_INTERVAL_MS,
}
# How soon after the Rust member's SIGTERM the Java member must own everything.
PROMPT_TAKEOVER_S = 15


@pytest.fixture
def members(strom_factory):
    """Tool processes a test started; SIGKILLed (their whole process group) before the broker."""
    started = []
    yield started
    for m in reversed(started):
        try:
            m.kill()
        except Exception as e:  # noqa: BLE001 - teardown must reach every member
            print(f"killing {m.name}: {e!r}")


def with_stderr(e: AssertionError, *members_) -> AssertionError:
    tails = "".join(f"\n{m.name} stderr:\n{m.stderr_tail()}" for m in members_)
    return AssertionError(f"{e}{tails}")


def split_and_consume_first_phase(bootstrap, topic, group, rust, java, assignor, group_type=None):
    """Waits for a Stable 2+2 split seen both by describe_consumer_groups and by each
    member's callbacks, produces 1,000 records and checks each reached exactly one member,
    the owner of its partition. Returns ({client id: partitions}, acknowledged records)."""
    try:
        described = wait_for_stable_group(
            bootstrap, group, {"rust-member": 2, "java-member": 2}, timeout_s=GROUP_FORM_TIMEOUT_S
        )
        owned = group_assignment(described)
        rust.wait_for_assignment(owned["rust-member"], timeout_s=20)
        java.wait_for_assignment(owned["java-member"], timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, rust, java) from None
    assert sorted(owned["rust-member"] + owned["java-member"]) == list(range(PARTITIONS)), owned
    assert described.partition_assignor == assignor, described.partition_assignor
    if group_type is not None:
        assert described.type == group_type, described.type
    # The callbacks agree with the coordinator.
    assert rust.assignment == owned["rust-member"], (rust.events, owned)
    assert java.assignment == owned["java-member"], (java.events, owned)

    first = produce_text(bootstrap, topic, text_records("first", PARTITIONS, PER_PARTITION))
    try:
        wait_for_total(f"the {len(first)} first-phase records", [rust, java], len(first), timeout_s=60)
    except AssertionError as e:
        raise with_stderr(e, rust, java) from None
    settle([rust, java])
    for m, mine in ((rust, owned["rust-member"]), (java, owned["java-member"])):
        got = sorted({r["p"] for r in m.records})
        assert got == mine, f"{m.name} got records of partitions {got}, was assigned {mine}"
    overlap = sorted(set(positions(rust.records)) & set(positions(java.records)))
    assert not overlap, f"records delivered to both members: {overlap[:10]}"
    assert_each_once("first phase, both members", rust.records + java.records, first)
    return owned, first


def wait_for_commits(member, partitions: list[int], offset: int, timeout_s: float = 30) -> None:
    """Waits until `member` reported committing `offset` (commit_sync / commitSync) on `partitions`."""
    wait_until(
        f"{member.name} to commit offset {offset} on {partitions} (has {member.committed})",
        lambda: all(member.committed.get(p) == offset for p in partitions) or member.error,
        timeout_s,
    )
    assert member.error is None, f"{member.name} failed: {member.error!r}"


@pytest.mark.java
@pytest.mark.parametrize("first", ["rust", "java"])
def test_rust_and_java_classic_members_split_partitions_and_rust_takes_over_after_java_kill9(
    strom, java_classpath, members, first
):
    bootstrap, topic, group = strom.bootstrap, "rust-java-split", "rust-java-classic"
    create_topic(bootstrap, topic, partitions=PARTITIONS)

    def start_rust():
        return RustGroupMember(bootstrap, topic, group, commit="sync",
                               session_timeout_ms=SESSION_TIMEOUT_MS, client_id="rust-member")

    def start_java():
        return JavaGroupMember(java_classpath, bootstrap, topic, group, commit="sync",
                               session_timeout_ms=SESSION_TIMEOUT_MS, client_id="java-member")

    # The member started first owns all partitions before the other joins, so it stays the
    # group leader: it runs the assignor for both and sends the other its assignment.
    starters = (start_rust, start_java) if first == "rust" else (start_java, start_rust)
    leader = starters[0]()
    members.append(leader)
    try:
        leader.wait_for_assignment(list(range(PARTITIONS)), timeout_s=GROUP_FORM_TIMEOUT_S)
    except AssertionError as e:
        raise with_stderr(e, leader) from None
    other = starters[1]()
    members.append(other)
    rust, java = (leader, other) if first == "rust" else (other, leader)

    # range: the strategy both clients offer (Rust: range; Java 3.9: range, cooperative-sticky).
    owned, first = split_and_consume_first_phase(bootstrap, topic, group, rust, java, assignor="range")
    # Each member commits synchronously after every poll, so the survivor must resume exactly
    # at offset PER_PARTITION of the dead member's partitions.
    wait_for_commits(rust, owned["rust-member"], PER_PARTITION)
    wait_for_commits(java, owned["java-member"], PER_PARTITION)
    assert committed_offsets(bootstrap, group) == {(topic, p): PER_PARTITION for p in range(PARTITIONS)}

    java.kill()
    killed_at = time.monotonic()
    # Produced while the dead member still holds its partitions in the group: the survivor
    # gets its own partitions' share at once, the rest after the takeover.
    before = len(rust.records)
    second = produce_text(bootstrap, topic, text_records("second", PARTITIONS, PER_PARTITION))
    try:
        taken_over_at = rust.wait_for_assignment(list(range(PARTITIONS)), timeout_s=SESSION_TIMEOUT_MS / 1000 + 30)
    except AssertionError as e:
        raise with_stderr(e, rust) from None
    took = taken_over_at - killed_at
    print(f"rust member owned all {PARTITIONS} partitions {took:.1f}s after java's kill -9 "
          f"(session.timeout.ms={SESSION_TIMEOUT_MS})")
    # The dead member's last heartbeat (every 3 s) was at most one interval before the kill.
    assert took >= SESSION_TIMEOUT_MS / 1000 - 3 - 0.5, f"partitions moved {took:.1f}s after the kill"
    described = wait_for_stable_group(bootstrap, group, {"rust-member": PARTITIONS}, timeout_s=20)
    assert len(described.members) == 1, described.members

    wait_for_total(f"the {len(second)} second-phase records", [rust], before + len(second), timeout_s=60)
    settle([rust])
    assert_each_once("second phase, rust survivor", rust.records[before:], second)
    assert_each_once("both phases, both members", rust.records + java.records, first + second)
    wait_until(
        f"offsets {2 * PER_PARTITION} committed on all partitions",
        lambda: committed_offsets(bootstrap, group) == {(topic, p): 2 * PER_PARTITION for p in range(PARTITIONS)},
        timeout_s=20,
    )

    rust.close()
    assert rust.closed_cleanly, f"rust member did not close cleanly\n{rust.stderr_tail()}"
    assert rust.proc.returncode == 0, f"rust member exited {rust.proc.returncode}\n{rust.stderr_tail()}"


@pytest.mark.java
def test_rust_and_java_consumer_protocol_members_split_and_java_takes_over_promptly_after_rust_sigterm(
    strom_factory, java_classpath, members
):
    strom = strom_factory(settings=CP_BROKER_SETTINGS)
    bootstrap, topic, group = strom.bootstrap, "rust-java-cp-split", "rust-java-consumer-protocol"
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    consumer_protocol = {"group.protocol": "consumer"}
    rust = RustGroupMember(bootstrap, topic, group, commit="sync", client_id="rust-member",
                           properties=consumer_protocol)
    members.append(rust)
    java = JavaGroupMemberWithProperties(java_classpath, bootstrap, topic, group, consumer_protocol,
                                         commit="sync", client_id="java-member")
    members.append(java)

    owned, first = split_and_consume_first_phase(
        bootstrap, topic, group, rust, java, assignor="uniform", group_type=ConsumerGroupType.CONSUMER
    )
    # Offsets committed by the Rust member through the consumer protocol, seen by the admin API.
    wait_for_commits(rust, owned["rust-member"], PER_PARTITION)
    wait_for_commits(java, owned["java-member"], PER_PARTITION)
    committed = committed_offsets(bootstrap, group)
    assert {p: committed.get((topic, p)) for p in owned["rust-member"]} == {
        p: PER_PARTITION for p in owned["rust-member"]
    }, committed
    assert committed == {(topic, p): PER_PARTITION for p in range(PARTITIONS)}, committed

    closed_at = time.monotonic()
    rust.close()
    assert rust.closed_cleanly, f"rust member did not close cleanly\n{rust.stderr_tail()}"
    assert rust.proc.returncode == 0, f"rust member exited {rust.proc.returncode}\n{rust.stderr_tail()}"
    assert rust.assignment == [], f"rust member still owns partitions after close: {rust.events}"
    try:
        taken_over_at = java.wait_for_assignment(list(range(PARTITIONS)), timeout_s=PROMPT_TAKEOVER_S)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    print(f"java member owned all {PARTITIONS} partitions {taken_over_at - closed_at:.1f}s after the rust "
          f"member's SIGTERM (group.consumer.session.timeout.ms={CP_SESSION_TIMEOUT_MS})")
    described = wait_for_stable_group(bootstrap, group, {"java-member": PARTITIONS}, timeout_s=20)
    assert len(described.members) == 1, described.members

    # The Java member resumes at the Rust member's committed offsets: the new records only.
    before = len(java.records)
    second = produce_text(bootstrap, topic, text_records("second", PARTITIONS, PER_PARTITION))
    try:
        wait_for_total(f"the {len(second)} second-phase records", [java], before + len(second), timeout_s=60)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    settle([java])
    assert_each_once("second phase, java after the rust member left", java.records[before:], second)
    assert_each_once("both phases, both members", rust.records + java.records, first + second)
