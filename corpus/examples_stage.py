"""Build stage `examples`: pages -> packed, tokenized sequences in DIR/examples and DIR/validation.

The pages are cut into shards of consecutive rows; worker processes turn each shard into
examples (corpus.examples, with the tokenizer in DIR/tokenizer) and save it as an Arrow file in
a parts directory beside the build (DIR/.examples-parts), with a marker written only after the
data. A rerun after an interruption finds the finished shards' markers and does only the rest,
provided the plan (inputs, limits, shards) is the same; otherwise it starts over. At the end
the parts become the files of one saved `datasets.Dataset` per split by renaming: this process
never copies the examples. The workers share what is large and read-only: the pages are
memory-mapped, and so is the entity vocabulary, as a TitleIndex file (corpus/title_index.py)
that each batch of pages looks its link targets up in.

Validation pages (`--validation-pages`) are drawn from the seed, held out of DIR/examples
entirely, and built the same way into DIR/validation.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.arrow_files import (data_file_name, read_dataset, take_rows, write_dataset_dir,
                                write_table)
from corpus.examples import Example, cyclic_gc_paused, examples_from_pages
from corpus.options import Limits, StageContext
from corpus.progress import count_progress
from corpus.schema import (ENTITY_VOCAB_FILE, EXAMPLE_COLUMNS, EXAMPLES_DIR, PAGES_DIR,
                           TOKENIZER_DIR, VALIDATION_DIR)
from corpus.word_encoder import WordEncoder
from corpus.title_index import TitleIndex
from corpus.word_tokenizer import read_entity_vocab, tokenizer_fingerprint
from corpus.workers import process_map

PARTS_DIR = ".examples-parts"
MAX_PAGES_PER_SHARD = 1000
MAX_SHARDS = 64              # on a small dump: shards of fewer pages, down to one page each
PAGES_PER_CALL = 256         # pages tokenized per call: the more, the fewer distinct words per
                             # running word (WordEncoder); 256 pages hold tens of MB as objects
ROWS_PER_BATCH = 1000        # examples per record batch of the saved files
ENTITY_INDEX_FILE = "entity_vocab.index"
ENTITY_ID = "id"
HISTOGRAM_BIN = 64           # tokens per bin of the length histogram


@dataclass(frozen=True, eq=False)
class ShardJob:
    """Everything a worker needs to build one shard (picklable, no open handles)."""
    split: str               # "examples" or "validation"
    index: int
    rows: np.ndarray         # row numbers in the pages dataset, of one language (int64)
    pages_dir: str
    tokenizer_dir: str
    locale: str
    limits: Limits
    parts_dir: str
    language: str = ""       # the language of its pages
    key_prefix: str = ""     # before a title in the entity vocabulary's keys ("en:" or "")

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


def run(ctx: StageContext) -> dict:
    """Write DIR/examples and DIR/validation; return the manifest section."""
    import datasets

    options = ctx.options
    pages_dir = ctx.out_dir / PAGES_DIR
    tokenizer_dir = ctx.out_dir / TOKENIZER_DIR
    limits = options.limits()
    limits.check()
    pages = datasets.load_from_disk(str(pages_dir))
    keys = ctx.manifest["entity_vocab"].get("keys", "title")
    parts_dir = parts_dir_of(pages_dir)
    languages = [LanguagePlan(entry["language"], entry["language"],
                              range(*entry["rows"]),
                              f"{entry['language']}:" if keys == "language:title" else "")
                 for entry in ctx.manifest["pages"]["languages"]]
    held_out = {plan.language: choose_validation_rows(len(plan.rows), options.validation_pages,
                                                      options.seed, plan.rows.start)
                for plan in languages}
    jobs = plan_jobs(languages, held_out, pages_dir, tokenizer_dir, limits, parts_dir)
    plan_key = _plan_key(jobs, tokenizer_fingerprint(tokenizer_dir), ctx.manifest)
    results = run_jobs(jobs, plan_key, parts_dir, ctx.workers)
    section = summarize(jobs, results, limits)
    for entry in section["languages"]:
        # Arrow's take: the held-out rows one by one through datasets cost 0.25 ms each
        entry["validation_page_ids"] = sorted(pages.data.column("id").take(
            pa.array(held_out[entry["language"]], pa.int64())).to_pylist())
    for split, out_name in (("examples", EXAMPLES_DIR), ("validation", VALIDATION_DIR)):
        split_results = [(job, r) for job, r in zip(jobs, results) if job.split == split]
        join_parts(split_results, ctx.out_dir / out_name, section["fingerprint"])
    shutil.rmtree(parts_dir, ignore_errors=True)
    return section


@dataclass(frozen=True)
class LanguagePlan:
    """What the stage needs of one language: its pages' rows and how to read them."""
    language: str
    locale: str              # the sentence splitter's: the language's code
    rows: range              # its rows in the pages dataset
    key_prefix: str          # before a title in the entity vocabulary's keys


def choose_validation_rows(num_pages: int, count: int, seed: int, first: int = 0) -> list[int]:
    """Rows of the held-out pages (of a language whose rows start at `first`): `count` drawn
    without replacement from `seed`, sorted. A language keeps at least one page for training
    (a small language of a multilingual build would otherwise be held out whole)."""
    count = min(count, max(num_pages - 1, 0))
    rng = np.random.default_rng(seed)
    return sorted(first + int(r) for r in rng.choice(num_pages, size=count, replace=False))


def parts_dir_of(pages_dir: Path) -> Path:
    """Beside the real build directory: the driver's staging directory (where this stage
    writes, with pages/ linked in) is removed on failure, and the parts must outlive it."""
    return Path(os.path.realpath(pages_dir)).parent / PARTS_DIR


def plan_jobs(languages: list[LanguagePlan], held_out: dict[str, list[int]], pages_dir: Path,
              tokenizer_dir: Path, limits: Limits, parts_dir: Path) -> list[ShardJob]:
    """Shards of consecutive training rows, language after language, then each language's
    validation rows; a shard holds one language. The shards depend on the number of pages
    only (not on --workers), so the fingerprint does not either; up to MAX_SHARDS of them per
    language keep workers balanced on a small dump, and MAX_PAGES_PER_SHARD bounds the work
    lost by an interruption on a large one (held-out pages are sharded by it too)."""
    common = dict(pages_dir=str(pages_dir), tokenizer_dir=str(tokenizer_dir), limits=limits,
                  parts_dir=str(parts_dir))
    train, validation = [], []
    for plan in languages:
        own = dict(common, locale=plan.locale, language=plan.language,
                   key_prefix=plan.key_prefix)
        excluded = np.asarray(held_out[plan.language], dtype=np.int64)
        rows = np.setdiff1d(np.arange(plan.rows.start, plan.rows.stop, dtype=np.int64),
                            excluded)
        shards = max(1, min(len(rows), max(MAX_SHARDS, -(-len(rows) // MAX_PAGES_PER_SHARD))))
        train += [ShardJob("examples", len(train) + i, chunk, **own)
                  for i, chunk in enumerate(np.array_split(rows, shards))]
        # held-out pages in shards of the same bound: one shard of them all (70,000 pages
        # for 1% of English) would be one worker's work after the others end
        validation += [ShardJob("validation", len(validation) + i, chunk, **own)
                       for i, chunk in enumerate(np.array_split(
                           excluded, max(1, -(-len(excluded) // MAX_PAGES_PER_SHARD))))]
    return train + validation


def _plan_key(jobs: list[ShardJob], tokenizer_digest: str, upstream: dict) -> str:
    """A digest of what the parts depend on; parts made under another key are discarded."""
    digest = hashlib.sha256()
    for job in jobs:        # the rows as bytes: a JSON text of millions of row numbers is slow
        digest.update(json.dumps([job.name, job.locale, job.key_prefix,
                                  asdict(job.limits)]).encode())
        digest.update(np.asarray(job.rows, dtype=np.int64).tobytes())
    digest.update(json.dumps({"tokenizer": tokenizer_digest,
                              "pages": upstream.get("pages", {}).get("fingerprint"),
                              "entity_vocab": upstream.get("entity_vocab", {}).get("fingerprint")},
                             sort_keys=True).encode())
    return digest.hexdigest()


def run_jobs(jobs: list[ShardJob], plan_key: str, parts_dir: Path, workers: int) -> list[dict]:
    """Each job's result, building only the shards not already finished under this plan."""
    plan_file = parts_dir / "plan.json"
    if not plan_file.is_file() or json.loads(plan_file.read_text())["key"] != plan_key:
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        plan_file.write_text(json.dumps({"key": plan_key}))
    write_entity_index(Path(jobs[0].tokenizer_dir), parts_dir)   # before any worker needs it
    results = {job.name: finished_result(job) for job in jobs}
    todo = [job for job in jobs if results[job.name] is None]
    pages_todo = sum(len(job.rows) for job in todo)
    bar = count_progress(pages_todo, "examples (tokenize, pack)")
    if 0 < pages_todo < sum(len(job.rows) for job in jobs):
        bar.write(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} shards already built")
    built = 0
    for job, result in zip(todo, process_map(build_shard, todo, workers)):
        results[job.name] = result
        built += result["counts"].get("examples", 0)
        bar.set_postfix_str(f"{built:,} examples", refresh=False)
        bar.update(len(job.rows))
    bar.close()
    return [results[job.name] for job in jobs]


def part_file(job: ShardJob) -> Path:
    return Path(job.parts_dir) / f"{job.name}.arrow"


def finished_result(job: ShardJob) -> dict | None:
    marker = Path(job.parts_dir) / f"{job.name}.json"
    if marker.is_file() and part_file(job).is_file():
        return json.loads(marker.read_text())
    return None


def build_shard(job: ShardJob) -> dict:
    """Build and save one shard; its marker (counts, digest) is written last, atomically.

    Workers read pages and write parts with pyarrow alone: importing `datasets` would cost
    each worker half a second, as much as tokenizing a hundred pages. Each batch's examples
    become Arrow at once, so a worker holds its shard as compact columns, not Python lists."""
    encoder = _encoder(job.tokenizer_dir)
    entities = _entity_index(job.tokenizer_dir, job.parts_dir)
    pages = _pages(job.pages_dir)
    counts: Counter = Counter()
    lengths: Counter = Counter()
    tables = []
    # The collector paused for the whole shard, not batch by batch (examples_from_pages): each
    # re-enabling let the next allocation walk every object the batch had made (profiled: 0.2
    # to 0.4 CPU s per 400 pages); the batches leave little alive for the one collection at
    # the end.
    with single_threaded_tokenizers(), cyclic_gc_paused():
        for start in range(0, len(job.rows), PAGES_PER_CALL):
            batch = take_rows(pages, job.rows[start:start + PAGES_PER_CALL])
            vocab = batch_entity_vocab(batch, entities, job.key_prefix)
            examples = examples_from_pages(batch.to_pylist(), encoder, job.locale, vocab,
                                           job.limits, counts, job.key_prefix)
            lengths.update((len(e.word_ids) - 1) // HISTOGRAM_BIN for e in examples)
            tables.append(examples_table(examples))
    table = pa.concat_tables(tables) if tables else example_schema().empty_table()
    write_table(part_file(job), table, example_schema(), ROWS_PER_BATCH)
    result = {"counts": dict(counts), "lengths": {str(k): v for k, v in lengths.items()},
              "digest": table_digest(table)}
    marker = Path(job.parts_dir) / f"{job.name}.json"
    marker.with_suffix(".tmp").write_text(json.dumps(result))
    marker.with_suffix(".tmp").rename(marker)
    return result


def examples_table(examples: list[Example]) -> pa.Table:
    """The examples as an Arrow table of example_schema(), column by column; the word ids from
    the examples' arrays joined, not converted int by int."""
    schema = example_schema()
    columns = {name: [getattr(example, name) for example in examples]
               for name in schema.names if name != "word_ids"}
    arrays = [example.word_ids for example in examples]
    offsets = np.zeros(len(arrays) + 1, np.int32)
    np.cumsum([len(ids) for ids in arrays], out=offsets[1:])
    words = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    columns["word_ids"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(words, pa.int32()))
    return pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)


def batch_entity_vocab(batch: pa.Table, entities: TitleIndex, key_prefix: str = ""
                       ) -> dict[str, int]:
    """title -> entity id for the link targets of a batch of pages that are in the vocabulary
    (as `key_prefix` + title: the keys of one language in a build of several): a dict of a
    few thousand titles at most, where a dict of the whole vocabulary would cost every worker
    ~100 MB (500,000 titles)."""
    targets = pc.unique(pc.list_flatten(batch.column("link_target")))
    keys = pc.binary_join_element_wise(key_prefix, targets, "") if key_prefix else targets
    rows = entities.find(keys)
    found = rows >= 0
    ids = entities.column(ENTITY_ID).to_numpy()[rows[found]]
    return dict(zip(targets.filter(pa.array(found)).to_pylist(), ids.tolist()))


@contextlib.contextmanager
def single_threaded_tokenizers():
    """The tokenizers library on one thread while a shard is built: the stage's parallelism is
    its worker processes, and its own thread pool on top would oversubscribe the cores (with
    one worker too, its threads cost more than they gain on the many small per-piece texts)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def load_encoder(tokenizer_dir: Path) -> WordEncoder:
    """A new encoder for a tokenizer directory, from its tokenizer.json (tokenizers alone:
    importing transformers costs each worker seconds)."""
    return WordEncoder.from_file(Path(tokenizer_dir) / "tokenizer.json")


@functools.lru_cache(maxsize=2)
def _encoder(tokenizer_dir: str) -> WordEncoder:
    """The tokenizer's encoder, loaded once per process."""
    return load_encoder(Path(tokenizer_dir))


def entity_index_file(parts_dir: Path) -> Path:
    return Path(parts_dir) / ENTITY_INDEX_FILE


def write_entity_index(tokenizer_dir: Path, parts_dir: Path) -> Path:
    """The tokenizer's entity vocabulary as a TitleIndex file (title -> id) that every worker
    memory-maps: one copy in the page cache, not a dict per worker."""
    path = entity_index_file(parts_dir)
    vocab = read_entity_vocab(Path(tokenizer_dir) / ENTITY_VOCAB_FILE)
    index = TitleIndex.build(pa.array(list(vocab), pa.string()),
                             **{ENTITY_ID: pa.array(list(vocab.values()), pa.int32())})
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    index.write(tmp)
    os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=2)
def _entity_index(tokenizer_dir: str, parts_dir: str) -> TitleIndex:
    """The entity vocabulary's index, memory-mapped once per process (written by the stage
    before its workers start; made here when a shard is built on its own)."""
    path = entity_index_file(Path(parts_dir))
    if not path.is_file():
        write_entity_index(Path(tokenizer_dir), Path(parts_dir))
    return TitleIndex.open(path)


def titles_of_language(vocab: dict[str, int], key_prefix: str) -> dict[str, int]:
    """title -> entity id for the keys of one language (`en:Tokyo` -> `Tokyo` with key prefix
    "en:"); a vocabulary keyed by bare titles as it is."""
    if not key_prefix:
        return vocab
    return {key[len(key_prefix):]: entity_id for key, entity_id in vocab.items()
            if key.startswith(key_prefix)}


@functools.lru_cache(maxsize=2)
def _pages(pages_dir: str):
    """The pages dataset as one memory-mapped Arrow table, read once per process."""
    return read_dataset(Path(pages_dir))


def example_schema() -> pa.Schema:
    """The Arrow schema of the examples (workers write it without importing datasets)."""
    ids = pa.list_(pa.int32())
    return pa.schema([("word_ids", ids), ("entity_ids", ids), ("entity_start", ids),
                      ("entity_end", ids), ("page_id", pa.int64())])


def table_digest(table: pa.Table) -> str:
    """A digest of a shard's stored values, column by column (the examples fingerprint is made
    of these): each list column's lengths and values, as 64-bit integers."""
    digest = hashlib.sha256()
    for column in EXAMPLE_COLUMNS:
        values = table.column(column).combine_chunks()
        if pa.types.is_list(values.type):
            digest.update(pc.list_value_length(values).to_numpy(zero_copy_only=False)
                          .astype(np.int64).tobytes())
            values = values.flatten()
        digest.update(values.to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def summarize(jobs: list[ShardJob], results: list[dict], limits: Limits) -> dict:
    """The manifest figures: sizes, counts (dropped items included), histogram, fingerprint;
    and per language its row ranges in both splits (the jobs are in row order) and counts."""
    counts: Counter = Counter()
    train_counts: Counter = Counter()
    lengths: Counter = Counter()
    for job, result in zip(jobs, results):
        counts.update(result["counts"])
        if job.split == "examples":
            train_counts.update(result["counts"])
            lengths.update({int(k): v for k, v in result["lengths"].items()})
    fingerprint = hashlib.sha256("".join(r["digest"] for r in results).encode()).hexdigest()
    languages: dict[str, dict] = {}
    ends = {"examples": 0, "validation": 0}
    for job, result in zip(jobs, results):
        entry = languages.setdefault(job.language, {
            "language": job.language, "locale": job.locale, "rows": None,
            "validation_rows": None, "counts": Counter()})
        # Every language has at least one job of each split (plan_jobs), the first of them
        # where its range of that split starts.
        span = "rows" if job.split == "examples" else "validation_rows"
        if entry[span] is None:
            entry[span] = [ends[job.split]] * 2
        ends[job.split] += result["counts"].get("examples", 0)
        entry[span][1] = ends[job.split]
        entry["counts"].update(result["counts"])
    return {
        "fingerprint": fingerprint,
        "num_examples": ends["examples"],
        "validation_examples": ends["validation"],
        "tokens": train_counts["tokens"],
        "entities": train_counts["entities"],
        "max_seq_length": limits.max_seq_length,
        "max_entities": limits.max_entities,
        "max_mention_length": limits.max_mention_length,
        "languages": [{**e, "counts": {k: int(v) for k, v in sorted(e["counts"].items())}}
                      for e in languages.values()],
        "length_histogram": {f"{b * HISTOGRAM_BIN + 1}-{(b + 1) * HISTOGRAM_BIN}": lengths[b]
                             for b in sorted(lengths)},
        "counts": {key: int(value) for key, value in sorted(counts.items())},
    }


def join_parts(split_results: list[tuple[ShardJob, dict]], out: Path, fingerprint: str) -> None:
    """The split as a saved dataset whose files are the parts themselves, renamed into `out`
    in shard order (no copy)."""
    parts = [part_file(job) for job, result in split_results if result["counts"].get("examples")]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = [data_file_name(number, max(1, len(parts))) for number in range(max(1, len(parts)))]
    for part, name in zip(parts, names):
        os.replace(part, tmp / name)
    if not parts:                  # a split without examples: one file of no rows
        write_table(tmp / names[0], example_schema().empty_table(), example_schema(),
                    ROWS_PER_BATCH)
    write_dataset_dir(tmp, names, example_schema(), fingerprint)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
