"""Word ids exactly as the exported transformers tokenizer computes them, fast.

The examples stage must produce the ids `MLukeTokenizer` gives (one id mapping everywhere:
the ids a model trains on are the ids its exported tokenizer gives), and tokenization must not
be the slow stage of the build. The tokenizers backend alone runs 2 to 4 MB of text per second
on one core; most of a sentence is words the worker has already seen many times. So ids are
cached per word, and only words not seen before go to the backend.

Why that is exact, not an approximation: the backend of an MLukeTokenizer written by
corpus.word_tokenizer is normalizer = string replacements (``` `` ``` and `''` to `"`), then
pre-tokenizer = `Metaspace(replacement="▁", prepend_scheme="always", split=True)`, then a
Unigram model applied to each pre-token on its own. Metaspace turns every space into "▁",
prepends one "▁" unless the text already starts with it, and splits before every "▁". So the
pre-tokens of a text are exactly "▁" + w for each space-separated word w (a leading space
standing in for the prepended "▁"), the replacements never span a space, and the ids of a text
are the concatenation of the ids of `" " + w` for its words. `cacheable` checks the backend has
that shape.

Byte-level BPE (a RoBERTa-family base model's `LukeTokenizer`: ByteLevel pre-tokenizer with
GPT-2's split pattern, a BPE model, no normalizer) is cacheable too, keyed differently: the
pattern's pre-tokens take a space only at their start (` ?` before a run of letters, digits
or punctuation) or in runs of whitespace that stop before the next word, so a space followed
by a non-space character always begins a pre-token. In a text whose whitespace is single
spaces (the build's collapsed sentences), the ids are the concatenation of the ids of its
keys: the first word as it stands, then " " + w for each later word, each encoded alone. A
text with any other whitespace (tabs, runs of spaces, where a whitespace pre-token can end
inside a run) is encoded whole, uncached.
Any other tokenizer is encoded text by text without the cache.

A sentence is tokenized cut at its mentions' starts and ends (`encode_cut`), each piece on its
own. With Metaspace the pieces' pre-tokens are the sentence's words, a word cut inside being
two: so a batch of single-spaced sentences, with a space put in at each cut inside a word, is
split into words once (by Arrow), its distinct words looked up in the cache once, and each
sentence is the ids of its words (gathered by numpy).
Added tokens (`<s>`, `<mask>`, ...) are cut out of the text before all this; the examples
stage drops every sentence holding their text (examples.kept_sentences), so that never matters.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from itertools import accumulate, chain
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

METASPACE = "\u2581"
# Words cached per worker: on Wikipedia text a few hundred thousand words cover nearly all
# running words, and 500,000 of them hold ~100 MB. Once full, new words are encoded but not kept.
MAX_CACHED_WORDS = 500_000
# A call whose new (uncached) distinct words exceed this share of its running words encodes its
# texts directly: measured on real English text without this bypass, the cache ran 1.39x the
# backend with no word made unique, 1.04x at 5% unique words, 0.91x at 25%, 0.56x at 100%.
MAX_NEW_WORD_SHARE = 0.25
# New words per text sent to the backend (see _encode_into_cache); 100-300 measured alike.
WORDS_PER_TEXT = 200


def cacheable(tokenizer_json: dict) -> str | None:
    """How ids may be cached per word for this backend (module docstring): "metaspace",
    "byte_level", or None when they may not."""
    if not _replacements_within_words(tokenizer_json.get("normalizer")):
        return None
    pre = tokenizer_json.get("pre_tokenizer") or {}
    model = (tokenizer_json.get("model") or {}).get("type")
    if (pre.get("type") == "Metaspace" and pre.get("replacement") == METASPACE
            and pre.get("split") is True and pre.get("prepend_scheme") == "always"
            and model == "Unigram"):
        return "metaspace"
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and model == "BPE":
        return "byte_level"
    return None


def _replacements_within_words(normalizer: dict | None) -> bool:
    """Whether the normalizer only replaces strings that hold no space (or there is none)."""
    steps = [] if normalizer is None else (normalizer.get("normalizers", [])
                                           if normalizer.get("type") == "Sequence"
                                           else [normalizer])
    for step in steps:
        pattern = (step.get("pattern") or {}).get("String")
        if step.get("type") != "Replace" or pattern is None or " " in pattern + step["content"]:
            return False
    return True


def _has_pre_tokenizer(config: dict, kind: str) -> bool:
    pre = config.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(step.get("type") == kind for step in steps)


def _unknown_id_if_not_unk(config: dict) -> int | None:
    """The id a Unigram model gives unknown characters, when that id is not `<unk>`: in
    transformers 5.24 MLukeTokenizer always uses id 0, which in fairseq's layout (an XLM-R
    vocabulary) is `<s>`. A sentence holding it would teach the model `<s>` for an unknown
    character, so the examples stage drops such sentences. None when unknowns are `<unk>`
    (or cannot occur: byte-level BPE)."""
    model = config.get("model") or {}
    if model.get("type") != "Unigram" or model.get("unk_id") is None:
        return None
    unk_id = model["unk_id"]
    return None if model["vocab"][unk_id][0] == "<unk>" else unk_id


def words(text: str) -> list[str]:
    """The space-separated words whose pre-tokens make up `text` (one "" per extra space): the
    rule WordEncoder._metaspace_groups applies to many texts at once."""
    if not text:
        return []
    parts = text.split(" ")
    return parts[1:] if text[0] == " " else parts


def cut_pieces(text: str, positions: Sequence[int]) -> tuple[list[str], list[int]]:
    """`text` cut at ascending character positions as MLukeTokenizer cuts a text at its entity
    spans (a space before a position goes with the piece after it), and for each position the
    index of the piece it starts."""
    pieces: list[str] = []
    piece_of: list[int] = []
    cursor = 0
    for position in positions:
        cut = position - 1 if position > 0 and text[position - 1] == " " else position
        if cut != cursor:
            pieces.append(text[cursor:cut])
            cursor = cut
        piece_of.append(len(pieces))
    pieces.append(text[cursor:])
    return pieces, piece_of


def _single_spaced(text: str) -> bool:
    """Whether `text` is words joined by single spaces (no space at either end, not empty)."""
    return bool(text) and text[0] != " " and text[-1] != " " and "  " not in text


def _words_cut(text: str, positions: Sequence[int]) -> tuple[str, list[int]]:
    """A single-spaced `text` cut at `positions` for a Metaspace backend, as words: the text
    with a space put in at each position inside a word (the text itself when there is none),
    and for each position the index of the word that starts there. (A piece of cut_pieces is
    words, the first with its space when the cut was at one; so the pre-tokens of the pieces
    are the words around the cuts, a word cut in two being two.)"""
    parts, indices, cursor = [], [], 0
    end = len(text)
    for position in positions:
        if position == end:
            indices.append(text.count(" ") + len(parts) + 1)
            continue
        if position != cursor and text[position - 1] != " " and text[position] != " ":
            parts.append(text[cursor:position])     # position > 0: cursor starts at 0
            cursor = position
        # the spaces before the word that starts at `position`: those of the text up to it
        # (and the one at it, where a word ends there) and those put in up to it
        indices.append(text.count(" ", 0, position + 1) + len(parts))
    if not parts:
        return text, indices
    parts.append(text[cursor:])
    return " ".join(parts), indices


class CutIds(NamedTuple):
    """Texts' ids as arrays (WordEncoder.encode_cut_arrays): text i's ids are
    ids[bounds[i]:bounds[i + 1]], and positions[i] the token position of each of its cuts."""
    ids: np.ndarray            # int32
    bounds: np.ndarray         # int64, one more than there are texts
    positions: list[list[int]]


def _as_arrays(encoded: list[tuple[list[int], list[int]]]) -> CutIds:
    """encode_cut's lists as CutIds."""
    bounds = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(ids) for ids, _ in encoded], out=bounds[1:])
    ids = np.fromiter(chain.from_iterable(ids for ids, _ in encoded), np.int32, int(bounds[-1]))
    return CutIds(ids, bounds, [positions for _, positions in encoded])


def _indices_of_none(values: list) -> list[int]:
    """The indices of the Nones in `values`, found by list.index (a scan in C per None)."""
    indices, index = [], -1
    with contextlib.suppress(ValueError):
        while True:
            index = values.index(None, index + 1)
            indices.append(index)
    return indices


def byte_level_keys(text: str) -> list[str]:
    """The cache keys of a text for byte-level BPE: its first word as it stands, then each
    later word with the space before it."""
    parts = text.split(" ")
    keys = [" " + part for part in parts[1:]]
    return keys if not parts[0] else [parts[0], *keys]


# Whitespace a byte-level key split cannot take: anything but single spaces.
_IRREGULAR_SPACE = re.compile(r"[^\S ]|  ")


def ids_per_word(encoding, words: int) -> list[tuple[int, ...]] | None:
    """The token ids of an encoded text of `words` words, word by word, or None unless its
    word_ids are one run per word, in order (0, 0, 1, 2, 2, ...): they start at 0, end at
    words - 1 and step by 0 or 1 (found with numpy, not a Python step per token)."""
    word_ids = encoding.word_ids
    if not word_ids or None in word_ids or word_ids[0] != 0 or word_ids[-1] != words - 1:
        return None
    steps = np.diff(np.asarray(word_ids, dtype=np.int64))
    if ((steps != 0) & (steps != 1)).any():
        return None
    bounds = [0, *(np.flatnonzero(steps) + 1).tolist(), len(word_ids)]
    ids = encoding.ids
    return [tuple(ids[start:end]) for start, end in zip(bounds, bounds[1:])]


class WordEncoder:
    """Token ids exactly as the transformers tokenizer computes them, many texts per call."""

    def __init__(self, tokenizer):
        """From a loaded MLukeTokenizer (inspect, tests): its fast backend and special ids."""
        self._use(tokenizer.backend_tokenizer, list(tokenizer.added_tokens_encoder),
                  tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id)

    @classmethod
    def from_file(cls, tokenizer_json: str) -> "WordEncoder":
        """From a tokenizer directory's tokenizer.json with the tokenizers library alone: no
        transformers (whose import pulls in torch, seconds per worker process). The backend is
        the one MLukeTokenizer wraps; <s> and </s> are added around each sequence as it does
        (examples.make_example), and tests/test_examples.py holds the ids equal to
        transformers'."""
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(tokenizer_json))
        encoder = cls.__new__(cls)
        encoder._use(backend, [t.content for t in backend.get_added_tokens_decoder().values()],
                     backend.token_to_id("<unk>"), backend.token_to_id("<s>"),
                     backend.token_to_id("</s>"))
        return encoder

    def _use(self, backend, special_tokens: list[str], unk_id: int, bos_id: int,
             eos_id: int) -> None:
        self.backend = backend
        self.unk_id, self.bos_id, self.eos_id = unk_id, bos_id, eos_id
        config = json.loads(backend.to_str())
        byte_level = _has_pre_tokenizer(config, "ByteLevel")
        # A sentencepiece word splits at its metaspace mark; byte-level BPE maps it like any
        # other character.
        special = sorted(special_tokens, key=len, reverse=True) + ([] if byte_level
                                                                   else [METASPACE])
        self.special_text = re.compile("|".join(re.escape(s) for s in special))
        # Then a whitespace-collapsed sentence holds special text only where its page does.
        self.special_text_in_words = not any(c.isspace() for s in special for c in s)
        self.cache_mode = cacheable(config)
        self.use_cache = self.cache_mode is not None
        # Byte-level BPE reads a space as part of the word after it ("Ġword"): a sentence is
        # tokenized, and stored, with its leading space, so that the ids of sentences joined
        # in an example are the ids of each sentence one after the other. Metaspace puts the
        # mark before the first word itself: sentences are joined with one space.
        self.sentence_prefix = " " if byte_level else ""
        self.unknown_id = _unknown_id_if_not_unk(config)
        self.word_ids: dict[str, tuple[int, ...]] = {}
        # for the benchmark: running words seen, new words encoded, words of bypassing calls
        self.words_looked_up = self.words_encoded = self.words_bypassed = 0

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text (no <s>/</s>)."""
        return [ids for ids, _ in self.encode_groups([[text] for text in texts])]

    def encode_cut(self, texts: Sequence[str], cuts: Sequence[Sequence[int]]
                   ) -> list[tuple[list[int], list[int]]]:
        """For each text, cut at its character positions `cuts` (ascending, repeats allowed:
        a sentence's mention starts and ends) as MLukeTokenizer cuts it (cut_pieces): its ids,
        and the token position where each cut position starts."""
        encoded = self.encode_cut_arrays(texts, cuts)
        flat, bounds = encoded.ids.tolist(), encoded.bounds.tolist()
        return list(zip(map(flat.__getitem__, map(slice, bounds[:-1], bounds[1:])),
                        encoded.positions))

    def encode_cut_arrays(self, texts: Sequence[str], cuts: Sequence[Sequence[int]]
                          ) -> CutIds:
        """encode_cut as arrays: every text's ids one after the other, where each text's
        start, and the token positions of its cuts (the examples stage packs and stores the
        ids as arrays, never as a Python int per token)."""
        if not texts:
            return CutIds(np.zeros(0, np.int32), np.zeros(1, np.int64), [])
        if self.use_cache and self.cache_mode == "metaspace":
            joined = " ".join(texts)
            # Every text single-spaced: no space at either end and no run of two (an empty
            # text or a space at a text's end makes a run where the texts are joined).
            if joined and joined[0] != " " and joined[-1] != " " and "  " not in joined:
                return self._metaspace_cut(texts, cuts)
        return _as_arrays(self._cut_by_pieces(texts, cuts))

    def _metaspace_cut(self, texts: Sequence[str], cuts: Sequence[Sequence[int]]) -> CutIds:
        """encode_cut_arrays for single-spaced texts. A space is put at every cut inside a word
        (_words_cut). The texts are split into words, and the words told apart, by Arrow's
        kernels; only the distinct words are looked up in the cache (on English, a sixth of the
        running words of 256 pages, a quarter of 64), and each running word's ids are gathered
        by numpy: a Python step per running word (split, lookup, join) was half the examples
        stage."""
        with_cuts = [index for index, positions in enumerate(cuts) if positions]
        cut_texts, word_of = list(texts), []
        for index in with_cuts:
            cut_texts[index], starts = _words_cut(texts[index], cuts[index])
            word_of.append(starts)
        split = pc.split_pattern(pa.array(cut_texts, pa.string()), " ")
        words = pc.dictionary_encode(split.flatten())
        distinct = words.dictionary.to_pylist()
        occurrences = words.indices.to_numpy()
        per_word = list(map(self.word_ids.get, distinct))
        missing = _indices_of_none(per_word)
        new = self._new_words(len(occurrences), {distinct[i] for i in missing},
                              lambda: dict(zip(distinct, np.bincount(occurrences).tolist())))
        if new is None:                      # too many new words: the pieces, uncached
            return _as_arrays(self._cut_by_pieces(texts, cuts, cached=False))
        self._encode_into_cache(new)
        for index in missing:
            per_word[index] = self.word_ids[distinct[index]]
        self._forget_if_full(new)
        # the token ids of every running word, one after the other: each occurrence's ids are
        # those of its distinct word, found in `tokens` from that word's first token
        lengths = np.fromiter(map(len, per_word), np.int64, len(per_word))
        tokens = np.fromiter(chain.from_iterable(per_word), np.int32, int(lengths.sum()))
        occurrence_lengths = lengths[occurrences]
        before = np.zeros(len(occurrences) + 1, np.int64)      # tokens before each occurrence
        np.cumsum(occurrence_lengths, out=before[1:])
        first_token = np.cumsum(lengths) - lengths
        shift = np.repeat(before[:-1] - first_token[occurrences], occurrence_lengths)
        flat = tokens[np.arange(before[-1]) - shift]
        # each text's words, from its first to its last + 1, and the tokens before each word
        word_bounds = split.offsets.to_numpy()
        positions: list[list[int]] = [[] for _ in texts]
        if with_cuts:
            counts = list(map(len, word_of))
            first_word = np.repeat(word_bounds[with_cuts], counts)
            cut_words = first_word + np.fromiter(chain.from_iterable(word_of), np.int64,
                                                 sum(counts))
            cut_tokens = (before[cut_words] - before[first_word]).tolist()
            ends = list(accumulate(counts))
            for index, stop, count in zip(with_cuts, ends, counts):
                positions[index] = cut_tokens[stop - count:stop]
        return CutIds(flat, before[word_bounds], positions)

    def _cut_by_pieces(self, texts: Sequence[str], cuts: Sequence[Sequence[int]],
                       cached: bool = True) -> list[tuple[list[int], list[int]]]:
        """encode_cut for any texts: each cut into pieces, the pieces encoded as groups."""
        split = [cut_pieces(text, positions) for text, positions in zip(texts, cuts)]
        groups = [pieces for pieces, _ in split]
        if cached:
            encoded = self.encode_groups(groups)
        else:
            encoded = self._groups_text_by_text(groups, [t for g in groups for t in g], None)
        out = []
        for (_, piece_of), (ids, piece_starts) in zip(split, encoded):
            piece_starts.append(len(ids))   # a cut may be where the text ends
            out.append((ids, [piece_starts[piece] for piece in piece_of]))
        return out

    def encode_groups(self, groups: Sequence[Sequence[str]]) -> list[tuple[list[int], list[int]]]:
        """For each group of texts (a sentence cut at its mention boundaries): the ids of its
        texts one after the other, and the token position where each text starts.

        MLukeTokenizer maps the backend's tokens to ids with convert_tokens_to_ids, which
        differs from the backend's own ids only for an added token with lstrip (" <mask>"
        becomes <unk>); sentences holding special-token text are dropped
        (examples.kept_sentences), so for every kept sentence these are its ids."""
        texts = [text for group in groups for text in group]
        keys = self._keys(texts) if self.use_cache else None
        new = (self._new_words(len(keys), set(keys).difference(self.word_ids),
                               lambda: Counter(keys)) if self.use_cache else None)
        if new is not None and self.cache_mode == "metaspace":
            self._encode_into_cache(new)
            out = self._metaspace_groups(groups, texts, keys)
        else:
            out = self._groups_text_by_text(groups, texts, new)
        if new is not None:
            self._forget_if_full(new)
        return out

    def _forget_if_full(self, new: list[str]) -> None:
        if len(self.word_ids) > MAX_CACHED_WORDS:
            for word in new:   # full: keep the words seen first (the frequent ones), not these
                del self.word_ids[word]

    def _groups_text_by_text(self, groups: Sequence[Sequence[str]], texts: list[str],
                             new: list[str] | None) -> list[tuple[list[int], list[int]]]:
        """encode_groups for the byte-level cache (`new`: its uncached keys) or, when `new` is
        None, without the cache: each text's ids in turn."""
        if new is None:
            next_ids = iter(self._backend_ids(texts)).__next__
            ids_of = lambda text: next_ids()   # the texts come back in the order sent
        else:
            ids_of = self._byte_level_ids(new, texts)
        out = []
        for group in groups:
            ids: list[int] = []
            starts = []
            for text in group:
                starts.append(len(ids))
                ids.extend(ids_of(text))
            out.append((ids, starts))
        return out

    def _metaspace_groups(self, groups: Sequence[Sequence[str]], texts: list[str],
                          running: list[str]) -> list[tuple[list[int], list[int]]]:
        """encode_groups with every word of `running` (the texts' words, joined and split
        once) in the cache: the words are looked up in one pass and their ids joined once, and
        each group is a slice of that, where a lookup and a join per text cost a third of the
        examples stage."""
        per_word = list(map(self.word_ids.__getitem__, running))
        word_counts = [text.count(" ") + 1 for text in texts]
        first = 0
        for text, count in zip(texts, word_counts):
            # A leading space is the "▁" Metaspace prepends anyway: the "" split off before
            # it is no pre-token (nor is an empty text's one "").
            if not text or text[0] == " ":
                per_word[first] = ()
            first += count
        before = list(accumulate(map(len, per_word), initial=0))  # tokens before each word
        flat = list(chain.from_iterable(per_word))
        out, word, counts = [], 0, iter(word_counts)
        for group in groups:
            group_start, starts = before[word], []
            for _ in group:
                starts.append(before[word] - group_start)
                word += next(counts)
            out.append((flat[group_start:before[word]], starts))
        return out

    def _keys(self, texts: list[str]) -> list[str]:
        """The cache keys of every text, in order (module docstring)."""
        if self.cache_mode == "metaspace":
            # One split of everything: a set difference in C rather than a loop per word. A ""
            # among them (from a leading space) is encoded needlessly but harmlessly.
            return " ".join(texts).split(" ")
        return [key for text in texts if not _IRREGULAR_SPACE.search(text)
                for key in byte_level_keys(text)]

    def _new_words(self, running: int, new: set[str], repeats: Callable[[], Mapping[str, int]]
                   ) -> list[str] | None:
        """The `new` words (not in the cache) of `running` running words, as a list, or None
        when so many are new that encoding them into the cache would cost more than encoding
        the texts (a cold start, or a language written without spaces, where a "word" is a
        phrase). `repeats()`: how often each word runs, asked for only then."""
        self.words_looked_up += running
        if len(new) > MAX_NEW_WORD_SHARE * running:
            # Still learn the new words this call repeats, so that a cold cache warms up
            # (on English the first batch of pages has about a quarter of its words new).
            repeated = repeats()
            room = max(0, MAX_CACHED_WORDS - len(self.word_ids))
            self._encode_into_cache([w for w in new if repeated[w] > 1][:room])
            self.words_bypassed += running
            return None
        return list(new)

    def _byte_level_ids(self, new: list[str], texts: list[str]):
        """Encode the new keys in one backend call, into the cache; a function from a text to
        its ids by the cache (texts with other whitespace than single spaces are encoded
        whole, in one more call)."""
        self._encode_into_cache(new)
        get = self.word_ids.__getitem__
        irregular = [text for text in texts if _IRREGULAR_SPACE.search(text)]
        whole = dict(zip(irregular, self._backend_ids(irregular))) if irregular else {}

        def ids_of(text: str):
            if text in whole:
                return whole[text]
            return chain.from_iterable(map(get, byte_level_keys(text))) if text else ()
        return ids_of

    def _encode_into_cache(self, new: list[str]) -> None:
        """Put the ids of each new word into the cache.

        Words go to the backend as texts of WORDS_PER_TEXT words each, and each text's tokens
        are split back into words by the Encoding's word_ids (one word per pre-token): half the
        cost of one input per word, measured. A text whose word_ids do not come out as exactly
        one run per word, in order, is encoded word by word instead; so are the empty word (a
        lone "▁", which a text would fold into the prepended one) and words holding an added
        token's text or "▁" (cut out of, or split within, a word)."""
        if not new:
            return
        cache = self.word_ids
        if self.cache_mode == "byte_level":     # a key is its own text; see the docstring
            cache.update(zip(new, map(tuple, self._backend_ids(new))))
            self.words_encoded += len(new)
            return
        alone = [w for w in new if not w or self.special_text.search(w)]
        joinable = [w for w in new if w and not self.special_text.search(w)]
        chunks = [joinable[i:i + WORDS_PER_TEXT] for i in range(0, len(joinable), WORDS_PER_TEXT)]
        encodings = self.backend.encode_batch([" ".join(chunk) for chunk in chunks],
                                              add_special_tokens=False) if chunks else []
        for chunk, encoding in zip(chunks, encodings):
            per_word = ids_per_word(encoding, len(chunk))
            if per_word is None:
                alone += chunk
            else:
                cache.update(zip(chunk, per_word))
        # " " + w: the pre-token "▁w" alone, also for w == "" (a lone "▁")
        cache.update(zip(alone, map(tuple, self._backend_ids([" " + w for w in alone]))))
        self.words_encoded += len(new)

    def _backend_ids(self, texts: Sequence[str]) -> list[list[int]]:
        # encode_batch_fast: the same ids without character offsets, about twice as fast.
        return [e.ids for e in self.backend.encode_batch_fast(list(texts),
                                                              add_special_tokens=False)]
