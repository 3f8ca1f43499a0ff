"""Benchmark of the training loop: `python -m pretrain.bench_train --corpus DIR [options]`.

Runs `luke-train`'s own loop (DeepSpeed, the configured model implementation, the prefetching
data path) for a number of steps in a scratch run directory and reads its figures from
metrics.jsonl; then, in the same process and on the same batches, a plain loop around
transformers' LukeForMaskedLM with torch's AdamW and no DeepSpeed. Prints sequences/s, tokens/s
and the share of step time spent waiting for data (the data path must keep it under 5%) for
both, their ratios, and last one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from pretrain.config import RunConfig, load_config, luke_config
from corpus.reader import Corpus
from pretrain.data import TrainBatches, training_sampler
from pretrain.metrics import read_metrics
from pretrain.train import build_model, param_groups, train

DATA_WAIT_LIMIT = 0.05


def loop_figures(records: list[dict], warmup: int) -> dict:
    """Throughput of the logged steps after the first `warmup` (compilation, allocator)."""
    steps = [r for r in records if r["kind"] == "train" and r["step"] > warmup]
    seconds = sum(r["seconds_per_step"] for r in steps)
    return {"steps": len(steps),
            "sequences_per_s": sum(r["sequences_per_s"] * r["seconds_per_step"] for r in steps) / seconds,
            "tokens_per_s": sum(r["tokens_per_s"] * r["seconds_per_step"] for r in steps) / seconds,
            "data_wait_share": sum(r["data_wait_share"] * r["seconds_per_step"] for r in steps) / seconds}


def bench_trainer(config: RunConfig, corpus_dir: Path, steps: int, warmup: int) -> dict:
    """The figures of luke-train's loop itself (a world of one)."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as run:
        train(config, corpus_dir, Path(run), resume=False)
        return loop_figures(read_metrics(Path(run)), warmup)


def bench_plain(config: RunConfig, corpus_dir: Path, steps: int, warmup: int) -> dict:
    """A plain PyTorch loop around transformers' LukeForMaskedLM on the same batches."""
    corpus = Corpus.open(corpus_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.train.seed)
    hf = dataclasses.replace(config.model, impl="hf", compile=False)
    model = build_model(luke_config(hf, corpus), hf).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, config.optim.weight_decay),
                                  lr=config.optim.lr, betas=config.optim.betas, eps=config.optim.eps)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.train.precision)
    sampler = training_sampler(corpus, config.train.global_batch_size,
                               config.train.micro_batch_size, 1, 0, config.train.seed,
                               config.data.language_alpha)
    stream = TrainBatches(corpus, "train", sampler, config.masking, config.train.seed).iter_from(0)
    seconds = sequences = tokens = waited = 0.0
    last, wait_before = time.perf_counter(), 0.0
    for step, micro_batches in stream:
        if step >= steps:
            break
        for batch in micro_batches:
            inputs = {k: v.to(device) for k, v in batch.items() if k != "page_ids"}
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model(**inputs).loss / len(micro_batches)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # wait for the device, as the trainer's logging does
        now = time.perf_counter()
        if step >= warmup:
            seconds += now - last
            waited += stream.wait_seconds - wait_before
            sequences += sum(len(b["page_ids"]) for b in micro_batches)
            tokens += sum(int(b["attention_mask"].sum() + b["entity_attention_mask"].sum())
                          for b in micro_batches)
        last, wait_before = now, stream.wait_seconds
    stream.close()
    return {"steps": steps - warmup, "sequences_per_s": sequences / seconds,
            "tokens_per_s": tokens / seconds, "data_wait_share": waited / seconds}


def describe(name: str, figures: dict) -> str:
    return (f"{name}: {figures['sequences_per_s']:.1f} sequences/s, "
            f"{figures['tokens_per_s']:.0f} tokens/s, data wait "
            f"{100 * figures['data_wait_share']:.2f}% of step time ({figures['steps']} steps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.bench_train", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("configs/tiny.toml"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the figures")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    config = load_config(args.config, [f"train.max_steps={args.steps}",
                                       f"train.save_every={args.steps}",
                                       f"train.eval_every={args.steps}", *args.overrides])
    trainer = bench_trainer(config, args.corpus, args.steps, args.warmup)
    plain = bench_plain(config, args.corpus, args.steps, args.warmup)
    impl = config.model.impl
    print(describe(f"luke-train loop (DeepSpeed ZeRO {config.train.zero_stage}, "
                   f"impl={impl}, {config.train.precision})", trainer))
    print(describe("plain loop (transformers LukeForMaskedLM, torch AdamW)", plain))
    ratio = trainer["sequences_per_s"] / plain["sequences_per_s"]
    ok = trainer["data_wait_share"] < DATA_WAIT_LIMIT
    print(f"ratio: {ratio:.2f}x the plain loop's sequences/s; data wait "
          f"{'under' if ok else 'OVER'} {DATA_WAIT_LIMIT:.0%}")
    print(json.dumps({"trainer": trainer, "plain": plain, "speedup": ratio,
                      "data_wait_ok": ok, "device": "cuda" if torch.cuda.is_available() else "cpu",
                      "impl": impl, "precision": config.train.precision}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
