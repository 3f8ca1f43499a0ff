"""Build stage `tokenizer`: train (or reuse) the word tokenizer and write DIR/tokenizer.

Trains a unigram sentencepiece model on the pages' text with `--word-vocab-size` pieces (lowered
with a warning when the text cannot support that many), or, with `--tokenizer DIR`, reuses an
existing LUKE tokenizer directory so that several dumps or a continued run share word ids; a
reused directory must carry this corpus's entity vocabulary, else it is refused.
"""

from __future__ import annotations

from pathlib import Path

from corpus import word_tokenizer as wt
from corpus.options import StageContext
from corpus.progress import item_progress
from corpus.schema import ENTITY_VOCAB_DIR, ENTITY_VOCAB_FILE, PAGES_DIR, TOKENIZER_DIR


def run(ctx: StageContext) -> dict:
    """Write DIR/tokenizer and return the manifest section."""
    options = ctx.options
    out_dir = ctx.out_dir / TOKENIZER_DIR
    vocab_path = ctx.out_dir / ENTITY_VOCAB_DIR / ENTITY_VOCAB_FILE
    entity_vocab = wt.read_entity_vocab(vocab_path)
    if options.tokenizer is not None:
        wt.check_same_entity_vocab(Path(options.tokenizer), entity_vocab, vocab_path)
        wt.copy_tokenizer_dir(Path(options.tokenizer), out_dir)
    else:
        sp_model, _ = wt.train_sentencepiece(_page_lines(ctx.out_dir / PAGES_DIR),
                                             options.word_vocab_size, seed=options.seed)
        wt.write_tokenizer_dir(out_dir, sp_model, entity_vocab)
    return manifest_section(out_dir, ctx)


def _page_lines(pages_dir: Path):
    import datasets

    pages = datasets.load_from_disk(str(pages_dir)).select_columns(["text"])
    batches = pages.iter(batch_size=1000)
    for batch in item_progress(batches, "tokenizer (reading text)", unit="batch",
                               total=-(-len(pages) // 1000)):
        yield from wt.training_lines(batch["text"])


def manifest_section(tokenizer_dir: Path, ctx: StageContext) -> dict:
    """The ids the trainer needs, read back from the directory as transformers loads it."""
    tokenizer = wt.load_tokenizer(tokenizer_dir)
    word_vocab_size = wt.sentencepiece_size(tokenizer_dir)
    return {
        "fingerprint": wt.tokenizer_fingerprint(tokenizer_dir),
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "unk_token_id": tokenizer.unk_token_id,
        "word_vocab_size": word_vocab_size,
        "reused": ctx.options.tokenizer is not None,
        "training_threads": None if ctx.options.tokenizer else wt.SP_TRAINING_THREADS,
        "counts": {"vocab_size": len(tokenizer), "word_vocab_size": word_vocab_size,
                   "entity_vocab_size": len(tokenizer.entity_vocab)},
    }
