#!/usr/bin/env bash
# Consumer group rebalance time (issue 4): a 3-member confluent-kafka
# (librdkafka) group subscribed to a 6-partition topic on one Ringtail
# node; one member leaves (close(), which sends LeaveGroup) and the time
# until both remaining members have their new assignment (their on_assign
# callbacks, three partitions each) is measured. The leave comes at a
# random (seeded) point of the members' heartbeat cycle. A new member then
# joins to make three again (not measured), and the round repeats.
#
#   perf/rebalance.sh                      # 20 rounds, librdkafka defaults
#   ROUNDS=50 HEARTBEAT_MS=300 perf/rebalance.sh
#   RINGTAIL=path/to/ringtail perf/rebalance.sh   # skip the release build
#   SEED=7 perf/rebalance.sh     # the same leave times (printed each run)
#
# The time is bound by latency, not throughput: the remaining members
# learn of the rebalance at their next heartbeat (heartbeat.interval.ms,
# librdkafka's default 3000 ms), rejoin, and the leader assigns. So it is
# fine on a busy machine. Needs the project's .venv (tests/run-all.sh
# installs confluent-kafka into it). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${ROUNDS:-20}
heartbeat_ms=${HEARTBEAT_MS:-3000}
python=$root/.venv/bin/python
if ! "$python" -c 'import confluent_kafka' 2>/dev/null; then
  echo "needs $python with confluent_kafka: run tests/run-all.sh once, or" >&2
  echo "  python3 -m venv .venv && .venv/bin/pip install -r tests/clients/requirements.txt" >&2
  exit 1
fi
if [ -z "${RINGTAIL:-}" ]; then
  cargo build --release -q -p ringtail
fi
ringtail=${RINGTAIL:-${CARGO_TARGET_DIR:-$root/target}/release/ringtail}
data=$(mktemp -d /tmp/ringtail-rebalance.XXXXXX)
port=${PORT:-19292}
bootstrap=127.0.0.1:$port

"$ringtail" broker --override log.dirs="$data/data" --override listeners=PLAINTEXT://$bootstrap \
  > "$data/broker.log" 2>&1 &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

seed=${SEED:-$(date +%s)}
echo "rebalance after a leave: 3 members, 6 partitions, $rounds rounds, heartbeat.interval.ms=$heartbeat_ms, SEED=$seed"
"$python" - "$bootstrap" "$rounds" "$heartbeat_ms" "$seed" <<'EOF'
import math, random, sys, threading, time
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, rounds, heartbeat_ms, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
TOPIC, GROUP, PARTITIONS = "rebalance", "rebalance-bench", 6
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)

class Member(threading.Thread):
    count = 0
    def __init__(self):
        super().__init__(daemon=True)
        Member.count += 1
        self.name = "m%d" % Member.count
        self.lock = threading.Lock()
        self.assigned, self.assigned_at = frozenset(), 0.0
        self.stop, self.closed_at = False, None

    def run(self):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": self.name,
                      "heartbeat.interval.ms": heartbeat_ms, "session.timeout.ms": 30000,
                      "enable.auto.commit": False})
        def on_assign(consumer, parts):
            with self.lock:
                self.assigned = frozenset(p.partition for p in parts)
                self.assigned_at = time.monotonic()
        def on_revoke(consumer, parts):
            with self.lock:
                self.assigned = frozenset()
        c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)
        while not self.stop:
            c.poll(0.005)
        self.closed_at = time.monotonic()
        c.close()

    def state(self):
        with self.lock:
            return self.assigned, self.assigned_at

def wait_for(cond, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for " + what)
        time.sleep(0.002)

def balanced(members, each, since=0.0):
    states = [m.state() for m in members]
    parts = [p for a, _ in states for p in a]
    return (all(len(a) == each and at > since for a, at in states)
            and sorted(parts) == list(range(PARTITIONS)))

members = [Member() for _ in range(3)]
for m in members:
    m.start()
samples = []
for r in range(rounds):
    wait_for(lambda: balanced(members, 2), "three members with two partitions each")
    # Leave at a random point of the heartbeat cycle: the members' timers
    # restart with each assignment, so leaving right after one would
    # always wait a whole interval.
    time.sleep(heartbeat_ms / 1000 + rng.uniform(0, heartbeat_ms / 1000))
    victim = members.pop(0)
    victim.stop = True
    wait_for(lambda: victim.closed_at is not None, "the leaving member to close")
    t0 = victim.closed_at
    wait_for(lambda: balanced(members, 3, since=t0), "two members with three partitions each")
    dt = max(m.state()[1] for m in members) - t0
    samples.append(dt * 1000)
    print("round %2d: %7.1f ms" % (r + 1, dt * 1000), flush=True)
    victim.join()
    members.append(Member())
    members[-1].start()

def rank(q):
    # Nearest rank: the smallest sample with at least q of them at or below.
    s = sorted(samples)
    return s[max(0, math.ceil(q * len(s)) - 1)]

print("leave -> new assignment (ms): p50 %.1f  p99 %.1f  max %.1f  (min %.1f, %d rounds)"
      % (rank(0.50), rank(0.99), max(samples), min(samples), len(samples)), flush=True)
for m in members:
    m.stop = True
for m in members:
    m.join()
EOF
