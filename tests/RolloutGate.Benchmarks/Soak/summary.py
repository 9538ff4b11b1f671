#!/usr/bin/env python3
"""Means per window (15 minutes unless told) of a soak's samples, as the Markdown tables of the benchmarks README.

    python3 tests/RolloutGate.Benchmarks/Soak/summary.py [.local/soak] [minutes]

Reads soak.csv (soak.py's samples) and, when dotnet-counters ran, counters.csv (System.Runtime every 10 s: the GC
heap by generation after the last collection, CPU, exceptions by type, methods compiled). The counters' clock is
aligned with the soak's by their first sample, which dotnet-counters takes a moment before soak.py's first.
A column soak.csv does not have (an older run's) is left empty.
"""
import collections
import csv
import datetime
import os
import sys

folder = sys.argv[1] if len(sys.argv) > 1 else ".local/soak"
window = float(sys.argv[2]) * 60 if len(sys.argv) > 2 else 900.0


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def means(samples):
    """{window index: mean} of (elapsed seconds, value) pairs, values that are None left out."""
    sums = collections.defaultdict(lambda: [0.0, 0])
    for at, value in samples:
        if value is not None:
            cell = sums[int(at // window)]
            cell[0] += value
            cell[1] += 1
    return {w: total / count for w, (total, count) in sums.items()}


with open(os.path.join(folder, "soak.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
soak = lambda column, scale=1.0: means((float(r["elapsed_s"]), None if number(r.get(column)) is None else number(r[column]) * scale) for r in rows)
last = lambda column: {int(float(r["elapsed_s"]) // window): number(r[column]) for r in rows}
end = max(float(r["elapsed_s"]) for r in rows)

counters = collections.defaultdict(list)
path = os.path.join(folder, "counters.csv")
if os.path.exists(path):
    with open(path, newline="", errors="replace") as f:
        start = None
        for r in csv.DictReader(f):
            try:
                at = datetime.datetime.strptime(r["Timestamp"], "%m/%d/%Y %H:%M:%S").timestamp()
            except (KeyError, ValueError):
                continue
            start = start if start is not None else at
            counters[r["Counter Name"]].append((at - start, number(r["Mean/Increment"])))


def counter(name, scale=1.0, prefix=False):
    """Means of one counter (or of the sum over every tag of it, with prefix), scaled."""
    names = [n for n in counters if n.startswith(name)] if prefix else [name]
    summed = collections.defaultdict(float)
    for n in names:
        for at, value in counters.get(n, []):
            if value is not None:
                summed[at] += value * scale
    return means(summed.items())


MB = 1 / 1048576
heap = "dotnet.gc.last_collection.heap.size (By)[gc.heap.generation="
memory = [
    ("RSS", soak("rss_mb")),
    ("anon", soak("rss_anon_mb")),
    ("file", soak("rss_file_mb")),
    ("shmem", soak("rss_shmem_mb")),
    ("GC heap", counter(heap, MB, prefix=True)),
    ("gen0", counter(heap + "gen0]", MB)),
    ("gen1", counter(heap + "gen1]", MB)),
    ("gen2", counter(heap + "gen2]", MB)),
    ("LOH", counter(heap + "loh]", MB)),
    ("POH", counter(heap + "poh]", MB)),
    ("GC committed", counter("dotnet.gc.last_collection.memory.committed_size (By)", MB)),
]
cpu = counter("dotnet.process.cpu.time (s / 10 sec)", 10, prefix=True)  # s per 10 s, as % of one core
others = [
    ("threads", soak("threads")),
    ("fds", soak("fds")),
    ("PG conns", soak("pg_conns_service")),
    ("timers", soak("timers")),
    ("CPU % of a core", cpu),
    ("exceptions/s", counter("dotnet.exceptions ({exception} / 10 sec)", 0.1, prefix=True)),
    ("methods jitted/min", counter("dotnet.jit.compiled_methods ({method} / 10 sec)", 6)),
    ("gen2 GCs/h", counter("dotnet.gc.collections ({collection} / 10 sec)[gc.heap.generation=gen2]", 360)),
    ("watches ended", last("watches_done")),
]


def table(title, columns, decimals):
    windows = sorted(set().union(*(set(values) for _, values in columns)))
    print(f"| {title} | " + " | ".join(name for name, _ in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for w in windows:
        cells = [f"{values[w]:.{decimals}f}" if values.get(w) is not None else "" for _, values in columns]
        print(f"| {w * window / 60:.0f}-{min((w + 1) * window, end) / 60:.0f} | " + " | ".join(cells) + " |")
    print()


table("minutes (MB)", memory, 1)
table("minutes", others, 1)
