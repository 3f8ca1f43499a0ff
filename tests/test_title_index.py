"""TitleIndex (corpus/title_index.py): exact lookups of titles through sorted 64-bit hashes, the
same from a file memory-mapped by another process, and exact even when titles share a hash."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from corpus import title_index
from corpus.title_index import TitleIndex

TITLES = ["Estonia", "Tallinn", "Lennart Meri", "東京", "Ελλάδα", "",
          "Tallinn (disambiguation)"]


def test_every_title_is_found_at_its_own_row_and_others_are_not(tmp_path):
    index = TitleIndex.build(pa.array(TITLES), code=pa.array(range(len(TITLES))))
    queries = pa.array(["Tallinn", "東京", "Nowhere", "", "estonia", "Lennart Meri"])
    rows = index.find(queries)
    codes = index.column("code").to_pylist()
    assert [codes[r] if r >= 0 else None for r in rows] == [1, 3, None, 5, None, 2]
    reopened = TitleIndex.open(index.write(tmp_path / "titles.index"))
    assert reopened.find(queries).tolist() == rows.tolist()
    assert len(TitleIndex.build(pa.array([], pa.string())).find(queries)) == len(queries)


def test_titles_sharing_a_hash_are_told_apart(monkeypatch):
    """With a hash that collides on purpose (the length), each title still finds its own row."""
    def by_length(titles):
        return np.array([len(t) for t in title_index._array(titles).to_pylist()], np.uint64)

    monkeypatch.setattr(title_index, "title_hashes", by_length)
    words = ["cat", "dog", "emu", "ox", "yak", "gnu", "lion"]
    index = TitleIndex.build(pa.array(words), word=pa.array(words))
    found = index.find(pa.array(words + ["cow", "elk"]))
    assert [index.column("word")[r].as_py() for r in found[:len(words)]] == words
    assert found[len(words):].tolist() == [-1, -1]


def test_many_queries_in_any_order_find_what_a_dict_finds():
    """Queries are searched in hash order and put back: repeats, misses and hits in any order
    get each its own answer."""
    rng = np.random.default_rng(0)
    titles = [f"Title {n}" for n in range(5000)] + TITLES
    index = TitleIndex.build(pa.array(titles))
    row_of = {title: row for row, title in enumerate(index.column("title").to_pylist())}
    for count in (1, 7, 20000):
        queries = [titles[i] if i < len(titles) else f"Missing {i}"
                   for i in rng.integers(0, 2 * len(titles), count)]
        assert index.find(pa.array(queries)).tolist() == [row_of.get(q, -1) for q in queries]


def test_an_index_from_rows_already_hashed_and_sorted_is_the_built_one():
    """from_rows, given the hashes and some rows in hash order, is build of those rows."""
    titles = pa.array(TITLES * 2)
    hashes = title_index.title_hashes(titles)
    by_hash = title_index.hash_order(hashes)
    some = by_hash[by_hash % 3 != 1]
    index = TitleIndex.from_rows(titles, hashes, some, code=pa.array(range(len(titles))))
    built = TitleIndex.build(titles.take(pa.array(np.sort(some))), code=pa.array(np.sort(some)))
    assert index.table.equals(built.table)


def test_distinct_rows_keep_the_first_or_last_of_each_title_even_among_shared_hashes():
    """Repeats are found through the hash order; where different titles share a hash (forced
    here), a repeat that is not next to its twin is still found."""
    titles = pa.array(["a", "b", "a", "c", "b", "a", "d", None, None, ""])
    hashes = np.array([1, 1, 1, 2, 1, 1, 3, 4, 4, 4], dtype=np.uint64)
    by_hash = title_index.hash_order(hashes)
    first = sorted(by_hash[title_index.distinct_rows(titles, hashes, by_hash)].tolist())
    last = sorted(by_hash[title_index.distinct_rows(titles, hashes, by_hash, last=True)].tolist())
    assert first == [0, 1, 3, 6, 7, 9]
    assert last == [3, 4, 5, 6, 8, 9]
    real = title_index.title_hashes(titles)               # the real hash: "" and None share
    order = title_index.hash_order(real)
    assert sorted(order[title_index.distinct_rows(titles, real, order)].tolist()) == first
