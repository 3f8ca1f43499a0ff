"""Print what an exported model's masked-entity head predicts for a mention in a sentence.

Uses only transformers, as a user of the exported directory would: `AutoTokenizer` and
`LukeForMaskedLM` from HF_DIR. The mention's character span goes to the tokenizer as an
`entity_spans` entry without a title, so the tokenizer puts the `[MASK]` entity there; the
entity head then scores every title of the vocabulary for that slot.

usage: python launch/show_predictions.py HF_DIR [--text TEXT] [--mention MENTION] [--top-k K]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# A sentence in the domain of the bundled sample (its "Economy of Estonia" article), so that a
# model pretrained on that sample for a few minutes has seen these entities.
DEFAULT_TEXT = "Until joining the eurozone, the Estonian kroon had been pegged to the euro."
DEFAULT_MENTION = "Estonian kroon"


def mention_span(text: str, mention: str) -> tuple[int, int]:
    """Character span (start, end) of the first occurrence of `mention` in `text`."""
    start = text.find(mention)
    if start < 0:
        raise ValueError(f"mention {mention!r} does not occur in the text {text!r}")
    return start, start + len(mention)


def masked_entity_predictions(model_dir: Path, text: str, span: tuple[int, int],
                              top_k: int) -> list[tuple[str, float]]:
    """The top_k entity titles (with probabilities) the model predicts for the masked span."""
    import torch
    from transformers import AutoTokenizer, LukeForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = LukeForMaskedLM.from_pretrained(model_dir).eval()
    inputs = tokenizer(text, entity_spans=[span], return_tensors="pt")
    with torch.no_grad():
        entity_logits = model(**inputs).entity_logits[0, 0]
    probabilities, ids = entity_logits.softmax(-1).topk(min(top_k, entity_logits.numel()))
    title_of = {entity_id: title for title, entity_id in tokenizer.entity_vocab.items()}
    return [(title_of.get(i, f"<id {i}>"), p) for i, p in zip(ids.tolist(), probabilities.tolist())]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="a directory written by luke-export")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--mention", default=DEFAULT_MENTION,
                        help="the words of TEXT whose entity is masked (first occurrence)")
    parser.add_argument("--top-k", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.model_dir / "config.json").is_file():
        print(f"show_predictions: {args.model_dir} is not an exported model (no config.json): "
              f"run luke-export RUN --out {args.model_dir} first", file=sys.stderr)
        return 2
    try:
        span = mention_span(args.text, args.mention)
    except ValueError as error:
        print(f"show_predictions: {error}", file=sys.stderr)
        return 2
    masked = f"{args.text[:span[0]]}[{args.mention} -> [MASK]]{args.text[span[1]:]}"
    print(f"sentence: {masked}")
    print(f"top {args.top_k} entities predicted by {args.model_dir}:")
    for rank, (title, probability) in enumerate(
            masked_entity_predictions(args.model_dir, args.text, span, args.top_k), 1):
        print(f"  {rank}. {title:40s} {probability:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
