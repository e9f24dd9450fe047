"""confluent-kafka (librdkafka) client for the multi-broker tests (tests/cluster.rs)
and the cluster soak (perf/cluster-soak.sh). The Rust side starts and
kills the brokers and judges what this script prints; this script only
talks Kafka.

Usage:
  cluster_client.py meta BOOTSTRAP
      Prints "BROKER <id> <host>:<port>" per broker in a Metadata answer and
      "PARTITION <topic> <p> <leader> <replicas> <isr>" per partition
      (replicas and isr comma-separated, "-" when empty).
  cluster_client.py produce BOOTSTRAP TOPIC STOP_FILE [RATE]
      An idempotent producer (enable.idempotence, acks=all) sending values
      "v-<i>" (i = 0, 1, ...), even i keyed ("k-<i % 16>"), odd i unkeyed,
      about RATE messages a second (default 400) until STOP_FILE exists;
      then it flushes. Prints, as delivery reports arrive,
      "ACK <i> <partition> <offset> <unix_ms>" or
      "ERR <i> <partition> <error name> <unix_ms>", and at the end
      "DONE <sent> <acked> <failed>".
  cluster_client.py read BOOTSTRAP TOPIC
      Reads every partition from the beginning to its high watermark (the
      end offset ListOffsets answers) with assign(); prints
      "END <p> <low> <high>" per partition and "READ <p> <offset> <value>"
      per record (value as text, "-" for null).
  cluster_client.py produce-once BOOTSTRAP TOPIC PARTITION ACKS COUNT [TIMEOUT_MS]
      A plain producer (no idempotence, retries=0) sends COUNT messages
      "once-<ACKS>-<i>" to PARTITION with acks=ACKS (0, 1, all), each
      given up after TIMEOUT_MS (message.timeout.ms, default 15000), and
      prints "RESULT <i> OK <offset>" or "RESULT <i> ERR <error name>".

Exits non-zero (with "FAIL: ..." on stderr) only when something could not
be done at all.
"""

import os
import sys
import time

try:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

# Timeouts short enough that a request stuck on a dead or cut-off broker
# is retried elsewhere within seconds, long enough for a leader election.
# cluster_groups.py uses these too.
CLIENT_CONFIG = {
    "socket.timeout.ms": 5000,
    "socket.connection.setup.timeout.ms": 3000,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "retry.backoff.ms": 50,
    "retry.backoff.max.ms": 500,
    "topic.metadata.refresh.interval.ms": 2000,
}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def now_ms():
    return int(time.time() * 1000)


def nodes(ids):
    return ",".join(str(i) for i in ids) if ids else "-"


def meta(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap, **CLIENT_CONFIG})
    try:
        md = admin.list_topics(timeout=10)
    except KafkaException as e:
        fail(f"list_topics: {e}")
    for b in sorted(md.brokers.values(), key=lambda b: b.id):
        print(f"BROKER {b.id} {b.host}:{b.port}")
    for name in sorted(md.topics):
        t = md.topics[name]
        if t.error is not None:
            print(f"TOPIC_ERROR {name} {t.error.name()}")
        for p in sorted(t.partitions.values(), key=lambda p: p.id):
            print(f"PARTITION {name} {p.id} {p.leader} {nodes(p.replicas)} {nodes(p.isrs)}")
    sys.stdout.flush()


def produce(bootstrap, topic, stop_file, rate):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "max.in.flight.requests.per.connection": 5,
            # The test stops within a minute; nothing may time out before.
            "message.timeout.ms": 120000,
            "request.timeout.ms": 5000,
            **CLIENT_CONFIG,
        }
    )
    counts = {"acked": 0, "failed": 0}

    def report(i):
        def callback(err, msg):
            if err is not None:
                counts["failed"] += 1
                print(f"ERR {i} {msg.partition()} {err.name()} {now_ms()}", flush=True)
            else:
                counts["acked"] += 1
                print(f"ACK {i} {msg.partition()} {msg.offset()} {now_ms()}", flush=True)

        return callback

    interval = 1.0 / rate
    start = time.monotonic()
    i = 0
    while not os.path.exists(stop_file):
        key = f"k-{i % 16}".encode() if i % 2 == 0 else None
        while True:
            try:
                producer.produce(topic, value=f"v-{i}".encode(), key=key, on_delivery=report(i))
                break
            except BufferError:
                producer.poll(0.05)
        i += 1
        # Paced: message i goes at start + i * interval.
        wait = start + i * interval - time.monotonic()
        producer.poll(max(wait, 0))
    left = producer.flush(150)
    print(f"DONE {i} {counts['acked']} {counts['failed']}", flush=True)
    if left:
        fail(f"{left} messages neither delivered nor failed after the flush")


def read(bootstrap, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ringtail-cluster-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **CLIENT_CONFIG,
        }
    )
    md = consumer.list_topics(topic, timeout=15)
    if topic not in md.topics or md.topics[topic].error is not None:
        fail(f"{topic} not in metadata: {md.topics.get(topic)}")
    partitions = sorted(md.topics[topic].partitions)
    ends = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
        ends[p] = high
        print(f"END {p} {low} {high}", flush=True)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions if ends[p] > 0])
    position = {p: 0 for p in partitions}
    deadline = time.time() + 60
    while any(position[p] < ends[p] for p in partitions):
        if time.time() > deadline:
            fail(f"read stopped at {position} of {ends}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                continue
            fail(f"read: {msg.error()}")
        p = msg.partition()
        if msg.offset() >= ends[p]:
            continue
        value = "-" if msg.value() is None else msg.value().decode()
        print(f"READ {p} {msg.offset()} {value}")
        position[p] = msg.offset() + 1
    sys.stdout.flush()
    consumer.close()


def produce_once(bootstrap, topic, partition, acks, count, timeout_ms):
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "enable.idempotence": False,
            "retries": 0,
            "message.timeout.ms": timeout_ms,
            "request.timeout.ms": min(timeout_ms, 10000),
            **CLIENT_CONFIG,
        }
    )

    def report(i):
        def callback(err, msg):
            if err is not None:
                print(f"RESULT {i} ERR {err.name()}", flush=True)
            else:
                print(f"RESULT {i} OK {msg.offset()}", flush=True)

        return callback

    for i in range(count):
        producer.produce(topic, value=f"once-{acks}-{i}".encode(), partition=partition, on_delivery=report(i))
        producer.poll(0)
    if producer.flush(timeout_ms / 1000 + 15):
        fail(f"messages neither delivered nor failed within {timeout_ms} ms")


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "meta":
        meta(args[1])
    elif len(args) in (4, 5) and args[0] == "produce":
        rate = float(args[4]) if len(args) == 5 else 400.0
        produce(args[1], args[2], args[3], rate)
    elif len(args) == 3 and args[0] == "read":
        read(args[1], args[2])
    elif len(args) in (6, 7) and args[0] == "produce-once":
        timeout_ms = int(args[6]) if len(args) == 7 else 15000
        produce_once(args[1], args[2], int(args[3]), args[4], int(args[5]), timeout_ms)
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
