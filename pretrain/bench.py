"""`luke-bench`: train transformers' LukeForMaskedLM and FastLukeForMaskedLM side by side.

Both models start from the same weights and take the same synthetic batches (realistic shapes:
packed 512-word sequences, 128 entity slots of which 64-128 hold a mention of 1-5 words, 15% of
words and of entities masked), each with its own AdamW (same settings, fused by default), in
alternating order every step so that neither always runs on a warmer cache. Printed per
implementation: median step time, tokens/s (word + entity slots per median step), peak step
memory, and on CUDA model FLOPs utilisation; with --json the last line is one JSON object (fast
figures unprefixed, transformers' with `hf_`). `max_abs_diff` is the largest gap between the two
in loss and in logits at the labelled positions, in eval mode on the first batch, before any
update (both hold the same weights then).

Memory: `peak_mem_bytes` is the step's transient peak above the resting state (weights, grads
freed, optimizer state), measured in one extra step per implementation: on CPU from the torch
profiler's allocation events (every allocation and free by torch, replayed in time order), on
CUDA from torch.cuda.max_memory_allocated. Timing steps run without the profiler.

On a shared CPU machine prefer --threads 1: with more threads than free cores every parallel
region waits for a descheduled peer (seen here: fused AdamW going from 22 ms to 890 ms at two
threads on two busy cores), which mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm
from transformers import LukeConfig

from pretrain.models import build_model

MAX_MENTION_LENGTH = 30  # LUKE's entity_position_ids width
ENTITY_MASK_ID = 2       # [MASK] in the entity vocabulary ([PAD]=0 [UNK]=1 [MASK]=2)
MASK_PROB = 0.15
# Dense bf16 peak by device name fragment (the vendors' datasheet figures), for MFU.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    entity_vocab: int
    batch: int
    words: int = 512
    entities: int = 128


SIZES = {
    "small": Shape(256, 4, 4, 1024, 32_000, 100_000, batch=4),
    "base": Shape(768, 12, 12, 3072, 50_265, 500_000, batch=8),
    "large": Shape(1024, 24, 16, 4096, 50_265, 500_000, batch=8),
}


def luke_config(shape: Shape, entity_aware: bool) -> LukeConfig:
    return LukeConfig(vocab_size=shape.vocab, entity_vocab_size=shape.entity_vocab,
                      hidden_size=shape.hidden, entity_emb_size=256,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                      intermediate_size=shape.intermediate, max_position_embeddings=514,
                      use_entity_aware_attention=entity_aware)


def synthetic_batch(rng: np.random.Generator, shape: Shape) -> dict[str, torch.Tensor]:
    """One masked batch in LukeForMaskedLM's keyword layout (see the module docstring)."""
    b, w, e = shape.batch, shape.words, shape.entities
    input_ids = rng.integers(4, shape.vocab, (b, w))
    labels = np.full((b, w), -100)
    masked = rng.random((b, w)) < MASK_PROB
    labels[masked], input_ids[masked] = input_ids[masked], shape.vocab - 1
    entity_ids = np.zeros((b, e), dtype=np.int64)
    entity_labels = np.full((b, e), -100)
    positions = np.full((b, e, MAX_MENTION_LENGTH), -1)
    for row in range(b):
        count = int(rng.integers(e // 2, e + 1))
        entity_ids[row, :count] = rng.integers(4, shape.entity_vocab, count)
        start = rng.integers(0, w - 5, count)
        length = rng.integers(1, 6, count)
        offsets = np.arange(MAX_MENTION_LENGTH)
        positions[row, :count] = np.where(offsets < length[:, None], start[:, None] + offsets, -1)
        picked = rng.choice(count, max(1, round(MASK_PROB * count)), replace=False)
        entity_labels[row, picked] = entity_ids[row, picked]
        entity_ids[row, picked] = ENTITY_MASK_ID
    arrays = dict(input_ids=input_ids, attention_mask=np.ones((b, w)), entity_ids=entity_ids,
                  entity_attention_mask=(entity_ids != 0), entity_position_ids=positions,
                  labels=labels, entity_labels=entity_labels)
    return {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in arrays.items()}


def model_flops_per_step(shape: Shape, batch: dict, entity_aware: bool) -> float:
    """Training FLOPs of one step (forward and backward: 3 x 2 FLOPs per multiply-add): encoder
    per token, heads per labelled position (the useful work; transformers' heads over every
    position are not counted)."""
    d, L, s = shape.hidden, shape.layers, shape.words + shape.entities
    per_token = 6 * L * (4 * d * d + 2 * d * shape.intermediate) + 12 * L * s * d
    if entity_aware:
        per_token += 6 * L * d * d  # the second query projection of every token
    words = int((batch["labels"] != -100).sum())
    entities = int((batch["entity_labels"] != -100).sum())
    word_head = 6 * (d * d + d * shape.vocab)
    entity_head = 6 * (d * 256 + 256 * shape.entity_vocab)
    tokens = shape.batch * s
    return tokens * per_token + words * word_head + entities * entity_head


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model, optimizer, batch, device) -> None:
    """Forward, backward, AdamW step. HF runs under the same bf16 autocast on
    CUDA that the fast model applies to itself."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_peak_memory(model, optimizer, batch, device) -> int:
    """Transient memory of one training step above the resting state (module docstring)."""
    if device.type == "cuda":
        synchronize(device)
        resting = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_step(model, optimizer, batch, device)
        return torch.cuda.max_memory_allocated(device) - resting
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_step(model, optimizer, batch, device)
    # Each event's self allocations (net of its own frees, not its children's), in start
    # order: nested ops would count an allocation twice with the inclusive figure.
    changes = sorted((ev.time_range.start, ev.self_cpu_memory_usage) for ev in prof.events()
                     if ev.self_cpu_memory_usage)
    live = np.cumsum([change for _, change in changes]) if changes else np.zeros(1)
    return int(max(live.max(), 0))


def device_peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def outputs_gap(models: dict, batch: dict) -> float:
    """Largest |fast - transformers| over the loss and the logits at the labelled positions,
    in eval mode (no dropout) on the weights both models hold now."""
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16,
                                         enabled=batch["input_ids"].is_cuda):
        outputs = {}
        for name, model in models.items():
            model.eval()
            outputs[name] = model(**batch)
            model.train()
    hf, fast = outputs["hf"], outputs["fast"]
    gaps = [(fast.loss - hf.loss).abs(),
            (fast.logits - hf.logits[batch["labels"] != -100]).abs().max(),
            (fast.entity_logits - hf.entity_logits[batch["entity_labels"] != -100]).abs().max()]
    return max(float(gap) for gap in gaps)


def make_optimizer(model, args):
    """AdamW, the same settings for both models. `fused` is torch's single-kernel AdamW (CPU and
    CUDA): on CPU it is about 8x faster than the default foreach AdamW at these sizes."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01,
                             fused=args.optimizer == "fused",
                             foreach=args.optimizer == "foreach")


def twin_models(args, device):
    """transformers' model and the fast one, holding the same initial weights."""
    config = luke_config(SIZES[args.size], args.eaa)
    torch.manual_seed(args.seed)
    models = {"hf": build_model(config, "hf").to(device),
              "fast": build_model(config, "fast", compile=args.compile).to(device)}
    models["fast"].load_state_dict(models["hf"].state_dict())
    return models


def run(args) -> dict:
    device = torch.device(args.device)
    shape = SIZES[args.size]
    models = twin_models(args, device)
    optimizers = {name: make_optimizer(m, args) for name, m in models.items()}
    rng = np.random.default_rng(args.seed)
    step_seconds = {name: [] for name in models}
    cpu_seconds = {name: [] for name in models}
    gap, flops = None, []
    for step in tqdm(range(args.warmup + args.steps), desc=f"luke-bench {args.size}",
                     unit="step", file=sys.stderr):
        batch = {k: v.to(device) for k, v in synthetic_batch(rng, shape).items()}
        if gap is None:
            gap = outputs_gap(models, batch)
        # Alternate who goes first, so that neither always finds the other's cache state.
        for name in (list(models) if step % 2 == 0 else list(reversed(models))):
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            train_step(models[name], optimizers[name], batch, device)
            synchronize(device)
            if step >= args.warmup:
                step_seconds[name].append(time.perf_counter() - start)
                cpu_seconds[name].append(time.process_time() - cpu_start)
        if step >= args.warmup:
            flops.append(model_flops_per_step(shape, batch, args.eaa))
    memory = {name: step_peak_memory(models[name], optimizers[name], batch, device)
              for name in models}
    return summarize(args, shape, device, (step_seconds, cpu_seconds), memory, gap,
                     float(np.mean(flops)))


def summarize(args, shape, device, seconds, memory, gap, flops_per_step) -> dict:
    """Figures per implementation from the median step time: robust to a noisy neighbour on a
    shared machine, where one slow step would otherwise move the mean. `cpu_s` is the process
    CPU time of a step (all threads): with --threads 1 on a busy machine it is the steadier
    estimate of what the step costs when the machine is idle."""
    step_seconds, cpu_seconds = seconds
    tokens = shape.batch * (shape.words + shape.entities)
    peak = device_peak_flops(device, args.peak_tflops)
    result = {"size": args.size, "device": str(device), "entity_aware": args.eaa,
              "compile": args.compile, "optimizer": args.optimizer, "steps": args.steps,
              "batch": shape.batch, "tokens_per_step": tokens,
              "torch_threads": torch.get_num_threads(), "max_abs_diff": gap,
              "peak_mem_method": ("torch.cuda.max_memory_allocated above resting"
                                  if device.type == "cuda"
                                  else "torch profiler allocation events above resting")}
    for name, prefix in (("fast", ""), ("hf", "hf_")):
        median = float(np.median(step_seconds[name]))
        result[prefix + "step_s"] = median
        result[prefix + "step_s_min"] = min(step_seconds[name])
        result[prefix + "cpu_s"] = float(np.median(cpu_seconds[name]))
        result[prefix + "tokens_per_s"] = tokens / median
        result[prefix + "peak_mem_bytes"] = memory[name]
        result[prefix + "mfu"] = flops_per_step / median / peak if peak else None
    result["speedup"] = result["hf_step_s"] / result["step_s"]
    result["cpu_time_speedup"] = result["hf_cpu_s"] / result["cpu_s"]
    return result


def print_figures(result: dict) -> None:
    print(f"luke-bench size={result['size']} device={result['device']} "
          f"entity_aware={result['entity_aware']} steps={result['steps']} "
          f"tokens/step={result['tokens_per_step']}")
    for name, prefix in (("transformers", "hf_"), ("fast", "")):
        mfu = result[prefix + "mfu"]
        print(f"  {name:12s} step {result[prefix + 'step_s'] * 1e3:9.1f} ms  "
              f"{result[prefix + 'tokens_per_s']:10.0f} tokens/s  "
              f"CPU {result[prefix + 'cpu_s']:6.2f} s  "
              f"peak step memory {result[prefix + 'peak_mem_bytes'] / 2**20:8.1f} MiB"
              + (f"  MFU {mfu:.1%}" if mfu is not None else ""))
    print(f"  speedup {result['speedup']:.2f}x (median step; "
          f"{result['cpu_time_speedup']:.2f}x in process CPU time)  largest loss/logit gap on the "
          f"same weights and batch {result['max_abs_diff']:.2e}")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="luke-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--eaa", action="store_true", help="entity-aware attention")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (default 2)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast model")
    parser.add_argument("--optimizer", choices=["fused", "foreach"], default="fused",
                        help="AdamW kernel, the same for both models (default fused)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak for MFU when the GPU is not known by name")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--steps and --threads must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("luke-bench: --device cuda but torch sees no CUDA GPU", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    print_figures(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
