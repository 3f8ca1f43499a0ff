"""Run one `luke-corpus` command and account for every process it starts: CPU and peak memory.

`luke-corpus bench --scale` runs each build stage through this script, by path (runpy), so
that the code under test is whatever `corpus` package PYTHONPATH names (this tree's or a
baseline's), and this file imports nothing from it:

    python -c "import runpy, sys; sys.argv = [PROBE, REPORT, PRELOAD, *ARGS]; runpy.run_path(...)"

The script forks. The child is the command's main process: it imports the modules PRELOAD names
(comma-separated, may be empty: the modules the command would import as it goes), then runs
`corpus.cli.main(ARGS)`. Importing takes a second or two of CPU that varies with the machine's
load; it is a fixed cost, reported on its own, and leaving it out of the command's figures keeps
its noise out of what grows with the dump. The parent is a subreaper (Linux prctl
PR_SET_CHILD_SUBREAPER), so the worker processes, their forkserver and anything else the
command leaves behind become its children once the command exits, and it reaps every one of
them. Then:
  - the main process's CPU seconds and peak RSS are its own wait4 figures (the forkserver and
    the workers are not its children, so none of theirs is in them), less the preloading's CPU
    seconds (reported apart);
  - the CPU seconds of everything are RUSAGE_CHILDREN of this parent, and the workers' are
    the difference;
  - each worker's peak RSS (VmHWM) and peak memory of its own (Private_Dirty of smaps_rollup:
    what it allocated or wrote; not the pages of files it maps nor those it shares with the
    forkserver it was forked from, sampled every SAMPLE_SECONDS) are read from /proc while it
    runs;
  - the share of the main process's CPU seconds spent while the workers were busy (their CPU
    seconds together grew by at least BUSY_WORKERS of the time between two samples), from the
    same samples: that work ran beside theirs, on a core of its own, and a machine with more
    workers overlaps it the same way, whereas the rest (reading before the workers start,
    planning between two passes, joining at the end) adds to the stage's time.
The figures go to REPORT as JSON. Standard library only, Linux only.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import resource
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
SAMPLE_SECONDS = 0.2
BUSY_WORKERS = 0.5          # workers' CPU seconds per second that count as a parallel phase
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main(report_path: str, preload: str, argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    preloaded, preload_done = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the command's main process
        os.close(preloaded)
        code = 1
        try:
            for name in ["corpus.cli", *filter(None, preload.split(","))]:
                importlib.import_module(name)
            os.write(preload_done, str(time.process_time()).encode())
            os.close(preload_done)
            code = sys.modules["corpus.cli"].main(argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(preload_done)
    peaks: dict[int, dict] = {}
    main_cpu_seen = {"overlapped": 0.0, "alone": 0.0}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(pid, peaks, main_cpu_seen, stop),
                               daemon=True)
    sampler.start()
    _, status, main_usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with os.fdopen(preloaded) as pipe:
        startup_cpu = float(pipe.read() or 0)
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
    command_cpu = max(0.0, main_cpu - startup_cpu)
    workers = [p for p in peaks.values() if p["depth"] >= 2]   # forked by the forkserver/pool
    seen = main_cpu_seen["overlapped"] + main_cpu_seen["alone"]
    report = {"returncode": os.waitstatus_to_exitcode(status), "wall_seconds": wall,
              "main_cpu_seconds": command_cpu, "main_startup_cpu_seconds": startup_cpu,
              "workers_cpu_seconds": max(0.0, all_cpu - main_cpu),
              # the samples are of the whole process, preloading (alone) included
              "main_overlapped_cpu_seconds": min(command_cpu, main_cpu * main_cpu_seen[
                  "overlapped"] / seen) if seen else 0.0,
              "main_peak_rss_bytes": main_usage.ru_maxrss * 1024,
              "workers": len(workers),
              "worker_peak_rss_bytes": max((p["hwm"] for p in workers), default=0),
              "worker_peak_unique_bytes": max((p["unique"] for p in workers), default=0)}
    with open(report_path, "w") as out:
        json.dump(report, out)
    return report["returncode"]


def _sample(root: int, peaks: dict[int, dict], main_cpu_seen: dict[str, float],
            stop: threading.Event) -> None:
    """Every process under `root`, with its depth below it and its highest memory seen; and
    the CPU seconds of `root` between two samples, as "overlapped" when the workers (depth 2
    and more) were busy meanwhile, else "alone"."""
    cpu_before: dict[int, float] = {}
    sampled = time.perf_counter()
    while not stop.wait(SAMPLE_SECONDS):
        depths = {root: 0}
        processes = _processes()
        parents = {pid: parent for pid, (parent, _) in processes.items()}
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
        now = time.perf_counter()
        cpu = {pid: processes[pid][1] for pid in depths if pid in processes}
        grown = {pid: seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu.items()}
        workers_grew = sum(grown[pid] for pid, depth in depths.items()
                           if depth >= 2 and pid in grown)
        if root in grown:
            busy = workers_grew >= BUSY_WORKERS * (now - sampled)
            main_cpu_seen["overlapped" if busy else "alone"] += grown[root]
        cpu_before, sampled = cpu, now


def _processes() -> dict[int, tuple[int, float]]:
    """Every process's parent and CPU seconds so far (user and system)."""
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                # after the name: state, ppid, ..., utime and stime (fields 14 and 15 of stat)
                processes[int(entry)] = (int(fields[1]),
                                         (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
            except (OSError, IndexError, ValueError):
                continue                           # it ended meanwhile
    return processes


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
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
