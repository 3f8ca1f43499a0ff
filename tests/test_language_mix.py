"""Language sampling of a multilingual corpus (pretrain/language_mix.py, through StepSampler):
the shares follow size ** alpha, each epoch is a pure function of (seed, epoch), a build of one
language keeps the plain permutation, and resume anywhere equals going on."""

import numpy as np
import pytest

from corpus import language_shares
from corpus.language_shares import sampling_shares
from pretrain.data import StepSampler
from pretrain.language_mix import LanguageMix, language_quotas

# Three languages of very different sizes, their rows laid out one after the other as the
# corpus build lays them: English 0..9000, Bulgarian 9000..9900, Japanese 9900..9990.
SIZES = [9000, 900, 90]
ROWS = ((0, 9000), (9000, 9900), (9900, 9990))
TOTAL = sum(SIZES)


def language_of(indices: np.ndarray) -> np.ndarray:
    return np.searchsorted([end for _, end in ROWS], indices, side="right")


def test_quotas_are_proportional_to_size_to_the_alpha_and_fill_the_epoch():
    quotas = language_quotas(SIZES, 0.7)
    assert quotas.sum() == TOTAL
    expected = np.array(SIZES, dtype=float) ** 0.7
    expected = expected / expected.sum() * TOTAL
    assert np.all(np.abs(quotas - expected) < 1)
    # 9000**0.7 : 900**0.7 : 90**0.7 = 588.1 : 117.3 : 23.4 of 9,990 draws. Japanese, 0.9% of
    # the examples, gets 3.2% of the draws; English gives 939 up.
    assert quotas.tolist() == [8061, 1608, 321]
    assert language_quotas(SIZES, 1.0).tolist() == SIZES
    assert language_quotas(SIZES, 0.0).tolist() == [3330, 3330, 3330]
    assert sampling_shares([10, 0, 10], 0.5).tolist() == [0.5, 0.0, 0.5]
    # any total (the tokenizer stage's caps), filled exactly
    assert language_shares.quotas([3, 1, 1], 1.0, 10).tolist() == [6, 2, 2]
    assert language_shares.quotas([3, 1, 1], 0.0, 100_000_000).sum() == 100_000_000


def test_sampled_steps_match_the_shares_statistically():
    """Over the first 2,000 draws (part of an epoch: the shuffle mixes languages through it),
    each language's count lies within 4 binomial standard deviations of n * share."""
    sampler = StepSampler(TOTAL, 100, 100, 1, 0, seed=11, languages=ROWS, language_alpha=0.7)
    drawn = np.concatenate([np.ravel(sampler.indices_for_step(s)) for s in range(20)])
    counts = np.bincount(language_of(drawn), minlength=3)
    shares = sampling_shares(SIZES, 0.7)
    sigma = np.sqrt(len(drawn) * shares * (1 - shares))
    assert np.all(np.abs(counts - len(drawn) * shares) < 4 * sigma), (counts, shares)
    # Far from the natural shares (90% English): the mix is what is drawn, not the sizes.
    assert counts[0] / len(drawn) < 0.82


def test_each_epoch_holds_exactly_the_quotas_and_walks_every_example_before_repeating():
    mix = LanguageMix(list(ROWS), 0.7, seed=3)
    epochs = [mix.epoch_order(e) for e in range(3)]
    for order in epochs:
        assert len(order) == TOTAL
        assert np.bincount(language_of(order), minlength=3).tolist() == mix.quotas.tolist()
    # English (downsampled to 8,061 an epoch): no example twice within epoch 0, and epochs 0
    # and 1 together (16,122 draws, the walk through all 9,000 and a second begun) see all.
    english = [order[language_of(order) == 0] for order in epochs[:2]]
    assert len(np.unique(english[0])) == 8061
    assert len(np.unique(np.concatenate(english))) == 9000
    # Japanese (upsampled 90 -> 321) repeats whole permutations: each example 3 or 4 times.
    japanese = np.bincount(epochs[0][language_of(epochs[0]) == 2] - 9900, minlength=90)
    assert set(japanese.tolist()) == {3, 4}


def test_the_order_is_a_function_of_seed_and_epoch_only():
    first = LanguageMix(list(ROWS), 0.7, seed=3)
    again = LanguageMix(list(ROWS), 0.7, seed=3)
    assert np.array_equal(first.epoch_order(4), again.epoch_order(4))
    assert not np.array_equal(first.epoch_order(4), first.epoch_order(5))
    assert not np.array_equal(first.epoch_order(4), LanguageMix(list(ROWS), 0.7, 4).epoch_order(4))


def test_resuming_at_any_step_equals_continuing_with_sampling():
    args = dict(num_examples=TOTAL, global_batch_size=600, micro_batch_size=100, world_size=2,
                seed=3, languages=ROWS, language_alpha=0.7)
    straight = [StepSampler(rank=1, **args).indices_for_step(s) for s in range(40)]
    for resume_at in (0, 16, 17, 33):      # 16 and 17 lie each side of the first epoch's end
        fresh = StepSampler(rank=1, **args)
        assert [fresh.indices_for_step(s) for s in range(resume_at, 40)] == straight[resume_at:]


@pytest.mark.parametrize("languages, alpha", [(((0, 103),), 0.7), (((0, 50), (50, 103)), 1.0)])
def test_one_language_or_alpha_one_keeps_the_plain_permutation(languages, alpha):
    plain = StepSampler(103, 1, 1, 1, 0, seed=5)
    mixed = StepSampler(103, 1, 1, 1, 0, seed=5, languages=languages, language_alpha=alpha)
    assert mixed.mix is None
    assert np.array_equal(mixed.permutation(2), plain.permutation(2))


def test_an_alpha_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="language alpha 1.5 outside \\[0, 1\\]"):
        LanguageMix(list(ROWS), 1.5, seed=0)
