"""Build stage `tokenizer`: write DIR/tokenizer, the build's LUKE word tokenizer.

Three ways, chosen by the build options:
  - `--base-model DIR`: the tokenizer of an existing encoder (RoBERTa or XLM-R family),
    expressed as a LUKE tokenizer with the base's ids (corpus/base_tokenizer.py), so that a
    model initialised from the base reads every word as the base did;
  - `--tokenizer DIR`: an existing LUKE tokenizer directory reused, so that several dumps or a
    continued run share word ids; it must carry this corpus's entity vocabulary;
  - otherwise a unigram sentencepiece model trained on the pages' text with
    `--word-vocab-size` pieces (lowered with a warning when the text cannot support so many);
    in a build of several languages, on a sample in which each language's share is
    proportional to its paragraphs to the power `--language-alpha`.
The manifest section records what the trainer and the examples stage need to know of it: its
kind, its special ids, its size, its fingerprint, and the base model it came from.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from corpus import word_tokenizer as wt
from corpus.options import StageContext
from corpus.progress import item_progress
from corpus.schema import ENTITY_VOCAB_DIR, ENTITY_VOCAB_FILE, PAGES_DIR, TOKENIZER_DIR

PROBE_LINES = 2000   # paragraphs on which a base model's LUKE tokenizer is checked against it


def run(ctx: StageContext) -> dict:
    """Write DIR/tokenizer and return the manifest section."""
    options = ctx.options
    out_dir = ctx.out_dir / TOKENIZER_DIR
    vocab_path = ctx.out_dir / ENTITY_VOCAB_DIR / ENTITY_VOCAB_FILE
    entity_vocab = wt.read_entity_vocab(vocab_path)
    base, shares = None, {}
    if options.base_model is not None:
        from corpus.base_tokenizer import open_base_model, write_base_tokenizer_dir

        base = open_base_model(Path(options.base_model))
        probes = (" ".join(line.split()) for line in _page_lines(ctx.out_dir / PAGES_DIR))
        write_base_tokenizer_dir(base, out_dir, entity_vocab, islice(probes, PROBE_LINES))
    elif options.tokenizer is not None:
        wt.check_same_entity_vocab(Path(options.tokenizer), entity_vocab, vocab_path)
        wt.copy_tokenizer_dir(Path(options.tokenizer), out_dir)
    else:
        languages = ctx.manifest["pages"]["languages"]
        if len(languages) == 1:
            lines = _page_lines(ctx.out_dir / PAGES_DIR)
        else:
            lines, shares = balanced_lines(ctx.out_dir / PAGES_DIR, languages,
                                           options.language_alpha, options.seed)
        sp_model, _ = wt.train_sentencepiece(lines, options.word_vocab_size, seed=options.seed)
        wt.write_tokenizer_dir(out_dir, sp_model, entity_vocab)
    section = manifest_section(out_dir, ctx, base)
    if shares:
        section["training_lines"] = shares
    return section


def _page_lines(pages_dir: Path, rows: range | None = None):
    """The training lines of the pages (of the rows given), with a progress bar."""
    import datasets

    pages = datasets.load_from_disk(str(pages_dir)).select_columns(["text"])
    if rows is not None:
        pages = pages.select(rows)
    batches = pages.iter(batch_size=1000)
    for batch in item_progress(batches, "tokenizer (reading text)", unit="batch",
                               total=-(-len(pages) // 1000)):
        yield from wt.training_lines(batch["text"])


def balanced_lines(pages_dir: Path, languages: list[dict], alpha: float, seed: int
                   ) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Training lines of several languages, each language's share of them proportional to its
    number of paragraphs to the power `alpha` (below 1, small languages gain on large ones, as
    mLUKE sampled its languages): at most SP_MAX_TRAINING_LINES in all. A language with more
    paragraphs than its share is sampled (reservoir, memory bounded by the share); one with
    fewer repeats them, drawn with replacement, so that it keeps its weight. Returns the lines
    and, per language, its paragraphs and the lines it gave."""
    import numpy as np

    sizes = np.array([paragraphs(pages_dir, range(*entry["rows"])) for entry in languages],
                     dtype=np.float64)
    total = min(wt.SP_MAX_TRAINING_LINES, int(sizes.sum()))
    weights = sizes ** alpha
    quotas = np.round(total * weights / weights.sum()).astype(int)
    chosen: list[str] = []
    shares = {}
    for number, (entry, quota) in enumerate(zip(languages, quotas)):
        lines = wt.sample_lines(_page_lines(pages_dir, range(*entry["rows"])), int(quota),
                                seed + number)
        if 0 < len(lines) < quota:
            rng = np.random.default_rng([seed, number])
            lines += [lines[i] for i in rng.integers(0, len(lines), size=quota - len(lines))]
        chosen += lines
        shares[entry["language"]] = {"paragraphs": int(sizes[number]), "lines": len(lines)}
    return chosen, shares


def paragraphs(pages_dir: Path, rows: range) -> int:
    """About how many training lines the rows hold (their paragraphs; Arrow, no Python loop)."""
    import datasets
    import pyarrow.compute as pc

    text = datasets.load_from_disk(str(pages_dir)).data.table.column("text")
    text = text.slice(rows.start, len(rows))
    return int(pc.sum(pc.count_substring(text, "\n")).as_py() or 0) + len(rows)


def manifest_section(tokenizer_dir: Path, ctx: StageContext, base=None) -> dict:
    """The ids the trainer needs, read back from the directory as transformers loads it."""
    from corpus.base_tokenizer import base_tokenizer_fingerprint

    tokenizer = wt.load_tokenizer(tokenizer_dir)
    kind = wt.tokenizer_kind(tokenizer)
    word_vocab_size = wt.word_vocab_size(tokenizer)
    return {
        "fingerprint": wt.tokenizer_fingerprint(tokenizer_dir),
        "kind": kind,
        "class": type(tokenizer).__name__,
        "word_start_marker": wt.WORD_START_MARKERS[kind],
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "unk_token_id": tokenizer.unk_token_id,
        "word_vocab_size": word_vocab_size,
        "reused": ctx.options.tokenizer is not None,
        "training_threads": wt.SP_TRAINING_THREADS if kind == "sentencepiece" and
        base is None and ctx.options.tokenizer is None else None,
        "base_model": None if base is None else {
            "path": str(base.directory), "model_type": base.model_type,
            "tokenizer_fingerprint": base_tokenizer_fingerprint(base.directory)},
        "counts": {"vocab_size": len(tokenizer), "word_vocab_size": word_vocab_size,
                   # ids, not keys: several keys may share an id (one per language)
                   "entity_vocab_size": len(set(tokenizer.entity_vocab.values()))},
    }
