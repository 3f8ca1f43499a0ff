"""Fast sort orders (corpus/fast_order.py): exactly numpy's stable argsort of 64-bit integers and
Arrow's sort_indices of strings (code point order), on values made to tie."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.fast_order import code_point_order, integer_order, search_order


def test_integer_order_is_numpys_stable_argsort():
    rng = np.random.default_rng(0)
    spread = rng.integers(0, 2 ** 64, 50000, dtype=np.uint64)
    # repeats, values that differ only in their low bits, the extremes, and nothing at all
    values = np.concatenate([spread, spread[:5000], spread[:3000] ^ np.uint64(1),
                             np.array([0, 2 ** 64 - 1, 0, 2 ** 64 - 1], dtype=np.uint64)])
    rng.shuffle(values)
    for case in (values, values[:1], values[:0], np.full(1000, 7, dtype=np.uint64)):
        assert np.array_equal(integer_order(case), np.argsort(case, kind="stable"))
    searched = values[search_order(values)]
    assert np.array_equal(np.sort(values), np.sort(searched))       # a permutation
    assert (np.diff((searched >> np.uint64(20)).astype(np.float64)) >= 0).all()   # high bits


TRICKY = ["", "a", "a\x00", "a\x00b", "ab", "abcdefg", "abcdefgh", "abcdefghi", "abcdefg\x00",
          "abcdefgabcdefgabcdefg", "abcdefgabcdefgabcdefgz", "abcdefgabcdefg", "List of people",
          "List of people from Tallinn", "List of people (A)", "Été", "Etat", "東京", "東京都",
          "Ωmega", "z", "\x7f", "\u0080", "\U0001F600", "\uffff", "Zed"]


def test_code_point_order_is_arrows_sort_indices_on_tricky_strings():
    """Strings sharing 7- and 14-byte prefixes, shorter than a key, empty, prefixes of one
    another, with NUL bytes, non-ASCII of every UTF-8 length, and repeats (kept in row order)."""
    rng = np.random.default_rng(1)
    strings = TRICKY * 3 + ["".join(rng.choice(list("ab\x00é東"), rng.integers(0, 30)))
                            for _ in range(3000)]
    rng.shuffle(strings)
    for array in (pa.array(strings), pa.array(strings, pa.large_string()),
                  pa.array(strings).slice(5, 1000), pa.array([], pa.string()),
                  pa.array(["same"] * 10), pa.array(["b", None, "a"])):
        assert code_point_order(array).tolist() == pc.sort_indices(array).to_pylist()
    assert [strings[i] for i in code_point_order(pa.array(strings))] == sorted(strings)
