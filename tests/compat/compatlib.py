"""Client drivers and checks shared by the compatibility tests.

Every producer (confluent-kafka, kafka-python, Java kafka-clients via java/Tool.java, and
strom-client via its twin crates/strom-client/examples/compat_tool.rs) builds record i by the
same rule (`expected_record`), and every consumer returns records in one normalized shape, so
any producer can be checked against any consumer:

    {"p": partition, "o": offset, "k": bytes|None, "v": bytes|None,
     "h": [(str, bytes|None), ...], "ts": int ms, "tt": "CreateTime"|"LogAppendTime"}
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]

# Must equal Tool.PAD in java/Tool.java (and PAD in compat_tool.rs).
PAD = "0123456789abcdefghijklmnopqrstuvwxyz" * 10
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
PRODUCERS = ("confluent-kafka", "kafka-python", "java", "rust")
CONSUMERS = ("confluent-kafka", "kafka-python", "java", "rust")


def record_count() -> int:
    """Records per matrix cell: 100,000 with STROM_COMPAT_FULL=1, else 2,000 (fast default)."""
    if os.environ.get("STROM_COMPAT_RECORDS"):
        return int(os.environ["STROM_COMPAT_RECORDS"])
    return 100_000 if os.environ.get("STROM_COMPAT_FULL") == "1" else 2_000


def expected_record(i: int, producer: str, base_ts: int) -> dict:
    """Record i as every producer sends it (Tool.java builds the same bytes)."""
    return {
        "k": f"k-{i}".encode(),
        "v": f"v-{i}-{producer}-{PAD[: 20 + i % 200]}".encode(),
        "h": [
            ("i", str(i).encode()),
            ("producer", producer.encode()),
            ("bin", bytes([i % 256, 0, 255])),
            ("dup", b"a"),
            ("dup", b"b"),
        ],
        "ts": base_ts + i,
    }


@dataclass
class ProduceResult:
    """What a producer reported: base timestamp, acknowledged (partition, offset) per i, errors."""

    base_ts: int
    acks: dict[int, tuple[int, int]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


# ------------------------------------------------------------------ admin (confluent-kafka)


def admin(bootstrap: str) -> AdminClient:
    """A new AdminClient. Keep a reference while waiting on its futures: a collected client
    is destroyed and fails its pending requests with _DESTROY."""
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 3, config: dict | None = None) -> None:
    a = admin(bootstrap)  # keep the client alive until the futures resolve
    futures = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=30,
        request_timeout=30,
    )
    futures[name].result(timeout=60)
    wait_for_topic(bootstrap, name, partitions)


def wait_for_topic(bootstrap: str, name: str, partitions: int, timeout_s: float = 30) -> None:
    """Wait until metadata shows the topic with all partitions led (CreateTopics may return first)."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return
        last = t
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


# ------------------------------------------------------------------ producers


def produce_confluent(bootstrap: str, topic: str, count: int, compression: str) -> ProduceResult:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": 5,
            "client.id": "strom-compat-confluent-producer",
        }
    )
    result = ProduceResult(base_ts=int(time.time() * 1000))

    def on_delivery(i):
        def cb(err, msg):
            if err is None:
                result.acks[i] = (msg.partition(), msg.offset())
            else:
                result.errors[i] = str(err)

        return cb

    for i in range(count):
        r = expected_record(i, "confluent-kafka", result.base_ts)
        while True:
            try:
                producer.produce(
                    topic,
                    key=r["k"],
                    value=r["v"],
                    headers=r["h"],
                    timestamp=r["ts"],
                    on_delivery=on_delivery(i),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    assert remaining == 0, f"confluent-kafka: {remaining} records still undelivered after 120 s"
    return result


def produce_kafka_python(bootstrap: str, topic: str, count: int, compression: str) -> ProduceResult:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type=None if compression == "none" else compression,
        linger_ms=5,
        client_id="strom-compat-kafka-python-producer",
    )
    result = ProduceResult(base_ts=int(time.time() * 1000))
    futures = []
    try:
        for i in range(count):
            r = expected_record(i, "kafka-python", result.base_ts)
            futures.append(
                producer.send(topic, key=r["k"], value=r["v"], headers=r["h"], timestamp_ms=r["ts"])
            )
        producer.flush(timeout=120)
        for i, fut in enumerate(futures):
            try:
                md = fut.get(timeout=30)
                result.acks[i] = (md.partition, md.offset)
            except Exception as e:  # noqa: BLE001 - any client error is a failed send
                result.errors[i] = repr(e)
    finally:
        producer.close(timeout=10)
    return result


def run_java(classpath: str, main: str, args: list[str], timeout_s: float, check: bool = True):
    """Runs a Java program from tests/compat/java with kafka-clients on the classpath."""
    cmd = [
        "java",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dfile.encoding=UTF-8",
        "-cp",
        classpath,
        main,
        *args,
    ]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{main} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout (tail):\n{proc.stdout.decode('utf-8', 'replace')[-3000:]}\n"
            f"stderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
        )
    return proc


def built(rel: str) -> Path | None:
    """target/<profile>/<rel>: the profile named by $STROM_COMPAT_PROFILE (scripts/test.sh
    sets debug, the build its cargo test step made), else release, else debug."""
    chosen = os.environ.get("STROM_COMPAT_PROFILE")
    for profile in (chosen,) if chosen else ("release", "debug"):
        path = ROOT / "target" / profile / rel
        if os.access(path, os.X_OK):
            return path
    return None


def compat_tool() -> Path:
    """The Rust tool (crates/strom-client/examples/compat_tool.rs). Fails, saying how to
    build it, when it was not built."""
    path = built("examples/compat_tool")
    if path is None:
        raise AssertionError(
            "Rust compat tool not built: no target/{release,debug}/examples/compat_tool; run "
            "`cargo build --release -p strom -p strom-client --bins --examples`"
        )
    return path


def run_rust(args: list[str], timeout_s: float, check: bool = True):
    """Runs the Rust compat tool with `args` (same modes and arguments as java/Tool.java)."""
    proc = subprocess.run(
        [str(compat_tool()), *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"compat_tool {' '.join(args)} exited {proc.returncode}\n"
            f"stdout (tail):\n{proc.stdout.decode('utf-8', 'replace')[-3000:]}\n"
            f"stderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
        )
    return proc


def tool_produce_result(tool: str, proc: subprocess.CompletedProcess) -> ProduceResult:
    """Parses the `produce` output of Tool.java / compat_tool: {"i","p","o"} or {"i","error"}
    per record and a final {"summary":{..., "base_ts"}}."""
    result = None
    acks, errors = {}, {}
    for line in proc.stdout.decode().splitlines():
        obj = json.loads(line)
        if "summary" in obj:
            result = ProduceResult(base_ts=obj["summary"]["base_ts"])
        elif "error" in obj:
            errors[obj["i"]] = obj["error"]
        else:
            acks[obj["i"]] = (obj["p"], obj["o"])
    if result is None:
        raise AssertionError(
            f"{tool} producer printed no summary (exit {proc.returncode})\n"
            f"stderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
        )
    result.acks, result.errors = acks, errors
    return result


def produce_java(classpath: str, bootstrap: str, topic: str, count: int, compression: str) -> ProduceResult:
    proc = run_java(classpath, "Tool", ["produce", bootstrap, topic, str(count), compression], 300, check=False)
    return tool_produce_result("java", proc)


def produce_rust(bootstrap: str, topic: str, count: int, compression: str) -> ProduceResult:
    proc = run_rust(["produce", bootstrap, topic, str(count), compression], 300, check=False)
    return tool_produce_result("rust", proc)


def produce(client: str, bootstrap: str, topic: str, count: int, compression: str, classpath: str) -> ProduceResult:
    if client == "confluent-kafka":
        return produce_confluent(bootstrap, topic, count, compression)
    if client == "kafka-python":
        return produce_kafka_python(bootstrap, topic, count, compression)
    if client == "java":
        return produce_java(classpath, bootstrap, topic, count, compression)
    if client == "rust":
        return produce_rust(bootstrap, topic, count, compression)
    raise ValueError(client)


# ------------------------------------------------------------------ consumers


def confluent_consumer(bootstrap: str, **extra) -> Consumer:
    # confluent-kafka insists on a group.id even for assign(); we never subscribe or commit,
    # and start from explicit offsets, so the group is not used (group tests pass their own
    # group.id and subscribe: test_groups.py).
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "strom-compat-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "client.id": "strom-compat-confluent-consumer",
    }
    conf.update(extra)
    return Consumer(conf)


def consume_confluent(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> list[dict]:
    consumer = confluent_consumer(bootstrap)
    out = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        drain_until = None
        while time.monotonic() < (drain_until or deadline):
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                ts_type, ts = msg.timestamp()
                out.append(
                    {
                        "p": msg.partition(),
                        "o": msg.offset(),
                        "k": msg.key(),
                        "v": msg.value(),
                        "h": list(msg.headers() or []),
                        "ts": ts,
                        "tt": {TIMESTAMP_CREATE_TIME: "CreateTime", TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}.get(
                            ts_type, f"type-{ts_type}"
                        ),
                    }
                )
            if drain_until is None and len(out) >= expected:
                drain_until = time.monotonic() + 1.0  # linger to expose duplicates
    finally:
        consumer.close()
    return out


def consume_kafka_python(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> list[dict]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="strom-compat-kafka-python-consumer",
    )
    out = []
    try:
        tps = [KTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        drain_until = None
        while time.monotonic() < (drain_until or deadline):
            batches = consumer.poll(timeout_ms=200, max_records=5000)
            for tp in sorted(batches, key=lambda t: t.partition):
                for r in batches[tp]:
                    out.append(
                        {
                            "p": r.partition,
                            "o": r.offset,
                            "k": r.key,
                            "v": r.value,
                            "h": [(k, v) for k, v in (r.headers or [])],
                            "ts": r.timestamp,
                            "tt": {0: "CreateTime", 1: "LogAppendTime"}.get(r.timestamp_type, f"type-{r.timestamp_type}"),
                        }
                    )
            if drain_until is None and len(out) >= expected:
                drain_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return out


def tool_consumed_records(tool: str, proc: subprocess.CompletedProcess) -> list[dict]:
    """Parses the `consume` output of Tool.java / compat_tool ({"p","o","k","v","h","ts","tt"}
    per record, bytes base64) into the normalized record shape. Exit 2 (too few records before
    the timeout) is left to the caller's count check; any other failure raises."""
    if proc.returncode not in (0, 2):
        raise AssertionError(
            f"{tool} consumer exited {proc.returncode}\nstderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
        )

    def unb64(s):
        return None if s is None else base64.b64decode(s)

    out = []
    for line in proc.stdout.decode().splitlines():
        obj = json.loads(line)
        out.append(
            {
                "p": obj["p"],
                "o": obj["o"],
                "k": unb64(obj["k"]),
                "v": unb64(obj["v"]),
                "h": [(k, unb64(v)) for k, v in obj["h"]],
                "ts": obj["ts"],
                "tt": {"CreateTime": "CreateTime", "LogAppendTime": "LogAppendTime"}.get(obj["tt"], obj["tt"]),
            }
        )
    return out


def consume_java(classpath: str, bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> list[dict]:
    proc = run_java(
        classpath,
        "Tool",
        ["consume", bootstrap, topic, str(partitions), str(expected), str(int(timeout_s))],
        timeout_s + 60,
        check=False,
    )
    return tool_consumed_records("java", proc)


def consume_rust(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> list[dict]:
    proc = run_rust(
        ["consume", bootstrap, topic, str(partitions), str(expected), str(int(timeout_s))],
        timeout_s + 60,
        check=False,
    )
    return tool_consumed_records("rust", proc)


def consume(client: str, bootstrap: str, topic: str, partitions: int, expected: int, classpath: str) -> list[dict]:
    if client == "confluent-kafka":
        return consume_confluent(bootstrap, topic, partitions, expected)
    if client == "kafka-python":
        return consume_kafka_python(bootstrap, topic, partitions, expected)
    if client == "java":
        return consume_java(classpath, bootstrap, topic, partitions, expected)
    if client == "rust":
        return consume_rust(bootstrap, topic, partitions, expected)
    raise ValueError(client)


# ------------------------------------------------------------------ checks


def check_exactly_once(produced: ProduceResult, consumed: list[dict], producer: str, count: int, consumer: str) -> None:
    """Asserts every produced record arrived exactly once, intact, in per-partition order.

    Checks: the producer acknowledged all `count` records; the consumer saw exactly `count`
    records with no (partition, offset) or record index seen twice; each record sits at the
    partition/offset its acknowledgement reported; key, value, headers (order included) and
    CreateTime timestamp are byte-identical; within a partition the consumer saw offsets
    strictly increasing and dense from 0, and the producer's send order is preserved.
    """
    problems: list[str] = []

    def problem(msg: str) -> None:
        if len(problems) < 15:
            problems.append(msg)

    assert not produced.errors, f"{producer} send errors (first 5): {list(produced.errors.items())[:5]}"
    assert len(produced.acks) == count, f"{producer} acknowledged {len(produced.acks)} of {count}"

    seen_pos: set[tuple[int, int]] = set()
    seen_i: set[int] = set()
    last_by_partition: dict[int, tuple[int, int]] = {}
    offsets_by_partition: dict[int, list[int]] = {}
    for r in consumed:
        pos = (r["p"], r["o"])
        if pos in seen_pos:
            problem(f"duplicate delivery of partition {r['p']} offset {r['o']}")
        seen_pos.add(pos)
        try:
            i = int(r["k"].decode().removeprefix("k-"))
        except Exception:  # noqa: BLE001
            problem(f"unparseable key {r['k']!r} at {pos}")
            continue
        if i in seen_i:
            problem(f"record {i} delivered twice (again at {pos})")
        seen_i.add(i)
        if produced.acks.get(i) != pos:
            problem(f"record {i} at {pos}, but its ack said {produced.acks.get(i)}")
        want = expected_record(i, producer, produced.base_ts)
        for field_name in ("k", "v", "h", "ts"):
            got = r[field_name]
            if field_name == "h":
                got = [(k, bytes(v) if v is not None else None) for k, v in got]
            if got != want[field_name]:
                problem(f"record {i} {field_name}: got {got!r}, want {want[field_name]!r}")
        if r["tt"] != "CreateTime":
            problem(f"record {i} timestamp type {r['tt']}, want CreateTime")
        prev = last_by_partition.get(r["p"])
        if prev is not None and (r["o"] <= prev[0] or i <= prev[1]):
            problem(f"partition {r['p']} order: (offset {r['o']}, record {i}) after (offset {prev[0]}, record {prev[1]})")
        last_by_partition[r["p"]] = (r["o"], i)
        offsets_by_partition.setdefault(r["p"], []).append(r["o"])

    missing = sorted(set(range(count)) - seen_i)
    if missing:
        problem(f"{len(missing)} records never delivered, e.g. {missing[:10]}")
    for p, offsets in offsets_by_partition.items():
        if sorted(offsets) != list(range(len(offsets))):
            problem(f"partition {p} offsets not dense from 0: first={min(offsets)} last={max(offsets)} n={len(offsets)}")
    if len(consumed) != count:
        problem(f"{consumer} consumed {len(consumed)} records, want exactly {count}")

    assert not problems, f"{producer} -> {consumer}:\n  " + "\n  ".join(problems)


# ------------------------------------------------------------------ consumer groups
#
# Group members run for as long as a test needs them, so each one polls on its own thread
# (confluent-kafka, kafka-python) or is a separate process (Java), and records what it saw:
# records as {"p", "o", "k", "v"} (key and value decoded as UTF-8) and rebalance callbacks as
# (monotonic time, "assigned"|"revoked"|"lost", [partitions]).


def produce_text(bootstrap: str, topic: str, records: list[tuple[int, str, str]]) -> list[tuple[int, int, str]]:
    """Sends (partition, key, value) records with acks=all, one at a time in order; returns
    (partition, offset, value) per record as acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    acks: dict[int, tuple[int, int, str]] = {}
    errors: dict[int, str] = {}

    def on_delivery(i):
        def cb(err, msg):
            if err is None:
                acks[i] = (msg.partition(), msg.offset(), msg.value().decode())
            else:
                errors[i] = str(err)

        return cb

    for i, (partition, key, value) in enumerate(records):
        producer.produce(topic, key=key.encode(), value=value.encode(), partition=partition, on_delivery=on_delivery(i))
        producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0 and not errors, f"produce to {topic}: {remaining} undelivered, errors {list(errors.items())[:5]}"
    return [acks[i] for i in range(len(records))]


def wait_until(what: str, predicate, timeout_s: float, interval_s: float = 0.2):
    """Polls `predicate()` until it returns something truthy (returned); fails after timeout_s
    with `what` and the last value seen."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval_s)


class GroupMember:
    """What every group member records; subclasses feed `records` and `events`."""

    name = "member"

    def __init__(self):
        self.records: list[dict] = []
        self.events: list[tuple[float, str, list[int]]] = []
        self.error: BaseException | None = None

    def _event(self, kind: str, partitions) -> None:
        self.events.append((time.monotonic(), kind, sorted(partitions)))

    @property
    def assignment(self) -> list[int] | None:
        """Partitions after the last rebalance callback (None before the first assignment)."""
        current = None
        for _, kind, partitions in self.events:
            if kind == "assigned":
                current = sorted(set(current or []) | set(partitions))  # eager: full set; cooperative: increment
            elif kind in ("revoked", "lost"):
                current = sorted(set(current or []) - set(partitions))
        return current

    def wait_for_assignment(self, partitions: list[int], timeout_s: float) -> float:
        """Waits until this member's callbacks say it owns exactly `partitions`; returns when."""
        want = sorted(partitions)
        wait_until(f"{self.name} to be assigned {want} (events {self.events})", lambda: self.assignment == want or self.error, timeout_s)
        if self.error:
            raise AssertionError(f"{self.name} failed: {self.error!r}")
        return time.monotonic()

    def wait_for_records(self, count: int, timeout_s: float) -> list[dict]:
        wait_until(f"{self.name} to receive {count} records (has {len(self.records)})", lambda: len(self.records) >= count or self.error, timeout_s)
        if self.error:
            raise AssertionError(f"{self.name} failed: {self.error!r}")
        return list(self.records)


class ConfluentGroupMember(GroupMember):
    """A confluent-kafka Consumer subscribed to `topic` in `group` (classic protocol), polled on
    a thread. `commit`: "auto" (enable.auto.commit, 5 s), "sync" (synchronous commit after
    every record) or "none". All client calls happen on the polling thread."""

    def __init__(self, bootstrap: str, topic: str, group: str, commit: str = "auto", client_id: str = "strom-compat-confluent-member", **extra):
        super().__init__()
        import threading

        self.name = f"confluent-kafka {client_id}"
        self.commit = commit
        self.commits = 0
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": commit == "auto",
            "group.protocol": "classic",
        }
        conf.update(extra)
        self.consumer = Consumer(conf)
        self._stop = threading.Event()
        self.consumer.subscribe(
            [topic],
            on_assign=lambda c, ps: self._event("assigned", [tp.partition for tp in ps]),
            on_revoke=lambda c, ps: self._event("revoked", [tp.partition for tp in ps]),
            on_lost=lambda c, ps: self._event("lost", [tp.partition for tp in ps]),
        )
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.closed_at: float | None = None
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self.consumer.poll(0.1)
                if msg is None:
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                key, value = msg.key(), msg.value()
                self.records.append(
                    {"p": msg.partition(), "o": msg.offset(), "k": key and key.decode(), "v": value and value.decode()}
                )
                if self.commit == "sync":
                    self.consumer.commit(message=msg, asynchronous=False)
                    self.commits += 1
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
        finally:
            self.consumer.close()
            self.closed_at = time.monotonic()

    def close(self, timeout_s: float = 30) -> None:
        """Stops polling and closes the consumer (LeaveGroup), on its thread."""
        self._stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.name}: close() did not return within {timeout_s}s"


class KafkaPythonGroupMember(GroupMember):
    """A kafka-python KafkaConsumer subscribed to `topic` in `group`, polled on a thread.
    `commit="sync"` commits synchronously (commit()) after every non-empty poll."""

    def __init__(self, bootstrap: str, topic: str, group: str, commit: str = "auto", client_id: str = "strom-compat-kafka-python-member", **extra):
        super().__init__()
        import threading

        from kafka import ConsumerRebalanceListener, KafkaConsumer

        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):
                member._event("assigned", [tp.partition for tp in assigned])

            def on_partitions_revoked(self, revoked):
                member._event("revoked", [tp.partition for tp in revoked])

        self.name = f"kafka-python {client_id}"
        self.commit = commit
        self.commits = 0
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=client_id,
            auto_offset_reset="earliest",
            enable_auto_commit=commit == "auto",
            **extra,
        )
        self.consumer.subscribe(topics=[topic], listener=Listener())
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batches = self.consumer.poll(timeout_ms=100)
                for tp in sorted(batches, key=lambda t: t.partition):
                    for r in batches[tp]:
                        self.records.append(
                            {"p": r.partition, "o": r.offset, "k": r.key and r.key.decode(), "v": r.value and r.value.decode()}
                        )
                if batches and self.commit == "sync":
                    self.consumer.commit()
                    self.commits += 1
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
        finally:
            self.consumer.close()

    def close(self, timeout_s: float = 30) -> None:
        self._stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"{self.name}: close() did not return within {timeout_s}s"


def group_consume_args(bootstrap: str, topic: str, group: str, commit: str, session_timeout_ms: int | None,
                       client_id: str, max_runtime_s: int, properties: dict[str, str] | None = None) -> list[str]:
    """Arguments of `group-consume`, the same for Tool.java and compat_tool."""
    args = ["group-consume", bootstrap, topic, group, commit,
            "-" if session_timeout_ms is None else str(session_timeout_ms), client_id, str(max_runtime_s)]
    return args + [f"{k}={v}" for k, v in (properties or {}).items()]


class ToolGroupMember(GroupMember):
    """A `group-consume` tool (java/Tool.java or the Rust compat_tool) as a process in its own
    process group; its JSON lines are read on a thread. kill() is SIGKILL (no LeaveGroup);
    close() is SIGTERM, on which the tool closes its consumer cleanly."""

    def _start(self, name: str, argv: list[str]) -> None:
        import tempfile
        import threading

        self.name = name
        self.committed: dict[int, int] = {}
        self.closed_cleanly = False
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.thread = threading.Thread(target=self._pump, name=self.name, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.error = AssertionError(f"unparseable line from {self.name}: {line!r}")
                continue
            event = obj.get("event")
            if event is None:
                self.records.append({"p": obj["partition"], "o": obj["offset"], "k": obj["key"], "v": obj["value"]})
            elif event == "committed":
                self.committed.update({int(p): o for p, o in obj["offsets"].items()})
            elif event == "error":
                self.error = AssertionError(f"{self.name}: {obj['error']}")
            elif event == "closed":
                self.closed_cleanly = self.error is None
            else:
                self._event(event, obj["partitions"])

    def stderr_tail(self, limit: int = 3000) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-limit:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.thread.join(10)

    def close(self, timeout_s: float = 30) -> None:
        """SIGTERM: the tool leaves the group and exits; SIGKILL if it does not within timeout_s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not exit within {timeout_s}s of SIGTERM\n{self.stderr_tail()}")
        self.thread.join(10)


JAVA_MEMBER_JVM = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dfile.encoding=UTF-8"]


class JavaGroupMember(ToolGroupMember):
    """`Tool group-consume` (Java kafka-clients 3.9.1); see ToolGroupMember."""

    def __init__(self, classpath: str, bootstrap: str, topic: str, group: str, commit: str = "auto",
                 session_timeout_ms: int | None = None, client_id: str = "strom-compat-java-member",
                 max_runtime_s: int = 300):
        super().__init__()
        args = group_consume_args(bootstrap, topic, group, commit, session_timeout_ms, client_id, max_runtime_s)
        self._start(f"java {client_id}", [*JAVA_MEMBER_JVM, "-cp", classpath, "Tool", *args])


class RustGroupMember(ToolGroupMember):
    """`compat_tool group-consume` (strom-client's Consumer, crates/strom-client/examples/
    compat_tool.rs): the same arguments, output and signals as JavaGroupMember; `properties`
    are trailing `name=value` consumer properties (set last), e.g. {"group.protocol": "consumer"}."""

    def __init__(self, bootstrap: str, topic: str, group: str, commit: str = "auto",
                 session_timeout_ms: int | None = None, client_id: str = "strom-compat-rust-member",
                 max_runtime_s: int = 300, properties: dict[str, str] | None = None):
        super().__init__()
        args = group_consume_args(bootstrap, topic, group, commit, session_timeout_ms, client_id, max_runtime_s,
                                  properties)
        self._start(f"rust {client_id}", [str(compat_tool()), *args])


def describe_group(bootstrap: str, group: str, timeout_s: float = 15):
    """confluent-kafka AdminClient.describe_consumer_groups for one group."""
    a = admin(bootstrap)
    return a.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout=timeout_s + 5)


def group_assignment(description) -> dict[str, list[int]]:
    """client id -> sorted assigned partitions, per member of a ConsumerGroupDescription."""
    out: dict[str, list[int]] = {}
    for m in description.members:
        out.setdefault(m.client_id, []).extend(tp.partition for tp in m.assignment.topic_partitions)
    return {k: sorted(v) for k, v in out.items()}


def wait_for_stable_group(bootstrap: str, group: str, want: dict[str, int] | None = None, timeout_s: float = 60):
    """Waits until describe_consumer_groups shows `group` Stable with every member assigned
    something and, if given, exactly the members {client id: partition count}; returns the
    description."""
    from confluent_kafka import ConsumerGroupState

    def check():
        try:
            d = describe_group(bootstrap, group)
        except Exception as e:  # noqa: BLE001 - e.g. coordinator still loading; keep polling
            return None if "COORDINATOR" in str(e) else _raise(e)
        got = group_assignment(d)
        if d.state != ConsumerGroupState.STABLE or not got or not all(got.values()):
            check.last = (d.state, got)
            return None
        if want is not None and {k: len(v) for k, v in got.items()} != want:
            check.last = (d.state, got)
            return None
        return d

    check.last = None
    try:
        return wait_until(f"group {group} Stable with {want}", check, timeout_s, interval_s=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; last described (state, assignment): {check.last}") from None


def _raise(e: BaseException):
    raise e


def committed_offsets(bootstrap: str, group: str, partitions: list | None = None, timeout_s: float = 15) -> dict[tuple[str, int], int]:
    """AdminClient.list_consumer_group_offsets: {(topic, partition): committed offset}
    (all of the group's offsets when `partitions` is None)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    a = admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, partitions)
    result = a.list_consumer_group_offsets([request], request_timeout=timeout_s)[group].result(timeout=timeout_s + 5)
    out = {}
    for tp in result.topic_partitions:
        if tp.error is not None:
            raise KafkaException(tp.error)
        out[(tp.topic, tp.partition)] = tp.offset
    return out


class JavaGroupMemberWithProperties(JavaGroupMember):
    """`Tool group-consume` like `JavaGroupMember`, with extra consumer properties passed as
    trailing `name=value` arguments (set last, so they win): e.g. {"group.protocol": "consumer"}
    (then leave `session_timeout_ms` None: that consumer refuses session.timeout.ms),
    {"group.instance.id": "static-a"} or {"partition.assignment.strategy": "...CooperativeStickyAssignor"}."""

    def __init__(self, classpath: str, bootstrap: str, topic: str, group: str, properties: dict[str, str],
                 commit: str = "auto", session_timeout_ms: int | None = None,
                 client_id: str = "strom-compat-java-member", max_runtime_s: int = 300):
        GroupMember.__init__(self)
        args = group_consume_args(bootstrap, topic, group, commit, session_timeout_ms, client_id, max_runtime_s,
                                  properties)
        self._start(f"java {client_id}", [*JAVA_MEMBER_JVM, "-cp", classpath, "Tool", *args])
