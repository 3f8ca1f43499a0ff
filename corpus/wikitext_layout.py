"""The last step of page parsing: tidy the raw text into paragraphs while link spans follow.

The walk of corpus/wikitext.py writes text as the parser gives it: runs of spaces where a
template was cut, blank lines, `( )`, `（，）` or `(, x,)` left by removed templates, tabs and
no-break spaces.
`finish_layout` rewrites that into the clean text (paragraphs on their own line, no empty
paragraphs, single spaces, no leading or trailing space) and moves every link span with it,
so `text[start:end]` is still the link's anchor text. Each rewrite is a list of edits found by
a regular expression (a match replaced, or pieces of it); positions are mapped through the
edits (a span boundary inside a removed stretch moves to its edge; a span that ends up empty
is dropped).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Iterable, Iterator

Span = tuple[int, int, str]

# Tag names whose stray opening or closing tags (unclosed, unmatched) are deleted.
LEFTOVER_TAGS = ("ref", "references", "nowiki", "gallery", "math", "span", "div", "small",
                 "big", "center", "font", "sup", "sub", "br", "includeonly", "onlyinclude",
                 "noinclude", "poem", "blockquote", "table", "tr", "td", "th", "p")

# Separators a cut template leaves stranded, in Latin and full-width (CJK) punctuation, and
# spaces that are not line breaks.
_SEPARATOR = "[,;:\uff0c\uff1b\u3001\uff1a]"        # , ; : ， ； 、 ：
_SPACE = r"[^\S\n]"
_EDGE = f"(?:{_SPACE}|{_SEPARATOR})"
# The first of two separators in a row (a space between Latin ones); one literal per branch.
_DOUBLED = ("|".join(f"{c} ?(?=[,;])" for c in ",;") + "|"
            + "|".join(f"{c}(?=[\uff0c\uff1b\u3001])" for c in "\uff0c\uff1b\u3001"))


def _bracket(opening: str, closing: str, name: str) -> str:
    """A bracket pair with nothing between, or starting with a space or separator, or ending
    with a separator (and spaces): what a cut template leaves. Its contents hold no other
    brackets, markup leftovers or line breaks (those are the other branches' business)."""
    inner = f"[^{re.escape(opening + closing)}\\[\\]{{}}<\\n]*"
    return (f"{re.escape(opening)}(?P<{name}>{_EDGE}{inner}|{inner}{_SEPARATOR}{_SPACE}*|)"
            f"{re.escape(closing)}")


# Markup the parser leaves as text, and what removed markup leaves behind:
# - unbalanced brackets, stray or unclosed tags, an unclosed comment (it hides the rest of the
#   page in MediaWiki), magic words;
# - brackets a cut template or reference left empty or with stranded separators, in Latin and
#   full-width forms: "born ( ) in", "(; )", "（，）", "[ ]" go whole; "Achilles (, Akhilleus,)
#   was" becomes "Achilles (Akhilleus) was", "（；北京、）" becomes "（北京）" (see
#   _leftover_edits: only the stranded characters go, never the words between them, so a link
#   span inside the brackets stays on its anchor text);
# - a separator doubled by a cut between two: "A, {{x}}, B" -> "A, B", "东京，{{x}}，大阪" ->
#   "东京，大阪" (the first of the two goes).
# Every branch starts with a literal character outside any group, so `re` jumps between
# candidate characters (see corpus/wikitext_prepass.py): a branch starting with a separator
# would stop at every comma of the text and cost ten times more.
_LEFTOVERS = re.compile(
    r"<!--.*"
    r"|\[\[|\]\]|\{\{+|\}\}+"
    rf"|</?(?i:{'|'.join(LEFTOVER_TAGS)})\b[^<>]*>"
    r"|__[A-Z]+__"
    f"|{_bracket('(', ')', 'round')}|{_bracket('[', ']', 'square')}"
    f"|{_bracket(chr(0xff08), chr(0xff09), 'wide')}"
    f"|{_DOUBLED}"
    , re.DOTALL)
_DOUBLED_INSIDE = re.compile(_DOUBLED)
_ONLY_EDGES = re.compile(f"{_EDGE}*")
_LEADING = re.compile(f"{_EDGE}*{_SEPARATOR}{_SPACE}*|{_SPACE}+")
_TRAILING = re.compile(f"{_SEPARATOR}{_EDGE}*$")
# Whitespace: a run that starts with a line break or a space other than ' ' (tab, no-break
# space, thin space ...), a run of plain spaces, and a single space before a comma, full stop
# or closing bracket that a cut left ("word , word"; not before ; : ! ?, which French spaces).
_OTHER_SPACE = ("[\n\t\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029"
                "\u202f\u205f\u3000]")
_WHITESPACE = re.compile(f"{_OTHER_SPACE}\\s*| (?:\\s+|(?=[,.)\\]\uff09]))")
# Where a match of _WHITESPACE can start, in two scans: at a space other than ' ' (the run
# after it taken too), or at a ' ' before whitespace or closing punctuation. Its matches never
# end inside whitespace, so every one starts at one of these. _WHITESPACE's own search stops at
# every plain space of the text to try its second branch: three times the time of these two.
_OTHER_SPACE_RUN = re.compile(f"{_OTHER_SPACE}\\s*")
_SPACE_BEFORE = re.compile(" [\\s,.)\\]\uff09]")
_CLOSING_PUNCTUATION = re.compile("[,.)\\]\uff09](?:\\s|$)")


Edit = tuple[int, int, str]       # replace text[start:end] with the string


def _leftover_edits(text: str) -> Iterator[Edit]:
    """The edits of _LEFTOVERS: a leftover goes; a bracket with nothing left between goes
    whole; else the separators (and spaces) stranded after its opening and before its closing
    go, and the first of each doubled pair between, the words staying where they are."""
    for m in _LEFTOVERS.finditer(text):
        name = m.lastgroup
        if name is None:
            yield m.start(), m.end(), ""
            continue
        start, end = m.span(name)
        inner = m.group(name)
        if _ONLY_EDGES.fullmatch(inner):
            yield m.start(), m.end(), ""
            continue
        leading = _LEADING.match(inner)
        trailing = _TRAILING.search(inner)
        inside = (leading.end() if leading else 0, trailing.start() if trailing else len(inner))
        if leading:
            yield start, start + leading.end(), ""
        for doubled in _DOUBLED_INSIDE.finditer(inner, *inside):
            yield start + doubled.start(), start + doubled.end(), ""
        if trailing:
            yield start + trailing.start(), end, ""


def _whitespace_edits(text: str) -> list[Edit]:
    """The edits of _WHITESPACE (as its finditer would find them), tried only where a match
    can start."""
    starts = [m.start() for m in _OTHER_SPACE_RUN.finditer(text)]
    starts += [m.start() for m in _SPACE_BEFORE.finditer(text)]
    starts.sort()
    edits, end = [], 0
    for start in starts:
        if start >= end:
            run = _WHITESPACE.match(text, start)
            end = run.end()
            edits.append((start, end, _whitespace_repl(run)))
    return edits


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
    text, spans = _rewrite(text, spans, _leftover_edits(text))
    text, spans = _rewrite(text, spans, _whitespace_edits(text))
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


def _rewrite(text: str, spans: list[Span], edits: Iterable[Edit]) -> tuple[str, list[Span]]:
    """Apply the edits (in order, not overlapping) and map the spans onto the new text."""
    pieces: list[str] = []
    old_starts: list[int] = []
    old_ends: list[int] = []
    new_starts: list[int] = []
    new_lengths: list[int] = []
    last = shift = 0
    for start, end, replacement in edits:
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
