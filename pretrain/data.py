"""The trainer's view of a corpus build: its manifest, the global example order, and batches.

- The corpus build is read through its one typed reader, `corpus.reader.Corpus.open(DIR)`,
  which refuses a build that is unfinished or of another schema version, naming what lacks.
- `StepSampler` gives the examples of each global step: the global order is a permutation of
  the examples per epoch (in a build of several languages, a mix that draws languages by
  size**alpha, pretrain/language_mix.py), a pure function of (seed, epoch), so the data
  position of a run is just its step. Each rank takes a disjoint contiguous slice of the
  step's global batch and splits it into micro-batches for gradient accumulation.
- `TrainBatches` reads only this rank's rows from the memory-mapped Arrow dataset, masks them
  (rng keyed on seed, step, rank, micro-batch), collates them, and prefetches whole steps in a
  background thread through a bounded queue; it counts the seconds the consumer waited.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from corpus import schema
from corpus.reader import Corpus, CorpusError
from pretrain.collate import MaskedExample, collate
from pretrain.language_mix import LanguageMix
from pretrain.masking import (MaskingConfig, eval_masking_rng, mask_entities, mask_words,
                              masking_rng)

SENTENCEPIECE_WORD_START = "\u2581"   # "▁": the piece begins a new word

# ---------------------------------------------------------------- word tables for masking

def tables_from_pieces(pieces: list[str], special_ids,
                       word_start_marker: str = SENTENCEPIECE_WORD_START
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(maskable, word_start) lookup tables indexed by word id, from the vocabulary's pieces;
    a piece starts a word when it begins with the tokenizer's marker ("▁" for sentencepiece,
    "Ġ", a space's byte, for byte-level BPE)."""
    word_start = np.array([p.startswith(word_start_marker) for p in pieces], dtype=bool)
    maskable = np.ones(len(pieces), dtype=bool)
    maskable[list(special_ids)] = False
    word_start &= maskable
    return maskable, word_start


def word_tables(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(maskable, word_start) of the corpus tokenizer, each a bool array of size vocab_size.
    Special and added tokens (<s>, <pad>, <mask>, <ent>, ...) are neither."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(corpus.tokenizer_dir))
    if len(tokenizer) != corpus.tokenizer.vocab_size:
        raise CorpusError(f"{corpus.tokenizer_dir}: tokenizer has {len(tokenizer)} ids but the "
                          f"manifest says vocab_size {corpus.tokenizer.vocab_size}")
    pieces = tokenizer.convert_ids_to_tokens(list(range(corpus.tokenizer.vocab_size)))
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return tables_from_pieces(pieces, sorted(special), corpus.tokenizer.word_start_marker)


def word_start_mask(corpus: Corpus) -> np.ndarray:
    """True for the ids whose piece starts a word (never for special ids)."""
    return word_tables(corpus)[1]


def maskable_mask(corpus: Corpus) -> np.ndarray:
    """True for the ids that masking may predict or draw as random replacements."""
    return word_tables(corpus)[0]


# ---------------------------------------------------------------- global order and rank slices

class StepSampler:
    """Which examples this rank reads at each global step; a pure function of its arguments."""

    def __init__(self, num_examples: int, global_batch_size: int, micro_batch_size: int,
                 world_size: int, rank: int, seed: int,
                 languages: tuple[tuple[int, int], ...] = (), language_alpha: float = 1.0):
        """`languages`: the [start, end) rows of each language of the split, drawn with
        probability proportional to size ** `language_alpha` (none or one: a plain
        permutation)."""
        if num_examples <= 0:
            raise ValueError(f"the split has {num_examples} examples: nothing to train on")
        if micro_batch_size <= 0 or world_size <= 0:
            raise ValueError(f"micro_batch_size ({micro_batch_size}) and world_size "
                             f"({world_size}) must be positive")
        if global_batch_size <= 0 or global_batch_size % (micro_batch_size * world_size):
            raise ValueError(
                f"global batch size {global_batch_size} is not a positive multiple of micro batch "
                f"size {micro_batch_size} x world size {world_size} = "
                f"{micro_batch_size * world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_examples = num_examples
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.mix = LanguageMix.of(list(languages), language_alpha, seed) \
            if len(languages) > 1 else None
        self.accumulation = global_batch_size // (micro_batch_size * world_size)
        self.rank_batch_size = global_batch_size // world_size
        self._permutations: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # the prefetch thread and the caller may both ask

    def epoch_of(self, step: int) -> int:
        """The epoch that the first example of global step `step` belongs to."""
        return step * self.global_batch_size // self.num_examples

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of all examples in `epoch`; the two most recent epochs are kept."""
        with self._lock:
            if epoch not in self._permutations:
                if self.mix is not None:
                    order = self.mix.epoch_order(epoch)
                else:
                    seq = np.random.SeedSequence(self.seed, spawn_key=(0, epoch))
                    order = np.random.default_rng(seq).permutation(self.num_examples)
                # int32 halves the memory of a 10M-example order held by every rank.
                self._permutations[epoch] = order.astype(
                    np.int32 if self.num_examples < 2**31 else np.int64)
                for old in sorted(self._permutations)[:-2]:
                    del self._permutations[old]
            return self._permutations[epoch]

    def global_positions(self, step: int) -> np.ndarray:
        """Positions in the endless stream of epochs that this rank reads at `step`."""
        first = step * self.global_batch_size + self.rank * self.rank_batch_size
        return np.arange(first, first + self.rank_batch_size, dtype=np.int64)

    def indices_for_step(self, step: int) -> list[list[int]]:
        """This rank's micro-batches of example indices for global step `step`."""
        if step < 0:
            raise ValueError(f"step {step} is negative")
        positions = self.global_positions(step)
        epochs, offsets = np.divmod(positions, self.num_examples)
        indices = np.empty_like(positions)
        for epoch in np.unique(epochs):  # a step may straddle an epoch boundary
            here = epochs == epoch
            indices[here] = self.permutation(int(epoch))[offsets[here]]
        return indices.reshape(self.accumulation, self.micro_batch_size).tolist()


def training_sampler(corpus: Corpus, global_batch_size: int, micro_batch_size: int,
                     world_size: int, rank: int, seed: int, language_alpha: float
                     ) -> StepSampler:
    """The StepSampler of the corpus's training split, its languages mixed by
    `language_alpha`."""
    return StepSampler(corpus.examples.num_examples, global_batch_size, micro_batch_size,
                       world_size, rank, seed,
                       languages=tuple(language.rows for language in corpus.examples.languages),
                       language_alpha=language_alpha)


# ---------------------------------------------------------------- rows, masking, batches

def read_rows(dataset, indices: list[int]) -> list[dict]:
    """The given rows of a memory-mapped Arrow dataset, as numpy arrays, in the given order."""
    table = dataset.with_format("arrow")[indices]
    columns = {name: column_values(table.column(name)) for name in schema.EXAMPLE_COLUMNS}
    return [{name: columns[name][i] for name in columns} for i in range(len(indices))]


def column_values(column) -> list:
    """A column of a pyarrow table as a list of numpy arrays (list columns) or of ints."""
    array = column.combine_chunks()
    if not hasattr(array, "offsets"):
        return array.to_numpy(zero_copy_only=False).tolist()
    offsets = array.offsets.to_numpy()
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return np.split(flat, offsets[1:-1] - offsets[0])


def check_row(row: dict, corpus: Corpus) -> None:
    """Refuse ids that would index past the model's tables (on a GPU: an opaque device assert)."""
    words, entities = row["word_ids"], row["entity_ids"]
    problems = []
    longest = corpus.examples.limits.max_seq_length
    if len(words) > longest:
        problems.append(f"{len(words)} word ids, more than max_seq_length {longest}")
    if len(words) and (words.min() < 0 or words.max() >= corpus.tokenizer.vocab_size):
        problems.append(f"word ids in [{words.min()}, {words.max()}], outside the vocabulary of "
                        f"{corpus.tokenizer.vocab_size}")
    if len(entities) and (entities.min() < 0 or entities.max() >= corpus.entity_vocab.size):
        problems.append(f"entity ids in [{entities.min()}, {entities.max()}], outside the entity "
                        f"vocabulary of {corpus.entity_vocab.size}")
    if problems:
        raise CorpusError(f"{corpus.directory}: example of page {row['page_id']}: "
                          + "; ".join(problems))


class TrainBatches:
    """Collated, masked micro-batches of one rank, step by step, prefetched in a thread."""

    def __init__(self, corpus: Corpus, split: str, sampler: StepSampler,
                 masking: MaskingConfig, seed: int, prefetch: int = 2, pin_memory: bool = False):
        self.corpus = corpus
        self.sampler = sampler
        self.masking = masking
        self.seed = seed
        self.prefetch = prefetch
        self.pin_memory = pin_memory
        self.dataset = open_split(corpus, split)
        if len(self.dataset) != corpus.split_size(split):
            raise CorpusError(f"{corpus.split_dir(split)}: holds {len(self.dataset)} examples, "
                              f"the manifest says {corpus.split_size(split)}: a broken build")
        if sampler.num_examples > len(self.dataset):
            raise CorpusError(f"{corpus.split_dir(split)}: sampler expects {sampler.num_examples} "
                              f"examples, the dataset holds {len(self.dataset)}")
        self._validation = None
        self.maskable, self.word_start = word_tables(corpus)
        self.wait_seconds = 0.0  # total time consumers of iter_from() waited for a batch

    def mask_example(self, row: dict, rng: np.random.Generator) -> MaskedExample:
        check_row(row, self.corpus)
        input_ids, labels = mask_words(row["word_ids"], self.maskable, self.word_start,
                                       self.masking, rng, self.corpus.tokenizer.mask_token_id,
                                       self.corpus.tokenizer.vocab_size)
        entity_ids, entity_labels = mask_entities(row["entity_ids"], self.masking, rng,
                                                  schema.ENTITY_MASK_ID)
        return MaskedExample(input_ids, labels, entity_ids, entity_labels,
                             row["entity_start"], row["entity_end"], int(row["page_id"]))

    def collate_rows(self, rows: list[dict], rng: np.random.Generator) -> dict:
        batch = collate([self.mask_example(row, rng) for row in rows],
                        self.corpus.tokenizer.pad_token_id,
                        self.corpus.examples.limits.max_mention_length)
        if self.pin_memory:
            batch = {key: value.pin_memory() for key, value in batch.items()}
        return batch

    def batch(self, step: int) -> list[dict]:
        """This rank's collated micro-batches of global step `step`."""
        micro_indices = self.sampler.indices_for_step(step)
        rows = read_rows(self.dataset, [i for micro in micro_indices for i in micro])
        size = self.sampler.micro_batch_size
        return [self.collate_rows(rows[m * size:(m + 1) * size],
                                  masking_rng(self.seed, step, self.sampler.rank, m))
                for m in range(len(micro_indices))]

    def iter_from(self, step: int) -> "Prefetcher":
        """(step, micro-batches) for step, step + 1, ... forever, built ahead in a thread."""
        return Prefetcher(self, step)

    def eval_batches(self, micro_batch_size: int, limit: int | None = None,
                     rows: tuple[int, int] | None = None, language: int = 0
                     ) -> Iterator[dict]:
        """This rank's share of the first `limit` micro-batches (all of them when None or 0) of
        the validation split's `rows` ([start, end); all rows when None; the rows of the
        corpus's language number `language`), dealt round-robin over ranks, with the same
        masks at every call. A rank may get no batch at all when the rows are few: sum the
        counts across ranks."""
        if self._validation is None:
            self._validation = open_split(self.corpus, "validation")
        first, end = rows if rows is not None else (0, len(self._validation))
        starts = range(first, end, micro_batch_size)[:limit or None]
        for number, b in itertools.islice(enumerate(starts), self.sampler.rank, None,
                                          self.sampler.world_size):
            indices = list(range(b, min(b + micro_batch_size, end)))
            rng = eval_masking_rng(self.seed, number, language)
            yield self.collate_rows(read_rows(self._validation, indices), rng)


def open_split(corpus: Corpus, split: str):
    """The split's Arrow dataset, memory-mapped (never read into memory as a whole)."""
    import datasets

    path = corpus.split_dir(split)
    if corpus.split_size(split) == 0 and not path.exists():
        return datasets.Dataset.from_dict({name: [] for name in schema.EXAMPLE_COLUMNS})
    try:
        dataset = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise CorpusError(f"{path}: cannot open the {split} examples ({e})") from None
    missing = [c for c in schema.EXAMPLE_COLUMNS if c not in dataset.column_names]
    if missing:
        raise CorpusError(f"{path}: examples lack column(s) {', '.join(missing)}")
    return dataset


class Prefetcher:
    """Iterator over (step, micro-batches) built ahead by a daemon thread into a bounded queue.
    `wait_seconds` (here and summed on the TrainBatches) is the time `next()` blocked."""

    def __init__(self, batches: TrainBatches, step: int):
        self.batches = batches
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, batches.prefetch))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(step,), daemon=True,
                                        name=f"prefetch-rank{batches.sampler.rank}")
        self._thread.start()

    def _produce(self, step: int) -> None:
        for s in itertools.count(step):
            try:
                item = (s, self.batches.batch(s))
            except Exception as e:  # handed to the consumer, which raises it with the step
                item = (s, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item[1], Exception):
                return

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, list[dict]]:
        started = time.perf_counter()
        while True:
            try:
                step, batches = self._queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError("the batch prefetch thread has stopped") from None
        waited = time.perf_counter() - started
        self.wait_seconds += waited
        self.batches.wait_seconds += waited
        if isinstance(batches, Exception):
            self.close()
            raise RuntimeError(f"reading the batch of step {step} failed: {batches}") from batches
        return step, batches

    def close(self) -> None:
        """Stop the thread; the iterator must not be used afterwards."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __del__(self):
        self._stop.set()
