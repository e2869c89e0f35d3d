"""Client drivers and checks shared by the compatibility tests.

Every producer (confluent-kafka, kafka-python, Java kafka-clients via java/Tool.java) builds
record i by the same rule (`expected_record`), and every consumer returns records in one
normalized shape, so any producer can be checked against any consumer:

    {"p": partition, "o": offset, "k": bytes|None, "v": bytes|None,
     "h": [(str, bytes|None), ...], "ts": int ms, "tt": "CreateTime"|"LogAppendTime"}
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from dataclasses import dataclass, field

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

# Must equal Tool.PAD in java/Tool.java.
PAD = "0123456789abcdefghijklmnopqrstuvwxyz" * 10
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
PRODUCERS = ("confluent-kafka", "kafka-python", "java")
CONSUMERS = ("confluent-kafka", "kafka-python", "java")


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


def produce_java(classpath: str, bootstrap: str, topic: str, count: int, compression: str) -> ProduceResult:
    proc = run_java(classpath, "Tool", ["produce", bootstrap, topic, str(count), compression], 300, check=False)
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
            f"java producer printed no summary (exit {proc.returncode})\n"
            f"stderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
        )
    result.acks, result.errors = acks, errors
    return result


def produce(client: str, bootstrap: str, topic: str, count: int, compression: str, classpath: str) -> ProduceResult:
    if client == "confluent-kafka":
        return produce_confluent(bootstrap, topic, count, compression)
    if client == "kafka-python":
        return produce_kafka_python(bootstrap, topic, count, compression)
    if client == "java":
        return produce_java(classpath, bootstrap, topic, count, compression)
    raise ValueError(client)


# ------------------------------------------------------------------ consumers


def confluent_consumer(bootstrap: str, **extra) -> Consumer:
    # confluent-kafka insists on a group.id even for assign(); we never subscribe or commit,
    # and start from explicit offsets, so the group is not used (groups: issue 3).
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


def consume_java(classpath: str, bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> list[dict]:
    proc = run_java(
        classpath,
        "Tool",
        ["consume", bootstrap, topic, str(partitions), str(expected), str(int(timeout_s))],
        timeout_s + 60,
        check=False,
    )
    if proc.returncode not in (0, 2):
        raise AssertionError(
            f"java consumer exited {proc.returncode}\nstderr (tail):\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
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


def consume(client: str, bootstrap: str, topic: str, partitions: int, expected: int, classpath: str) -> list[dict]:
    if client == "confluent-kafka":
        return consume_confluent(bootstrap, topic, partitions, expected)
    if client == "kafka-python":
        return consume_kafka_python(bootstrap, topic, partitions, expected)
    if client == "java":
        return consume_java(classpath, bootstrap, topic, partitions, expected)
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
