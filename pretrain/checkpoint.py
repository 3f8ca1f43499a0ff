"""Checkpoints of a training run: save so that `latest` never names a broken one, and resume.

A checkpoint RUN/checkpoints/<step>/ (see pretrain/run_layout.py) holds DeepSpeed's model,
optimizer and scheduler states (every rank writes its shards), the trainer state (the data
position is just the step count, because the global order and the masks are pure functions
of seed and step; plus the corpus fingerprint, config hash and model shape) and every rank's
RNG states (dropout draws from torch's global generator: without them a resumed run's losses
differ from a straight run's from the first resumed step on). Only after all ranks finished
does rank 0 rewrite `latest`, atomically, so a crash while saving leaves the previous one.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from pretrain import run_layout

# LukeConfig keys that decide the shapes of the parameters a checkpoint holds.
SHAPE_KEYS = ("vocab_size", "entity_vocab_size", "hidden_size", "num_hidden_layers",
              "num_attention_heads", "intermediate_size", "entity_emb_size",
              "max_position_embeddings", "type_vocab_size", "use_entity_aware_attention")


class ResumeError(ValueError):
    """A checkpoint that this run must not continue from; the message says what differs."""


def model_shape(luke_config) -> dict[str, Any]:
    return {key: getattr(luke_config, key) for key in SHAPE_KEYS}


def trainer_state(step: int, fingerprint: str, config_hash: str, shape: dict,
                  seed: int, global_batch_size: int, world_size: int) -> dict[str, Any]:
    """What besides DeepSpeed's states a resumed run needs to continue exactly."""
    return {"step": step,
            "data_position": {"next_step": step, "seed": seed,
                              "global_batch_size": global_batch_size},
            "corpus_fingerprint": fingerprint, "config_hash": config_hash,
            "model_shape": shape, "world_size": world_size}


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers see the old or the new file whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(engine, run: Path, state: dict[str, Any], rank: int) -> Path:
    """Every rank calls this at the same step; returns the checkpoint directory."""
    step = state["step"]
    directory = run_layout.checkpoint_dir(run, step)
    # save_latest=False: DeepSpeed's own `latest` file would share our name and be written
    # before the other files of the checkpoint exist.
    engine.save_checkpoint(str(directory.parent), tag=str(step), save_latest=False)
    torch.save(rng_states(), directory / run_layout.RNG_STATE_FILE.format(rank=rank))
    if rank == 0:
        write_atomic(directory / run_layout.TRAINER_STATE_FILE, json.dumps(state, indent=1))
    barrier()
    if rank == 0:
        write_atomic(Path(run) / run_layout.CHECKPOINTS_DIR / run_layout.LATEST_FILE, f"{step}\n")
    barrier()
    return directory


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def read_trainer_state(run: Path) -> dict[str, Any] | None:
    """The trainer state of the newest complete checkpoint, or None when there is none."""
    step = run_layout.latest_step(run)
    if step is None:
        return None
    path = run_layout.checkpoint_dir(run, step) / run_layout.TRAINER_STATE_FILE
    if not path.is_file():
        raise ResumeError(f"{path}: missing although {run_layout.LATEST_FILE} names step {step}")
    return json.loads(path.read_text())


def check_resume(state: dict[str, Any], fingerprint: str, shape: dict, seed: int,
                 global_batch_size: int, world_size: int, where: Path) -> None:
    """Refuse to continue from `state` when the run would not be the same run."""
    if state["corpus_fingerprint"] != fingerprint:
        raise ResumeError(
            f"{where}: the checkpoint was trained on another corpus (examples fingerprint "
            f"{state['corpus_fingerprint']}, this corpus has {fingerprint})")
    changed = [f"model.{key} was {state['model_shape'].get(key)}, now {value}"
               for key, value in shape.items() if state["model_shape"].get(key) != value]
    if changed:
        raise ResumeError(f"{where}: the model shape changed since the checkpoint: "
                          + "; ".join(changed))
    position = state["data_position"]
    for key, now in (("seed", seed), ("global_batch_size", global_batch_size)):
        if position[key] != now:
            raise ResumeError(f"{where}: train.{key} was {position[key]}, now {now}: the data "
                              "position would point at other examples")
    if state["world_size"] != world_size:
        raise ResumeError(f"{where}: the checkpoint was written by {state['world_size']} "
                          f"ranks, this run has {world_size}: resume with the same number")


def load_checkpoint(engine, run: Path, step: int, rank: int) -> None:
    """Load DeepSpeed's states and this rank's RNG states of checkpoint `step`."""
    directory = run_layout.checkpoint_dir(run, step)
    path, _ = engine.load_checkpoint(str(directory.parent), tag=str(step))
    if path is None:
        raise ResumeError(f"{directory}: DeepSpeed found no loadable checkpoint there")
    restore_rng_states(torch.load(directory / run_layout.RNG_STATE_FILE.format(rank=rank),
                                  weights_only=False))
