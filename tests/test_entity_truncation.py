"""pretrain/entity_truncation.py: texts and entity spans cut to a token budget before the
tokenizer call, which transformers 5's LUKE tokenizers cannot truncate themselves.

On the corpus's own tokenizer (MLukeTokenizer, sentencepiece) and on a LukeTokenizer (byte-level
BPE, trained here on a few sentences), through their real calls: the cut text's tokens are the
first tokens of the whole text, every span that fits keeps its token positions, the others are
dropped and counted."""

from __future__ import annotations

import json

import pytest

from pretrain.entity_truncation import fit_all, fit_to_length, token_count

SENTENCE = "Tallinn is the capital of Estonia, and Tartu lies on the Emajõgi river. "
TEXT = SENTENCE * 12
# Tallinn, Estonia and Tartu in every sentence.
SPANS = [(i * len(SENTENCE) + start, i * len(SENTENCE) + end)
         for i in range(12) for start, end in ((0, 7), (26, 33), (39, 44))]


@pytest.fixture(scope="module")
def mluke(en_corpus):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(en_corpus / "tokenizer")


@pytest.fixture(scope="module")
def luke(tmp_path_factory):
    """A LukeTokenizer directory as a RoBERTa-based corpus would ship one: byte-level BPE
    vocab.json and merges.txt, entity_vocab.json, tokenizer_config.json naming the class."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoTokenizer

    directory = tmp_path_factory.mktemp("luke_tokenizer")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([SENTENCE, "The Estonian kroon was pegged to the euro."] * 20,
                            vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(directory))
    (directory / "entity_vocab.json").write_text(json.dumps(
        {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3, "Tallinn": 4}))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LukeTokenizer"}))
    return AutoTokenizer.from_pretrained(directory)


@pytest.fixture(params=["mluke", "luke"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


def test_truncation_with_entity_spans_fails_in_transformers(tokenizer):
    """The pitfall itself (README, troubleshooting). When this stops raising, transformers
    truncates with entity spans again: revise the README's entry."""
    with pytest.raises(AttributeError, match="truncate_sequences"):
        tokenizer(TEXT, entity_spans=SPANS[:2], truncation=True, max_length=16)


def test_cut_keeps_the_first_tokens_and_every_span_that_fits(tokenizer):
    full = tokenizer(TEXT, entity_spans=SPANS, max_entity_length=len(SPANS))
    max_length = len(full["input_ids"]) // 3
    fitted = fit_to_length(tokenizer, TEXT, SPANS, max_length, max_entity_length=len(SPANS))
    assert fitted.cut and TEXT.startswith(fitted.text) and fitted.text[-1] != " "
    assert fitted.kept == [i for i, (_, end) in enumerate(SPANS) if end <= len(fitted.text)]
    assert fitted.entity_spans == [SPANS[i] for i in fitted.kept]
    assert 0 < len(fitted.kept) < len(SPANS) and fitted.dropped == len(SPANS) - len(fitted.kept)
    cut = tokenizer(fitted.text, entity_spans=fitted.entity_spans)
    length = len(cut["input_ids"])
    assert length <= max_length
    # The next word would not have fitted: the cut is as long as the budget allows.
    longer = TEXT[:TEXT.index(" ", len(fitted.text) + 1)]
    assert token_count(tokenizer, longer, fitted.entity_spans) > max_length
    # Same ids as the whole text's first tokens (</s> aside), same positions for kept spans.
    assert cut["input_ids"][:-1] == full["input_ids"][:length - 1]
    assert cut["entity_position_ids"] == [full["entity_position_ids"][i] for i in fitted.kept]


def test_a_text_that_fits_is_left_alone(tokenizer):
    fitted = fit_to_length(tokenizer, SENTENCE, SPANS[:3], max_length=512)
    assert (fitted.text, fitted.entity_spans, fitted.kept) == (SENTENCE, SPANS[:3], [0, 1, 2])
    assert not fitted.cut and fitted.dropped == 0


def test_a_span_across_the_cut_is_dropped(mluke):
    text = "Tallinn is the capital of Estonia and of Harju County in the north."
    spans = [(0, 7), (text.index("Harju"), text.index(" in"))]  # "Harju County"
    cut = text.index(" County")
    budget = token_count(mluke, text[:cut], [(0, 7)])            # up to "Harju"
    fitted = fit_to_length(mluke, text, spans, budget)
    assert fitted.text == text[:cut] and fitted.kept == [0] and fitted.dropped == 1


def test_spans_beyond_max_entity_length_are_dropped(mluke):
    assert mluke.max_entity_length == 32                        # the export writes the corpus's
    fitted = fit_to_length(mluke, TEXT, SPANS, max_length=512)
    assert not fitted.cut and fitted.kept == list(range(32)) and fitted.dropped == 4
    encoded = mluke(fitted.text, entity_spans=fitted.entity_spans, padding="max_length",
                    max_length=512)
    assert len(encoded["entity_ids"]) == 32


def test_single_span_tasks_keep_their_span_or_none(en_corpus, mluke):
    from transformers import AutoTokenizer

    typing = AutoTokenizer.from_pretrained(en_corpus / "tokenizer", task="entity_classification")
    far = [(len(TEXT) - len(SENTENCE) + 26, len(TEXT) - len(SENTENCE) + 33)]
    fitted = fit_to_length(typing, TEXT, far, max_length=40)
    assert fitted.cut and fitted.kept == [] and fitted.dropped == 1
    near = fit_to_length(typing, TEXT, [(26, 33)], max_length=40)
    assert near.kept == [0]
    # The two <ent> markers around the span count toward the budget.
    marked = typing(near.text, entity_spans=near.entity_spans)["input_ids"]
    plain = mluke(near.text, entity_spans=near.entity_spans)["input_ids"]
    assert len(marked) == len(plain) + 2 <= 40


def test_a_text_without_spaces_is_cut_between_characters(mluke):
    text = "TallinnEstoniaTartu" * 20            # as a script without spaces is written
    fitted = fit_to_length(mluke, text, [(0, 7), (len(text) - 5, len(text))], max_length=30)
    assert fitted.cut and text.startswith(fitted.text) and fitted.kept == [0]
    assert len(mluke(fitted.text, entity_spans=fitted.entity_spans)["input_ids"]) <= 30


def test_fit_all_warns_once_with_the_totals(mluke):
    with pytest.warns(UserWarning, match=r"1 of 2 texts cut to 40 tokens; \d+ of 39 entity"):
        fitted = fit_all(mluke, [TEXT, SENTENCE], [SPANS[:36], SPANS[:3]], max_length=40)
    assert [f.cut for f in fitted] == [True, False]
