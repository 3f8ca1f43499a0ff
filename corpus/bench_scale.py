"""`luke-corpus bench SEED --scale N`: the whole build on synthetic dumps of N and N/4 articles,
per stage, and what that projects to for English Wikipedia.

The dumps are made from SEED's real articles by corpus/synthetic_dump.py (each a real article
under a new title, links retargeted over a Zipf popularity, rare words varied, redirects at
English Wikipedia's rate per byte), multistream with an index, as a large build should read.
Each stage runs as its own `luke-corpus build --until STAGE` command under corpus/bench_probe.py,
which accounts for every process: the main process's CPU seconds are the serial work, the
workers' are the parallel work, and the peak memory of each is kept. CPU seconds are robust to
other load on the machine; wall seconds are not (the load is printed with them).

Two sizes give each stage's cost as a fixed part plus a part per GB of XML (the difference
between them), so process start-up does not pass for work that grows with the dump; each stage
is built for both sizes in turn, so that the machine's speed drifts little between them (a
timed reference before each stage shows how much it did). The projection to English Wikipedia
(ENGLISH) on C cores adds, per stage: the serial part the main process does while no worker is
busy (reading ahead of them, planning between two passes, joining at the end), and the longer
of two things that run side by side: the parallel part spread over C - 1 workers (their fixed
part paid once, side by side), and the serial part the main process does while they are busy
(collecting their results, on the one core left to it; corpus/bench_probe.py tells the two
serial parts apart). The tokenizer stage's training is capped (corpus/word_tokenizer.py), so it
is projected at its cap, from the characters it trained on; the share of it sentencepiece ran
on threads here (from the stage's CPU and wall seconds) is spread over its threads there. At
English's size the training starts as soon as the pages are written, and the entity_vocab stage
runs beside it (corpus/ahead.py): the total counts the longer of the two. Here each stage runs
as its own command (`--until`), so nothing starts ahead and each is measured alone.
`--baseline DIR` runs the same commands with the code of another checkout (e.g. `git worktree
add /tmp/base main`) on the larger dump, each stage in turn with this checkout's, and prints
the ratios.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus.progress import count_progress
from corpus.reader import Corpus
from corpus.stages import STAGE_NAMES
from corpus.stages import stage as declared_stage
from corpus.synthetic_dump import SyntheticDump, write_synthetic_dump

GB = 1e9
PROBE = Path(__file__).with_name("bench_probe.py")
REFERENCE_FRACTION = 4          # the smaller dump has N / 4 articles
PROJECTED_CORES = (16, 64)


@dataclass(frozen=True)
class EnglishWikipedia:
    """The build the projection is for (figures of a recent English dump)."""
    xml_gb: float = 100.0
    articles: float = 7e6
    redirects: float = 10e6
    links: float = 160e6
    entities: int = 500_000
    pieces: int = 32_000


ENGLISH = EnglishWikipedia()
# Runs of each short measurement apart from the builds (the tables and the entity work at the
# two dumps' sizes), the least taken.
REPEATS_APART = 3


@dataclass
class StageRun:
    """One stage of one build, as the probe measured it."""
    wall: float
    serial_cpu: float           # the main process
    parallel_cpu: float         # every other process it started
    main_peak_mb: float
    worker_peak_mb: float       # the largest peak RSS of any worker (shared pages included)
    worker_unique_mb: float     # the largest unique memory seen in any worker
    workers: int
    overlapped_cpu: float = 0.0  # of serial_cpu, what ran while the workers were busy
    startup_cpu: float = 0.0     # the main process's imports, apart from serial_cpu


@dataclass
class BuildRun:
    articles: int
    redirects: int
    xml_bytes: int
    links: int
    stages: dict[str, StageRun]
    counts: dict[str, dict]     # each stage's manifest counts


@dataclass
class StageRates:
    serial_fixed: float
    serial_per_gb: float
    parallel_fixed: float
    parallel_per_gb: float
    overlapped_fixed: float = 0.0     # of the serial part, what runs beside busy workers
    overlapped_per_gb: float = 0.0


@dataclass
class ScaleReport:
    seed: str
    workers: int
    cores: int
    load_average: float
    small: BuildRun
    large: BuildRun
    rates: dict[str, StageRates]
    serial_s_per_gb: float      # every stage's serial part per GB but the capped training
    tokenizer_training: dict[str, float]
    tables: dict[str, float]    # the pages stage's title and redirect tables at English's size
    # per stage, the work that grows with the entity vocabulary (capped at English's size)
    entity_files: dict[str, dict[str, float]]
    projection: dict[int, dict[str, float]]
    memory: dict[str, float]
    reference_seconds: list[float] = field(default_factory=list)   # before each stage
    baseline: BuildRun | None = None
    baseline_dir: str | None = None
    notes: list[str] = field(default_factory=list)


def add_arguments(parser) -> None:
    parser.add_argument("--scale", type=int, metavar="N",
                        help="instead of the figures above: build synthetic dumps of N and N/4 "
                             "articles made from DUMP's articles, stage by stage, and project "
                             "the figures to English Wikipedia")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="with --scale: also build the N-article dump with the code of this "
                             "checkout (its corpus/ package) and print the ratios")
    parser.add_argument("--tables-scale", type=float, default=1.0, metavar="F",
                        help="with --scale: measure the pages stage's title and redirect tables "
                             "at F times English Wikipedia's size (default: 1, about 4.5 GB of "
                             "memory; the bench's test uses less)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="with --scale: write the dumps and builds here and keep them "
                             "(default: a temporary directory)")


def run(args) -> int:
    if args.scale < 2 * REFERENCE_FRACTION:
        print(f"luke-corpus bench: error: --scale must be at least {2 * REFERENCE_FRACTION}",
              file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "corpus" / "cli.py").is_file():
        print(f"luke-corpus bench: error: --baseline {args.baseline}: no corpus/cli.py there",
              file=sys.stderr)
        return 2
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report = measure(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="luke-bench-scale-") as tmp:
            report = measure(args, Path(tmp))
    print(json.dumps(asdict(report), indent=2) if args.json else format_report(report, args))
    return 0


def measure(args, work: Path) -> ScaleReport:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    code = Path(__file__).resolve().parents[1]
    small_dump = write_synthetic_dump(args.dump, args.scale // REFERENCE_FRACTION,
                                      work / "dump-small", workers=args.workers)
    dump = write_synthetic_dump(args.dump, args.scale, work / "dump-large", workers=args.workers)
    builds = {"small": (work / "build-small", code, small_dump),
              "large": (work / "build-large", code, dump)}
    if args.baseline is not None:
        builds["baseline"] = (work / "build-baseline", args.baseline.resolve(), dump)
    speeds: list[float] = []
    measured = measure_builds(builds, args, speeds)
    small, large, baseline = measured["small"], measured["large"], measured.get("baseline")
    print(f"luke-corpus bench: the pages stage's tables at {args.tables_scale:g} x English's "
          f"size (about a minute at 1)", file=sys.stderr)
    tables = measure_tables(code, args.tables_scale)
    # The same work at both dumps' sizes (they have English's titles per GB): what the pages
    # stage's per-GB fit already holds of the tables, extrapolated to English as the fit is.
    shares = [build.xml_bytes / (ENGLISH.xml_gb * GB) for build in (small, large)]
    tables["in_fit_cpu_seconds"] = fit_share(
        *shares, *(measure_tables(code, share, REPEATS_APART)["cpu_seconds"] for share in shares))
    entity_files = measure_entity_work(code, small, large, shares)
    rates = {stage: fit(small, large, stage) for stage in STAGE_NAMES}
    training = tokenizer_training(small, large)
    report = ScaleReport(
        seed=str(args.dump), workers=args.workers, cores=os.cpu_count() or 1, load_average=load,
        small=small, large=large, rates=rates,
        serial_s_per_gb=sum(r.serial_per_gb for s, r in rates.items() if s != "tokenizer"),
        tokenizer_training=training,
        tables=tables, entity_files=entity_files,
        projection={cores: project(rates, training, tables, cores, args.workers, entity_files)
                    for cores in PROJECTED_CORES},
        memory=project_memory(large, training, tables), reference_seconds=speeds,
        baseline=baseline,
        baseline_dir=str(args.baseline) if args.baseline else None)
    if not training["capped"]:
        report.notes.append(
            f"the tokenizer's sample was not capped at {args.scale:,} articles: its training is "
            f"projected from {training['characters'] / 1e6:.1f} M to "
            f"{training['projected_characters'] / 1e6:.1f} M characters")
    return report


def build_options(args, articles: int) -> list[str]:
    return ["--workers", str(args.workers), "--validation-pages", str(max(1, articles // 100)),
            "--word-vocab-size", str(args.word_vocab_size or ENGLISH.pieces)]


def measure_builds(builds: dict[str, tuple[Path, Path, SyntheticDump]], args,
                   speeds: list[float]) -> dict[str, BuildRun]:
    """Builds, one per (output directory, code checkout, dump), stage by stage, one command
    each. Each stage runs in turn for every build, so that a change in the machine's speed
    (load, or its host's) weighs on all of them alike: the per-GB fit takes the difference of
    the small and the large build of a stage, which drift between them would skew. Before
    each stage, `speeds` gets the CPU seconds of a fixed piece of work (reference_seconds)."""
    stages: dict[str, dict[str, StageRun]] = {name: {} for name in builds}
    # The stages' own bars are off under the probe: one bar over the commands instead.
    with count_progress(len(STAGE_NAMES) * len(builds), "builds", unit="stage") as bar:
        for stage in STAGE_NAMES:
            speeds.append(reference_seconds())
            for name, (out, code, dump) in builds.items():
                bar.set_postfix_str(f"{name}: {stage}")
                command = ["build", str(dump.dump), "--out", str(out), "--until", stage,
                           *build_options(args, dump.articles)]
                stages[name][stage] = probe(command, code,
                                            out.with_name(f"{out.name}.{stage}.json"),
                                            preload=stage_modules(stage))
                bar.update(1)
    runs = {}
    for name, (out, _, dump) in builds.items():
        corpus = Corpus.open(out, needs=())
        counts = {"pages": corpus.pages.counts, "entity_vocab": corpus.entity_vocab.counts,
                  "tokenizer": corpus.tokenizer.counts, "examples": corpus.examples.counts}
        runs[name] = BuildRun(dump.articles, dump.redirects, dump.xml_bytes, dump.links,
                              stages[name], {s: dict(c) for s, c in counts.items()})
    return runs


def reference_seconds() -> float:
    """The CPU seconds this process takes to decompress a fixed 15 MB of text from bz2 (the
    best of three, under half a second each): the machine's speed at that moment, so that runs
    can be compared. On a shared host it drifts by a fifth within an hour, and the CPU seconds
    of every stage with it."""
    import bz2

    data = _reference_data()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        bz2.decompress(data)
        best = min(best, time.process_time() - started)
    return best


@functools.lru_cache(maxsize=1)
def _reference_data() -> bytes:
    import bz2

    return bz2.compress(b"".join(b"%d reference %d text\n" % (n, n * n % 99991)
                                 for n in range(600_000)))


def stage_modules(name: str) -> tuple[str, ...]:
    """What `build --until NAME` imports as it goes, at least: the build driver, the stage's
    module and the datasets library every stage writes or reads with."""
    return ("corpus.build", declared_stage(name).module, "datasets")


def probe(command: list[str], code: Path, report: Path, preload: tuple[str, ...] = ()
          ) -> StageRun:
    """Run `luke-corpus COMMAND` with the corpus package under `code`, under the probe, which
    imports the modules `preload` names before it starts."""
    argv = [str(PROBE), str(report), ",".join(preload), *command]
    starter = (f"import runpy, sys; sys.argv = {argv!r}; "
               f"runpy.run_path({str(PROBE)!r}, run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(code), "LUKE_PROGRESS": "0"}
    with tempfile.TemporaryDirectory() as cwd:   # not a checkout: '' on sys.path finds nothing
        done = subprocess.run([sys.executable, "-c", starter], cwd=cwd, env=env,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"luke-corpus {' '.join(command)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    figures = json.loads(report.read_text())
    return StageRun(wall=figures["wall_seconds"], serial_cpu=figures["main_cpu_seconds"],
                    parallel_cpu=figures["workers_cpu_seconds"],
                    main_peak_mb=figures["main_peak_rss_bytes"] / 1e6,
                    worker_peak_mb=figures["worker_peak_rss_bytes"] / 1e6,
                    worker_unique_mb=figures["worker_peak_unique_bytes"] / 1e6,
                    workers=figures["workers"],
                    overlapped_cpu=figures["main_overlapped_cpu_seconds"],
                    startup_cpu=figures["main_startup_cpu_seconds"])


def fit(small: BuildRun, large: BuildRun, stage: str) -> StageRates:
    """A stage's CPU seconds as fixed + per GB of XML, through the two builds (never negative:
    noise can make the smaller build look dearer). The main process's start-up (the probe's
    preloading) is fixed: it goes to the serial part's fixed seconds, out of the slope."""
    extra_gb = (large.xml_bytes - small.xml_bytes) / GB
    rates = []
    for kind in ("serial_cpu", "parallel_cpu", "overlapped_cpu"):
        a, b = getattr(small.stages[stage], kind), getattr(large.stages[stage], kind)
        per_gb = max(0.0, (b - a) / extra_gb)
        rates += [max(0.0, b - per_gb * large.xml_bytes / GB), per_gb]
    rates[0] += large.stages[stage].startup_cpu
    return StageRates(*rates)


def tokenizer_training(small: BuildRun, large: BuildRun) -> dict[str, float]:
    """The tokenizer stage's training sample and CPU seconds, where English's sample ends (at
    the character cap, or at the line cap with this text's characters per line), and the share
    of its CPU seconds that ran on sentencepiece's threads (threaded_share, below)."""
    from corpus.word_tokenizer import (SP_MAX_TRAINING_CHARS, SP_MAX_TRAINING_LINES,
                                       SP_TRAINING_THREADS)

    counts = large.counts["tokenizer"]
    chars, lines = counts.get("training_characters", 0), counts.get("training_lines", 0)
    per_line = chars / lines if lines else 0.0
    english = min(SP_MAX_TRAINING_CHARS, SP_MAX_TRAINING_LINES * per_line)
    cpu = large.stages["tokenizer"].serial_cpu
    small_chars = small.counts["tokenizer"].get("training_characters", 0)
    per_char = ((cpu - small.stages["tokenizer"].serial_cpu) / (chars - small_chars)
                if chars > small_chars else 0.0)
    capped = bool(counts.get("training_sample_capped"))
    projected = cpu if capped else cpu + max(0.0, per_char) * max(0.0, english - chars)
    return {"characters": chars, "lines": lines, "capped": capped,
            "projected_characters": chars if capped else english,
            "cpu_seconds": cpu, "projected_seconds": projected,
            "threaded_share": threaded_share(large.stages["tokenizer"],
                                             min(SP_TRAINING_THREADS, os.cpu_count() or 1)),
            "peak_mb": large.stages["tokenizer"].main_peak_mb,
            "peak_bytes_per_character": (large.stages["tokenizer"].main_peak_mb
                                         - small.stages["tokenizer"].main_peak_mb) * 1e6
            / (chars - small_chars) if chars > small_chars else 0.0}


def threaded_share(run: StageRun, threads: int) -> float:
    """The share of a one-process stage's CPU seconds that ran side by side on `threads`
    threads, from its CPU and wall seconds (Amdahl: wall = serial + threaded / threads). Load
    from other work lengthens the wall and so understates the share: the projection errs slow."""
    if threads < 2 or run.serial_cpu <= 0:
        return 0.0
    threaded = (run.serial_cpu - run.wall) * threads / (threads - 1)
    return min(1.0, max(0.0, threaded / run.serial_cpu))


def project(rates: dict[str, StageRates], training: dict[str, float], tables: dict[str, float],
            cores: int, measured_workers: int,
            entity_files: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """Seconds per stage for ENGLISH on `cores` cores (one runs the main process): the main
    process's serial part done alone, then the longer of its part done beside the workers and
    the workers' parallel part (module docstring). In the pages
    stage's serial part, its tables count at their cost measured at English's size in place of
    the fit's linear extrapolation of them when that is more (sorting and hashing need not be
    linear); the tokenizer's is its training at its cap, its threaded share spread over
    sentencepiece's threads (at most one per core). The work that grows with the entity
    vocabulary (`entity_files`, done alone) counts at its cost measured at English's capped
    size in place of its linear extrapolation, which assumes the vocabulary grows with the
    dump past the cap."""
    from corpus.word_tokenizer import SP_TRAINING_THREADS

    workers = max(1, cores - 1)
    seconds = {}
    for stage, rate in rates.items():
        serial = rate.serial_fixed + rate.serial_per_gb * ENGLISH.xml_gb
        overlapped = min(serial, rate.overlapped_fixed + rate.overlapped_per_gb * ENGLISH.xml_gb)
        alone = serial - overlapped
        if stage == "pages":
            # The tables are built between the two passes, with no worker busy. Never below
            # the fit: of the two figures for them, the larger counts.
            alone += max(0.0, tables["cpu_seconds"] - tables["in_fit_cpu_seconds"])
        if entity_files and stage in entity_files:
            measured = entity_files[stage]
            alone = max(0.0, alone + measured["cpu_seconds"] - measured["in_fit_cpu_seconds"])
        if stage == "tokenizer":
            share = training["threaded_share"]
            alone = training["projected_seconds"] * (
                1 - share + share / min(SP_TRAINING_THREADS, cores))
            overlapped = 0.0
        # each worker pays its share of the fixed part (start-up) itself, side by side
        parallel = (rate.parallel_fixed / max(1, measured_workers)
                    + rate.parallel_per_gb * ENGLISH.xml_gb / workers)
        seconds[stage] = alone + max(overlapped, parallel)
    seconds["total"] = sum(seconds.values()) - ahead_overlap(seconds)
    return seconds


def ahead_overlap(seconds: dict[str, float]) -> float:
    """The seconds English's build saves by the tokenizer's training starting ahead (a dump
    of its size is over AHEAD_MIN_XML_BYTES): once the pages stage is done, beside the stages
    up to the tokenizer (entity_vocab), which with it take the longer of the two, on cores of
    their own (one for the entity vocabulary, at most SP_TRAINING_THREADS for the training)."""
    from corpus.tokenizer_stage import AHEAD_MIN_XML_BYTES

    names = [name for name in seconds if name != "total"]
    if "tokenizer" not in names or ENGLISH.xml_gb * GB < AHEAD_MIN_XML_BYTES:
        return 0.0
    between = names[names.index(declared_stage("tokenizer").starts_after) + 1:
                    names.index("tokenizer")]
    return min(seconds["tokenizer"], sum(seconds[name] for name in between))


def project_memory(large: BuildRun, training: dict, tables: dict[str, float]
                   ) -> dict[str, float]:
    """Peak memory at ENGLISH's size: the pages stage's main process holds its title and
    redirect tables (measured at English's size), the tokenizer's its capped sample; a
    worker's own memory does not grow with the dump."""
    tokenizer = (large.stages["tokenizer"].main_peak_mb if training["capped"] else
                 large.stages["tokenizer"].main_peak_mb + training["peak_bytes_per_character"]
                 * (training["projected_characters"] - training["characters"]) / 1e6)
    worker_own = max(s.worker_unique_mb for s in large.stages.values())
    return {"pages_main_mb": max(large.stages["pages"].main_peak_mb, tables["peak_mb"]),
            "tokenizer_main_mb": tokenizer,
            "worker_own_mb": worker_own,
            "workers_63_gb": 63 * worker_own / 1e3}


def measure_tables(code: Path, scale: float, runs: int = 1) -> dict[str, float]:
    """CPU seconds and peak memory of the pages stage's table work (`english_tables`) at
    `scale` times English's number of redirects and articles, in a process of its own (the
    least of `runs` runs)."""
    redirects, articles = int(ENGLISH.redirects * scale), int(ENGLISH.articles * scale)
    figures = _measure_apart(code, "english_tables", redirects, articles, runs=runs)
    figures.update(redirects=redirects, articles=articles,
                   peak_mb=figures["peak_kb"] / 1e3)
    return figures


def _measure_apart(code: Path, function: str, *args, runs: int = 1) -> dict:
    """The JSON that `function(work, *args)` of this module (under `code`) prints, run in a
    process of its own in a temporary directory `work`; with several `runs`, the least of
    each figure (a short piece of work, a fraction of a second, which a pause of the host can
    double)."""
    figures = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as work:
            call = ", ".join(repr(a) for a in (work, *args))
            script = f"from corpus.bench_scale import {function}; print({function}({call}))"
            done = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True,
                                  text=True, env={**os.environ, "PYTHONPATH": str(code)})
        if done.returncode:
            raise RuntimeError(f"{function} failed: {done.stderr.strip()[-2000:]}")
        figures.append(json.loads(done.stdout))
    return {key: min(run[key] for run in figures) for key in figures[0]}


def fit_share(small_share: float, large_share: float, small_cpu: float, large_cpu: float
              ) -> float:
    """What the per-GB fit extrapolates to English of a piece of work that cost `small_cpu`
    and `large_cpu` CPU seconds at the small and large builds' shares of English: the fit
    takes the difference of the two builds, so the work's fixed part is not in it."""
    if large_share <= small_share:
        return 0.0
    return max(0.0, (large_cpu - small_cpu) / (large_share - small_share))


def measure_entity_work(code: Path, small: BuildRun, large: BuildRun, shares: list[float]
                        ) -> dict[str, dict[str, float]]:
    """Per stage, the CPU seconds of the work that grows with the entity vocabulary's size
    (`entity_files`) at English's size, and what the per-GB fit extrapolates of it: the same
    work at both builds' sizes (`shares`: each build's share of English), as the fit takes
    it."""
    sizes = [int(build.counts["entity_vocab"].get("size", 0)) for build in (small, large)]
    english = _measure_apart(code, "entity_files", ENGLISH.entities)
    at = [_measure_apart(code, "entity_files", size, runs=REPEATS_APART) for size in sizes]
    return {stage: {"cpu_seconds": english[stage],
                    "in_fit_cpu_seconds": fit_share(*shares, *(figures[stage] for figures in at)),
                    "entities": ENGLISH.entities, "large_entities": sizes[1]}
            for stage in english}


def entity_files(work: str, entities: int) -> str:
    """What grows with the entity vocabulary, not with the dump, for `entities` titles made
    up here: the entity_vocab stage writing its two files, and the examples stage writing the
    lookup file its workers map (before they start). Prints each one's CPU seconds as JSON."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from corpus.entity_vocab import write_vocab
    from corpus.examples_stage import write_entity_index

    titles = pc.binary_join_element_wise(
        "Entity", pc.cast(pa.array(np.arange(entities)), pa.string()), "(title)", " ")
    ranked = list(zip(titles.to_pylist(), range(entities + 1, 1, -1)))   # count descending
    vocab_dir, parts_dir = Path(work) / "entity_vocab", Path(work) / "parts"
    parts_dir.mkdir()
    started = time.process_time()
    write_vocab(ranked, "en", vocab_dir)
    written = time.process_time()
    write_entity_index(vocab_dir, parts_dir)    # reads entity_vocab.json as from the tokenizer
    return json.dumps({"entity_vocab": written - started,
                       "examples": time.process_time() - written})


def english_tables(work: str, redirects: int, articles: int) -> str:
    """What the pages stage's main process does with its tables between the two passes
    (pages_stage.finish_pages), on `redirects` redirects and `articles` article titles made up
    here: resolve the chains, write redirects.tsv and the two lookup files. Prints the CPU
    seconds of that work and the process's peak memory (kB) as JSON."""
    import resource

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from corpus.link_resolution import write_redirect_index, write_title_index
    from corpus.redirects import resolve_redirect_table, write_redirects_tsv

    def titles(kind: str, count: int) -> pa.Array:       # "Article 123 (kind)", ~20 characters
        numbers = pc.cast(pa.array(np.arange(count)), pa.string())
        return pc.binary_join_element_wise(kind.split()[0], numbers, f"({kind})", " ")

    rng = np.random.default_rng(0)
    names = titles("Article title", articles)
    sources = titles("Redirect alias", redirects)
    # targets: mostly articles, some other redirects (chains), a few titles not in the dump
    pool = pa.concat_arrays([names, sources, titles("Missing page", max(1, articles // 20))])
    weights = rng.random(redirects)
    picks = np.where(weights < 0.9, rng.integers(0, articles, redirects),
                     np.where(weights < 0.98, articles + rng.integers(0, redirects, redirects),
                              articles + redirects + rng.integers(0, max(1, articles // 20),
                                                                  redirects)))
    targets = pool.take(pa.array(picks))
    started = time.process_time()
    table = resolve_redirect_table(sources, targets)
    write_redirects_tsv(table, Path(work) / "redirects.tsv")
    write_redirect_index(table, Path(work) / "redirects.index")
    write_title_index(names, Path(work) / "articles.index")
    return json.dumps({"cpu_seconds": time.process_time() - started,
                       "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                       "longest_chain": table.longest_chain, "loops": table.loops})


def format_report(report: ScaleReport, args) -> str:
    small, large = report.small, report.large
    lines = [f"luke-corpus bench {report.seed} --scale {args.scale} --workers {report.workers}"
             + (f" --baseline {report.baseline_dir}" if report.baseline_dir else ""),
             f"  {report.cores} CPU cores, load average {report.load_average:.1f} at start "
             f"(CPU seconds are robust to load, wall seconds are not)"]
    if report.reference_seconds:
        fastest, slowest = min(report.reference_seconds), max(report.reference_seconds)
        lines.append(f"  machine speed: a fixed bz2 decompression took {fastest:.3f}-"
                     f"{slowest:.3f} CPU s before the stages ({100 * (slowest / fastest - 1):.0f}"
                     f"% apart; compare runs by it)")
    for build in (small, large):
        lines.append(f"  synthetic multistream dump: {build.articles:,} articles, "
                     f"{build.redirects:,} redirects, {build.xml_bytes / 1e6:,.0f} MB of XML, "
                     f"{build.links:,} links ({build.counts['entity_vocab'].get('size', 0):,} "
                     f"entities)")
    lines.append(_stage_table(large, f"{large.articles:,} articles"))
    if report.baseline is not None:
        lines.append(_stage_table(report.baseline, f"baseline {report.baseline_dir}"))
        lines.append("  this / baseline:  " + "  ".join(
            f"{stage} serial {_ratio(large, report.baseline, stage, 'serial_cpu')}, "
            f"parallel {_ratio(large, report.baseline, stage, 'parallel_cpu')}, "
            f"wall {_ratio(large, report.baseline, stage, 'wall')}" for stage in STAGE_NAMES))
    lines.append(f"  per GB of XML (from the {small.articles:,}- and {large.articles:,}-article "
                 f"builds)   serial fixed s   serial s/GB   (beside workers)   "
                 f"parallel fixed s   parallel s/GB")
    for stage, rate in report.rates.items():
        lines.append(f"    {stage:<13}{rate.serial_fixed:22.1f}{rate.serial_per_gb:14.2f}"
                     f"{rate.overlapped_per_gb:19.2f}"
                     f"{rate.parallel_fixed:19.1f}{rate.parallel_per_gb:16.1f}")
    training = report.tokenizer_training
    lines.append(f"  serial CPU per GB of XML, every stage but the capped tokenizer training: "
                 f"{report.serial_s_per_gb:.2f} s/GB; tokenizer training on "
                 f"{training['characters'] / 1e6:.1f} M characters"
                 f"{' (capped)' if training['capped'] else ''}: "
                 f"{training['cpu_seconds']:.1f} CPU s, "
                 f"{100 * training['threaded_share']:.0f}% of it on sentencepiece's threads")
    english = ENGLISH
    lines.append(f"  projected to English Wikipedia ({english.xml_gb:.0f} GB of XML, "
                 f"{english.articles / 1e6:.0f} M articles, {english.redirects / 1e6:.0f} M "
                 f"redirects, {english.links / 1e6:.0f} M links, {english.entities // 1000} K "
                 f"entities, {english.pieces // 1000} K pieces), seconds:")
    lines.append("    cores  " + "".join(f"{s:>14}" for s in (*STAGE_NAMES, "total")))
    for cores, seconds in report.projection.items():
        lines.append(f"    {cores:<7}" + "".join(f"{seconds[s]:14.0f}" for s in
                                                   (*STAGE_NAMES, "total"))
                     + f"   ({seconds['total'] / 60:.1f} min)")
    saved = {cores: ahead_overlap(seconds) for cores, seconds in report.projection.items()}
    if any(saved.values()):
        lines.append("    the tokenizer's training starts as the pages stage ends, beside the "
                     "entity_vocab stage: the total counts the longer of the two ("
                     + ", ".join(f"{s:.0f} s less on {c} cores" for c, s in saved.items())
                     + ")")
    tables, memory = report.tables, report.memory
    lines.append(f"  the pages stage's tables alone at {tables['redirects'] / 1e6:.1f} M redirects "
                 f"and {tables['articles'] / 1e6:.1f} M articles (English: x{args.tables_scale:g})"
                 f": {tables['cpu_seconds']:.1f} CPU s in the main process, peak "
                 f"{tables['peak_mb']:,.0f} MB (in the pages stage's projection, in place "
                 f"of the {tables['in_fit_cpu_seconds']:.1f} s the per-GB fit extrapolates)")
    for stage, measured in report.entity_files.items():
        lines.append(f"  the {stage} stage's work on the entity vocabulary alone at "
                     f"{measured['entities']:,} entities: {measured['cpu_seconds']:.1f} CPU s "
                     f"(in its projection, in place of the {measured['in_fit_cpu_seconds']:.1f} "
                     f"s the per-GB fit extrapolates from {measured['large_entities']:,})")
    lines.append(f"  memory at English's size: the pages stage's main process "
                 f"{memory['pages_main_mb']:,.0f} MB, the tokenizer stage's "
                 f"{memory['tokenizer_main_mb']:,.0f} MB (training on "
                 f"{training['projected_characters'] / 1e6:.0f} M characters), a worker "
                 f"{memory['worker_own_mb']:,.0f} MB of its own at most (63 workers: "
                 f"{memory['workers_63_gb']:.1f} GB)")
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def _stage_table(build: BuildRun, title: str) -> str:
    rows = [f"  {title}: {build.xml_bytes / 1e6:,.0f} MB of XML"
            f"\n    {'stage':<13}{'wall s':>9}{'serial CPU s':>14}{'parallel CPU s':>16}"
            f"{'main peak MB':>14}{'worker peak MB':>16}{'(own)':>8}"]
    for stage, run in build.stages.items():
        rows.append(f"    {stage:<13}{run.wall:9.1f}{run.serial_cpu:14.1f}{run.parallel_cpu:16.1f}"
                    f"{run.main_peak_mb:14.0f}{run.worker_peak_mb:16.0f}"
                    f"{run.worker_unique_mb:8.0f}")
    return "\n".join(rows)


def _ratio(build: BuildRun, baseline: BuildRun, stage: str, kind: str) -> str:
    ours, theirs = getattr(build.stages[stage], kind), getattr(baseline.stages[stage], kind)
    return f"{ours / theirs:.2f}x" if theirs > 0 else "n/a"
