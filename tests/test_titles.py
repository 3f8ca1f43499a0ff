"""Title normalization and namespaces as MediaWiki has them (corpus/titles.py).

The Bulgarian siteinfo comes from the real bgwiki sample, read with a few lines of XML here so
the test does not depend on the dump reader.
"""

from __future__ import annotations

import bz2
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from corpus.siteinfo import SiteInfo
from corpus.titles import (INTERWIKI, LANGUAGE_LINK, link_display_text, namespace_of,
                           normalize_title, resolve_link_target)

BG_DUMP = Path(__file__).parent / "data" / "bgwiki-sample-utf16.xml.bz2"
EN = SiteInfo.default()


def bulgarian_site() -> SiteInfo:
    """The SiteInfo of the Bulgarian sample's <siteinfo> block (also used by test_wikitext)."""
    xml = bz2.decompress(BG_DUMP.read_bytes()).decode("utf-16")
    head = xml[:xml.index("</siteinfo>") + len("</siteinfo>")] + "</mediawiki>"
    root = ET.fromstring(head)
    spaces = {int(n.get("key")): (n.text or "") for n in root.iter() if n.tag.endswith("namespace")}
    case = next(n.text for n in root.iter() if n.tag.endswith("case"))
    return SiteInfo(dbname="bgwiki", language="bg", case=case,
                    namespaces={k: v for k, v in spaces.items() if v}, from_dump=True)


@pytest.fixture(scope="module")
def bg() -> SiteInfo:
    return bulgarian_site()


@pytest.mark.parametrize("raw, expected", [
    ("los angeles", "Los angeles"),              # first letter only
    ("los_angeles", "Los angeles"),              # _ is a space
    ("  Los   Angeles \t", "Los Angeles"),       # trimmed and collapsed
    ("Los\u00a0Angeles", "Los Angeles"),         # no-break space is a title space
    ("AT&amp;T", "AT&T"),                        # entities decoded
    ("Caf&eacute;", "Café"),
    ("Los%20Angeles", "Los Angeles"),            # percent-encoding decoded
    ("C%2B%2B", "C++"),
    ("A+B", "A+B"),                              # '+' is not a space (rawurldecode)
    ("Los Angeles#History", "Los Angeles"),      # fragment dropped
    ("#History", ""),                            # only a fragment: "" (the current page)
    (":Los Angeles", "Los Angeles"),             # leading ':' dropped
    ("\u200eParis\u200f", "Paris"),              # direction marks removed
    ("ßeta", "ßeta"),                            # no one-letter-to-two upper-casing
    ("თბილისი", "თბილისი"),                      # Georgian stays as MediaWiki keeps it
    ("élan", "Élan"),
    ("Star Wars: Episode IV", "Star Wars: Episode IV"),   # a colon that is not a namespace
    ("category:history", "Category:History"),    # namespace canonicalized, rest first-letter
    ("image:X.jpg", "File:X.jpg"),               # alias -> canonical
    ("user_talk:x", "User talk:X"),
    ("FR:Paris", "fr:Paris"),                    # interwiki: prefix lower-cased
])
def test_normalize_title_english_rules(raw, expected):
    assert normalize_title(raw, EN) == expected


def test_case_sensitive_wiki_keeps_first_letter():
    site = SiteInfo(case="case-sensitive", namespaces={14: "Category"})
    assert normalize_title("iPhone_3G", site) == "iPhone 3G"
    assert normalize_title("category:foo", site) == "Category:foo"


def test_bulgarian_namespaces_come_from_siteinfo(bg):
    assert namespace_of("Категория:Календари", bg) == 14
    assert namespace_of("категория:календари", bg) == 14     # prefix case-insensitive
    assert namespace_of("Category:Календари", bg) == 14      # canonical names work everywhere
    assert namespace_of("Файл:X.jpg", bg) == 6
    assert namespace_of("Уикипедия:Правила", bg) == 4
    assert namespace_of("Григориански календар", bg) == 0
    # The local name is what the wiki stores.
    assert normalize_title("category:календари", bg) == "Категория:Календари"
    assert normalize_title("Image:X.jpg", bg) == "Файл:X.jpg"
    # English default names that are not Bulgarian namespaces stay article titles there.
    assert namespace_of("Категория:X", EN) == 0


def test_file_aliases_of_the_language_beside_siteinfo(bg):
    # <siteinfo> lists no aliases; bgwiki's old image prefix is one of its language's.
    assert namespace_of("Картинка:Usmivka.png", bg) == 6
    assert normalize_title("картинка:usmivka.png", bg) == "Файл:Usmivka.png"
    assert namespace_of("Картинка:Usmivka.png", EN) == 0     # not an alias in English


def test_leading_colon_is_a_link_to_the_page_not_a_tag(bg):
    # ':Category:X' is a visible link to the category page: still namespace 14, never 0.
    assert namespace_of(":Category:X", EN) == 14
    assert namespace_of(":Категория:X", bg) == 14
    assert normalize_title(":Категория:x", bg) == "Категория:X"


@pytest.mark.parametrize("raw, marker", [
    ("en:Paris", LANGUAGE_LINK), ("fr:Paris", LANGUAGE_LINK), ("simple:Paris", LANGUAGE_LINK),
    ("zh-min-nan:Paris", LANGUAGE_LINK), ("wikt:house", INTERWIKI), ("commons:Paris", INTERWIKI),
    (":fr:Paris", LANGUAGE_LINK),
])
def test_interwiki_prefixes_are_never_articles(raw, marker):
    assert namespace_of(raw, EN) == marker
    assert namespace_of(raw, EN) != 0


def test_resolve_link_target():
    assert resolve_link_target("#History", "Los Angeles", EN) == "Los Angeles"
    assert resolve_link_target(" #History", "los_angeles", EN) == "Los angeles"
    assert resolve_link_target("Paris#Sights", "Los Angeles", EN) == "Paris"
    assert resolve_link_target("", "Los Angeles", EN) is None
    assert resolve_link_target("a{{b}}", "Los Angeles", EN) is None   # template leftovers
    assert resolve_link_target("a|b", "Los Angeles", EN) is None
    assert resolve_link_target("x" * 300, "Los Angeles", EN) is None  # over 255 bytes


def test_link_display_text_is_the_target_as_written():
    assert link_display_text(" Los_Angeles#History ") == "Los_Angeles#History"
    assert link_display_text("AT&amp;T%20Inc") == "AT&T Inc"
