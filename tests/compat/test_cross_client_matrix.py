"""Cross-client matrix: every producer x every compression, read back by the other clients.

For each producer in {confluent-kafka, kafka-python, java} and compression in
{none, gzip, snappy, lz4, zstd}: produce N keyed records with headers and explicit
CreateTime timestamps (idempotent, acks=all) to a fresh 3-partition topic, then consume it
from the beginning with each of the two OTHER clients (partition assignment, no group) and
check exactly-once delivery, per-partition order, offsets, keys, values, headers and
timestamps (compatlib.check_exactly_once). N = 2,000 by default, 100,000 with
STROM_COMPAT_FULL=1.
"""

from __future__ import annotations

import pytest

from compatlib import (
    COMPRESSIONS,
    CONSUMERS,
    PRODUCERS,
    check_exactly_once,
    consume,
    create_topic,
    produce,
    record_count,
)

PARTITIONS = 3


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_records_survive_producer_to_other_clients_intact(strom, java_classpath, producer, compression):
    n = record_count()
    topic = f"matrix-{producer}-{compression}"
    create_topic(strom.bootstrap, topic, partitions=PARTITIONS)
    produced = produce(producer, strom.bootstrap, topic, n, compression, java_classpath)
    for consumer in CONSUMERS:
        if consumer == producer:
            continue
        consumed = consume(consumer, strom.bootstrap, topic, PARTITIONS, n, java_classpath)
        check_exactly_once(produced, consumed, producer, n, consumer)
