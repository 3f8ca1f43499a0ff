"""Rows picked from the memory-mapped datasets the stages read: `take_rows` gives what
pyarrow's `take` gives, from slices."""

from __future__ import annotations

import pyarrow as pa
import pytest

from corpus.arrow_files import take_rows


def pages_in_three_chunks() -> pa.Table:
    chunks = [pa.table({"id": list(range(start, start + 4)),
                        "text": [f"page {n}" for n in range(start, start + 4)],
                        "link_target": [[f"t{n}"] * (n % 3) for n in range(start, start + 4)]})
              for start in (0, 4, 8)]
    return pa.concat_tables(chunks)


@pytest.mark.parametrize("rows", [
    [2, 3, 4, 5, 6],            # a run across a chunk boundary
    [0, 1, 2, 5, 9, 10, 11],    # runs with gaps (training rows less held-out ones)
    [11, 0, 7, 6, 3],           # any order, single rows (held-out rows drawn at random)
    [1, 1, 2, 2],               # repeats
    [5],
    [],
])
def test_rows_taken_by_slices_equal_pyarrows_take(rows):
    table = pages_in_three_chunks()
    assert table.column("text").num_chunks == 3
    picked = take_rows(table, rows)
    assert picked.equals(table.take(pa.array(rows, pa.int64())))
    assert all(column.num_chunks <= 1 for column in picked.columns)
    text = take_rows(table.column("text"), rows)
    assert text.to_pylist() == [f"page {n}" for n in rows]
