"""Kafka error codes as real clients surface them (raw-protocol error tests live in Rust)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from compatlib import admin, create_topic


def create_error(bootstrap: str, topic: NewTopic) -> KafkaError:
    a = admin(bootstrap)
    futures = a.create_topics([topic], operation_timeout=30, request_timeout=30)
    with pytest.raises(KafkaException) as excinfo:
        futures[topic.topic].result(timeout=60)
    return excinfo.value.args[0]


def test_create_existing_topic_reports_topic_already_exists(strom):
    create_topic(strom.bootstrap, "exists", partitions=2)
    err = create_error(strom.bootstrap, NewTopic("exists", num_partitions=2, replication_factor=1))
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err


def test_kafka_python_admin_raises_topic_already_exists_error(strom):
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic
    from kafka.errors import TopicAlreadyExistsError

    create_topic(strom.bootstrap, "exists-kp", partitions=1)
    client = KafkaAdminClient(bootstrap_servers=strom.bootstrap)
    try:
        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics([KNewTopic("exists-kp", num_partitions=1, replication_factor=1)])
    finally:
        client.close()


@pytest.mark.parametrize("name", ["bad/name", "spaces are bad", "..", "x" * 250])
def test_create_topic_with_invalid_name_reports_invalid_topic_exception(strom, name):
    err = create_error(strom.bootstrap, NewTopic(name, num_partitions=1, replication_factor=1))
    assert err.code() == KafkaError.TOPIC_EXCEPTION, err  # Kafka's INVALID_TOPIC_EXCEPTION (17)


def test_create_topic_with_zero_partitions_reports_invalid_partitions(strom):
    err = create_error(strom.bootstrap, NewTopic("zero-partitions", num_partitions=0, replication_factor=1))
    assert err.code() == KafkaError.INVALID_PARTITIONS, err


def test_create_topic_with_replication_factor_above_broker_count_reports_invalid_replication_factor(strom):
    err = create_error(strom.bootstrap, NewTopic("rf3", num_partitions=1, replication_factor=3))
    assert err.code() == KafkaError.INVALID_REPLICATION_FACTOR, err


def test_delete_unknown_topic_reports_unknown_topic_or_partition(strom):
    a = admin(strom.bootstrap)
    futures = a.delete_topics(["never-created"], operation_timeout=30, request_timeout=30)
    with pytest.raises(KafkaException) as excinfo:
        futures["never-created"].result(timeout=60)
    assert excinfo.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def produce_one(bootstrap: str, topic: str, value: bytes, **conf) -> tuple[KafkaError | None, int]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, **conf})
    result: list = []
    producer.produce(topic, value=value, partition=0, on_delivery=lambda err, msg: result.append((err, msg.offset())))
    assert producer.flush(60) == 0
    return result[0]


def test_record_over_topic_max_message_bytes_reports_msg_size_too_large_and_is_not_stored(strom):
    create_topic(strom.bootstrap, "small-max", partitions=1, config={"max.message.bytes": "10000"})
    err, _ = produce_one(strom.bootstrap, "small-max", b"x" * 50_000, **{"compression.type": "none"})
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    # The rejected batch left no trace: the next small record gets offset 0.
    err, offset = produce_one(strom.bootstrap, "small-max", b"small")
    assert err is None and offset == 0, (err, offset)


def test_record_over_broker_message_max_bytes_reports_msg_size_too_large(strom):
    create_topic(strom.bootstrap, "default-max", partitions=1)
    # Let the client send 2 MiB; the broker's default message.max.bytes (1048588) must refuse it.
    err, _ = produce_one(
        strom.bootstrap,
        "default-max",
        b"x" * (2 * 1024 * 1024),
        **{"compression.type": "none", "message.max.bytes": 10_000_000, "batch.size": 10_000_000},
    )
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
