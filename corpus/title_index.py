"""Exact lookup of titles in a large fixed set, shared by processes through one memory-mapped file.

The build looks millions of titles up in tables of millions (link targets among redirect
sources and among the dump's articles, mentions in the entity vocabulary). A Python dict per
process would cost ~100 bytes per title in every worker, and pyarrow's `index_in` rebuilds its
hash table at every call. Here the table is sorted once by a 64-bit hash of each title (xxh3),
written as an Arrow file, and memory-mapped by every process that reads it: the pages sit once
in the page cache, whatever the number of workers. A lookup hashes the queries, finds them with
numpy's binary search and then compares the titles themselves, so the answer is exact: two
titles with the same hash are told apart by that comparison (and by a scan of the few rows that
share a hash, should any).

Extra columns ride along in hash order (a redirect's final target, an entity's id), so a hit's
position reads its value with a `take`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.fast_order import integer_order, search_order

HASH, TITLE = "hash", "title"


def title_hashes(titles: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The xxh3-64 hash of each title's UTF-8 bytes (null titles hash as empty)."""
    from xxhash import xxh3_64_intdigest

    if isinstance(titles, pa.ChunkedArray):
        titles = titles.combine_chunks() if titles.num_chunks != 1 else titles.chunk(0)
    values = titles.cast(pa.large_binary()).fill_null(b"").to_pylist()
    return np.fromiter(map(xxh3_64_intdigest, values), dtype=np.uint64, count=len(values))


class TitleIndex:
    """A table of titles (and extra columns) sorted by title hash, with exact lookups."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.hashes = _array(table.column(HASH)).to_numpy(zero_copy_only=True)
        self.titles = _array(table.column(TITLE))
        # rows sharing a hash with the next one: lookups then compare more than one title
        self._shares_hashes = bool(len(table)) and bool((self.hashes[1:] == self.hashes[:-1]).any())

    @classmethod
    def build(cls, titles: pa.Array, **columns: pa.Array) -> "TitleIndex":
        """The index of `titles` (distinct: a duplicate would shadow its twin), with `columns`
        aligned to them."""
        hashes = title_hashes(titles)
        return cls.from_rows(titles, hashes, hash_order(hashes), **columns)

    @classmethod
    def from_rows(cls, titles: pa.Array, hashes: np.ndarray, rows: np.ndarray,
                  **columns: pa.Array) -> "TitleIndex":
        """The index of `titles[rows]`, `hashes` being the titles' hashes and `rows` row numbers
        in hash order (ties in row order), with `columns` aligned to `titles`: for callers that
        have hashed and sorted already."""
        take = pa.array(rows)
        table = pa.table({HASH: pa.array(hashes[rows]), TITLE: _array(titles).take(take),
                          **{name: _array(c).take(take) for name, c in columns.items()}})
        return cls(table.combine_chunks())

    def write(self, path: Path) -> Path:
        """Save the index as an Arrow IPC file that `open` memory-maps."""
        with pa.OSFile(str(path), "wb") as sink, \
                pa.ipc.new_file(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return path

    @classmethod
    def open(cls, path: Path) -> "TitleIndex":
        """The index written at `path`, memory-mapped (shared with every process mapping it)."""
        source = pa.memory_map(str(path))
        return cls(pa.ipc.open_file(source).read_all())

    def __len__(self) -> int:
        return len(self.table)

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def find(self, queries: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """For each query, the row of the index holding that very title, or -1."""
        queries = _array(queries)
        result = np.full(len(queries), -1, dtype=np.int64)
        if len(self) == 0 or len(queries) == 0:
            return result
        wanted = title_hashes(queries)
        rows = self._first_rows_at_or_above(wanted)
        same_hash = np.nonzero(self.hashes[rows] == wanted)[0]
        # only the queries whose hash is there compare titles: most misses cost no string work
        candidates = rows[same_hash]
        same_title = pc.equal(self.titles.take(pa.array(candidates)),
                              queries.take(pa.array(same_hash))).fill_null(False)
        found = same_title.to_numpy(zero_copy_only=False)
        result[same_hash[found]] = candidates[found]
        if self._shares_hashes:
            for query in same_hash[~found]:
                result[query] = self._scan(int(rows[query]), queries[query].as_py())
        return result

    def _first_rows_at_or_above(self, wanted: np.ndarray) -> np.ndarray:
        """For each hash, the first row whose hash is not below it (the last row if none).
        The queries are searched in hash order: each search then starts where the one before
        ended and the table is read front to back, instead of jumping across it per query (ten
        times faster for millions of queries, no slower for a few)."""
        order = search_order(wanted)
        rows = np.empty(len(wanted), dtype=np.int64)
        rows[order] = np.searchsorted(self.hashes, wanted[order])
        return np.minimum(rows, len(self) - 1)

    def _scan(self, row: int, title: str) -> int:
        """The row from `row` on, among those sharing its hash, whose title is `title`; -1."""
        wanted = self.hashes[row]
        while row < len(self) and self.hashes[row] == wanted:
            if self.titles[row].as_py() == title:
                return row
            row += 1
        return -1


def hash_order(hashes: np.ndarray) -> np.ndarray:
    """The row numbers sorted by hash, rows of equal hashes in row order."""
    return integer_order(hashes)


def distinct_rows(titles: pa.Array, hashes: np.ndarray, rows: np.ndarray, last: bool = False
                  ) -> np.ndarray:
    """Which of `rows` (row numbers of `titles` in hash order, ties in row order, as
    `hash_order` gives) to keep so that each title stays once: its first row, or its last one
    with `last`. A title's repeats share its hash, so they sit next to it in `rows`; only rows
    next to one of the same hash compare their titles."""
    keep = np.ones(len(rows), dtype=bool)
    sorted_hashes = hashes[rows]
    pairs = np.nonzero(sorted_hashes[1:] == sorted_hashes[:-1])[0]   # rows p and p + 1
    if not len(pairs):
        return keep
    same = pc.equal(titles.take(pa.array(rows[pairs])), titles.take(pa.array(rows[pairs + 1])))
    same = same.fill_null(False).to_numpy(zero_copy_only=False)
    keep[pairs[same] if last else pairs[same] + 1] = False
    # A hash shared by different titles (rare for a 64-bit hash): its run of rows may hold a
    # repeat that is not next to its twin, so the run is decided title by title.
    for run in {_run_start(sorted_hashes, int(p)) for p in pairs[~same]}:
        end = run
        while end < len(rows) and sorted_hashes[end] == sorted_hashes[run]:
            end += 1
        seen = set()
        for position in range(end - 1, run - 1, -1) if last else range(run, end):
            title = titles[int(rows[position])].as_py()
            keep[position] = title not in seen
            seen.add(title)
    return keep


def _run_start(sorted_hashes: np.ndarray, position: int) -> int:
    while position > 0 and sorted_hashes[position - 1] == sorted_hashes[position]:
        position -= 1
    return position


def _array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())
