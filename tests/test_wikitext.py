"""Wikitext -> clean text and link spans (corpus/wikitext.py), on hand-made cases and on the
real English sample pages (read with a few lines of bz2 + XML here, independent of the dump
reader)."""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import mwparserfromhell
import pytest

from corpus.siteinfo import SiteInfo
from corpus.wikitext import ParsedPage, parse_page

EN_DUMP = Path(__file__).parent / "data" / "enwiki-sample-5-articles.xml.bz2"
EN = SiteInfo.default()
BG = SiteInfo(language="bg", namespaces={6: "Файл", 14: "Категория", 4: "Уикипедия"},
              from_dump=True)


def read_sample_pages(path: Path) -> list[tuple[str, str]]:
    """(title, wikitext) of every page of a small dump file."""
    pages = []
    for _, element in ET.iterparse(bz2.open(path)):
        if element.tag.endswith("}page"):
            pages.append((element.findtext("{*}title"), element.findtext("{*}revision/{*}text")))
            element.clear()
    return pages


@pytest.fixture(scope="module")
def en_pages() -> list[tuple[str, str]]:
    return read_sample_pages(EN_DUMP)


@pytest.fixture(scope="module")
def en_parsed(en_pages) -> list[tuple[str, str, ParsedPage]]:
    return [(title, wikitext, parse_page(wikitext, title, EN)) for title, wikitext in en_pages]


def anchors(page: ParsedPage) -> list[tuple[str, str]]:
    return [(page.text[s:e], target) for s, e, target in page.links]


def test_link_forms():
    page = parse_page("The [[los_angeles|City of Angels]] and [[Paris]]ian [[Rome#History]] "
                      "and [[#Early life|earlier]].", "Some Title", EN)
    assert page.text == "The City of Angels and Parisian Rome#History and earlier."
    assert anchors(page) == [("City of Angels", "Los angeles"), ("Parisian", "Paris"),
                             ("Rome#History", "Rome"), ("earlier", "Some Title")]


def test_markup_is_removed_and_anchor_markup_stripped():
    page = parse_page("'''Bold''' and ''[[Der Spiegel|''Der'' Spiegel]]''&nbsp;is "
                      "<small>small</small> a&amp;b.<ref>{{cite|x}}</ref>", "T", EN)
    assert page.text == "Bold and Der Spiegel is small a&b."
    assert anchors(page) == [("Der Spiegel", "Der Spiegel")]


def test_invisible_and_non_article_links():
    wikitext = ("[[File:X.jpg|thumb|A [[caption link]]]]Text [[Category:Things]] with "
                "[[:Category:Things|the category]] and [[wikt:word|word]] and "
                "[[Wikipedia:Rules|rules]] and [[Real]].\n[[fr:Paris]]")
    page = parse_page(wikitext, "T", EN)
    assert page.text == "Text with the category and word and rules and Real."
    assert anchors(page) == [("Real", "Real")]


def test_bulgarian_category_and_file_from_siteinfo():
    page = parse_page("[[Файл:X.jpg|мини|[[Папа]]]]Текст [[календар]]и.\n"
                      "[[Категория:Календари]]", "Календар", BG)
    assert page.text == "Текст календари."
    assert anchors(page) == [("календари", "Календар")]


def test_paragraphs_and_headings():
    wikitext = ("First line\nsame paragraph.\n\n== Heading ==\nSecond {{tpl|\n\n}} one.\n"
                "* item [[One]]\n* item two\n{|\n| cell [[Gone]]\n|}\n\nLast.")
    page = parse_page(wikitext, "T", EN)
    assert page.text.split("\n") == ["First line same paragraph.", "Second one.", "item One",
                                     "item two", "Last."]
    assert anchors(page) == [("One", "One")]


def test_real_pages_spans_are_anchor_texts(en_parsed):
    """Every span's text is the anchor (or target) written in some link to that target."""
    for title, wikitext, page in en_parsed:
        written = set()
        for link in mwparserfromhell.parse(wikitext).ifilter_wikilinks():
            target = parse_page(f"[[{link.title}]]", title, EN).links
            shown = link.text if link.text is not None else link.title
            label = parse_page(str(shown), title, EN).text
            if target:
                written.add((label, target[0][2]))
        for start, end, target in page.links:
            anchor = page.text[start:end]
            assert anchor == anchor.strip() and anchor
            assert any(anchor == label or (anchor.startswith(label) and anchor[len(label):].isalpha())
                       for label, t in written if t == target), (title, anchor, target)
        assert len(page.links) >= 9, title


MARKUP = ("{{", "}}", "[[", "]]", "<ref", "'''", "''", "|}", "{|", "<!--", "&nbsp;", "&amp;",
          "</", "__TOC__")


def test_real_pages_have_no_markup_left(en_parsed):
    for title, _, page in en_parsed:
        for mark in MARKUP:
            assert mark not in page.text, (title, mark)
        paragraphs = page.text.split("\n")
        assert all(p and p == p.strip() and "  " not in p for p in paragraphs), title
