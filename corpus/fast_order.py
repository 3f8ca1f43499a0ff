"""Sort orders of millions of values, the very orders numpy's and Arrow's stable sorts give, in a
fraction of their time: of 64-bit integers (title hashes), and of strings in code point order.

numpy sorts plain integers several times faster than it finds their order (`argsort`): so a
value's high bits and its row number are packed into one integer, sorted, and the rows read back
from the low bits; the few rows whose high bits tie are then put in order by their whole values.

UTF-8 keeps code point order in byte order, so strings sort as their bytes do. Arrow compares
whole strings at every step of its sort, each comparison reading two places far apart in memory.
Here each string's first bytes become a 64-bit integer that numpy sorts on its own; only the
strings that still tie (same first bytes, and longer) go on to their next bytes, in rounds, each
round sorting what is still tied within its group, so a round costs what is still tied.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 7            # bytes of a string per key; the key's eighth byte holds how many remain
# KEEP_TOP[n]: a mask of a 64-bit big-endian word's first n bytes
KEEP_TOP = np.array([((1 << 64) - 1) ^ ((1 << (64 - 8 * n)) - 1) for n in range(CHUNK + 1)],
                    dtype=np.uint64)


def code_point_order(strings: pa.Array) -> np.ndarray:
    """The row numbers of `strings` in code point order, equal strings in row order."""
    if len(strings) == 0:
        return np.zeros(0, dtype=np.int64)
    if strings.null_count:               # nulls go last in Arrow's order: leave them to Arrow
        return pc.sort_indices(strings).to_numpy()
    words, starts, lengths = _byte_words(strings)
    order = np.arange(len(strings), dtype=np.int64)
    tied = order.copy()                  # positions in `order` still tied with a neighbour
    group = np.zeros(len(order), dtype=np.int64)   # which run of equal prefixes each belongs to
    offset = 0
    while len(tied):
        rows = order[tied]
        keys = _keys(words, starts[rows] + offset, lengths[rows] - offset)
        within = np.lexsort((keys, group))         # stable: equal keys keep their order
        order[tied] = rows[within]
        keys, group = keys[within], group[within]
        # neighbours in one group with equal keys and more bytes to come still tie
        pairs = (group[1:] == group[:-1]) & (keys[1:] == keys[:-1]) & (keys[1:] & 0xFF > CHUNK)
        still, group = _tied_runs(pairs)
        tied = tied[still]
        offset += CHUNK
    return order


def integer_order(values: np.ndarray) -> np.ndarray:
    """The row numbers of `values` (unsigned 64-bit) in value order, equal values in row order:
    numpy's stable argsort."""
    order, high = _packed_order(values)
    ties, group = _tied_runs(high[1:] == high[:-1])
    if len(ties):                        # rows whose high bits tie: by value, then by row
        rows = order[ties]
        order[ties] = rows[np.lexsort((values[rows], group))]
    return order


def search_order(values: np.ndarray) -> np.ndarray:
    """The row numbers of `values` (unsigned 64-bit) in the order of their high bits: sorted
    enough for searching them one after the other, with no time spent on ties."""
    return _packed_order(values)[0]


def _packed_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the row numbers by the values' high bits, ties in row order; those high bits, sorted).
    The high bits are as many as 64 bits leave beside a row number: 40 for 10 M rows."""
    row_bits = max(1, (len(values) - 1).bit_length())
    packed = np.sort((values >> np.uint64(row_bits) << np.uint64(row_bits))
                     | np.arange(len(values), dtype=np.uint64))
    order = (packed & np.uint64((1 << row_bits) - 1)).astype(np.int64)
    return order, packed >> np.uint64(row_bits)


def _tied_runs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From `pairs` (pairs[p]: positions p and p + 1 tie), the positions in a run of ties, and
    for each of them its run's number (ascending with the position)."""
    still = np.zeros(len(pairs) + 1, dtype=bool)
    still[1:] |= pairs
    still[:-1] |= pairs
    run_starts = still & ~np.concatenate([[False], pairs])
    return np.nonzero(still)[0], np.cumsum(run_starts)[still]


def _byte_words(strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(for every byte position of the strings' data, the 8 bytes from there as a big-endian
    integer; each string's start in the data; its length in bytes)."""
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=offset_type)
    offsets = offsets[strings.offset:strings.offset + len(strings) + 1].astype(np.int64)
    data = np.zeros(int(offsets[-1]) + 8, dtype=np.uint8)   # 8 zero bytes so no word overruns
    if strings.buffers()[2] is not None:
        data[:offsets[-1]] = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[:offsets[-1]]
    words = np.ndarray(shape=(len(data) - 7,), dtype=">u8", buffer=data, strides=(1,))
    return words, offsets[:-1], np.diff(offsets)


def _keys(words: np.ndarray, starts: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """The sort key of each string from `starts` on: its next CHUNK bytes (zero past its end),
    then how many bytes remain, up to CHUNK + 1. A string that ends sorts before every longer
    one with the same bytes, as a prefix does; CHUNK + 1 marks one with more to compare."""
    taken = np.minimum(remaining, CHUNK)
    return (words[starts].astype(np.uint64) & KEEP_TOP[taken]) \
        | np.minimum(remaining, CHUNK + 1).astype(np.uint64)
