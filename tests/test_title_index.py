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
