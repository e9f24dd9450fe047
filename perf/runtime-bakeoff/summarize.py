#!/usr/bin/env python3
"""Turns a run.sh output folder into the markdown tables of ADR 0001.

Reads results.txt (RESULT/BUILD lines), strace-*.txt (strace -c -f) and
uring-ops-*.txt (io_uring opcode counts from perf). Medians over repetitions;
MB is 10^6 bytes; CPU is seconds per GB moved, "thread" for the
sender/appender thread alone and "proc" for the whole process less the drain
receiver (so io_uring's io-wq kernel workers and runtime helper threads count).
"""

import pathlib
import statistics
import sys
from collections import defaultdict

CANDIDATES = ["glommio", "tokio-uring", "monoio", "compio", "raw-io-uring"]
FILE_STEM = {"raw-io-uring": "raw"}
# Syscalls worth showing; the receiver thread's recvfrom/read is excluded
# by name (it is the same for every candidate).
SHOWN = [
    "io_uring_enter", "pread64", "read", "write", "pwrite64", "sendto", "sendmsg",
    "sendfile", "splice", "fdatasync", "fsync", "epoll_wait", "epoll_pwait",
    "poll", "futex",
]


def parse_kv(line):
    out = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def load(out_dir):
    runs = defaultdict(list)
    builds = {}
    notes = {}
    for line in (out_dir / "results.txt").read_text().splitlines():
        kv = parse_kv(line)
        if line.startswith("BUILD"):
            builds[kv["candidate"]] = line.split(None, 2)[2].replace("_", " ")
        elif line.startswith("RESULT"):
            key = (kv["candidate"], kv["workload"])
            runs[key].append(kv)
            if "note" in kv:
                notes[key] = kv["note"].replace("_", " ")
    return runs, builds, notes


def med(rows, field, fmt="{:.0f}"):
    vals = [float(r[field]) for r in rows if field in r]
    if not vals:
        failed = [r for r in rows if "failed" in r.get("rc", "") or "rc" in r]
        return "failed" if failed else "–"
    return fmt.format(statistics.median(vals))


def cell(runs, cand, work, with_cpu=False):
    rows = runs.get((cand, work), [])
    if not rows:
        return "–"
    if any("rc" in r for r in rows) and not any("mb_s" in r for r in rows):
        return "failed"
    text = med(rows, "mb_s")
    vals = [float(r["mb_s"]) for r in rows if "mb_s" in r]
    if len(vals) > 1:
        text += f" [{min(vals):.0f}–{max(vals):.0f}]"
    if with_cpu and any("proc_cpu_s_per_gb" in r for r in rows):
        text += " ({} / {})".format(
            med(rows, "thread_cpu_s_per_gb", "{:.2f}"),
            med(rows, "proc_cpu_s_per_gb", "{:.2f}"),
        )
    return text


def throughput_table(runs, notes):
    lines = [
        "| candidate | A: 64 KiB, fdatasync every 4 (MB/s) | A: 1 MiB per fdatasync (MB/s) "
        "| B: buffered, no sync (MB/s) | C(i) read+send MB/s (CPU s/GB thread / proc) "
        "| C(ii) zero-copy MB/s (CPU s/GB thread / proc) | C(ii) path |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CANDIDATES:
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            c,
            cell(runs, c, "append-sync4"),
            cell(runs, c, "append-sync16"),
            cell(runs, c, "append-buffered"),
            cell(runs, c, "send-copy", True),
            cell(runs, c, "send-zc", True),
            notes.get((c, "send-zc"), "–"),
        ))
    lines.append("| raw-io-uring, sendfile variant | | | | | {} | {} |".format(
        cell(runs, "raw-io-uring", "send-sendfile", True),
        notes.get(("raw-io-uring", "send-sendfile"), "–"),
    ))
    lines.append("| **fio** psync (reference) | {} | {} | {} | | | fdatasync=1: {} MB/s |".format(
        cell(runs, "fio", "append-sync4"),
        cell(runs, "fio", "append-sync16"),
        cell(runs, "fio", "append-buffered"),
        cell(runs, "fio", "append-sync1"),
    ))
    lines.append("| **fio** io_uring engine (reference) | {} | {} | | | | |".format(
        cell(runs, "fio", "uring-append-sync4"),
        cell(runs, "fio", "uring-append-sync16"),
    ))
    ip = runs.get(("iperf3", "send-copy"), [])
    if ip:
        lines.append("| **iperf3** 1 stream 127.0.0.1 (reference) | | | | {} | | send()/recv() copy, pinned -A 0,1 |".format(
            cell(runs, "iperf3", "send-copy")))
    return "\n".join(lines)


def strace_calls(path):
    calls = {}
    if not path.exists():
        return calls
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
            calls[parts[-1]] = int(parts[3])
    return calls


def trace_table(out_dir):
    lines = [
        "| candidate | workload (256 MiB) | syscalls (strace -c -f, receiver's recvfrom excluded) "
        "| io_uring SQEs by opcode (submitted; punted to io-wq) "
        "| kernel CPU samples in copy / page-ref functions |",
        "|---|---|---|---|---|",
    ]
    for c in CANDIDATES:
        stem = FILE_STEM.get(c, c)
        for w in ["append-sync4", "send-copy", "send-zc", "send-sendfile"]:
            sp = out_dir / f"strace-{stem}-{w}.txt"
            if not sp.exists():
                continue
            calls = strace_calls(sp)
            shown = ", ".join(f"{n} {calls[n]}" for n in SHOWN if n in calls)
            ops = defaultdict(lambda: [0, 0])
            up = out_dir / f"uring-ops-{stem}-{w}.txt"
            if up.exists():
                for line in up.read_text().splitlines():
                    parts = line.split()
                    if len(parts) != 3:
                        continue
                    n, event, op = int(parts[0]), parts[1], parts[2]
                    ops[op][0 if event == "io_uring_submit_req" else 1] += n
            ops_text = ", ".join(
                f"{op} {s}; {a}" for op, (s, a) in sorted(ops.items(), key=lambda kv: -kv[1][0])
            ) or "none"
            cp = out_dir / f"copies-{stem}-{w}.txt"
            copies = "–"
            if cp.exists():
                found = []
                for line in cp.read_text().splitlines():
                    parts = line.split()
                    if len(parts) >= 3:
                        found.append(f"{parts[-1]} {parts[0]}")
                copies = ", ".join(found) or "none of them"
            lines.append(f"| {c} | {w} | {shown} | {ops_text} | {copies} |")
    return "\n".join(lines)


def main():
    out_dir = pathlib.Path(sys.argv[1])
    runs, builds, notes = load(out_dir)
    print((out_dir / "machine.txt").read_text() if (out_dir / "machine.txt").exists() else "")
    print("### Builds\n")
    for c, status in builds.items():
        print(f"- {c}: {status}")
    print("\n### Throughput: median [min–max] of repetitions, MB = 10^6 bytes\n")
    print(throughput_table(runs, notes))
    print("\n### Syscalls and io_uring opcodes (one untimed run each)\n")
    print(trace_table(out_dir))


if __name__ == "__main__":
    main()
