"""The committed partitioner data file equals what Java kafka-clients 3.9.1 computes today.

crates/strom-client/tests/data/java_partitions.txt holds 10,000 keys of varied shapes with
Java's `Utils.murmur2(key)` and `BuiltInPartitioner.partitionForKey(key, n)` for several
partition counts; the Rust producer's partitioner is checked against it by
crates/strom-client/tests/producer.rs (`default_partitioner_matches_java_for_10000_keys`).
This test regenerates the file live with java/PartitionerDump.java and requires it to be
byte-identical, so the committed file can never drift from Java. No broker is needed.

To regenerate after changing PartitionerDump.java (or the jar):

    java -cp 'tests/compat/.deps/classes:tests/compat/.deps/jars/*' PartitionerDump \\
        > crates/strom-client/tests/data/java_partitions.txt
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compatlib import run_java

pytestmark = pytest.mark.java

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "crates" / "strom-client" / "tests" / "data" / "java_partitions.txt"
KEYS = 10_000
PARTITION_COUNTS = [1, 3, 7, 12, 100]


def test_committed_partition_file_equals_java_kafka_clients_output(java_classpath):
    proc = run_java(java_classpath, "PartitionerDump", [], timeout_s=120)
    live = proc.stdout.decode("utf-8")
    committed = DATA.read_text("utf-8")

    live_lines, committed_lines = live.splitlines(), committed.splitlines()
    diffs = [
        (n + 1, c, j)
        for n, (c, j) in enumerate(zip(committed_lines, live_lines))
        if c != j
    ]
    assert not diffs and len(live_lines) == len(committed_lines) and live == committed, (
        f"{DATA.relative_to(ROOT)} differs from Java's output: {len(diffs)} differing lines, "
        f"{len(committed_lines)} committed vs {len(live_lines)} live lines; first differences "
        f"(line, committed, java): {diffs[:5]}. Regenerate it as its header says."
    )

    # The file is what the Rust test expects: the header names the jar's version and the
    # partition counts, and there is one line per key.
    assert "Java kafka-clients 3.9.1" in committed_lines[0], committed_lines[0]
    columns = [line for line in committed_lines if line.startswith("# columns: ")]
    assert columns == ["# columns: key_hex murmur2 " + " ".join(f"p/{n}" for n in PARTITION_COUNTS)]
    data = [line for line in committed_lines if not line.startswith("#")]
    assert len(data) == KEYS
    for line in data:
        fields = line.split(" ")
        assert len(fields) == 2 + len(PARTITION_COUNTS), line
        for n, p in zip(PARTITION_COUNTS, fields[2:]):
            assert 0 <= int(p) < n, line
