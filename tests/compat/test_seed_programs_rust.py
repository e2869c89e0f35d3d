"""The seed's three programs written with strom-client (crates/strom-client/examples/) print
what the Java originals print, against a broker on localhost:9092.

The expected lines are the ones test_seed_programs.py checks the Java programs against, so both
languages are held to the same output. The examples are built by `cargo build -p strom-client
--examples` (with or without --release; scripts/test.sh's cargo test step builds them).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from compatlib import built, committed_offsets, run_java
from test_seed_programs import (
    ASYNC_CALLBACK_LINE,
    LineReader,
    SEED_GROUP,
    SEED_TOPIC,
    SENT_LINE,
    parse_consumer_lines,
    seed_broker,  # noqa: F401 (fixture)
    seed_records,
    stdout_lines,
    wait_for_seed_member_assigned,
)


def example(name: str) -> Path:
    path = built(f"examples/{name}")
    if path is not None:
        return path
    pytest.fail(
        f"example {name} not built: run `cargo build --release -p strom-client --examples`",
        pytrace=False,
    )


def run_example(name: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(example(name))], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=True
    )


def test_rust_sync_producer_prints_what_the_java_one_prints(seed_broker):
    proc = run_example("sync_producer")
    assert stdout_lines(proc) == [SENT_LINE.format(cls="SyncProducer", i=i) for i in range(10)]
    # Like Java's producer, it let the broker auto-create the topic (one partition).
    assert seed_records(seed_broker.bootstrap, 10) == [(0, i, None, str(i).encode()) for i in range(10)]


def test_rust_async_producer_logs_each_callback_before_its_send_completes(seed_broker):
    proc = run_example("async_producer")
    want = []
    for i in range(10):
        want.append(ASYNC_CALLBACK_LINE.format(offset=i))
        want.append(SENT_LINE.format(cls="AsyncProducer", i=i))
    assert stdout_lines(proc) == want
    assert seed_records(seed_broker.bootstrap, 10) == [(0, i, None, str(i).encode()) for i in range(10)]


@pytest.mark.java
def test_rust_auto_commit_consumer_reads_java_records_and_resumes_after_kill(seed_broker, java_classpath):
    """As the Java seed consumer's test: the Rust consumer joins first (Kafka's default
    auto.offset.reset=latest), reads what the Java seed producer sends, auto-commits, is killed
    with SIGKILL, and a restarted one prints exactly the records produced meanwhile."""
    bootstrap = seed_broker.bootstrap
    first = LineReader([str(example("auto_commit_consumer"))])
    try:
        wait_for_seed_member_assigned(bootstrap, timeout_s=60)
        run_java(java_classpath, "SyncProducer", [], timeout_s=120)  # offsets 0..9
        got = first.read(10, timeout_s=30)
        time.sleep(8)  # past auto.commit.interval.ms=1000 and the next poll(5 s)
    finally:
        first.kill()
    assert parse_consumer_lines(got) == [(i, str(i)) for i in range(10)]
    assert committed_offsets(bootstrap, SEED_GROUP) == {(SEED_TOPIC, 0): 10}

    run_example("sync_producer")  # offsets 10..19, from the Rust producer this time
    second = LineReader([str(example("auto_commit_consumer"))])
    try:
        # The killed member holds the partition until its session (45 s) expires.
        got = second.read(10, timeout_s=45 + 60)
        extra = second.read(1, timeout_s=6)
    finally:
        second.kill()
    assert parse_consumer_lines(got) == [(10 + i, str(i)) for i in range(10)]
    assert extra == [], f"consumer re-read records after restart: {extra}"
