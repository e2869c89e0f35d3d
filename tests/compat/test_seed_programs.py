"""The seed's three Java programs, unmodified, against strom.

The programs hard-code `bootstrap.servers=localhost:9092`, so these tests start their broker
on 127.0.0.1:9092 (advertised as such) and skip, saying so, if that port is taken. Each test
gets a fresh broker and data dir, so the offsets it checks are exact.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from confluent_kafka import ConsumerGroupState, KafkaException

from compatlib import committed_offsets, consume_confluent, describe_group, run_java, wait_until
from conftest import ROOT, port_is_free

pytestmark = pytest.mark.java

SEED_PORT = 9092
SEED_TOPIC = "quickstart-events"
SEED_FILE = Path(
    os.environ.get("STROM_SEED_FILE", ROOT.parent / "shared" / "seed" / "000_a994516eed9136c6.txt")
)
JAVA_DIR = Path(__file__).resolve().parent / "java"

# Lines as the seed's log.info calls print them through SeedLog ("INFO <Class> - <message>").
SENT_LINE = "INFO {cls} - 第{i}条消息"
ASYNC_CALLBACK_LINE = "INFO AsyncProducer - topic：quickstart-events,partition:0,offset:{offset}"
CONSUMER_LINE = re.compile(
    r"^INFO AutoCommitConsumer - topic:quickstart-events,offset:(\d+),key:null,value:(\d+)$"
)


@pytest.fixture
def seed_broker(strom_factory):
    if not port_is_free(SEED_PORT):
        pytest.skip(
            f"127.0.0.1:{SEED_PORT} is taken by another process; the seed programs hard-code "
            f"localhost:{SEED_PORT}, so they can only run against a broker there"
        )
    return strom_factory(port=SEED_PORT)


def stdout_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stdout.decode("utf-8").splitlines()


def seed_records(bootstrap: str, expected: int) -> list[tuple[int, int, bytes | None, bytes]]:
    records = consume_confluent(bootstrap, SEED_TOPIC, partitions=1, expected=expected, timeout_s=60)
    return [(r["p"], r["o"], r["k"], r["v"]) for r in records]


def test_seed_sync_producer_sends_ten_records_at_offsets_0_to_9(seed_broker, java_classpath):
    proc = run_java(java_classpath, "SyncProducer", [], timeout_s=120)
    assert stdout_lines(proc) == [SENT_LINE.format(cls="SyncProducer", i=i) for i in range(10)]
    # The topic was auto-created with Kafka's default of one partition; null keys, values "0".."9".
    assert seed_records(seed_broker.bootstrap, 10) == [(0, i, None, str(i).encode()) for i in range(10)]


def test_seed_async_producer_callback_logs_offsets_0_to_9(seed_broker, java_classpath):
    proc = run_java(java_classpath, "AsyncProducer", [], timeout_s=120)
    want = []
    for i in range(10):
        # The callback runs before future.get() returns, so its line comes first.
        want.append(ASYNC_CALLBACK_LINE.format(offset=i))
        want.append(SENT_LINE.format(cls="AsyncProducer", i=i))
    assert stdout_lines(proc) == want
    assert seed_records(seed_broker.bootstrap, 10) == [(0, i, None, str(i).encode()) for i in range(10)]


def test_seed_async_producer_after_sync_producer_continues_at_offset_10(seed_broker, java_classpath):
    run_java(java_classpath, "SyncProducer", [], timeout_s=120)
    proc = run_java(java_classpath, "AsyncProducer", [], timeout_s=120)
    callbacks = [line for line in stdout_lines(proc) if "offset:" in line]
    assert callbacks == [ASYNC_CALLBACK_LINE.format(offset=10 + i) for i in range(10)]
    assert seed_records(seed_broker.bootstrap, 20) == [
        (0, o, None, str(o % 10).encode()) for o in range(20)
    ]


class LineReader:
    """Runs a never-ending program in its own process group, collecting its stdout lines on a thread."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))

    def read(self, count: int, timeout_s: float) -> list[str]:
        out, deadline = [], time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            try:
                out.append(self.lines.get(timeout=0.2))
            except queue.Empty:
                pass
        return out

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=30)


class JavaLineReader(LineReader):
    """A seed Java program as a LineReader."""

    def __init__(self, classpath: str, main: str):
        super().__init__(["java", "-Xmx256m", "-XX:+UseSerialGC", "-Dfile.encoding=UTF-8", "-cp", classpath, main])


SEED_GROUP = "quickstart-events-group"
# A SIGKILLed member stays in the group until its session times out (kafka-clients 3.9
# default session.timeout.ms=45000); only then can the group rebalance to a new member.
SEED_SESSION_TIMEOUT_S = 45


def wait_for_seed_member_assigned(bootstrap: str, timeout_s: float) -> None:
    """Waits until the seed group is Stable with a member that owns quickstart-events-0."""

    def assigned():
        try:
            d = describe_group(bootstrap, SEED_GROUP)
        except KafkaException:
            return None
        owned = [(tp.topic, tp.partition) for m in d.members for tp in m.assignment.topic_partitions]
        assigned.last = (d.state, owned)
        return d.state == ConsumerGroupState.STABLE and (SEED_TOPIC, 0) in owned

    assigned.last = None
    try:
        wait_until(f"group {SEED_GROUP} Stable with {SEED_TOPIC}-0 assigned", assigned, timeout_s, interval_s=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; last (state, assignment): {assigned.last}") from None


def parse_consumer_lines(lines: list[str]) -> list[tuple[int, str]]:
    parsed = [CONSUMER_LINE.match(line) for line in lines]
    assert all(parsed), f"unexpected AutoCommitConsumer output: {lines}"
    return [(int(m[1]), m[2]) for m in parsed]


def test_seed_auto_commit_consumer_resumes_from_committed_offset_after_restart(seed_broker, java_classpath):
    """The seed consumer sets no auto.offset.reset, so Kafka's default `latest` applies: a new
    group starts at the end of the log. So the consumer joins first and the producer runs once
    it owns the partition; after a kill -9 the next consumer resumes at the auto-committed offset."""
    bootstrap = seed_broker.bootstrap
    first = JavaLineReader(java_classpath, "AutoCommitConsumer")
    try:
        # Its subscription auto-creates the topic (one partition) through Metadata.
        wait_for_seed_member_assigned(bootstrap, timeout_s=60)
        run_java(java_classpath, "SyncProducer", [], timeout_s=120)  # offsets 0..9
        got = first.read(10, timeout_s=30)
        # auto.commit.interval.ms=1000 and poll(5 s): wait past the next poll so the commit lands.
        time.sleep(8)
    finally:
        first.kill()
    assert parse_consumer_lines(got) == [(i, str(i)) for i in range(10)]
    assert committed_offsets(bootstrap, SEED_GROUP) == {(SEED_TOPIC, 0): 10}

    run_java(java_classpath, "SyncProducer", [], timeout_s=120)  # offsets 10..19
    second = JavaLineReader(java_classpath, "AutoCommitConsumer")
    try:
        # The killed member still blocks the rebalance until its session expires.
        got = second.read(10, timeout_s=SEED_SESSION_TIMEOUT_S + 60)
        extra = second.read(1, timeout_s=6)  # past one more poll(5 s)
    finally:
        second.kill()
    assert parse_consumer_lines(got) == [(10 + i, str(i)) for i in range(10)]
    assert extra == [], f"consumer re-read records after restart: {extra}"


def java_blocks(text: str) -> list[list[str]]:
    blocks = re.findall(r"```java\n(.*?)```", text, flags=re.S)
    return [[line.strip() for line in b.splitlines() if line.strip()] for b in blocks]


def contains_run(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[k : k + len(needle)] == needle for k in range(len(haystack) - len(needle) + 1))


def test_seed_java_sources_contain_the_seed_code_verbatim():
    if not SEED_FILE.exists():
        pytest.skip(f"seed document not found at {SEED_FILE} (set STROM_SEED_FILE)")
    blocks = java_blocks(SEED_FILE.read_text("utf-8"))
    assert len(blocks) == 3, f"expected 3 java blocks in the seed, found {len(blocks)}"
    for block, cls in zip(blocks, ["SyncProducer", "AsyncProducer", "AutoCommitConsumer"]):
        source = [line.strip() for line in (JAVA_DIR / f"{cls}.java").read_text("utf-8").splitlines() if line.strip()]
        assert contains_run(source, block), f"{cls}.java does not contain the seed's code block verbatim"
