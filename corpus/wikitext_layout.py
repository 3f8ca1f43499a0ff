"""The last step of page parsing: tidy the raw text into paragraphs while link spans follow.

The node walker (corpus/wikitext.py) writes text as the nodes give it: runs of spaces where a
template was cut, blank lines, `( )` left by a removed date template, tabs and no-break spaces.
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

# Leftovers of removed markup: magic words, brackets emptied by a cut template or reference
# ("born ( ) in", "(; 1900-1950)") and a space a cut left before a comma ("word , word").
_LEFTOVERS = re.compile(
    r"__[A-Z]+__"
    r"|\(\s*(?:[,;:]\s*)*\)"          # ( ) and (, ;) -> nothing
    r"|(?<=\()\s*[,;:]\s*"            # "(; born" -> "(born"
    r"|[^\S\n]+(?=[,.)](?:\s|$))"      # "word , word" (not ; : ! ?, spaced in French)
    , re.MULTILINE)
# Whitespace that is not a single plain space; whitespace at either end of the text goes.
_WHITESPACE = re.compile(r"^\s+|\s+$|\s{2,}|[^\S ]")


def _whitespace_repl(m: re.Match) -> str:
    """A blank line is a paragraph break (as in MediaWiki, where a single line break inside a
    paragraph is only a space); any other run is one space."""
    if m.start() == 0 or m.end() == len(m.string):
        return ""
    return "\n" if m.group().count("\n") >= 2 else " "


def finish_layout(text: str, spans: list[Span]) -> tuple[str, list[Span]]:
    """The clean text and its spans (spans trimmed to their visible characters)."""
    spans = _trim_spans(text, spans)
    text, spans = _rewrite(text, spans, _LEFTOVERS, lambda m: "")
    text, spans = _rewrite(text, spans, _WHITESPACE, _whitespace_repl)
    return text, [s for s in spans if s[0] < s[1]]


def _trim_spans(text: str, spans: list[Span]) -> list[Span]:
    """Spans shrunk to start and end on a non-space character."""
    trimmed = []
    for start, end, target in spans:
        anchor = text[start:end]
        start += len(anchor) - len(anchor.lstrip())
        end -= len(anchor) - len(anchor.rstrip())
        trimmed.append((start, max(start, end), target))
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
