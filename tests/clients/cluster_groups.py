"""confluent-kafka (librdkafka) consumer groups for tests/cluster_groups.rs:
group coordination failing over with a replicated __consumer_offsets. The
Rust side starts and kills the brokers and judges what this prints.

Usage:
  cluster_groups.py produce BOOTSTRAP TOPIC COUNT
      An idempotent acks=all producer sends "v-<i>" (i = 0 .. COUNT-1,
      keyed "k-<i % 16>"); prints "ACK <i> <partition> <offset>" per
      record. Exits 1 if any record failed.
  cluster_groups.py commit BOOTSTRAP TOPIC GROUP TAKE
      Two consumers in GROUP (subscribe, manual commits) poll in turn until
      both have an assignment and together they read at least TAKE
      records; each then commits its positions synchronously. Prints
      "ASSIGNED <consumer> <p,...>", "READ <p> <offset> <value>" per
      record, "COMMITTED <p> <offset>" per committed partition (as
      committed() reads it back), then closes both.
  cluster_groups.py coordinator BOOTSTRAP GROUP
      Prints "COORDINATOR <id> <host>:<port>", the broker FindCoordinator
      names (through AdminClient.describe_consumer_groups), retrying while
      there is none.
  cluster_groups.py resume BOOTSTRAP TOPIC GROUP PARTITIONS
      A new consumer of GROUP first prints what the group has committed
      ("COMMITTED <p> <offset>", -1 when nothing), then subscribes and
      reads to the end of every partition (the high watermark), printing
      "READ <p> <offset> <value>" and at last "END <p> <high>".
  cluster_groups.py survive BOOTSTRAP TOPIC GROUP GO_FILE
      One consumer of GROUP reads the first half of every partition,
      commits, prints "COMMITTED <p> <offset>" per partition, "MEMBER
      <member id>" and "READY", and pauses (heartbeats go on) until
      GO_FILE exists; then it reads on to the end, commits again and
      prints "READ <p> <offset> <value>" per record read after GO,
      "COMMITTED ..." again, "MEMBER <member id>" and "ASSIGNS <n>" (how
      many assignments it got: 1 when it never had to rejoin).

Exits non-zero with "FAIL: ..." on stderr when something cannot be done.
"""

import sys
import time

try:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
except ImportError as e:
    print(f"FAIL: {e}: run tests/run-all.sh to install the clients into .venv", file=sys.stderr)
    sys.exit(2)

from cluster_client import CLIENT_CONFIG, fail


def out(line):
    print(line, flush=True)


def consumer(bootstrap, group, name):
    return Consumer(
        {
            **CLIENT_CONFIG,
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
            "enable.auto.offset.store": False,
        }
    )


def produce(bootstrap, topic, count):
    p = Producer(
        {
            **CLIENT_CONFIG,
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    failed = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                failed.append((i, err.name()))
            else:
                out(f"ACK {i} {msg.partition()} {msg.offset()}")

        return cb

    for i in range(count):
        p.produce(topic, key=f"k-{i % 16}", value=f"v-{i}", on_delivery=report(i))
        p.poll(0)
    if p.flush(30) != 0:
        fail("the producer did not flush in 30 s")
    if failed:
        fail(f"{len(failed)} records failed, first {failed[:5]}")


def committed(c, topic, partitions, deadline):
    """The group's committed offsets, retried while the coordinator moves."""
    tps = [TopicPartition(topic, p) for p in partitions]
    last = None
    while time.time() < deadline:
        try:
            return c.committed(tps, timeout=5)
        except KafkaException as e:
            last = e
            time.sleep(0.2)
    fail(f"committed() did not answer: {last}")


def commit(bootstrap, topic, group, limits):
    limits = {int(p): int(n) for p, n in (x.split(":") for x in limits.split(","))}
    cs = [consumer(bootstrap, group, f"c{i}") for i in range(2)]
    taken = {p: 0 for p in limits}

    def revoked(_consumer, partitions):
        # A rebalance (the second consumer joining late) drops what was
        # stored: the new owner reads those partitions again from 0.
        for tp in partitions:
            taken[tp.partition] = 0

    for c in cs:
        c.subscribe([topic], on_revoke=revoked)
    deadline = time.time() + 40
    assigned = [[] for _ in cs]
    while time.time() < deadline:
        for i, c in enumerate(cs):
            # Whatever has arrived, without waiting long on a consumer
            # that has nothing while the other has plenty.
            msgs = c.consume(num_messages=500, timeout=0.05)
            assigned[i] = [tp.partition for tp in c.assignment()]
            for msg in msgs:
                if msg.error():
                    fail(f"c{i}: {msg.error()}")
                p = msg.partition()
                if taken.get(p, 0) >= limits.get(p, 0) or msg.offset() != taken[p]:
                    continue  # past its limit (or a redelivery): not stored
                taken[p] += 1
                c.store_offsets(message=msg)
                out(f"READ {p} {msg.offset()} {msg.value().decode()}")
        owned = sorted(p for a in assigned for p in a)
        if all(assigned) and owned == sorted(limits) and taken == limits:
            break
    else:
        fail(f"read {taken} of {limits}, assignments {assigned}, in 40 s")
    parts = []
    for i, c in enumerate(cs):
        out(f"ASSIGNED c{i} {','.join(map(str, sorted(assigned[i])))}")
        try:
            done = c.commit(asynchronous=False) or []
        except KafkaException as e:
            fail(f"c{i}: commit: {e}")
        for tp in done:
            if tp.error is not None:
                fail(f"c{i}: commit of partition {tp.partition}: {tp.error}")
            if tp.offset >= 0:  # partitions it stored offsets of
                parts.append(tp.partition)
    for tp in committed(cs[0], topic, sorted(parts), time.time() + 20):
        out(f"COMMITTED {tp.partition} {tp.offset}")
    for c in cs:
        c.close()


def coordinator(bootstrap, group):
    admin = AdminClient({**CLIENT_CONFIG, "bootstrap.servers": bootstrap})
    deadline = time.time() + 30
    last = None
    while time.time() < deadline:
        try:
            d = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            n = d.coordinator
            out(f"COORDINATOR {n.id} {n.host}:{n.port}")
            return
        except KafkaException as e:
            last = e
            time.sleep(0.2)
    fail(f"no coordinator for {group} in 30 s: {last}")


def resume(bootstrap, topic, group, partitions):
    c = consumer(bootstrap, group, "resumer")
    deadline = time.time() + 40
    # Where the group resumes: its committed offset, else the log start
    # (0: nothing is deleted in the test).
    position = {}
    for tp in committed(c, topic, range(partitions), deadline):
        out(f"COMMITTED {tp.partition} {tp.offset if tp.offset >= 0 else -1}")
        position[tp.partition] = max(tp.offset, 0)
    ends = ends_of(c, topic, partitions, deadline)
    c.subscribe([topic])
    while any(position[p] < ends[p] for p in ends):
        if time.time() > deadline:
            fail(f"read to {position}, the ends are {ends}")
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            fail(f"resumer: {msg.error()}")
        position[msg.partition()] = msg.offset() + 1
        out(f"READ {msg.partition()} {msg.offset()} {msg.value().decode()}")
    for p, high in sorted(ends.items()):
        out(f"END {p} {high}")
    c.close()


def ends_of(c, topic, partitions, deadline):
    ends = {}
    for p in range(partitions):
        while True:
            try:
                ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                break
            except KafkaException as e:
                if time.time() > deadline:
                    fail(f"watermarks of partition {p}: {e}")
                time.sleep(0.2)
    return ends


def read_until(c, position, limits, deadline, show):
    """Reads (storing offsets) until position[p] == limits[p] for all p."""
    while any(position[p] < limits[p] for p in limits):
        if time.time() > deadline:
            fail(f"read to {position}, wanted {limits}")
        for msg in c.consume(num_messages=500, timeout=0.1):
            if msg.error():
                fail(f"survivor: {msg.error()}")
            p = msg.partition()
            if msg.offset() != position[p] or position[p] >= limits[p]:
                continue
            position[p] += 1
            c.store_offsets(message=msg)
            if show:
                out(f"READ {p} {msg.offset()} {msg.value().decode()}")


def commit_all(c, topic, partitions, deadline):
    last = None
    while time.time() < deadline:
        try:
            c.commit(asynchronous=False)
            break
        except KafkaException as e:
            last = e  # the coordinator is moving: librdkafka finds it again
            time.sleep(0.2)
    else:
        fail(f"commit: {last}")
    for tp in committed(c, topic, range(partitions), deadline):
        out(f"COMMITTED {tp.partition} {tp.offset}")


def survive(bootstrap, topic, group, go_file):
    import os

    c = consumer(bootstrap, group, "survivor")
    assigns = []
    c.subscribe([topic], on_assign=lambda _c, tps: assigns.append(len(tps)))
    deadline = time.time() + 40
    partitions = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
    ends = ends_of(c, topic, partitions, deadline)
    position = {p: 0 for p in ends}
    read_until(c, position, {p: e // 2 for p, e in ends.items()}, deadline, False)
    commit_all(c, topic, partitions, deadline)
    out(f"MEMBER {c.memberid()}")
    # Records past the halves were fetched and skipped: go back to them.
    for p, o in position.items():
        c.seek(TopicPartition(topic, p, o))
    out("READY")
    c.pause(c.assignment())
    while not os.path.exists(go_file):
        if time.time() > deadline:
            fail("no go in 40 s")
        c.poll(0.1)  # serves callbacks; nothing is delivered while paused
    c.resume(c.assignment())
    deadline = time.time() + 40
    read_until(c, position, ends, deadline, True)
    commit_all(c, topic, partitions, deadline)
    out(f"MEMBER {c.memberid()}")
    out(f"ASSIGNS {len(assigns)}")
    c.close()


def main():
    args = sys.argv[1:]
    if args[:1] == ["produce"] and len(args) == 4:
        produce(args[1], args[2], int(args[3]))
    elif args[:1] == ["commit"] and len(args) == 5:
        commit(args[1], args[2], args[3], args[4])
    elif args[:1] == ["coordinator"] and len(args) == 3:
        coordinator(args[1], args[2])
    elif args[:1] == ["survive"] and len(args) == 5:
        survive(args[1], args[2], args[3], args[4])
    elif args[:1] == ["resume"] and len(args) == 5:
        resume(args[1], args[2], args[3], int(args[4]))
    else:
        fail(f"usage: see the docstring; got {args}")


if __name__ == "__main__":
    main()
