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
import shutil
import zipfile
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


def trainer_state(step: int, fingerprints: dict[str, str], config_hash: str, shape: dict,
                  seed: int, global_batch_size: int, world_size: int) -> dict[str, Any]:
    """What besides DeepSpeed's states a resumed run needs to continue exactly, and what an
    export checks the corpus it ships against (`fingerprints`: examples, tokenizer,
    entity_vocab)."""
    return {"step": step,
            "data_position": {"next_step": step, "seed": seed,
                              "global_batch_size": global_batch_size},
            "corpus_fingerprint": fingerprints["examples"],
            "tokenizer_fingerprint": fingerprints["tokenizer"],
            "entity_vocab_fingerprint": fingerprints["entity_vocab"],
            "config_hash": config_hash, "model_shape": shape, "world_size": world_size}


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


def failed_save_message(run: Path, step: int, error: BaseException, rank: int) -> str:
    """The one line a failed save ends the run with; rank 0 removes what it left (the
    checkpoint is not named by `latest`, so nothing reads it, and a full disk needs the room)."""
    directory = run_layout.checkpoint_dir(run, step)
    if rank == 0 and run_layout.latest_step(run) != step:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        free = f"{shutil.disk_usage(Path(run)).free / 2**20:,.0f} MiB free on its file system"
    except OSError:
        free = "free space unknown"
    previous = run_layout.latest_step(run)
    kept = (f"{run_layout.LATEST_FILE} still names step {previous}, which is complete"
            if previous is not None else "the run has no earlier checkpoint")
    reason = " ".join(str(error).split()) or type(error).__name__
    return (f"saving checkpoint {directory} failed ({reason}; {free}); {kept}: free space or "
            f"fix the cause, then rerun with --resume")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def read_trainer_state(run: Path, step: int | None = None) -> dict[str, Any] | None:
    """The trainer state of checkpoint `step`, by default the newest complete one (None when
    the run has none)."""
    latest = run_layout.latest_step(run)
    if step is None:
        step = latest
        if step is None:
            return None
    directory = run_layout.checkpoint_dir(run, step)
    if not directory.is_dir():
        steps = ", ".join(map(str, run_layout.saved_steps(run))) or "none"
        raise ResumeError(f"{directory}: no checkpoint for step {step} (the run has: {steps})")
    path = directory / run_layout.TRAINER_STATE_FILE
    if not path.is_file():
        why = f"although {run_layout.LATEST_FILE} names step {step}" if step == latest else \
            "the checkpoint was not finished (the run stopped while saving it)"
        raise ResumeError(f"{path}: missing {why}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResumeError(f"{path}: damaged ({error})") from None


def damaged_files(directory: Path) -> list[tuple[Path, str]]:
    """(file, what is wrong) for each torch file of a checkpoint that is not a complete zip
    archive (a rank died while writing it, the disk filled up, a copy was cut short)."""
    problems = []
    for path in sorted(Path(directory).glob("*.pt")):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError) as error:
            problems.append((path, f"not a complete torch checkpoint file ({error})"))
    return problems


def is_complete(directory: Path) -> bool:
    """Whether a checkpoint directory holds its trainer state and only whole torch files."""
    return (Path(directory) / run_layout.TRAINER_STATE_FILE).is_file() and \
        not damaged_files(directory)


def load_checkpoint(engine, run: Path, step: int, rank: int) -> None:
    """Load DeepSpeed's states and this rank's RNG states of checkpoint `step`."""
    directory = run_layout.checkpoint_dir(run, step)
    path, _ = engine.load_checkpoint(str(directory.parent), tag=str(step))
    if path is None:
        raise ResumeError(f"{directory}: DeepSpeed found no loadable checkpoint there")
    # The ZeRO optimizers load their state (the lr of the schedule the run was saved under)
    # after the lr scheduler's: set this run's schedule's lr again, it may have changed.
    if engine.lr_scheduler is not None:
        engine.lr_scheduler.apply()
    restore_rng_states(torch.load(directory / run_layout.RNG_STATE_FILE.format(rank=rank),
                                  weights_only=False))
