"""Build stage `tokenizer`: write DIR/tokenizer, the build's LUKE word tokenizer.

Three ways, chosen by the build options:
  - `--base-model DIR`: the tokenizer of an existing encoder (RoBERTa or XLM-R family),
    expressed as a LUKE tokenizer with the base's ids (corpus/base_tokenizer.py), so that a
    model initialised from the base reads every word as the base did;
  - `--tokenizer DIR`: an existing LUKE tokenizer directory reused, so that several dumps or a
    continued run share word ids; it must carry this corpus's entity vocabulary;
  - otherwise a unigram sentencepiece model trained on the pages' text with
    `--word-vocab-size` pieces (lowered with a warning when the text cannot support so many).
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
    base = None
    if options.base_model is not None:
        from corpus.base_tokenizer import open_base_model, write_base_tokenizer_dir

        base = open_base_model(Path(options.base_model))
        probes = (" ".join(line.split()) for line in _page_lines(ctx.out_dir / PAGES_DIR))
        write_base_tokenizer_dir(base, out_dir, entity_vocab, islice(probes, PROBE_LINES))
    elif options.tokenizer is not None:
        wt.check_same_entity_vocab(Path(options.tokenizer), entity_vocab, vocab_path)
        wt.copy_tokenizer_dir(Path(options.tokenizer), out_dir)
    else:
        sp_model, _ = wt.train_sentencepiece(_page_lines(ctx.out_dir / PAGES_DIR),
                                             options.word_vocab_size, seed=options.seed)
        wt.write_tokenizer_dir(out_dir, sp_model, entity_vocab)
    return manifest_section(out_dir, ctx, base)


def _page_lines(pages_dir: Path):
    import datasets

    pages = datasets.load_from_disk(str(pages_dir)).select_columns(["text"])
    batches = pages.iter(batch_size=1000)
    for batch in item_progress(batches, "tokenizer (reading text)", unit="batch",
                               total=-(-len(pages) // 1000)):
        yield from wt.training_lines(batch["text"])


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
                   "entity_vocab_size": len(tokenizer.entity_vocab)},
    }
