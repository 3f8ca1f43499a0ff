"""A linear pre-pass that cuts from wikitext what the clean text drops, before the real parse.

mwparserfromhell builds a node tree for everything it reads, and most of an article's bytes sit
in markup whose output is thrown away: references, templates (infoboxes, citations, navboxes),
tables, comments, galleries, math, file and category links. Cutting those with a few regular
expressions and bracket counting costs a fraction of parsing them, so `strip_dropped` runs
first and mwparserfromhell only parses the prose that remains.

The cuts follow MediaWiki's preprocessor where it matters for correctness:
- comments and extension tags (`<ref>`, `<math>` ...) are opaque: braces inside them do not
  count; an extension tag without its closing tag is dropped alone (MediaWiki shows it as text);
- braces pair as MediaWiki pairs them: runs of two or more `{`, closed by `}}` (3 for an
  argument `{{{x}}}`), single braces ignored; an unclosed `{{` loses only its braces;
- a table starts with `{|` at a line start (after optional spaces or ':' indents) and ends at
  the matching `|}` line, nested tables counted; a table that is never closed (its end is often
  produced by a template such as `{{end}}`) ends at the first blank line;
- `[[File:...]]`, `[[Category:...]]` and language links `[[fr:...]]` (without a leading ':') go
  whole, captions and nested links included; the namespace names come from the site.
What the pre-pass leaves is still wikitext; the parser (corpus/wikitext.py) drops the same kinds
of nodes again, so the result is the same with or without this pass (tests/test_wikitext.py).
"""

from __future__ import annotations

import re

from corpus.siteinfo import SiteInfo
from corpus.titles import LANGUAGE_LINK, namespace_of

# Extension tags whose contents never reach the clean text (MediaWiki keeps them opaque).
DROPPED_TAGS = (
    "ref", "references", "gallery", "math", "chem", "ce", "timeline", "score", "graph",
    "mapframe", "maplink", "syntaxhighlight", "source", "pre", "hiero", "imagemap",
    "templatedata", "templatestyles", "inputbox", "categorytree", "indicator", "section",
    "charinsert", "rss", "talkpage", "includeonly",
)
_TAG_NAMES = "|".join(DROPPED_TAGS)
# Namespaces whose links (without a leading ':') render no text in the article.
INVISIBLE_LINK_NAMESPACES = frozenset({6, 14, LANGUAGE_LINK})

# Every alternative starts with a literal character outside any group: then `re` can jump
# from one candidate character to the next instead of trying every branch at every position
# (about 14 times faster on real pages). Names of groups tell the branches apart (lastgroup).
_OPAQUE = (r"<(?P<comment>!--)"
           rf"|<(?P<name>(?i:{_TAG_NAMES}|nowiki))\b[^<>]*?(?P<selfclose>/)?>")
_OPAQUE_KINDS = frozenset({"comment", "name", "selfclose"})
# What the top level of a page starts to cut (or, for nowiki, links and `{|`, looks at). Only
# links whose target may hold a namespace prefix (a ':', written, percent-encoded or as an
# entity) can be invisible: the others are not even stopped at.
_TOP = re.compile(_OPAQUE + r"|\{(?P<braces>\{+)|\{(?P<table>\|)"
                            r"|\[(?P<link>\[)(?=[^|\[\]{}<>\n]*[:%&])|_(?P<magic>_[A-Z]+__)")
_IN_BRACES = re.compile(_OPAQUE + r"|\{(?P<open>\{+)|\}(?P<close>\}+)")
_IN_TABLE = re.compile(_OPAQUE + r"|\{(?P<braces>\{+)|\n(?P<open>[ \t:]*\{\|)"
                                 r"|\n(?P<close>[ \t]*\|\})")
_IN_LINK = re.compile(_OPAQUE + r"|\{(?P<braces>\{+)|\[(?P<open>\[)|\](?P<close>\])|\n(?P<eol>)")
_COMMENT = r"<!--(?:[^-]|-(?!->))*-->"      # one comment: never reaches past its own end
_COMMENT_LINE = re.compile(rf"\n[ \t]*{_COMMENT}(?:[ \t]*{_COMMENT})*[ \t]*(?=\n)")
_LINE_INDENT = re.compile(r"[ \t:]*")
_LINK_TARGET = re.compile(r"[^|\[\]{}<>\n]*")
_CLOSING_TAGS: dict[str, re.Pattern] = {
    name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in (*DROPPED_TAGS, "nowiki")}


def drop_comment_lines(wikitext: str) -> str:
    """The wikitext without lines that hold only comments: MediaWiki removes such a line with
    its line break, so the lines around it stay one paragraph (the parser path needs this
    too, so parse_page applies it first, with or without the pre-pass)."""
    return _COMMENT_LINE.sub("", wikitext) if "<!--" in wikitext else wikitext


def strip_dropped(wikitext: str, site: SiteInfo, ids: dict[str, int] | None = None) -> str:
    """The wikitext with comments, dropped extension tags, templates, tables, magic words and
    invisible links (files, categories, language links) removed; nowiki sections kept.
    `ids`: site.namespace_ids(), when the caller has it already."""
    ids = site.namespace_ids() if ids is None else ids
    out: list[str] = []
    pos = 0
    while (m := _TOP.search(wikitext, pos)) is not None:
        out.append(wikitext[pos:m.start()])
        kind = m.lastgroup
        if kind == "link":
            end = _end_of_invisible_link(wikitext, m.end(), ids, site)
            if end is None:
                out.append("[[")
                end = m.end()
        elif kind in _OPAQUE_KINDS and m.group("name") and m.group("name").lower() == "nowiki":
            end = _end_of_opaque(wikitext, m)
            out.append(wikitext[m.start():end])
        elif kind == "braces":
            end = _end_of_braces(wikitext, m)
        elif kind == "table":
            if _at_line_start(wikitext, m.start()):
                end = _end_of_table(wikitext, m.start(), m.end())
            else:
                out.append("{|")      # `{|` inside a line is text in MediaWiki
                end = m.end()
        elif kind == "magic":
            end = m.end()
        else:
            end = _end_of_opaque(wikitext, m)
        pos = end
    out.append(wikitext[pos:])
    return "".join(out)


def _at_line_start(text: str, pos: int) -> bool:
    """Whether only spaces, tabs and ':' indents stand between pos and the line's start."""
    line_start = text.rfind("\n", 0, pos) + 1
    return _LINE_INDENT.match(text, line_start).end() >= pos


def _end_of_opaque(text: str, m: re.Match) -> int:
    """The end of a comment or extension tag opened at match m (its own end if unclosed)."""
    if m.group("comment"):
        close = text.find("-->", m.end())
        return len(text) if close < 0 else close + 3
    if m.group("selfclose"):
        return m.end()
    close = _CLOSING_TAGS[m.group("name").lower()].search(text, m.end())
    return m.end() if close is None else close.end()


def _end_of_braces(text: str, first: re.Match) -> int:
    """The end of the template/argument whose opening brace run is `first`.

    A stack of open brace runs, closed as MediaWiki closes them: each `}}` or `}}}` takes 2 or
    3 braces off the innermost run; a run left with one brace is closed (the brace is text).
    Unclosed: only the first run's braces are cut, the rest is read again as normal text.
    """
    stack = [len(first.group())]
    pos = first.end()
    while (m := _IN_BRACES.search(text, pos)) is not None:
        pos = m.end()
        if m.lastgroup == "open":
            stack.append(len(m.group()))
        elif m.lastgroup == "close":
            closing = len(m.group())
            while closing >= 2 and stack:
                used = min(3, closing, stack[-1])
                stack[-1] -= used
                closing -= used
                if stack[-1] < 2:
                    stack.pop()
            if not stack:
                return m.end() - closing
        else:
            pos = _end_of_opaque(text, m)
    return first.end()


def _end_of_table(text: str, start: int, pos: int) -> int:
    """The end of the table opened at start (its `{|` ends at pos): after its matching `|}`,
    nested tables counted; a table never closed ends at the first blank line."""
    depth = 1
    while (m := _IN_TABLE.search(text, pos)) is not None:
        pos = m.end()
        if m.lastgroup == "open":
            depth += 1
        elif m.lastgroup == "close":
            depth -= 1
            if depth == 0:
                return pos
        elif m.lastgroup == "braces":
            pos = _end_of_braces(text, m)
        else:
            pos = _end_of_opaque(text, m)
    blank = text.find("\n\n", start)
    return len(text) if blank < 0 else blank


def _end_of_invisible_link(text: str, pos: int, ids: dict[str, int], site: SiteInfo) -> int | None:
    """For `[[` ending at pos: the end of the whole link if it renders no text, else None."""
    target = _LINK_TARGET.match(text, pos).group()
    if target.lstrip().startswith(":"):
        return None               # a visible link to a file or category page
    if namespace_of(target, site, ids) not in INVISIBLE_LINK_NAMESPACES:
        return None
    depth = 1
    while (m := _IN_LINK.search(text, pos)) is not None:
        pos = m.end()
        kind = m.lastgroup
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                return pos
        elif kind == "braces":
            pos = _end_of_braces(text, m)
        elif kind == "eol":
            if depth == 1 and namespace_of(target, site, ids) != 6:
                return None   # a category or language link never spans lines: not a link
        else:
            pos = _end_of_opaque(text, m)
    return None
