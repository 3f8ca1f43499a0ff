"""Masking: exact unit counts, statistical 80/10/10 rates, whole words, label layout, rng keys.

Plain arrays with a small synthetic vocabulary: ids 0-3 are specials, every third id from 4
starts a word, the rest continue one. The statistical tests draw thousands of units; their
tolerances are several standard deviations wide, and the seeds are fixed, so they never flake.
"""

import numpy as np
import pytest

from pretrain.masking import (IGNORE_INDEX, MaskingConfig, eval_masking_rng, mask_entities,
                              mask_words, masking_rng, word_unit_ids)

VOCAB = 60
MASK_ID = VOCAB - 1
BOS, EOS = 2, 3
MASKABLE = np.arange(VOCAB) >= 4
MASKABLE[MASK_ID] = False
WORD_START = MASKABLE & ((np.arange(VOCAB) - 4) % 3 == 0)
CFG = MaskingConfig()


def random_sequence(rng, length):
    """<s> + random pieces (words of 1-3 pieces) + </s>."""
    return np.concatenate(([BOS], rng.choice(np.flatnonzero(MASKABLE), length), [EOS]))


def masked_words(ids, rng, cfg=CFG):
    return mask_words(ids, MASKABLE, WORD_START, cfg, rng, MASK_ID, VOCAB)


def test_units_follow_word_starts_and_skip_specials():
    ids = np.array([BOS, 5, 4, 5, 6, 7, 8, 10, EOS])  # 5 after <s> continues, yet opens a unit
    assert word_unit_ids(ids, MASKABLE, WORD_START, True).tolist() == [-1, 0, 1, 1, 1, 2, 2, 3, -1]
    assert word_unit_ids(ids, MASKABLE, WORD_START, False).tolist() == [-1, 0, 1, 2, 3, 4, 5, 6, -1]


def test_predicted_units_are_exactly_max1_round_n_p_and_whole():
    rng = np.random.default_rng(0)
    for length in [1, 2, 5, 13, 40, 126]:
        ids = random_sequence(rng, length)
        units = word_unit_ids(ids, MASKABLE, WORD_START, True)
        n_units = units.max() + 1
        input_ids, labels = masked_words(ids, rng)
        predicted = labels != IGNORE_INDEX
        predicted_units = np.unique(units[predicted])
        assert len(predicted_units) == max(1, round(n_units * 0.15))
        # Whole words: every piece of a chosen unit is predicted, and nothing else.
        assert np.array_equal(predicted, np.isin(units, predicted_units) & (units >= 0))
        assert np.array_equal(labels[predicted], ids[predicted])
        assert np.array_equal(input_ids[~predicted], ids[~predicted])
        assert not predicted[[0, -1]].any()


def test_subword_units_count_pieces():
    rng = np.random.default_rng(1)
    ids = random_sequence(rng, 100)
    _, labels = masked_words(ids, rng, MaskingConfig(whole_word=False))
    assert (labels != IGNORE_INDEX).sum() == 15


def test_80_10_10_split_per_unit_and_overall_rate():
    rng = np.random.default_rng(2)
    actions = {"mask": 0, "random": 0, "keep": 0}
    predicted_pieces = total_pieces = 0
    for _ in range(400):
        ids = random_sequence(rng, 120)
        units = word_unit_ids(ids, MASKABLE, WORD_START, True)
        input_ids, labels = masked_words(ids, rng)
        predicted = labels != IGNORE_INDEX
        predicted_pieces += predicted.sum()
        total_pieces += (units >= 0).sum()
        for unit in np.unique(units[predicted]):
            pieces = units == unit
            if (input_ids[pieces] == MASK_ID).all():
                actions["mask"] += 1
            elif np.array_equal(input_ids[pieces], ids[pieces]):
                actions["keep"] += 1  # (a random draw equal to the original counts here too)
            else:
                assert not (input_ids[pieces] == MASK_ID).any(), "one draw per unit, not per piece"
                assert MASKABLE[input_ids[pieces]].all(), "random ids are never specials"
                actions["random"] += 1
    n = sum(actions.values())  # about 7,000 units
    assert abs(actions["mask"] / n - 0.8) < 0.02
    assert abs(actions["random"] / n - 0.1) < 0.015
    assert abs(actions["keep"] / n - 0.1) < 0.015
    assert abs(predicted_pieces / total_pieces - 0.15) < 0.01


def test_random_replacements_are_uniform_over_non_specials():
    rng = np.random.default_rng(3)
    cfg = MaskingConfig(word_mask_prob=1.0, mask_token_prob=0.0, random_token_prob=1.0)
    ids = random_sequence(rng, 5000)
    input_ids, _ = masked_words(ids, rng, cfg)
    counts = np.bincount(input_ids[1:-1], minlength=VOCAB)
    assert counts[~MASKABLE].sum() == 0
    expected = 5000 / MASKABLE.sum()
    assert np.all(np.abs(counts[MASKABLE] - expected) < 5 * np.sqrt(expected))


def test_sequence_without_maskable_tokens_predicts_nothing():
    input_ids, labels = masked_words(np.array([BOS, EOS]), np.random.default_rng(4))
    assert input_ids.tolist() == [BOS, EOS] and (labels == IGNORE_INDEX).all()


def test_table_of_wrong_size_is_refused():
    with pytest.raises(ValueError, match="vocab_size"):
        mask_words(np.array([BOS, 4, EOS]), MASKABLE[:-1], WORD_START, CFG,
                   np.random.default_rng(0), MASK_ID, VOCAB)


def test_entities_masked_15_percent_at_least_one_with_mask_id():
    rng = np.random.default_rng(5)
    for n in [1, 2, 3, 7, 32, 128]:
        ids = rng.integers(1, 1000, size=n)
        inputs, labels = mask_entities(ids, CFG, rng)
        chosen = labels != IGNORE_INDEX
        assert chosen.sum() == max(1, round(n * 0.15))
        assert (inputs[chosen] == 2).all() and np.array_equal(labels[chosen], ids[chosen])
        assert np.array_equal(inputs[~chosen], ids[~chosen])
    inputs, labels = mask_entities(np.array([], dtype=np.int64), CFG, rng)
    assert len(inputs) == len(labels) == 0


def test_every_entity_slot_is_equally_likely_to_be_masked():
    rng = np.random.default_rng(6)
    hits = sum((mask_entities(np.arange(10, 30), CFG, rng)[1] != IGNORE_INDEX).astype(int)
               for _ in range(4000))  # 3 of 20 slots per draw: 600 expected per slot
    assert np.all(np.abs(hits - 600) < 5 * np.sqrt(600 * 0.85))


def test_masking_rng_reproduces_and_separates_keys():
    ids = random_sequence(np.random.default_rng(6), 200)

    def labels_for(rng):
        return masked_words(ids, rng)[1]

    same = labels_for(masking_rng(7, 10, 0, 0)), labels_for(masking_rng(7, 10, 0, 0))
    assert np.array_equal(*same)
    for other in [(8, 10, 0, 0), (7, 11, 0, 0), (7, 10, 1, 0), (7, 10, 0, 1)]:
        assert not np.array_equal(same[0], labels_for(masking_rng(*other)))
    assert not np.array_equal(same[0], labels_for(eval_masking_rng(7, 10)))


def test_invalid_config_names_the_key():
    with pytest.raises(ValueError, match="word_mask_prob"):
        MaskingConfig(word_mask_prob=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        MaskingConfig(mask_token_prob=0.95, random_token_prob=0.1)
