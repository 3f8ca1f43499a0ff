"""`luke-corpus bench DUMP`: how fast the corpus build gets through a dump, against baselines.

One run on one dump measures, in MB of XML per second (the dump's decompressed size divided by
the wall time, so every figure has the same numerator):
  - the parse alone: corpus.wikitext.parse_page over every article, one process;
  - the pages stage (dump reading + parsing in worker processes + writing the dataset) with 1,
    2 .. N workers, per worker and as scaling efficiency against 1 worker (the fastest of
    `--rounds` runs each, since other load on the machine only ever slows a run down);
  - the whole build (every stage) with N workers, when the later stages are installed;
  - two baselines in the same run, one process each: the plain loop (mwparserfromhell.parse +
    strip_code() of every article) and wikiextractor (its Extractor in-process, with --links,
    as its worker processes call it; its command line when the module cannot be imported).
A small sample gives noisy timings: `--repeat R` writes a dump holding its pages R times (the
copies under new titles and ids) and measures that instead. The articles are held in memory
for the parse and baseline loops, so bench a sample or a slice of a large dump.

`--scale N` measures something else: the whole build, stage by stage, on synthetic dumps of N
articles made from DUMP's, and its projection to English Wikipedia (corpus/bench_scale.py).
"""

from __future__ import annotations

import argparse
import bz2
import importlib.util
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from corpus import bench_scale
from corpus.dump import DumpReader, decoded_xml
from corpus.multistream import write_multistream
from corpus.options import BuildOptions
from corpus.progress import item_progress

MB = 1_000_000
FLOOR_MB_PER_WORKER = 1.0      # pages stage, MB of XML per second per worker
FLOOR_SCALING = 0.75           # pages stage, efficiency from 1 to 2 workers
LATER_STAGE_MODULES = ("corpus.entity_vocab", "corpus.tokenizer_stage", "corpus.examples_stage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dump", type=Path, help="a dump (.xml.bz2, .xml.gz or .xml)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="measure the pages stage with 1..N workers (default: CPU cores)")
    parser.add_argument("--repeat", type=int, default=40, metavar="R",
                        help="measure a dump holding the pages R times (default: 40, about "
                             "10 MB of XML from the bundled sample, so that process start-up "
                             "does not dominate the scaling figures)")
    parser.add_argument("--rounds", type=int, default=3, metavar="K",
                        help="run the pages stage K times per worker count, keep the fastest "
                             "(other load on the machine only ever slows a run down)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--no-build", action="store_true",
                        help="skip the pages-stage and whole-build runs (parse and baselines only)")
    parser.add_argument("--word-vocab-size", type=int, default=None, metavar="V",
                        help="word vocabulary of the whole-build run (default: 8000, as small "
                             "samples need; 32000 with --scale)")
    bench_scale.add_arguments(parser)


@dataclass
class Figure:
    name: str
    seconds: float
    workers: int = 1
    mb_per_s: float = 0.0
    mb_per_s_per_worker: float = 0.0
    note: str = ""


@dataclass
class BenchReport:
    dump: str
    repeat: int
    xml_mb: float
    articles: int
    wikitext_mb: float
    cores: int
    python: str
    load_average: float      # 1-minute load when the run started: timings need a quiet machine
    figures: list[Figure] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    def add(self, name: str, seconds: float, workers: int = 1, note: str = "") -> Figure:
        rate = self.xml_mb / seconds if seconds > 0 else 0.0
        figure = Figure(name, seconds, workers, rate, rate / workers, note)
        self.figures.append(figure)
        return figure

    def get(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


def run(args: argparse.Namespace) -> int:
    if min(args.workers, args.repeat, args.rounds) < 1:
        print("luke-corpus bench: error: --workers, --repeat and --rounds must be at least 1",
              file=sys.stderr)
        return 2
    if not args.dump.is_file():
        print(f"luke-corpus bench: error: {args.dump}: no such file", file=sys.stderr)
        return 2
    if args.scale is not None:
        return bench_scale.run(args)
    with tempfile.TemporaryDirectory(prefix="luke-bench-") as tmp:
        dump = repeated_dump(args.dump, args.repeat, Path(tmp)) if args.repeat > 1 else args.dump
        report = measure(dump, args, Path(tmp))
        if not args.no_build:
            measure_multistream(report, dump, args, Path(tmp))
    report.dump = str(args.dump)
    print(json.dumps(asdict(report), indent=2) if args.json else format_report(report, args))
    return 0


def measure(dump: Path, args: argparse.Namespace, tmp: Path) -> BenchReport:
    """Every figure of the report, measured on one dump file."""
    articles, site, xml_bytes = read_articles(dump)
    if not articles:
        raise ValueError(f"{dump}: no articles (namespace 0, not redirects) to measure")
    report = BenchReport(dump=str(dump), repeat=args.repeat, xml_mb=xml_bytes / MB,
                         articles=len(articles),
                         wikitext_mb=sum(len(t.encode("utf-8")) for _, t in articles) / MB,
                         cores=os.cpu_count() or 1, python=platform.python_version(),
                         load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    seconds, how = time_parsers(articles, site, dump, tmp)
    report.add("parse", seconds["parse"], note="parse_page of every article")
    report.add("plain", seconds["plain"], note="mwparserfromhell.parse + strip_code()")
    report.add("wikiextractor", seconds["wikiextractor"], note=how)
    if not args.no_build:
        measure_builds(report, dump, args, tmp)
    add_ratios(report)
    return report


def measure_builds(report: BenchReport, dump: Path, args: argparse.Namespace, tmp: Path) -> None:
    measure_pages_stage(report, dump, args, tmp, "pages", "pages stage")
    if all(importlib.util.find_spec(m) is not None for m in LATER_STAGE_MODULES):
        options = BuildOptions(dumps=(dump,), out=tmp / "full", workers=args.workers,
                               word_vocab_size=args.word_vocab_size or 8000, partial_dump=True)
        try:
            measure_whole_build(report, options)
        except Exception as error:       # report the figures we have; say why this one is absent
            report.checks["whole build ran"] = False
            print(f"luke-corpus bench: whole build failed: {error}", file=sys.stderr)


def measure_pages_stage(report: BenchReport, dump: Path, args: argparse.Namespace, tmp: Path,
                        prefix: str, label: str, index: Path | None = None) -> None:
    """Figures `prefix`/1..N: the pages stage with 1..N workers, fastest of the rounds."""
    from corpus.build import build

    best: dict[int, float] = {}
    for round_ in range(args.rounds):     # rounds outside, so slow spells hit every count
        for workers in range(1, args.workers + 1):
            out = tmp / f"{prefix}-{workers}-{round_}"
            options = BuildOptions(dumps=(dump,), out=out, workers=workers, index=index)
            best[workers] = min(timed(lambda: build(options, until="pages")),
                                best.get(workers, float("inf")))
            shutil.rmtree(out, ignore_errors=True)
    for workers, seconds in best.items():
        report.add(f"{prefix}/{workers}", seconds, workers,
                   note=f"{label}, {workers} worker{'s' if workers > 1 else ''}")


def measure_whole_build(report: BenchReport, options: BuildOptions) -> None:
    """The whole build, stage by stage (each build call runs the next stage only, the earlier
    ones being current), so the report shows where the time goes."""
    from corpus.build import build
    from corpus.stages import STAGE_NAMES

    total = 0.0
    for stage in STAGE_NAMES:
        seconds = timed(lambda: build(options, until=stage))
        total += seconds
        report.add(f"build:{stage}", seconds, options.workers,
                   note=f"  whole build: {stage} stage")
    report.add("build", total, options.workers, note=f"whole build, {options.workers} workers")


def measure_multistream(report: BenchReport, dump: Path, args: argparse.Namespace,
                        tmp: Path) -> None:
    """The pages stage on a multistream copy of the dump (each worker decompresses its own
    streams), and how long one process takes just to decompress the plain file: the plain
    path's main process does that alone, which bounds its scaling."""
    (tmp / "multistream").mkdir(parents=True, exist_ok=True)
    ms_dump = tmp / "multistream" / "bench-multistream.xml.bz2"
    index = write_multistream(decoded_xml(dump), ms_dump)
    measure_pages_stage(report, ms_dump, args, tmp, "multistream", "pages stage, multistream",
                        index=index)
    report.add("bz2", timed(lambda: _drain_bz2(dump)), note="bz2 decompression alone (plain)")
    add_scaling(report, "multistream")
    one = report.get("pages/1")
    if one is not None:
        report.ratios["bz2 decompression / pages stage 1 worker (plain)"] = (
            report.get("bz2").seconds / one.seconds)


def _drain_bz2(path: Path) -> None:
    with bz2.open(path, "rb") as stream:
        while stream.read(1 << 20):
            pass


def add_ratios(report: BenchReport) -> None:
    parse, plain, extractor = report.get("parse"), report.get("plain"), report.get("wikiextractor")
    report.ratios["parse/plain"] = parse.mb_per_s / plain.mb_per_s
    report.ratios["parse/wikiextractor"] = parse.mb_per_s / extractor.mb_per_s
    one = report.get("pages/1")
    if one is None:
        return
    for figure in report.figures:
        if figure.name.startswith("pages/") or figure.name == "build":
            per_worker = figure.mb_per_s_per_worker
            report.ratios[f"{figure.name} per worker/plain"] = per_worker / plain.mb_per_s
            report.ratios[f"{figure.name} per worker/wikiextractor"] = (
                per_worker / extractor.mb_per_s)
    add_scaling(report, "pages")


def add_scaling(report: BenchReport, prefix: str) -> None:
    """Scaling efficiency 1->N of the `prefix`/N figures, and the issue's floors on them."""
    one = report.get(f"{prefix}/1")
    figures = [f for f in report.figures if f.name.startswith(f"{prefix}/")]
    name = "" if prefix == "pages" else f" ({prefix})"
    for figure in figures:
        if figure.workers > 1:
            report.ratios[f"scaling 1->{figure.workers}{name}"] = (
                figure.mb_per_s / (figure.workers * one.mb_per_s))
    report.checks[f"pages stage{name} >= {FLOOR_MB_PER_WORKER} MB/s per worker"] = all(
        f.mb_per_s_per_worker >= FLOOR_MB_PER_WORKER for f in figures)
    if f"scaling 1->2{name}" in report.ratios:
        scaling = report.ratios[f"scaling 1->2{name}"]
        report.checks[f"scaling 1->2{name} >= {FLOOR_SCALING}"] = scaling >= FLOOR_SCALING


def read_articles(dump: Path):
    """(title, wikitext) of every namespace-0, non-redirect page; the site; XML bytes read."""
    reader = DumpReader(dump)
    articles = [(p.title, p.text) for p in reader
                if p.ns == 0 and p.redirect is None and not p.malformed]
    return articles, reader.site, reader.xml_bytes


def time_parsers(articles: list[tuple[str, str]], site, dump: Path, tmp: Path
                 ) -> tuple[dict[str, float], str]:
    """Seconds each parser spends on the articles, one process, and how wikiextractor ran.

    The parsers take turns article by article, so a change in machine load (other processes
    on a shared machine) weighs on all of them alike and their ratios stay fair.
    """
    from corpus.wikitext import parse_page

    parsers = {"parse": lambda title, text: parse_page(text, title, site), "plain": plain_parse}
    extractor = wikiextractor_function()
    if extractor is not None:
        parsers["wikiextractor"] = extractor
    seconds = dict.fromkeys(parsers, 0.0)
    for title, text in item_progress(articles, "parse and baselines", total=len(articles)):
        for name, parse in parsers.items():
            started = time.perf_counter()
            parse(title, text)
            seconds[name] += time.perf_counter() - started
    if extractor is not None:
        return seconds, "wikiextractor Extractor, --links"
    seconds["wikiextractor"] = time_wikiextractor_cli(dump, tmp)
    return seconds, "wikiextractor command line, --links"


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def plain_parse(title: str, text: str) -> str:
    import mwparserfromhell

    return mwparserfromhell.parse(text).strip_code()


def wikiextractor_function() -> Callable[[str, str], None] | None:
    """wikiextractor's per-page work as its worker processes do it (with --links), or None
    when its module cannot be imported."""
    try:
        from wikiextractor.extract import Extractor
    except ImportError:
        return None
    logging.getLogger("wikiextractor").setLevel(logging.ERROR)

    def extract(title: str, text: str) -> None:
        Extractor("0", "0", "", title, text.splitlines(True), keepLinks=True).extract(io.StringIO())

    return extract


def time_wikiextractor_cli(dump: Path, tmp: Path) -> float:
    command = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "--processes", "1",
               "--links", "--quiet", "-o", str(tmp / "wikiextractor")]
    return timed(lambda: subprocess.run(command, check=True, capture_output=True))


def repeated_dump(source: Path, repeat: int, tmp: Path) -> Path:
    """A UTF-8 .xml.bz2 holding the source's pages `repeat` times, copies under new titles and
    ids (the pages stage keys pages by title), siteinfo kept."""
    xml = decoded_xml(source)
    first, last = xml.find("<page>"), xml.rfind("</page>") + len("</page>")
    if first < 0 or last < first:
        raise ValueError(f"{source}: no <page> elements to repeat")
    head, body, tail = xml[:first], xml[first:last], xml[last:]
    ids = [int(i) for i in re.findall(r"</ns>\s*<id>(\d+)</id>", body)]
    step = max(ids, default=0) + 1
    copies = [body] + [_renamed_copy(body, k, k * step) for k in range(1, repeat)]
    path = tmp / f"{source.name.split('.')[0]}-x{repeat}.xml.bz2"
    with bz2.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write(head)
        for copy in copies:
            out.write(copy)
            out.write("\n")
        out.write(tail)
    return path


def _renamed_copy(body: str, k: int, id_offset: int) -> str:
    body = re.sub(r"<title>(.*?)</title>", rf"<title>\1 (bench copy {k})</title>", body)
    return re.sub(r"(</ns>\s*<id>)(\d+)(</id>)",
                  lambda m: f"{m.group(1)}{int(m.group(2)) + id_offset}{m.group(3)}", body)


def format_report(report: BenchReport, args: argparse.Namespace) -> str:
    command = (f"luke-corpus bench {report.dump} --workers {args.workers} --repeat {args.repeat}"
               f" --rounds {args.rounds}" + (" --no-build" if args.no_build else ""))
    lines = [command,
             f"  the dump's pages {report.repeat} times (copies under new titles)"
             if report.repeat > 1 else "  the dump as it is",
             f"  {report.xml_mb:.2f} MB of XML, {report.articles} articles "
             f"({report.wikitext_mb:.2f} MB of wikitext); {report.cores} CPU cores "
             f"(load average {report.load_average:.1f} at start); Python {report.python}",
             "  parse and baselines take turns article by article, so their ratios are fair "
             "under changing load",
             f"  {'':44}{'MB XML/s':>9}{'per worker':>12}{'seconds':>9}"]
    for f in report.figures:
        lines.append(f"  {f.note[:44]:44}{f.mb_per_s:9.2f}{f.mb_per_s_per_worker:12.2f}"
                     f"{f.seconds:9.2f}")
    lines.append("  ratios (per worker, against the one-process baselines):")
    lines += [f"    {name:44}{value:8.2f}" for name, value in report.ratios.items()]
    lines += [f"  floor: {name}: {'yes' if ok else 'NO'}" for name, ok in report.checks.items()]
    return "\n".join(lines)
