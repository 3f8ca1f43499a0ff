"""The zero-shot entity-disambiguation task of a corpus build: which validation mentions are
scored, their candidate entities, and the most-frequent-target (prior) baseline.

A mention dictionary is counted from the links of the TRAINING pages only (every page but the
build's validation pages): anchor text -> link target -> how many links, one dictionary per
language of the build. Anchor texts are
compared whitespace-collapsed, as the examples' texts are. For each mention of the validation
examples, its candidates are the targets of its anchor text that are in the entity vocabulary,
the most linked first (ties: the lower entity id, i.e. the more linked overall); the first one is
the prior baseline's answer. A mention is scored when it has at least two candidates and its
gold entity is one of them; the others are counted by reason:

- `fewer_than_two_candidates`: the training pages link its anchor text to at most one entity of
  the vocabulary (often to none: an anchor text seen only on the validation pages);
- `gold_outside_vocabulary`: its link target is not in the entity vocabulary (`[UNK]`);
- `gold_not_a_candidate`: the training pages never link its anchor text to its target.

The validation examples' text and mention spans are re-derived from the pages by
corpus.inspect.CorpusView (matched to the stored ids); the model's inputs are the stored ids.
Counting reads only the links whose anchor text some validation mention has, so the dictionary
stays small whatever the dump's size; the pages are read once, with a progress bar.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from corpus.examples import UNK_TITLE
from corpus.progress import count_progress, item_progress
from corpus.reader import Corpus, CorpusError

EXCLUSION_REASONS = ("fewer_than_two_candidates", "gold_outside_vocabulary",
                     "gold_not_a_candidate")
PAGE_BATCH = 1000


@dataclass(frozen=True)
class ScoredMention:
    slot: int                        # the mention's index among its example's entities
    gold: int                        # entity id of its link target
    candidates: tuple[int, ...]      # entity ids, most linked first: candidates[0] is the prior

    @property
    def prior(self) -> int:
        return self.candidates[0]


@dataclass(frozen=True)
class TaskExample:
    """A validation example (its stored columns) and its scored mentions, by slot."""
    row: dict
    mentions: tuple[ScoredMention, ...]


@dataclass
class EDTask:
    examples: list[TaskExample]      # only examples with at least one scored mention
    validation_mentions: int         # every mention of the validation examples
    excluded: Counter = field(default_factory=Counter)
    training_pages: int = 0          # pages the dictionary was counted from
    dictionary_links: int = 0        # links of those pages whose anchor text was looked up

    @property
    def mentions(self) -> int:
        return sum(len(example.mentions) for example in self.examples)

    @property
    def candidates(self) -> int:
        return sum(len(m.candidates) for e in self.examples for m in e.mentions)

    @property
    def prior_correct(self) -> int:
        return sum(m.prior == m.gold for e in self.examples for m in e.mentions)

    def describe(self) -> str:
        prior = self.summary()["prior_accuracy"]
        return (f"{self.mentions} of {self.validation_mentions} validation mentions (two or more "
                f"candidates, gold among them); prior accuracy "
                f"{'n/a' if prior is None else f'{prior:.4f}'}")

    def summary(self) -> dict:
        """The counts that describe the task (and the prior baseline's accuracy)."""
        mentions = self.mentions
        return {"prior_accuracy": self.prior_correct / mentions if mentions else None,
                "mentions": mentions, "candidates": self.candidates,
                "validation_mentions": self.validation_mentions,
                "excluded": {reason: self.excluded[reason] for reason in EXCLUSION_REASONS}}


def anchor_key(text: str) -> str:
    """An anchor text as the dictionary compares it: whitespace runs collapsed, ends trimmed."""
    return " ".join(text.split())


def count_anchor_targets(pages: Iterable[dict], skip_page_ids: set[int], wanted: set[str]
                         ) -> tuple[dict[str, Counter], int, int]:
    """({anchor text: Counter(link target)} for the anchors in `wanted`, pages read, links
    looked up) over the pages whose id is not in `skip_page_ids`."""
    targets: dict[str, Counter] = defaultdict(Counter)
    pages_read = links = 0
    for page in pages:
        if page["id"] in skip_page_ids:
            continue
        pages_read += 1
        text = page["text"]
        for start, end, target in zip(page["link_start"], page["link_end"], page["link_target"]):
            links += 1
            anchor = anchor_key(text[start:end])
            if anchor in wanted:
                targets[anchor][target] += 1
    return dict(targets), pages_read, links


def ranked_candidates(targets: Counter, entity_vocab: dict[str, int]) -> tuple[int, ...]:
    """Entity ids of the targets in the vocabulary, most linked first, then by lower id."""
    known = [(count, entity_vocab[title]) for title, count in targets.items()
             if title in entity_vocab]
    return tuple(entity_id for _, entity_id in sorted(known, key=lambda c: (-c[0], c[1])))


def iter_pages(pages_dataset) -> Iterable[dict]:
    """Every page row (id, text and links), read in batches, with a progress bar."""
    columns = ["id", "text", "link_start", "link_end", "link_target"]
    with count_progress(len(pages_dataset), "mention dictionary", unit="page") as bar:
        for batch in pages_dataset.select_columns(columns).iter(batch_size=PAGE_BATCH):
            for i in range(len(batch["id"])):
                yield {name: batch[name][i] for name in columns}
            bar.update(len(batch["id"]))


def build_ed_task(corpus: Corpus) -> EDTask:
    """The task of a finished build (see the module docstring)."""
    from corpus.inspect import CorpusView

    if not corpus.examples.validation_examples:
        raise CorpusError(f"{corpus.directory}: has no validation examples to disambiguate "
                          "(rebuild it with --validation-pages N)")
    view = CorpusView(corpus.directory, "validation")
    rows = item_progress(range(len(view.dataset)), "validation examples", unit="example")
    examples = [(view.language_of(row).language, view.example(row)) for row in rows]
    # One dictionary per language: an anchor text means other things in other languages.
    targets: dict[str, dict[str, Counter]] = {}
    pages_read = links = 0
    for language in corpus.pages.languages:
        wanted = {anchor_key(e.text[m.start:m.end]) for lang, e in examples
                  if lang == language.language for m in e.mentions}
        targets[language.language], read, looked_up = count_anchor_targets(
            iter_pages(view.pages.select(range(*language.rows))),
            set(corpus.examples.validation_page_ids), wanted)
        pages_read, links = pages_read + read, links + looked_up
    task = EDTask([], validation_mentions=sum(len(e.mentions) for _, e in examples),
                  training_pages=pages_read, dictionary_links=links)
    for language, example in examples:
        scored = []
        for slot, mention in enumerate(example.mentions):
            anchor = anchor_key(example.text[mention.start:mention.end])
            candidates = ranked_candidates(targets[language].get(anchor, Counter()),
                                           view.titles(language))
            reason = exclusion_reason(mention.title, mention.entity_id, candidates)
            if reason:
                task.excluded[reason] += 1
            else:
                scored.append(ScoredMention(slot, mention.entity_id, candidates))
        if scored:
            task.examples.append(TaskExample(example.row(), tuple(scored)))
    return task


def exclusion_reason(title: str, gold: int, candidates: tuple[int, ...]) -> str | None:
    """Why a mention is not scored (EXCLUSION_REASONS), or None when it is."""
    if len(candidates) < 2:
        return "fewer_than_two_candidates"
    if title == UNK_TITLE:
        return "gold_outside_vocabulary"
    if gold not in candidates:
        return "gold_not_a_candidate"
    return None
