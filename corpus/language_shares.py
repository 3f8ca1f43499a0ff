"""How languages of different sizes share a total: in proportion to size ** alpha, as mLUKE
sampled its languages (alpha 1 keeps the natural shares, 0 gives every language the same,
values between raise the small languages without drowning the large ones), in integers
rounded by largest remainder so that they fill the total exactly.

The tokenizer stage splits its training sample this way, and training its epochs
(pretrain/language_mix.py): one rule, so that both weigh the languages alike."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sampling_shares(sizes: Sequence[float], alpha: float) -> np.ndarray:
    """Each language's share, proportional to size ** alpha (a language of size 0 gets none,
    at alpha 0 too)."""
    sizes_array = np.asarray(sizes, dtype=np.float64)
    weights = np.where(sizes_array > 0, sizes_array ** alpha, 0.0)
    return weights / weights.sum()


def quotas(sizes: Sequence[float], alpha: float, total: int) -> np.ndarray:
    """`total` split by sampling_shares into integers that add up to it exactly."""
    exact = sampling_shares(sizes, alpha) * total
    whole = np.floor(exact).astype(np.int64)
    # The largest fractional parts get the units that flooring left out; ties go to the earlier
    # language (a stable sort), so the quotas are a function of the arguments alone.
    order = np.argsort(-(exact - whole), kind="stable")
    whole[order[:total - int(whole.sum())]] += 1
    return whole
