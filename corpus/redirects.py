"""Redirects: follow chains to their final target, cut loops, read and write redirects.tsv.

A redirect page says "source -> target", and the target may itself be a redirect. Links are
resolved to the end of the chain, so that every link to an article counts toward that article's
entity whatever name it used. A chain that comes back to a title it already passed (A -> B -> A,
or A -> A) has no end: every source on it, and every source leading into it, is dropped from
the table and counted, so links to them stay unresolved instead of landing on an arbitrary page.

English Wikipedia has about 10 M redirects, so the table is resolved on arrays, not title by
title: each target's position among the sources comes from a TitleIndex, and the chains are
followed by pointer jumping (every source's successor replaced by its successor's, log2 of
the longest chain rounds, each one numpy pass), which gives every figure as a property of the
redirect graph, whatever order the dump lists its pages in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.dump import DumpError
from corpus.fast_order import code_point_order
from corpus.title_index import TitleIndex, distinct_rows, hash_order, title_hashes


@dataclass(frozen=True)
class RedirectTable:
    """Every redirect whose chain ends, sorted by source (code point order)."""
    sources: pa.Array         # redirect titles
    targets: pa.Array         # the final target of each (not itself a redirect)
    loops: int                # distinct cycles found
    in_loops: int             # sources dropped because their chain never ends
    longest_chain: int        # the most redirects any chain that ends passes through
    # the sources' title hashes, and the rows in hash order (ties in row order), kept from the
    # resolution for the redirect lookup file (link_resolution.write_redirect_index)
    source_hashes: np.ndarray = field(repr=False, compare=False, default=None)
    hash_order: np.ndarray = field(repr=False, compare=False, default=None)


@dataclass(frozen=True)
class ResolvedRedirects:
    targets: dict[str, str]   # source -> final target (which is not itself a redirect)
    loops: int
    in_loops: int
    longest_chain: int


def resolve_redirect_table(sources: pa.Array, targets: pa.Array) -> RedirectTable:
    """The final target of every redirect source. A source listed twice keeps its last target
    (a later page of the same title replaces an earlier one)."""
    sources, targets = _string_array(sources), _string_array(targets)
    hashes = title_hashes(sources)
    sources, targets, hashes, by_hash = _last_of_each(sources, targets, hashes,
                                                      hash_order(hashes))
    rows = TitleIndex.from_rows(sources, hashes, by_hash).find(targets)
    successor = np.where(rows >= 0, by_hash[np.maximum(rows, 0)], -1)
    hops, last, loop_bound = _follow_chains(successor)
    ends = ~loop_bound
    kept = np.nonzero(ends)[0]
    by_title = kept[code_point_order(sources.take(pa.array(kept)))]   # the table's rows
    return RedirectTable(sources.take(pa.array(by_title)), targets.take(pa.array(last[by_title])),
                         loops=_count_cycles(successor, loop_bound),
                         in_loops=int(loop_bound.sum()),
                         longest_chain=int(hops[ends].max()) if ends.any() else 0,
                         **_table_hash_order(hashes, by_title, by_hash[ends[by_hash]]))


def resolve_redirects(raw: Mapping[str, str]) -> ResolvedRedirects:
    """resolve_redirect_table on a dict (source -> target), as a dict."""
    table = resolve_redirect_table(pa.array(list(raw), pa.string()),
                                   pa.array(list(raw.values()), pa.string()))
    return ResolvedRedirects(dict(zip(table.sources.to_pylist(), table.targets.to_pylist())),
                             table.loops, table.in_loops, table.longest_chain)


def _follow_chains(successor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each source: the sources its chain passes (itself included), the last of them, and
    whether the chain never ends. `successor[i]` is the source that i's target is, or -1.

    Pointer jumping: after round k every live source points 2^k sources ahead and has counted
    the sources in between; a chain that ends has at most as many sources as there are, so
    ceil(log2(n + 1)) rounds end every one of them, and what still points somewhere then is on
    a loop or leads into one."""
    count = len(successor)
    hops = np.ones(count, dtype=np.int64)
    last = np.arange(count, dtype=np.int64)
    jump = successor.astype(np.int64, copy=True)
    for _ in range(math.ceil(math.log2(count + 1)) + 1):
        live = np.nonzero(jump >= 0)[0]
        if not len(live):
            break
        ahead = jump[live]
        hops[live] += hops[ahead]     # each right-hand side is read before its array is written
        last[live] = last[ahead]
        jump[live] = jump[ahead]
    return hops, last, jump >= 0


def _count_cycles(successor: np.ndarray, loop_bound: np.ndarray) -> int:
    """How many distinct cycles the loop-bound sources end in: each cycle named by its
    smallest source, found by the same doubling (the minimum over 2^k steps ahead)."""
    bound = np.nonzero(loop_bound)[0]
    if not len(bound):
        return 0
    least = np.arange(len(successor), dtype=np.int64)
    jump = successor.astype(np.int64, copy=True)
    for _ in range(math.ceil(math.log2(len(successor) + 1)) + 1):
        ahead = jump[bound]            # a loop-bound source's successor is loop-bound too
        least[bound] = np.minimum(least[bound], least[ahead])
        jump[bound] = jump[ahead]
    # after n or more steps every loop-bound source stands on its cycle; the cycle's sources
    # share the least source of the cycle
    on_cycle = np.unique(jump[bound])
    return len(np.unique(least[on_cycle]))


def _last_of_each(sources: pa.Array, targets: pa.Array, hashes: np.ndarray, by_hash: np.ndarray
                  ) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    """The pairs whose source does not come again later, in their order, with their hashes and
    their rows in hash order (`by_hash`: all rows in hash order, ties in row order)."""
    keep = distinct_rows(sources, hashes, by_hash, last=True)
    if keep.all():
        return sources, targets, hashes, by_hash
    kept = np.zeros(len(sources), dtype=bool)
    kept[by_hash[keep]] = True
    rows = np.nonzero(kept)[0]
    new_row = np.cumsum(kept) - 1                  # each kept row's number among the kept
    take = pa.array(rows)
    return sources.take(take), targets.take(take), hashes[rows], new_row[by_hash[keep]]


def _table_hash_order(hashes: np.ndarray, by_title: np.ndarray, kept_by_hash: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """RedirectTable's `source_hashes` and `hash_order`, from the sources' `hashes`, the table's
    rows among the sources (`by_title`) and those rows in hash order (`kept_by_hash`): the
    resolution's hash order, renumbered, so the lookup file needs no sort of its own."""
    table_row = np.empty(len(hashes), dtype=np.int64)
    table_row[by_title] = np.arange(len(by_title))
    table_hashes, by_hash = hashes[by_title], table_row[kept_by_hash]
    sorted_hashes = table_hashes[by_hash]
    if (sorted_hashes[1:] == sorted_hashes[:-1]).any():
        by_hash = hash_order(table_hashes)  # titles sharing a hash: ties go in the table's order
    return {"source_hashes": table_hashes, "hash_order": by_hash}


def _string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values.cast(pa.string())


def write_redirects_tsv(table: RedirectTable, path: Path) -> None:
    """`source<TAB>final target` per line, sorted by source so the file is deterministic;
    written from the arrays' buffers (titles hold neither tabs nor newlines)."""
    def text(value):
        return pa.scalar(value, pa.large_string())

    lines = pc.binary_join_element_wise(
        pc.binary_join_element_wise(table.sources.cast(pa.large_string()),
                                    table.targets.cast(pa.large_string()), text("\t")),
        text(""), text("\n"))
    with open(path, "wb") as out:
        if len(lines):
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
            first, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
            out.write(memoryview(lines.buffers()[2])[first:end])


def read_redirects_tsv(path: Path) -> dict[str, str]:
    """The table written by write_redirects_tsv."""
    targets = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            source, sep, target = line.rstrip("\n").partition("\t")
            if not sep:
                raise DumpError(f"{path}: line {number} is not 'source<TAB>target'")
            targets[source] = target
    return targets
