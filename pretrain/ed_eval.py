"""`luke-eval MODEL --corpus DIR [--json]`: a zero-shot entity-disambiguation score.

MODEL is a directory written by `luke-export` or a training run (RUN: its latest checkpoint, or
`--checkpoint STEP`, consolidated exactly as `luke-export` does, nothing written). DIR is the
corpus build the model was trained on: the mention dictionary comes from its training pages and
the mentions from its validation examples (pretrain/ed_task.py); the masked-entity head ranks
each mention's candidates (pretrain/ed_score.py). The table sets the model's accuracy beside the
most-frequent-target (prior) baseline on the same mentions; `--json` prints one object instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from corpus import schema
from corpus.reader import Corpus, CorpusError
from pretrain import run_layout

EXCLUSION_TEXT = {"fewer_than_two_candidates": "fewer than two candidates",
                  "gold_outside_vocabulary": "gold entity outside the vocabulary",
                  "gold_not_a_candidate": "gold entity not among the candidates"}


class EvalError(Exception):
    """A model or corpus that cannot be evaluated; the message names it and why."""


def is_run(path: Path) -> bool:
    return (path / run_layout.MODEL_CONFIG_FILE).is_file()


def load_model(path: Path, checkpoint: int | None, corpus: Corpus):
    """(LukeForMaskedLM in eval mode, checkpoint step or None) from an export or a run (a run
    whose checkpoint learned another corpus's tokenizer or entity vocabulary is refused)."""
    from transformers import LukeForMaskedLM

    from pretrain.consolidate import CheckpointError
    from pretrain.export import ExportError, load_trained_model

    if is_run(path):
        try:
            model, step = load_trained_model(path, checkpoint, corpus)
        except (ExportError, CheckpointError) as error:
            raise EvalError(str(error)) from None
        return model.eval(), step
    if checkpoint is not None:
        raise EvalError(f"{path}: --checkpoint is for a training run; this is not one "
                        f"({run_layout.MODEL_CONFIG_FILE} missing)")
    if not (path / "config.json").is_file():
        raise EvalError(f"{path}: neither an exported model (config.json missing) nor a "
                        f"training run ({run_layout.MODEL_CONFIG_FILE} missing)")
    return LukeForMaskedLM.from_pretrained(path).eval(), None


def check_model_matches(model, path: Path, corpus: Corpus) -> None:
    """Refuse a model trained on another corpus: its ids would name other words and entities."""
    config = model.config
    if (config.vocab_size, config.entity_vocab_size) != (corpus.tokenizer.vocab_size,
                                                         corpus.entity_vocab.size):
        raise EvalError(f"{path}: the model has {config.vocab_size} words and "
                        f"{config.entity_vocab_size} entities, the corpus {corpus.directory} "
                        f"{corpus.tokenizer.vocab_size} and {corpus.entity_vocab.size}: "
                        "evaluate with the corpus the model was trained on")
    shipped = path / schema.ENTITY_VOCAB_FILE
    built = corpus.tokenizer_dir / schema.ENTITY_VOCAB_FILE
    if shipped.is_file() and json.loads(shipped.read_text(encoding="utf-8")) != \
            json.loads(built.read_text(encoding="utf-8")):
        raise EvalError(f"{shipped}: differs from the corpus's {built}: "
                        "evaluate with the corpus the model was trained on")


def evaluate(model, corpus: Corpus, batch_size: int, device, progress: bool = True) -> dict:
    """The score of `model` (transformers' LukeForMaskedLM) on the corpus's task."""
    from pretrain.ed_score import ed_result, masked_lm_entity_logits, model_correct
    from pretrain.ed_task import build_ed_task

    task = build_ed_task(corpus)
    model.to(device)
    right = model_correct(masked_lm_entity_logits(model), task, batch_size,
                          corpus.tokenizer.pad_token_id,
                          corpus.examples.limits.max_mention_length, device, progress=progress)
    return {**ed_result(task, right), "training_pages": task.training_pages,
            "dictionary_links": task.dictionary_links}


def format_accuracy(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_table(result: dict, model_name: str, corpus_dir) -> str:
    mentions, candidates = result["mentions"], result["candidates"]
    per_mention = f"{candidates / mentions:.2f}" if mentions else "n/a"
    excluded = result["excluded"]
    reasons = ", ".join(f"{EXCLUSION_TEXT[k]} {v:,}" for k, v in excluded.items())
    rows = [("masked-entity head of " + model_name, result["accuracy"]),
            ("prior: most frequent target", result["prior_accuracy"])]
    return "\n".join([
        f"Zero-shot entity disambiguation on the validation pages of {corpus_dir}",
        "",
        "| ranked by | accuracy | mentions | candidates (per mention) |",
        "|---|---|---|---|",
        *(f"| {name} | {format_accuracy(acc)} | {mentions:,} | {candidates:,} ({per_mention}) |"
          for name, acc in rows),
        "",
        f"Scored: the validation mentions with two or more candidates, gold among them "
        f"({mentions:,} of {result['validation_mentions']:,}). Excluded: {reasons}.",
        f"Mention dictionary: {result['dictionary_links']:,} links of "
        f"{result['training_pages']:,} training pages.",
    ])


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="luke-eval", description="Zero-shot entity disambiguation of an exported model or "
        "a training run on a corpus build's validation pages, against the prior baseline.")
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help="a luke-export directory, or a luke-train run directory")
    parser.add_argument("--corpus", type=Path, required=True, metavar="DIR",
                        help="the corpus build the model was trained on")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                        help="for a run: the step to evaluate (default: its latest checkpoint)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="validation examples per forward (default: 16)")
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when available, else cpu)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import torch

    from corpus.inspect import InspectError

    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if args.batch_size < 1:
            raise EvalError(f"--batch-size must be at least 1, got {args.batch_size}")
        # DeepSpeed, which transformers and the checkpoint merge import, logs to stdout when
        # it loads: keep stdout for the result.
        with contextlib.redirect_stdout(sys.stderr):
            corpus = Corpus.open(args.corpus, needs=("pages", "tokenizer", "validation"))
            model, step = load_model(args.model, args.checkpoint, corpus)
            check_model_matches(model, args.model, corpus)
            result = evaluate(model, corpus, args.batch_size, device)
    except (EvalError, CorpusError, InspectError) as error:
        print(f"luke-eval: error: {error}", file=sys.stderr)
        return 1
    result = {"model": str(args.model), "step": step, "corpus": str(args.corpus), **result}
    if args.json:
        print(json.dumps(result))
    else:
        name = str(args.model) + (f" (step {step})" if step is not None else "")
        print(format_table(result, name, args.corpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
