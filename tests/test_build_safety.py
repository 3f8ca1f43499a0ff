"""What a careless or unlucky user can do to a corpus build, through the real command in real
processes: build twice into one directory at once, kill a build (its workers must go with it,
and the next build takes the directory over), and build with another number of workers (the
same corpus, fingerprint for fingerprint)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import EN_DUMP, TEST_BUILD, build_corpus
from corpus.bench import repeated_dump
from corpus.build import LOCK_FILE
from corpus.stages import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[1]
CLI_OPTIONS = ["--word-vocab-size", "2000", "--entity-vocab-size", "2000",
               "--max-seq-length", "128", "--max-entities", "32", "--partial-dump",
               "--validation-pages", "1"]


def build_process(dump: Path, out: Path, workers: int = 2) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "corpus.cli", "build", str(dump), "--out",
                             str(out), "--workers", str(workers), *CLI_OPTIONS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "LUKE_PROGRESS": "0"})


def wait_until(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the build exited ({process.returncode}) too early:\n"
                                 + process.stderr.read()[-2000:])
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the build")
        time.sleep(0.05)


def fingerprints(out: Path) -> dict[str, str]:
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    return {name: stages[name]["fingerprint"] for name in STAGE_NAMES}


@pytest.fixture(scope="module")
def big_dump(tmp_path_factory) -> Path:
    """The English sample 30 times over: a build of several seconds, long enough to catch."""
    return repeated_dump(EN_DUMP, 30, tmp_path_factory.mktemp("big"))


def test_the_same_build_with_one_and_two_workers(tmp_path):
    one = build_corpus(EN_DUMP, tmp_path / "one", workers=1)
    two = build_corpus(EN_DUMP, tmp_path / "two", workers=2)
    assert fingerprints(one) == fingerprints(two)
    assert (one / "tokenizer" / "sentencepiece.bpe.model").read_bytes() == \
        (two / "tokenizer" / "sentencepiece.bpe.model").read_bytes()


@pytest.mark.slow
def test_a_second_build_into_the_same_directory_is_refused_while_the_first_runs(tmp_path,
                                                                                big_dump):
    out = tmp_path / "out"
    first = build_process(big_dump, out)
    try:
        wait_until(lambda: (out / LOCK_FILE).is_file() and (out / LOCK_FILE).read_text(),
                   first)
        second = subprocess.run([sys.executable, "-m", "corpus.cli", "build", str(big_dump),
                                 "--out", str(out), *CLI_OPTIONS], capture_output=True,
                                text=True, cwd=ROOT)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"luke-corpus: error: another build is writing {out} (pid {first.pid} on "
            f"{os.uname().nodename}); wait for it to finish, or stop it and rerun"]
        assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    finally:
        first.kill()
    assert set(fingerprints(out)) == set(STAGE_NAMES)       # the first build finished whole
    assert (out / LOCK_FILE).read_text() == ""


def descendants(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("marker", [".staging-pages", ".examples-parts"],
                         ids=["parse-workers", "examples-workers"])
def test_a_killed_build_leaves_no_workers_and_the_next_build_takes_over(tmp_path, big_dump,
                                                                       marker):
    out = tmp_path / "out"
    build = build_process(big_dump, out)
    try:
        # the stage's workers start once its staging (or parts) directory exists
        wait_until(lambda: (out / marker).exists(), build)
        wait_until(lambda: len(descendants(build)) >= 3, build)   # forkserver + 2 workers
        workers = descendants(build)
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, [p.cmdline()[-1][:80] for p in alive]
    finally:
        build.kill()
    again = build_process(big_dump, out)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-2000:]
    assert f"was left by a build that stopped without finishing (pid {build.pid}" in stderr
    assert set(fingerprints(out)) == set(STAGE_NAMES)
