"""Redirects (corpus/redirects.py and the pages stage): chains followed to the end, loops cut
and counted, redirect targets normalized, and links resolved through them, on tiny dumps
written by the test."""

from __future__ import annotations

import json

import datasets

from corpus.build import build
from corpus.options import BuildOptions
from corpus.redirects import read_redirects_tsv, resolve_redirects
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
