"""The global example order of a corpus of several languages: languages drawn by size**alpha.

Concatenating the languages of a multilingual build would let the largest one fill nearly all
steps. Instead each epoch (as many examples as the split holds, so epochs, `train.epochs` and
the schedule keep their meaning) gives language l a quota of examples proportional to
n_l ** alpha, where n_l is its number of training examples: alpha 1 keeps the natural shares,
alpha 0 gives every language the same share, values between (0.7, mLUKE's) raise the small
languages without drowning the large ones. The quotas are rounded by largest remainder so that
they sum to the epoch's size exactly (corpus/language_shares.py: the tokenizer stage's rule too).

A language's examples are read as an endless stream of its own permutations (one per cycle,
each seeded by (seed, language, cycle)); epoch e takes the next `quota` of them, positions
[e * quota, (e + 1) * quota) of that stream. A downsampled language thus sees every example
before any repeats, over several epochs; an upsampled one repeats whole permutations. The
epoch's examples are then shuffled together by (seed, epoch). Everything is a pure function of
(seed, epoch), so the data position of a run is still its step and resume stays exact.

A build of one language, or quotas equal to the languages' sizes (alpha 1), give None: the
caller keeps the plain permutation of all examples, the order of a build of one language.
"""

from __future__ import annotations

import numpy as np

from corpus.language_shares import quotas


def language_quotas(sizes: list[int], alpha: float) -> np.ndarray:
    """Examples per language in one epoch of sum(sizes) examples."""
    return quotas(sizes, alpha, int(sum(sizes)))


class LanguageMix:
    """The order of each epoch's examples for languages whose examples are the row ranges
    `rows` ([start, end) each, in build order)."""

    def __init__(self, rows: list[tuple[int, int]], alpha: float, seed: int):
        if not 0 <= alpha <= 1:
            raise ValueError(f"language alpha {alpha} outside [0, 1]")
        self.starts = np.array([start for start, _ in rows], dtype=np.int64)
        self.sizes = np.array([end - start for start, end in rows], dtype=np.int64)
        self.quotas = language_quotas(self.sizes.tolist(), alpha)
        self.seed = seed

    @classmethod
    def of(cls, rows: list[tuple[int, int]], alpha: float, seed: int) -> "LanguageMix | None":
        """The mix, or None where it would only reproduce the plain permutation."""
        mix = cls(rows, alpha, seed)
        return None if np.array_equal(mix.quotas, mix.sizes) else mix

    def _stream(self, language: int, first: int, count: int) -> np.ndarray:
        """Positions [first, first + count) of the language's endless stream of permutations,
        as rows of the split."""
        size = int(self.sizes[language])
        parts = []
        position = first
        while position < first + count:
            cycle, offset = divmod(position, size)
            take = min(size - offset, first + count - position)
            seq = np.random.SeedSequence(self.seed, spawn_key=(1, language, cycle))
            order = np.random.default_rng(seq).permutation(size)
            parts.append(order[offset:offset + take])
            position += take
        return self.starts[language] + np.concatenate(parts or [np.empty(0, np.int64)])

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Every example index of `epoch`, in the order training reads them."""
        chosen = [self._stream(language, epoch * int(quota), int(quota))
                  for language, quota in enumerate(self.quotas) if quota]
        mixed = np.concatenate(chosen)
        seq = np.random.SeedSequence(self.seed, spawn_key=(2, epoch))
        return mixed[np.random.default_rng(seq).permutation(len(mixed))]
