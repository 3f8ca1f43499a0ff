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
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from corpus.options import Limits
from corpus.schema import ENTITY_UNK_ID
from corpus.sentences import sentence_spans
from corpus.word_encoder import WordEncoder

UNK_TITLE = "[UNK]"


class Mention(NamedTuple):      # a tuple: made by the million, ~3x cheaper than a dataclass
    start: int                       # character span in its sentence's (or example's) text
    end: int
    title: str                       # the key looked up in entity_vocab.json ("[UNK]" if unknown)
    entity_id: int
    target: str                      # the link target as the page has it


@dataclass
class Sentence:
    text: str
    mentions: list[Mention]
    word_ids: list[int] = field(default_factory=list)
    token_spans: list[tuple[int, int]] = field(default_factory=list)  # one per mention


@dataclass(frozen=True)
class Example:
    """One packed sequence, with the text and character spans it was tokenized from."""
    page_id: int
    text: str
    mentions: tuple[Mention, ...]
    word_ids: tuple[int, ...]        # <s> ... </s>
    entity_start: tuple[int, ...]    # token positions in word_ids, end exclusive
    entity_end: tuple[int, ...]

    @property
    def entity_ids(self) -> list[int]:
        return [m.entity_id for m in self.mentions]

    def row(self) -> dict:
        """The stored columns (schema.EXAMPLE_COLUMNS)."""
        return {"word_ids": list(self.word_ids), "entity_ids": self.entity_ids,
                "entity_start": list(self.entity_start), "entity_end": list(self.entity_end),
                "page_id": self.page_id}


def encode_sentences(encoder: WordEncoder, sentences: Sequence[Sentence]) -> None:
    """Fill each sentence's word_ids and token_spans (one encoder call for all of them)."""
    cuts = [split_at_mentions(sentence.text, sentence.mentions) for sentence in sentences]
    encoded = encoder.encode_groups([pieces for pieces, _ in cuts])
    for sentence, (_, boundary_piece), (ids, piece_starts) in zip(sentences, cuts, encoded):
        piece_starts.append(len(ids))   # a mention may end where the sentence does
        sentence.word_ids = ids
        sentence.token_spans = [(piece_starts[boundary_piece[m.start]],
                                 piece_starts[boundary_piece[m.end]])
                                for m in sentence.mentions]


def split_at_mentions(text: str, mentions: Sequence[Mention]) -> tuple[list[str], dict[int, int]]:
    """Pieces of `text` cut at every mention boundary, as MLukeTokenizer cuts them, and for
    each boundary the index of the piece it starts (its token position is the number of tokens
    of the pieces before)."""
    if not mentions:
        return [text], {}
    pieces: list[str] = []
    boundary_piece: dict[int, int] = {}
    cursor = 0
    for position in sorted({p for m in mentions for p in (m.start, m.end)}):
        cut = position - 1 if position > 0 and text[position - 1] == " " else position
        if cut != cursor:
            pieces.append(text[cursor:cut])
            cursor = cut
        boundary_piece[position] = len(pieces)
    pieces.append(text[cursor:])
    return pieces, boundary_piece


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
                   counts: Counter, prefix: str = "") -> list[Sentence]:
    """The page's sentences, whitespace collapsed, each with its mentions (before tokenizing);
    `prefix` (WordEncoder.sentence_prefix) goes before each sentence's text."""
    text = page["text"]
    links = page_links(page)
    counts["links"] += len(page["link_start"])
    counts["mentions_overlapping"] += len(page["link_start"]) - len(links)
    sentences, link_index = [], 0
    for start, end in sentence_spans(text, locale, [(s, e) for s, e, _ in links]):
        inside = []
        while link_index < len(links) and links[link_index][0] < end:
            inside.append(links[link_index])
            link_index += 1
        sentence = collapse_sentence(text[start:end], [(s - start, e - start, t)
                                                       for s, e, t in inside],
                                     entity_vocab, limits, counts)
        if sentence.text:
            sentences.append(with_prefix(sentence, prefix) if prefix else sentence)
    return sentences


def with_prefix(sentence: Sentence, prefix: str) -> Sentence:
    """The sentence with `prefix` before its text, its mentions moved along."""
    shift = len(prefix)
    return Sentence(prefix + sentence.text, [m._replace(start=m.start + shift, end=m.end + shift)
                                             for m in sentence.mentions])


def collapse_sentence(text: str, links: Sequence[tuple[int, int, str]],
                      entity_vocab: dict[str, int], limits: Limits,
                      counts: Counter) -> Sentence:
    """One sentence with runs of whitespace made one space, stripped, and its mentions resolved
    (a mention covers its anchor text without the anchor's outer whitespace)."""
    collapsed = " ".join(text.split())
    if not links:
        return Sentence(collapsed, [])
    # Collapsing shifts no character when it shortens nothing but the trailing whitespace (the
    # usual case: a sentence ends with the space before the next one).
    position = _collapsed_positions(text) if len(collapsed) != len(text.rstrip()) else int
    mentions: list[Mention] = []
    for start, end, target in links:
        anchor = text[start:end]
        entity = resolve_entity(anchor.strip(), target, entity_vocab, limits, counts)
        if entity is None:
            continue
        first = start + len(anchor) - len(anchor.lstrip())      # first non-space character
        last = start + len(anchor.rstrip()) - 1                 # last non-space character
        mentions.append(Mention(position(first), position(last) + 1, *entity, target))
    if len(mentions) > limits.max_entities:
        # The extra mentions become plain text; the sentence is tokenized without cuts there.
        counts["mentions_over_max_entities"] += len(mentions) - limits.max_entities
        mentions = mentions[:limits.max_entities]
    return Sentence(collapsed, mentions)


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


def keep_sentence(sentence: Sentence, encoder: WordEncoder, limits: Limits,
                  counts: Counter) -> bool:
    """Whether a tokenized sentence goes into packing (the reason counted when not)."""
    if encoder.special_text.search(sentence.text):
        reason = "sentences_with_special_text"
    elif encoder.unknown_id is not None and encoder.unknown_id in sentence.word_ids:
        reason = "sentences_with_unknown_characters"
    elif len(sentence.word_ids) < limits.min_sentence_tokens:
        reason = "sentences_too_short"
    elif len(sentence.word_ids) > limits.max_seq_length - 2:
        reason = "sentences_too_long"
    else:
        return True
    counts[reason] += 1
    counts["mentions_in_dropped_sentences"] += len(sentence.mentions)
    return False


def pack_sentences(sentences: Iterable[Sentence], limits: Limits) -> list[list[Sentence]]:
    """Greedy packing of consecutive sentences within the token and entity budgets."""
    packs: list[list[Sentence]] = []
    current: list[Sentence] = []
    tokens = entities = 0
    for sentence in sentences:
        if current and (tokens + len(sentence.word_ids) > limits.max_seq_length - 2
                        or entities + len(sentence.mentions) > limits.max_entities):
            packs.append(current)
            current, tokens, entities = [], 0, 0
        current.append(sentence)
        tokens += len(sentence.word_ids)
        entities += len(sentence.mentions)
    if current:
        packs.append(current)
    return packs


def make_example(page_id: int, pack: Sequence[Sentence], encoder: WordEncoder,
                 limits: Limits, counts: Counter) -> Example:
    """Join a pack's sentences with one space (or none where each carries its own leading
    space); token spans shift by the tokens before (+1 for <s>), and a mention longer than
    max_mention_length keeps its first tokens."""
    separator = "" if encoder.sentence_prefix else " "
    text_parts, mentions, starts, ends, word_ids = [], [], [], [], [encoder.bos_id]
    char_offset = 0
    for sentence in pack:
        token_offset = len(word_ids)
        for mention, (start, end) in zip(sentence.mentions, sentence.token_spans):
            mentions.append(Mention(mention.start + char_offset, mention.end + char_offset,
                                    mention.title, mention.entity_id, mention.target))
            if end - start > limits.max_mention_length:
                counts["mentions_truncated"] += 1
                end = start + limits.max_mention_length
            starts.append(start + token_offset)
            ends.append(end + token_offset)
        word_ids.extend(sentence.word_ids)
        text_parts.append(sentence.text)
        char_offset += len(sentence.text) + len(separator)
    word_ids.append(encoder.eos_id)
    return Example(page_id, separator.join(text_parts), tuple(mentions), tuple(word_ids),
                   tuple(starts), tuple(ends))


def examples_from_pages(pages: Sequence[dict], encoder: WordEncoder, locale: str,
                        entity_vocab: dict[str, int], limits: Limits,
                        counts: Counter, key_prefix: str = "") -> list[Example]:
    """All examples of the pages, in page order (tokenized in one backend call).
    `entity_vocab` maps the pages' link targets to entity ids; `key_prefix` is what comes
    before a title in the entity vocabulary's keys (`en:` in a build of several languages),
    so that each mention's title is its key in entity_vocab.json."""
    with cyclic_gc_paused():
        per_page = [page_sentences(p, locale, entity_vocab, limits, counts,
                                   encoder.sentence_prefix) for p in pages]
        if key_prefix:
            for sentence in (s for sentences in per_page for s in sentences):
                sentence.mentions = [m if m.title == UNK_TITLE else
                                     m._replace(title=key_prefix + m.title)
                                     for m in sentence.mentions]
        encode_sentences(encoder, [s for sentences in per_page for s in sentences])
        examples = []
        for page, sentences in zip(pages, per_page):
            counts["pages"] += 1
            counts["sentences"] += len(sentences)
            kept = [s for s in sentences if keep_sentence(s, encoder, limits, counts)]
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
            counts["entities"] += len(example.mentions)
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
