#!/usr/bin/env python3
"""What zero-copy can save on this machine's loopback, without a broker.

Sends the same page-cached file over a loopback TCP connection twice, with
the kernel's own zero-copy path (sendfile: page cache -> socket) and with a
copy (pread into a buffer, then send), and prints the sender's CPU seconds
per GB for each. The sender runs on CPU 0 and the receiver on CPU 1, as the
broker and the consumer do in perf/broker.sh. On loopback the sender also
pays for the receiving TCP stack (the data is delivered in its softirq),
so this ratio is the floor for the broker's zero-copy / copy ratio: a
broker cannot spend less on splicing than the kernel's sendfile does.

    perf/zero-copy-floor.py [FILE_MB] [ROUNDS]

Prints `FLOOR sendfile S copy S ratio R` with the medians over ROUNDS.
"""
import os
import resource
import socket
import statistics
import sys
import tempfile

CHUNK = 1 << 20


def run(path, mode):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    child = os.fork()
    if child == 0:
        os.sched_setaffinity(0, {1})
        conn = socket.create_connection(("127.0.0.1", port))
        view = memoryview(bytearray(CHUNK))
        while conn.recv_into(view):
            pass
        os._exit(0)
    os.sched_setaffinity(0, {0})
    sock, _ = srv.accept()
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    buf = bytearray(CHUNK)
    before = resource.getrusage(resource.RUSAGE_SELF)
    off = 0
    while off < size:
        if mode == "sendfile":
            off += os.sendfile(sock.fileno(), fd, off, min(CHUNK, size - off))
        else:
            n = os.preadv(fd, [buf], off)
            sock.sendall(memoryview(buf)[:n])
            off += n
    after = resource.getrusage(resource.RUSAGE_SELF)
    sock.close()
    os.close(fd)
    os.waitpid(child, 0)
    srv.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (size / 1e9)


def main():
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.NamedTemporaryFile(dir=os.environ.get("DIR")) as f:
        block = os.urandom(CHUNK)
        for _ in range(mb):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
        zc, cp = [], []
        for _ in range(rounds):
            # Interleaved, so drift on a shared machine hits both alike.
            zc.append(run(f.name, "sendfile"))
            cp.append(run(f.name, "copy"))
    z, c = statistics.median(zc), statistics.median(cp)
    print(f"FLOOR sendfile {z:.3f} copy {c:.3f} ratio {z / c:.2f}")


if __name__ == "__main__":
    main()
