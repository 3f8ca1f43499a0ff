"""The DeepSpeed config of a run, derived from the run config and the corpus manifest.

Nobody writes a DeepSpeed JSON or a step count by hand (the reference's users had to compute
the total steps with a separate command and paste it in): batch sizes, gradient accumulation,
precision and ZeRO stage follow from RUN/config.json and the world size, and the total steps
from the corpus manifest. The learning-rate schedule is pretrain/schedule.py's, not one of
DeepSpeed's: its length can change on resume without a jump. The result is saved as
RUN/ds_config.json for the record.
"""

from __future__ import annotations

import math
from typing import Any

from pretrain.config import ConfigError, RunConfig


def accumulation_steps(config: RunConfig, world_size: int) -> int:
    """Micro-batches per rank per optimizer step: global = micro x accumulation x world."""
    t = config.train
    per_pass = t.micro_batch_size * world_size
    if t.global_batch_size % per_pass:
        raise ConfigError(
            f"train.global_batch_size={t.global_batch_size} is not a multiple of "
            f"train.micro_batch_size={t.micro_batch_size} x world size {world_size} = {per_pass}")
    return t.global_batch_size // per_pass


def total_steps(config: RunConfig, num_examples: int) -> int:
    """train.max_steps, or else train.epochs passes over the corpus's examples (whole steps)."""
    t = config.train
    if t.max_steps is not None:
        return t.max_steps
    steps = math.floor(num_examples * t.epochs / t.global_batch_size)
    if steps < 1:
        raise ConfigError(
            f"the corpus has {num_examples} training examples: {t.epochs} epoch(s) do not fill "
            f"one step of train.global_batch_size={t.global_batch_size}; lower the batch size "
            f"or pass --max-steps")
    return steps


def precision_section(precision: str) -> dict[str, Any]:
    if precision == "bf16":
        return {"bf16": {"enabled": True}}
    if precision == "fp16":
        # Dynamic loss scaling: DeepSpeed skips steps whose gradients overflow.
        return {"fp16": {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}}
    return {}


def derive_ds_config(config: RunConfig, world_size: int, first_lr: float,
                     on_gpu: bool = False) -> dict[str, Any]:
    """The DeepSpeed config dict for `deepspeed.initialize(config=...)`. The learning rate of
    every step comes from pretrain/schedule.py's driver, given to deepspeed.initialize as its
    lr_scheduler; `first_lr` is step 1's."""
    t, o = config.train, config.optim
    return {
        "train_batch_size": t.global_batch_size,
        "train_micro_batch_size_per_gpu": t.micro_batch_size,
        "gradient_accumulation_steps": accumulation_steps(config, world_size),
        "gradient_clipping": o.grad_clip,
        # Weight decay is set per parameter group (none on biases and LayerNorm) by train.py;
        # the value here is the default for groups that do not set it.
        "optimizer": {"type": "AdamW", "params": {
            "lr": first_lr, "betas": list(o.betas), "eps": o.eps, "weight_decay": o.weight_decay,
            # torch's AdamW, fused on GPU: DeepSpeed's own FusedAdam is compiled at first
            # use and needs a CUDA toolkit (nvcc) that many GPU machines and all CPUs lack.
            "torch_adam": True, "fused": on_gpu}},
        "zero_optimization": {"stage": t.zero_stage},
        **precision_section(t.precision),
        "steps_per_print": 10**9,     # the trainer logs; DeepSpeed's own lines would duplicate
        "wall_clock_breakdown": False,
    }
