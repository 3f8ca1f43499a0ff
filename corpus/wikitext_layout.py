"""The last step of page parsing: tidy the raw text into paragraphs while link spans follow.

The node walker (corpus/wikitext.py) writes text as the nodes give it: runs of spaces where a
template was cut, blank lines, `( )`, `（，）` or `(, x,)` left by removed templates, tabs and
no-break spaces.
`finish_layout` rewrites that into the clean text (paragraphs on their own line, no empty
paragraphs, single spaces, no leading or trailing space) and moves every link span with it,
so `text[start:end]` is still the link's anchor text. Each rewrite is a regular expression
whose matches are replaced; positions are mapped through the matches (a span boundary inside a
removed stretch moves to its edge; a span that ends up empty is dropped).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Callable

Span = tuple[int, int, str]

# Tag names whose stray opening or closing tags (unclosed, unmatched) are deleted.
LEFTOVER_TAGS = ("ref", "references", "nowiki", "gallery", "math", "span", "div", "small",
                 "big", "center", "font", "sup", "sub", "br", "includeonly", "onlyinclude",
                 "noinclude", "poem", "blockquote", "table", "tr", "td", "th", "p")

# Separators a cut template leaves stranded, in Latin and full-width (CJK) punctuation, and
# spaces that are not line breaks.
_SEPARATOR = "[,;:\uff0c\uff1b\u3001\uff1a]"        # , ; : ， ； 、 ：
_LISTING = "[,;\uff0c\uff1b\u3001]"                 # the ones that separate items
_SPACE = r"[^\S\n]"
# Markup the parser leaves as text, and what removed markup leaves behind:
# - unbalanced brackets, stray or unclosed tags, an unclosed comment (it hides the rest of the
#   page in MediaWiki), magic words;
# - brackets emptied by a cut template or reference: "born ( ) in", "(; )", "（，）", "[ ]"
#   go whole;
# - separators stranded at a bracket's edges or doubled: "Achilles (, Akhilleus,) was" ->
#   "Achilles (Akhilleus) was", "（；北京、）" -> "（北京）", "a, , b" -> "a, b".
# Only the stranded characters are matched, never the words between them, so a link span
# inside the brackets stays on its anchor text. Every branch starts with a literal character
# or class outside any group, so `re` jumps between candidate characters (see
# corpus/wikitext_prepass.py).
_LEFTOVERS = re.compile(
    r"<!--.*"
    r"|\[\[|\]\]|\{\{+|\}\}+"
    rf"|</?(?i:{'|'.join(LEFTOVER_TAGS)})\b[^<>]*>"
    r"|__[A-Z]+__"
    rf"|\((?:{_SPACE}|{_SEPARATOR})*\)|\uff08(?:{_SPACE}|{_SEPARATOR})*\uff09"
    rf"|\[(?:{_SPACE}|{_SEPARATOR})*\]"
    rf"|(?P<open>[(\uff08\[])(?P<open_punct>(?:{_SPACE}|{_SEPARATOR})*{_SEPARATOR}{_SPACE}*"
    rf"|{_SPACE}+)"
    rf"|{_SEPARATOR}(?:{_SPACE}|{_SEPARATOR})*(?=[)\uff09\]])"
    rf"|(?P<listing>{_LISTING})(?:{_SPACE}*{_LISTING})+"
    , re.DOTALL)
# Whitespace: a run that starts with a line break or a space other than ' ' (tab, no-break
# space, thin space ...), a run of plain spaces, and a single space before a comma, full stop
# or closing bracket that a cut left ("word , word"; not before ; : ! ?, which French spaces).
_WHITESPACE = re.compile("[\n\t\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029"
                         "\u202f\u205f\u3000]\\s*| (?:\\s+|(?=[,.)\\]\uff09]))")
_CLOSING_PUNCTUATION = re.compile("[,.)\\]\uff09](?:\\s|$)")


def _leftover_repl(m: re.Match) -> str:
    if m.group("open_punct") is not None:
        return m.group("open")
    return m.group("listing") or ""


def _whitespace_repl(m: re.Match) -> str:
    """A blank line is a paragraph break (as in MediaWiki, where a single line break inside a
    paragraph is only a space); a space before closing punctuation goes; any other run is one
    space. Runs at either end of the text go."""
    run, text = m.group(), m.string
    if m.start() == 0 or m.end() == len(text):
        return ""
    if run.count("\n") >= 2:
        return "\n"
    return "" if _CLOSING_PUNCTUATION.match(text, m.end()) else " "


def finish_layout(text: str, spans: list[Span], keep_empty: bool = False
                  ) -> tuple[str, list[Span]]:
    """The clean text and its spans (spans trimmed to their visible characters); keep_empty
    keeps the spans that end up empty, so that they stay aligned with the ones given."""
    text, spans = _rewrite(text, spans, _LEFTOVERS, _leftover_repl)
    text, spans = _rewrite(text, spans, _WHITESPACE, _whitespace_repl)
    if text != text.strip():   # a single space at either end (longer runs went above)
        lead = len(text) - len(text.lstrip())
        text = text.strip()
        spans = [(max(0, s - lead), min(len(text), e - lead), t) for s, e, t in spans]
    spans = _trim_spans(text, spans)
    return text, spans if keep_empty else [s for s in spans if s[0] < s[1]]


def _trim_spans(text: str, spans: list[Span]) -> list[Span]:
    """Spans shrunk to start and end on a non-space character."""
    trimmed = []
    for start, end, target in spans:
        if start < end and (text[start].isspace() or text[end - 1].isspace()):
            anchor = text[start:end]
            start += len(anchor) - len(anchor.lstrip())
            end = max(start, end - (len(anchor) - len(anchor.rstrip())))
        trimmed.append((start, end, target))
    return trimmed


def _rewrite(text: str, spans: list[Span], pattern: re.Pattern,
             repl: Callable[[re.Match], str]) -> tuple[str, list[Span]]:
    """Replace every match of pattern in text and map the spans onto the new text."""
    pieces: list[str] = []
    old_starts: list[int] = []
    old_ends: list[int] = []
    new_starts: list[int] = []
    new_lengths: list[int] = []
    last = shift = 0
    for m in pattern.finditer(text):
        start, end = m.span()
        replacement = repl(m)
        pieces.append(text[last:start])
        pieces.append(replacement)
        old_starts.append(start)
        old_ends.append(end)
        new_starts.append(start + shift)
        new_lengths.append(len(replacement))
        shift += len(replacement) - (end - start)
        last = end
    if not pieces:
        return text, spans
    pieces.append(text[last:])

    def moved(pos: int, is_end: bool) -> int:
        k = bisect_right(old_starts, pos) - 1
        if k < 0:
            return pos
        if pos >= old_ends[k]:
            return new_starts[k] + new_lengths[k] + pos - old_ends[k]
        if pos == old_starts[k] or is_end:
            return new_starts[k]
        return new_starts[k] + new_lengths[k]

    return "".join(pieces), [(moved(s, False), moved(e, True), t) for s, e, t in spans]
