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

from typing import Sequence

from icu4py.breakers import SentenceBreaker


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


def sentence_spans(text: str, locale: str,
                   mentions: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """(start, end) Python indices of the sentences of `text`, covering it entirely.

    `mentions` are (start, end) spans that must not be cut: a boundary inside one is dropped.
    """
    if not text:
        return []
    breaker = SentenceBreaker(text, icu_locale(locale))
    ends = utf16_to_index(text, [end for _, end in breaker.segments()])
    inside = _positions_inside(mentions)
    spans, start = [], 0
    for end in ends:
        if end in inside and end != len(text):
            continue
        spans.append((start, end))
        start = end
    return spans


def icu_locale(language: str) -> str:
    """The ICU locale for a wiki language, with abbreviation suppressions switched on."""
    return language if "@" in language else f"{language}@ss=standard"


def _positions_inside(mentions: Sequence[tuple[int, int]]) -> set[int]:
    """Positions strictly inside some mention (a boundary there would cut it)."""
    inside: set[int] = set()
    for start, end in mentions:
        inside.update(range(start + 1, end))
    return inside
