"""Classic consumer groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offset commit and fetch,
group admin APIs) as real clients use them: Java kafka-clients 3.9.1, confluent-kafka
(librdkafka, `group.protocol=classic`) and kafka-python.

Each test gets a fresh broker with default group settings (group.initial.rebalance.delay.ms
3000, group.min.session.timeout.ms 6000). Members record the records they were given and their
rebalance callbacks (compatlib `*GroupMember`); what the broker says about the group is read
with confluent-kafka's AdminClient. Every wait is bounded; members are closed (Java: killed)
before the broker is.
"""

from __future__ import annotations

import signal
import time

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import OffsetSpec

from compatlib import (
    ConfluentGroupMember,
    JavaGroupMember,
    KafkaPythonGroupMember,
    admin,
    committed_offsets,
    confluent_consumer,
    create_topic,
    describe_group,
    group_assignment,
    produce_text,
    wait_for_stable_group,
    wait_until,
)

# A Java member's session timeout where a test waits for its expiry: short, but above the
# broker's group.min.session.timeout.ms (6000).
JAVA_SESSION_TIMEOUT_MS = 10_000
# How long a group may take to become Stable once its members are started: JVM start-up,
# the initial rebalance delay (3 s) and possibly one more rebalance when a late member joins.
GROUP_FORM_TIMEOUT_S = 60


@pytest.fixture
def members(strom_factory):
    """Group members a test started; closed (Java: SIGKILLed) before the broker is killed."""
    started = []
    yield started
    for m in reversed(started):
        try:
            if isinstance(m, JavaGroupMember):
                m.kill()
            else:
                m.close(timeout_s=15)
        except Exception as e:  # noqa: BLE001 - teardown must reach every member
            print(f"closing {m.name}: {e!r}")


def text_records(prefix: str, partitions: int, per_partition: int) -> list[tuple[int, str, str]]:
    """(partition, key, value): record i goes to partition i % partitions."""
    n = partitions * per_partition
    return [(i % partitions, f"{prefix}-k-{i}", f"{prefix}-v-{i}") for i in range(n)]


def positions(records: list[dict]) -> list[tuple[int, int]]:
    return [(r["p"], r["o"]) for r in records]


def assert_each_once(what: str, got: list[dict], acked: list[tuple[int, int, str]]) -> None:
    """`got` holds every acknowledged record exactly once, with its value, and nothing else."""
    want = {(p, o): v for p, o, v in acked}
    seen: dict[tuple[int, int], int] = {}
    problems = []
    for r in got:
        pos = (r["p"], r["o"])
        seen[pos] = seen.get(pos, 0) + 1
        if pos in want and r["v"] != want[pos]:
            problems.append(f"{pos}: value {r['v']!r}, produced {want[pos]!r}")
    dups = sorted(pos for pos, n in seen.items() if n > 1)
    missing = sorted(set(want) - set(seen))
    extra = sorted(set(seen) - set(want))
    if dups:
        problems.append(f"{len(dups)} delivered more than once, e.g. {dups[:10]}")
    if missing:
        problems.append(f"{len(missing)} never delivered, e.g. {missing[:10]}")
    if extra:
        problems.append(f"{len(extra)} not produced in this phase, e.g. {extra[:10]}")
    assert not problems, f"{what}:\n  " + "\n  ".join(problems[:15])


def wait_for_total(what: str, members_: list, count: int, timeout_s: float) -> None:
    """Waits until `members_` together hold at least `count` records; fails at once if one
    of them failed (its client raised, or the Java tool reported an error)."""

    def done():
        failed = [f"{m.name}: {m.error!r}" for m in members_ if m.error is not None]
        assert not failed, f"while waiting for {what}: " + "; ".join(failed)
        return sum(len(m.records) for m in members_) >= count

    wait_until(f"{what} (have {[len(m.records) for m in members_]})", done, timeout_s)


def settle(members_: list, seconds: float = 1.5) -> None:
    """Lets members keep polling a little, so a duplicate delivery would show up."""
    time.sleep(seconds)
    for m in members_:
        assert m.error is None, f"{m.name} failed: {m.error!r}"


# ------------------------------------------------------------------ 1. Java + confluent-kafka


@pytest.mark.java
def test_java_and_confluent_members_split_partitions_and_survivor_takes_over_after_kill9(
    strom, java_classpath, members
):
    bootstrap, topic, group = strom.bootstrap, "split-topic", "split-group"
    create_topic(bootstrap, topic, partitions=4)
    java = JavaGroupMember(
        java_classpath, bootstrap, topic, group, commit="sync",
        session_timeout_ms=JAVA_SESSION_TIMEOUT_MS, client_id="java-member",
    )
    members.append(java)
    confluent = ConfluentGroupMember(bootstrap, topic, group, commit="sync", client_id="confluent-member")
    members.append(confluent)

    # One generation with both members, two partitions each (range assignor: the only one
    # both clients offer), before anything is produced.
    try:
        described = wait_for_stable_group(
            bootstrap, group, {"java-member": 2, "confluent-member": 2}, timeout_s=GROUP_FORM_TIMEOUT_S
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\njava stderr:\n{java.stderr_tail()}") from None
    owned = group_assignment(described)
    assert sorted(owned["java-member"] + owned["confluent-member"]) == [0, 1, 2, 3], owned
    assert described.partition_assignor == "range", described.partition_assignor
    java.wait_for_assignment(owned["java-member"], timeout_s=20)
    confluent.wait_for_assignment(owned["confluent-member"], timeout_s=20)

    first = produce_text(bootstrap, topic, text_records("first", 4, 50))
    wait_for_total("the 200 first-phase records", [java, confluent], len(first), timeout_s=30)
    settle([java, confluent])
    for m, mine in ((java, owned["java-member"]), (confluent, owned["confluent-member"])):
        foreign = sorted({r["p"] for r in m.records} - set(mine))
        assert not foreign, f"{m.name} got records of partitions {foreign} it was not assigned ({mine})"
    overlap = sorted(set(positions(java.records)) & set(positions(confluent.records)))
    assert not overlap, f"records delivered to both members: {overlap[:10]}"
    assert_each_once("first phase, both members", java.records + confluent.records, first)

    # The Java member commits synchronously after each poll; wait until everything it got is
    # committed, so the survivor must resume exactly at offset 50 of its partitions.
    wait_until(
        f"java member to commit offset 50 on {owned['java-member']}",
        lambda: all(java.committed.get(p) == 50 for p in owned["java-member"]),
        timeout_s=20,
    )
    assert committed_offsets(bootstrap, group) == {(topic, p): 50 for p in range(4)}

    java.kill()
    killed_at = time.monotonic()
    # Produced while the dead member still holds its partitions in the group: the survivor
    # gets its own partitions' share at once, the rest after the takeover.
    before = len(confluent.records)
    second = produce_text(bootstrap, topic, text_records("second", 4, 50))
    taken_over_at = confluent.wait_for_assignment([0, 1, 2, 3], timeout_s=JAVA_SESSION_TIMEOUT_MS / 1000 + 30)
    print(f"survivor owned all 4 partitions {taken_over_at - killed_at:.1f}s after kill -9 "
          f"(session.timeout.ms={JAVA_SESSION_TIMEOUT_MS})")
    described = wait_for_stable_group(bootstrap, group, {"confluent-member": 4}, timeout_s=20)
    assert len(described.members) == 1, described.members

    wait_for_total("the 200 second-phase records", [confluent], before + len(second), timeout_s=30)
    settle([confluent])
    # Both members committed everything they had been given, so nothing is delivered twice:
    # the survivor starts at the committed offset 50 of the dead member's partitions.
    assert_each_once("second phase, survivor", confluent.records[before:], second)
    assert_each_once("both phases, both members", java.records + confluent.records, first + second)


# ------------------------------------------------------------------ 2. pub/sub


def test_two_groups_each_receive_every_record(strom, members):
    bootstrap, topic = strom.bootstrap, "pubsub-topic"
    create_topic(bootstrap, topic, partitions=3)
    before = produce_text(bootstrap, topic, text_records("before", 3, 100))
    a = ConfluentGroupMember(bootstrap, topic, "pubsub-confluent", client_id="pubsub-confluent")
    members.append(a)
    b = KafkaPythonGroupMember(bootstrap, topic, "pubsub-kafka-python", client_id="pubsub-kafka-python")
    members.append(b)
    for m in (a, b):
        m.wait_for_records(len(before), timeout_s=GROUP_FORM_TIMEOUT_S)
    after = produce_text(bootstrap, topic, text_records("after", 3, 10))
    for m in (a, b):
        m.wait_for_records(len(before) + len(after), timeout_s=30)
    settle([a, b])
    for m in (a, b):
        assert_each_once(f"{m.name} in its own group", m.records, before + after)
    assert group_assignment(describe_group(bootstrap, "pubsub-confluent")) == {"pubsub-confluent": [0, 1, 2]}
    assert group_assignment(describe_group(bootstrap, "pubsub-kafka-python")) == {"pubsub-kafka-python": [0, 1, 2]}


# ------------------------------------------------------------------ 3. kafka-python group


def test_kafka_python_members_split_partitions_and_their_commits_are_visible_to_admin(strom, members):
    bootstrap, topic, group = strom.bootstrap, "kp-topic", "kp-group"
    create_topic(bootstrap, topic, partitions=4)
    kp = [
        KafkaPythonGroupMember(bootstrap, topic, group, commit="sync", client_id=f"kp-{n}") for n in ("a", "b")
    ]
    members.extend(kp)
    described = wait_for_stable_group(bootstrap, group, {"kp-a": 2, "kp-b": 2}, timeout_s=GROUP_FORM_TIMEOUT_S)
    owned = group_assignment(described)
    for m in kp:
        m.wait_for_assignment(owned[m.name.split()[-1]], timeout_s=20)

    produced = produce_text(bootstrap, topic, text_records("kp", 4, 50))
    wait_for_total("200 records", kp, len(produced), timeout_s=30)
    settle(kp)
    for m in kp:
        mine = owned[m.name.split()[-1]]
        assert sorted({r["p"] for r in m.records}) == mine, f"{m.name} owns {mine}"
    assert_each_once("kafka-python members together", kp[0].records + kp[1].records, produced)

    want = {(topic, p): 50 for p in range(4)}
    wait_until(f"committed offsets {want}", lambda: committed_offsets(bootstrap, group) == want, timeout_s=20)


# ------------------------------------------------------------------ 4. offsets and restarts


def first_offsets(bootstrap: str, topic: str, group: str, partitions: int, end: int, timeout_s: float = 60):
    """A new confluent-kafka member of `group` (no commits) reads until every partition
    reached `end`; returns {partition: first offset delivered} and closes (LeaveGroup)."""
    c = confluent_consumer(bootstrap, **{"group.id": group, "client.id": f"resume-{group}", "group.protocol": "classic"})
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while not (len(last) == partitions and all(o == end - 1 for o in last.values())):
            assert time.monotonic() < deadline, f"resumed consumer read only up to {last} in {timeout_s}s"
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            first.setdefault(msg.partition(), msg.offset())
            last[msg.partition()] = msg.offset()
    finally:
        c.close()
    return first


def commit_explicitly(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    """A confluent-kafka member of `group` waits for its assignment, commits `offsets`
    synchronously (OffsetCommit with its generation and member id), and leaves."""
    c = confluent_consumer(bootstrap, **{"group.id": group, "client.id": f"commit-{group}", "group.protocol": "classic"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + GROUP_FORM_TIMEOUT_S
        while len(c.assignment()) < len(offsets):
            assert time.monotonic() < deadline, f"no assignment of {len(offsets)} partitions: {c.assignment()}"
            c.poll(0.2)
        result = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
        assert all(tp.error is None for tp in result), result
    finally:
        c.close()


def committed_after_restart(bootstrap: str, group: str) -> dict:
    """Committed offsets, retried while the restarted coordinator may still be loading."""

    def fetch():
        try:
            return committed_offsets(bootstrap, group) or None
        except KafkaException as e:
            fetch.last = e
            return None

    fetch.last = None
    try:
        return wait_until(f"offsets of {group} after restart", fetch, timeout_s=30, interval_s=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; last error: {fetch.last!r}") from None


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_committed_offsets_survive_broker_restart_and_consumer_resumes_there(strom, stop):
    bootstrap, topic, group = strom.bootstrap, "restart-topic", "restart-group"
    create_topic(bootstrap, topic, partitions=2)
    produce_text(bootstrap, topic, text_records("r", 2, 20))
    sig = signal.SIGTERM if stop == "sigterm" else signal.SIGKILL

    commit_explicitly(bootstrap, topic, group, {0: 7, 1: 13})
    assert committed_offsets(bootstrap, group) == {(topic, 0): 7, (topic, 1): 13}
    strom.kill(sig)
    strom.restart()
    assert committed_after_restart(bootstrap, group) == {(topic, 0): 7, (topic, 1): 13}
    assert first_offsets(bootstrap, topic, group, 2, end=20) == {0: 7, 1: 13}

    # Offsets committed after a reload persist as well (a second restart of the same kind).
    commit_explicitly(bootstrap, topic, group, {0: 9, 1: 15})
    strom.kill(sig)
    strom.restart()
    assert committed_after_restart(bootstrap, group) == {(topic, 0): 9, (topic, 1): 15}
    assert first_offsets(bootstrap, topic, group, 2, end=20) == {0: 9, 1: 15}


# ------------------------------------------------------------------ 5. admin


def listed_groups(bootstrap: str, states=None) -> dict[str, object]:
    a = admin(bootstrap)
    kwargs = {"request_timeout": 15}
    if states is not None:
        kwargs["states"] = set(states)
    result = a.list_consumer_groups(**kwargs).result(timeout=20)
    assert not result.errors, result.errors
    return {g.group_id: g for g in result.valid}


def test_admin_lists_describes_and_deletes_a_group_only_when_empty(strom, members):
    bootstrap, topic, group = strom.bootstrap, "admin-topic", "admin-group"
    create_topic(bootstrap, topic, partitions=2)
    produced = produce_text(bootstrap, topic, text_records("adm", 2, 10))
    m = ConfluentGroupMember(bootstrap, topic, group, commit="sync", client_id="admin-visible-member")
    members.append(m)
    m.wait_for_records(len(produced), timeout_s=GROUP_FORM_TIMEOUT_S)
    wait_until("offsets 10/10 committed",
               lambda: committed_offsets(bootstrap, group) == {(topic, 0): 10, (topic, 1): 10}, timeout_s=20)

    listed = listed_groups(bootstrap)
    assert group in listed, f"list_consumer_groups: {sorted(listed)}"
    assert listed[group].state == ConsumerGroupState.STABLE, listed[group]
    assert listed[group].is_simple_consumer_group is False, listed[group]
    assert group in listed_groups(bootstrap, states=[ConsumerGroupState.STABLE])
    assert group not in listed_groups(bootstrap, states=[ConsumerGroupState.EMPTY])

    d = describe_group(bootstrap, group)
    assert d.state == ConsumerGroupState.STABLE, d.state
    assert d.is_simple_consumer_group is False
    assert d.partition_assignor in ("range", "roundrobin"), d.partition_assignor
    assert (d.coordinator.host, d.coordinator.port) == ("127.0.0.1", strom.port), d.coordinator
    assert len(d.members) == 1, d.members
    member = d.members[0]
    assert member.client_id == "admin-visible-member", member
    assert member.member_id.startswith("admin-visible-member-"), member.member_id  # Kafka: client id + "-" + UUID
    assert "127.0.0.1" in member.host, member.host
    assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [(topic, 0), (topic, 1)]

    a = admin(bootstrap)
    with pytest.raises(KafkaException) as refused:
        a.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, refused.value

    m.close()
    wait_until("group Empty after its only member closed",
               lambda: describe_group(bootstrap, group).state == ConsumerGroupState.EMPTY, timeout_s=10)
    assert listed_groups(bootstrap)[group].state == ConsumerGroupState.EMPTY
    assert committed_offsets(bootstrap, group) == {(topic, 0): 10, (topic, 1): 10}  # an Empty group keeps offsets

    assert a.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20) is None
    assert group not in listed_groups(bootstrap)
    gone = committed_offsets(bootstrap, group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    assert gone == {(topic, 0): OFFSET_INVALID, (topic, 1): OFFSET_INVALID}, gone
    # A new member of the same group id starts over (auto.offset.reset=earliest).
    again = ConfluentGroupMember(bootstrap, topic, group, client_id="after-delete")
    members.append(again)
    again.wait_for_records(len(produced), timeout_s=GROUP_FORM_TIMEOUT_S)
    settle([again])
    assert_each_once("member of the re-created group", again.records, produced)


def test_admin_alters_offsets_of_an_empty_group_and_lag_is_high_watermark_minus_committed(strom, members):
    bootstrap, topic, group = strom.bootstrap, "alter-topic", "alter-group"
    create_topic(bootstrap, topic, partitions=2)
    produced = produce_text(bootstrap, topic, text_records("alt", 2, 10))
    m = ConfluentGroupMember(bootstrap, topic, group, commit="sync", client_id="alter-member")
    members.append(m)
    m.wait_for_records(len(produced), timeout_s=GROUP_FORM_TIMEOUT_S)
    wait_until("offsets 10/10 committed",
               lambda: committed_offsets(bootstrap, group) == {(topic, 0): 10, (topic, 1): 10}, timeout_s=20)

    a = admin(bootstrap)
    reset = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 8)])
    # Kafka refuses admin commits (no member id, generation -1) while the group has members.
    with pytest.raises(KafkaException) as refused:
        result = a.alter_consumer_group_offsets([reset], request_timeout=15)[group].result(timeout=20)
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise KafkaException(tp.error)
    assert refused.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID, refused.value
    assert committed_offsets(bootstrap, group) == {(topic, 0): 10, (topic, 1): 10}

    m.close()
    wait_until("group Empty", lambda: describe_group(bootstrap, group).state == ConsumerGroupState.EMPTY, timeout_s=10)
    result = a.alter_consumer_group_offsets([reset], request_timeout=15)[group].result(timeout=20)
    assert [(tp.partition, tp.offset, tp.error) for tp in result.topic_partitions] == [(0, 3, None), (1, 8, None)]
    committed = committed_offsets(bootstrap, group)
    assert committed == {(topic, 0): 3, (topic, 1): 8}, committed

    latest = a.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in range(2)}, request_timeout=15)
    high_watermarks = {(tp.topic, tp.partition): f.result(timeout=20).offset for tp, f in latest.items()}
    lag = {tp: high_watermarks[tp] - committed[tp] for tp in committed}
    assert lag == {(topic, 0): 7, (topic, 1): 2}, (high_watermarks, committed)

    resumed = ConfluentGroupMember(bootstrap, topic, group, commit="none", client_id="after-reset")
    members.append(resumed)
    resumed.wait_for_records(sum(lag.values()), timeout_s=GROUP_FORM_TIMEOUT_S)
    settle([resumed])
    assert_each_once("member after the reset", resumed.records,
                     [(p, o, v) for p, o, v in produced if o >= {0: 3, 1: 8}[p]])


# ------------------------------------------------------------------ 6. clean leave


@pytest.mark.parametrize("leaver", ["confluent-kafka", "kafka-python", pytest.param("java", marks=pytest.mark.java)])
def test_remaining_member_gets_all_partitions_soon_after_the_other_closes(strom, members, leaver, request):
    bootstrap, topic, group = strom.bootstrap, "leave-topic", "leave-group"
    create_topic(bootstrap, topic, partitions=4)
    # 45 s is Kafka's default; set explicitly so "well before the session timeout" is meaningful.
    stayer = ConfluentGroupMember(bootstrap, topic, group, client_id="stayer", **{"session.timeout.ms": 45000})
    members.append(stayer)
    if leaver == "confluent-kafka":
        leaving = ConfluentGroupMember(bootstrap, topic, group, client_id="leaver", **{"session.timeout.ms": 45000})
    elif leaver == "kafka-python":
        leaving = KafkaPythonGroupMember(bootstrap, topic, group, client_id="leaver", session_timeout_ms=45000)
    else:
        leaving = JavaGroupMember(request.getfixturevalue("java_classpath"), bootstrap, topic, group,
                                  session_timeout_ms=45000, client_id="leaver")
    members.append(leaving)
    described = wait_for_stable_group(bootstrap, group, {"stayer": 2, "leaver": 2}, timeout_s=GROUP_FORM_TIMEOUT_S)
    stayer.wait_for_assignment(group_assignment(described)["stayer"], timeout_s=20)

    closed_at = time.monotonic()
    leaving.close()
    if isinstance(leaving, JavaGroupMember):
        assert leaving.closed_cleanly, f"java member did not close cleanly\n{leaving.stderr_tail()}"
    taken_over_at = stayer.wait_for_assignment([0, 1, 2, 3], timeout_s=20)
    print(f"{leaver} left: stayer owned all 4 partitions {taken_over_at - closed_at:.1f}s after close()")
    described = wait_for_stable_group(bootstrap, group, {"stayer": 4}, timeout_s=10)
    assert len(described.members) == 1

    produced = produce_text(bootstrap, topic, text_records("after-leave", 4, 5))
    stayer.wait_for_records(len(produced), timeout_s=20)
    settle([stayer])
    assert_each_once("stayer after the leave", stayer.records, produced)
