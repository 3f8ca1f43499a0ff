"""The pages stage: dumps -> DIR/pages (clean text + link spans) and DIR/redirects.tsv.

A build takes one dump per language (corpus/dump_languages.py); each is read on its own into a
part that a rerun keeps, and the parts are joined at the end (corpus/pages_parts.py). For each
dump, reading and parsing are split so that N worker processes do the expensive part (wikitext
parsing) while pages stay in dump order, whatever N is:
  - a plain dump: this process reads pages and sends chunks of articles to the workers;
  - a multistream dump with its index: each worker reads and parses whole bz2 streams itself,
    so decompression is parallel too.
Only namespace-0 pages that are not redirects become rows; redirects are collected, chains are
resolved once the whole dump has been read, and then every link target is resolved in one pass
over the rows written so far (a redirect can come after the pages that link to it). A page the
parser chokes on (exception, RecursionError, over `page_timeout` seconds, a crash of its worker)
is skipped, counted by reason and named in the log; the build goes on. So is a malformed page
(corpus/dump.py: no title, no or a non-integer namespace or id, no text, a redirect without a
target), counted per kind as `malformed_<kind>`. The workers and their per-page watchdog are
corpus/workers.py; the task functions here report each page to it.

The wiki's language (siteinfo, or `--language`) chooses MediaWiki's rules for link trails,
namespace aliases and `-{...}-` variants (corpus/languages.py); `--variant` picks the variant
that markup is rendered in. Both are recorded in the stage's manifest section.

`--workers N` is the number of parse processes; this process reads (plain dumps), collects and
writes besides them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from corpus import languages
from corpus.dump import MALFORMED_KINDS, DumpError, DumpReader, RawPage
from corpus.multistream import read_header_site, read_stream_offsets, \
    read_stream_pages, stream_ranges
from corpus.dump_languages import DumpLanguage, dump_languages
from corpus.manifest import file_fingerprint
from corpus.options import StageContext
from corpus.pages_parts import built_part, join_parts, remove_parts, summed_counts
from corpus.progress import byte_progress, count_progress, progress_enabled
from corpus.redirects import resolve_redirects, write_redirects_tsv
from corpus.schema import PAGE_COLUMNS, PAGES_DIR, REDIRECTS_FILE
from corpus.siteinfo import SiteInfo
from corpus.stages import stage
from corpus.workers import PageWatch, ordered_map

log = logging.getLogger(__name__)

SKIP_REASONS = ("exception", "recursion", "timeout", "crash")
# The parser's link figures, summed into the manifest's counts (luke-corpus inspect --stats):
# article links found, kept with the span exactly on the anchor as written, extended by the
# language's link trail.
QUALITY_COUNTS = ("link_spans_made", "link_spans_on_anchor", "link_spans_trailed")
ALARM_TIMEOUTS = True               # False leaves page_timeout to the watchdog alone (tests)
CHUNK_WIKITEXT_CHARS = 1 << 19      # articles per task: enough to amortize pickling
MAX_SKIPPED_LISTED = 1000           # skipped pages named in the manifest (all are in the log)
ROWS_PER_BATCH = 1000
WORKER_PRELOAD = ("corpus.pages_stage", "corpus.wikitext")   # imported before forking

PAGE_SCHEMA = pa.schema([
    ("id", pa.int64()), ("title", pa.string()), ("text", pa.string()),
    ("link_start", pa.list_(pa.int32())), ("link_end", pa.list_(pa.int32())),
    ("link_target", pa.list_(pa.string())),
])
assert tuple(PAGE_SCHEMA.names) == PAGE_COLUMNS


@dataclass(frozen=True)
class ParseContext:
    """Everything a worker needs, passed with every task (no pool-initializer globals)."""
    site: SiteInfo
    page_timeout: float
    alarm: bool = True      # SIGALRM inside the worker; the watchdog is the backstop
    variant: str | None = None   # the variant `-{...}-` markup is rendered in


@dataclass
class ChunkResult:
    """What parsing one chunk of pages gives back to the writer, in dump order."""
    rows: list[tuple] = field(default_factory=list)
    skipped: list[tuple[int, str, str, str]] = field(default_factory=list)  # id, title, reason, why
    redirects: list[tuple[str, str]] = field(default_factory=list)   # source, normalized target
    malformed: list[RawPage] = field(default_factory=list)   # skipped before parsing
    quality: Counter = field(default_factory=Counter)        # QUALITY_COUNTS of the rows
    other_pages: int = 0             # pages outside namespace 0
    truncated: bool = False
    input_end: int = 0               # compressed byte reached (for progress)
    xml_bytes: int = 0
    cpu_seconds: float = 0.0         # CPU time the worker spent on this chunk


class PageTimeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise PageTimeout()


def parse_article(page: RawPage, site: SiteInfo, variant: str | None = None
                  ) -> tuple[tuple, tuple[int, int, int]]:
    """One row of PAGE_SCHEMA with link targets normalized but not yet redirect-resolved, and
    the parser's link figures (QUALITY_COUNTS, in that order)."""
    from corpus.wikitext import parse_page    # lazy: mwparserfromhell only where pages are parsed

    parsed = parse_page(page.text, page.title, site, variant=variant)
    links = [link for link in parsed.links if link[2]]
    row = (page.id, page.title, parsed.text, [s for s, _, _ in links],
           [e for _, e, _ in links], [t for _, _, t in links])
    return row, (parsed.links_made, parsed.links_on_anchor, parsed.links_trailed)


def _parse_with_limits(page: RawPage, ctx: ParseContext, result: ChunkResult) -> None:
    """Parse one article into `result`, or record why it was skipped."""
    timer = ctx.alarm and ctx.page_timeout > 0 and _timer_available()
    try:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, ctx.page_timeout)
        row, figures = parse_article(page, ctx.site, ctx.variant)
        if timer:                       # disarm before anything else can be interrupted
            signal.setitimer(signal.ITIMER_REAL, 0)
    except PageTimeout:
        result.skipped.append((page.id, page.title, "timeout", f"over {ctx.page_timeout} s"))
    except RecursionError:
        result.skipped.append((page.id, page.title, "recursion", "RecursionError"))
    except Exception as error:    # the parser may fail in any way on odd wikitext; skip the page
        result.skipped.append((page.id, page.title, "exception",
                               f"{type(error).__name__}: {error}"[:300]))
    else:
        result.rows.append(row)
        for name, value in zip(QUALITY_COUNTS, figures):
            result.quality[name] += value
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _timer_available() -> bool:
    """SIGALRM can only be handled in the main thread of a process."""
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


def parse_articles(pages: list[RawPage], ctx: ParseContext, skip: frozenset = frozenset(),
                   watch: PageWatch | None = None) -> ChunkResult:
    """Worker task: parse a chunk of articles (plain-dump mode), leaving out indices in `skip`."""
    result, started = ChunkResult(), time.process_time()
    old = signal.signal(signal.SIGALRM, _raise_timeout) if _timer_available() else None
    try:
        for index, page in enumerate(pages):
            if index in skip:
                continue
            if watch is not None:
                watch.begin(index, page)
            _parse_with_limits(page, ctx, result)
    finally:
        if old is not None:
            signal.signal(signal.SIGALRM, old)
    result.cpu_seconds = time.process_time() - started
    return result


def classify(page: RawPage, site: SiteInfo, result: ChunkResult) -> bool:
    """True for an article to parse; records malformed pages, redirects and other-namespace
    pages in `result`."""
    from corpus.titles import normalize_title

    if page.malformed:
        result.malformed.append(page)
        return False
    if page.ns != 0:
        result.other_pages += 1
        return False
    if page.redirect is not None:
        result.redirects.append((page.title, normalize_title(page.redirect, site)))
        return False
    return True


def read_and_parse_stream(dump: str, start: int, end: int, ctx: ParseContext,
                          skip: frozenset = frozenset(), watch: PageWatch | None = None
                          ) -> ChunkResult:
    """Worker task: read the bz2 streams in bytes [start, end) and parse their articles."""
    started = time.process_time()
    stream = read_stream_pages(Path(dump), start, end)
    classified = ChunkResult()
    articles = [p for p in stream.pages if classify(p, ctx.site, classified)]
    result = parse_articles(articles, ctx, skip, watch)
    result.redirects, result.other_pages = classified.redirects, classified.other_pages
    result.malformed = classified.malformed
    result.truncated, result.input_end = stream.truncated, end
    result.xml_bytes = stream.xml_bytes
    result.cpu_seconds = time.process_time() - started
    return result


class PagesCollector:
    """Takes ChunkResults in dump order: writes rows, keeps redirects, counts, logs skips."""

    def __init__(self, raw_path: Path) -> None:
        self.writer = pa.ipc.new_stream(str(raw_path), PAGE_SCHEMA)
        self.batch: list[tuple] = []
        self.redirects: dict[str, str] = {}
        self.article_titles: set[str] = set()
        self.skip_reasons: Counter = Counter()
        self.malformed: Counter = Counter()
        self.skipped_pages: list[list] = []
        self.counts: Counter = Counter(dict.fromkeys(QUALITY_COUNTS, 0))
        self.truncated = False
        self.rows = 0
        self.worker_cpu = 0.0

    def add(self, result: ChunkResult) -> None:
        self.rows += len(result.rows)
        for row in result.rows:
            self.article_titles.add(row[1])
            self.batch.append(row)
        if len(self.batch) >= ROWS_PER_BATCH:
            self.flush()
        self.redirects.update(result.redirects)
        self.counts["other_namespace_pages"] += result.other_pages
        self.counts.update(result.quality)
        self.truncated |= result.truncated
        self.worker_cpu += result.cpu_seconds
        for page_id, title, reason, why in result.skipped:
            log.warning("skipped page %r (id %d): %s: %s", title, page_id, reason, why)
            self.skip_reasons[reason] += 1
            self._list(page_id, title, reason)
        for page in result.malformed:
            log.warning("skipped malformed page: %s", page.problem)
            self.malformed[page.malformed] += 1
            self._list(page.id if page.id >= 0 else None, page.title or None,
                       f"malformed_{page.malformed}")

    def _list(self, page_id: int | None, title: str | None, reason: str) -> None:
        if len(self.skipped_pages) < MAX_SKIPPED_LISTED:
            self.skipped_pages.append([page_id, title, reason])

    def flush(self) -> None:
        if self.batch:
            columns = list(zip(*self.batch))
            self.writer.write_batch(pa.record_batch(
                [pa.array(c, type=f.type) for c, f in zip(columns, PAGE_SCHEMA)],
                schema=PAGE_SCHEMA))
            self.batch = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def plain_tasks(reader: DumpReader, collector: PagesCollector,
                context_of: Callable[[SiteInfo], ParseContext]) -> Iterator[tuple]:
    """(chunk of articles, context) tasks from a streamed dump; redirects, malformed and
    other-namespace pages go to the collector. The context is made once the reader has met
    the dump's siteinfo, i.e. with its first page (reading the header twice would cost a
    tenth of a second of decompressing and parsing)."""
    chunk, chars, side = [], 0, ChunkResult()
    parse_ctx = None
    for page in reader:
        parse_ctx = parse_ctx or context_of(reader.site)
        if not classify(page, parse_ctx.site, side):
            continue
        chunk.append(page)
        chars += len(page.text)
        if chars >= CHUNK_WIKITEXT_CHARS:
            yield chunk, parse_ctx
            chunk, chars = [], 0
        if side.redirects or side.other_pages or side.malformed:
            collector.add(side)
            side = ChunkResult()
    collector.add(side)
    if chunk:
        yield chunk, parse_ctx


def run(ctx: StageContext) -> dict:
    """Build DIR/pages and DIR/redirects.tsv from every dump of the build, a part per dump
    (corpus/pages_parts.py); return the stage's manifest section, languages listed."""
    options = ctx.options
    entries = dump_languages(options.dumps, options.index, options.language)
    part_options = options.subset(tuple(o for o in stage("pages").options if o != "dumps"))
    parts = []
    for number, entry in enumerate(entries):
        part, section = built_part(ctx.lasting_dir, number, entry, part_options,
                                   lambda out: dump_pages(entry, ctx, out))
        parts.append((entry, part, section))
    languages = join_parts(parts, ctx.out_dir)
    remove_parts(ctx.lasting_dir)
    truncations = [entry["truncation"] for entry in languages if entry.get("truncation")]
    return {"languages": languages, "counts": summed_counts(languages),
            "truncated": any(entry["truncated"] for entry in languages),
            "truncation": "; ".join(truncations),
            "skipped_pages": [page for entry in languages
                              for page in entry.pop("skipped_pages", [])][:MAX_SKIPPED_LISTED],
            "fingerprint": _output_fingerprint(ctx.out_dir), "workers": ctx.workers}


def dump_pages(entry: DumpLanguage, ctx: StageContext, out: Path) -> dict:
    """Read one dump into out/pages and out/redirects.tsv; return its section."""
    options = ctx.options
    dump, index = entry.dump, entry.index
    started, cpu_started = time.perf_counter(), time.process_time()
    raw_path = out / "pages.unresolved.arrow"
    collector = PagesCollector(raw_path)
    try:
        if index:
            dump_site = read_header_site(dump)
            parse_ctx = parse_context(dump_site, options, entry.language)
            xml_bytes, truncation = _read_multistream(dump, Path(index), parse_ctx, ctx,
                                                      collector)
        else:
            dump_site, parse_ctx, xml_bytes, truncation = _read_plain(dump, options, ctx,
                                                                      collector, entry.language)
    finally:
        collector.close()
    _refuse_empty(collector, dump, truncation)
    section = _finish(collector, raw_path, out)
    section["counts"]["xml_bytes"] = xml_bytes
    site = parse_ctx.site
    section.update(
        truncated=collector.truncated, truncation=truncation,
        siteinfo={"dbname": dump_site.dbname, "language": dump_site.language,
                  "case": dump_site.case, "from_dump": dump_site.from_dump,
                  "namespaces": dump_site.namespaces},
        language_rules={"language": site.language, "variant": parse_ctx.variant,
                        "link_trail": languages.link_trail_source(site.language),
                        "mediawiki": languages.mediawiki_version()},
        input=file_fingerprint(dump), index=str(index) if index else None,
        seconds=round(time.perf_counter() - started, 3),
        # Where the time went, robust to other load on the machine: CPU seconds of the parse
        # tasks (in the workers) and of this process (reading, writing, resolving links).
        cpu_seconds={"parse": round(collector.worker_cpu, 3),
                     "main": round(time.process_time() - cpu_started, 3)})
    return section


def parse_context(dump_site: SiteInfo, options, language: str) -> ParseContext:
    """What the workers parse with: the dump's site in `language` (its own, or the one
    `--language` gives it), the `--variant` checked against that language. Raises ValueError
    for a variant the language lacks; warns about a language MediaWiki does not know (English
    rules apply)."""
    site = dump_site
    if language != site.language:
        site = dataclasses.replace(site, language=language)
    if not languages.is_known(site.language):
        log.warning("language %r is not one MediaWiki knows; its English rules apply (link "
                    "trail a-z, English namespace names)", site.language)
    variant = languages.check_variant(site.language, options.variant)
    return ParseContext(site, options.page_timeout, ALARM_TIMEOUTS, variant)


def _refuse_empty(collector: PagesCollector, dump: Path, truncation: str) -> None:
    """A build without a single article has nothing for the later stages: say why instead."""
    if collector.rows:
        return
    raise DumpError(
        f"{dump}: no article to keep: {len(collector.redirects)} redirects, "
        f"{collector.counts['other_namespace_pages']} pages outside namespace 0, "
        f"{sum(collector.skip_reasons.values())} articles skipped by the parser "
        f"({dict(collector.skip_reasons) or 'none'}), {sum(collector.malformed.values())} "
        f"malformed pages" + (f"; {truncation}" if truncation else ""))


def _read_plain(dump: Path, options, ctx: StageContext, collector: PagesCollector,
                language: str):
    reader = DumpReader(dump)
    made: list[ParseContext] = []

    def context_of(site: SiteInfo) -> ParseContext:
        made.append(parse_context(site, options, language))
        return made[0]

    with byte_progress(reader.size, f"pages ({dump.name})") as bar:
        reader.on_progress = lambda done, xml: bar.update(done, reader.pages_read, xml)
        tasks = plain_tasks(reader, collector, context_of)
        for result in ordered_map(parse_articles, tasks, ctx.workers, options.page_timeout,
                                  WORKER_PRELOAD):
            collector.add(result)
    collector.truncated |= reader.truncated
    if reader.truncated:
        log.warning(reader.truncation)
    site = reader.site or SiteInfo.default()
    return site, made[0] if made else context_of(site), reader.xml_bytes, reader.truncation


def _read_multistream(dump: Path, index: Path, parse_ctx: ParseContext, ctx: StageContext,
                      collector: PagesCollector):
    size = dump.stat().st_size
    offsets = read_stream_offsets(index)
    tasks = ((str(dump), start, end, parse_ctx) for start, end in stream_ranges(offsets, size))
    xml_bytes = pages = 0
    truncation = ""
    with byte_progress(size, f"pages ({dump.name}, multistream)") as bar:
        for result in ordered_map(read_and_parse_stream, tasks, ctx.workers,
                                  parse_ctx.page_timeout, WORKER_PRELOAD):
            collector.add(result)
            xml_bytes += result.xml_bytes
            pages += (len(result.rows) + len(result.redirects) + result.other_pages
                      + len(result.malformed))
            bar.update(result.input_end, pages, xml_bytes)
            if result.truncated and not truncation:
                truncation = f"{dump}: input truncated: a bz2 stream before byte " \
                             f"{result.input_end} ends early; complete pages kept"
    if offsets[-1] >= size:
        collector.truncated = True
        truncation = truncation or f"{dump}: input truncated: the index names streams at " \
                                   f"byte {offsets[-1]}, past the file's end ({size})"
    if truncation:
        log.warning(truncation)
    return xml_bytes, truncation


def _finish(collector: PagesCollector, raw_path: Path, out: Path) -> dict:
    """Resolve redirects, rewrite link targets, save the dataset; the section without inputs."""
    import datasets

    resolved = resolve_redirects(collector.redirects)
    write_redirects_tsv(resolved.targets, out / REDIRECTS_FILE)
    final_path = out / "pages.arrow"
    link_counts = _resolve_links(raw_path, final_path, resolved.targets,
                                 collector.article_titles, collector.rows)
    raw_path.unlink()
    if not progress_enabled():
        datasets.disable_progress_bars()
    pages = datasets.Dataset.from_file(str(final_path), in_memory=False)
    pages.save_to_disk(str(out / PAGES_DIR))
    del pages
    final_path.unlink()
    counts = {"articles": collector.rows,
              "redirects": len(resolved.targets), "redirect_loops": resolved.loops,
              "redirects_in_loops": resolved.in_loops,
              "longest_redirect_chain": resolved.longest_chain,
              "skipped": sum(collector.skip_reasons.values()),
              **{f"skipped_{r}": collector.skip_reasons[r] for r in SKIP_REASONS},
              "malformed_pages": sum(collector.malformed.values()),
              **{f"malformed_{k}": collector.malformed[k] for k in MALFORMED_KINDS},
              **collector.counts, **link_counts}
    return {"counts": counts, "skipped_pages": collector.skipped_pages}


def _resolve_links(raw_path: Path, final_path: Path, redirects: dict[str, str],
                   articles: set[str], rows: int) -> dict[str, int]:
    """Copy the rows with every link target resolved through redirects; count links and misses."""
    links = missing = 0
    missing_titles: set[str] = set()
    with pa.memory_map(str(raw_path)) as source, pa.ipc.open_stream(source) as reader, \
            pa.ipc.new_stream(str(final_path), PAGE_SCHEMA) as writer, \
            count_progress(rows, "resolve links") as bar:
        for batch in reader:
            column = batch.column(PAGE_COLUMNS.index("link_target"))
            flat = [redirects.get(t, t) for t in column.flatten().to_pylist()]
            links += len(flat)
            for target in flat:
                if target not in articles:
                    missing += 1
                    missing_titles.add(target)
            offsets = column.offsets
            resolved = pa.ListArray.from_arrays(
                pc.subtract(offsets, offsets[0]), pa.array(flat, pa.string()))
            writer.write_batch(batch.set_column(PAGE_COLUMNS.index("link_target"),
                                                "link_target", resolved))
            bar.update(batch.num_rows)
    return {"links": links, "link_targets_missing": missing,
            "distinct_link_targets_missing": len(missing_titles)}


def _output_fingerprint(out: Path) -> str:
    """blake2b of the dataset's Arrow files and redirects.tsv: changes exactly when they do."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted((out / PAGES_DIR).glob("*.arrow")) + [out / REDIRECTS_FILE]:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()
