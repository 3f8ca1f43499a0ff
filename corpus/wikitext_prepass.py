"""A linear pre-pass that cuts from wikitext what the clean text drops, before the real parse.

mwparserfromhell builds a node tree for everything it reads, and most of an article's bytes sit
in markup whose output is thrown away: references, templates (infoboxes, citations, navboxes),
tables, comments, galleries, math, file and category links. Cutting those with a few regular
expressions and bracket counting costs a fraction of parsing them, so `strip_dropped` runs
first and mwparserfromhell only parses the prose that remains.

Two passes, in MediaWiki's order, each linear in the page's length whatever it holds (a closing
tag found missing once is not searched for again, brackets are paired with stacks):
1. the preprocessor's level: comments and extension tags (`<ref>`, `<math>` ...) are opaque,
   braces inside them do not count; an unclosed comment hides the rest of the page, an
   extension tag without its closing tag is cut alone; braces pair as MediaWiki pairs them
   (runs of two or more `{`, each `}}` or `}}}` closing the innermost run, single braces
   ignored) and an unclosed `{{` loses only its braces; nowiki sections stay as they are;
2. on what is left: a table starts with `{|` at a line start (after optional spaces or ':'
   indents) and ends at the matching `|}` line, nested tables counted; a table that is never
   closed (its end often comes from a template such as `{{end}}`) ends at the first blank line;
   `[[File:...]]`, `[[Category:...]]` and language links `[[fr:...]]` (without a leading ':')
   go whole, captions and nested links included, namespace names from the site; magic words.
What the pre-pass leaves is still wikitext; the parser (corpus/wikitext.py) drops the same kinds
of nodes again, so the result is the same with or without this pass (tests/test_wikitext.py).
`drop_comment_lines` (comment-only lines vanish with their line break) is applied on both paths.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

from corpus.siteinfo import SiteInfo
from corpus.titles import LANGUAGE_LINK, namespace_names, namespace_of

# Extension tags whose contents never reach the clean text (MediaWiki keeps them opaque).
DROPPED_TAGS = (
    "ref", "references", "gallery", "math", "chem", "ce", "timeline", "score", "graph",
    "mapframe", "maplink", "syntaxhighlight", "source", "pre", "hiero", "imagemap",
    "templatedata", "templatestyles", "inputbox", "categorytree", "indicator", "section",
    "charinsert", "rss", "talkpage", "includeonly",
)
# Namespaces whose links (without a leading ':') render no text in the article.
INVISIBLE_LINK_NAMESPACES = frozenset({6, 14, LANGUAGE_LINK})

Region = tuple[int, int]      # [start, end) of text to cut

# Every alternative starts with a literal character outside any group, and none carries an
# inline flag: then `re` jumps from one candidate character to the next instead of trying every
# branch at every position (over ten times faster on real pages). Group names tell the
# branches apart (lastgroup).
_PREPROCESSOR = re.compile(r"<(?P<tag>!--|[A-Za-z]+)|\{(?P<open>\{+)|\}(?P<close>\}+)")
_TAG_REST = re.compile(r"[^<>]*?(?P<selfclose>/)?>")     # attributes and end of an opening tag
# Table lines, link brackets and magic words, found after a possessive skip (in C, no Python
# per step) over everything else: plain text, single brackets, line breaks that start no table
# line, and whole links without nested brackets whose target cannot hold a namespace prefix
# (no ':', written, percent-encoded or as an entity), which always render. Most of a page's
# links are such: skipping them halves this pass's time. The end of the text is a token too:
# without it a failed search would restart the skip from every later position (quadratic).
_BLOCK_EDGES = re.compile(
    r"(?:[^\n\[\]_]++|\[\[[^\[\]|:%&\n]*+(?:\|[^\[\]\n]*+)?\]\]|\[(?!\[)|\](?!\])"
    r"|_(?!_[A-Z]+__)|\n(?![ \t:]*\{\||[ \t]*\|\}))*+"
    r"(?:\n(?P<table_open>[ \t:]*\{\|)|\n(?P<table_close>[ \t]*\|\})|\[(?P<open>\[)"
    r"|\](?P<close>\])|_(?P<magic>_[A-Z]+__)|(?P<end>\Z))")
_NOWIKI_OPEN = re.compile(r"<(?i:nowiki)\b[^<>]*?(?P<selfclose>/)?>")
_LINK_TARGET = re.compile(r"[^|\[\]{}<>\n]*")
_DROPPED_TAG_SET = frozenset(DROPPED_TAGS)
_CLOSING_TAGS: dict[str, re.Pattern] = {
    name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in (*DROPPED_TAGS, "nowiki")}


class _ClosingTags:
    """Finds the closing tag of an element, remembering where one is missing: a closing tag
    absent after position p is absent after any later position, so unclosed tags repeated
    many times cost one search, not one each (no quadratic time on broken pages)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._missing_from: dict[str, int] = {}

    def end(self, name: str, pos: int) -> int | None:
        """The end of the first `</name>` at or after pos, or None."""
        if pos >= self._missing_from.get(name, len(self.text) + 1):
            return None
        close = _CLOSING_TAGS[name].search(self.text, pos)
        if close is None:
            self._missing_from[name] = pos
            return None
        return close.end()


class NowikiSections:
    """The closed `<nowiki>...</nowiki>` sections of a text: markup inside them is text."""

    def __init__(self, text: str) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        if "<" not in text:
            return
        closing = _ClosingTags(text)
        pos = 0
        while (m := _NOWIKI_OPEN.search(text, pos)) is not None:
            end = None if m.group("selfclose") else closing.end("nowiki", m.end())
            pos = end or m.end()
            if end is not None:
                self.starts.append(m.start())
                self.ends.append(end)

    def regions(self) -> list[Region]:
        return list(zip(self.starts, self.ends))

    def end_around(self, pos: int) -> int | None:
        """The end of the section holding pos, or None when pos is outside every section."""
        if not self.starts:
            return None
        k = bisect_right(self.starts, pos) - 1
        return self.ends[k] if k >= 0 and pos < self.ends[k] else None


def drop_comment_lines(wikitext: str) -> str:
    """The wikitext without lines that hold only comments: MediaWiki removes such a line with
    its line break, so the lines around it stay one paragraph (the parser path needs this
    too, so parse_page applies it first, with or without the pre-pass)."""
    if "<!--" not in wikitext:
        return wikitext
    cuts: list[Region] = []
    search = 0
    while (start := wikitext.find("<!--", search)) >= 0:
        end = _end_of_comments(wikitext, start)
        if end < 0:
            break                     # unclosed: the rest of the page is a comment
        line_start = len(wikitext[:start].rstrip(" \t")) - 1
        after = end + len(wikitext[end:end + 64]) - len(wikitext[end:end + 64].lstrip(" \t"))
        if line_start >= 0 and wikitext[line_start] == "\n" and wikitext[after:after + 1] == "\n":
            cuts.append((line_start, after))
        search = end
    return _cut(wikitext, cuts)


def _end_of_comments(text: str, start: int) -> int:
    """The end of the comment at start and of any that follow it on the line after blanks;
    -1 if the first one is never closed."""
    end = -1
    while text.startswith("<!--", start):
        close = text.find("-->", start + 4)
        if close < 0:
            return end
        end = close + 3
        start = end + len(text[end:end + 64]) - len(text[end:end + 64].lstrip(" \t"))
    return end


def strip_dropped(wikitext: str, site: SiteInfo, ids: dict[str, int] | None = None) -> str:
    """The wikitext with comments, dropped extension tags, templates, tables, magic words and
    invisible links (files, categories, language links) removed; nowiki sections kept.
    `ids`: titles.namespace_names(site), when the caller has it already.

    Two linear passes in MediaWiki's order: the preprocessor's (comments, extension tags,
    templates), then tables, links and magic words on what the first left.
    """
    ids = namespace_names(site) if ids is None else ids
    text = "\n" + _cut(wikitext, _preprocessor_cuts(wikitext))   # "\n": a first line starts
    return _cut(text, _block_cuts(text, site, ids))[1:]          # after a line break too


def _cut(text: str, regions: list[Region]) -> str:
    """text without the regions (which may overlap or nest)."""
    if not regions:
        return text
    kept, pos = [], 0
    for start, end in sorted(regions):
        if start > pos:
            kept.append(text[pos:start])
        pos = max(pos, end)
    kept.append(text[pos:])
    return "".join(kept)


def _preprocessor_cuts(text: str) -> list[Region]:
    """Comments, dropped extension tags and templates/arguments, paired as MediaWiki's
    preprocessor pairs them, in one pass with a stack of open brace runs. Comments and
    extension tags are opaque (braces inside do not count); nowiki sections are kept."""
    closing = _ClosingTags(text)
    cuts: list[Region] = []
    stack: list[list[int]] = []       # [start, braces left] of each open run
    pos = 0
    while (m := _PREPROCESSOR.search(text, pos)) is not None:
        pos = m.end()
        kind = m.lastgroup
        if kind == "open":
            stack.append([m.start(), len(m.group())])
        elif kind == "close":
            _close_braces(stack, m.start(), len(m.group()), cuts)
        elif m.group("tag") == "!--":
            close = text.find("-->", pos)
            pos = len(text) if close < 0 else close + 3   # unclosed: hides the rest
            cuts.append((m.start(), pos))
        else:
            pos = _after_tag(text, m, closing, cuts)
    cuts.extend((start, start + left) for start, left in stack)   # unclosed: the braces only
    return cuts


def _after_tag(text: str, m: re.Match, closing: _ClosingTags, cuts: list[Region]) -> int:
    """Where scanning goes on after the tag name at m: past a nowiki section (kept) or a
    dropped extension element (cut); other tags are read on. An unclosed tag of either kind
    is cut alone: it shows nothing (the clean text drops a stray `<nowiki>` anyway), and
    mwparserfromhell takes time quadratic in their number to give up on them. `<nowiki/>`
    stays: it ends a link's trail (`[[b]]<nowiki/>s` links "b" only)."""
    name = m.group("tag").lower()
    if name != "nowiki" and name not in _DROPPED_TAG_SET:
        return m.end()
    rest = _TAG_REST.match(text, m.end())
    if rest is None:
        return m.end()
    selfclose = rest.group("selfclose") is not None
    end = None if selfclose else closing.end(name, rest.end())
    if name != "nowiki" or end is None and not selfclose:
        cuts.append((m.start(), end or rest.end()))
    return end or rest.end()


def _close_braces(stack: list[list[int]], pos: int, closing: int, cuts: list[Region]) -> None:
    """A run of `closing` braces at pos: each `}}` or `}}}` takes 2 or 3 braces off the
    innermost open run and closes a template or argument; a run left with one brace is done
    (that brace is text), and closing braces left over with nothing open are text too."""
    while closing >= 2 and stack:
        run = stack[-1]
        used = min(3, closing, run[1])
        run[1] -= used
        closing -= used
        pos += used
        cuts.append((run[0] + run[1], pos))
        if run[1] < 2:
            stack.pop()


def _block_cuts(text: str, site: SiteInfo, ids: dict[str, int]) -> list[Region]:
    """Tables, magic words, and the outermost links that render no text (file, category,
    language links) with everything nested in them. A `{|` line opens a table and a `|}` line
    closes the innermost open one; a table never closed ends at the first blank line after
    its start. Link brackets are paired with a stack. text starts with a line break."""
    nowiki = NowikiSections(text)
    cuts: list[Region] = []
    tables: list[int] = []            # starts of open tables
    links: list[Region] = []
    opens: list[int] = []             # starts of open links
    pos = 0
    while (m := _BLOCK_EDGES.search(text, pos)) is not None:
        pos = m.end()
        kind = m.lastgroup
        if kind == "end":
            break
        start = m.start(kind) - 1     # where the token begins (its first character)
        if (inside := nowiki.end_around(start)) is not None:
            pos = max(pos, inside)
        elif kind == "table_open":
            tables.append(start + 1)  # the table begins after the line break
        elif kind == "table_close":
            if tables:
                cuts.append((tables.pop(), pos))
        elif kind == "open":
            opens.append(start)
        elif kind == "close":
            if opens:
                links.append((opens.pop(), pos))
            else:
                cuts.append((start, pos))     # a stray `]]`
        else:
            cuts.append((start, pos))
    # Stray `[[` go too: MediaWiki shows them as text, which the clean text drops anyway, and
    # mwparserfromhell takes time quadratic in their number to give up on them.
    cuts.extend((start, start + 2) for start in opens)
    cuts.extend(_unclosed_table_cuts(text, tables))
    cuts.extend(link for link in _outermost(links) if _renders_nothing(text, link[0], site, ids))
    return cuts


def _unclosed_table_cuts(text: str, starts: list[int]) -> list[Region]:
    """Each table never closed runs to the first blank line after its start."""
    if not starts:
        return []
    blanks = [b.start() for b in re.finditer("\n\n", text)]
    ends = (bisect_left(blanks, start) for start in starts)
    return [(start, blanks[k] if k < len(blanks) else len(text)) for start, k in zip(starts, ends)]


def _outermost(regions: list[Region]) -> list[Region]:
    """The regions not nested in another one."""
    outer: list[Region] = []
    for start, end in sorted(regions, key=lambda r: (r[0], -r[1])):
        if not outer or start >= outer[-1][1]:
            outer.append((start, end))
    return outer


def _renders_nothing(text: str, start: int, site: SiteInfo, ids: dict[str, int]) -> bool:
    """Whether the link at start is a file, category tag or language link (no leading ':');
    a target that runs into a line break makes no link at all."""
    target = _LINK_TARGET.match(text, start + 2)
    if text.startswith("\n", target.end()) or target.group().lstrip().startswith(":"):
        return False
    return namespace_of(target.group(), site, ids) in INVISIBLE_LINK_NAMESPACES
