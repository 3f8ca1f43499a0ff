"""Where a training run keeps its files: the contract between `luke-train` and `luke-export`.

RUN/
  config.json            the resolved config tree (defaults + config file + overrides)
  ds_config.json         the DeepSpeed config derived from it (never hand-edited)
  model_config.json      LukeConfig.to_dict() of the model being trained
  metrics.jsonl          one JSON object per optimizer step, plus validation lines
  checkpoints/<step>/    written by DeepSpeed's save_checkpoint(tag=str(step)) on every rank,
                         plus TRAINER_STATE_FILE (step, data position, corpus fingerprint,
                         config hash) and one RNG_STATE_FILE per rank
  checkpoints/latest     the tag of the newest complete checkpoint; rewritten atomically only
                         after every rank finished saving, so it never names a broken one
"""

from pathlib import Path

CONFIG_FILE = "config.json"
DS_CONFIG_FILE = "ds_config.json"
MODEL_CONFIG_FILE = "model_config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
TRAINER_STATE_FILE = "trainer_state.json"
RNG_STATE_FILE = "rng_state_rank{rank}.pt"


def checkpoint_dir(run: Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS_DIR / str(step)


def latest_step(run: Path) -> int | None:
    """The step of the newest complete checkpoint, or None when the run has none."""
    latest = Path(run) / CHECKPOINTS_DIR / LATEST_FILE
    if not latest.exists():
        return None
    return int(latest.read_text().strip())


def saved_steps(run: Path) -> list[int]:
    """The steps that have a checkpoint directory, ascending (complete or not)."""
    root = Path(run) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())
