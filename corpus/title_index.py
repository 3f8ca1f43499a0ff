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
        order = np.argsort(hashes, kind="stable")
        table = pa.table({HASH: pa.array(hashes[order]), TITLE: _array(titles).take(order),
                          **{name: _array(c).take(order) for name, c in columns.items()}})
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
        if len(self) == 0 or len(queries) == 0:
            return np.full(len(queries), -1, dtype=np.int64)
        wanted = title_hashes(queries)
        rows = np.minimum(np.searchsorted(self.hashes, wanted), len(self) - 1)
        same_hash = self.hashes[rows] == wanted
        candidate = np.where(same_hash, rows, 0)
        same_title = pc.equal(self.titles.take(candidate), queries).fill_null(False)
        found = same_hash & same_title.to_numpy(zero_copy_only=False)
        result = np.where(found, rows, -1)
        if self._shares_hashes:
            for query in np.nonzero(same_hash & ~found)[0]:
                result[query] = self._scan(int(rows[query]), queries[query].as_py())
        return result

    def _scan(self, row: int, title: str) -> int:
        """The row from `row` on, among those sharing its hash, whose title is `title`; -1."""
        wanted = self.hashes[row]
        while row < len(self) and self.hashes[row] == wanted:
            if self.titles[row].as_py() == title:
                return row
            row += 1
        return -1


def _array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())
