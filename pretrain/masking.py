"""Masking at batch time, as pure numpy functions of one sequence and an explicit Generator.

Words: `max(1, round(n * p))` of the sequence's n maskable units are predicted, a unit being a
whole word (a piece that starts a word plus the pieces that continue it) or, with
`whole_word=False`, a single piece. Each predicted unit gets one 80/10/10 draw: every piece
replaced by the mask token / every piece replaced by a random non-special id / left unchanged.
Entities: `max(1, round(n * p))` of the sequence's entities are replaced by the `[MASK]` entity.
Labels hold the original id where a prediction is asked for and -100 (transformers' ignore
index; the reference's -1 would silently train on garbage) everywhere else.

The random stream is keyed on (seed, step, rank, micro-batch) by `masking_rng`, so a resumed
run draws exactly the masks of a run that never stopped, without saving any rng state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = -100

# Keeps the masking streams apart from any other stream derived from the same seed.
_TRAIN_STREAM, _EVAL_STREAM = 1, 2


@dataclass(frozen=True)
class MaskingConfig:
    word_mask_prob: float = 0.15
    entity_mask_prob: float = 0.15
    whole_word: bool = True          # False: subword units (the mLUKE reference)
    mask_token_prob: float = 0.8
    random_token_prob: float = 0.1   # the rest of a predicted unit stays unchanged

    def __post_init__(self):
        for name in ("word_mask_prob", "entity_mask_prob", "mask_token_prob", "random_token_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"masking.{name} must be within [0, 1], got {value}")
        if self.mask_token_prob + self.random_token_prob > 1.0:
            raise ValueError(
                "masking.mask_token_prob + masking.random_token_prob must not exceed 1, got "
                f"{self.mask_token_prob} + {self.random_token_prob}")


def masking_rng(seed: int, step: int, rank: int, micro: int) -> np.random.Generator:
    """The generator that masks micro-batch `micro` of `rank` at global step `step`."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(_TRAIN_STREAM, step, rank, micro)))


def eval_masking_rng(seed: int, batch_index: int, language: int = 0) -> np.random.Generator:
    """The generator for validation batch `batch_index` of the corpus's language number
    `language`: the same masks at every evaluation."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(_EVAL_STREAM, language, batch_index)))


def num_to_predict(n: int, prob: float) -> int:
    """How many of n units are predicted: max(1, round(n * prob)), and none when n is 0."""
    return 0 if n == 0 else max(1, int(round(n * prob)))


def word_unit_ids(word_ids: np.ndarray, maskable: np.ndarray, word_start: np.ndarray,
                  whole_word: bool) -> np.ndarray:
    """Per position, the index of the maskable unit it belongs to, or -1 (special tokens)."""
    is_maskable = maskable[word_ids]
    starts = is_maskable.copy()
    if whole_word:
        # A continuation piece right after a special token (e.g. after <s>) still opens a unit.
        after_maskable = np.concatenate(([False], is_maskable[:-1]))
        starts &= word_start[word_ids] | ~after_maskable
    units = np.cumsum(starts) - 1
    return np.where(is_maskable, units, -1)


def random_word_ids(count: int, maskable: np.ndarray, vocab_size: int,
                    rng: np.random.Generator) -> np.ndarray:
    """`count` ids drawn uniformly from the maskable (non-special) ids, by rejection."""
    drawn = rng.integers(vocab_size, size=count)
    rejected = ~maskable[drawn]
    while rejected.any():  # specials are a handful of ids: this loops once or twice
        drawn[rejected] = rng.integers(vocab_size, size=int(rejected.sum()))
        rejected = ~maskable[drawn]
    return drawn


def mask_words(word_ids, maskable: np.ndarray, word_start: np.ndarray, cfg: MaskingConfig,
               rng: np.random.Generator, mask_token_id: int, vocab_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, labels) of one sequence. `maskable` and `word_start` are lookup tables of
    size vocab_size (see pretrain.data.word_tables): may an id be predicted, does it open a word."""
    word_ids = np.asarray(word_ids, dtype=np.int64)
    if len(maskable) != vocab_size or len(word_start) != vocab_size:
        raise ValueError(f"masking tables have sizes {len(maskable)}/{len(word_start)}, "
                         f"expected vocab_size {vocab_size}")
    units = word_unit_ids(word_ids, maskable, word_start, cfg.whole_word)
    n_units = int(units.max(initial=-1)) + 1
    chosen = rng.choice(n_units, size=num_to_predict(n_units, cfg.word_mask_prob), replace=False)
    # One draw per unit: 0 = [MASK], 1 = random id, 2 = unchanged.
    draw = rng.random(len(chosen))
    action = np.where(draw < cfg.mask_token_prob, 0,
                      np.where(draw < cfg.mask_token_prob + cfg.random_token_prob, 1, 2))
    action_of_unit = np.full(n_units + 1, -1)  # the extra slot answers for units == -1
    action_of_unit[chosen] = action
    position_action = action_of_unit[units]

    input_ids = word_ids.copy()
    input_ids[position_action == 0] = mask_token_id
    randomized = position_action == 1
    input_ids[randomized] = random_word_ids(int(randomized.sum()), maskable, vocab_size, rng)
    labels = np.where(position_action >= 0, word_ids, IGNORE_INDEX)
    return input_ids, labels


def mask_entities(entity_ids, cfg: MaskingConfig, rng: np.random.Generator,
                  mask_entity_id: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(entity_input_ids, entity_labels) of one sequence: chosen entities become [MASK]."""
    entity_ids = np.asarray(entity_ids, dtype=np.int64)
    n = len(entity_ids)
    chosen = rng.choice(n, size=num_to_predict(n, cfg.entity_mask_prob), replace=False)
    entity_input_ids = entity_ids.copy()
    entity_input_ids[chosen] = mask_entity_id
    entity_labels = np.full(n, IGNORE_INDEX, dtype=np.int64)
    entity_labels[chosen] = entity_ids[chosen]
    return entity_input_ids, entity_labels
