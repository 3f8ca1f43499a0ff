"""Wikitext -> clean text and link spans (corpus/wikitext*.py): hand-made cases of every rule,
the pre-pass against a full mwparserfromhell parse, and the real English and Bulgarian sample
pages (read here with a few lines of bz2 + XML, independent of the dump reader)."""

from __future__ import annotations

import bz2
import html
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from corpus.languages import link_trail
from corpus.siteinfo import SiteInfo
from corpus.titles import namespace_of, resolve_link_target
from corpus.wikitext import ParsedPage, parse_page
from corpus import wikitext_layout as layout
from corpus.wikitext_layout import finish_layout
from corpus.wikitext_links import LinkRules, stash_simple_links
from corpus.wikitext_lists import mark_list_items
from corpus.wikitext_prepass import strip_dropped
from test_titles import bulgarian_site

DATA = Path(__file__).parent / "data"
EN = SiteInfo.default()


def read_sample_pages(path: Path) -> list[tuple[str, str]]:
    """(title, wikitext) of every namespace-0 page of a small dump file."""
    pages = []
    for _, element in ET.iterparse(bz2.open(path)):
        if element.tag.endswith("}page"):
            if element.findtext("{*}ns") == "0":
                pages.append((element.findtext("{*}title"),
                              element.findtext("{*}revision/{*}text")))
            element.clear()
    return pages


@pytest.fixture(scope="module")
def en_pages() -> list[tuple[str, str, ParsedPage]]:
    pages = read_sample_pages(DATA / "enwiki-sample-5-articles.xml.bz2")
    return [(title, wikitext, parse_page(wikitext, title, EN)) for title, wikitext in pages]


@pytest.fixture(scope="module")
def bg_pages() -> tuple[SiteInfo, list[tuple[str, str, ParsedPage]]]:
    site = bulgarian_site()
    pages = read_sample_pages(DATA / "bgwiki-sample-utf16.xml.bz2")
    return site, [(title, wikitext, parse_page(wikitext, title, site)) for title, wikitext in pages]


def anchors(page: ParsedPage) -> list[tuple[str, str]]:
    return [(page.text[s:e], target) for s, e, target in page.links]


# (wikitext, clean text, [(anchor, target)]) on the English defaults, current page "Cur".
CASES = [
    # link forms: label, blend (letters after ]] join the mention: English's trail is a-z, so
    # "ä" does not), fragment, self link
    ("The [[los_angeles|City of Angels]] and [[Paris]]ian [[Rome#History]] and [[#Early|it]].",
     "The City of Angels and Parisian Rome#History and it.",
     [("City of Angels", "Los angeles"), ("Parisian", "Paris"), ("Rome#History", "Rome"),
      ("it", "Cur")]),
    ("a [[b]]'s [[c]]1 [[d]]ä [[e|f]]<!-- x -->s ''[[g]]''s", "a b's c1 dä fs gs",
     [("b", "B"), ("c", "C"), ("d", "D"), ("fs", "E"), ("g", "G")]),
    # a label emptied by a cut template shows nothing (dumps hold no pipe tricks: saving
    # expands them)
    ("[[ Foo | bar ]] [[Foo|{{lang|fr|x}}]] [[Paris (band)| ]] [[a|b|c]]", "bar b|c",
     [("bar", "Foo"), ("b|c", "A")]),
    ("[[AT&amp;T]] and [[Los%20Angeles|LA]]", "AT&T and LA",
     [("AT&T", "AT&T"), ("LA", "Los Angeles")]),
    # a namespace colon percent-encoded or as an entity is still a namespace (category tags)
    ("a [[Category%3AX]] b [[Category&#58;Y]] c [[Foo%20bar]]", "a b c Foo bar",
     [("Foo bar", "Foo bar")]),
    # markup inside and around anchors; entities; quotes (4 = apostrophe + bold)
    ("'''Bold''' ''[[Der Spiegel|''Der'' Spiegel]]''&nbsp;<small>small</small> a&amp;b "
     "l''''amour''' &ndash; &#91;1&#93;", "Bold Der Spiegel small a&b l'amour – [1]",
     [("Der Spiegel", "Der Spiegel")]),
    # links that are never spans: files, categories, language links (no text at all);
    # other namespaces and interwiki (their text stays)
    ("[[File:X.jpg|thumb|A [[caption link]]]]Text [[Category:Things]] [[:Category:Things|cat]] "
     "[[wikt:word|word]] [[Wikipedia:Rules|rules]] [[Media:X.ogg|media]] [[Real]].\n[[fr:Paris]]",
     "Text cat word rules media Real.", [("Real", "Real")]),
    ("a [[Image:X.png]]s [[:File:X.png|file page]] [[en:Foo]] [[:en:Foo|foo]] b",
     "a s file page foo b", []),
    # dropped blocks: templates (nested, arguments, braces in comments), refs, math, tables
    ("a {{x|{{y|}}z}} {{{1|d}}} {{a|<!-- }} -->b}} <math>x^{{2}}</math> b", "a b", []),
    ('a<ref name="x" /> b<ref name=y>c {{d}} [[e]]</ref> c<references /> d. e<ref>x</ref>.',
     "a b c d. e.", []),
    ("{|\n|a [[X]]\n{|\n|b\n|}\n|c\n|}\nafter <table><tr><td>[[Y]]</td></tr></table> end",
     "after end", []),
    ("{{Infobox\n| a = {|\n|x\n|}\n}}\ntext <gallery>\nFile:x.jpg|[[y]]\n</gallery> end",
     "text end", []),
    # brackets that make no link: stray ones, a target holding a link, a link in a label
    ("x [[a|b [[c]] d ]] y [[a [[b]] c]] [[e|x [[f]] y]] z [[g|h", "x b c d y a b c x f y z g|h",
     [("b c d", "A"), ("b", "B"), ("x f y", "E")]),
    # MediaWiki's own text rules: unclosed template braces and tags, an unclosed comment
    ("a {{b c d <ref>unclosed e", "a b c d unclosed e", []),
    ("a <!-- never closed [[X]]", "a", []),
    ("a <nowiki>[[x]]</nowiki> {{math|{x}}} b", "a x } b", []),
    # <nowiki/> ends a link trail; an unclosed <nowiki> shows nothing of itself
    ("a[[b]]<nowiki/>s c <nowiki>d [[e]]", "abs c d e", [("b", "B"), ("e", "E")]),
    # paragraphs: blank lines, headings, list items and <br> break; a single newline joins
    ("First line\nsame paragraph.\n\n== Heading ==\nSecond {{tpl|\n\n}} one.\n"
     "* item [[One]]\n** item two\n# three\n; four : five\nsix<br/>seven\neight",
     "First line same paragraph.\nSecond one.\nitem One\nitem two\nthree\nfour\nfive\nsix\n"
     "seven eight",
     [("One", "One")]),
    # a line holding only comments goes with its line break (MediaWiki): no paragraph break
    ("para one\n<!-- note -->\ncontinues.\n\n <!-- x --> <!-- y -->\n\nnext <!-- z -->\nline",
     "para one continues.\nnext line", []),
    # external links keep their label; bare URLs go; leftovers of cuts are tidied
    ("a [http://x.com Label] http://y.com b [http://z.com] c", "a Label b c", []),
    ("a {{x}}, b (born {{date}}) c ({{lang|de|x}}; born 1900) ({{IPA|x}} said) __NOTOC__d",
     "a, b (born) c (born 1900) (said) d", []),
    ("<noinclude>shown</noinclude> <includeonly>hidden</includeonly>", "shown", []),
    # what the walk reads from the tokenizer's tokens: a tag's name apart from its attributes
    # and its contents down to its own closing tag, a heading dropped whole (a link in it
    # too), an external link's label with markup, entities (named, decimal, hexadecimal), a
    # link title holding an entity, a label holding tags, a trail after a comment
    ('<span style="color:red" class=x>a <b>b [[c]]s</b></span>d <div>e</div>f',
     "a b csd\ne\nf", [("cs", "C")]),
    ("== [[X]] and {{y}} ==\ntext [[z]]<br />more", "text z\nmore", [("z", "Z")]),
    ("a [http://x.com a [[b]] &amp; <i>c</i>] d [[e|<i>f</i>&#x41;&#66;]]g",
     "a a b & c d fABg", [("b", "B"), ("fABg", "E")]),
    ("x [[A&amp;B|<small>s</small> t]] y [[C&eacute;|c]]s <!-- c -->[[d]]e",
     "x s t y cs de", [("s t", "A&B"), ("cs", "Cé"), ("de", "D")]),
    ('<ref group="a">x</ref><p>para</p>q<center>[[w]]</center>', "para\nq\nw", [("w", "W")]),
]


# The shape of a typical biography: infobox, refs, a citation-needed tag, an image with a linked
# caption, a table, reference and external-link sections, categories and a language link.
ARTICLE = """{{Short description|American actor}}
{{Infobox person
| name = John Smith
| birth_date = {{birth date and age|1970|1|1}}
}}
'''John Smith''' (born January 1, 1970) is an [[Americans|American]] [[actor]].<ref>{{cite web
|url=http://x|title=y}}</ref>

== Early life ==
Smith was born in [[New York City]], the son of a baker.<ref name="a" /> He attended
[[Harvard University|Harvard]].{{citation needed|date=May 2020}}
[[File:Smith.jpg|thumb|left|Smith in 2000, with [[Jane Doe]]]]
He later moved to [[Los Angeles, California|Los Angeles]]&nbsp;in 1990.<!-- check -->

== Filmography ==
{| class="wikitable"
! Year !! Title
|-
| 1999 || ''[[The Matrix]]''
|}

== References ==
{{reflist}}

== External links ==
* {{IMDb name|0000001}}
* [http://example.com Official website]

{{Authority control}}
{{DEFAULTSORT:Smith, John}}
[[Category:1970 births]]
[[de:John Smith]]"""
CASES.append((
    ARTICLE,
    "John Smith (born January 1, 1970) is an American actor.\nSmith was born in New York City, "
    "the son of a baker. He attended Harvard.\nHe later moved to Los Angeles in 1990.\n"
    "Official website",
    [("American", "Americans"), ("actor", "Actor"), ("New York City", "New York City"),
     ("Harvard", "Harvard University"), ("Los Angeles", "Los Angeles, California")]))


@pytest.mark.parametrize("wikitext, text, links", CASES)
def test_hand_made_cases(wikitext, text, links):
    page = parse_page(wikitext, "Cur", EN)
    assert page.text == text
    assert anchors(page) == links


@pytest.mark.parametrize("wikitext", [case[0] for case in CASES])
def test_prepass_changes_nothing_on_hand_made_cases(wikitext):
    assert parse_page(wikitext, "Cur", EN) == parse_page(wikitext, "Cur", EN, prepass=False)


@pytest.mark.parametrize("wikitext, with_prepass, parser_alone", [
    # A table never closed (its `|}` comes from a template such as {{end}}): the pre-pass
    # ends it at the first blank line; mwparserfromhell reads no table and keeps the rows.
    ("before\n{|\n|a [[X]]\n|-\n|b\n\nafter", "before\nafter", "before {| |a X |- |b\nafter"),
    # An indented table: MediaWiki renders it, mwparserfromhell does not recognize it.
    ("before\n:{|\n|a\n|}\nafter", "before\nafter", "before\n{|\n|a |} after"),
])
def test_documented_differences_of_the_prepass(wikitext, with_prepass, parser_alone):
    assert parse_page(wikitext, "Cur", EN).text == with_prepass
    assert parse_page(wikitext, "Cur", EN, prepass=False).text == parser_alone


def test_prepass_cuts_only_what_is_dropped():
    bg = bulgarian_site()
    kept = strip_dropped("a {| b\n[[:Категория:X]] [[Категория:Y]] [[Файл:Z.jpg|[[w]]]] "
                         "[[fr:Paris]] [[Star Wars: Episode IV]] <nowiki>{{x}}</nowiki> {{y", bg)
    assert kept == "a {| b\n[[:Категория:X]]    [[Star Wars: Episode IV]] <nowiki>{{x}}</nowiki> y"


def test_simple_links_are_stashed_and_the_rest_left_to_the_parser():
    rules = LinkRules("Cur", EN)
    text, stash = stash_simple_links("[[a]] [[b|c d]] [[e|''f'']] [[g| ]] [[h|&amp;]] "
                                     "<nowiki>[[i]]</nowiki> [[Category:J]] [[:K:l|m]]", rules)
    assert text == ("\ue0000\ue001 \ue0001\ue001 [[e|''f'']] [[g| ]] [[h|&amp;]] "
                    "<nowiki>[[i]]</nowiki> [[Category:J]] \ue0002\ue001")
    assert stash == [("a", "A"), ("c d", "B"), ("m", "K:l")]
    # A page that holds the marker characters itself is not shortcut.
    assert stash_simple_links("\ue000 [[a]]", rules) == ("\ue000 [[a]]", [])
    page = parse_page("x\ue0000\ue001 [[a]]s", "Cur", EN)
    assert anchors(page) == [("as", "A")] and page.text == "x\ue0000\ue001 as"



# List items at line starts, where the shortcut marks them and where it leaves them to
# mwparserfromhell; each must render as the parser alone renders it.
LIST_CASES = [
    "* a [[One]]s\n** b\n*# c\n#: d\n: e [[Two]]\n::: f",
    "*[[One]]s and [[Two|two]]\n*[[Three]]\ntext",
    "; term : definition\n: more\n;term\n*;x\n*: y : z",   # runs with ';' stay
    "a\n*<nowiki>\n* not a list</nowiki>\n* list\n<nowiki>*</nowiki>* b",
    "<blockquote>\n* quoted [[One]]\n</blockquote>\n*<small>x</small>",
    "[[One|a\n* b]] [[Two|c\n# d]]e",                         # list items in link labels
    "*{|\n|cell\n|}\n#----\n*== h ==\n*http://example.org x",
    "<pre>\n* kept as it is</pre>\n* item",                  # an unparsed tag: page left
    "\ue002 a mark in the text\n* item",                      # the marks themselves: left
    "text\n\n*\n*  \n* [[One]]\n\n#",
]


@pytest.mark.parametrize("wikitext", LIST_CASES)
def test_marked_list_items_render_as_the_parser_renders_them(wikitext):
    assert parse_page(wikitext, "Cur", EN) == parse_page(wikitext, "Cur", EN, prepass=False)


@pytest.mark.parametrize("language, wikitext", [
    ("ja", "* [[東京]]都の区\n** [[大阪]]\n#: [[京都|京]]市\n; 用語 : 説明"),   # no link trail
    ("ru", "* [[Москва]]ой\n# [[Санкт-Петербург|Питер]]ом\n: текст"),      # a Cyrillic trail
])
def test_marked_list_items_render_as_the_parser_renders_them_in_other_languages(language,
                                                                                wikitext):
    site = SiteInfo(language=language)
    assert parse_page(wikitext, "Cur", site) == parse_page(wikitext, "Cur", site, prepass=False)


def test_list_markers_are_marked_only_at_line_starts_outside_nowiki_and_without_semicolons():
    text, marked = mark_list_items("*a * b\n#:c\n;d\n*;e\n<nowiki>\n*f</nowiki>\n:g")
    assert marked
    assert text == ("\ue002a * b\n\ue003\ue004c\n;d\n*;e\n<nowiki>\n*f</nowiki>\n"
                    "\ue004g")
    assert mark_list_items("<math>\n*x</math>\n*y") == ("<math>\n*x</math>\n*y", False)
    assert mark_list_items("no list here") == ("no list here", False)
    # A link whose target holds a link is written as its raw text: its markers come back.
    assert parse_page("[[a [[One]]|x\n*y]] after", "Cur", EN).text == "a One|x *y after"

def test_bulgarian_namespaces_from_siteinfo():
    bg = bulgarian_site()
    page = parse_page("[[Файл:X.jpg|мини|[[Папа]]]]Текст [[календар]]и и "
                      "[[Картинка:Usmivka.png|:-)]]"
                      "[[:Категория:Календари|категорията]].\n[[Категория:Календари]]",
                      "Календар", bg)
    assert page.text == "Текст календари и категорията."
    assert anchors(page) == [("календари", "Календар")]


def test_layout_moves_spans_with_the_text():
    raw = "  a  big\u00a0cat ( ) sat\n\n\n\t on  , the  mat \n"
    spans = [(raw.index(word), raw.index(word) + len(word), word.upper())
             for word in ("big\u00a0cat", "sat", "on", "the  mat ")]
    text, moved = finish_layout(raw, spans)
    assert text == "a big cat sat\non, the mat"
    assert [(text[s:e], t) for s, e, t in moved] == [
        ("big cat", "BIG\u00a0CAT"), ("sat", "SAT"), ("on", "ON"), ("the mat", "THE  MAT ")]


def test_link_answers_are_shared_by_a_wikis_pages_but_for_fragments():
    """A target points at the same article from every page of a wiki, and its answer is kept
    for them all; `[[#Section]]` points at the page itself, whichever page links it."""
    for title in ("First page", "Second page", "First page"):
        page = parse_page("[[#History|here]] and [[paris]] and [[ #Early]]", title, EN)
        assert [(page.text[s:e], target) for s, e, target in page.links] == [
            ("here", title), ("paris", "Paris"), ("#Early", title)]
    bulgarian = parse_page("[[Категория:X]] [[Файл:Y.png]] [[Z]]", "Page", bulgarian_site())
    assert [target for _, _, target in bulgarian.links] == ["Z"]


def test_whitespace_runs_are_found_where_the_patterns_own_search_finds_them():
    """The layout looks for whitespace runs only where one can start; on text made of the
    characters that matter (spaces of every kind, line breaks, closing punctuation) it finds
    exactly the runs that the pattern's own search finds."""
    pieces = [" ", "  ", "\n", "\n\n", "\t", "\xa0", "\u3000", " \n ", ",", ".", ")", "]",
              "\uff09", "a", "bc", "x ."]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        found = [(m.start(), m.end(), layout._whitespace_repl(m))
                 for m in layout._WHITESPACE.finditer(text)]
        assert list(layout._whitespace_edits(text)) == found, repr(text)


@pytest.mark.parametrize("language, wikitext, text, links", [
    ("en", "'''Achilles''' ({{lang|grc|Ἀχιλλεύς}}, ''[[Akhilleus]]'', {{IPA|ɑːˈkɪl.eʊs}}) was",
     "Achilles (Akhilleus) was", [("Akhilleus", "Akhilleus")]),
    ("en", "'''Paris''' ({{IPA-fr|paʁi}}; {{lang|la|Lutetia}}) is [[France|French]] [ ] "
           "(, [[Seine]], , [[Marne]];) x", "Paris is French (Seine, Marne) x",
     [("French", "France"), ("Seine", "Seine"), ("Marne", "Marne")]),
    ("en", "[[A]] ({{x}}) [[B]], {{y}}, [[C]]", "A B, C", [("A", "A"), ("B", "B"), ("C", "C")]),
    ("zh", "'''东京都'''（{{lang-ja|東京都}}，{{lang|ja-Latn|Tōkyō-to}}）是[[日本]]的首都。"
           "[[北京]]（{{lang|en|Beijing}}；[[燕京]]、{{lang|fr|Pékin}}）",
     "东京都是日本的首都。北京（燕京）", [("日本", "日本"), ("北京", "北京"), ("燕京", "燕京")]),
    ("zh", "[[东京]]，{{lang|en|Tokyo}}，[[大阪]]、{{x}}、[[京都]]", "东京，大阪、京都",
     [("东京", "东京"), ("大阪", "大阪"), ("京都", "京都")]),
    ("ja", "'''東京都'''（とうきょうと、{{lang-en|Tokyo}}）は[[日本]]の[[首都]]（{{efn|x}}）。",
     "東京都（とうきょうと）は日本の首都。", [("日本", "日本"), ("首都", "首都")]),
])
def test_brackets_and_separators_left_by_cut_templates_go(language, wikitext, text, links):
    site = SiteInfo(language=language)
    page = parse_page(wikitext, "Cur", site)
    assert (page.text, anchors(page)) == (text, links)
    assert parse_page(wikitext, "Cur", site, prepass=False) == page


def link_oracle(wikitext: str, title: str, site: SiteInfo) -> list[tuple[str, str]]:
    """(anchor, target) of every article link, by regular expressions on the pre-passed text:
    an oracle independent of mwparserfromhell and of the layout step."""
    links = []
    trail = link_trail(site.language).pattern
    pattern = re.compile(rf"\[\[([^\[\]|\n]*)(?:\|([^\[\]]*))?\]\]((?:{trail})?)")
    for target, label, trail in pattern.findall(strip_dropped(wikitext, site)):
        if namespace_of(target, site) != 0:
            continue
        shown = label if label else target.strip().lstrip(":")
        shown = html.unescape(re.sub(r"''+|<[^>]*>", "", shown)) + trail
        links.append((" ".join(shown.split()), resolve_link_target(target, title, site)))
    return links


def test_real_english_spans_are_the_anchor_texts(en_pages):
    for title, wikitext, page in en_pages:
        assert anchors(page) == link_oracle(wikitext, title, EN), title
        assert len(page.links) >= 9, title


def test_real_bulgarian_spans_are_the_anchor_texts(bg_pages):
    site, pages = bg_pages
    for title, wikitext, page in pages:
        assert anchors(page) == link_oracle(wikitext, title, site), title
    assert len(pages[0][2].links) >= 100
    assert "Христофор Клавий" not in pages[0][2].text   # a File caption's link


MARKUP = ("{{", "}}", "[[", "]]", "<ref", "</", "'''", "''", "|}", "{|", "<!--", "&nbsp;",
          "&amp;", "&quot;", "__TOC__", "thumb|", "Category:", "Категория:", "Файл:")


def test_real_pages_have_no_markup_left(en_pages, bg_pages):
    for title, _, page in en_pages + bg_pages[1]:
        for mark in MARKUP:
            assert mark not in page.text, (title, mark)
        for paragraph in page.text.split("\n"):
            assert paragraph and paragraph == paragraph.strip() and "  " not in paragraph, title


def test_real_pages_category_file_and_interwiki_never_spans(en_pages, bg_pages):
    site = bg_pages[0]
    for title, wikitext, page in en_pages + bg_pages[1]:
        for _, _, target in page.links:
            assert namespace_of(target, site) == namespace_of(target, EN) == 0, (title, target)


def test_prepass_changes_nothing_on_real_pages(en_pages, bg_pages):
    site = bg_pages[0]
    for title, wikitext, page in en_pages:
        assert parse_page(wikitext, title, EN, prepass=False) == page, title
    for title, wikitext, page in bg_pages[1]:
        assert parse_page(wikitext, title, site, prepass=False) == page, title


@pytest.mark.parametrize("garbage", [
    "{{" * 20000, "[[" * 20000, "'''" * 5000, "{|\n" * 3000, "<ref>" * 5000,
    "[[a|" * 3000 + "]]" * 3000, "{{a|" * 3000 + "}}" * 3000, "}}]]|}" * 3000,
    # unclosed constructs repeated: the pre-pass must not search to the end for each one
    "{{a " * 20000, "<ref>a " * 20000, "[[File:a " * 20000, "\n<!--a" * 20000,
    "[[Category:a " * 20000, "{{a|<ref>x " * 10000, "<nowiki>a " * 20000, "[[a|b " * 20000,
])
def test_pathological_input_gives_clean_text(garbage):
    page = parse_page(garbage, "T", EN)
    assert "{{" not in page.text and "[[" not in page.text and "''" not in page.text


def test_bench_measures_parser_and_baselines_on_a_repeated_dump(tmp_path, capsys):
    """`luke-corpus bench --no-build`: figures for parse_page and both baselines, on a dump
    that holds the sample's pages twice under distinct titles (timings are not asserted)."""
    import argparse
    import json

    from corpus import bench

    repeated = bench.repeated_dump(DATA / "enwiki-sample-5-articles.xml.bz2", 2, tmp_path)
    titles = [title for title, _ in read_sample_pages(repeated)]
    assert len(titles) == 10 and len(set(titles)) == 10
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    dump = str(DATA / "enwiki-sample-5-articles.xml.bz2")
    args = parser.parse_args([dump, "--repeat", "1", "--no-build", "--json"])
    assert bench.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in report["figures"]] == ["parse", "plain", "wikiextractor"]
    assert all(f["mb_per_s"] > 0 for f in report["figures"])
    assert set(report["ratios"]) == {"parse/plain", "parse/wikiextractor"}
