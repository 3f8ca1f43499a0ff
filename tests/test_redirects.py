"""Redirects (corpus/redirects.py and the pages stage): chains followed to the end, loops cut
and counted, redirect targets normalized, and links resolved through them, on tiny dumps
written by the test."""

from __future__ import annotations

import json
import random

import datasets
import pyarrow as pa

from corpus.build import build
from corpus.link_resolution import FINAL_TARGET, write_redirect_index, write_title_index
from corpus.options import BuildOptions
from corpus.redirects import (read_redirects_tsv, resolve_redirect_table, resolve_redirects,
                              write_redirects_tsv)
from corpus.title_index import TitleIndex
from test_dump import write_dump


def test_chains_are_followed_to_the_end():
    resolved = resolve_redirects({"A": "B", "B": "C", "C": "D", "X": "D"})
    assert resolved.targets == {"A": "D", "B": "D", "C": "D", "X": "D"}
    assert resolved.loops == 0 and resolved.longest_chain == 3


def test_loops_are_cut_and_counted():
    resolved = resolve_redirects({"A": "B", "B": "A", "S": "S", "In": "A", "Ok": "Fine"})
    assert resolved.targets == {"Ok": "Fine"}     # nothing that never ends is kept
    assert resolved.loops == 2                    # A <-> B, and S -> S
    assert resolved.in_loops == 4                 # A, B, S, and In which leads into A <-> B


def test_resolution_does_not_depend_on_order():
    pairs = [("A", "B"), ("B", "C"), ("D", "A"), ("E", "E"), ("F", "D")]
    forward = resolve_redirects(dict(pairs))
    backward = resolve_redirects(dict(reversed(pairs)))
    assert forward.targets == backward.targets == {"A": "C", "B": "C", "D": "C", "F": "C"}
    assert (forward.loops, forward.in_loops) == (backward.loops, backward.in_loops) == (1, 1)


def test_pages_stage_resolves_links_through_redirect_chains(tmp_path):
    text = ("[[Big Apple]] is a name of [[NYC]]. [[Loop one]] goes round; "
            "[[united_States#History|the country]] too.")
    dump = write_dump(tmp_path / "d.xml.bz2", [
        dict(title="Essay", text=text, page_id=1),
        dict(title="New York City", text="A city in the [[United States]].", page_id=2),
        dict(title="Big Apple", text="#REDIRECT [[NYC]]", page_id=3, redirect="NYC"),
        dict(title="NYC", text="#REDIRECT [[New_York_City#Name]]", page_id=4,
             redirect="New_York_City#Name"),
        dict(title="Loop one", text="#REDIRECT [[Loop two]]", page_id=5, redirect="Loop two"),
        dict(title="Loop two", text="#REDIRECT [[Loop one]]", page_id=6, redirect="Loop one"),
        dict(title="United States", text="A country.", page_id=7),
        dict(title="Category:Cities", text="[[New York City]]", page_id=8, ns=14),
    ])
    out = tmp_path / "out"
    manifest = build(BuildOptions(dumps=(dump,), out=out), until="pages")
    assert read_redirects_tsv(out / "redirects.tsv") == {
        "Big Apple": "New York City", "NYC": "New York City"}    # normalized, #Name dropped
    pages = datasets.load_from_disk(str(out / "pages"))
    assert pages["title"] == ["Essay", "New York City", "United States"]
    essay = pages[0]
    spans = [(essay["text"][s:e], t) for s, e, t in
             zip(essay["link_start"], essay["link_end"], essay["link_target"])]
    assert spans == [("Big Apple", "New York City"), ("NYC", "New York City"),
                     ("Loop one", "Loop one"), ("the country", "United States")]
    counts = manifest["stages"]["pages"]["counts"]
    assert counts["redirects"] == 2 and counts["redirect_loops"] == 1
    assert counts["redirects_in_loops"] == 2 and counts["longest_redirect_chain"] == 2
    assert counts["articles"] == 3 and counts["other_namespace_pages"] == 1
    assert counts["links"] == 5 and counts["link_targets_missing"] == 1   # the loop
    assert json.loads((out / "manifest.json").read_text())["stages"]["pages"]["counts"] == counts


def test_the_longest_chain_is_the_graphs_whatever_the_order():
    """A -> B -> C is a chain of two redirects, also when B's end was found before A's."""
    assert resolve_redirects({"B": "C", "A": "B"}).longest_chain == 2
    assert resolve_redirects({"A": "B", "B": "C"}).longest_chain == 2


def naive_resolution(raw: dict[str, str]) -> tuple[dict[str, str], int, int]:
    """Each chain walked on its own: final targets, longest chain that ends, sources dropped."""
    finals, longest = {}, 0
    for source in raw:
        chain, title = [], source
        while title in raw and title not in chain:
            chain.append(title)
            title = raw[title]
        if title not in chain:
            finals[source] = title
            longest = max(longest, len(chain))
    return finals, longest, len(raw) - len(finals)


def test_resolution_on_arrays_is_each_chain_walked_on_its_own():
    rng = random.Random(0)
    for _ in range(300):
        raw = {f"T{rng.randrange(30)}": f"T{rng.randrange(40)}" for _ in range(rng.randrange(25))}
        resolved = resolve_redirects(raw)
        finals, longest, dropped = naive_resolution(raw)
        assert resolved.targets == finals
        assert (resolved.longest_chain, resolved.in_loops) == (longest, dropped)


def test_a_source_listed_twice_keeps_its_last_target_and_the_table_round_trips(tmp_path):
    table = resolve_redirect_table(pa.array(["Zed", "Alpha", "Zed", "Été"]),
                                   pa.array(["One", "Two", "Three", "Four"]))
    assert table.sources.to_pylist() == ["Alpha", "Zed", "Été"]       # code point order
    assert table.targets.to_pylist() == ["Two", "Three", "Four"]
    write_redirects_tsv(table, tmp_path / "r.tsv")
    assert (tmp_path / "r.tsv").read_text(encoding="utf-8") == \
        "Alpha\tTwo\nZed\tThree\nÉté\tFour\n"
    assert read_redirects_tsv(tmp_path / "r.tsv") == {"Alpha": "Two", "Zed": "Three",
                                                      "Été": "Four"}


def test_lookup_files_are_the_indexes_built_from_the_tables_themselves(tmp_path):
    """The redirect lookup file reuses the resolution's hash order, and the article one dedupes
    through its own: both hold what building an index of the final table (of the distinct
    titles, in their first order) holds."""
    rng = random.Random(1)
    for _ in range(30):
        pairs = [(f"T{rng.randrange(60)}", f"T{rng.randrange(80)}") for _ in range(50)]
        table = resolve_redirect_table(pa.array([s for s, _ in pairs]),
                                       pa.array([t for _, t in pairs]))
        made = TitleIndex.open(write_redirect_index(table, tmp_path / "r.index"))
        assert made.table.equals(TitleIndex.build(table.sources,
                                                  **{FINAL_TARGET: table.targets}).table)
        titles = [f"A{rng.randrange(40)}" for _ in range(60)]
        made = TitleIndex.open(write_title_index(pa.array(titles), tmp_path / "a.index"))
        assert made.table.equals(TitleIndex.build(pa.array(list(dict.fromkeys(titles)))).table)
