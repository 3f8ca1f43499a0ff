"""Run one `luke-corpus` command and account for every process it starts: CPU and peak memory.

`luke-corpus bench --scale` runs each build stage through this script, by path (runpy), so
that the code under test is whatever `corpus` package PYTHONPATH names (this tree's or a
baseline's), and this file imports nothing from it:

    python -c "import runpy, sys; sys.argv = [PROBE, REPORT, *ARGS]; runpy.run_path(PROBE, ...)"

The script forks. The child is the command's main process (it runs `corpus.cli.main(ARGS)`);
the parent is a subreaper (Linux prctl PR_SET_CHILD_SUBREAPER), so the worker processes,
their forkserver and anything else the command leaves behind become its children once the
command exits, and it reaps every one of them. Then:
  - the main process's CPU seconds and peak RSS are its own wait4 figures (the forkserver and
    the workers are not its children, so none of theirs is in them);
  - the CPU seconds of everything are RUSAGE_CHILDREN of this parent, and the workers' are
    the difference;
  - each worker's peak RSS (VmHWM) and peak memory of its own (Private_Dirty of smaps_rollup:
    what it allocated or wrote; not the pages of files it maps nor those it shares with the
    forkserver it was forked from, sampled every SAMPLE_SECONDS) are read from /proc while it
    runs.
The figures go to REPORT as JSON. Standard library only, Linux only.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
SAMPLE_SECONDS = 0.2


def main(report_path: str, argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = os.fork()
    if pid == 0:                                   # the command's main process
        from corpus.cli import main as command
        code = 1
        try:
            code = command(argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    peaks: dict[int, dict] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(pid, peaks, stop), daemon=True)
    sampler.start()
    _, status, main_usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    while True:                                    # the orphans: forkserver, workers, ...
        try:
            os.wait4(-1, 0)
        except ChildProcessError:
            break
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    main_cpu = main_usage.ru_utime + main_usage.ru_stime
    all_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    workers = [p for p in peaks.values() if p["depth"] >= 2]   # forked by the forkserver/pool
    report = {"returncode": os.waitstatus_to_exitcode(status), "wall_seconds": wall,
              "main_cpu_seconds": main_cpu, "workers_cpu_seconds": max(0.0, all_cpu - main_cpu),
              "main_peak_rss_bytes": main_usage.ru_maxrss * 1024,
              "workers": len(workers),
              "worker_peak_rss_bytes": max((p["hwm"] for p in workers), default=0),
              "worker_peak_unique_bytes": max((p["unique"] for p in workers), default=0)}
    with open(report_path, "w") as out:
        json.dump(report, out)
    return report["returncode"]


def _sample(root: int, peaks: dict[int, dict], stop: threading.Event) -> None:
    """Every process under `root`, with its depth below it and its highest memory seen."""
    while not stop.wait(SAMPLE_SECONDS):
        depths = {root: 0}
        parents = _parents()
        changed = True
        while changed:          # descendants whose parent's depth is known
            changed = False
            for pid, parent in parents.items():
                if pid not in depths and parent in depths:
                    depths[pid] = depths[parent] + 1
                    changed = True
        for pid, depth in depths.items():
            if pid == root:
                continue
            hwm, unique = _memory(pid)
            seen = peaks.setdefault(pid, {"depth": depth, "hwm": 0, "unique": 0})
            seen["hwm"], seen["unique"] = max(seen["hwm"], hwm), max(seen["unique"], unique)


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue                           # it ended meanwhile
    return parents


def _memory(pid: int) -> tuple[int, int]:
    """(peak RSS, memory of its own now) of a process in bytes; zeros once it has ended."""
    hwm = unique = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Private_Dirty:"):
                    unique += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return hwm, unique


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
