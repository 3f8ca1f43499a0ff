"""The examples stage's word encoder: ids cached per word equal transformers' ids for any text.

The proof is transformers' own MLukeTokenizer, loaded from the test build's tokenizer directory;
the encoder under test reads only its tokenizer.json, as the stage's workers do. Texts are
chosen where a per-word cache could go wrong: spaces at either end or doubled, a piece that is
only spaces, the normalizer's quote replacements, characters outside the vocabulary, emoji.
"""

from __future__ import annotations

import json
import random

import pytest

from corpus import word_encoder
from corpus.schema import TOKENIZER_DIR
from corpus.word_encoder import WordEncoder, cacheable, cut_pieces, words
from corpus.word_tokenizer import load_tokenizer

AWKWARD = ["", " ", "  ", "Paris", " Paris", "Paris ", "  Paris", "New  York", "a b  c   d ",
           "``quoted''", "it''s '' ``", "tab\there", "emoji 😀 and 中文 text", "ǅ ﬁ ½ Ⅻ",
           "x" * 300, " ".join(["zebra"] * 50), "München, (1990) — «quoted» ok.", "\u00a0nbsp",
           "東京は日本の首都です。", " 北京是中国的首都"]   # no spaces: one "word" each


@pytest.fixture(scope="module")
def tokenizer_and_json(en_corpus):
    directory = en_corpus / TOKENIZER_DIR
    return load_tokenizer(directory), directory / "tokenizer.json"


def transformers_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_built_tokenizer_has_the_cacheable_shape(tokenizer_and_json):
    _, path = tokenizer_and_json
    shape = json.loads(path.read_text())
    assert cacheable(shape)
    for change in ({"pre_tokenizer": {**shape["pre_tokenizer"], "prepend_scheme": "first"}},
                   {"pre_tokenizer": {**shape["pre_tokenizer"], "split": False}},
                   {"normalizer": {"type": "NFKC"}},
                   {"normalizer": {"type": "Replace", "pattern": {"String": "  "},
                                   "content": " "}},
                   {"model": {**shape["model"], "type": "BPE"}}):
        assert not cacheable({**shape, **change}), change


def test_words_stand_for_metaspace_pre_tokens():
    assert words("") == [] and words(" ") == [""] and words("a") == ["a"]
    assert words(" a b") == ["a", "b"] and words("a  b ") == ["a", "", "b", ""]


def test_cached_ids_equal_transformers_on_awkward_texts(tokenizer_and_json):
    tokenizer, path = tokenizer_and_json
    encoder = WordEncoder.from_file(path)
    assert encoder.use_cache
    expected = [transformers_ids(tokenizer, text) for text in AWKWARD]
    # Repeated, so that few of the call's words are new and it goes through the cache.
    assert encoder.encode(AWKWARD * 8) == expected * 8
    assert encoder.words_encoded > 0 and encoder.words_bypassed == 0
    assert encoder.encode(AWKWARD) == expected          # again, every word now from the cache
    assert encoder.words_bypassed == 0


def test_cached_groups_equal_transformers_piece_by_piece(tokenizer_and_json):
    """Groups cut from awkward texts, through the cache (repeated, so few words are new): a
    group's ids are its pieces' ids one after the other, each piece starting where it says."""
    tokenizer, path = tokenizer_and_json
    encoder = WordEncoder.from_file(path)
    groups = [AWKWARD[i:i + 3] for i in range(len(AWKWARD))]
    got = encoder.encode_groups(groups * 8)
    assert encoder.words_encoded > 0 and encoder.words_bypassed == 0
    for group, (ids, starts) in zip(groups * 8, got):
        pieces = [transformers_ids(tokenizer, piece) for piece in group]
        assert ids == [i for piece in pieces for i in piece]
        assert starts == [sum(map(len, pieces[:k])) for k in range(len(group))]


def test_groups_give_piece_starts(tokenizer_and_json):
    tokenizer, path = tokenizer_and_json
    encoder = WordEncoder.from_file(path)
    group = ["Born in", " Paris", " in 1990", ""]
    [(ids, starts)] = encoder.encode_groups([group])
    pieces = [transformers_ids(tokenizer, piece) for piece in group]
    assert ids == [i for piece in pieces for i in piece]
    assert starts == [sum(map(len, pieces[:k])) for k in range(len(group))]


def test_mostly_new_words_bypass_the_cache_and_warm_it(tokenizer_and_json):
    """A call with many words never seen (a cold start, or a language without spaces) encodes
    its texts directly, learns the words it repeats, and the next call uses them."""
    tokenizer, path = tokenizer_and_json
    encoder = WordEncoder.from_file(path)
    rng = random.Random(0)
    fresh = ["".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(200)]
    texts = [" ".join(fresh[i:i + 10]) + " the end" for i in range(0, 200, 10)]
    assert encoder.encode(texts) == [transformers_ids(tokenizer, t) for t in texts]
    assert encoder.words_bypassed == len(texts) * 12
    assert set(encoder.word_ids) == {"the", "end"}       # the repeated words, learned
    again = ["the end"] * 20
    assert encoder.encode(again) == [transformers_ids(tokenizer, t) for t in again]
    assert encoder.words_bypassed == len(texts) * 12     # this call used the cache


def test_a_full_cache_stays_bounded_and_exact(tokenizer_and_json, monkeypatch):
    tokenizer, path = tokenizer_and_json
    monkeypatch.setattr(word_encoder, "MAX_CACHED_WORDS", 3)
    encoder = WordEncoder.from_file(path)
    first = ["one two three"] * 10
    assert encoder.encode(first) == [transformers_ids(tokenizer, first[0])] * 10
    more = ["one two three four"] * 10 + ["one two three five"] * 10
    assert encoder.encode(more) == [transformers_ids(tokenizer, t) for t in more]
    assert set(encoder.word_ids) == {"one", "two", "three"}   # the first words stay
    assert encoder.words_bypassed == 0 and encoder.words_encoded == 5
    fresh = ["six seven eight nine"] * 2                        # bypassed, and no room to learn
    assert encoder.encode(fresh) == [transformers_ids(tokenizer, fresh[0])] * 2
    assert len(encoder.word_ids) == 3


def test_cache_and_backend_agree_on_every_piece_of_the_sample(en_corpus, tokenizer_and_json):
    """Every sentence piece the examples stage tokenizes on the English sample."""
    from collections import Counter

    from corpus.examples import page_sentences
    from corpus.inspect import CorpusView

    _, path = tokenizer_and_json
    view = CorpusView(en_corpus, "examples")
    [english] = view.corpus.examples.languages
    pieces = [piece for row in range(len(view.pages))
              for sentence in page_sentences(view.pages[row], english.locale,
                                             view.titles(english.language), view.limits,
                                             Counter())
              for piece in cut_pieces(sentence.text, sentence.cuts)[0]]
    cached, direct = WordEncoder.from_file(path), WordEncoder.from_file(path)
    direct.use_cache = False
    assert cached.encode(pieces * 2) == direct.encode(pieces * 2)
    assert cached.words_encoded > 0 and len(pieces) > 1000


def test_new_words_encoded_many_per_text_equal_one_by_one(tokenizer_and_json, monkeypatch):
    """New words go to the backend many per text and are split back by word_ids; the words
    that cannot be joined (the empty word, added-token text, "▁") go alone."""
    tokenizer, path = tokenizer_and_json
    monkeypatch.setattr(word_encoder, "WORDS_PER_TEXT", 7)
    sample = sorted({w for text in AWKWARD for w in words(text)})
    odd = ["", "<s>", "a<mask>b", "x\u2581y", "\u2581", "``", "it''s", "😀😀", "\t"]
    new = sample + odd
    encoder = WordEncoder.from_file(path)
    encoder._encode_into_cache(new)
    for word in new:
        assert list(encoder.word_ids[word]) == transformers_ids(tokenizer, " " + word), word
    joined = [w for w in sample if w][:7]
    [encoding] = encoder.backend.encode_batch([" ".join(joined)], add_special_tokens=False)
    assert word_encoder.ids_per_word(encoding, len(joined)) is not None   # the joined path ran
    assert word_encoder.ids_per_word(encoding, len(joined) + 1) is None   # a miscount is caught


# ------------------------------------------------------------------------ byte-level BPE

@pytest.fixture(scope="module")
def byte_level_tokenizer(roberta_corpus):
    directory = roberta_corpus / TOKENIZER_DIR
    return load_tokenizer(directory), directory / "tokenizer.json"


def test_byte_level_bpe_is_cached_by_keys_that_carry_their_space(byte_level_tokenizer):
    from corpus.word_encoder import byte_level_keys

    _, path = byte_level_tokenizer
    assert cacheable(json.loads(path.read_text())) == "byte_level"
    assert byte_level_keys(" Paris is") == [" Paris", " is"]
    assert byte_level_keys("Paris's x") == ["Paris's", " x"]


def test_byte_level_cached_ids_equal_transformers(byte_level_tokenizer, sample_lines):
    """LukeTokenizer's ids on the awkward texts (runs of spaces and tabs go to the backend
    whole) and on every clean sentence of the sample with the build's leading space, cold and
    then from the cache."""
    tokenizer, path = byte_level_tokenizer
    texts = AWKWARD + ["Paris's", "'s", " 'tis the", "x \t y", "a\tb  c"] + [
        " " + " ".join(line.split()) for line in sample_lines]
    expected = [transformers_ids(tokenizer, text) for text in texts]
    encoder = WordEncoder.from_file(path)
    assert encoder.cache_mode == "byte_level" and encoder.sentence_prefix == " "
    assert encoder.encode(texts) == expected
    assert encoder.words_encoded > 0 and encoder.encode(texts) == expected


# A sentence cut at its mentions' starts and ends, as the examples stage gives it: cuts at a
# space, inside a word (before punctuation, in a word's middle), at both ends of the text,
# two at one position (adjacent mentions), a mention across a space with both ends inside words.
CUT_TEXTS = [("Estonia is in Europe.", [0, 7, 14, 20]),
             ("un-Estonian affairs, Estonia.", [3, 11, 21, 28]),
             ("EstoniaEstonia twice", [0, 7, 7, 14]),
             ("Go to Estonia", [6, 13]),
             ("a", [0, 1]),
             ("abcdef ghi", [1, 2, 2, 4, 5, 8]),
             ("``Estonia'' said", [2, 9]),
             ("tab\there x", [4, 8]),
             ("no mentions at all", [])]
# Not single-spaced (a leading or trailing space, a run of spaces, an empty text): cut as pieces.
IRREGULAR_CUT_TEXTS = [(" Paris is", [1, 6]), ("two  spaces here", [5, 16]), ("end ", [0, 3]),
                       ("", [])]


def ids_of_pieces(tokenizer, text: str, cuts: list[int]) -> tuple[list[int], list[int]]:
    """MLukeTokenizer's ids of a text cut at `cuts` (each piece tokenized alone) and the token
    position where each cut starts."""
    pieces, piece_of = cut_pieces(text, cuts)
    ids, starts = [], []
    for piece in pieces:
        starts.append(len(ids))
        ids += transformers_ids(tokenizer, piece)
    starts.append(len(ids))
    return ids, [starts[piece] for piece in piece_of]


@pytest.mark.parametrize("cases", [CUT_TEXTS, IRREGULAR_CUT_TEXTS, CUT_TEXTS + IRREGULAR_CUT_TEXTS])
def test_cut_texts_get_the_ids_of_their_pieces(tokenizer_and_json, cases):
    """encode_cut as words with spaces put in at cuts inside words (single-spaced texts), or as
    pieces, cold (most words new: the pieces, uncached) and warm (through the cache)."""
    tokenizer, path = tokenizer_and_json
    texts, cuts = [text for text, _ in cases] * 3, [positions for _, positions in cases] * 3
    expected = [ids_of_pieces(tokenizer, text, positions) for text, positions in zip(texts, cuts)]
    encoder = WordEncoder.from_file(path)
    assert encoder.encode_cut(texts, cuts) == expected
    bypassed = encoder.words_bypassed
    assert encoder.encode_cut(texts, cuts) == expected
    assert encoder.words_bypassed == bypassed                 # the second call used the cache
    assert WordEncoder.from_file(path).encode_cut([], []) == []
    direct = WordEncoder.from_file(path)
    direct.use_cache = False                                  # as bench-tokenize's uncached pass
    assert direct.encode_cut(texts, cuts) == expected
    assert direct.words_looked_up == 0 and not direct.word_ids


def test_words_cut_puts_a_space_only_inside_words():
    from corpus.word_encoder import _words_cut

    assert _words_cut("ab cd", [0, 2, 3, 5]) == ("ab cd", [0, 1, 1, 2])
    assert _words_cut("abcd, e", [1, 4, 4]) == ("a bcd , e", [1, 2, 2])
    assert _words_cut("x", []) == ("x", [])
