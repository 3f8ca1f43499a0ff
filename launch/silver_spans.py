"""Make a silver span-classification data set from a corpus build, to try the fine-tuning
recipe (launch/finetune_spans.py) on any exported model without labelled data of one's own.

Each paragraph of a page that has links becomes one example: every link's anchor text is a span
labelled `entity`, and for each link a span of as many words that overlaps no link is labelled
`other` (where the paragraph has room). Whether a span is linked is a task the masked-entity
pretraining never saw as such, so it shows whether fine-tuning works, not how good a model is.
The training pages give `train.jsonl`, the build's validation pages `validation.jsonl`; one JSON
object a line: {"text": ..., "spans": [[start, end], ...], "labels": [...]} with character
offsets into text, the format finetune_spans.py reads.

usage: python launch/silver_spans.py CORPUS_DIR --out DATA_DIR [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

WORD = re.compile(r"\S+")


def paragraphs_with_links(page: dict):
    """(paragraph text, [(start, end) of each link inside it]) for each paragraph with links."""
    offset = 0
    links = sorted(zip(page["link_start"], page["link_end"]))
    for paragraph in page["text"].split("\n"):
        end = offset + len(paragraph)
        inside = [(s - offset, e - offset) for s, e in links if offset <= s and e <= end and e > s]
        if inside:
            yield paragraph, inside
        offset = end + 1


def random_free_span(text: str, taken: list[tuple[int, int]], words: int,
                     rng: random.Random) -> tuple[int, int] | None:
    """A run of `words` whitespace-separated words that overlaps no span of `taken`, or None."""
    spans = [m.span() for m in WORD.finditer(text)]
    choices = [(spans[i][0], spans[i + words - 1][1]) for i in range(len(spans) - words + 1)]
    free = [(s, e) for s, e in choices if all(e <= ts or s >= te for ts, te in taken)]
    return rng.choice(free) if free else None


def silver_example(text: str, links: list[tuple[int, int]], rng: random.Random) -> dict:
    spans, labels = list(links), ["entity"] * len(links)
    for start, end in links:
        other = random_free_span(text, spans, len(text[start:end].split()) or 1, rng)
        if other is not None:
            spans.append(other)
            labels.append("other")
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    return {"text": text, "spans": [list(spans[i]) for i in order],
            "labels": [labels[i] for i in order]}


def write_split(pages, path: Path, max_examples: int | None, rng: random.Random) -> int:
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for page in pages:
            for text, links in paragraphs_with_links(page):
                if max_examples is not None and written >= max_examples:
                    return written
                out.write(json.dumps(silver_example(text, links, rng), ensure_ascii=False) + "\n")
                written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="a luke-corpus build directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the .jsonl files")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="at most this many examples per split (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random spans")
    args = parser.parse_args(argv)

    import datasets

    from corpus.reader import Corpus, CorpusError

    try:
        corpus = Corpus.open(args.corpus, needs=("pages",))
    except CorpusError as error:
        print(f"silver_spans: error: {error}", file=sys.stderr)
        return 1
    pages = datasets.load_from_disk(str(corpus.pages_dir))
    held_out = set(corpus.examples.validation_page_ids)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for name, keep in (("train", lambda p: p["id"] not in held_out),
                       ("validation", lambda p: p["id"] in held_out)):
        count = write_split((p for p in pages if keep(p)), args.out / f"{name}.jsonl",
                            args.max_examples, rng)
        print(f"{args.out / f'{name}.jsonl'}: {count} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
