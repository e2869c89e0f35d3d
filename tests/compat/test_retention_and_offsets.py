"""Retention, DeleteRecords and offset lookups by time, through confluent-kafka and kafka-python."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, OffsetSpec

from compatlib import admin, confluent_consumer, create_topic

# Kafka 4.x's smallest allowed segment.bytes is 1 MiB.
SEGMENT_BYTES = 1024 * 1024
RETENTION_BYTES = 1024 * 1024
# Broker-wide: how often the retention task runs (Kafka's default is 5 minutes).
RETENTION_SETTINGS = {"log.retention.check.interval.ms": "500"}
RETENTION_WAIT_S = 30


def produce_values(bootstrap: str, topic: str, values: list[bytes], timestamps: list[int] | None = None) -> list[int]:
    """Produces to partition 0 (acks=all) and returns the acknowledged offsets in send order."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    offsets: dict[int, int] = {}
    errors: list[str] = []

    def cb(i):
        def on_delivery(err, msg):
            if err is None:
                offsets[i] = msg.offset()
            else:
                errors.append(str(err))

        return on_delivery

    for i, value in enumerate(values):
        kwargs = {"timestamp": timestamps[i]} if timestamps else {}
        while True:
            try:
                producer.produce(topic, value=value, partition=0, on_delivery=cb(i), **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    return [offsets[i] for i in range(len(values))]


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = confluent_consumer(bootstrap)
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()


def first_offsets_from_beginning(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes]]:
    consumer = confluent_consumer(bootstrap)
    out: list[tuple[int, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=n, timeout=0.2):
                assert msg.error() is None, msg.error()
                out.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return out[:n]


def test_retention_bytes_advances_log_start_offset_and_delete_records_moves_it_further(strom_factory):
    strom = strom_factory(settings=RETENTION_SETTINGS)
    topic = "retention-bytes"
    create_topic(
        strom.bootstrap,
        topic,
        partitions=1,
        config={"segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(RETENTION_BYTES)},
    )
    a = admin(strom.bootstrap)
    described = a.describe_configs([ConfigResource("topic", topic)])
    config = list(described.values())[0].result(timeout=30)
    assert config["segment.bytes"].value == str(SEGMENT_BYTES)
    assert config["retention.bytes"].value == str(RETENTION_BYTES)

    # ~5 MiB of uncompressed 1 KiB records: several 1 MiB segments roll.
    values = [f"{i:08d}".encode() + b"r" * 1016 for i in range(5_000)]
    offsets = produce_values(strom.bootstrap, topic, values)
    assert offsets == list(range(5_000))

    deadline = time.monotonic() + RETENTION_WAIT_S
    low, high = watermarks(strom.bootstrap, topic)
    while low == 0 and time.monotonic() < deadline:
        time.sleep(0.25)
        low, high = watermarks(strom.bootstrap, topic)
    assert high == 5_000
    assert low > 0, f"log start offset still 0 after {RETENTION_WAIT_S}s with retention.bytes={RETENTION_BYTES}"
    # At most retention.bytes (+ the active segment) may remain: well under half of 5 MiB.
    assert low >= 2_000, f"retention kept too much: log start offset {low} of 5000"
    assert first_offsets_from_beginning(strom.bootstrap, topic, 1) == [(low, values[low])]

    # DeleteRecords (KIP-107) moves the log start offset to exactly the requested offset.
    target = low + (high - low) // 2
    futures = a.delete_records([TopicPartition(topic, 0, target)])
    deleted = list(futures.values())[0].result(timeout=30)
    assert deleted.low_watermark == target
    assert watermarks(strom.bootstrap, topic) == (target, 5_000)
    assert first_offsets_from_beginning(strom.bootstrap, topic, 2) == [(target, values[target]), (target + 1, values[target + 1])]

    # OFFSET_END deletes everything: log start offset = high watermark.
    futures = a.delete_records([TopicPartition(topic, 0, OFFSET_END)])
    assert list(futures.values())[0].result(timeout=30).low_watermark == 5_000
    assert watermarks(strom.bootstrap, topic) == (5_000, 5_000)


def test_offsets_for_times_returns_first_offset_at_or_after_timestamp(strom):
    topic = "offsets-for-times"
    create_topic(strom.bootstrap, topic, partitions=1)
    base = int(time.time() * 1000) - 200_000
    timestamps = [base + 1_000 * i for i in range(100)]  # record i has timestamp base + i s
    produce_values(strom.bootstrap, topic, [f"t{i}".encode() for i in range(100)], timestamps)

    probes = {
        base - 5_000: 0,  # before everything: first offset
        base: 0,
        base + 1: 1,  # between records 0 and 1: the later one
        base + 10_000: 10,
        base + 10_500: 11,
        base + 99_000: 99,
        base + 99_001: OFFSET_END,  # after everything: -1 (no such offset)
    }
    consumer = confluent_consumer(strom.bootstrap)
    try:
        got = {
            ts: consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=30)[0].offset for ts in probes
        }
    finally:
        consumer.close()
    assert got == probes

    # The same lookup through kafka-python (ListOffsets by another client implementation).
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    kc = KafkaConsumer(bootstrap_servers=strom.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = KTopicPartition(topic, 0)
        for ts, want in probes.items():
            found = kc.offsets_for_times({tp: ts})[tp]
            if want == OFFSET_END:
                assert found is None, (ts, found)
            else:
                assert found is not None and found.offset == want, (ts, found)
                assert found.timestamp == timestamps[want]
        assert kc.beginning_offsets([tp]) == {tp: 0}
        assert kc.end_offsets([tp]) == {tp: 100}
    finally:
        kc.close()


def test_admin_list_offsets_reports_earliest_latest_and_max_timestamp(strom):
    topic = "list-offsets"
    create_topic(strom.bootstrap, topic, partitions=1)
    base = int(time.time() * 1000) - 100_000
    # Timestamps out of order: the largest one sits at offset 7.
    timestamps = [base + t for t in (10, 20, 30, 40, 50, 60, 70, 900, 80, 90)]
    produce_values(strom.bootstrap, topic, [f"m{i}".encode() for i in range(10)], timestamps)

    a = admin(strom.bootstrap)
    tp = TopicPartition(topic, 0)
    results = {}
    for name, spec in {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "max_timestamp": OffsetSpec.max_timestamp(),
        "for_timestamp": OffsetSpec.for_timestamp(base + 75),
    }.items():
        info = list(a.list_offsets({tp: spec}, request_timeout=30).values())[0].result(timeout=30)
        results[name] = (info.offset, info.timestamp)
    assert results["earliest"][0] == 0
    assert results["latest"][0] == 10
    assert results["max_timestamp"] == (7, base + 900)
    # First offset whose timestamp >= base+75 is offset 7 (base+900); offset 8 (base+80) comes later.
    assert results["for_timestamp"][0] == 7
