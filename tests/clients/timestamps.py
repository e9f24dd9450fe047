"""ListOffsets by timestamp through kafka-python's offsets_for_times.

Usage: timestamps.py BOOTSTRAP TOPIC_PREFIX

For each codec in CODECS, topic `{prefix}-ts-{codec}` (one partition) gets
two batches with explicit CreateTime timestamps: offsets 0-4 at T, T+10,
..., T+40 and offsets 5-7 at T+100, T+110, T+120. Kafka (KIP-79,
`FileRecords.searchForTimestamp`) answers a timestamp query with the first
*record* whose timestamp is at or after the target, and that record's
timestamp, decompressing a compressed batch to find it; `None` when no
record is that late.

Topic `{prefix}-ts-unordered` gets one batch whose timestamps are not in
offset order (T+50, T+10, T+20). ListOffsets v7's MAX_TIMESTAMP (KIP-734,
asked through confluent-kafka's AdminClient.list_offsets) must answer with
the record holding the largest timestamp: offset 0, T+50.

Each answer is checked; all mismatches are listed before the script fails.
"""

import sys

try:
    from confluent_kafka import TopicPartition as ConfluentTopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec
    from kafka import KafkaProducer, KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

CODECS = ["none", "gzip"]
T = 1_700_000_000_000
BATCHES = [[T + 10 * i for i in range(5)], [T + 100, T + 110, T + 120]]
TARGETS = [T - 5, T, T + 5, T + 10, T + 35, T + 40, T + 41, T + 100, T + 105, T + 120, T + 121]
UNORDERED = [T + 50, T + 10, T + 20]


def kafka_answer(target):
    """(offset, timestamp) Kafka gives for `target`, or None."""
    offset = 0
    for batch in BATCHES:
        for ts in batch:
            if ts >= target:
                return (offset, ts)
            offset += 1
    return None


def main():
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} BOOTSTRAP TOPIC_PREFIX", file=sys.stderr)
        sys.exit(2)
    bootstrap, prefix = sys.argv[1], sys.argv[2]
    topics = [f"{prefix}-ts-{c}" for c in CODECS]
    unordered = f"{prefix}-ts-unordered"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics + [unordered]]
    )
    admin.close()
    for codec, topic in zip(CODECS, topics):
        # One flush per batch, with a linger long enough to gather it.
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=1000,
        )
        for batch in BATCHES:
            futures = [
                producer.send(topic, value=f"at {ts}".encode(), partition=0, timestamp_ms=ts)
                for ts in batch
            ]
            producer.flush()
            for f in futures:
                f.get(timeout=10)
        producer.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=1000)
    futures = [
        producer.send(unordered, value=f"at {ts}".encode(), partition=0, timestamp_ms=ts)
        for ts in UNORDERED
    ]
    producer.flush()
    for f in futures:
        f.get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    wrong = []
    for topic in topics:
        tp = TopicPartition(topic, 0)
        for target in TARGETS:
            got = consumer.offsets_for_times({tp: target})[tp]
            got = None if got is None else (got.offset, got.timestamp)
            want = kafka_answer(target)
            verdict = "ok" if got == want else "WRONG"
            print(f"{topic}: timestamp {target - T:+d}: got {got}, Kafka answers {want}: {verdict}")
            if got != want:
                wrong.append(f"{topic} T{target - T:+d}: (offset, timestamp) {got}, Kafka answers {want}")
    consumer.close()

    tp = ConfluentTopicPartition(unordered, 0)
    # Keep the client referenced until the future completes.
    confluent_admin = AdminClient({"bootstrap.servers": bootstrap})
    future = confluent_admin.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=10)[tp]
    answer = future.result(timeout=20)
    got = (answer.offset, answer.timestamp)
    want = (0, T + 50)
    verdict = "ok" if got == want else "WRONG"
    print(f"{unordered}: max timestamp: got {got}, Kafka answers {want}: {verdict}")
    if got != want:
        wrong.append(f"{unordered} MAX_TIMESTAMP: (offset, timestamp) {got}, Kafka answers {want}")
    if wrong:
        print("FAIL: ListOffsets by timestamp differs from Kafka:\n  " + "\n  ".join(wrong), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
