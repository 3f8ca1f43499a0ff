"""Resolve the link targets of parsed pages through the redirect table, in worker processes.

The parse workers write each article's links with the targets as the wikitext names them
(normalized); only once the whole dump has been read is every redirect known. This second pass
reads those Arrow files back (memory-mapped), replaces every target that is a redirect source by
its final target, counts the targets that are not articles of the dump, and writes the final
pages files. Each job makes one output file from a fixed range of rows, cut by the rows' sizes
(about TARGET_FILE_BYTES of text each) and written in batches of ROWS_PER_BATCH, so the files,
and the digests they return, depend on the pages alone: not on the number of workers nor on how
the first pass cut its tasks.

All of it runs on Arrow columns: a job dictionary-encodes its targets, looks each distinct one up
in two TitleIndex files (redirect sources with their final targets; the dump's article titles)
shared by every worker through the page cache, and takes the results back per link. Nothing
here is per link in Python.

`plan_link_jobs` and `resolve_links` take any list of unresolved files and any redirect table,
so a build of several dumps runs them once per dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.arrow_files import data_file_name, read_table, write_table
from corpus.redirects import RedirectTable
from corpus.title_index import TitleIndex, distinct_rows, hash_order, title_hashes

TARGET_FILE_BYTES = 64 << 20     # text per output file: a job's memory, and what a worker holds
ROWS_PER_BATCH = 1000
TARGET_COLUMN = "link_target"
ID_COLUMN = "id"
FINAL_TARGET = "final"           # the redirect index's column of final targets


@dataclass(frozen=True)
class PartFile:
    """An Arrow file of parsed pages with unresolved link targets, and its number of rows."""
    path: str
    rows: int


@dataclass(frozen=True)
class LinkJob:
    """Make one output file from rows [start, end) of the concatenated part files."""
    slices: tuple[tuple[str, int, int], ...]   # (part file, first row, end row) in order
    out_file: str
    redirects: str               # TitleIndex file: redirect sources, FINAL_TARGET column
    articles: str                # TitleIndex file: the dump's article titles
    schema: pa.Schema
    id_offset: int = 0           # added to every page id (a dump's place among several)


@dataclass
class LinkResult:
    rows: int
    links: int
    missing: int                 # links whose final target is not an article of the dump
    missing_titles: pa.Array     # those targets, each once (per job)
    digest: str                  # of the output file's bytes


def write_redirect_index(redirects: RedirectTable, path: Path) -> Path:
    """The lookup file of a redirect table (source -> final target) for `resolve_links`, in the
    hash order the resolution found."""
    return TitleIndex.from_rows(redirects.sources, redirects.source_hashes, redirects.hash_order,
                                **{FINAL_TARGET: redirects.targets}).write(path)


def write_title_index(titles: pa.Array, path: Path) -> Path:
    """The lookup file of a set of titles (the dump's articles) for `resolve_links`, each title
    once (at its first row, should it repeat)."""
    hashes = title_hashes(titles)
    by_hash = hash_order(hashes)
    distinct = by_hash[distinct_rows(titles, hashes, by_hash)]
    return TitleIndex.from_rows(titles, hashes, distinct).write(path)


def plan_link_jobs(parts: list[PartFile], row_bytes: np.ndarray, out_dir: Path,
                   redirects: Path, articles: Path, schema: pa.Schema, id_offset: int = 0
                   ) -> list[LinkJob]:
    """The jobs writing `out_dir`'s data files from the parts' rows: ranges of consecutive rows
    of about TARGET_FILE_BYTES each (`row_bytes` gives each row's size, in row order)."""
    total = int(sum(part.rows for part in parts))
    assert len(row_bytes) == total
    cuts = _cuts(row_bytes)
    part_starts = np.cumsum([0] + [part.rows for part in parts])
    jobs = []
    for number, (start, end) in enumerate(zip(cuts[:-1], cuts[1:])):
        slices = []
        for index, part in enumerate(parts):
            first, stop = max(start, part_starts[index]), min(end, part_starts[index + 1])
            if first < stop:
                slices.append((part.path, int(first - part_starts[index]),
                               int(stop - part_starts[index])))
        jobs.append(LinkJob(tuple(slices), str(out_dir / data_file_name(number, len(cuts) - 1)),
                            str(redirects), str(articles), schema, id_offset))
    return jobs


def _cuts(row_bytes: np.ndarray) -> list[int]:
    """Row numbers where output files start, and the end: a new file whenever the rows so far
    pass a multiple of TARGET_FILE_BYTES (at least one file, never an empty one)."""
    total = len(row_bytes)
    if total == 0:
        return [0, 0]
    ends = np.cumsum(row_bytes, dtype=np.int64)
    boundaries = np.searchsorted(ends, np.arange(1, ends[-1] // TARGET_FILE_BYTES + 1)
                                 * TARGET_FILE_BYTES, side="right")
    cuts = sorted({0, total, *(int(b) for b in boundaries if 0 < b < total)})
    return cuts


def resolve_links(job: LinkJob) -> LinkResult:
    """Worker task: the job's rows with every link target resolved (and their ids offset),
    written to its file."""
    table = pa.concat_tables(read_table(Path(path)).slice(first, end - first)
                             for path, first, end in job.slices)
    targets = table.column(TARGET_COLUMN).combine_chunks()
    resolved, missing, missing_titles = resolve_targets(
        targets.flatten(), TitleIndex.open(Path(job.redirects)),
        TitleIndex.open(Path(job.articles)))
    column = pa.ListArray.from_arrays(_zero_based(targets.offsets), resolved)
    table = table.set_column(table.schema.get_field_index(TARGET_COLUMN), TARGET_COLUMN, column)
    if job.id_offset:
        ids = pc.add(table.column(ID_COLUMN), pa.scalar(job.id_offset, pa.int64()))
        table = table.set_column(table.schema.get_field_index(ID_COLUMN), ID_COLUMN, ids)
    digest = write_table(Path(job.out_file), table, job.schema, ROWS_PER_BATCH)
    return LinkResult(table.num_rows, len(resolved), missing, missing_titles, digest)


def resolve_targets(targets: pa.Array, redirects: TitleIndex, articles: TitleIndex
                    ) -> tuple[pa.Array, int, pa.Array]:
    """(each target through the redirect table, how many of them are not articles, those
    missing titles once each). Each distinct target is looked up once."""
    if len(targets) == 0:
        return targets.cast(pa.string()), 0, pa.array([], pa.string())
    encoded = pc.dictionary_encode(targets)
    distinct = encoded.dictionary
    rows = redirects.find(distinct)
    finals = redirects.column(FINAL_TARGET).combine_chunks().cast(distinct.type)
    # each distinct target, or its final target where it is a redirect source
    pick = np.where(rows >= 0, len(distinct) + rows, np.arange(len(distinct)))
    through = pa.concat_arrays([distinct, finals]).take(pa.array(pick))
    is_article = articles.find(through) >= 0
    per_link = is_article[encoded.indices.to_numpy(zero_copy_only=False)]
    resolved = through.take(encoded.indices)
    missing_titles = pc.unique(through.filter(pa.array(~is_article)))
    return resolved, int((~per_link).sum()), missing_titles


def _zero_based(offsets: pa.Array) -> pa.Array:
    return pc.subtract(offsets, offsets[0])


def row_sizes(table: pa.Table) -> np.ndarray:
    """Each row's bytes of text and link targets: what `plan_link_jobs` cuts files by."""
    text = pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
    links = pc.list_value_length(table.column(TARGET_COLUMN)).to_numpy(zero_copy_only=False)
    return text.astype(np.int64) + 16 * links.astype(np.int64)
