"""One fp32 state dict from a DeepSpeed checkpoint directory, offline, on a CPU, without a launcher.

A `luke-train` checkpoint (RUN/checkpoints/<step>/) is what DeepSpeed's `save_checkpoint` wrote on
every rank: with ZeRO 1 and 2 one `mp_rank_00_model_states.pt` plus one
`zero_pp_rank_<r>_mp_rank_00_optim_states.pt` per rank; with ZeRO 3 a model-states file and an
optimizer file per rank, the weights existing only as fp32 shards inside the optimizer files.
DeepSpeed's `zero_to_fp32` helpers stitch the fp32 master weights back together for any world
size and restore tied parameters from the `shared_params` table DeepSpeed records. Without ZeRO
(stage 0) the model-states file holds the whole module and is read directly.

Before handing the directory to DeepSpeed every file is checked to be a complete archive, so a
truncated or missing shard is reported by name instead of surfacing as a zip-reader traceback.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path

import torch

from pretrain.checkpoint import damaged_files

MODEL_STATES_GLOB = "*model_states.pt"
OPTIM_STATES_GLOB = "*_optim_states.pt"


class CheckpointError(Exception):
    """A checkpoint directory that cannot be turned into a state dict; the message says why."""


def consolidate_checkpoint(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The fp32 weights of the model saved in `checkpoint` (RUN/checkpoints/<step>), by name.

    Tied weights come back under every name the training model had for them, as one tensor.
    """
    checkpoint = Path(checkpoint)
    model_files, optim_files = _checkpoint_files(checkpoint)
    model_states = _load(model_files[0])
    _check_one_file_per_rank(checkpoint, model_states, model_files, optim_files)
    if _holds_zero_partitions(optim_files):
        state_dict = _merge_zero_partitions(checkpoint)
    else:
        state_dict = _read_whole_module(model_files[0], model_states)
    _check_shared_params_tied(model_files[0], model_states, state_dict)
    return {name: tensor.detach().float() if tensor.is_floating_point() else tensor.detach()
            for name, tensor in state_dict.items()}


def _checkpoint_files(checkpoint: Path) -> tuple[list[Path], list[Path]]:
    """The model-states and optimizer-states files of a checkpoint, each checked to be whole."""
    if not checkpoint.is_dir():
        raise CheckpointError(f"{checkpoint}: checkpoint directory does not exist")
    model_files = sorted(checkpoint.glob(MODEL_STATES_GLOB), key=_rank_order)
    optim_files = sorted(checkpoint.glob(OPTIM_STATES_GLOB), key=_rank_order)
    if not model_files:
        raise CheckpointError(
            f"{checkpoint}: no DeepSpeed model states ({MODEL_STATES_GLOB}) in the checkpoint; "
            "it was not written by save_checkpoint or is incomplete")
    damaged = damaged_files(checkpoint)
    if damaged:
        path, why = damaged[0]
        raise CheckpointError(f"{path}: {why}")
    return model_files, optim_files


def _rank_order(path: Path) -> list:
    """Sort key putting rank 10 after rank 9 (file names hold the rank as a number)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _load(path: Path) -> dict:
    """A torch checkpoint file, memory-mapped: only what is read of it is paged in."""
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def _check_one_file_per_rank(checkpoint: Path, model_states: dict, model_files: list[Path],
                             optim_files: list[Path]) -> None:
    """With ZeRO every rank writes one optimizer file, and with ZeRO-3 one model-states file
    too (`zero_pp_rank_<r>_...`); a missing one means a missing shard."""
    world_size = model_states.get("dp_world_size")
    if world_size is None:
        return
    per_rank = [("optimizer state", optim_files)]
    if model_files[0].name.startswith("zero_pp_rank_"):
        per_rank.append(("model state", model_files))
    for kind, files in per_rank:
        if files and len(files) != world_size:
            raise CheckpointError(
                f"{checkpoint}: written by {world_size} ranks but holds {len(files)} {kind} "
                f"files ({', '.join(p.name for p in files)}); a rank's shard is missing")


def _holds_zero_partitions(optim_files: list[Path]) -> bool:
    """Whether the weights are partitioned across optimizer files (ZeRO 1-3) or whole (stage 0)."""
    if not optim_files:
        return False
    saved = _load(optim_files[0])
    return "zero_stage" in saved.get("optimizer_state_dict", {})


def _merge_zero_partitions(checkpoint: Path) -> dict[str, torch.Tensor]:
    """DeepSpeed's own offline merge of the fp32 partitions of all ranks."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    # zero_to_fp32 reports progress with print(); keep stdout for the caller's own output.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint.parent),
                                                            tag=checkpoint.name)
        except (ValueError, KeyError, RuntimeError, FileNotFoundError) as error:
            raise CheckpointError(
                f"{checkpoint}: cannot merge the ZeRO partitions: {error}") from None


def _read_whole_module(model_file: Path, model_states: dict) -> dict[str, torch.Tensor]:
    """The module state saved whole (no ZeRO partitioning) in the model-states file."""
    module = model_states.get("module")
    if not module:
        raise CheckpointError(f"{model_file}: holds no 'module' weights")
    return dict(module)


def _check_shared_params_tied(model_file: Path, model_states: dict,
                              state_dict: dict[str, torch.Tensor]) -> None:
    """Every pair DeepSpeed recorded as one shared parameter must come back present and equal."""
    for alias, owner in (model_states.get("shared_params") or {}).items():
        if alias not in state_dict or owner not in state_dict:
            raise CheckpointError(f"{model_file}: tied weight {alias} = {owner} lost in the merge")
        if not torch.equal(state_dict[alias], state_dict[owner]):
            raise CheckpointError(f"{model_file}: tied weights {alias} and {owner} differ")
