"""Split a page's text into sentences with ICU's sentence break rules (via icu4py).

Why ICU: its rules (Unicode UAX #29 plus per-locale data, e.g. abbreviation suppressions) work
for every script Wikipedia is written in, including those without spaces or with their own
full stops (Chinese, Japanese, Thai, Hindi, Armenian), from one dependency with no model to
download. The reference LUKE pipeline used ICU for every language but English (OpenNLP there);
one splitter for all languages keeps a Bulgarian and an English build behaving alike.

ICU's per-locale abbreviation suppressions ("Mr." does not end an English sentence) apply only
when asked for, with the locale keyword `ss=standard`; it is added unless the locale names its
own keywords. Locales without suppression data simply split at every full stop.

Two details matter: icu4py reports offsets in UTF-16 code units, not Python string indices
(they differ after any character outside the Basic Multilingual Plane, such as an emoji), and a
sentence boundary that falls inside a link's anchor text is dropped, so a mention never spans
two sentences.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from icu4py.breakers import SentenceBreaker

PARAGRAPH_SEPARATOR = "\u2029"


def utf16_to_index(text: str, offsets: Sequence[int]) -> list[int]:
    """Python str indices of ascending UTF-16 offsets into `text`."""
    if len(text.encode("utf-16-le")) == 2 * len(text):  # all in the BMP: offsets are indices
        return list(offsets)
    indices, unit, index = [], 0, 0
    for offset in offsets:
        while unit < offset:
            unit += 2 if ord(text[index]) > 0xFFFF else 1
            index += 1
        indices.append(index)
    return indices


def sentence_spans(text: str, locale: str, mentions: Sequence[tuple[int, int]] = (),
                   ends: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """(start, end) Python indices of the sentences of `text`, covering it entirely.

    `mentions` are (start, end) spans that must not be cut: a boundary inside one is dropped.
    `ends`: ICU's sentence ends of the text, where the caller found them already (e.g. with
    sentence_ends for many texts at once).
    """
    if not text:
        return []
    if ends is None:
        ends = sentence_ends([text], locale)[0]
    inside = _positions_inside(mentions)
    spans, start = [], 0
    for end in ends:
        if end in inside and end != len(text):
            continue
        spans.append((start, end))
        start = end
    return spans


def sentence_ends(texts: Sequence[str], locale: str) -> list[list[int]]:
    """For each text, the Python indices where ICU ends its sentences, the last being its end,
    from one breaker over all of them: a breaker with abbreviation suppressions is built anew
    for every text given to it (about a quarter of a millisecond, most of the cost of splitting
    a page). The texts are joined with U+2029 PARAGRAPH SEPARATOR after each: ICU always breaks
    after one (rule SB4), and none of its rules looks ahead past one, so every sentence end
    inside a text is the one it has alone. The separator is a text's end: the break after it
    (which a suppression may drop, as "Mr." before it) is taken as that end in any case."""
    written = [text for text in texts if text]      # an empty text has no sentence
    if not written:
        return [[] for _ in texts]
    breaks = [end for _, end in SentenceBreaker(PARAGRAPH_SEPARATOR.join(written)
                                                + PARAGRAPH_SEPARATOR,
                                                icu_locale(locale)).segments()]
    out, first, start = [], 0, 0
    for text in texts:
        if not text:
            out.append([])
            continue
        length = len(text.encode("utf-16-le")) // 2         # ICU counts UTF-16 units
        stop = bisect_right(breaks, start + length, first)   # the ends inside the text
        ends = [end - start for end in breaks[first:stop]]
        if not ends or ends[-1] != length:
            ends.append(length)
        out.append(utf16_to_index(text, ends))
        start += length + 1                                  # the separator after it
        first = bisect_right(breaks, start, stop)            # the break after the separator
    return out


def icu_locale(language: str) -> str:
    """The ICU locale for a wiki language, with abbreviation suppressions switched on."""
    return language if "@" in language else f"{language}@ss=standard"


def _positions_inside(mentions: Sequence[tuple[int, int]]) -> set[int]:
    """Positions strictly inside some mention (a boundary there would cut it)."""
    inside: set[int] = set()
    for start, end in mentions:
        inside.update(range(start + 1, end))
    return inside
