"""kafka-python 3.x (pure Python) against Ringtail.

Usage: kafka_python_client.py BOOTSTRAP TOPIC_PREFIX produce|verify|read

produce: creates one topic per codec and the edge topic with
KafkaAdminClient, sends the messages of common.py with the producer's
defaults (since kafka-python 3.0: idempotent, acks=all, so common.ACKS
does not apply here), then reads them back by assignment (no group) and
checks them. verify: only reads and checks; read: the same for the codec
topics another client produced (see common.parse_args). All print the
digest of what was read.
"""

import sys
import time

try:
    import kafka
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka import codec as kafka_codec
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

import common

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 30


def check_codecs():
    have = {
        "snappy": kafka_codec.has_snappy(),
        "lz4": kafka_codec.has_lz4(),
        "zstd": kafka_codec.has_zstd(),
    }
    missing = [c for c, ok in have.items() if not ok]
    if missing:
        common.fail(f"kafka-python lacks codec modules for {missing}: run tests/run-all.sh")


def create_topics(bootstrap, names):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    topics = [
        NewTopic(n, num_partitions=common.PARTITIONS, replication_factor=1) for n in names
    ]
    try:
        response = admin.create_topics(topics, timeout_ms=15000)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        common.fail(f"create_topics: {type(e).__name__}: {e}")
    for topic in getattr(response, "topics", getattr(response, "topic_errors", [])):
        error_code = topic[1] if isinstance(topic, tuple) else topic.error_code
        if error_code != 0:
            common.fail(f"create_topics: {topic}")
    admin.close()


def send_all(producer, topic, sends):
    """`sends`: keyword arguments of KafkaProducer.send, in order."""
    futures = [producer.send(topic, **kwargs) for kwargs in sends]
    producer.flush(timeout=TIMEOUT_S)
    for i, f in enumerate(futures):
        try:
            f.get(timeout=TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            common.fail(f"{topic}: message {i} not delivered: {type(e).__name__}: {e}")


def produce(bootstrap, prefix, codec):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=20,
    )
    send_all(
        producer,
        common.topic_name(prefix, codec),
        [
            {"key": m.key, "value": m.value, "headers": list(m.headers)}
            for m in common.expected(prefix, codec, with_headers=True)
        ],
    )
    producer.close()


def produce_edge(bootstrap, prefix):
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    send_all(
        producer,
        common.edge_topic(prefix),
        [
            {"key": k, "value": v, "partition": p, "timestamp_ms": t}
            for p, k, v, t in common.edge_expected(prefix)
        ],
    )
    producer.close()


def consume(bootstrap, topic, total):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    partitions = [TopicPartition(topic, p) for p in range(common.PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    begin = consumer.beginning_offsets(partitions, timeout_ms=10000)
    for tp, low in begin.items():
        if low != 0:
            common.fail(f"{topic}-{tp.partition}: log start offset {low}, expected 0")
    end = {tp.partition: high for tp, high in consumer.end_offsets(partitions, timeout_ms=10000).items()}
    consumed = {p: [] for p in end}
    deadline = time.time() + TIMEOUT_S
    while any(len(consumed[p]) < end[p] for p in end):
        if time.time() > deadline:
            got = {p: len(v) for p, v in consumed.items()}
            common.fail(f"{topic}: read {got} of end offsets {end} within {TIMEOUT_S} s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                headers = tuple((k, v) for k, v in (r.headers or []))
                consumed[tp.partition].append((r.offset, r.key, r.value, headers, r.timestamp))
    consumer.close()
    return end, consumed


def main():
    bootstrap, prefix, mode = common.parse_args(sys.argv)
    print(f"kafka-python {kafka.__version__}", flush=True)
    check_codecs()
    if mode == "produce":
        create_topics(
            bootstrap, [common.topic_name(prefix, c) for c in CODECS] + [common.edge_topic(prefix)]
        )
        for codec in CODECS:
            produce(bootstrap, prefix, codec)
        produce_edge(bootstrap, prefix)
    lines = []
    for codec in CODECS:
        topic = common.topic_name(prefix, codec)
        sent = common.expected(prefix, codec, with_headers=True)
        end, consumed = consume(bootstrap, topic, len(sent))
        common.check_topic(topic, sent, end, consumed, foreign=mode == "read")
        lines.extend(common.digest_lines(topic, consumed))
        print(f"{topic}: {sum(end.values())} messages in order, end offsets {end}")
    if mode != "read":
        topic = common.edge_topic(prefix)
        sent = common.edge_expected(prefix)
        end, consumed = consume(bootstrap, topic, len(sent))
        common.check_edge(topic, sent, end, consumed)
        lines.extend(common.digest_lines(topic, consumed))
        print(f"{topic}: {len(sent)} edge messages exact, end offsets {end}")
    common.print_digest(lines)


if __name__ == "__main__":
    main()
