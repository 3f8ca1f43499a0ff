"""What a run reports: RUN/metrics.jsonl, a progress bar with ETA, TensorBoard where installed.

Only rank 0 writes. metrics.jsonl holds one JSON object per optimizer step (`"kind": "train"`)
and one per evaluation (`"kind": "validation"`, with a "languages" object of the same fields
per language in a corpus of several); `luke-train plot` and the resume tests read it.
A resumed run first drops the lines past its checkpoint's step, so the file reads as the
history of one run that never stopped.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pretrain import run_layout


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Every line of RUN/metrics.jsonl (an empty list when the file does not exist)."""
    path = Path(run) / run_layout.METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_after(run: Path, step: int) -> None:
    """Drop the lines logged after `step` (by a run that went on past its last checkpoint)."""
    path = Path(run) / run_layout.METRICS_FILE
    if path.exists():
        kept = [line for line in read_metrics(run) if line["step"] <= step]
        path.write_text("".join(json.dumps(line) + "\n" for line in kept))


def tensorboard_writer(run: Path):
    """A SummaryWriter under RUN/tensorboard, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(Path(run) / "tensorboard"))


def scalar_fields(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers by name, those of its per-language part ("languages": {"en":
    {...}}) named "en/word_accuracy" and so on; the step is not one of them."""
    found = {}
    for key, value in record.items():
        if key == "languages":
            for language, fields in value.items():
                found.update({f"{language}/{name}": number for name, number in
                              scalar_fields(fields).items()})
        elif isinstance(value, (int, float)) and key != "step":
            found[key] = value
    return found


class MetricsLog:
    """The run's metrics sinks; a no-op on ranks other than 0."""

    def __init__(self, run: Path, rank: int, start_step: int, total_steps: int):
        self.active = rank == 0
        if not self.active:
            return
        truncate_after(run, start_step)
        self.file = open(Path(run) / run_layout.METRICS_FILE, "a")
        self.tensorboard = tensorboard_writer(run)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step",
                        file=sys.stderr, dynamic_ncols=True)

    def log(self, record: dict[str, Any]) -> None:
        """Append one line (flushed at once: a crash keeps every finished step's line)."""
        if not self.active:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        scalars = scalar_fields(record)
        if self.tensorboard is not None:
            for key, value in scalars.items():
                if math.isfinite(value):
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", value, record["step"])
        if record["kind"] == "train":
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.4f}",
                                 tok_s=f"{record['tokens_per_s']:.0f}")
        else:
            self.bar.write(f"step {record['step']}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in scalars.items() if isinstance(v, float)))

    def message(self, text: str) -> None:
        if self.active:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.active:
            self.bar.close()
            self.file.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
