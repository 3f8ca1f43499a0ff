"""Fit a text and its entity spans into a token budget before calling a LUKE tokenizer.

transformers 5 (5.24 checked) cannot truncate when entity spans are given:
`tokenizer(text, entity_spans=..., truncation=True, max_length=N)` raises
`AttributeError: MLukeTokenizer has no attribute truncate_sequences` (the same for
`LukeTokenizer`), and so does `truncation=True` with more spans than `max_entity_length`.
Without truncation both tokenizers work. So the cut happens here, on the text, before the call:

    fitted = fit_to_length(tokenizer, text, spans, max_length=128)
    tokenizer(fitted.text, entity_spans=fitted.entity_spans)       # no truncation argument

The text keeps its beginning (as `truncation=True` keeps the first tokens) and is cut at a word
boundary, the last one where the tokens of the kept text, special tokens included, still fit
`max_length`. Every span that lies wholly inside the kept text stays, at the same character
offsets; a span reaching past the cut is dropped, as are spans beyond `max_entity_length`
(the first ones are kept). Under a tokenizer `task` that takes a fixed number of spans
(entity classification: one, entity pair classification: two) they are kept all or none.
`Fitted.kept` says which input spans remain, so that labels can
follow them; `fit_all` fits many texts and warns once with the totals of what it dropped.

Only the tokenizer's own call counts tokens, so this works alike for `MLukeTokenizer`
(sentencepiece, what luke-corpus writes) and `LukeTokenizer` (byte-level BPE), whatever `task`
it was loaded with (the `<ent>` markers of entity classification count too). Both tokenize each
whitespace-separated word on its own, so the tokens of a text cut at a word boundary are the
first tokens of the whole text, and the count grows with the cut: a binary search over word
boundaries finds the cut in about log2(words) calls. A text with no whitespace (Chinese,
Japanese) is cut between characters instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

Span = tuple[int, int]


@dataclass(frozen=True)
class Fitted:
    """A text and spans that fit; `kept` indexes the input spans that `entity_spans` holds."""
    text: str
    entity_spans: list[Span]
    kept: list[int]
    given_spans: int
    cut: bool                        # the text was shortened

    @property
    def dropped(self) -> int:
        """Spans of the input that did not fit."""
        return self.given_spans - len(self.kept)


# Tasks whose tokenizer call takes exactly this many spans (and marks them with <ent> tokens).
SPANS_OF_TASK = {"entity_classification": 1, "entity_pair_classification": 2}


def token_count(tokenizer, text: str, entity_spans: Sequence[Span]) -> int:
    """Word tokens (special tokens included) the tokenizer gives for the text and spans."""
    if entity_spans:
        return len(tokenizer(text, entity_spans=list(entity_spans))["input_ids"])
    # A tokenizer loaded with a task refuses a call without spans; its backend tokenizes the
    # text as the call would (the call tokenizes the pieces between spans with it).
    words = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    return len(words.ids) + tokenizer.num_special_tokens_to_add(pair=False)


def cut_points(text: str) -> list[int]:
    """Candidate lengths to cut the text to, ascending: the end of every word (whitespace
    follows), or every character position when the text has no whitespace at all."""
    points = [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()]
    return points or list(range(1, len(text)))


def fit_to_length(tokenizer, text: str, entity_spans: Sequence[Span], max_length: int | None = None,
                  max_entity_length: int | None = None) -> Fitted:
    """`text` cut (if need be) so that its tokens fit `max_length` (default: the tokenizer's
    model_max_length), with the spans that fit (at most `max_entity_length`, default the
    tokenizer's). See the module docstring."""
    max_length = max_length or tokenizer.model_max_length
    max_entity_length = max_entity_length or getattr(tokenizer, "max_entity_length", None)
    spans = [(int(start), int(end)) for start, end in entity_spans]
    capped = list(range(len(spans)))[:max_entity_length]
    exactly = SPANS_OF_TASK.get(getattr(tokenizer, "task", None))

    def inside(length: int) -> list[int]:
        kept = [i for i in capped if spans[i][1] <= length]
        return kept if exactly is None or len(kept) == exactly else []

    def fits(length: int) -> bool:
        return token_count(tokenizer, text[:length], [spans[i] for i in inside(length)]) \
            <= max_length

    if fits(len(text)):
        kept = inside(len(text))
        return Fitted(text, [spans[i] for i in kept], kept, len(spans), cut=False)
    points = cut_points(text)
    low, high = 0, len(points)          # the answer is points[low - 1]; 0: nothing fits
    while low < high:
        middle = (low + high) // 2
        if fits(points[middle]):
            low = middle + 1
        else:
            high = middle
    length = points[low - 1] if low else 0
    kept = inside(length)
    return Fitted(text[:length], [spans[i] for i in kept], kept, len(spans), cut=True)


def fit_all(tokenizer, texts: Sequence[str], entity_spans: Sequence[Sequence[Span]],
            max_length: int | None = None, max_entity_length: int | None = None) -> list[Fitted]:
    """fit_to_length for each text; one warning with the totals when texts were cut or spans
    dropped."""
    fitted = [fit_to_length(tokenizer, text, spans, max_length, max_entity_length)
              for text, spans in zip(texts, entity_spans, strict=True)]
    cut = sum(f.cut for f in fitted)
    dropped = sum(f.dropped for f in fitted)
    if cut or dropped:
        given = sum(f.given_spans for f in fitted)
        warnings.warn(f"fit_all: {cut} of {len(fitted)} texts cut to "
                      f"{max_length or tokenizer.model_max_length} tokens; {dropped} of {given} "
                      f"entity spans dropped (past the cut, or beyond max_entity_length)",
                      stacklevel=2)
    return fitted
