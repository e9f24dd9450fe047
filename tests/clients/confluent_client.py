"""confluent-kafka-python (librdkafka) against Ringtail.

Usage: confluent_client.py BOOTSTRAP TOPIC_PREFIX produce|verify|read

produce: creates one topic per codec and the edge topic with the admin
API, sends the messages of common.py (codec topics with common.ACKS), then
reads them back by assignment (no consumer group: Ringtail has no group
coordinator yet) and checks them. It also checks that a new message wakes
a consumer's parked (long-poll) Fetch at once, on `{prefix}-tail`. verify: only reads and checks; read: the
same for the codec topics another client produced (see common.parse_args).
All print the digest of what was read.
"""

import sys
import time

try:
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

import common

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TIMEOUT_S = 30


def create_topics(bootstrap, names):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(n, common.PARTITIONS, 1) for n in names]
    for topic, future in admin.create_topics(topics, request_timeout=15).items():
        try:
            future.result(timeout=20)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            common.fail(f"create_topics {topic}: {e}")
    # The metadata must show the partitions before producing by key.
    deadline = time.time() + TIMEOUT_S
    names = set(names)
    while True:
        md = admin.list_topics(timeout=10)
        ready = {
            n for n in names if n in md.topics and len(md.topics[n].partitions) == common.PARTITIONS
        }
        if ready == names:
            return
        if time.time() > deadline:
            common.fail(f"topics {sorted(names - ready)} not in metadata after create")
        time.sleep(0.2)


def make_producer(bootstrap, codec, acks):
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "acks": str(acks),
        }
    )


def flush(producer, topic, errors):
    left = producer.flush(TIMEOUT_S)
    if left:
        common.fail(f"{topic}: {left} messages not delivered within {TIMEOUT_S} s")
    if errors:
        common.fail(f"{topic}: delivery failed: {errors[:5]}")


def on_delivery(errors):
    def callback(err, msg):
        if err is not None:
            errors.append(f"{msg.topic()}-{msg.partition()}: {err}")

    return callback


def produce(bootstrap, prefix, codec):
    errors = []
    producer = make_producer(bootstrap, codec, common.ACKS.get(codec, "all"))
    topic = common.topic_name(prefix, codec)
    for m in common.expected(prefix, codec, with_headers=True):
        producer.produce(
            topic, key=m.key, value=m.value, headers=list(m.headers), on_delivery=on_delivery(errors)
        )
        producer.poll(0)
    flush(producer, topic, errors)


def produce_edge(bootstrap, prefix):
    errors = []
    producer = make_producer(bootstrap, "none", "all")
    topic = common.edge_topic(prefix)
    for partition, key, value, timestamp_ms in common.edge_expected(prefix):
        producer.produce(
            topic,
            key=key,
            value=value,
            partition=partition,
            timestamp=timestamp_ms,
            on_delivery=on_delivery(errors),
        )
        producer.poll(0)
    flush(producer, topic, errors)


def check_long_poll(bootstrap, prefix):
    """A consumer at the end of a partition has a Fetch parked (up to
    fetch.wait.max.ms = 10 s); a new message must wake it at once."""
    topic = f"{prefix}-tail"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ringtail-assign-only",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10000,
        }
    )
    consumer.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_END)])
    settle = time.time() + 2
    while time.time() < settle:
        msg = consumer.poll(0.1)
        if msg is not None:
            common.fail(f"{topic}: read {msg.value()!r} ({msg.error()}) from an empty partition")
    producer = make_producer(bootstrap, "none", 1)
    for i in range(3):
        value = f"tail-{i}".encode()
        start = time.time()
        producer.produce(topic, value=value, partition=0)
        producer.flush(10)
        while True:
            msg = consumer.poll(0.05)
            waited = time.time() - start
            if msg is not None:
                if msg.error() or msg.value() != value:
                    common.fail(f"{topic}: long poll read {msg.value()!r} ({msg.error()}), sent {value!r}")
                break
            if waited > 5:
                common.fail(f"{topic}: message {i} not read {waited:.1f} s after it was produced")
        if waited > 2:
            common.fail(f"{topic}: a parked fetch took {waited:.2f} s to return a new message")
        print(f"{topic}: long poll returned message {i} {waited * 1000:.0f} ms after the produce")
    consumer.close()


def end_offsets(consumer, topic, total):
    """Waits until the partitions' end offsets add up to `total` (acks=0
    producers do not wait for the append) or the timeout; returns them."""
    deadline = time.time() + TIMEOUT_S
    while True:
        end = {}
        for p in range(common.PARTITIONS):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if low != 0:
                common.fail(f"{topic}-{p}: log start offset {low}, expected 0")
            end[p] = high
        if sum(end.values()) >= total or time.time() > deadline:
            return end
        time.sleep(0.1)


def consume(bootstrap, topic, total):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka insists on a group id, but assign() with no
            # commits never talks to a group coordinator.
            "group.id": "ringtail-assign-only",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    end = end_offsets(consumer, topic, total)
    consumer.assign(
        [TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(common.PARTITIONS)]
    )
    consumed = {p: [] for p in end}
    deadline = time.time() + TIMEOUT_S
    while any(len(consumed[p]) < end[p] for p in end):
        if time.time() > deadline:
            got = {p: len(v) for p, v in consumed.items()}
            common.fail(f"{topic}: read {got} of end offsets {end} within {TIMEOUT_S} s")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            common.fail(f"{topic}: consume error {msg.error()}")
        headers = tuple((k, v) for k, v in (msg.headers() or []))
        timestamp_ms = msg.timestamp()[1]
        consumed[msg.partition()].append(
            (msg.offset(), msg.key(), msg.value(), headers, timestamp_ms)
        )
    consumer.close()
    return end, consumed


def main():
    bootstrap, prefix, mode = common.parse_args(sys.argv)
    print(
        f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}",
        flush=True,
    )
    if mode == "produce":
        create_topics(
            bootstrap,
            [common.topic_name(prefix, c) for c in CODECS]
            + [common.edge_topic(prefix), f"{prefix}-tail"],
        )
        for codec in CODECS:
            produce(bootstrap, prefix, codec)
        produce_edge(bootstrap, prefix)
        check_long_poll(bootstrap, prefix)
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
