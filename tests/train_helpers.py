"""Helpers shared by the training tests: launch `luke-train` for real and read what it wrote.

Runs go through the real `deepspeed` launcher (two CPU ranks on gloo) or as a plain single
process; nothing is stubbed. Each launch gets its own master port so concurrent test sessions
on one machine do not collide on DeepSpeed's default 29500.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pretrain import run_layout

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ROOT / "configs" / "tiny.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(corpus: Path, run: Path, *extra: str) -> list[str]:
    return ["--config", str(TINY), "--corpus", str(corpus), "--output", str(run), *extra]


def deepspeed_command(args: list[str], ranks: int = 2, port: int | None = None) -> list[str]:
    return [str(BIN / "deepspeed"), "--num_gpus", str(ranks), "--master_port",
            str(port or free_port()), str(BIN / "luke-train"), *args]


def single_command(args: list[str]) -> list[str]:
    return [str(BIN / "luke-train"), *args]


# One thread per process: two ranks on two cores oversubscribe otherwise, and crawl.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_command(command: list[str], timeout: float = 300, preexec=None
                ) -> subprocess.CompletedProcess:
    """Run to the end and capture; `preexec` runs in the child before the command (limits)."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=ENV, preexec_fn=preexec)


def train_losses(run: Path) -> dict[int, float]:
    """step -> logged total loss of every optimizer step in RUN/metrics.jsonl."""
    lines = (Path(run) / run_layout.METRICS_FILE).read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"}


def metrics_lines(run: Path) -> list[dict]:
    path = Path(run) / run_layout.METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_steps(run: Path, steps: int, process: subprocess.Popen, timeout: float = 240) -> None:
    """Block until the run logged `steps` optimizer steps (fail if it exits or stalls)."""
    deadline = time.monotonic() + timeout
    while sum(r["kind"] == "train" for r in metrics_lines(run)) < steps:
        if process.poll() is not None:
            raise AssertionError(f"the run exited ({process.returncode}) before step {steps}:\n"
                                 + process.stderr.read()[-3000:])
        if time.monotonic() > deadline:
            raise AssertionError(f"no step {steps} within {timeout} s")
        time.sleep(0.2)


def trainer_processes(launcher: subprocess.Popen) -> list[psutil.Process]:
    """The rank processes under a deepspeed launcher (not the launcher's own processes)."""
    children = psutil.Process(launcher.pid).children(recursive=True)
    return [p for p in children if "deepspeed.launcher" not in " ".join(p.cmdline())]


def interrupt_after(command: list[str], run: Path, steps: int,
                    sig: int = signal.SIGTERM) -> subprocess.CompletedProcess:
    """Start `command`, send `sig` to every rank (as SLURM does before its time limit) once
    `steps` steps are logged, and wait for the clean exit."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT, env=ENV)
    try:
        wait_for_steps(run, steps, process)
        targets = trainer_processes(process) if "deepspeed" in command[0] else [process]
        for target in targets:
            target.send_signal(sig)
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
