"""The scale benchmark (`luke-corpus bench SEED --scale N`): its synthetic dumps grow in what
a larger real dump grows in, and the command measures every stage and projects them, on the
bundled sample as the seed (a real run takes a larger seed and N)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EN_DUMP
from corpus.multistream import read_stream_offsets, read_stream_pages, stream_ranges
from corpus.stages import STAGE_NAMES
from corpus.synthetic_dump import write_synthetic_dump

ROOT = Path(__file__).resolve().parents[1]


def pages_of(dump) -> list:
    offsets = read_stream_offsets(dump.index)
    return [page for start, end in stream_ranges(offsets, dump.dump.stat().st_size)
            for page in read_stream_pages(dump.dump, start, end).pages]


def link_targets(pages) -> list[str]:
    return [m.group(1) for p in pages if p.redirect is None
            for m in re.finditer(r"\[\[([^\]|:]+)\|", p.text)]


def test_a_larger_synthetic_dump_has_more_distinct_targets_and_words(tmp_path):
    small = pages_of(write_synthetic_dump(EN_DUMP, 10, tmp_path / "small"))
    large_dump = write_synthetic_dump(EN_DUMP, 40, tmp_path / "large")
    large = pages_of(large_dump)
    articles = [p for p in large if p.redirect is None]
    assert len(articles) == 40 == large_dump.articles
    assert len({p.title for p in large}) == len(large)                  # titles are unique
    assert len(large) - 40 == large_dump.redirects > 0
    titles = {p.title for p in large}
    targets = link_targets(large)
    assert len(set(targets)) > 2 * len(set(link_targets(small)))
    assert sum(t in titles for t in targets) > 0.8 * len(targets)      # mostly the dump's own
    words = [set(re.findall(r"[a-z]{4,}", " ".join(p.text for p in dump)))
             for dump in (small, large)]
    assert len(words[1]) > len(words[0])                                 # rare words varied
    # the same seed, size and seed number make the same dump
    assert pages_of(write_synthetic_dump(EN_DUMP, 10, tmp_path / "again")) == small


@pytest.mark.slow
def test_the_scale_benchmark_measures_every_stage_and_projects_them(tmp_path):
    done = subprocess.run([sys.executable, "-m", "corpus.cli", "bench", str(EN_DUMP), "--scale",
                           "8", "--workers", "2", "--word-vocab-size", "300",
                           "--tables-scale", "0.001", "--json"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "LUKE_PROGRESS": "0",
                               "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert (report["small"]["articles"], report["large"]["articles"]) == (2, 8)
    assert report["large"]["xml_bytes"] > 3 * report["small"]["xml_bytes"]
    for stage in STAGE_NAMES:
        run = report["large"]["stages"][stage]
        assert run["wall"] > 0 and run["serial_cpu"] > 0 and run["main_peak_mb"] > 0
    for stage in ("pages", "examples"):                 # the stages with workers
        run = report["large"]["stages"][stage]
        assert run["workers"] >= 2 and run["parallel_cpu"] > 0 and run["worker_peak_mb"] > 0
    for cores in ("16", "64"):
        seconds = report["projection"][cores]
        assert seconds["total"] == sum(seconds[s] for s in STAGE_NAMES) > 0
    assert report["serial_s_per_gb"] >= 0 and report["memory"]["pages_main_mb"] > 0
    tables = report["tables"]                   # 10,000 redirects, 7,000 articles
    assert (tables["redirects"], tables["articles"]) == (10_000, 7_000)
    assert tables["cpu_seconds"] > 0 and tables["peak_mb"] > 0


@pytest.mark.parametrize("args, message", [
    (["--scale", "7"], "luke-corpus bench: error: --scale must be at least 8"),
    (["--scale", "8", "--baseline", "NOWHERE"],
     "luke-corpus bench: error: --baseline NOWHERE: no corpus/cli.py there"),
])
def test_a_scale_too_small_or_a_baseline_without_code_is_refused_before_any_work(
        args, message, tmp_path, capsys, monkeypatch):
    from corpus.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["bench", str(EN_DUMP), *args, "--keep", "kept"]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "kept").exists()          # no dump written, no build started
