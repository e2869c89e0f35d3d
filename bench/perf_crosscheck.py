#!/usr/bin/env python3
"""Cross-checks `strom perf produce` and `strom perf consume` against an independent client.

Starts a `strom server` (target/release/strom, or $STROM_BIN) on a free port with a fresh data
directory, then:

  produce  runs `strom perf produce --json` (acks=all, unlimited rate) while an independent
           observer (confluent-kafka's AdminClient, librdkafka) lists the partitions' log end
           offsets in one ListOffsets request every few milliseconds. The observer's rate is
           records appended / (first sample that saw every record - last sample that saw none),
           each sample timed at its midpoint: the same run, measured from outside the tool.
  consume  runs `strom perf consume --json` over those records, timed from outside: the
           observer's count of records in the topic divided by the tool process's wall time
           (start to exit, so it includes connecting and metadata: a lower bound) is the same
           run measured independently. For context, Java's kafka-clients consumer
           (tests/compat/java/Tool.java perf-consume) then reads the same records with the same
           shape (assign, from the beginning, default fetch settings), timed as
           kafka-consumer-perf-test times it.

Prints a table and writes the figures as JSON (--out). Exit 1 if the tool's figure differs from
the independent measurement of the same run by more than --tolerance (default 10 %), for
produce or consume. No fsync per message: the broker runs with its defaults
(the OS flushes), which is the mode the figures are for. Client and broker share the machine.

    .venv/bin/python bench/perf_crosscheck.py --records 500000 --record-size 1024 --partitions 8
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka import libversion
from confluent_kafka import version as ck_version
from confluent_kafka.admin import AdminClient, OffsetSpec

import benchlib
from benchlib import ROOT, machine_facts, strom_binary

COMPAT = ROOT / "tests" / "compat"


def machine() -> dict:
    facts = machine_facts()
    return {"cpu": facts["cpu"], "cores": facts["cores"], "mem_gib": facts["memory_gib"],
            "kernel": facts["kernel"]}


class Broker(benchlib.Broker):
    """A broker on a free port with a fresh temporary directory (data and server.log), removed by stop()."""

    def __init__(self, binary: str):
        self.dir = tempfile.mkdtemp(prefix="strom-crosscheck-")
        super().__init__(binary, Path(self.dir) / "data", log_path=Path(self.dir) / "server.log")
        try:
            self.start(timeout_s=30)
        except benchlib.BrokerError as e:
            if e.timed_out:
                shutil.rmtree(self.dir, ignore_errors=True)
            sys.exit(str(e))

    def stop(self):
        super().stop(timeout_s=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_json(argv: list[str], timeout_s: float) -> dict:
    return run_json_timed(argv, timeout_s)[0]


def run_json_timed(argv: list[str], timeout_s: float) -> tuple[dict, float]:
    """Runs argv, returns its last stdout line as JSON and its wall time in seconds."""
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=timeout_s)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1]), wall


class EndOffsetObserver:
    """Samples the sum of the partitions' log end offsets on a thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, target: int):
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.specs = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
        self.target = target
        self.last_zero: float | None = None
        self.first_full: float | None = None
        self.samples = 0
        self.worst_sample_s = 0.0
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        futures = self.admin.list_offsets(self.specs, request_timeout=10)
        return sum(f.result().offset for f in futures.values())

    def _run(self):
        while not self.stop.is_set():
            before = time.monotonic()
            n = self.total()
            after = time.monotonic()
            self.samples += 1
            self.worst_sample_s = max(self.worst_sample_s, after - before)
            t = (before + after) / 2
            if n == 0:
                self.last_zero = t
                self.ready.set()
            elif n >= self.target:
                self.first_full = t
                return
            time.sleep(0.005)

    def rate(self) -> float | None:
        if self.last_zero is None or self.first_full is None:
            return None
        return self.target / (self.first_full - self.last_zero)


def java_classpath() -> str:
    """The compat suite's classpath (kafka-clients jars + our compiled Tool), compiling if stale."""
    sys.path.insert(0, str(COMPAT))
    from conftest import CLASSES, JARS, java_sources_hash  # noqa: E402

    if not (JARS / "kafka-clients.jar").exists():
        sys.exit(f"{JARS} has no kafka-clients.jar: run scripts/setup-test-deps.sh")
    marker = CLASSES / ".sources.sha256"
    want = java_sources_hash()
    if not marker.exists() or marker.read_text().strip() != want:
        CLASSES.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-encoding", "UTF-8", "-nowarn", "-d", str(CLASSES), "-cp", f"{JARS}/*"]
                       + [str(p) for p in sorted((COMPAT / "java").glob("*.java"))], check=True)
        marker.write_text(want + "\n")
    return f"{CLASSES}:{JARS}/*"


def java_consume(classpath: str, bootstrap: str, topic: str, partitions: int, records: int) -> dict:
    return run_json(["java", "-Xmx1g", "-cp", classpath, "Tool", "perf-consume", bootstrap, topic,
                     str(partitions), str(records)], timeout_s=400)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    binary = strom_binary()
    classpath = java_classpath()
    broker = Broker(binary)
    topic = "crosscheck"
    try:
        subprocess.run([binary, "topic", "create", topic, "-b", broker.bootstrap, "--partitions",
                        str(a.partitions)], check=True, capture_output=True, timeout=60)
        observer = EndOffsetObserver(broker.bootstrap, topic, a.partitions, a.records)
        observer.thread.start()
        if not observer.ready.wait(30):
            sys.exit("the observer could not list offsets")
        produce_cmd = [binary, "perf", "produce", "-b", broker.bootstrap, "--topic", topic,
                       "--num-records", str(a.records), "--record-size", str(a.record_size),
                       "--throughput", "-1", "--producer-props", "acks=all", "--json"]
        produced = run_json(produce_cmd, timeout_s=600)
        observer.thread.join(60)
        observer.stop.set()
        observed = observer.rate()
        if observed is None:
            sys.exit("the observer did not see the run start and finish")

        consume_cmd = [binary, "perf", "consume", "-b", broker.bootstrap, "--topic", topic,
                       "--messages", str(a.records), "--json"]
        in_topic = observer.total()
        consumed, consume_wall = run_json_timed(consume_cmd, timeout_s=600)
        independent = java_consume(classpath, broker.bootstrap, topic, a.partitions, a.records)
    finally:
        broker.stop()

    mb = a.record_size / (1024 * 1024)
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "mode": "no fsync per message (broker defaults; the OS flushes)",
        "independent_clients": {
            "produce": f"observer: confluent-kafka {ck_version()[0]} / librdkafka {libversion()[0]}",
            "consume": "Java kafka-clients 3.9.1 (tests/compat/java/Tool.java perf-consume)",
        },
        "shape": {"records": a.records, "record_size": a.record_size, "partitions": a.partitions,
                  "acks": "all", "throughput": "unlimited"},
        "produce": {
            "command": " ".join(produce_cmd[0:1] + ["perf"] + produce_cmd[2:]),
            "strom_perf": produced,
            "observer_records_per_sec": observed,
            "observer_mb_per_sec": observed * mb,
            "observer_samples": observer.samples,
            "observer_worst_sample_ms": round(observer.worst_sample_s * 1000, 1),
            "ratio": ratio(produced["records_per_sec"], observed),
        },
        "consume": {
            "command": " ".join(consume_cmd),
            "strom_perf": consumed,
            "records_in_topic": in_topic,
            "process_wall_s": round(consume_wall, 3),
            "external_records_per_sec": in_topic / consume_wall,
            "ratio": ratio(consumed["records_per_sec"], in_topic / consume_wall),
            "java_kafka_clients_same_shape": independent,
            "ratio_to_java": ratio(consumed["records_per_sec"], independent["records_per_sec"]),
        },
    }
    p, c = result["produce"], result["consume"]
    print(f"machine: {result['machine']}")
    print(f"shape: {a.records} records x {a.record_size} B, {a.partitions} partitions, acks=all, no fsync")
    print(f"produce  strom perf {produced['records_per_sec']:>12.0f} rec/s {produced['mb_per_sec']:>8.1f} MB/s"
          f"   observer {observed:>12.0f} rec/s {observed * mb:>8.1f} MB/s   ratio {p['ratio']:.3f}")
    print(f"         latency avg {produced['avg_latency_ms']:.1f} ms  p50 {produced['p50_ms']} ms  "
          f"p99 {produced['p99_ms']} ms  max {produced['max_latency_ms']} ms")
    ext = c["external_records_per_sec"]
    print(f"consume  strom perf {consumed['records_per_sec']:>12.0f} rec/s {consumed['mb_per_sec']:>8.1f} MB/s"
          f"   wall-clock {ext:>10.0f} rec/s {ext * mb:>8.1f} MB/s   ratio {c['ratio']:.3f}")
    print(f"         Java kafka-clients, same shape: {independent['records_per_sec']:.0f} rec/s "
          f"{independent['mb_per_sec']:.1f} MB/s (strom-client / Java = {c['ratio_to_java']:.2f})")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    bad = abs(p["ratio"] - 1) > a.tolerance or abs(c["ratio"] - 1) > a.tolerance
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
