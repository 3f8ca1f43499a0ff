"""`luke-corpus inspect DIR`: show built examples as text with each mention and its entity marked.

The examples store only ids; the text is recovered by running the same pure functions
(corpus.examples) on the example's page with the build's tokenizer and limits, and keeping the
derived example whose ids equal the stored ones exactly (an unknown character decodes to
`<unk>`, so decoding ids could not give the text back). A stored example with no equal
derivation means the pages, tokenizer or code changed since the build, and is reported.

  luke-corpus inspect DIR [--random N --seed S] [--split examples|validation] [--json] [--check]
  luke-corpus inspect DIR --stats [--json]     (quality figures per language: corpus/quality.py)

--json prints one object a line: text, entities (titles, as keys of entity_vocab.json),
entity_spans (character spans in text), word_ids, entity_ids, page_id, row. For each of them,
`tokenizer(text, entities=entities, entity_spans=entity_spans,
max_entity_length=len(entities), truncation=False)` with DIR/tokenizer gives back word_ids and
entity_ids; --check runs exactly that and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from corpus.examples import Example, examples_from_pages
from corpus.reader import Corpus, CorpusError
from corpus.word_encoder import WordEncoder
from corpus.word_tokenizer import load_tokenizer


class InspectError(Exception):
    """The build cannot be inspected; the message names the directory and what is wrong."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a luke-corpus build directory")
    parser.add_argument("--random", type=int, metavar="N",
                        help="show N examples drawn at random (default: the first 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random (default: 0)")
    parser.add_argument("--split", choices=("examples", "validation"), default="examples")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--check", action="store_true",
                        help="re-tokenize each shown example with transformers and compare ids")
    parser.add_argument("--stats", action="store_true",
                        help="print quality figures per language instead of examples: links "
                             "per article, spans on their anchors, markup left per MB, "
                             "mentions per sequence (with --json: one JSON object)")


def run(args: argparse.Namespace) -> int:
    if args.stats:
        return _run_stats(args)
    try:
        view = CorpusView(args.dir, args.split)
        rows = choose_rows(len(view.dataset), args.random, args.seed)
        mismatches = 0
        for row in rows:
            example = view.example(row)
            print(json.dumps(example_json(example, row), ensure_ascii=False) if args.json
                  else format_example(example, row))
            if args.check and not view.round_trips(example):
                mismatches += 1
                print(f"luke-corpus: MISMATCH: {args.split} row {row}: transformers' tokenizer "
                      f"gives other ids for this text", file=sys.stderr)
    except InspectError as error:
        print(f"luke-corpus: error: {error}", file=sys.stderr)
        return 1
    if args.check:
        print(f"luke-corpus: checked {len(rows)} examples, {mismatches} mismatches",
              file=sys.stderr)
    return 1 if mismatches else 0


def _run_stats(args: argparse.Namespace) -> int:
    from corpus.quality import StatsError, print_stats

    try:
        print_stats(args.dir, args.json)
    except StatsError as error:
        print(f"luke-corpus: error: {error}", file=sys.stderr)
        return 1
    return 0


def choose_rows(num_rows: int, random: int | None, seed: int) -> list[int]:
    if random is None:
        return list(range(min(5, num_rows)))
    picked = np.random.default_rng(seed).choice(num_rows, size=min(random, num_rows),
                                                replace=False)
    return sorted(int(r) for r in picked)


class CorpusView:
    """A build's split with what re-derives its examples' text: pages, tokenizer, limits."""

    def __init__(self, directory: Path, split: str):
        import datasets

        split_name = "train" if split == "examples" else "validation"
        try:
            corpus = Corpus.open(directory, needs=("pages", "tokenizer", split_name))
        except CorpusError as error:
            raise InspectError(str(error)) from None
        self.corpus, self.split_name = corpus, split_name
        self.dataset = datasets.load_from_disk(str(corpus.split_dir(split_name)))
        self.pages = datasets.load_from_disk(str(corpus.pages_dir))
        self.row_of_page = {page_id: row for row, page_id in enumerate(self.pages["id"])}
        self.tokenizer = load_tokenizer(corpus.tokenizer_dir)
        self.encoder = WordEncoder(self.tokenizer)
        self.entity_vocab = dict(self.tokenizer.entity_vocab)
        self.limits = corpus.examples.limits
        self.directory, self.split = directory, split
        self._derived: dict[int, list[Example]] = {}
        self._titles: dict[str, dict[str, int]] = {}

    def language_of(self, row: int):
        """The LanguageExamples (corpus.reader) whose rows of this split hold `row`."""
        for entry in self.corpus.examples.languages:
            start, end = entry.rows if self.split_name == "train" else entry.validation_rows
            if start <= row < end:
                return entry
        raise InspectError(f"{self.directory}/{self.split} row {row}: no language's rows hold it")

    def titles(self, language: str) -> dict[str, int]:
        """Entity ids of one language's link targets (its keys without the language prefix)."""
        if language not in self._titles:
            from corpus.examples_stage import titles_of_language
            self._titles[language] = titles_of_language(
                self.entity_vocab, self.corpus.entity_vocab.key_prefix(language))
        return self._titles[language]

    def example(self, row: int) -> Example:
        """The stored example of `row`, with its text (re-derived and matched on ids)."""
        stored = self.dataset[row]
        page_id = stored["page_id"]
        for example in self._page_examples(page_id, self.language_of(row)):
            if example.row() == stored:
                return example
        raise InspectError(f"{self.directory}/{self.split} row {row} (page {page_id}): no "
                           f"example derived from the page has these ids; the pages, tokenizer "
                           f"or code changed since the build")

    def _page_examples(self, page_id: int, language) -> list[Example]:
        if page_id not in self._derived:
            if page_id not in self.row_of_page:
                raise InspectError(f"{self.directory}: page {page_id} is not in pages/")
            page = self.pages[self.row_of_page[page_id]]
            self._derived[page_id] = examples_from_pages(
                [page], self.encoder, language.locale, self.titles(language.language),
                self.limits, Counter(), self.corpus.entity_vocab.key_prefix(language.language))
        return self._derived[page_id]

    def round_trips(self, example: Example) -> bool:
        """Whether transformers' own call on the text gives the stored ids back."""
        data = example_json(example, 0)
        encoded = self.tokenizer(data["text"], entities=data["entities"],
                                 entity_spans=[tuple(s) for s in data["entity_spans"]],
                                 max_entity_length=len(data["entities"]), truncation=False)
        return encoded["input_ids"] == data["word_ids"] and \
            encoded["entity_ids"] == data["entity_ids"]


def example_json(example: Example, row: int) -> dict:
    return {"text": example.text,
            "entities": [m.title for m in example.mentions],
            "entity_spans": [[m.start, m.end] for m in example.mentions],
            "word_ids": example.word_ids.tolist(), "entity_ids": example.entity_ids,
            "page_id": example.page_id, "row": row}


def format_example(example: Example, row: int) -> str:
    """The text with each mention shown as [anchor text](Entity title)."""
    parts, cursor = [], 0
    for mention in example.mentions:
        title = mention.title if mention.title != "[UNK]" else f"[UNK] {mention.target}"
        parts += [example.text[cursor:mention.start],
                  f"[{example.text[mention.start:mention.end]}]({title})"]
        cursor = mention.end
    parts.append(example.text[cursor:])
    header = (f"--- row {row}, page {example.page_id}: {len(example.word_ids)} tokens, "
              f"{len(example.mentions)} entities")
    return header + "\n" + "".join(parts) + "\n"
