"""An idempotent confluent-kafka (librdkafka) producer for tests/idempotence.rs.

Usage: idempotent_producer.py BOOTSTRAP TOPIC COUNT PHASE

Creates TOPIC (one partition), then sends COUNT messages b"m-<i>" to
partition 0 with enable.idempotence=true and acks=all, flushing after every
PHASE messages so each phase takes at least one Produce request of its own
(the test's proxy counts them to pick the ones it breaks). Prints
"ACK <i> <offset>" for each delivered message and "ERR <i> <error>" for a
failed one, then reads partition 0 from the beginning to its end and
prints "READ <offset> <value>" for every record. Exits non-zero when
something could not be done at all; the test judges the printed lines.
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

FLUSH_TIMEOUT_S = 120


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, future in admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15).items():
        try:
            future.result(timeout=20)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            fail(f"create_topics {name}: {e}")
    deadline = time.time() + 30
    while True:
        md = admin.list_topics(timeout=10)
        if topic in md.topics and len(md.topics[topic].partitions) == 1:
            return
        if time.time() > deadline:
            fail(f"{topic} not in metadata after create")
        time.sleep(0.2)


def produce(bootstrap, topic, count, phase):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "max.in.flight.requests.per.connection": 5,
            "message.timeout.ms": FLUSH_TIMEOUT_S * 1000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
    )

    def report(i):
        def callback(err, msg):
            if err is not None:
                print(f"ERR {i} {err}", flush=True)
            else:
                print(f"ACK {i} {msg.offset()}", flush=True)

        return callback

    for i in range(count):
        producer.produce(topic, value=f"m-{i}".encode(), partition=0, on_delivery=report(i))
        producer.poll(0)
        if (i + 1) % phase == 0:
            left = producer.flush(FLUSH_TIMEOUT_S)
            if left:
                fail(f"{left} messages not delivered within {FLUSH_TIMEOUT_S} s")
    if producer.flush(FLUSH_TIMEOUT_S):
        fail(f"messages not delivered within {FLUSH_TIMEOUT_S} s")


def read_back(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ringtail-idempotence-reader",
            "enable.auto.commit": False,
        }
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
    consumer.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    deadline = time.time() + 60
    position = low
    while position < high:
        if time.time() > deadline:
            fail(f"read stopped at offset {position} of [{low}, {high})")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"read: {msg.error()}")
        print(f"READ {msg.offset()} {msg.value().decode()}", flush=True)
        position = msg.offset() + 1
    consumer.close()
    print(f"END {high}", flush=True)


def main():
    if len(sys.argv) != 5:
        fail(__doc__)
    bootstrap, topic, count, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, count, phase)
    read_back(bootstrap, topic)


if __name__ == "__main__":
    main()
