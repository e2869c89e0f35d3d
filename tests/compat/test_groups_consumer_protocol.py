"""KIP-848 consumer groups (`group.protocol=consumer`: ConsumerGroupHeartbeat and
ConsumerGroupDescribe, server-side assignors) as real clients use them — Java kafka-clients
3.9.1 (its AsyncKafkaConsumer) and confluent-kafka (librdkafka 2.16) — and how they meet
classic groups; plus the classic features that KIP-848 replaces and that clients still use:
static membership (KIP-345) and cooperative rebalancing (KIP-429).

Consumer-protocol tests run the broker with a 10 s `group.consumer.session.timeout.ms` and a
1 s `group.consumer.heartbeat.interval.ms`, so a dead member is noticed quickly and a new
assignment reaches members within a second or two. Members and helpers come from compatlib
and test_groups.py (same records, same checks); what the broker says about a group is read
with confluent-kafka's AdminClient, which describes consumer-protocol groups with
ConsumerGroupDescribe. Every wait is bounded; members are closed (Java: killed) before the
broker is.
"""

from __future__ import annotations

import signal
import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupType, KafkaError, KafkaException

from compatlib import (
    admin,
    ConfluentGroupMember,
    JavaGroupMember,
    JavaGroupMemberWithProperties,
    KafkaPythonGroupMember,
    committed_offsets,
    create_topic,
    describe_group,
    group_assignment,
    produce_text,
    wait_for_stable_group,
    wait_until,
)
from test_groups import (
    GROUP_FORM_TIMEOUT_S,
    assert_each_once,
    committed_after_restart,
    positions,
    settle,
    text_records,
    wait_for_total,
)

# Broker settings for consumer-protocol groups: a dead member is fenced after 10 s (Kafka's
# default is 45 s), and members heartbeat every second, so reassignments propagate fast.
CONSUMER_SESSION_TIMEOUT_MS = 10_000
CONSUMER_HEARTBEAT_INTERVAL_MS = 1_000
BROKER_SETTINGS = {
    "group.consumer.session.timeout.ms": CONSUMER_SESSION_TIMEOUT_MS,
    "group.consumer.heartbeat.interval.ms": CONSUMER_HEARTBEAT_INTERVAL_MS,
}
CONSUMER = {"group.protocol": "consumer"}
# Classic static members: long enough that a restarted process rejoins well inside it (JVM
# start-up is a few seconds), short enough to stay under group.max.session.timeout.ms.
STATIC_SESSION_TIMEOUT_MS = 30_000
COOPERATIVE_STICKY_JAVA = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"


@pytest.fixture
def strom848(strom_factory):
    """A fresh broker with short consumer-protocol session and heartbeat settings."""
    return strom_factory(settings=BROKER_SETTINGS)


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


def java_consumer(classpath, bootstrap, topic, group, client_id, commit="sync", **properties):
    """A Java member speaking the consumer protocol (no session timeout or assignor strategy:
    that consumer refuses them)."""
    return JavaGroupMemberWithProperties(
        classpath, bootstrap, topic, group, {**CONSUMER, **properties}, commit=commit, client_id=client_id
    )


def confluent_consumer_member(bootstrap, topic, group, client_id, commit="sync", **extra):
    return ConfluentGroupMember(bootstrap, topic, group, commit=commit, client_id=client_id, **CONSUMER, **extra)


def with_stderr(e: AssertionError, *java_members) -> AssertionError:
    tails = "".join(f"\n{m.name} stderr:\n{m.stderr_tail()}" for m in java_members)
    return AssertionError(f"{e}{tails}")


def wait_for_error(member, timeout_s: float = 30) -> BaseException:
    """Waits until `member`'s client failed; returns the error."""
    wait_until(f"{member.name} to fail (events {member.events}, records {len(member.records)})",
               lambda: member.error is not None, timeout_s)
    return member.error


def kafka_error_code(e: BaseException):
    """The KafkaError code of a confluent-kafka KafkaException."""
    assert isinstance(e, KafkaException), repr(e)
    return e.args[0].code()


# ------------------------------------------------------------------ 1. Java + confluent-kafka


@pytest.mark.java
def test_java_and_confluent_consumer_protocol_members_split_partitions_and_survivor_takes_over_after_kill9(
    strom848, java_classpath, members
):
    bootstrap, topic, group = strom848.bootstrap, "cp-split-topic", "cp-split-group"
    create_topic(bootstrap, topic, partitions=4)
    java = java_consumer(java_classpath, bootstrap, topic, group, "java-member")
    members.append(java)
    confluent = confluent_consumer_member(bootstrap, topic, group, "confluent-member")
    members.append(confluent)

    # The broker's uniform assignor gives each member two partitions.
    try:
        described = wait_for_stable_group(
            bootstrap, group, {"java-member": 2, "confluent-member": 2}, timeout_s=GROUP_FORM_TIMEOUT_S
        )
        owned = group_assignment(described)
        java.wait_for_assignment(owned["java-member"], timeout_s=20)
        confluent.wait_for_assignment(owned["confluent-member"], timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    assert described.type == ConsumerGroupType.CONSUMER, described.type
    assert described.partition_assignor == "uniform", described.partition_assignor
    assert sorted(owned["java-member"] + owned["confluent-member"]) == [0, 1, 2, 3], owned

    first = produce_text(bootstrap, topic, text_records("first", 4, 50))
    wait_for_total("the 200 first-phase records", [java, confluent], len(first), timeout_s=30)
    settle([java, confluent])
    for m, mine in ((java, owned["java-member"]), (confluent, owned["confluent-member"])):
        foreign = sorted({r["p"] for r in m.records} - set(mine))
        assert not foreign, f"{m.name} got records of partitions {foreign} it was not assigned ({mine})"
    overlap = sorted(set(positions(java.records)) & set(positions(confluent.records)))
    assert not overlap, f"records delivered to both members: {overlap[:10]}"
    assert_each_once("first phase, both members", java.records + confluent.records, first)

    # Commits through the consumer protocol (OffsetCommit with the member epoch).
    wait_until(
        f"java member to commit offset 50 on {owned['java-member']}",
        lambda: all(java.committed.get(p) == 50 for p in owned["java-member"]),
        timeout_s=20,
    )
    wait_until("offsets 50 committed on all partitions",
               lambda: committed_offsets(bootstrap, group) == {(topic, p): 50 for p in range(4)}, timeout_s=20)

    java.kill()
    killed_at = time.monotonic()
    before = len(confluent.records)
    second = produce_text(bootstrap, topic, text_records("second", 4, 50))
    taken_over_at = confluent.wait_for_assignment(
        [0, 1, 2, 3], timeout_s=CONSUMER_SESSION_TIMEOUT_MS / 1000 + 20
    )
    took = taken_over_at - killed_at
    print(f"survivor owned all 4 partitions {took:.1f}s after kill -9 "
          f"(group.consumer.session.timeout.ms={CONSUMER_SESSION_TIMEOUT_MS})")
    # The dead member's last heartbeat was at most one interval before the kill.
    earliest = (CONSUMER_SESSION_TIMEOUT_MS - CONSUMER_HEARTBEAT_INTERVAL_MS) / 1000 - 0.5
    assert took >= earliest, f"partitions moved {took:.1f}s after the kill, before the session could expire"
    described = wait_for_stable_group(bootstrap, group, {"confluent-member": 4}, timeout_s=20)
    assert len(described.members) == 1, described.members

    wait_for_total("the 200 second-phase records", [confluent], before + len(second), timeout_s=30)
    settle([confluent])
    assert_each_once("second phase, survivor", confluent.records[before:], second)
    assert_each_once("both phases, both members", java.records + confluent.records, first + second)


# ------------------------------------------------------------------ 2. pub/sub


@pytest.mark.java
def test_two_consumer_protocol_groups_each_receive_every_record(strom848, java_classpath, members):
    bootstrap, topic = strom848.bootstrap, "cp-pubsub-topic"
    create_topic(bootstrap, topic, partitions=3)
    before = produce_text(bootstrap, topic, text_records("before", 3, 100))
    a = confluent_consumer_member(bootstrap, topic, "cp-pubsub-confluent", "pubsub-confluent", commit="auto")
    members.append(a)
    b = java_consumer(java_classpath, bootstrap, topic, "cp-pubsub-java", "pubsub-java", commit="auto")
    members.append(b)
    try:
        for m in (a, b):
            m.wait_for_records(len(before), timeout_s=GROUP_FORM_TIMEOUT_S)
    except AssertionError as e:
        raise with_stderr(e, b) from None
    after = produce_text(bootstrap, topic, text_records("after", 3, 10))
    for m in (a, b):
        m.wait_for_records(len(before) + len(after), timeout_s=30)
    settle([a, b])
    for m in (a, b):
        assert_each_once(f"{m.name} in its own group", m.records, before + after)
    for group, client in (("cp-pubsub-confluent", "pubsub-confluent"), ("cp-pubsub-java", "pubsub-java")):
        d = describe_group(bootstrap, group)
        assert d.type == ConsumerGroupType.CONSUMER, (group, d.type)
        assert group_assignment(d) == {client: [0, 1, 2]}, group_assignment(d)


# ------------------------------------------------------------------ 3. offsets and restarts


def commit_explicitly_consumer_protocol(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    """Like test_groups.commit_explicitly, through the consumer protocol: a confluent-kafka
    member waits for its assignment, commits `offsets` synchronously (OffsetCommit with its
    member epoch) and leaves."""
    from compatlib import confluent_consumer
    from confluent_kafka import TopicPartition

    c = confluent_consumer(bootstrap, **{"group.id": group, "client.id": f"commit-{group}", **CONSUMER})
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


def first_offsets_consumer_protocol(bootstrap: str, topic: str, group: str, partitions: int, end: int,
                                    timeout_s: float = 60) -> dict[int, int]:
    """test_groups.first_offsets with a consumer-protocol member: reads until every partition
    reached `end`; returns {partition: first offset delivered} and closes (leaves)."""
    from compatlib import confluent_consumer

    c = confluent_consumer(bootstrap, **{"group.id": group, "client.id": f"resume-{group}", **CONSUMER})
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


@pytest.mark.java
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_offsets_committed_through_consumer_protocol_survive_broker_restart_and_new_member_resumes_there(
    strom_factory, java_classpath, members, stop
):
    strom = strom_factory(settings=BROKER_SETTINGS)
    bootstrap, topic, group = strom.bootstrap, "cp-restart-topic", "cp-restart-group"
    create_topic(bootstrap, topic, partitions=2)
    produced = produce_text(bootstrap, topic, text_records("r", 2, 20))
    sig = signal.SIGTERM if stop == "sigterm" else signal.SIGKILL

    # 1. confluent-kafka commits chosen offsets; after the restart a new member starts there.
    commit_explicitly_consumer_protocol(bootstrap, topic, group, {0: 7, 1: 13})
    assert committed_offsets(bootstrap, group) == {(topic, 0): 7, (topic, 1): 13}
    strom.kill(sig)
    strom.restart()
    assert committed_after_restart(bootstrap, group) == {(topic, 0): 7, (topic, 1): 13}
    assert first_offsets_consumer_protocol(bootstrap, topic, group, 2, end=20) == {0: 7, 1: 13}

    # 2. A Java member resumes at 7/13 too, reads to the end and commits (commitSync after
    # each poll); after another restart a new member gets only what was produced since.
    java = java_consumer(java_classpath, bootstrap, topic, group, "java-resumer")
    members.append(java)
    want = [(p, o, v) for p, o, v in produced if o >= {0: 7, 1: 13}[p]]
    try:
        java.wait_for_records(len(want), timeout_s=GROUP_FORM_TIMEOUT_S)
        settle([java])
        wait_until("java commits 20/20", lambda: java.committed == {0: 20, 1: 20}, timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    assert_each_once("java member resuming at 7/13", java.records, want)
    java.close()
    assert java.closed_cleanly, f"java member did not close cleanly\n{java.stderr_tail()}"
    assert committed_offsets(bootstrap, group) == {(topic, 0): 20, (topic, 1): 20}
    strom.kill(sig)
    strom.restart()
    assert committed_after_restart(bootstrap, group) == {(topic, 0): 20, (topic, 1): 20}
    produce_text(bootstrap, topic, text_records("r2", 2, 5))
    assert first_offsets_consumer_protocol(bootstrap, topic, group, 2, end=25) == {0: 20, 1: 20}


@pytest.mark.java
def test_consumer_protocol_members_keep_their_partitions_across_broker_kill9_and_restart(
    strom848, java_classpath, members
):
    """Kafka stores a consumer group's members, epochs and assignments in __consumer_offsets,
    so after a coordinator restart the members' heartbeats are accepted as they are: nobody
    loses partitions, and consumption goes on with nothing lost or repeated."""
    bootstrap, topic, group = strom848.bootstrap, "cp-live-restart-topic", "cp-live-restart-group"
    create_topic(bootstrap, topic, partitions=4)
    java = java_consumer(java_classpath, bootstrap, topic, group, "java-live")
    members.append(java)
    confluent = confluent_consumer_member(bootstrap, topic, group, "confluent-live")
    members.append(confluent)
    try:
        described = wait_for_stable_group(bootstrap, group, {"java-live": 2, "confluent-live": 2},
                                          timeout_s=GROUP_FORM_TIMEOUT_S)
        owned = group_assignment(described)
        java.wait_for_assignment(owned["java-live"], timeout_s=20)
        confluent.wait_for_assignment(owned["confluent-live"], timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    member_ids = sorted(m.member_id for m in described.members)
    first = produce_text(bootstrap, topic, text_records("live1", 4, 25))
    wait_for_total("records before the restart", [java, confluent], len(first), timeout_s=30)
    events_before = {m.name: len(m.events) for m in (java, confluent)}

    strom848.kill(signal.SIGKILL)
    strom848.restart()
    second = produce_text(bootstrap, topic, text_records("live2", 4, 25))
    try:
        wait_for_total("records after the restart", [java, confluent], len(first) + len(second), timeout_s=45)
    except AssertionError as e:
        raise with_stderr(e, java) from None
    settle([java, confluent], seconds=3)  # a few heartbeats on the restarted broker
    for m in (java, confluent):
        assert m.events[events_before[m.name]:] == [], f"{m.name} saw a rebalance after the restart: {m.events}"
    d = wait_for_stable_group(bootstrap, group, {"java-live": 2, "confluent-live": 2}, timeout_s=20)
    assert group_assignment(d) == owned, group_assignment(d)
    assert sorted(m.member_id for m in d.members) == member_ids, "members were replaced by the restart"
    assert_each_once("both members across the restart", java.records + confluent.records, first + second)


# ------------------------------------------------------------------ 4. protocol mismatch


@pytest.mark.java
def test_group_refuses_members_of_the_other_protocol_until_empty_then_switches_and_keeps_offsets(
    strom848, java_classpath, members
):
    bootstrap, topic = strom848.bootstrap, "mix-topic"
    create_topic(bootstrap, topic, partitions=2)
    produced = produce_text(bootstrap, topic, text_records("mix", 2, 10))

    # A consumer-protocol group with a member: classic JoinGroup gets INCONSISTENT_GROUP_PROTOCOL.
    owner = confluent_consumer_member(bootstrap, topic, "mix-consumer", "consumer-owner")
    members.append(owner)
    owner.wait_for_records(len(produced), timeout_s=GROUP_FORM_TIMEOUT_S)
    wait_until("owner commits 10/10",
               lambda: committed_offsets(bootstrap, "mix-consumer") == {(topic, 0): 10, (topic, 1): 10}, timeout_s=20)
    # A classic group with a member: a consumer-protocol heartbeat gets GROUP_ID_NOT_FOUND.
    classic_owner = ConfluentGroupMember(bootstrap, topic, "mix-classic", client_id="classic-owner")
    members.append(classic_owner)
    classic_owner.wait_for_assignment([0, 1], timeout_s=GROUP_FORM_TIMEOUT_S)

    intruders = {
        "confluent classic": ConfluentGroupMember(bootstrap, topic, "mix-consumer", client_id="classic-intruder"),
        "kafka-python classic": KafkaPythonGroupMember(bootstrap, topic, "mix-consumer", client_id="kp-intruder"),
        "java classic": JavaGroupMember(java_classpath, bootstrap, topic, "mix-consumer", client_id="java-classic-intruder"),
        "confluent consumer": confluent_consumer_member(bootstrap, topic, "mix-classic", "consumer-intruder"),
        "java consumer": java_consumer(java_classpath, bootstrap, topic, "mix-classic", "java-consumer-intruder"),
    }
    members.extend(intruders.values())
    errors = {}
    try:
        for name, m in intruders.items():
            errors[name] = wait_for_error(m, timeout_s=GROUP_FORM_TIMEOUT_S)
    except AssertionError as e:
        raise with_stderr(e, intruders["java classic"], intruders["java consumer"]) from None
    print("errors surfaced:\n  " + "\n  ".join(f"{k}: {v!r}" for k, v in errors.items()))

    from kafka.errors import InconsistentGroupProtocolError

    assert kafka_error_code(errors["confluent classic"]) == KafkaError.INCONSISTENT_GROUP_PROTOCOL, errors
    assert isinstance(errors["kafka-python classic"], InconsistentGroupProtocolError), errors
    assert "InconsistentGroupProtocolException" in str(errors["java classic"]), errors
    # librdkafka treats a ConsumerGroupHeartbeat GROUP_ID_NOT_FOUND as fatal.
    assert kafka_error_code(errors["confluent consumer"]) == KafkaError._FATAL, errors
    assert "The group id does not exist" in str(errors["confluent consumer"]), errors
    assert "GroupIdNotFoundException" in str(errors["java consumer"]), errors
    for name, m in intruders.items():
        assert not m.records and not m.assignment, f"{name} was given {m.assignment} and {len(m.records)} records"
    # The owners were not disturbed.
    assert group_assignment(describe_group(bootstrap, "mix-consumer")) == {"consumer-owner": [0, 1]}
    assert group_assignment(describe_group(bootstrap, "mix-classic")) == {"classic-owner": [0, 1]}
    assert owner.assignment == [0, 1] and classic_owner.assignment == [0, 1]
    for m in intruders.values():
        if isinstance(m, JavaGroupMember):
            m.kill()
        else:
            m.close()

    # Empty groups switch protocol and keep their committed offsets.
    owner.close()
    wait_until("mix-consumer Empty", lambda: describe_group(bootstrap, "mix-consumer").state == ConsumerGroupState.EMPTY,
               timeout_s=15)
    more = produce_text(bootstrap, topic, text_records("mix2", 2, 5))
    classic_now = ConfluentGroupMember(bootstrap, topic, "mix-consumer", commit="sync", client_id="classic-now")
    members.append(classic_now)
    classic_now.wait_for_records(len(more), timeout_s=GROUP_FORM_TIMEOUT_S)
    settle([classic_now])
    assert_each_once("classic member of the former consumer group", classic_now.records, more)
    d = describe_group(bootstrap, "mix-consumer")
    assert d.type == ConsumerGroupType.CLASSIC, d.type
    wait_until("classic-now commits 15/15",
               lambda: committed_offsets(bootstrap, "mix-consumer") == {(topic, 0): 15, (topic, 1): 15}, timeout_s=20)

    classic_owner.close()
    classic_now.close()
    for g in ("mix-classic", "mix-consumer"):
        wait_until(f"{g} Empty", lambda g=g: describe_group(bootstrap, g).state == ConsumerGroupState.EMPTY, timeout_s=15)
    last = produce_text(bootstrap, topic, text_records("mix3", 2, 5))
    # mix-classic committed nothing (auto commit every 5 s may have run): compare with its offsets.
    classic_committed = committed_offsets(bootstrap, "mix-classic")
    consumer_now = confluent_consumer_member(bootstrap, topic, "mix-consumer", "consumer-again")
    members.append(consumer_now)
    consumer_now.wait_for_records(len(last), timeout_s=GROUP_FORM_TIMEOUT_S)
    settle([consumer_now])
    assert_each_once("consumer-protocol member of the former classic group", consumer_now.records, last)
    d = describe_group(bootstrap, "mix-consumer")
    assert d.type == ConsumerGroupType.CONSUMER, d.type
    converted = confluent_consumer_member(bootstrap, topic, "mix-classic", "consumer-in-classic")
    members.append(converted)
    resume_at = {p: classic_committed.get((topic, p), 0) for p in (0, 1)}
    want = [(p, o, v) for p, o, v in produced + more + last if o >= resume_at[p]]
    converted.wait_for_records(len(want), timeout_s=GROUP_FORM_TIMEOUT_S)
    settle([converted])
    assert_each_once(f"consumer-protocol member of the emptied classic group (resume at {resume_at})",
                     converted.records, want)


# ------------------------------------------------------------------ 5. classic static membership


@pytest.mark.java
def test_restarted_static_member_gets_its_partitions_back_without_revoking_the_other(strom, java_classpath, members):
    bootstrap, topic, group = strom.bootstrap, "static-topic", "static-group"
    create_topic(bootstrap, topic, partitions=4)

    def start(instance: str, generation: int) -> JavaGroupMemberWithProperties:
        m = JavaGroupMemberWithProperties(
            java_classpath, bootstrap, topic, group, {"group.instance.id": instance}, commit="sync",
            session_timeout_ms=STATIC_SESSION_TIMEOUT_MS, client_id=f"{instance}-run{generation}",
        )
        members.append(m)
        return m

    current = {"static-a": start("static-a", 1), "static-b": start("static-b", 1)}
    try:
        described = wait_for_stable_group(
            bootstrap, group, {"static-a-run1": 2, "static-b-run1": 2}, timeout_s=GROUP_FORM_TIMEOUT_S
        )
        owned = {k.removesuffix("-run1"): v for k, v in group_assignment(described).items()}
        for instance, m in current.items():
            m.wait_for_assignment(owned[instance], timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, *current.values()) from None
    assert sorted(m.group_instance_id for m in described.members) == ["static-a", "static-b"], described.members
    produced = produce_text(bootstrap, topic, text_records("s1", 4, 10))
    wait_for_total("first records", list(current.values()), len(produced), timeout_s=30)

    # Restart each in turn (one of them is the group leader): close without LeaveGroup (a
    # static Java member does not send one) and start a new process with the same instance id.
    for restarted, other in (("static-a", "static-b"), ("static-b", "static-a")):
        old = current[restarted]
        other_events = list(current[other].events)
        old_member_id = next(m.member_id for m in describe_group(bootstrap, group).members
                             if m.group_instance_id == restarted)
        old.close()
        assert old.closed_cleanly, f"{old.name} did not close cleanly\n{old.stderr_tail()}"
        closed_at = time.monotonic()
        new = start(restarted, 2)
        try:
            new.wait_for_assignment(owned[restarted], timeout_s=20)
        except AssertionError as e:
            raise with_stderr(e, new) from None
        back_after = time.monotonic() - closed_at
        print(f"{restarted} back with {owned[restarted]} {back_after:.1f}s after close "
              f"(session.timeout.ms={STATIC_SESSION_TIMEOUT_MS})")
        assert back_after < STATIC_SESSION_TIMEOUT_MS / 1000, "rejoined only after the session timeout"
        current[restarted] = new
        d = describe_group(bootstrap, group)
        assert d.state == ConsumerGroupState.STABLE, d.state
        by_instance = {m.group_instance_id: m for m in d.members}
        assert sorted(by_instance) == ["static-a", "static-b"], d.members
        assert by_instance[restarted].member_id != old_member_id, "the new process kept the old member id"
        # Kafka keeps the replaced member's client id and host (ClassicGroup.replaceStaticMember),
        # so the assignment is looked up by instance id.
        assert sorted(tp.partition for tp in by_instance[restarted].assignment.topic_partitions) == owned[restarted]
        settle([current[other]], seconds=2)
        assert current[other].events == other_events, (
            f"{other} saw a rebalance when {restarted} restarted: {current[other].events[len(other_events):]}"
        )
        assert new.events[0][1:] == ("assigned", owned[restarted]), new.events

    before = {k: len(m.records) for k, m in current.items()}
    more = produce_text(bootstrap, topic, text_records("s2", 4, 10))
    wait_for_total("records after the restarts", list(current.values()), sum(before.values()) + len(more), timeout_s=30)
    settle(list(current.values()))
    for instance, m in current.items():
        assert sorted({r["p"] for r in m.records}) == owned[instance], f"{m.name} read {sorted({r['p'] for r in m.records})}"
    assert_each_once("after the restarts", [r for m in current.values() for r in m.records if r["v"].startswith("s2-")], more)
    # The restarted members resumed at the offsets their predecessors committed.
    assert not [r for m in current.values() for r in m.records if r["v"].startswith("s1-")], "s1 records read twice"


# ------------------------------------------------------------------ 6. classic cooperative-sticky


@pytest.mark.java
@pytest.mark.parametrize("first", ["java", "confluent-kafka"])
def test_cooperative_sticky_member_keeps_unmoved_partitions_when_another_joins(strom, java_classpath, members, first):
    bootstrap, topic, group = strom.bootstrap, "coop-topic", "coop-group"
    create_topic(bootstrap, topic, partitions=4)

    def java():
        return JavaGroupMemberWithProperties(
            java_classpath, bootstrap, topic, group, {"partition.assignment.strategy": COOPERATIVE_STICKY_JAVA},
            commit="sync", client_id="coop-java",
        )

    def confluent():
        return ConfluentGroupMember(bootstrap, topic, group, commit="sync", client_id="coop-confluent",
                                    **{"partition.assignment.strategy": "cooperative-sticky"})

    make = {"java": java, "confluent-kafka": confluent}
    second_kind = "confluent-kafka" if first == "java" else "java"
    java_members = []
    a = make[first]()
    members.append(a)
    java_members += [a] if first == "java" else []
    try:
        a.wait_for_assignment([0, 1, 2, 3], timeout_s=GROUP_FORM_TIMEOUT_S)
    except AssertionError as e:
        raise with_stderr(e, *java_members) from None
    assert describe_group(bootstrap, group).partition_assignor == "cooperative-sticky"
    one = produce_text(bootstrap, topic, text_records("c1", 4, 25))
    a.wait_for_records(len(one), timeout_s=30)
    events_before = len(a.events)

    b = make[second_kind]()
    members.append(b)
    java_members += [b] if second_kind == "java" else []
    try:
        described = wait_for_stable_group(
            bootstrap, group, {"coop-java": 2, "coop-confluent": 2}, timeout_s=GROUP_FORM_TIMEOUT_S
        )
        owned = group_assignment(described)
        name = {"java": "coop-java", "confluent-kafka": "coop-confluent"}
        a.wait_for_assignment(owned[name[first]], timeout_s=20)
        b.wait_for_assignment(owned[name[second_kind]], timeout_s=20)
    except AssertionError as e:
        raise with_stderr(e, *java_members) from None
    # Only the moved partitions were revoked from the first member, never all of them.
    revoked = sorted(p for _, kind, ps in a.events[events_before:] if kind in ("revoked", "lost") for p in ps)
    assert revoked == owned[name[second_kind]], (
        f"{a.name} revoked {revoked}, but only {owned[name[second_kind]]} moved; events {a.events}"
    )
    assert not [e for e in a.events[events_before:] if e[1] == "lost"], a.events

    two = produce_text(bootstrap, topic, text_records("c2", 4, 25))
    wait_for_total("all records", [a, b], len(one) + len(two), timeout_s=30)
    settle([a, b])
    assert_each_once("both members, both phases", a.records + b.records, one + two)


# ------------------------------------------------------------------ 7. describe and list


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_admin_describes_consumer_protocol_group_with_type_state_members_and_assignments(strom848, members, assignor):
    bootstrap, topic, group = strom848.bootstrap, "describe-topic", f"describe-{assignor}"
    create_topic(bootstrap, topic, partitions=4)
    # "uniform" is the broker's default: the members name no assignor then.
    remote = {} if assignor == "uniform" else {"group.remote.assignor": assignor}
    dynamic = confluent_consumer_member(bootstrap, topic, group, "describe-dynamic", commit="none", **remote)
    members.append(dynamic)
    static = confluent_consumer_member(bootstrap, topic, group, "describe-static", commit="none",
                                       **remote, **{"group.instance.id": "describe-instance"})
    members.append(static)

    d = wait_for_stable_group(bootstrap, group, {"describe-dynamic": 2, "describe-static": 2},
                              timeout_s=GROUP_FORM_TIMEOUT_S)
    owned = group_assignment(d)
    dynamic.wait_for_assignment(owned["describe-dynamic"], timeout_s=20)
    static.wait_for_assignment(owned["describe-static"], timeout_s=20)
    d = describe_group(bootstrap, group)  # again, now that both members run their assignment
    assert d.type == ConsumerGroupType.CONSUMER, d.type
    assert d.state == ConsumerGroupState.STABLE, d.state
    assert d.partition_assignor == assignor, d.partition_assignor
    assert d.is_simple_consumer_group is False
    assert (d.coordinator.host, d.coordinator.port) == ("127.0.0.1", strom848.port), d.coordinator
    assert sorted(owned["describe-dynamic"] + owned["describe-static"]) == [0, 1, 2, 3], owned
    if assignor == "range":
        for partitions in owned.values():
            assert partitions == list(range(partitions[0], partitions[0] + 2)), f"range gave {owned}"
    by_client = {m.client_id: m for m in d.members}
    assert by_client["describe-dynamic"].group_instance_id is None, by_client["describe-dynamic"]
    assert by_client["describe-static"].group_instance_id == "describe-instance", by_client["describe-static"]
    member_ids = {m.member_id for m in d.members}
    assert len(member_ids) == 2 and "" not in member_ids, member_ids
    for m in d.members:
        assert "127.0.0.1" in m.host, m.host
        assert m.target_assignment is not None, f"{m.client_id}: no target assignment"
        target = sorted((tp.topic, tp.partition) for tp in m.target_assignment.topic_partitions)
        current = sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
        assert target == current, f"{m.client_id}: target {target} but current {current} in a Stable group"

    # Listing: confluent-kafka and kafka-python (ListGroups v5) see the group's type.
    a = admin(bootstrap)
    listed = {g.group_id: g for g in a.list_consumer_groups(request_timeout=15).result(timeout=20).valid}
    assert listed[group].type == ConsumerGroupType.CONSUMER, listed[group]
    assert listed[group].state == ConsumerGroupState.STABLE, listed[group]
    only_classic = a.list_consumer_groups(types={ConsumerGroupType.CLASSIC}, request_timeout=15).result(timeout=20)
    assert group not in {g.group_id for g in only_classic.valid}
    # DeleteGroups refuses a consumer group with members.
    with pytest.raises(KafkaException) as refused:
        a.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, refused.value

    from kafka import KafkaAdminClient

    kp = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="describe-kafka-python")
    try:
        consumer_groups = {g["group_id"]: g for g in kp.list_groups(types_filter=["consumer"])}
        assert group in consumer_groups, consumer_groups
        assert consumer_groups[group]["group_type"].lower() == "consumer", consumer_groups[group]
        assert consumer_groups[group]["group_state"] == "Stable", consumer_groups[group]
        assert group not in {g["group_id"] for g in kp.list_groups(types_filter=["classic"])}
    finally:
        kp.close()


def test_classic_describe_groups_of_a_consumer_protocol_group_answers_as_kafka(strom848, members):
    """kafka-python describes groups with DescribeGroups only (the classic API; it has no
    ConsumerGroupDescribe). Kafka 4.x answers it for a consumer-protocol group as for a group
    that is not there: v6 with GROUP_ID_NOT_FOUND "Group <id> is not a classic group.", v0-v5
    with state Dead and no error; never with a live state and an empty member list."""
    from kafka import KafkaAdminClient
    from kafka.errors import GroupIdNotFoundError

    bootstrap, topic, group = strom848.bootstrap, "classic-describe-topic", "classic-describe-group"
    create_topic(bootstrap, topic, partitions=2)
    m = confluent_consumer_member(bootstrap, topic, group, "classic-describe-member", commit="none")
    members.append(m)
    m.wait_for_assignment([0, 1], timeout_s=GROUP_FORM_TIMEOUT_S)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="classic-describe-kafka-python")
    try:
        described = kp.describe_groups([group])[group]
    finally:
        kp.close()
    print(f"kafka-python describe_groups: {described}")
    assert not described["members"], described
    assert described["error"] is not None or described["group_state"] == "Dead", (
        f"a consumer-protocol group described through DescribeGroups as {described['group_state']!r} "
        f"(protocol type {described['protocol_type']!r}) with no members and no error; Kafka answers "
        f"{GroupIdNotFoundError.__name__} 'Group {group} is not a classic group.' (v6) or Dead (v0-v5)"
    )
    if described["error"] is not None:
        assert "GroupIdNotFound" in described["error"] and "not a classic group" in described["error"], described
