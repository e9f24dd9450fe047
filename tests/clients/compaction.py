"""Log compaction seen by confluent-kafka-python (librdkafka).

Usage: compaction.py BOOTSTRAP TOPIC produce|verify STATE_FILE

produce: creates TOPIC (one partition, cleanup.policy=compact, small
segments, a low dirty ratio, a short delete.retention.ms and segment.ms so
the broker's cleaner runs within seconds), then sends waves of updates of
KEYS keys (value `k{key}-r{round}`), then tombstones for the first
TOMBSTONED keys, noting the offset of every record from the delivery
reports. Meanwhile a reader thread reads the partition from the beginning
again and again. Then it waits until a read shows the compacted state.
It writes what was produced to STATE_FILE. verify: reads once and checks
the compacted state against STATE_FILE (after a broker restart).

Every read checks, record by record:
- the record at offset O is exactly the one produced at O (compaction never
  moves or alters a survivor);
- per key, the round only grows (a reader never sees a value older than
  one it saw before, within one pass from the beginning).

The compacted state: each live key's last record is its latest value at
its produced offset, no tombstoned key is left, and far fewer records than
were produced remain.
"""

import json
import sys
import threading
import time

try:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

KEYS = 10
ROUNDS = 120
WAVES = 4
TOMBSTONED = 3
PAD = "compact-" * 8
TIMEOUT_S = 45


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "8192",
        "segment.ms": "300",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1500",
    }
    for t, f in admin.create_topics([NewTopic(topic, 1, 1, config=configs)]).items():
        try:
            f.result(timeout=20)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            fail(f"create_topics {t}: {e}")


def read_all(bootstrap, topic, produced):
    """One pass from offset 0 to the end; checks each record as it comes.
    Returns [(offset, key, value)]."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compaction-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    seen_round = {}
    deadline = time.time() + TIMEOUT_S
    last_offset = -1
    while True:
        if time.time() > deadline:
            fail(f"read did not reach the end {high}; at {last_offset}")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if msg.offset() >= high:
                    break
                continue
            fail(f"consume: {msg.error()}")
        o, k, v = msg.offset(), msg.key(), msg.value()
        if o <= last_offset:
            fail(f"offset {o} after {last_offset}")
        last_offset = o
        key = k.decode()
        want = produced.get(o)
        value = None if v is None else v.decode()
        if want is not None and want != [key, value]:
            fail(f"offset {o} holds {key}={value}, produced {want}")
        rnd = -1 if value is None else int(value.split("-r")[1].split("-")[0])
        rnd = 1 << 30 if value is None else rnd  # a tombstone is the newest
        if rnd < seen_round.get(key, -1):
            fail(f"{key}: round {rnd} at offset {o} after round {seen_round[key]}")
        seen_round[key] = rnd
        out.append((o, key, value))
        if o + 1 >= high:
            break
    consumer.close()
    return out


def compacted(records, latest, tombstoned):
    """Whether `records` is the fully compacted state."""
    last = {}
    for o, k, v in records:
        last[k] = (o, v)
    for k, (o, v) in latest.items():
        if k in tombstoned:
            if k in last:
                return False
        elif last.get(k) != (o, v):
            return False
    return len(records) < 2 * KEYS + 1


def produce(bootstrap, topic, state_file):
    create_topic(bootstrap, topic)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "compression.type": "lz4",
            "acks": "all",
        }
    )
    produced = {}  # offset -> [key, value]
    lock = threading.Lock()
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        v = msg.value()
        with lock:
            produced[msg.offset()] = [msg.key().decode(), None if v is None else v.decode()]

    def snapshot():
        with lock:
            return dict(produced)

    stop = threading.Event()
    passes = [0]
    reader_error = []

    def reader():
        try:
            while not stop.is_set():
                read_all(bootstrap, topic, snapshot())
                passes[0] += 1
                time.sleep(0.02)
        except SystemExit:
            reader_error.append("reader failed (see above)")

    t = threading.Thread(target=reader)
    started = False
    per_wave = ROUNDS // WAVES
    for wave in range(WAVES):
        for rnd in range(wave * per_wave, (wave + 1) * per_wave):
            for key in range(KEYS):
                value = f"k{key}-r{rnd}-{PAD}"
                producer.produce(topic, key=f"key{key}", value=value, on_delivery=on_delivery)
            producer.poll(0)
        producer.flush(20)
        if not started:
            t.start()
            started = True
        time.sleep(0.5)  # segments roll by time; the cleaner runs
    for key in range(TOMBSTONED):
        producer.produce(topic, key=f"key{key}", value=None, on_delivery=on_delivery)
    producer.flush(20)
    if errors:
        fail(f"delivery errors: {errors[:3]}")
    latest = {}
    for o in sorted(produced):
        k, v = produced[o]
        latest[k] = (o, v)
    tombstoned = {f"key{k}" for k in range(TOMBSTONED)}
    deadline = time.time() + TIMEOUT_S
    tick = 0
    while True:
        records = read_all(bootstrap, topic, snapshot())
        if compacted(records, latest, tombstoned):
            break
        if time.time() > deadline:
            fail(f"not compacted after {TIMEOUT_S} s: {len(records)} records: {records[:30]}")
        # As in Kafka, the segment holding the last record is never
        # cleaned: a heartbeat key moves the tombstones out of it.
        producer.produce(topic, key="tick", value=f"tick-r{tick}", on_delivery=on_delivery)
        producer.flush(20)
        tick += 1
        time.sleep(0.3)
    stop.set()
    t.join()
    if reader_error:
        fail(reader_error[0])
    with open(state_file, "w") as f:
        json.dump({"produced": snapshot(), "latest": latest, "tombstoned": sorted(tombstoned)}, f)
    print(
        f"OK produced {len(produced)} records; {len(records)} remain; "
        f"{passes[0]} concurrent reads from the beginning were consistent"
    )


def verify(bootstrap, topic, state_file):
    with open(state_file) as f:
        state = json.load(f)
    produced = {int(o): kv for o, kv in state["produced"].items()}
    latest = {k: tuple(v) for k, v in state["latest"].items()}
    records = read_all(bootstrap, topic, produced)
    if not compacted(records, latest, set(state["tombstoned"])):
        fail(f"not the compacted state after restart: {records[:30]}")
    print(f"OK {len(records)} records after restart")


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("produce", "verify"):
        fail(__doc__)
    bootstrap, topic, mode, state_file = sys.argv[1:]
    if mode == "produce":
        produce(bootstrap, topic, state_file)
    else:
        verify(bootstrap, topic, state_file)


if __name__ == "__main__":
    main()
