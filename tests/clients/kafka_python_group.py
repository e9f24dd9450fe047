"""kafka-python 3.x consumer group (subscribe(), not assign()) against Ringtail.

Usage: kafka_python_group.py BOOTSTRAP first|second

first: creates a 6-partition topic, produces PER_PART records to each
partition with KafkaProducer, starts three KafkaConsumers of one group
(range assignor, manual commits), each polling in its own thread; waits
until every partition has exactly one owner (two each); each owner commits
offset 10 + p (metadata "a-p") for its partitions; one member closes
(LeaveGroup) and its partitions move to the other two (still exactly one
owner each, three each); the new owners commit 20 + p (metadata "b-p") for
all six partitions, which the group's committed offsets then show.

second (after the broker restarted): the committed offsets and metadata are
still there; a new consumer of the group subscribes and its first record of
each partition is the committed offset, and it reads every record from
there to the end (nothing lost, nothing out of order).

Prints one JSON line of what it saw, then OK; or FAIL: <why> and exits 1.
"""

import json
import sys
import threading
import time

try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.structs import OffsetAndMetadata
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", flush=True)
    sys.exit(2)

bootstrap, phase = sys.argv[1], sys.argv[2]
TOPIC, GROUP, PARTS, PER_PART = "kp-orders", "kp-g1", 6, 40
FIRST = {p: 10 + p for p in range(PARTS)}
SECOND = {p: 20 + p for p in range(PARTS)}


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def log(msg):
    print("%.1f %s" % (time.time() % 1000, msg), file=sys.stderr, flush=True)


def wait_for(cond, what, timeout=40):
    log("waiting for " + what)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def consumer(client_id):
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
        max_poll_interval_ms=20000,
        request_timeout_ms=15000,
    )


class Member(threading.Thread):
    """One group member; its KafkaConsumer is created and used in this thread only."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.name = name
        self.assigned = set()
        self.stop = False
        self.error = None
        self.commit_req = None  # {partition: (offset, metadata)}, set by the main thread
        self.commit_done = threading.Event()
        self.committed = {}

    def run(self):
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member.assigned = set()

            def on_partitions_assigned(self, assigned):
                member.assigned = {tp.partition for tp in assigned}

        c = None
        try:
            c = consumer(self.name)
            c.subscribe([TOPIC], listener=Listener())
            while not self.stop:
                req = self.commit_req
                if req is not None and not self.commit_done.is_set():
                    mine = sorted(self.assigned)
                    offsets = {
                        TopicPartition(TOPIC, p): OffsetAndMetadata(req[p][0], req[p][1], -1)
                        for p in mine
                    }
                    c.commit(offsets)
                    self.committed = {p: req[p][0] for p in mine}
                    self.commit_done.set()
                c.poll(timeout_ms=100)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = "%s: %s: %r" % (self.name, type(e).__name__, e)
        finally:
            self.commit_done.set()
            if c is not None:
                c.close(autocommit=False)  # LeaveGroup


def ownership(members):
    """partition -> owner if every partition has exactly one owner, else None."""
    owner = {}
    for m in members:
        for p in set(m.assigned):
            if p in owner:
                return None
            owner[p] = m.name
    return owner if sorted(owner) == list(range(PARTS)) else None


def balanced(members, each):
    return ownership(members) is not None and all(len(m.assigned) == each for m in members)


def check_errors(members):
    errors = [m.error for m in members if m.error]
    if errors:
        fail("consumer errors: %s" % errors)


def commit_round(members, offsets, tag):
    for m in members:
        m.commit_done.clear()
        m.commit_req = {p: (o, "%s-%d" % (tag, p)) for p, o in offsets.items()}
    for m in members:
        if not m.commit_done.wait(30):
            fail("%s did not commit" % m.name)
    check_errors(members)
    done = {}
    for m in members:
        for p, o in m.committed.items():
            if p in done:
                fail("partition %d committed by two members" % p)
            done[p] = o
    if done != offsets:
        fail("round %s committed %s, expected %s" % (tag, done, offsets))
    for m in members:
        m.commit_req = None


def read_committed(c):
    out = {}
    for p in range(PARTS):
        om = c.committed(TopicPartition(TOPIC, p), metadata=True, timeout_ms=15000)
        out[p] = None if om is None else (om.offset, om.metadata)
    return out


if phase == "first":
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTS, replication_factor=1)], timeout_ms=15000)
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    futures = [
        producer.send(TOPIC, key=b"k%d" % i, value=b"%d-%d" % (p, i), partition=p)
        for p in range(PARTS)
        for i in range(PER_PART)
    ]
    producer.flush(30)
    sent = [f.get(timeout=30) for f in futures]
    offsets = sorted((md.partition, md.offset) for md in sent)
    for p in range(PARTS):
        got = [o for q, o in offsets if q == p]
        if got != list(range(PER_PART)):
            fail("partition %d got offsets %s" % (p, got))
    producer.close()

    members = [Member("m%d" % i) for i in range(3)]
    for m in members:
        m.start()
    wait_for(lambda: balanced(members, 2) or any(m.error for m in members), "3 members x 2 partitions")
    check_errors(members)
    first = {m.name: sorted(m.assigned) for m in members}
    for parts in first.values():
        if parts[1] != parts[0] + 1:
            fail("not a range assignment: %s" % first)
    commit_round(members, FIRST, "a")

    leaving = members[2]
    moved = set(leaving.assigned)
    leaving.stop = True
    leaving.join(30)
    if leaving.is_alive():
        fail("the leaving member did not close")
    rest = members[:2]
    wait_for(lambda: balanced(rest, 3) or any(m.error for m in rest), "2 members x 3 partitions")
    check_errors(members)
    second = {m.name: sorted(m.assigned) for m in rest}
    if not moved <= set(p for m in rest for p in m.assigned):
        fail("partitions of the leaving member did not move: %s -> %s" % (sorted(moved), second))
    commit_round(rest, SECOND, "b")
    for m in rest:
        m.stop = True
    for m in rest:
        m.join(30)
    check_errors(members)

    probe = consumer("probe")
    seen = read_committed(probe)
    probe.close(autocommit=False)
    want = {p: (o, "b-%d" % p) for p, o in SECOND.items()}
    if seen != want:
        fail("committed %s, expected %s" % (seen, want))
    print(json.dumps({"first": first, "second": second, "moved": sorted(moved)}), flush=True)
    print("OK", flush=True)
else:
    c = consumer("resumer")
    seen = read_committed(c)
    want = {p: (o, "b-%d" % p) for p, o in SECOND.items()}
    if seen != want:
        fail("committed after restart %s, expected %s" % (seen, want))
    assigned = []

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, parts):
            assigned.append(sorted(tp.partition for tp in parts))

    c.subscribe([TOPIC], listener=Listener())
    got = {p: [] for p in range(PARTS)}
    deadline = time.time() + 40
    while time.time() < deadline and any(len(got[p]) < PER_PART - SECOND[p] for p in range(PARTS)):
        for tp, records in c.poll(timeout_ms=200).items():
            for r in records:
                got[tp.partition].append((r.offset, r.value))
    c.close(autocommit=False)
    first_seen = {p: got[p][0][0] if got[p] else None for p in range(PARTS)}
    if first_seen != SECOND:
        fail("resumed at %s, expected %s" % (first_seen, SECOND))
    for p in range(PARTS):
        want_records = [(i, b"%d-%d" % (p, i)) for i in range(SECOND[p], PER_PART)]
        if got[p] != want_records:
            fail("partition %d read %s, expected %s" % (p, got[p], want_records))
    if assigned[-1:] != [list(range(PARTS))]:
        fail("the resumer was assigned %s" % assigned)
    print(json.dumps({"resumed": first_seen, "read": {p: len(got[p]) for p in got}}), flush=True)
    print("OK", flush=True)
