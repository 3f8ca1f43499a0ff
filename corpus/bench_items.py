"""`luke-corpus bench-items`: the cost of one entity per Wikidata item across languages.

It writes, under a work directory, synthetic wikis of the shape the entity-vocabulary stage
reads: per language a pages dataset (articles with Zipf-distributed link targets, a share of
them missing from the dump) and that wiki's page_props dump in Wikimedia's layout
(corpus/page_props_sql.py: three property rows per article, one its `wikibase_item`; a share of
the items shared by every language). Then it measures:
  - reading a page_props dump (corpus/page_props.py): MB/s of the .sql.gz file and of its SQL
    text, rows/s, against the floor of decompressing and splitting the same file into lines
    without reading a row (the ratio is what parsing the rows costs on top);
  - the entity_vocab stage of a build of all the languages with --wikidata-ids, in a fresh
    process: seconds and peak anonymous memory (sampled; the memory-mapped pages' file pages
    left out) above what the process held before the stage; against, as a baseline, the
    title vocabulary of one language (the stage of a one-dump build);
and extrapolates the stage's memory to 24 languages of English Wikipedia's size (7M articles
each: an upper bound, English is the largest) and mLUKE's 1.2M entities. Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MB = 1_000_000
ENGLISH_ARTICLES = 7_000_000
REFERENCE_LANGUAGES = 24
REFERENCE_VOCABULARY = 1_200_000     # mLUKE's entities
SMALL_VOCABULARY = 1_000
SHARED_ITEMS = 0.3           # share of each language's articles whose item every language has
MISSING_TARGETS = 0.1        # share of the links to titles that are no article of the dump


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--languages", type=int, default=4, help="wikis (default: 4)")
    parser.add_argument("--articles", type=int, default=200_000,
                        help="articles per wiki (default: 200,000)")
    parser.add_argument("--links", type=int, default=25,
                        help="links per article (default: 25; English has about 23)")
    parser.add_argument("--workdir", type=Path, help="where the synthetic wikis go (default: a "
                        "temporary directory, removed afterwards)")


def run(args: argparse.Namespace) -> int:
    from corpus.progress import quiet_datasets

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-items-"))
    try:
        started = time.perf_counter()
        languages = [f"l{number}" for number in range(args.languages)]
        with quiet_datasets():        # its bars would drown the figures
            for number, language in enumerate(languages):
                write_wiki(workdir, language, number, args.articles, args.links)
        print(f"bench-items: {args.languages} wikis of {args.articles:,} articles and "
              f"{args.links} links each, written in {time.perf_counter() - started:.1f} s "
              f"under {workdir}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
              f"cores")
        report_reading(props_path(workdir, languages[0]))
        with quiet_datasets():
            report_stage(workdir, languages, args.articles)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


# ---------------------------------------------------------------- the synthetic wikis

def title(language: str, number: int) -> str:
    return f"{language} article number {number}"


def item_of(language_number: int, article: int, articles: int) -> int:
    """Articles below SHARED_ITEMS * articles share their item with every language."""
    if article < SHARED_ITEMS * articles:
        return article + 1
    return (language_number + 1) * 10 * articles + article


def props_path(workdir: Path, language: str) -> Path:
    return workdir / f"{language}wiki-page_props.sql.gz"


def write_wiki(workdir: Path, language: str, number: int, articles: int, links: int) -> None:
    """workdir/<language>/pages (a datasets directory) and its page_props dump."""
    import datasets
    import pyarrow as pa

    from corpus.page_props_sql import write_page_props

    rng = np.random.default_rng(number)
    targets = np.minimum(rng.zipf(1.3, size=articles * links) - 1, articles - 1)
    missing = rng.random(targets.size) < MISSING_TARGETS
    names = [title(language, int(t)) if not gone else f"{language} missing {int(t)}"
             for t, gone in zip(targets, missing)]
    offsets = np.arange(0, articles * links + 1, links, dtype=np.int32)
    target_column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names, pa.string()))
    spans = pa.ListArray.from_arrays(pa.array(offsets), pa.array(
        np.zeros(articles * links, dtype=np.int32)))
    table = pa.table({"id": pa.array(np.arange(1, articles + 1), pa.int64()),
                      "title": [title(language, a) for a in range(articles)],
                      "text": pa.array([""] * articles), "link_start": spans,
                      "link_end": spans, "link_target": target_column})
    datasets.Dataset(table).save_to_disk(str(workdir / language / "pages"))
    write_page_props(props_path(workdir, language), f"{language}wiki", (
        row for article in range(articles) for row in (
            (article + 1, "defaultsort", title(language, article).upper()),
            (article + 1, "wikibase_item", f"Q{item_of(number, article, articles)}"),
            (article + 1, "page_image_free", f"{language}_image_{article}'s.jpg"))),
        rows_per_statement=4000)


# ---------------------------------------------------------------- reading page_props

def report_reading(path: Path) -> None:
    from corpus.page_props import read_wikidata_items

    size = path.stat().st_size
    started = time.perf_counter()
    text_bytes = lines = 0
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as stream:
        for line in stream:
            text_bytes += len(line)
            lines += 1
    floor = time.perf_counter() - started
    started = time.perf_counter()
    items = read_wikidata_items(path)
    seconds = time.perf_counter() - started
    found = len(items.page_ids)
    print(f"  read page_props ({size / MB:.1f} MB gz, {items.bytes_read / MB:.1f} MB SQL, "
          f"{items.statements:,} statements, {found:,} items among {3 * found:,} rows):")
    print(f"    corpus.page_props        {size / MB / seconds:6.2f} MB/s gz  "
          f"{items.bytes_read / MB / seconds:6.1f} MB/s SQL  {found / seconds:10,.0f} "
          f"items/s  ({seconds:.2f} s)")
    print(f"    gunzip + lines (floor)   {size / MB / floor:6.2f} MB/s gz  "
          f"{text_bytes / MB / floor:6.1f} MB/s SQL  ({floor:.2f} s): parsing the rows costs "
          f"{seconds / floor:.1f}x the floor")


# ---------------------------------------------------------------- the stage's memory

def report_stage(workdir: Path, languages: list[str], articles: int) -> None:
    """The stage at half and at all of each language's articles with a small vocabulary: the
    difference is what the articles cost, without the fixed costs (imports, kernels) that a
    small run is mostly made of; then at all articles with every entity kept, whose difference
    to the small vocabulary is what the entities cost (a real vocabulary stops at 1.2M)."""
    print("  entity_vocab stage (a fresh process each; peak memory above what it held before "
          "the stage):")
    per_article, full = {}, {}
    for name, names in ((f"{len(languages)} languages, items", languages),
                        ("1 language, titles", languages[:1])):
        half, full[name] = (measure(workdir, combine_pages(workdir, names, articles, fraction),
                                    names, len(names) > 1, SMALL_VOCABULARY)
                            for fraction in (0.5, 1.0))
        per_article[name] = (full[name]["peak"] - half["peak"]) / (
            (articles - articles // 2) * len(names))
        print(f"    {name:26s} {full[name]['seconds']:6.2f} s  "
              f"{full[name]['peak'] / MB:7.1f} MB for "
              f"{articles * len(names):,} articles ({half['peak'] / MB:.1f} MB for half): "
              f"{per_article[name]:,.0f} bytes per article")
    several, one = per_article.values()
    print(f"    per article, items vs titles: {several / max(one, 1e-9):.2f}x")
    every = measure(workdir, combine_pages(workdir, languages, articles, 1.0), languages, True,
                    REFERENCE_VOCABULARY)
    small = full[f"{len(languages)} languages, items"]
    per_entity = (every["peak"] - small["peak"]) / max(every["size"] - small["size"], 1)
    print(f"    every entity kept ({every['size']:,}): {every['seconds']:.2f} s, "
          f"{every['peak'] / MB:.1f} MB: {per_entity:,.0f} bytes per entity")
    total = REFERENCE_LANGUAGES * ENGLISH_ARTICLES
    if several <= 0 or per_entity <= 0:
        print("  extrapolated: not at this size: the articles' memory is lost in the "
              "allocator's noise; measure with --articles 100000 or more")
        return
    scaled = (several * total + per_entity * REFERENCE_VOCABULARY) / 1e9
    print(f"  extrapolated: {REFERENCE_LANGUAGES} languages of English's size "
          f"({ENGLISH_ARTICLES / 1e6:.0f}M articles each, {total / 1e6:.0f}M in all) and "
          f"{REFERENCE_VOCABULARY / 1e6:.1f}M entities -> about {scaled:.1f} GB above the fixed "
          f"costs (an upper bound: English is the largest)")


def combine_pages(workdir: Path, languages: list[str], articles: int, fraction: float
                  ) -> Path:
    """The first `fraction` of each language's articles as one pages dataset, rows language
    after language, as a build of several dumps lays them out (ids offset per language)."""
    import datasets

    from corpus.schema import PAGE_ID_STRIDE

    out = workdir / f"pages-{len(languages)}-{fraction}"
    if out.exists():
        return out
    parts = []
    for number, language in enumerate(languages):
        part = datasets.load_from_disk(str(workdir / language / "pages"))
        parts.append(part.select(range(int(articles * fraction))).map(
            lambda batch, n=number: {"id": [i + n * PAGE_ID_STRIDE for i in batch["id"]]},
            batched=True, keep_in_memory=True))
    datasets.concatenate_datasets(parts).save_to_disk(str(out))
    return out


def measure(workdir: Path, pages_dir: Path, languages: list[str], wikidata: bool,
            size: int) -> dict:
    """Run the stage in a fresh interpreter (its own peak memory) for a vocabulary of `size`;
    what it printed."""
    spec = {"pages": str(pages_dir), "out": f"{pages_dir}-vocab-{size}", "size": size,
            "languages": languages,
            "props": [str(props_path(workdir, name)) for name in languages] if wikidata else []}
    done = subprocess.run([sys.executable, "-m", "corpus.bench_items", json.dumps(spec)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def anonymous_memory() -> int:
    """This process's resident anonymous memory (RssAnon of /proc/self/status), in bytes: its
    own allocations. File pages of the memory-mapped pages dataset are left out: they count
    in the resident size too, but the kernel drops them under memory pressure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no RssAnon (bench-items measures on Linux)")


class PeakMemory:
    """The largest anonymous memory seen by a thread sampling it every 5 ms, above what the
    process held when the watch began."""

    def __init__(self) -> None:
        self.before = anonymous_memory()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, anonymous_memory())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anonymous_memory())
        return self.peak - self.before


def stage_in_this_process(spec: dict) -> dict:
    """The child's side of `measure`: open the pages, reset the peak, run the stage."""
    import datasets

    from corpus import entity_vocab
    from corpus.options import BuildOptions, StageContext
    from corpus.schema import PAGE_ID_STRIDE, PAGES_DIR

    out = Path(spec["out"])
    (out / PAGES_DIR).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(spec["pages"], out / PAGES_DIR)
    rows = len(datasets.load_from_disk(spec["pages"])) // len(spec["languages"])
    entries = [{"language": language, "dump": f"{language}wiki.xml",
                "siteinfo": {"dbname": f"{language}wiki"}, "rows": [n * rows, (n + 1) * rows],
                "id_offset": n * PAGE_ID_STRIDE} for n, language in enumerate(spec["languages"])]
    watch = PeakMemory()
    options = BuildOptions(dumps=tuple(Path(e["dump"]) for e in entries), out=out,
                           wikidata_ids=tuple(Path(p) for p in spec["props"]),
                           entity_vocab_size=spec["size"])
    started = time.perf_counter()
    section = entity_vocab.run(StageContext(options, {"pages": {"languages": entries}}))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak": watch.stop(),
            "size": section["size"]}


if __name__ == "__main__":
    print(json.dumps(stage_in_this_process(json.loads(sys.argv[1]))))
