"""What every client test produces and checks, shared by the Python clients.

tests/clients/kafkajs.js and tests/clients/kcat.sh follow the same scheme;
keep them in step when this changes.

Each codec gets its own topic `{prefix}-{codec}` with PARTITIONS
partitions. The producer sends KEYED messages with keys `key-{i % KEYS}`,
then UNKEYED messages without a key. Values are compressible (a repeated
pad) so every codec really shrinks the batch, and carry the message's
production index so the consumer can check order.

The consumer reads every partition from offset 0 to its end offset and
checks, per topic:

- the end offsets add up to the number sent (nothing lost, nothing twice),
  each partition's offsets run 0, 1, 2, ... without gaps;
- the (key, value, headers) read are exactly those sent;
- inside each partition, messages are in production order;
- all messages of one key are in one partition.

The codec topics are produced with ACKS[codec] (0, 1 or all), where the
client lets the test choose; after acks=0 the consumer waits for the end
offsets to reach the count sent.

The Python and kafkajs clients also fill `{prefix}-edge` (uncompressed),
sending each of EDGE's messages to an explicit partition with an explicit
CreateTime timestamp: a tombstone (null value), empty key and value, a null
key with an empty value, binary bytes, a 512 KiB value. Each partition must
hold exactly its messages, in order, timestamps included.

It then prints `DIGEST <sha256>` over every (topic, partition, offset,
key, value) so the test driver can compare two reads (before and after a
broker restart) byte for byte.
"""

import hashlib
import sys

PARTITIONS = 3
KEYED = 150
UNKEYED = 150
KEYS = 8
# Repetitive so every codec compresses; one non-ASCII character checks that
# values are bytes end to end.
PAD = "ringtail-" * 12 + "\u00e9"
# Producer acks per codec topic; codecs not named here use acks=all.
ACKS = {"none": 0, "gzip": 1}
EDGE_TIMESTAMP_MS = 1_700_000_000_000
BIG_VALUE_BYTES = 512 * 1024


class Message:
    """One message as produced, or as consumed (with partition and offset)."""

    def __init__(self, index, key, value, headers=()):
        self.index = index
        self.key = key
        self.value = value
        self.headers = tuple(headers)


def topic_name(prefix, codec):
    return f"{prefix}-{codec}"


def expected(prefix, codec, with_headers):
    """The messages to send to one topic, in production order."""
    out = []
    for i in range(KEYED):
        key = f"key-{i % KEYS}".encode()
        value = f"{prefix}|{codec}|keyed|{i:05}|{PAD}".encode()
        headers = ((("seq", str(i).encode()),) if with_headers else ())
        out.append(Message(i, key, value, headers))
    for i in range(UNKEYED):
        value = f"{prefix}|{codec}|unkeyed|{i:05}|{PAD}".encode()
        out.append(Message(KEYED + i, None, value))
    return out


def big_value():
    """512 KiB that no codec shrinks much (kafkajs.js makes the same)."""
    return bytes((i * 7919 + (i >> 9) * 31 + (i >> 3)) & 0xFF for i in range(BIG_VALUE_BYTES))


def edge_topic(prefix):
    return f"{prefix}-edge"


def edge_expected(prefix):
    """(partition, key, value, timestamp_ms) in production order."""
    messages = [
        (b"tombstone", None),
        (b"", b""),
        (None, b""),
        (bytes(range(256)), bytes(range(256)) * 4),
        (b"big", big_value()),
        (b"after-big", f"{prefix}|edge|after".encode()),
    ]
    return [
        (i % PARTITIONS, key, value, EDGE_TIMESTAMP_MS + i * 1000)
        for i, (key, value) in enumerate(messages)
    ]


def check_edge(topic, sent, end_offsets, consumed):
    """`consumed` maps partition -> list of (offset, key, value, headers,
    timestamp_ms)."""
    for partition in range(PARTITIONS):
        want = [(o, k, v, t) for o, (p, k, v, t) in enumerate(m for m in sent if m[0] == partition)]
        got = [(o, k, v, t) for o, k, v, _h, t in consumed.get(partition, [])]
        if end_offsets.get(partition) != len(want):
            fail(f"{topic}-{partition}: end offset {end_offsets.get(partition)}, sent {len(want)}")
        for i in range(max(len(got), len(want))):
            g = got[i] if i < len(got) else None
            w = want[i] if i < len(want) else None
            if g != w:
                fail(f"{topic}-{partition}: read {_short(g)}, sent {_short(w)}")


def _short(message):
    if message is None:
        return None
    return tuple(x[:40] if isinstance(x, bytes) else x for x in message)


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def check_topic(topic, sent, end_offsets, consumed, foreign=False):
    """Checks what was read from one topic against what was sent.

    `end_offsets` maps partition -> high watermark; `consumed` maps
    partition -> list of (offset, key, value, headers, ...) in read order.
    `foreign`: another client produced the topic, perhaps without headers
    (kcat cannot send per-message headers), so no headers is accepted.
    """
    total = sum(end_offsets.values())
    if total != len(sent):
        fail(f"{topic}: end offsets {end_offsets} add up to {total}, sent {len(sent)}")
    by_ident = {(m.key, m.value): m for m in sent}
    seen = set()
    key_partition = {}
    for partition in sorted(end_offsets):
        records = consumed.get(partition, [])
        offsets = [r[0] for r in records]
        if offsets != list(range(end_offsets[partition])):
            fail(
                f"{topic}-{partition}: offsets read {offsets[:10]}... ({len(offsets)}) "
                f"are not 0..{end_offsets[partition]}"
            )
        last_index = -1
        for offset, key, value, headers, *_ in records:
            m = by_ident.get((key, value))
            if m is None:
                fail(
                    f"{topic}-{partition}@{offset}: unexpected message "
                    f"key={key!r} value={value[:60]!r}"
                )
            if tuple(headers) != m.headers and not (foreign and not headers):
                fail(f"{topic}-{partition}@{offset}: headers {headers!r}, sent {m.headers!r}")
            if m.index in seen:
                fail(f"{topic}-{partition}@{offset}: message {m.index} read twice")
            seen.add(m.index)
            if m.index <= last_index:
                fail(
                    f"{topic}-{partition}@{offset}: message {m.index} comes after "
                    f"{last_index}: per-partition order broken"
                )
            last_index = m.index
            if key is not None:
                other = key_partition.setdefault(key, partition)
                if other != partition:
                    fail(f"{topic}: key {key!r} is in partitions {other} and {partition}")
    missing = [m.index for m in sent if m.index not in seen]
    if missing:
        fail(f"{topic}: messages never read: {missing[:20]}")


def digest_lines(topic, consumed):
    for partition in sorted(consumed):
        for offset, key, value, *_ in consumed[partition]:
            k = "-" if key is None else key.hex()
            v = "-" if value is None else value.hex()
            yield f"{topic}|{partition}|{offset}|{k}|{v}\n"


def print_digest(lines):
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
    print(f"DIGEST {h.hexdigest()}", flush=True)


MODES = ("produce", "verify", "read")


def parse_args(argv):
    """BOOTSTRAP TOPIC_PREFIX MODE. produce: create the topics, send, then
    read and check; verify: read and check this client's own topics; read:
    read and check topics another client produced."""
    if len(argv) != 4 or argv[3] not in MODES:
        fail(f"usage: {argv[0]} BOOTSTRAP TOPIC_PREFIX {'|'.join(MODES)}")
    return argv[1], argv[2], argv[3]
