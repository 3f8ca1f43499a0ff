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
from corpus.synthetic_dump import (ENGLISH_ARTICLES, ENGLISH_LINKS, ENGLISH_REDIRECTS,
                                   ENGLISH_XML_BYTES, article_parts, write_synthetic_dump)

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



def test_a_synthetic_dump_has_english_wikipedias_articles_redirects_and_links_per_byte(tmp_path):
    # The bundled seed links about seven times as densely as English and has longer articles.
    dump = write_synthetic_dump(EN_DUMP, 300, tmp_path / "dump")
    per_gb = 1e9 / dump.xml_bytes
    english_per_gb = 1e9 / ENGLISH_XML_BYTES
    for count, english in ((dump.articles, ENGLISH_ARTICLES), (dump.redirects, ENGLISH_REDIRECTS),
                           (dump.links, ENGLISH_LINKS)):
        assert count * per_gb == pytest.approx(english * english_per_gb, rel=0.15)
    pages = pages_of(dump)
    titles = {p.title for p in pages}
    assert sum(t in titles or t.startswith("Missing page ") for t in link_targets(pages)) \
        == dump.links
    # A link not kept leaves its anchor text: the seeds' words are all still there.
    seed_words = set(re.findall(r"[A-Za-z]{4,}", " ".join(p.text for p in pages_of(
        write_synthetic_dump(EN_DUMP, 14, tmp_path / "seeds")))))
    assert seed_words >= {"Academy", "confidence"}


def test_a_long_article_is_cut_at_its_headings_into_parts_of_about_equal_size():
    text = ("Lead.\n== One ==\nAaaa.\n=== Sub ===\nBbbb.\n== Two ==\nCccc.\n"
            "== Three ==\nDddd.\n")
    parts = article_parts("Title", text, 2)
    assert [title for title, _ in parts] == ["Title", "Title (part 2)"]
    assert "".join(part for _, part in parts) == text              # nothing lost
    assert parts[1][1].startswith("== Two ==")                      # the middle heading
    assert [part[:7] for _, part in article_parts("Title", text, 4)] == [
        "Lead.\n=", "=== Sub", "== Two ", "== Thre"]                  # any heading level
    assert article_parts("Title", text, 1) == [("Title", text)]
    assert article_parts("Title", "No headings here.", 5) == [("Title", "No headings here.")]
    assert len(article_parts("Title", text, 10)) <= 4               # at most one per section

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
    for run in report["large"]["stages"].values():
        assert run["startup_cpu"] > 0                   # the preloaded imports, apart
        assert 0 <= run["overlapped_cpu"] <= run["serial_cpu"]
    for cores in ("16", "64"):
        seconds = report["projection"][cores]
        # English's entity_vocab stage runs beside its tokenizer's training
        beside = min(seconds["entity_vocab"], seconds["tokenizer"])
        assert seconds["total"] == pytest.approx(sum(seconds[s] for s in STAGE_NAMES) - beside)
        assert seconds["total"] > 0
    assert report["serial_s_per_gb"] >= 0 and report["memory"]["pages_main_mb"] > 0
    # the machine's speed, taken before each stage's builds (small and large in turn)
    assert len(report["reference_seconds"]) == len(STAGE_NAMES)
    assert all(seconds > 0 for seconds in report["reference_seconds"])
    tables = report["tables"]                   # 10,000 redirects, 7,000 articles
    assert (tables["redirects"], tables["articles"]) == (10_000, 7_000)
    assert tables["cpu_seconds"] > 0 and tables["peak_mb"] > 0
    assert tables["in_fit_cpu_seconds"] >= 0     # the same work at the two dumps' sizes
    # the entity vocabulary's files and lookup file, at English's 500,000 entities and at the
    # two builds' (extrapolated as the per-GB fit does)
    entity_files = report["entity_files"]
    assert set(entity_files) == {"entity_vocab", "examples"}
    for measured in entity_files.values():
        assert measured["entities"] == 500_000
        assert measured["large_entities"] == report["large"]["counts"]["entity_vocab"]["size"]
        assert measured["cpu_seconds"] > 0 and measured["in_fit_cpu_seconds"] >= 0


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


def test_the_tokenizer_stages_threaded_share_comes_from_its_cpu_and_wall_seconds():
    from corpus.bench_scale import StageRun, threaded_share

    def run(wall, cpu):
        return StageRun(wall=wall, serial_cpu=cpu, parallel_cpu=0, main_peak_mb=1,
                        worker_peak_mb=0, worker_unique_mb=0, workers=0)

    # Amdahl on 2 threads: 100 CPU s in 70 wall s is 40 s serial and 60 s threaded.
    assert threaded_share(run(70, 100), 2) == pytest.approx(0.6)
    assert threaded_share(run(70, 100), 4) == pytest.approx(0.4)     # 60 + 40 / 4 = 70
    assert threaded_share(run(100, 100), 2) == 0                      # no threads used
    assert threaded_share(run(120, 100), 2) == 0                      # load: never negative
    assert threaded_share(run(40, 100), 2) == 1                       # never above all of it
    assert threaded_share(run(70, 100), 1) == 0                       # one core: no telling


def test_the_main_processes_work_beside_busy_workers_is_hidden_unless_it_is_the_longer():
    from corpus.bench_scale import StageRates, project

    tables = {"cpu_seconds": 0.0, "in_fit_cpu_seconds": 0.0}

    def pages(serial_per_gb, overlapped_per_gb):
        rates = StageRates(serial_fixed=0.0, serial_per_gb=serial_per_gb, parallel_fixed=0.0,
                           parallel_per_gb=63.0, overlapped_fixed=0.0,
                           overlapped_per_gb=overlapped_per_gb)
        return project({"pages": rates}, {}, tables, cores=64, measured_workers=2)["pages"]

    # English's 100 GB: 63 workers take 100 s; the main process's 100 s of serial work...
    assert pages(1.0, 0.0) == pytest.approx(200)    # ...all done alone adds to theirs,
    assert pages(1.0, 0.6) == pytest.approx(140)    # ...60 s of it beside them is hidden,
    assert pages(3.0, 2.5) == pytest.approx(300)    # ...unless it is the longer: then it bounds
    assert pages(1.0, 5.0) == pytest.approx(100)    # never more beside them than in all


def test_work_on_the_entity_vocabulary_counts_at_its_capped_size_not_its_extrapolation():
    """The vocabulary stops growing at its cap: its measured cost there replaces what the
    per-GB fit extrapolates, down as well as up, never below nothing."""
    from corpus.bench_scale import StageRates, project

    rates = {"entity_vocab": StageRates(serial_fixed=1.0, serial_per_gb=0.2, parallel_fixed=0.0,
                                        parallel_per_gb=0.0)}

    def entity_vocab(cpu_seconds, in_fit_cpu_seconds):
        measured = {"entity_vocab": {"cpu_seconds": cpu_seconds,
                                     "in_fit_cpu_seconds": in_fit_cpu_seconds}}
        return project(rates, {}, {}, cores=64, measured_workers=1,
                       entity_files=measured)["entity_vocab"]

    assert project(rates, {}, {}, cores=64, measured_workers=1)["entity_vocab"] == \
        pytest.approx(21)                            # 1 + 0.2 s/GB x 100 GB
    assert entity_vocab(1.5, 8.0) == pytest.approx(14.5)    # 8 s of the fit are 1.5 s
    assert entity_vocab(9.0, 8.0) == pytest.approx(22)
    assert entity_vocab(0.0, 50.0) == 0


def test_the_entity_vocabulary_counts_beside_the_tokenizers_training_at_englishs_size():
    """English's dump is over the size from which the tokenizer trains ahead: the
    entity_vocab stage runs beside that training, and the total counts the longer of them."""
    from corpus.bench_scale import StageRates, project

    def serial(fixed):
        return StageRates(serial_fixed=fixed, serial_per_gb=0.0, parallel_fixed=0.0,
                          parallel_per_gb=0.0)

    training = {"projected_seconds": 40.0, "threaded_share": 0.0}
    for entity_vocab, total in ((25.0, 110.0), (60.0, 130.0)):
        rates = {"pages": serial(50.0), "entity_vocab": serial(entity_vocab),
                 "tokenizer": serial(40.0), "examples": serial(20.0)}
        seconds = project(rates, training, {"cpu_seconds": 0.0, "in_fit_cpu_seconds": 0.0},
                          cores=64, measured_workers=2)
        assert seconds["entity_vocab"] == entity_vocab and seconds["tokenizer"] == 40
        assert seconds["total"] == pytest.approx(total)   # 50 + max(ev, 40) + 20


def test_what_the_fit_holds_of_a_piece_of_work_leaves_its_fixed_part_out():
    """The per-GB fit takes the difference of the two builds: a piece of work's share of it,
    extrapolated to English, is its growth between the builds' sizes, not its cost at the
    large one scaled up (which would count its fixed part a hundredfold)."""
    from corpus.bench_scale import fit_share

    # 0.05 s fixed + 1 s at English's size: 0.0525 s at 1/400 of English, 0.06 s at 1/100
    assert fit_share(0.0025, 0.01, 0.0525, 0.06) == pytest.approx(1.0)
    assert fit_share(0.0025, 0.01, 0.06, 0.05) == 0              # noise: never below nothing
    assert fit_share(0.01, 0.01, 0.05, 0.06) == 0                # one size: no slope
