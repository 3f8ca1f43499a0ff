"""Fine-tune an exported model for span classification with transformers' Trainer.

The recipe a user follows with their own data: `LukeForEntitySpanClassification` loaded from
a `luke-export` directory, the exported tokenizer with task="entity_span_classification", and
transformers' `Trainer` (which needs `accelerate`: `pip install -e '.[finetune]'`, which
launch/setup.sh does). Data: JSON lines {"text": ..., "spans": [[start, end], ...],
"labels": [...]}, character spans with one label each (launch/silver_spans.py makes a silver
set from a corpus build).

Texts longer than --max-length tokens are cut before the tokenizer call by
pretrain.entity_truncation.fit_all, which drops the spans past the cut with their labels and
says how many: the LUKE tokenizers of transformers 5 raise AttributeError (no
`truncate_sequences`) when asked to truncate with entity spans. The fine-tuned model and its
tokenizer are saved to OUT, which `from_pretrained` loads as it is. Prints the held-out
accuracy over spans next to the majority label's.

usage: python launch/finetune_spans.py HF_DIR --train train.jsonl --validation validation.jsonl
           --out OUT [--epochs 3] [--batch-size 8] [--lr 5e-5] [--max-length 256] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

IGNORE_INDEX = -100


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def encode(records: list[dict], tokenizer, label2id: dict[str, int], max_length: int
           ) -> list[dict]:
    """Tokenizer features plus `labels` (one per kept span); records left with no span are
    skipped."""
    from pretrain.entity_truncation import fit_all

    fitted = fit_all(tokenizer, [r["text"] for r in records],
                     [[tuple(s) for s in r["spans"]] for r in records], max_length=max_length)
    features = []
    for record, fit in zip(records, fitted):
        if not fit.kept:
            continue
        encoded = dict(tokenizer(fit.text, entity_spans=fit.entity_spans))
        encoded["labels"] = [label2id[record["labels"][i]] for i in fit.kept]
        features.append(encoded)
    return features


def collator(tokenizer):
    """Pads words and entities with the tokenizer and the span labels with -100."""
    import torch

    def collate(features: list[dict]) -> dict:
        labels = [f["labels"] for f in features]
        batch = tokenizer.pad([{k: v for k, v in f.items() if k != "labels"} for f in features],
                              return_tensors="pt")
        width = batch["entity_ids"].shape[1]
        batch["labels"] = torch.tensor([row + [IGNORE_INDEX] * (width - len(row))
                                        for row in labels])
        return batch
    return collate


def span_accuracy(prediction) -> dict:
    """Accuracy over the labelled spans (Trainer pads logits and labels with -100)."""
    logits, labels = prediction.predictions, prediction.label_ids
    wanted = labels != IGNORE_INDEX
    return {"accuracy": float((logits.argmax(-1)[wanted] == labels[wanted]).mean())}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a directory written by luke-export")
    parser.add_argument("--train", type=Path, required=True, help="training data (JSON lines)")
    parser.add_argument("--validation", type=Path, required=True,
                        help="held-out data (JSON lines)")
    parser.add_argument("--out", type=Path, required=True,
                        help="where the fine-tuned model and tokenizer go")
    parser.add_argument("--epochs", type=float, default=3.0, help="training epochs (3)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per batch (8)")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (5e-5)")
    parser.add_argument("--max-length", type=int, default=256,
                        help="word tokens per example, special tokens included (256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of Trainer (0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers import (AutoTokenizer, LukeForEntitySpanClassification, Trainer,
                              TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, task="entity_span_classification")
    train_records, held_out = read_jsonl(args.train), read_jsonl(args.validation)
    labels = sorted({label for r in train_records for label in r["labels"]})
    if not train_records or not held_out:
        print("finetune_spans: error: --train and --validation must each hold examples",
              file=sys.stderr)
        return 1
    label2id = {label: i for i, label in enumerate(labels)}
    train = encode(train_records, tokenizer, label2id, args.max_length)
    evaluation = encode([r for r in held_out if set(r["labels"]) <= set(labels)], tokenizer,
                        label2id, args.max_length)
    model = LukeForEntitySpanClassification.from_pretrained(
        args.model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id=label2id)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(args.out), num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size, learning_rate=args.lr,
            eval_strategy="epoch", save_strategy="no", logging_steps=10, report_to="none",
            seed=args.seed),
        train_dataset=train, eval_dataset=evaluation, data_collator=collator(tokenizer),
        compute_metrics=span_accuracy)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(args.out))
    tokenizer.save_pretrained(str(args.out))
    majority = Counter(label for f in evaluation for label in f["labels"]).most_common(1)
    spans = sum(len(f["labels"]) for f in evaluation)
    print(f"held-out span accuracy {metrics['eval_accuracy']:.4f} on {spans} spans of "
          f"{len(evaluation)} examples (majority label: "
          f"{majority[0][1] / spans if spans else 0:.4f}); model saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
