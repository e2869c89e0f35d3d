"""kill -9 mid-load: nothing acknowledged is lost, offsets stay dense, no duplicates.

confluent-kafka produces (acks=all, idempotent) in a loop while the test SIGKILLs the broker
twice and restarts it on the same data dir and port; the producer keeps going through the
outages (its records wait in the client and are retried). At the end every record whose
delivery callback reported success must be readable at the partition and offset it was
acknowledged with, each partition's offsets must be dense from 0 to the high watermark, and
no record may appear twice (the idempotent producer's retries of records the broker had
already written before the kill must be deduplicated: producer state survives recovery).
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Producer, TopicPartition

from compatlib import confluent_consumer, create_topic

PARTITIONS = 3
TOPIC = "kill9"
# Acknowledged records to wait for in each phase (before the first kill, between kills, after).
ACKS_PER_PHASE = 3_000
PHASE_TIMEOUT_S = 60
# Records queued in the client but not yet acknowledged, at most.
MAX_UNACKED = 5_000


def value_of(i: int) -> bytes:
    return f"kill9-{i}-".encode() + b"x" * (100 + i % 100)


def test_acknowledged_records_survive_kill9_and_restart_with_dense_offsets(strom):
    create_topic(strom.bootstrap, TOPIC, partitions=PARTITIONS)
    producer = Producer(
        {
            "bootstrap.servers": strom.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "client.id": "strom-compat-kill9",
        }
    )
    acked: dict[int, tuple[int, int]] = {}
    failed: dict[int, str] = {}
    sent = 0

    def on_delivery(i):
        def cb(err, msg):
            if err is None:
                acked[i] = (msg.partition(), msg.offset())
            else:
                failed[i] = str(err)

        return cb

    def produce_for(seconds: float = 0.0, until_acked: int | None = None) -> None:
        """Keeps sending: for `seconds`, or until `until_acked` records are acknowledged."""
        nonlocal sent
        deadline = time.monotonic() + (seconds if until_acked is None else PHASE_TIMEOUT_S)
        while time.monotonic() < deadline:
            if until_acked is not None and len(acked) >= until_acked:
                return
            if sent - len(acked) - len(failed) >= MAX_UNACKED:
                producer.poll(0.05)  # bound the backlog while the broker is down or slow
                continue
            try:
                producer.produce(TOPIC, key=f"k-{sent}".encode(), value=value_of(sent), on_delivery=on_delivery(sent))
                sent += 1
            except BufferError:
                producer.poll(0.05)
            except KafkaException as e:
                raise AssertionError(f"producer failed fatally after {len(acked)} acks: {e}") from e
            producer.poll(0)
        assert until_acked is None, f"only {len(acked)} of {until_acked} acks within {PHASE_TIMEOUT_S}s"

    produce_for(until_acked=ACKS_PER_PHASE)
    for kill in range(2):
        strom.kill()  # SIGKILL with records in flight
        produce_for(seconds=0.5)  # keep queueing while the broker is down
        strom.restart()
        produce_for(until_acked=len(acked) + ACKS_PER_PHASE)
    remaining = producer.flush(120)
    assert remaining == 0, f"{remaining} records still in flight 120 s after the last restart"

    # Read every partition to its high watermark.
    consumer = confluent_consumer(strom.bootstrap)
    by_position: dict[tuple[int, int], bytes] = {}
    duplicates: list[tuple[int, int]] = []
    try:
        highs = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30) for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        total = sum(high for _low, high in highs.values())
        deadline = time.monotonic() + 120
        while len(by_position) < total and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                assert msg.error() is None, msg.error()
                pos = (msg.partition(), msg.offset())
                if pos in by_position:
                    duplicates.append(pos)
                by_position[pos] = msg.key()
    finally:
        consumer.close()

    assert not duplicates, f"consumer saw positions twice: {duplicates[:10]}"
    for p, (low, high) in highs.items():
        assert low == 0, f"partition {p} log start offset {low}, want 0"
        offsets = sorted(o for (pp, o) in by_position if pp == p)
        assert offsets == list(range(high)), (
            f"partition {p}: offsets not dense 0..{high - 1}: got {len(offsets)} offsets, "
            f"missing e.g. {sorted(set(range(high)) - set(offsets))[:10]}"
        )
    lost = [(i, pos) for i, pos in acked.items() if by_position.get(pos) != f"k-{i}".encode()]
    assert not lost, f"{len(lost)} acknowledged records lost or misplaced, e.g. {lost[:10]}"
    keys = [k for k in by_position.values()]
    dup_keys = len(keys) - len(set(keys))
    assert dup_keys == 0, f"{dup_keys} records written twice (idempotent retries not deduplicated)"
    assert len(acked) >= 3 * ACKS_PER_PHASE
    print(f"sent={sent} acked={len(acked)} failed={len(failed)} in log={len(by_position)} highs={highs}")
