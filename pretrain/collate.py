"""Collation of masked examples into the keyword arguments of transformers' LukeForMaskedLM.

Pads to the longest sequence of the micro-batch, not to the corpus maximum: words with the
tokenizer's pad id (attention_mask 0), entities with id 0 (entity_attention_mask 0), labels
with -100. `entity_position_ids` is (batch, entities, max_mention_length), each row the token
positions of the entity's mention padded with -1, the layout the model averages over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pretrain.masking import IGNORE_INDEX

ENTITY_PAD_ID = 0
POSITION_PAD = -1


@dataclass(frozen=True)
class MaskedExample:
    """One sequence after masking: model inputs, labels, mention spans and its page."""
    input_ids: np.ndarray
    labels: np.ndarray
    entity_ids: np.ndarray
    entity_labels: np.ndarray
    entity_start: np.ndarray   # token positions in input_ids, end exclusive
    entity_end: np.ndarray
    page_id: int


def pad_rows(rows: list[np.ndarray], value: int) -> np.ndarray:
    """Stack 1-D rows into (len(rows), longest) int64, filling the tail with `value`."""
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def mention_positions(start: np.ndarray, end: np.ndarray, max_mention_length: int) -> np.ndarray:
    """(entities, max_mention_length) token positions of each mention, cut and padded with -1."""
    offsets = np.arange(max_mention_length)
    positions = np.asarray(start, dtype=np.int64)[:, None] + offsets
    length = (np.asarray(end, dtype=np.int64) - start)[:, None]
    return np.where(offsets < length, positions, POSITION_PAD)


def check_spans(example: MaskedExample) -> None:
    """Refuse mention spans that are empty or fall outside the example's words."""
    n_words, n_entities = len(example.input_ids), len(example.entity_ids)
    start, end = np.asarray(example.entity_start), np.asarray(example.entity_end)
    if len(start) != n_entities or len(end) != n_entities:
        raise ValueError(f"page {example.page_id}: {n_entities} entities but {len(start)} "
                         f"entity_start and {len(end)} entity_end values")
    bad = np.flatnonzero((start < 0) | (end <= start) | (end > n_words))
    if len(bad):
        i = bad[0]
        raise ValueError(f"page {example.page_id}: entity {i} has span [{start[i]}, {end[i]}) "
                         f"outside its {n_words} word tokens (or empty)")


def collate(examples: list[MaskedExample], pad_token_id: int, max_mention_length: int
            ) -> dict[str, torch.Tensor]:
    """LukeForMaskedLM's keyword arguments for one micro-batch, plus "page_ids"."""
    for example in examples:
        check_spans(example)
    input_ids = pad_rows([e.input_ids for e in examples], pad_token_id)
    entity_ids = pad_rows([e.entity_ids for e in examples], ENTITY_PAD_ID)
    positions = np.full(entity_ids.shape + (max_mention_length,), POSITION_PAD, dtype=np.int64)
    for i, e in enumerate(examples):
        positions[i, :len(e.entity_ids)] = mention_positions(
            e.entity_start, e.entity_end, max_mention_length)
    arrays = {
        "input_ids": input_ids,
        "attention_mask": pad_rows([np.ones(len(e.input_ids)) for e in examples], 0),
        "entity_ids": entity_ids,
        "entity_attention_mask": pad_rows([np.ones(len(e.entity_ids)) for e in examples], 0),
        "entity_position_ids": positions,
        "labels": pad_rows([e.labels for e in examples], IGNORE_INDEX),
        "entity_labels": pad_rows([e.entity_labels for e in examples], IGNORE_INDEX),
        "page_ids": np.array([e.page_id for e in examples], dtype=np.int64),
    }
    return {key: torch.from_numpy(value) for key, value in arrays.items()}
