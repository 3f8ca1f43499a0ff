"""`luke-corpus bench-tokenize DIR`: speed of the examples stage per worker, against transformers.

On one core (one worker; the tokenizers library's own threads are switched off), over the pages
of a finished build, it times:
  - examples: the whole per-page work of the examples stage (sentence split, mention pieces,
    tokenization, packing) as corpus.examples runs it in each worker, three ways: with the
    word cache warm (a worker past its first pages), cold (a new worker: a new encoder each
    pass), and without the cache (every text to the tokenizers backend);
  - transformers batch: the build's tokenizer called the usual fast way,
    `tokenizer(paragraphs)`, on the same text: the floor for getting ids at all;
  - transformers entity_spans: `tokenizer(text, entities=..., entity_spans=...)` per built
    example, the documented way to get ids with mention spans.
and prints tokens/s and MB/s for each with the ratios to the examples stage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

MB = 1_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a finished luke-corpus build")
    parser.add_argument("--pages", type=int, default=2000, help="pages to use (default: 2000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="passes over the pages; the fastest counts (default: 3)")


def run(args: argparse.Namespace) -> int:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"   # one core, as in one stage worker
    from corpus.inspect import CorpusView

    view = CorpusView(args.dir, "examples")
    pages = [view.pages[i] for i in range(min(args.pages, len(view.pages)))]
    megabytes = sum(len(p["text"].encode("utf-8")) for p in pages) / MB
    examples_pass(view.encoder, view, pages)             # the worker's cache, warmed up
    examples, ours = best_of(args.repeat, lambda: examples_pass(view.encoder, view, pages))
    tokens = sum(len(e.word_ids) for e in examples)
    cold_encoders = []
    _, cold = best_of(args.repeat, lambda: examples_pass(fresh_encoder(view, cold_encoders),
                                                         view, pages))
    _, uncached = best_of(args.repeat, lambda: examples_pass(fresh_encoder(view, use_cache=False),
                                                             view, pages))
    paragraphs = [line for p in pages for line in p["text"].split("\n") if line.strip()]
    batch_tokens, batch = best_of(args.repeat, lambda: batch_pass(view.tokenizer, paragraphs))
    _, spans = best_of(args.repeat, lambda: entity_spans_pass(view.tokenizer, examples))
    print(f"bench-tokenize: {len(pages)} pages, {megabytes:.2f} MB of text, one worker "
          f"(one core), best of {args.repeat}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (figures are noisy when it exceeds the cores)")
    print(f"  examples stage             {megabytes / ours:6.2f} MB/s  "
          f"{tokens / ours:10,.0f} tokens/s  ({len(examples)} examples, {tokens:,} tokens kept; "
          f"word cache warm)")
    first = cold_encoders[0]
    print(f"    cold word cache          {megabytes / cold:6.2f} MB/s  {tokens / cold:10,.0f} "
          f"tokens/s  (a new worker: {first.words_encoded:,} distinct words encoded for "
          f"{first.words_looked_up:,} running words, {first.words_bypassed:,} in calls that "
          f"bypassed the cache)")
    print(f"    no word cache            {megabytes / uncached:6.2f} MB/s  "
          f"{tokens / uncached:10,.0f} tokens/s  (every text to the tokenizers backend)")
    print(f"  transformers batch call    {megabytes / batch:6.2f} MB/s  "
          f"{batch_tokens / batch:10,.0f} tokens/s  (same pages, no mentions)")
    print(f"  transformers entity_spans  {'':6}        {tokens / spans:10,.0f} tokens/s  "
          f"(one call per built example)")
    print(f"  examples stage / transformers batch: {batch / ours:.2f}x the speed "
          f"(cold cache {batch / cold:.2f}x, no cache {batch / uncached:.2f}x); "
          f"/ transformers entity_spans: {spans / ours:.2f}x")
    return 0


def best_of(repeat: int, func):
    """(result, fastest seconds) of `repeat` calls."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
    return result, best


def fresh_encoder(view, made: list | None = None, use_cache: bool = True):
    """A new encoder, as a new worker process has (appended to `made` when given)."""
    from corpus.examples_stage import load_encoder
    from corpus.schema import TOKENIZER_DIR

    encoder = load_encoder(view.directory / TOKENIZER_DIR)
    encoder.use_cache = encoder.use_cache and use_cache
    if made is not None:
        made.append(encoder)
    return encoder


def examples_pass(encoder, view, pages):
    from corpus.examples_stage import PAGES_PER_CALL
    from corpus.examples import examples_from_pages

    language = view.corpus.examples.languages[0]       # the pages are the first language's
    examples = []
    for start in range(0, len(pages), PAGES_PER_CALL):   # as the stage's workers batch them
        examples += examples_from_pages(
            pages[start:start + PAGES_PER_CALL], encoder, language.locale,
            view.titles(language.language), view.limits, Counter(),
            view.corpus.entity_vocab.key_prefix(language.language))
    return examples


def batch_pass(tokenizer, paragraphs) -> int:
    ids = tokenizer(paragraphs)["input_ids"]
    return sum(len(i) for i in ids)


def entity_spans_pass(tokenizer, examples) -> None:
    for example in examples:
        tokenizer(example.text, entities=[m.title for m in example.mentions],
                  entity_spans=[(m.start, m.end) for m in example.mentions],
                  max_entity_length=len(example.mentions), truncation=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
