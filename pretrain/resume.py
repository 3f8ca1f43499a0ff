"""Whether `luke-train --resume` may continue a run, and as what.

A resumed run must be the run that stopped: the same corpus (examples fingerprint), the same
model shape, the same number of ranks, a complete checkpoint, and the same config, key by key,
compared with what RUN/config.json recorded:
  - RESUME_FREE keys (how often to save and evaluate, how to react to a NaN, compiling and
    activation checkpointing) change nothing a step computes: accepted;
  - RESUME_NEVER keys cannot be honoured by a checkpoint at all (precision and ZeRO stage
    change DeepSpeed's files, seed and global batch the data position, shape keys the tensors):
    refused, with the reason;
  - every other key changes the batches, the masks, the optimizer or the schedule: refused
    unless the user names it with `--allow-change KEY` (then accepted).
Every accepted change is recorded in RUN/config.json under "changes" with the step it took
effect at. A change of the run's length (train.max_steps, train.epochs) re-anchors the lr
schedule so that it goes on without a jump (pretrain/schedule.py).

Nothing here needs a process group: it all runs before any rank starts, so a refused resume
leaves the run exactly as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain import run_layout
from pretrain.checkpoint import ResumeError, damaged_files, is_complete
from pretrain.config import RunConfig, config_dict, flatten, valid_keys
from pretrain.schedule import LrSchedule

RESUME_FREE = frozenset({"train.save_every", "train.eval_every", "train.eval_ed_every",
                         "data.eval_batches", "train.nan_policy", "model.compile",
                         "model.activation_checkpointing"})
_SHAPE = "the parameters would have other shapes than the checkpoint's"
_DATA = "the data order and the masks are functions of it: the data position would point at " \
        "other examples"
RESUME_NEVER = {
    "train.precision": "DeepSpeed keeps the optimizer states of bf16/fp16 and fp32 runs in "
                       "different layouts; this checkpoint cannot be loaded as the other",
    "train.zero_stage": "each ZeRO stage saves its partitions in its own layout; this "
                        "checkpoint cannot be loaded under another stage",
    "train.seed": _DATA, "train.global_batch_size": _DATA,
    "train.trainable": "the optimizer holds state for the parameters trained so far; a "
                       "checkpoint of one set cannot be loaded for another",
    **{f"model.{key}": _SHAPE for key in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "entity_emb_size", "max_position_embeddings", "type_vocab_size",
        "use_entity_aware_attention")},
}


@dataclass(frozen=True)
class ResumePlan:
    step: int                                   # the checkpoint's step: the run goes on after it
    changes: list[dict[str, Any]] = field(default_factory=list)   # accepted, for config.json
    schedule: LrSchedule | None = None


def read_run_config(run: Path) -> dict[str, Any]:
    """RUN/config.json as recorded (the config tree plus the run's records)."""
    path = Path(run) / run_layout.CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResumeError(f"{path}: missing; it records how the run was configured, so the run "
                          "cannot be resumed without it") from None
    except json.JSONDecodeError as error:
        raise ResumeError(f"{path}: not valid JSON ({error}); it records how the run was "
                          "configured, so it is not overwritten") from None


def check_allowed_keys(config: RunConfig, allowed: list[str]) -> None:
    """Refuse an --allow-change that names no config key (a typo would allow nothing)."""
    keys = set(valid_keys(config))
    for key in allowed:
        if key not in keys:
            raise ResumeError(f"--allow-change {key}: not a config key (e.g. optim.lr, "
                              "train.max_steps)")
        if key in RESUME_NEVER:
            raise ResumeError(f"--allow-change {key}: a resume can never change it: "
                              f"{RESUME_NEVER[key]}")


def config_changes(previous: dict[str, Any], config: RunConfig) -> list[tuple[str, Any, Any]]:
    """(key, recorded value, new value) for every config key whose value differs."""
    old, new = flatten(previous), flatten(json.loads(json.dumps(config_dict(config))))
    return [(key, old.get(key), value) for key, value in new.items()
            if key in old and old[key] != value]


def accepted_changes(previous: dict[str, Any], config: RunConfig, allowed: list[str],
                     step: int, where: Path) -> list[dict[str, Any]]:
    """The config changes of this resume as records for config.json; refused changes raise
    one ResumeError naming each of them (those no resume can make first)."""
    records, never, unasked = [], [], []
    for key, old, new in config_changes(previous, config):
        change = f"{key} was {old!r}, now {new!r}"
        if key in RESUME_NEVER:
            never.append(f"{change}: a resume cannot change it ({RESUME_NEVER[key]})")
        elif key not in RESUME_FREE and key not in allowed:
            unasked.append(change)
        else:
            records.append({"step": step, "key": key, "old": old, "new": new,
                            "how": "free" if key in RESUME_FREE else "--allow-change"})
    if never:
        raise ResumeError(f"{where}: " + "; ".join(never) + "; resume with the original "
                          "value, or start a new run with another --output")
    if unasked:
        flags = " ".join(f"--allow-change {key}" for key, *_ in (c.split(" ", 1)
                                                                for c in unasked))
        raise ResumeError(f"{where}: " + "; ".join(unasked) + ": resuming with that would not "
                          f"continue the same run; resume with the original value, or pass "
                          f"{flags} to accept it (recorded in {run_layout.CONFIG_FILE})")
    return records


def resumed_schedule(previous: dict[str, Any], config: RunConfig, step: int,
                     total_steps: int) -> LrSchedule:
    """The lr schedule of the resumed run: the recorded one, with the peak and warmup of the
    config in force (changed only with --allow-change), resized when the length changed."""
    recorded = previous.get("lr_schedule") or {
        "total_steps": previous["total_steps"], "reanchors": []}
    original = int(recorded["total_steps"])
    schedule = LrSchedule(config.optim.lr, min(config.optim.warmup_steps, original), original,
                          tuple(tuple(r) for r in recorded.get("reanchors", ())))
    try:
        return schedule.resized(step, total_steps)
    except ValueError as error:
        raise ResumeError(f"train.max_steps: {error}") from None


def checkpoint_problem(run: Path, step: int) -> str:
    """'' when checkpoint `step` is complete, else what is wrong and which earlier one to use."""
    directory = run_layout.checkpoint_dir(run, step)
    damaged = damaged_files(directory)
    if not damaged:
        return ""
    earlier = [s for s in run_layout.saved_steps(run)
               if s < step and is_complete(run_layout.checkpoint_dir(run, s))]
    hint = (f"checkpoint {earlier[-1]} is complete: continue from it with --resume-from "
            f"{earlier[-1]}" if earlier else "no earlier checkpoint is complete: start a new run")
    path, why = damaged[0]
    return f"{directory}: checkpoint step {step} is damaged ({path.name}: {why}); {hint}"


def check_same_run(state: dict[str, Any], fingerprint: str, shape: dict, world_size: int,
                   where: Path) -> None:
    """Refuse a checkpoint of another corpus, model shape or number of ranks."""
    if state["corpus_fingerprint"] != fingerprint:
        raise ResumeError(
            f"{where}: the checkpoint was trained on another corpus (examples fingerprint "
            f"{state['corpus_fingerprint']}, this corpus has {fingerprint})")
    changed = [f"model.{key} was {state['model_shape'].get(key)}, now {value}"
               for key, value in shape.items() if state["model_shape"].get(key) != value]
    if changed:
        raise ResumeError(f"{where}: the model shape changed since the checkpoint: "
                          + "; ".join(changed))
    if state["world_size"] != world_size:
        raise ResumeError(f"{where}: the checkpoint was written by {state['world_size']} "
                          f"ranks, this run has {world_size}: resume with the same number")


def plan_resume(run: Path, state: dict[str, Any], config: RunConfig, fingerprint: str,
                shape: dict, world_size: int, total_steps: int, allowed: list[str]
                ) -> ResumePlan:
    """Everything that decides whether, and how, the run goes on from checkpoint state."""
    step = state["step"]
    problem = checkpoint_problem(run, step)
    if problem:
        raise ResumeError(problem)
    check_same_run(state, fingerprint, shape, world_size, run)
    check_allowed_keys(config, allowed)
    previous = read_run_config(run)
    changes = accepted_changes(previous, config, allowed, step, run)
    return ResumePlan(step, list(previous.get("changes", [])) + changes,
                      resumed_schedule(previous, config, step, total_steps))
