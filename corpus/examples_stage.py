"""Build stage `examples`: pages -> packed, tokenized sequences in DIR/examples and DIR/validation.

The pages are cut into shards of consecutive rows; worker processes turn each shard into
examples (corpus.examples, with the tokenizer in DIR/tokenizer) and save it as a small Arrow
dataset in a parts directory beside the build (DIR/.examples-parts), with a marker written only
after the data. A rerun after an interruption finds the finished shards' markers and does only
the rest, provided the plan (inputs, limits, shards) is the same; otherwise it starts over. At
the end the parts are joined into one `datasets.Dataset` per split, saved with several shards.

Validation pages (`--validation-pages`) are drawn from the seed, held out of DIR/examples
entirely, and built the same way into DIR/validation.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from corpus.examples import examples_from_pages
from corpus.options import Limits, StageContext
from corpus.progress import count_progress
from corpus.schema import (ENTITY_VOCAB_FILE, EXAMPLE_COLUMNS, EXAMPLES_DIR, PAGES_DIR,
                           TOKENIZER_DIR, VALIDATION_DIR)
from corpus.word_encoder import WordEncoder
from corpus.word_tokenizer import read_entity_vocab, tokenizer_fingerprint
from corpus.workers import exit_with_parent

PARTS_DIR = ".examples-parts"
MAX_PAGES_PER_SHARD = 1000
MAX_SHARDS = 64              # on a small dump: shards of fewer pages, down to one page each
PAGES_PER_CALL = 64          # pages tokenized per backend call (bounded memory)
MIN_OUTPUT_SHARDS = 4
OUTPUT_SHARD_BYTES = 256 << 20
HISTOGRAM_BIN = 64           # tokens per bin of the length histogram


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to build one shard (picklable, no open handles)."""
    split: str               # "examples" or "validation"
    index: int
    rows: tuple[int, ...]    # row numbers in the pages dataset (all of one language)
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
        entry["validation_page_ids"] = sorted(pages.select(held_out[entry["language"]])["id"])
    for split, out_name in (("examples", EXAMPLES_DIR), ("validation", VALIDATION_DIR)):
        split_results = [(job, r) for job, r in zip(jobs, results) if job.split == split]
        join_parts(split_results, ctx.out_dir / out_name)
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
    lost by an interruption on a large one."""
    common = dict(pages_dir=str(pages_dir), tokenizer_dir=str(tokenizer_dir), limits=limits,
                  parts_dir=str(parts_dir))
    train, validation = [], []
    for plan in languages:
        own = dict(common, locale=plan.locale, language=plan.language,
                   key_prefix=plan.key_prefix)
        excluded = set(held_out[plan.language])
        rows = np.array([r for r in plan.rows if r not in excluded], dtype=np.int64)
        shards = max(1, min(len(rows), max(MAX_SHARDS, -(-len(rows) // MAX_PAGES_PER_SHARD))))
        train += [ShardJob("examples", len(train) + i, tuple(int(r) for r in chunk), **own)
                  for i, chunk in enumerate(np.array_split(rows, shards))]
        validation.append(ShardJob("validation", len(validation),
                                   tuple(held_out[plan.language]), **own))
    return train + validation


def _plan_key(jobs: list[ShardJob], tokenizer_digest: str, upstream: dict) -> str:
    """A digest of what the parts depend on; parts made under another key are discarded."""
    text = json.dumps({"jobs": [(j.name, j.rows, j.locale, j.key_prefix, asdict(j.limits))
                                for j in jobs],
                       "tokenizer": tokenizer_digest,
                       "pages": upstream.get("pages", {}).get("fingerprint"),
                       "entity_vocab": upstream.get("entity_vocab", {}).get("fingerprint")},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def run_jobs(jobs: list[ShardJob], plan_key: str, parts_dir: Path, workers: int) -> list[dict]:
    """Each job's result, building only the shards not already finished under this plan."""
    plan_file = parts_dir / "plan.json"
    if not plan_file.is_file() or json.loads(plan_file.read_text())["key"] != plan_key:
        shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True)
        plan_file.write_text(json.dumps({"key": plan_key}))
    results = {job.name: finished_result(job) for job in jobs}
    todo = [job for job in jobs if results[job.name] is None]
    pages_todo = sum(len(job.rows) for job in todo)
    bar = count_progress(pages_todo, "examples (tokenize, pack)")
    if 0 < pages_todo < sum(len(job.rows) for job in jobs):
        bar.write(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} shards already built")
    built = 0
    for job, result in zip(todo, _map(build_shard, todo, workers)):
        results[job.name] = result
        built += result["counts"].get("examples", 0)
        bar.set_postfix_str(f"{built:,} examples", refresh=False)
        bar.update(len(job.rows))
    bar.close()
    return [results[job.name] for job in jobs]


def _map(func, jobs: list[ShardJob], workers: int):
    """func over jobs in order, on `workers` processes when more than one."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(func, jobs)
        return
    # forkserver: never fork a process whose threads (tqdm, tokenizers) hold locks.
    with multiprocessing.get_context("forkserver").Pool(workers,
                                                        initializer=exit_with_parent) as pool:
        yield from pool.imap(func, jobs)


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
    each worker half a second, as much as tokenizing a hundred pages."""
    import pyarrow as pa

    encoder, entity_vocab = _encoder(job.tokenizer_dir, job.key_prefix)
    pages = _pages(job.pages_dir)
    counts: Counter = Counter()
    rows = {column: [] for column in EXAMPLE_COLUMNS}
    lengths: Counter = Counter()
    with single_threaded_tokenizers():
        for start in range(0, len(job.rows), PAGES_PER_CALL):
            batch = pages.take(job.rows[start:start + PAGES_PER_CALL]).to_pylist()
            for example in examples_from_pages(batch, encoder, job.locale, entity_vocab,
                                               job.limits, counts, job.key_prefix):
                for column, value in example.row().items():
                    rows[column].append(value)
                lengths[(len(example.word_ids) - 1) // HISTOGRAM_BIN] += 1
    digest = rows_digest(rows)
    out = part_file(job)
    tmp = out.with_name(out.name + ".tmp")
    table = pa.Table.from_pydict(rows, schema=example_schema())
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)   # the IPC stream format that datasets' own files use
    tmp.rename(out)
    result = {"counts": dict(counts), "lengths": {str(k): v for k, v in lengths.items()},
              "digest": digest}
    marker = Path(job.parts_dir) / f"{job.name}.json"
    marker.with_suffix(".tmp").write_text(json.dumps(result))
    marker.with_suffix(".tmp").rename(marker)
    return result


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
def _encoder(tokenizer_dir: str, key_prefix: str = ""):
    """The tokenizer's encoder and the entity ids of one language's titles, loaded once per
    process and language."""
    vocab = read_entity_vocab(Path(tokenizer_dir) / ENTITY_VOCAB_FILE)
    return load_encoder(Path(tokenizer_dir)), titles_of_language(vocab, key_prefix)


def titles_of_language(vocab: dict[str, int], key_prefix: str) -> dict[str, int]:
    """title -> entity id for the keys of one language (`en:Tokyo` -> `Tokyo` with key prefix
    "en:"); a vocabulary keyed by bare titles as it is."""
    if not key_prefix:
        return vocab
    return {key[len(key_prefix):]: entity_id for key, entity_id in vocab.items()
            if key.startswith(key_prefix)}


@functools.lru_cache(maxsize=2)
def _pages(pages_dir: str):
    """The pages dataset as one memory-mapped Arrow table (the files `datasets` saved)."""
    import pyarrow as pa

    state = json.loads((Path(pages_dir) / "state.json").read_text())
    tables = []
    for entry in state["_data_files"]:
        with pa.memory_map(str(Path(pages_dir) / entry["filename"])) as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables)


def example_schema():
    """The Arrow schema of the examples (workers write it without importing datasets)."""
    import pyarrow as pa
    ids = pa.list_(pa.int32())
    return pa.schema([("word_ids", ids), ("entity_ids", ids), ("entity_start", ids),
                      ("entity_end", ids), ("page_id", pa.int64())])


def example_features():
    """The same schema as datasets features."""
    import datasets
    return datasets.Features.from_arrow_schema(example_schema())


def rows_digest(rows: dict[str, list]) -> str:
    """A digest of a shard's stored values (the examples fingerprint is made of these)."""
    digest = hashlib.sha256()
    for column in EXAMPLE_COLUMNS:
        for value in rows[column]:
            digest.update(np.asarray(value, dtype=np.int64).tobytes())
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


def join_parts(split_results: list[tuple[ShardJob, dict]], out: Path) -> None:
    """One dataset for the split, saved with (up to) one file per part."""
    import datasets

    parts = [datasets.Dataset.from_file(str(part_file(job)))
             for job, result in split_results if result["counts"].get("examples")]
    dataset = datasets.concatenate_datasets(parts) if parts else \
        datasets.Dataset.from_dict({c: [] for c in EXAMPLE_COLUMNS}, features=example_features())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_datasets():
        dataset.save_to_disk(str(tmp), num_shards=output_shards(len(parts), dataset))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def output_shards(num_parts: int, dataset) -> int:
    """Files of the saved split: about OUTPUT_SHARD_BYTES each, at least MIN_OUTPUT_SHARDS
    (so readers can split work), never more than there are parts or rows."""
    wanted = max(MIN_OUTPUT_SHARDS, -(-dataset.data.nbytes // OUTPUT_SHARD_BYTES))
    return max(1, min(num_parts, len(dataset), wanted))


@contextlib.contextmanager
def quiet_datasets():
    """No datasets progress bar per saved part: this stage shows its own bar."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
