"""Pages to pretraining sequences: sentences, token ids with mention spans, greedy packing.

Pure functions over plain data (a page is a dict with the PAGE_COLUMNS); the examples stage
runs them in worker processes and `luke-corpus inspect` re-runs them to show a stored example
with its text.

One id mapping: word ids come from the exported transformers tokenizer itself, split the way
`MLukeTokenizer.__call__` and `LukeTokenizer.__call__` split a text given `entity_spans` (the
text is cut at every mention boundary, a space before a boundary going with the following
piece, and each piece tokenized on its own, by corpus.word_encoder: the tokenizer's own backend,
behind an exact per-word cache where its pre-tokenizer allows one). So for every example,
`tokenizer(text, entities=titles, entity_spans=char_spans, max_entity_length=len(titles),
truncation=False)` gives back exactly its word and entity ids, and every mention starts and ends
on a token boundary. Sentences are whitespace-collapsed, so a packed sequence's ids are the
concatenation of its sentences' ids: with a sentencepiece tokenizer they are joined by one
space, where its Metaspace pre-tokenizer splits anyway; with byte-level BPE (which reads a
space as part of the word after it) each sentence carries its own leading space
(tests/test_examples.py holds this on both samples). Dropped, and counted: a sentence holding a
special token's text (`<s>`, `[MASK]`, ...) or the metaspace character (the tokenizer would turn
that text into a special id, which is not what the page says), and, where the tokenizer maps
unknown characters to an id that is not `<unk>` (corpus.word_encoder), a sentence holding one.
"""

from __future__ import annotations

import contextlib
import gc
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from corpus.options import Limits
from corpus.schema import ENTITY_UNK_ID
from corpus.sentences import sentence_ends, sentence_spans
from corpus.word_encoder import WordEncoder

UNK_TITLE = "[UNK]"
_NO_IDS = np.zeros(0, np.int32)                 # a sentence's ids before it is encoded


class Mention(NamedTuple):
    start: int                       # character span in its example's text
    end: int
    title: str                       # the key looked up in entity_vocab.json ("[UNK]" if unknown)
    entity_id: int
    target: str                      # the link target as the page has it


class Sentence:
    """One sentence of a page, whitespace collapsed, with its mentions as plain tuples
    (start, end, title, entity_id, target) in its text: made by the million, and a tuple
    display needs no call where a NamedTuple's does; only inspection needs Mention objects
    (Example.mentions)."""
    __slots__ = ("text", "mentions", "cuts", "word_ids", "token_cuts")

    def __init__(self, text: str, mentions: Sequence[tuple], cuts: Sequence[int]):
        self.text = text
        self.mentions = mentions
        self.cuts = cuts                 # start, end of each mention, in order
        self.word_ids: np.ndarray = _NO_IDS   # a view of its batch's ids (encode_sentences)
        self.token_cuts: list[int] = []  # token position of each of `cuts`


@dataclass(frozen=True, eq=False)
class Example:
    """One packed sequence; the text and character spans it was tokenized from are made from
    its sentences when asked for (inspection, tests), not by the examples stage."""
    page_id: int
    word_ids: np.ndarray             # <s> ... </s> (int32)
    entity_ids: list[int]
    entity_start: list[int]          # token positions in word_ids, end exclusive
    entity_end: list[int]
    sentences: tuple[Sentence, ...]
    separator: str                   # between the sentences' texts

    @cached_property
    def text(self) -> str:
        return self.separator.join(sentence.text for sentence in self.sentences)

    @cached_property
    def mentions(self) -> tuple[Mention, ...]:
        mentions, offset = [], 0
        for sentence in self.sentences:
            for start, end, title, entity_id, target in sentence.mentions:
                mentions.append(Mention(start + offset, end + offset, title, entity_id, target))
            offset += len(sentence.text) + len(self.separator)
        return tuple(mentions)

    def row(self) -> dict:
        """The stored columns (schema.EXAMPLE_COLUMNS); the lists are the example's own."""
        return {"word_ids": self.word_ids.tolist(), "entity_ids": self.entity_ids,
                "entity_start": self.entity_start, "entity_end": self.entity_end,
                "page_id": self.page_id}


def encode_sentences(encoder: WordEncoder, sentences: Sequence[Sentence]) -> None:
    """Fill each sentence's word_ids (a view of one array for all of them: one encoder call)
    and token_cuts."""
    encoded = encoder.encode_cut_arrays([s.text for s in sentences], [s.cuts for s in sentences])
    ids, bounds = encoded.ids, encoded.bounds.tolist()
    for sentence, start, end, token_cuts in zip(sentences, bounds, bounds[1:],
                                                encoded.positions):
        sentence.word_ids = ids[start:end]
        sentence.token_cuts = token_cuts


def page_links(page: dict) -> list[tuple[int, int, str]]:
    """The page's links as (start, end, target), in order, overlapping ones left out."""
    links, last_end = [], 0
    for start, end, target in sorted(zip(page["link_start"], page["link_end"],
                                         page["link_target"])):
        if start >= last_end and end > start:
            links.append((start, end, target))
            last_end = end
    return links


def page_sentences(page: dict, locale: str, entity_vocab: dict[str, int], limits: Limits,
                   counts: Counter, prefix: str = "", key_prefix: str = "",
                   ends: Sequence[int] | None = None) -> list[Sentence]:
    """The page's sentences, whitespace collapsed, each with its mentions (before tokenizing);
    `prefix` (WordEncoder.sentence_prefix) goes before each sentence's text, `key_prefix`
    before each known mention's title (examples_from_pages); `ends`: ICU's sentence ends of
    the page's text, where the caller found them (sentences.sentence_ends)."""
    text = page["text"]
    links = page_links(page)
    counts["links"] += len(page["link_start"])
    counts["mentions_overlapping"] += len(page["link_start"]) - len(links)
    sentences, link_index, link_count = [], 0, len(links)
    for start, end in sentence_spans(text, locale, [(s, e) for s, e, _ in links], ends):
        chunk = text[start:end]
        collapsed = " ".join(chunk.split())
        mentions: Sequence[tuple] = ()     # most sentences have no link: shared, not made
        cuts: Sequence[int] = ()
        if link_index < link_count and links[link_index][0] < end:
            mentions, cuts, first_link = [], [], link_index
            while link_index < link_count and links[link_index][0] < end:
                link_index += 1
            collapse_mentions(text, start, chunk, len(collapsed), links[first_link:link_index],
                              entity_vocab, limits, counts, len(prefix), key_prefix,
                              mentions, cuts)
        if collapsed:
            sentences.append(Sentence(prefix + collapsed if prefix else collapsed, mentions,
                                      cuts))
    return sentences


def collapse_mentions(text: str, offset: int, chunk: str, collapsed_length: int,
                      links: Sequence[tuple[int, int, str]], entity_vocab: dict[str, int],
                      limits: Limits, counts: Counter, shift: int, key_prefix: str,
                      mentions: list[tuple], cuts: list[int]) -> None:
    """Append to `mentions` (and their starts and ends to `cuts`) the resolved mentions of the
    links of one sentence: `chunk`, at `offset` in the page's `text`, becomes
    `" ".join(chunk.split())` (of `collapsed_length` characters) with `shift` characters of
    prefix before it. A mention covers its anchor text without the anchor's outer whitespace."""
    # Collapsing shifts no character when it shortens nothing but the trailing whitespace (the
    # usual case: a sentence ends with the space before the next one).
    position = (None if collapsed_length == len(chunk.rstrip())
                else _collapsed_positions(chunk))
    for start, end, target in links:
        anchor = text[start:end]
        stripped = anchor.strip()
        entity = resolve_entity(stripped, target, entity_vocab, limits, counts)
        if entity is None:
            continue
        title, entity_id = entity
        if key_prefix and title != UNK_TITLE:
            title = key_prefix + title
        first = start - offset
        if len(stripped) != len(anchor):
            first += len(anchor) - len(anchor.lstrip())     # first non-space character
        stop = first + len(stripped)                         # after the last one
        if position is not None:
            first, stop = position(first), position(stop - 1) + 1
        mentions.append((first + shift, stop + shift, title, entity_id, target))
        cuts += (first + shift, stop + shift)
    if len(mentions) > limits.max_entities:
        # The extra mentions become plain text; the sentence is tokenized without cuts there.
        counts["mentions_over_max_entities"] += len(mentions) - limits.max_entities
        del mentions[limits.max_entities:]
        del cuts[2 * limits.max_entities:]


# The runs of whitespace (as str.split() and str.strip() see it) that shift the characters
# after them when collapsed: leading ones, and those longer than the one space they become.
_SHRINKING_RUN = re.compile(r"^\s+|\s{2,}")


def _collapsed_positions(text: str):
    """A function from the index of a non-space character of `text` to its index in
    `" ".join(text.split())`: every run of whitespace before it shrank to one space, or to
    nothing at the start."""
    run_ends, removed, gone = [], [], 0
    for run in _SHRINKING_RUN.finditer(text):
        start, end = run.span()
        gone += end - start - (start > 0)
        run_ends.append(end)
        removed.append(gone)

    def position(index: int) -> int:
        runs_before = bisect_right(run_ends, index)
        return index - (removed[runs_before - 1] if runs_before else 0)
    return position


def resolve_entity(anchor: str, target: str, entity_vocab: dict[str, int], limits: Limits,
                   counts: Counter) -> tuple[str, int] | None:
    """(title, entity id) for a link, or None when its mention is dropped."""
    if not anchor:
        counts["mentions_empty"] += 1
        return None
    entity_id = entity_vocab.get(target)
    if entity_id is not None:
        return target, entity_id
    if limits.unk_entities == "drop":
        counts["mentions_unk_dropped"] += 1
        return None
    counts["mentions_unk_kept"] += 1
    return UNK_TITLE, ENTITY_UNK_ID


def kept_sentences(sentences: Sequence[Sentence], page_text: str, encoder: WordEncoder,
                   limits: Limits, counts: Counter) -> list[Sentence]:
    """The tokenized sentences of a page that go into packing (each other one's reason
    counted)."""
    # A special token's text holds no whitespace (WordEncoder.special_text_in_words), so a
    # sentence can hold it only where the page does: one search of the page, mostly.
    special = encoder.special_text.search
    may_hold_special = (not encoder.special_text_in_words) or special(page_text) is not None
    unknown = encoder.unknown_id
    shortest, longest = limits.min_sentence_tokens, limits.max_seq_length - 2
    kept = []
    for sentence in sentences:
        length = len(sentence.word_ids)
        if may_hold_special and special(sentence.text):
            reason = "sentences_with_special_text"
        elif unknown is not None and unknown in sentence.word_ids:
            reason = "sentences_with_unknown_characters"
        elif length < shortest:
            reason = "sentences_too_short"
        elif length > longest:
            reason = "sentences_too_long"
        else:
            kept.append(sentence)
            continue
        counts[reason] += 1
        counts["mentions_in_dropped_sentences"] += len(sentence.mentions)
    return kept


def pack_sentences(sentences: Iterable[Sentence], limits: Limits) -> list[list[Sentence]]:
    """Greedy packing of consecutive sentences within the token and entity budgets."""
    packs: list[list[Sentence]] = []
    current: list[Sentence] = []
    tokens = entities = 0
    max_tokens, max_entities = limits.max_seq_length - 2, limits.max_entities
    for sentence in sentences:
        length, mentions = len(sentence.word_ids), len(sentence.mentions)
        if current and (tokens + length > max_tokens or entities + mentions > max_entities):
            packs.append(current)
            current, tokens, entities = [], 0, 0
        current.append(sentence)
        tokens += length
        entities += mentions
    if current:
        packs.append(current)
    return packs


def make_example(page_id: int, pack: Sequence[Sentence], encoder: WordEncoder,
                 limits: Limits, counts: Counter) -> Example:
    """Join a pack's sentences with one space (or none where each carries its own leading
    space); token spans shift by the tokens before (+1 for <s>), and a mention longer than
    max_mention_length keeps its first tokens."""
    longest = limits.max_mention_length
    entity_ids, starts, ends = [], [], []
    offset = 1                                  # tokens before the sentence: <s> first
    for sentence in pack:
        if sentence.mentions:
            cuts = iter(sentence.token_cuts)
            for mention, start, end in zip(sentence.mentions, cuts, cuts):
                if end - start > longest:
                    counts["mentions_truncated"] += 1
                    end = start + longest
                starts.append(start + offset)
                ends.append(end + offset)
                entity_ids.append(mention[3])
        offset += len(sentence.word_ids)
    word_ids = np.concatenate([np.array([encoder.bos_id], np.int32),
                               *(sentence.word_ids for sentence in pack),
                               np.array([encoder.eos_id], np.int32)])
    return Example(page_id, word_ids, entity_ids, starts, ends, tuple(pack),
                   "" if encoder.sentence_prefix else " ")


def examples_from_pages(pages: Sequence[dict], encoder: WordEncoder, locale: str,
                        entity_vocab: dict[str, int], limits: Limits,
                        counts: Counter, key_prefix: str = "") -> list[Example]:
    """All examples of the pages, in page order (tokenized in one backend call).
    `entity_vocab` maps the pages' link targets to entity ids; `key_prefix` is what comes
    before a title in the entity vocabulary's keys (`en:` in a build of several languages),
    so that each mention's title is its key in entity_vocab.json."""
    with cyclic_gc_paused():
        ends = sentence_ends([p["text"] for p in pages], locale)    # one ICU breaker for all
        per_page = [page_sentences(p, locale, entity_vocab, limits, counts,
                                   encoder.sentence_prefix, key_prefix, page_ends)
                    for p, page_ends in zip(pages, ends)]
        encode_sentences(encoder, [s for sentences in per_page for s in sentences])
        examples = []
        for page, sentences in zip(pages, per_page):
            counts["pages"] += 1
            counts["sentences"] += len(sentences)
            kept = kept_sentences(sentences, page["text"], encoder, limits, counts)
            page_examples = []
            for pack in pack_sentences(kept, limits):
                if not any(s.mentions for s in pack):
                    counts["sequences_without_entities"] += 1
                    continue
                page_examples.append(make_example(page["id"], pack, encoder, limits, counts))
            counts["pages_without_examples"] += not page_examples
            examples.extend(page_examples)
        for example in examples:
            counts["examples"] += 1
            counts["tokens"] += len(example.word_ids)
            counts["entities"] += len(example.entity_ids)
        return examples


@contextlib.contextmanager
def cyclic_gc_paused():
    """No cyclic garbage collection while pages become examples. The work allocates millions
    of small lists and tuples and no reference cycles, and each collection walks every live
    container: measured, the collector took half of the examples stage's time. Reference
    counting frees everything as usual; the collector runs again on the way out."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
