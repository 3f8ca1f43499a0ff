"""Wikitext as each language's wiki renders it (corpus/languages.py, corpus/wikitext_variants.py):
link trails, namespace names and aliases, `-{...}-` variant markup. The cases are short
wikitext strings written here, with what MediaWiki shows for them on that language's wiki."""

from __future__ import annotations

import json
import re

import pytest

from corpus import languages
from corpus.siteinfo import SiteInfo
from corpus.titles import namespace_of
from corpus.wikitext import parse_page
from corpus.wikitext_variants import display


def site(language: str, namespaces: dict[int, str] | None = None) -> SiteInfo:
    """A wiki of `language`; with namespaces, as its dump's siteinfo lists them."""
    if namespaces is None:
        return SiteInfo(language=language, namespaces={}, from_dump=False)
    return SiteInfo(dbname=f"{language}wiki", language=language, namespaces=namespaces,
                    from_dump=True)


def shown(wikitext: str, wiki: SiteInfo, variant: str | None = None
          ) -> tuple[str, list[tuple[str, str]]]:
    """(clean text, [(anchor text, target)]) of a page; spans are checked against anchors."""
    page = parse_page(wikitext, "Cur", wiki, variant=variant)
    assert parse_page(wikitext, "Cur", wiki, variant=variant, prepass=False) == page
    return page.text, [(page.text[s:e], t) for s, e, t in page.links]


# --- link trails ------------------------------------------------------------------------------

@pytest.mark.parametrize("language, wikitext, text, links", [
    # English: a-z joins; an accented letter, a digit or an apostrophe does not
    ("en", "[[apple]]s and [[apple]]é, [[pear]]2 [[fig]]'s", "apples and appleé, pear2 fig's",
     [("apples", "Apple"), ("apple", "Apple"), ("pear", "Pear"), ("fig", "Fig")]),
    # German: äöüß join too, a hyphen does not
    ("de", "[[Haus]]es [[Mutter]]ländern [[Fuß]]ball-[[Tor]]ß", "Hauses Mutterländern "
     "Fußball-Torß", [("Hauses", "Haus"), ("Mutterländern", "Mutter"), ("Fußball", "Fuß"),
                      ("Torß", "Tor")]),
    # Bavarian has no trail of its own: German's, the first of its fallbacks that has one
    ("bar", "[[Haus]]äs", "Hausäs", [("Hausäs", "Haus")]),
    # Russian and Bulgarian: their Cyrillic alphabets (lower case) and a-z
    ("ru", "[[собака]]ми и [[кот]]Ы", "собаками и котЫ", [("собаками", "Собака"),
                                                        ("кот", "Кот")]),
    ("bg", "[[календар]]ите и [[Европа]]s", "календарите и Европаs",
     [("календарите", "Календар"), ("Европаs", "Европа")]),
    # Chinese: nothing ever joins, not even Latin letters
    ("zh", "[[東京]]都和[[apple]]s", "東京都和apples", [("東京", "東京"), ("apple", "Apple")]),
    ("zh-hant", "[[東京]]都", "東京都", [("東京", "東京")]),
    # Japanese defines no trail and inherits English's: kana and kanji never join
    ("ja", "[[東京]]都と[[日本]]の[[Tokyo]]s", "東京都と日本のTokyos",
     [("東京", "東京"), ("日本", "日本"), ("Tokyos", "Tokyo")]),
    # Arabic: its letters and combining marks (tanwin); Hebrew: its letters
    ("ar", "[[كتاب]]ين و[[كتاب]]ًا و[[كتاب]]1", "كتابين وكتابًا وكتاب1",
     [("كتابين", "كتاب"), ("كتابًا", "كتاب"), ("كتاب", "كتاب")]),
    ("he", "[[ספר]]ים ו[[ספר]]é", "ספרים וספרé", [("ספרים", "ספר"), ("ספר", "ספר")]),
    # Catalan's trail takes a single apostrophe, not two (bold/italic markup)
    ("ca", "[[Barcelona]]'s i [[Girona]]''x''", "Barcelona's i Gironax",
     [("Barcelona's", "Barcelona"), ("Girona", "Girona")]),
])
def test_link_trails_per_language(language, wikitext, text, links):
    assert shown(wikitext, site(language)) == (text, links)


def test_trail_table_comes_from_mediawiki_with_its_fallback_rule():
    assert languages.link_trail_source("en") == "/^([a-z]+)(.*)$/sD"
    assert languages.link_trail_source("zh") == "/^()(.*)$/sD"      # through zh-hans
    assert languages.link_trail("zh") is None and languages.link_trail("zh-tw") is None
    assert languages.fallback_chain("zh-tw") == ("zh-tw", "zh-hant", "zh-hk", "zh", "zh-hans",
                                                 "en")
    # an unknown language has English's rules, as on MediaWiki
    assert languages.link_trail("xx-unknown").pattern == "[a-z]+"
    assert not languages.is_known("xx-unknown") and languages.is_known("ZH_hans")
    table = json.loads(languages.TABLE_PATH.read_text(encoding="utf-8"))
    assert table["mediawiki_version"] == languages.mediawiki_version()
    assert "MediaWiki" in table["about"]["source"] and len(table["languages"]) > 300
    for row in table["languages"].values():
        if "link_trail" in row:
            re.compile(row["link_trail"])


# --- namespace names and aliases --------------------------------------------------------------

ZHWIKI = {-2: "Media", -1: "Special", 1: "Talk", 2: "User", 4: "Wikipedia", 6: "File",
          10: "Template", 14: "Category", 100: "Portal"}        # zhwiki's siteinfo: English
JAWIKI = {-2: "メディア", -1: "特別", 2: "利用者", 4: "Wikipedia", 6: "ファイル",
          10: "Template", 14: "Category"}


@pytest.mark.parametrize("prefix, ns", [
    ("分类", 14), ("分類", 14), ("Category", 14), ("category", 14), ("文件", 6), ("檔案", 6),
    ("图像", 6), ("圖像", 6), ("File", 6), ("Image", 6), ("模板", 10), ("Wikipedia", 4),
    ("维基百科", 0), ("東京", 0),
])
def test_chinese_namespace_aliases_beside_siteinfo(prefix, ns):
    assert namespace_of(f"{prefix}:X", site("zh", ZHWIKI)) == ns


@pytest.mark.parametrize("prefix, ns", [
    # jawiki's siteinfo says Category; Japanese's own name and its alias are read all the same
    ("カテゴリ", 14), ("Category", 14), ("ファイル", 6), ("画像", 6), ("File", 6), ("Image", 6),
    ("利用者", 2), ("User", 2), ("東京", 0),
])
def test_japanese_namespace_names_and_aliases(prefix, ns):
    assert namespace_of(f"{prefix}:X", site("ja", JAWIKI)) == ns
    assert namespace_of(f"{prefix}:X", site("ja")) == ns      # no siteinfo: the language's


def test_german_gender_aliases_and_english_names_stay_english():
    assert namespace_of("Benutzerin:X", site("de", {2: "Benutzer"})) == 2
    assert namespace_of("Bild:X.jpg", site("de", {6: "Datei"})) == 6
    assert namespace_of("Bild:X.jpg", site("en", {6: "File"})) == 0
    assert namespace_of("分类:X", site("en", {14: "Category"})) == 0


@pytest.mark.parametrize("language, names, wikitext", [
    ("zh", ZHWIKI, "[[分类:日本]][[分類:東京|とうきょう]][[Category:首都|排序]]"
                   "[[文件:X.jpg|缩略图|说明[[东京]]]][[图像:Y.png|thumb|圖說]][[Image:Z.png]]"),
    ("ja", JAWIKI, "[[カテゴリ:日本|にほん]][[Category:首都]][[画像:X.jpg|サムネイル|説明"
                   "[[東京]]]][[ファイル:Y.png|thumb|説明]][[File:Z.png]]"),
])
def test_files_and_categories_under_every_name_show_nothing(language, names, wikitext):
    text, links = shown(f"前{wikitext}後", site(language, names))
    assert (text, links) == ("前後", [])


# --- -{...}- variant markup -------------------------------------------------------------------

ZH = site("zh", ZHWIKI)


@pytest.mark.parametrize("wikitext, variant, text", [
    ("甲-{X}-乙", None, "甲X乙"),                                    # shown unconverted
    ("-{zh-hans:计算机;zh-hant:電腦;}-", None, "计算机"),              # zh: zh-hans first
    ("-{zh-hans:计算机;zh-hant:電腦;}-", "zh-hant", "電腦"),
    ("-{zh-hans:计算机;zh-hant:電腦;}-", "zh-tw", "電腦"),            # zh-tw falls back to zh-hant
    ("-{zh-hans:计算机;zh-hant:電腦;}-", "zh-sg", "计算机"),
    ("-{zh-cn:域;zh-tw:體}-", None, "域"),                            # zh -> zh-hans -> zh-cn
    ("-{zh-cn:域;zh-tw:體}-", "zh-hk", "體"),                          # zh-hk -> zh-hant -> zh-tw
    ("-{zh-Hans:甲;zh-Hant:乙}-", "zh-hant", "乙"),                   # BCP 47 spellings
    ("-{zh-hans:a;b;zh-hant:c}-", None, "a;b"),                       # ';' inside a choice
    ("前-{H|zh-hans:计算机;zh-hant:電腦;}-後", None, "前後"),          # declares, shows nothing
    ("前-{-|zh-hans:计算机}-後", None, "前後"),
    ("前-{T|zh-hans:标题;zh-hant:標題}-後", None, "前後"),              # the title, not text
    ("-{A|zh-hans:计算机;zh-hant:電腦;}-", "zh-tw", "電腦"),           # declares and shows
    ("-{R|zh-hans:计算机}-", None, "zh-hans:计算机"),                  # raw
    ("-{zh-hans;zh-hant|文字}-", None, "文字"),
    ("-{N|zh-tw}-", None, "臺灣"),
    ("-{D|zh-hans:计算机;zh-hant:電腦;}-", None, "简体：计算机；繁體：電腦；"),
    ("-{注意: 文字}-", None, "注意: 文字"),                            # no variant: as written
    ("-{A=>zh-tw:B}-", "zh-tw", "B"),
    ("外-{内-{zh-hans:甲;zh-hant:乙}-}-外", "zh-hant", "外内乙外"),    # nested, inner first
    ("未闭合 -{X", None, "未闭合 -{X"),
    ("<nowiki>-{X}-</nowiki>", None, "-{X}-"),
])
def test_variant_markup_in_text(wikitext, variant, text):
    assert shown(wikitext, ZH, variant) == (text, [])


@pytest.mark.parametrize("wikitext, variant, text, links", [
    ("[[电脑|-{zh-hans:计算机;zh-hant:電腦}-]]", None, "计算机", [("计算机", "电脑")]),
    ("[[电脑|-{zh-hans:计算机;zh-hant:電腦}-]]", "zh-tw", "電腦", [("電腦", "电脑")]),
    ("看-{[[东京|東京]]}-吧", None, "看東京吧", [("東京", "东京")]),
    ("-{zh-hans:[[计算机]];zh-hant:[[電腦]]}-", "zh-hant", "電腦", [("電腦", "電腦")]),
    ("[[电脑|前-{H|zh-hans:甲}-後]]", None, "前後", [("前後", "电脑")]),
    # braces are not allowed in titles: MediaWiki makes no link, and its brackets are text
    ("见[[-{东京}-]]。", None, "见东京。", []),
])
def test_variant_markup_in_link_anchors_keeps_spans_on_the_anchor(wikitext, variant, text,
                                                                   links):
    assert shown(wikitext, ZH, variant) == (text, links)


def test_variant_markup_right_after_a_link_is_no_trail():
    serbian = site("sr")       # a trail of Latin and Cyrillic letters, and variants
    assert shown("[[Београд]]ом", serbian) == ("Београдом", [("Београдом", "Београд")])
    assert shown("[[Београд]]-{ом}-", serbian) == ("Београдом", [("Београд", "Београд")])


def test_variant_markup_is_text_on_a_wiki_without_variants():
    assert shown("a -{X}- b", site("en"))[0] == "a -{X}- b"
    assert shown("[[日本|-{X}-]]", site("ja"))[1] == [("-{X}-", "日本")]


def test_unknown_variants_are_refused_with_the_choices():
    assert languages.check_variant("zh", None) == "zh"
    assert languages.check_variant("zh", "zh-Hant") == "zh-hant"
    assert languages.check_variant("en", None) is None
    with pytest.raises(ValueError, match="not a variant of 'zh' .variants: zh, zh-hans"):
        languages.check_variant("zh", "zh-xx")
    with pytest.raises(ValueError, match="has no variants"):
        languages.check_variant("en", "zh-hans")


def test_rule_display_follows_converter_rule_flags():
    zh = languages.variant_rules("zh")
    assert display("zh-hans:甲;zh-hant:乙", zh, "zh-mo") == "乙"      # mo -> hk -> hant
    assert display("H|zh-hans:甲", zh, "zh") == ""
    assert display("zh-hant:乙", zh, "zh-hans") == ""    # unidirectional level: no choice
    assert display("zh-hant:乙", zh, "zh") == "乙"       # zh's level is 'disable': the first
