"""The pages stage: dumps -> DIR/pages (clean text + link spans) and DIR/redirects.tsv.

A build takes one dump per language (corpus/dump_languages.py); each is read on its own into a
part that a rerun keeps, and the parts are joined at the end by renaming their files
(corpus/pages_parts.py). Each dump is read in two passes of worker processes, so that nothing
per page or per link runs in this process:
  1. read and parse: N workers turn articles into rows and each writes its task's rows as an
     Arrow file (with link targets as the wikitext names them); with a multistream dump and
     its index each worker also reads and decompresses its own bz2 streams, while a plain dump
     is read by this process, which hands chunks of articles to the workers (and is then the
     bound: the build says so as it starts). Only namespace-0 pages that are not redirects
     become rows; redirects and the counts come back to this process.
  2. once the whole dump has been read, every redirect is known: the chains are resolved on
     arrays (corpus/redirects.py), and workers rewrite the rows with every link target
     resolved, each into one file of the final dataset (corpus/link_resolution.py), whose
     names are then all that is written here (corpus/arrow_files.py).
Pages stay in dump order, and the files are the same whatever N is. A page the parser chokes
on (exception, RecursionError, over `page_timeout` seconds, a crash of its worker) is skipped,
counted by reason and named in the log; the build goes on. So is a malformed page
(corpus/dump.py: no title, no or a non-integer namespace or id, no text, a redirect without a
target), counted per kind as `malformed_<kind>`. The workers and their per-page watchdog are
corpus/workers.py; the task functions here report each page to it.

The wiki's language (siteinfo, or `--language`) chooses MediaWiki's rules for link trails,
namespace aliases and `-{...}-` variants (corpus/languages.py); `--variant` picks the variant
that markup is rendered in. Both are recorded in the stage's manifest section.

`--workers N` is the number of worker processes; this process reads (plain dumps), collects and
plans besides them.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus import languages
from corpus.arrow_files import (combined_digest, dataset_schema, file_digest, read_table,
                                write_dataset_dir, write_table)
from corpus.dump import MALFORMED_KINDS, DumpError, DumpReader, RawPage
from corpus.link_resolution import (PartFile, plan_link_jobs, resolve_links, row_sizes,
                                    write_redirect_index, write_title_index)
from corpus.multistream import (iter_stream_ranges, ordered_stream_offsets, read_header_site,
                                read_stream_pages)
from corpus.dump_languages import DumpLanguage, dump_languages
from corpus.manifest import file_fingerprint
from corpus.options import StageContext
from corpus.pages_parts import (built_part, join_parts, joined_fingerprint, remove_parts,
                                summed_counts)
from corpus.progress import byte_progress, count_progress
from corpus.redirects import RedirectTable, resolve_redirect_table, write_redirects_tsv
from corpus.schema import PAGE_COLUMNS, PAGE_ID_STRIDE, PAGES_DIR, REDIRECTS_FILE
from corpus.siteinfo import SiteInfo
from corpus.stages import stage
from corpus.workers import PageWatch, ordered_map, process_map

log = logging.getLogger(__name__)

SKIP_REASONS = ("exception", "recursion", "timeout", "crash")
# The parser's link figures, summed into the manifest's counts (luke-corpus inspect --stats):
# article links found, kept with the span exactly on the anchor as written, extended by the
# language's link trail.
QUALITY_COUNTS = ("link_spans_made", "link_spans_on_anchor", "link_spans_trailed")
ALARM_TIMEOUTS = True               # False leaves page_timeout to the watchdog alone (tests)
# Work per task. Each task writes one Arrow file, so a task is a few MB of pages: enough to
# amortize the file and the pickling, small enough to keep every worker busy to the end.
CHUNK_WIKITEXT_CHARS = 1 << 22      # plain dumps: wikitext handed to a worker per task
TASK_COMPRESSED_BYTES = 1 << 22     # multistream dumps: bz2 streams read per task, at most
INLINE_LINK_RESOLUTION_BYTES = 64 << 20   # rows whose links this process resolves itself
TASKS_PER_WORKER = 4                # at least, on a small dump: else one worker ends alone
MAX_SKIPPED_LISTED = 1000           # skipped pages named in the manifest (all are in the log)
ROWS_PER_BATCH = 1000
FIRST_PASS_DIR = ".first-pass"      # the first pass's files, inside the dump's part
WORKER_PRELOAD = ("corpus.pages_stage", "corpus.wikitext")   # imported before forking
SINGLE_READER_NOTE = (
    "{dump}: no multistream index, so one process reads and decompresses the whole dump and "
    "the pages stage cannot go faster than it (about a minute per GB of XML) whatever "
    "--workers is; for a large dump take the *-pages-articles-multistream.xml.bz2 file and its "
    "*-multistream-index.txt.bz2 from the same dump directory (or pass --index FILE)")

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
    """What parsing one chunk of pages gives back, in dump order. A worker task writes `rows`
    to its part file and sends them back empty, with `part` set."""
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
    part: PartFile | None = None     # the Arrow file the rows were written to
    row_bytes: np.ndarray | None = None   # each written row's size (link_resolution.row_sizes)


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
    """Parse a chunk of articles into rows, leaving out indices in `skip`."""
    result, started = ChunkResult(), time.process_time()
    old = signal.signal(signal.SIGALRM, _raise_timeout) if _timer_available() else None
    try:
        for index, page in enumerate(pages):
            if index in skip:
                continue
            if watch is not None:
                watch.begin(index, page)
            _parse_with_limits(page, ctx, result)
        if watch is not None:
            watch.idle()
    finally:
        if old is not None:
            signal.signal(signal.SIGALRM, old)
    result.cpu_seconds = time.process_time() - started
    return result


def parse_and_write(pages: list[RawPage], ctx: ParseContext, part: str,
                    skip: frozenset = frozenset(), watch: PageWatch | None = None
                    ) -> ChunkResult:
    """Worker task (plain dumps): parse a chunk of articles and write its rows to `part`."""
    started = time.process_time()
    result = parse_articles(pages, ctx, skip, watch)
    write_part(result, Path(part))
    result.cpu_seconds = time.process_time() - started
    return result


def write_part(result: ChunkResult, path: Path) -> None:
    """Write the result's rows as the Arrow file `path` and keep only what describes them."""
    columns = list(zip(*result.rows)) if result.rows else [[] for _ in PAGE_SCHEMA]
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, PAGE_SCHEMA)],
                                 schema=PAGE_SCHEMA)
    write_table(path, table, PAGE_SCHEMA, ROWS_PER_BATCH, digest=False)
    result.part = PartFile(str(path), table.num_rows)
    result.row_bytes = row_sizes(table)
    result.rows = []


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


def read_and_parse_stream(dump: str, start: int, end: int, ctx: ParseContext, part: str,
                          skip: frozenset = frozenset(), watch: PageWatch | None = None
                          ) -> ChunkResult:
    """Worker task: read the bz2 streams in bytes [start, end), parse their articles and write
    the rows to `part`."""
    started = time.process_time()
    stream = read_stream_pages(Path(dump), start, end)
    classified = ChunkResult()
    articles = [p for p in stream.pages if classify(p, ctx.site, classified)]
    result = parse_articles(articles, ctx, skip, watch)
    write_part(result, Path(part))
    result.redirects, result.other_pages = classified.redirects, classified.other_pages
    result.malformed = classified.malformed
    result.truncated, result.input_end = stream.truncated, end
    result.xml_bytes = stream.xml_bytes
    result.cpu_seconds = time.process_time() - started
    return result


class PagesCollector:
    """Takes ChunkResults in dump order: keeps the part files and redirects, counts, logs skips."""

    def __init__(self, parts_dir: Path) -> None:
        self.parts_dir = parts_dir
        self.parts: list[PartFile] = []
        self.row_bytes: list[np.ndarray] = []
        # redirects in dump order (a later one of the same title wins), as Arrow arrays: a
        # Python tuple of two strings would cost ~200 bytes a redirect, 10 M of them in English
        self.redirect_sources: list[pa.Array] = []
        self.redirect_targets: list[pa.Array] = []
        self.redirects = 0
        self.skip_reasons: Counter = Counter()
        self.malformed: Counter = Counter()
        self.skipped_pages: list[list] = []
        self.counts: Counter = Counter(dict.fromkeys(QUALITY_COUNTS, 0))
        self.truncated = False
        self.rows = 0
        self.worker_cpu = 0.0
        self._tasks = 0

    def next_part(self) -> str:
        """The file the next task writes its rows to (tasks are numbered in dump order)."""
        self._tasks += 1
        return str(self.parts_dir / f"part-{self._tasks - 1:06d}.arrow")

    def add(self, result: ChunkResult) -> None:
        if result.part is not None:
            self.parts.append(result.part)
            self.row_bytes.append(result.row_bytes)
            self.rows += result.part.rows
        if result.redirects:
            sources, targets = zip(*result.redirects)
            self.redirect_sources.append(pa.array(sources, pa.string()))
            self.redirect_targets.append(pa.array(targets, pa.string()))
            self.redirects += len(sources)
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


def plain_tasks(reader: DumpReader, collector: PagesCollector,
                context_of: Callable[[SiteInfo], ParseContext]) -> Iterator[tuple]:
    """(chunk of articles, context, part file) tasks from a streamed dump; redirects, malformed
    and other-namespace pages go to the collector. The context is made once the reader has met
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
            yield chunk, parse_ctx, collector.next_part()
            chunk, chars = [], 0
        if side.redirects or side.other_pages or side.malformed:
            collector.add(side)
            side = ChunkResult()
    collector.add(side)
    if chunk:
        yield chunk, parse_ctx, collector.next_part()


def run(ctx: StageContext) -> dict:
    """Build DIR/pages and DIR/redirects.tsv from every dump of the build, a part per dump
    (corpus/pages_parts.py); return the stage's manifest section, languages listed."""
    options = ctx.options
    entries = dump_languages(options.dumps, options.index, options.language)
    part_options = options.subset(tuple(o for o in stage("pages").options if o != "dumps"))
    parts = []
    for number, entry in enumerate(entries):
        part, section = built_part(ctx.lasting_dir, number, entry, part_options,
                                   lambda out: dump_pages(entry, ctx, out,
                                                          number * PAGE_ID_STRIDE))
        parts.append((entry, part, section))
    languages = join_parts(parts, ctx.out_dir)
    remove_parts(ctx.lasting_dir)
    truncations = [entry["truncation"] for entry in languages if entry.get("truncation")]
    return {"languages": languages, "counts": summed_counts(languages),
            "truncated": any(entry["truncated"] for entry in languages),
            "truncation": "; ".join(truncations),
            "skipped_pages": [page for entry in languages
                              for page in entry.pop("skipped_pages", [])][:MAX_SKIPPED_LISTED],
            "fingerprint": joined_fingerprint(languages), "workers": ctx.workers}


def dump_pages(entry: DumpLanguage, ctx: StageContext, out: Path, id_offset: int = 0) -> dict:
    """Read one dump into out/pages and out/redirects.tsv, its page ids plus `id_offset`;
    return its section."""
    options = ctx.options
    dump, index = entry.dump, entry.index
    started, cpu_started = time.perf_counter(), time.process_time()
    first_pass = out / FIRST_PASS_DIR
    first_pass.mkdir(parents=True, exist_ok=True)
    try:
        read = read_pages(dump, index, options, ctx.workers, first_pass, entry.language)
        _refuse_empty(read.collector, dump, read.truncation)
        section = finish_pages(read.collector, out, ctx.workers, id_offset)
    finally:
        shutil.rmtree(first_pass, ignore_errors=True)
    collector, site, dump_site = read.collector, read.parse_ctx.site, read.dump_site
    section["counts"]["xml_bytes"] = read.xml_bytes
    section.update(
        truncated=collector.truncated, truncation=read.truncation,
        siteinfo={"dbname": dump_site.dbname, "language": dump_site.language,
                  "case": dump_site.case, "from_dump": dump_site.from_dump,
                  "namespaces": dump_site.namespaces},
        language_rules={"language": site.language, "variant": read.parse_ctx.variant,
                        "link_trail": languages.link_trail_source(site.language),
                        "mediawiki": languages.mediawiki_version()},
        input=file_fingerprint(dump), index=str(index) if index else None,
        seconds=round(time.perf_counter() - started, 3),
        # Where the time went, robust to other load on the machine: CPU seconds of the parse
        # tasks (in the workers) and of this process (reading a plain dump, collecting,
        # resolving redirects, planning).
        cpu_seconds={"parse": round(collector.worker_cpu, 3),
                     "main": round(time.process_time() - cpu_started, 3)})
    return section


@dataclass
class DumpRead:
    """What reading one dump gives: the part files and counts, and how the dump was read."""
    collector: PagesCollector
    dump_site: SiteInfo
    parse_ctx: ParseContext
    xml_bytes: int
    truncation: str


def read_pages(dump: Path, index: Path | None, options, workers: int, parts_dir: Path,
               language: str) -> DumpRead:
    """First pass over one dump of `language`: its articles parsed by `workers` processes into
    Arrow files in `parts_dir` (link targets unresolved), its redirects and counts collected
    here."""
    collector = PagesCollector(parts_dir)
    if index:
        dump_site = read_header_site(dump)
        parse_ctx = parse_context(dump_site, options, language)
        xml_bytes, truncation = _read_multistream(dump, index, parse_ctx, workers, collector)
    else:
        print(f"luke-corpus: note: {SINGLE_READER_NOTE.format(dump=dump)}", file=sys.stderr)
        dump_site, parse_ctx, xml_bytes, truncation = _read_plain(dump, options, workers,
                                                                  collector, language)
    return DumpRead(collector, dump_site, parse_ctx, xml_bytes, truncation)


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
        f"{dump}: no article to keep: {collector.redirects} redirects, "
        f"{collector.counts['other_namespace_pages']} pages outside namespace 0, "
        f"{sum(collector.skip_reasons.values())} articles skipped by the parser "
        f"({dict(collector.skip_reasons) or 'none'}), {sum(collector.malformed.values())} "
        f"malformed pages" + (f"; {truncation}" if truncation else ""))


def _read_plain(dump: Path, options, workers: int, collector: PagesCollector, language: str):
    reader = DumpReader(dump)
    made: list[ParseContext] = []

    def context_of(site: SiteInfo) -> ParseContext:
        made.append(parse_context(site, options, language))
        return made[0]

    with byte_progress(reader.size, f"pages ({dump.name})") as bar:
        reader.on_progress = lambda done, xml: bar.update(done, reader.pages_read, xml)
        tasks = plain_tasks(reader, collector, context_of)
        for result in ordered_map(parse_and_write, tasks, workers, options.page_timeout,
                                  WORKER_PRELOAD):
            collector.add(result)
    collector.truncated |= reader.truncated
    if reader.truncated:
        log.warning(reader.truncation)
    site = reader.site or SiteInfo.default()
    return site, made[0] if made else context_of(site), reader.xml_bytes, reader.truncation


def stream_tasks(offsets: Iterable[int], size: int, workers: int = 1
                 ) -> Iterator[tuple[int, int]]:
    """Byte ranges of consecutive bz2 streams, about TASK_COMPRESSED_BYTES each, or smaller
    where that leaves fewer than TASKS_PER_WORKER per worker; made as the offsets come."""
    task_bytes = max(1, min(TASK_COMPRESSED_BYTES, size // (workers * TASKS_PER_WORKER)))
    start, end = None, None
    for first, stop in iter_stream_ranges(offsets, size):
        start = first if start is None else start
        end = stop
        if end - start >= task_bytes:
            yield start, end
            start = None
    if start is not None:
        yield start, end


def _read_multistream(dump: Path, index: Path, parse_ctx: ParseContext, workers: int,
                      collector: PagesCollector):
    size = dump.stat().st_size
    largest_offset = [-1]

    def offsets() -> Iterator[int]:
        # read as the workers go: the pool takes tasks a few at a time
        for offset in ordered_stream_offsets(index):
            largest_offset[0] = offset
            yield offset

    tasks = ((str(dump), start, end, parse_ctx, collector.next_part())
             for start, end in stream_tasks(offsets(), size, workers))
    xml_bytes = pages = 0
    truncation = ""
    with byte_progress(size, f"pages ({dump.name}, multistream)") as bar:
        for result in ordered_map(read_and_parse_stream, tasks, workers,
                                  parse_ctx.page_timeout, WORKER_PRELOAD):
            collector.add(result)
            xml_bytes += result.xml_bytes
            pages += (result.part.rows + len(result.skipped) + len(result.redirects)
                      + result.other_pages + len(result.malformed))
            bar.update(result.input_end, pages, xml_bytes)
            if result.truncated and not truncation:
                truncation = f"{dump}: input truncated: a bz2 stream before byte " \
                             f"{result.input_end} ends early; complete pages kept"
    if largest_offset[0] >= size:
        collector.truncated = True
        truncation = truncation or f"{dump}: input truncated: the index names streams at " \
                                   f"byte {largest_offset[0]}, past the file's end ({size})"
    if truncation:
        log.warning(truncation)
    return xml_bytes, truncation


def finish_pages(collector: PagesCollector, out: Path, workers: int, id_offset: int = 0
                 ) -> dict:
    """Second pass: resolve the redirects, write redirects.tsv, resolve every link target in
    `workers` processes into DIR/pages (page ids plus `id_offset`); the stage's section without
    what describes the input, its fingerprint that of the files written."""
    redirects = resolve_redirect_table(
        pa.chunked_array(collector.redirect_sources, pa.string()).combine_chunks(),
        pa.chunked_array(collector.redirect_targets, pa.string()).combine_chunks())
    write_redirects_tsv(redirects, out / REDIRECTS_FILE)
    link_counts, digests = resolve_all_links(collector.parts, np.concatenate(collector.row_bytes),
                                             redirects, out / PAGES_DIR, workers,
                                             collector.parts_dir, id_offset)
    counts = {"articles": collector.rows,
              "redirects": len(redirects.sources), "redirect_loops": redirects.loops,
              "redirects_in_loops": redirects.in_loops,
              "longest_redirect_chain": redirects.longest_chain,
              "skipped": sum(collector.skip_reasons.values()),
              **{f"skipped_{r}": collector.skip_reasons[r] for r in SKIP_REASONS},
              "malformed_pages": sum(collector.malformed.values()),
              **{f"malformed_{k}": collector.malformed[k] for k in MALFORMED_KINDS},
              **collector.counts, **link_counts}
    fingerprint = combined_digest([*digests, file_digest(out / REDIRECTS_FILE)])
    return {"fingerprint": fingerprint, "counts": counts,
            "skipped_pages": collector.skipped_pages}


def resolve_all_links(parts: list[PartFile], row_bytes: np.ndarray, redirects: RedirectTable,
                      pages_dir: Path, workers: int, scratch: Path, id_offset: int = 0
                      ) -> tuple[dict[str, int], list[str]]:
    """Write `pages_dir`, a saved dataset of the parts' rows with every link target resolved
    through `redirects` and `id_offset` added to every page id (in `workers` processes);
    (link counts, the files' digests)."""
    pages_dir.mkdir(parents=True, exist_ok=True)
    redirect_index = write_redirect_index(redirects, scratch / "redirects.index")
    titles = pa.concat_arrays([read_table(Path(p.path)).column("title").combine_chunks()
                               for p in parts]) if parts else pa.array([], pa.string())
    article_index = write_title_index(titles, scratch / "articles.index")
    schema = dataset_schema(PAGE_SCHEMA)
    jobs = plan_link_jobs(parts, row_bytes, pages_dir, redirect_index, article_index, schema,
                          id_offset)
    links = missing = 0
    missing_titles, digests = [], []
    with count_progress(int(len(row_bytes)), "pages (resolve links)") as bar:
        # Starting a pool costs more than resolving a small dump's links here.
        pool = workers if row_bytes.sum() > INLINE_LINK_RESOLUTION_BYTES else 1
        for result in process_map(resolve_links, jobs, pool):
            links += result.links
            missing += result.missing
            missing_titles.append(result.missing_titles)
            digests.append(result.digest)
            bar.update(result.rows)
    write_dataset_dir(pages_dir, [Path(job.out_file).name for job in jobs], schema,
                      combined_digest(digests))
    distinct_missing = len(pc.unique(pa.chunked_array(missing_titles, pa.string()))) \
        if missing_titles else 0
    return ({"links": links, "link_targets_missing": missing,
             "distinct_link_targets_missing": distinct_missing}, digests)
