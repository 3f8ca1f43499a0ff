"""Score a model on the entity-disambiguation task (pretrain/ed_task.py): put the `[MASK]`
entity on every mention of a validation example, run the model once, and for each scored
mention take the candidate the masked-entity head scores highest.

Every mention of the example carries `[MASK]` at once, so no gold entity is visible to the
model. Works with transformers' LukeForMaskedLM (entity logits at every entity slot) and with
the trainer's fast model (entity logits only at the labelled slots, in row-major order): the
scored mentions are the labelled slots. Under several ranks the examples' batches are dealt
round-robin and every rank runs the same number of forwards (a rank short of batches repeats
its first one and discards it), because under ZeRO-3 each forward is a collective.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from corpus.schema import ENTITY_MASK_ID
from pretrain.collate import MaskedExample, collate
from pretrain.ed_task import EDTask, TaskExample
from pretrain.masking import IGNORE_INDEX

EntityLogits = Callable[[dict], torch.Tensor]   # model inputs -> entity logits


def ed_inputs(examples: list[TaskExample], pad_token_id: int, max_mention_length: int) -> dict:
    """The model's keyword arguments: words as stored, `[MASK]` on every mention, the gold id
    as entity label of each scored mention (-100 elsewhere); no word labels."""
    masked = []
    for example in examples:
        row = example.row
        entity_labels = np.full(len(row["entity_ids"]), IGNORE_INDEX, dtype=np.int64)
        for mention in example.mentions:
            entity_labels[mention.slot] = mention.gold
        masked.append(MaskedExample(
            np.asarray(row["word_ids"]), np.full(len(row["word_ids"]), IGNORE_INDEX),
            np.full(len(row["entity_ids"]), ENTITY_MASK_ID), entity_labels,
            np.asarray(row["entity_start"]), np.asarray(row["entity_end"]), row["page_id"]))
    batch = collate(masked, pad_token_id, max_mention_length)
    del batch["labels"], batch["page_ids"]
    return batch


def correct_choices(entity_logits: torch.Tensor, entity_labels: torch.Tensor,
                    examples: list[TaskExample]) -> int:
    """How many scored mentions have their gold entity as the best-scored candidate."""
    wanted = entity_labels != IGNORE_INDEX
    if entity_logits.dim() == entity_labels.dim() + 1:   # logits at every slot: keep the scored
        entity_logits = entity_logits[wanted.to(entity_logits.device)]
    mentions = [m for example in examples for m in example.mentions]
    if len(mentions) != len(entity_logits):
        raise RuntimeError(f"{len(entity_logits)} rows of entity logits for {len(mentions)} "
                           "scored mentions")
    right = 0
    for logits, mention in zip(entity_logits, mentions):
        candidates = torch.tensor(mention.candidates, device=logits.device)
        right += int(mention.candidates[int(logits[candidates].argmax())] == mention.gold)
    return right


def rank_batches(task: EDTask, batch_size: int, rank: int, world: int
                 ) -> list[tuple[list[TaskExample], bool]]:
    """(examples, counts) per forward of this rank; every rank gets the same number of
    forwards, those with `counts` False only keep the collective in step."""
    batches = [task.examples[i:i + batch_size] for i in range(0, len(task.examples), batch_size)]
    per_rank = -(-len(batches) // world)
    mine = batches[rank::world]
    fillers = [(batches[0], False)] * (per_rank - len(mine)) if batches else []
    return [(b, True) for b in mine] + fillers


@torch.no_grad()
def model_correct(forward: EntityLogits, task: EDTask, batch_size: int, pad_token_id: int,
                  max_mention_length: int, device, rank: int = 0, world: int = 1,
                  progress: bool = False) -> int:
    """Scored mentions the model gets right, on this rank's share of the batches (sum over
    ranks for the whole task)."""
    from tqdm import tqdm

    plan = rank_batches(task, batch_size, rank, world)
    right = 0
    for examples, counts in tqdm(plan, desc="entity disambiguation", unit="batch",
                                 disable=not progress, dynamic_ncols=True):
        inputs = {k: v.to(device) for k, v in
                  ed_inputs(examples, pad_token_id, max_mention_length).items()}
        logits = forward(inputs)
        if counts:
            right += correct_choices(logits, inputs["entity_labels"], examples)
    return right


def masked_lm_entity_logits(model) -> EntityLogits:
    """For transformers' LukeForMaskedLM: the entity head over the scored slots only (its own
    forward scores every slot against every entity, batch x entities x vocabulary floats)."""
    def forward(inputs: dict) -> torch.Tensor:
        labels = inputs["entity_labels"]
        encoded = model.luke(**{k: v for k, v in inputs.items() if k != "entity_labels"})
        return model.entity_predictions(encoded.entity_last_hidden_state[labels != IGNORE_INDEX])
    return forward


def ed_result(task: EDTask, model_right: int) -> dict:
    """The score and the task's counts: accuracy of the model and of the prior baseline."""
    summary = task.summary()
    mentions = summary["mentions"]
    return {"accuracy": model_right / mentions if mentions else None, **summary}
