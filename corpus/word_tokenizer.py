"""The word tokenizer: train a sentencepiece model and write it as a transformers LUKE tokenizer.

transformers 5 loads a directory holding `sentencepiece.bpe.model`, `entity_vocab.json` and a
`tokenizer_config.json` naming `MLukeTokenizer` (REFERENCE section 3). Its Unigram model
hard-codes `unk_id=0` and uses the raw sentencepiece ids, so the model is trained as **unigram**
with `<unk>`=0, `<pad>`=1, `<s>`=2, `</s>`=3: unknown characters then map to `<unk>`, and the
pad id stays small enough for RoBERTa-style position ids. `<mask>`, `<ent>`, `<ent2>` and the
entity specials are appended by transformers after the last piece, so the model's word
vocabulary size is `len(tokenizer)`, never the sentencepiece size.

One id mapping everywhere: the examples stage tokenizes with the very tokenizer loaded from the
written directory (`load_tokenizer`), and the export copies that directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Iterable, Iterator

from corpus.progress import progress_enabled
from corpus.schema import ENTITY_SPECIALS, ENTITY_VOCAB_FILE

log = logging.getLogger(__name__)

SP_MODEL_FILE = "sentencepiece.bpe.model"   # the name MLukeTokenizer looks for
CONFIG_FILE = "tokenizer_config.json"
UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# Downstream defaults of the released studio-ousia mLUKE models; fine-tuning users override them.
# The pretraining limits (--max-entities, --max-mention-length) live in the examples manifest.
MAX_ENTITY_LENGTH, MAX_MENTION_LENGTH = 32, 30
# Lines longer than this many bytes are skipped by sentencepiece; paragraphs are cut to fit.
SP_MAX_LINE_BYTES = 4192
# A uniform sample of paragraphs when the text has more: about 0.5 GB of text, which
# sentencepiece's unigram trainer handles in a few tens of GB of memory.
SP_MAX_TRAINING_LINES = 1_000_000
# sentencepiece's unigram trainer splits its E-step over this many threads and sums their
# partial counts, so its model depends on the thread count (measured: 1, 2, 4, 8 and 16 threads
# give five different models; the same count gives the same model on every run). A fixed count,
# not the build's --workers or the machine's cores, makes the tokenizer (and every id after
# it) a function of the build's inputs and recorded options alone.
SP_TRAINING_THREADS = 16


class TokenizerError(Exception):
    """A tokenizer cannot be trained, loaded or reused; the message names the directory."""


def training_lines(texts: Iterable[str]) -> Iterator[str]:
    """Non-empty paragraphs of the pages, each cut into pieces sentencepiece will not skip."""
    limit = SP_MAX_LINE_BYTES // 4  # characters: at most 4 UTF-8 bytes each
    for text in texts:
        for paragraph in text.split("\n"):
            paragraph = paragraph.strip()
            for start in range(0, len(paragraph), limit):
                yield paragraph[start:start + limit]


def sample_lines(lines: Iterable[str], limit: int, seed: int) -> list[str]:
    """At most `limit` lines, a uniform sample (reservoir) decided by `seed`, in input order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    kept: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        if index < limit:
            kept.append((index, line))
            continue
        slot = int(rng.integers(0, index + 1))
        if slot < limit:
            kept[slot] = (index, line)
    return [line for _, line in sorted(kept)]


def _train_once(lines: list[str], vocab_size: int, seed: int, threads: int) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.set_random_generator_seed(seed + 1)  # 0 would mean "seed from the clock"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram",
        vocab_size=vocab_size, unk_id=UNK_ID, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=max(1, threads), minloglevel=2)
    return model.getvalue()


def train_sentencepiece(lines: Iterable[str], vocab_size: int, *, seed: int = 0,
                        threads: int = SP_TRAINING_THREADS) -> tuple[bytes, int]:
    """(serialized unigram model, vocabulary size used).

    Sentencepiece refuses a vocabulary larger than the text supports and says the largest it
    can make; then the size is lowered to that with a warning, so a small dump still builds.
    """
    lines = sample_lines(lines, SP_MAX_TRAINING_LINES, seed)
    if not lines:
        raise TokenizerError("no text to train the word tokenizer on: every page is empty")
    if progress_enabled():  # sentencepiece reports no progress; say what the wait is for
        print(f"tokenizer: training a {vocab_size:,}-piece unigram sentencepiece model on "
              f"{len(lines):,} paragraphs ({sum(map(len, lines)) / 1e6:,.1f} M characters)",
              file=sys.stderr)
    try:
        return _train_once(lines, vocab_size, seed, threads), vocab_size
    except RuntimeError as error:
        supported = re.search(r"Vocabulary size too high \(\d+\)\. "
                              r"Please set it to a value <= (\d+)", str(error))
        if not supported:
            raise TokenizerError(f"sentencepiece training failed: {error}") from error
        lowered = int(supported.group(1))
        log.warning(f"word vocabulary size lowered from {vocab_size} to {lowered}: the text is "
                    f"too small to support more pieces")
        return _train_once(lines, lowered, seed, threads), lowered


def write_tokenizer_dir(out_dir: Path, sp_model: bytes, entity_vocab: dict[str, int]) -> None:
    """Write a directory that AutoTokenizer loads as MLukeTokenizer (written whole or not at all).

    transformers converts the sentencepiece model itself, then `save_pretrained` adds
    `tokenizer.json`; the entity vocabulary stays only in `entity_vocab.json` (one copy: two
    could disagree), and `sentencepiece.bpe.model` is kept for the slow-tokenizer convention.
    """
    missing = [s for s in ENTITY_SPECIALS if s not in entity_vocab]
    if missing:
        raise TokenizerError(f"entity vocabulary lacks the specials {missing}")
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = {"tokenizer_class": "MLukeTokenizer", "max_entity_length": MAX_ENTITY_LENGTH,
              "max_mention_length": MAX_MENTION_LENGTH, "entity_token_1": "<ent>",
              "entity_token_2": "<ent2>", "entity_unk_token": "[UNK]",
              "entity_pad_token": "[PAD]", "entity_mask_token": "[MASK]",
              "entity_mask2_token": "[MASK2]"}
    _write_sources(tmp, sp_model, entity_vocab)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    load_tokenizer(tmp).save_pretrained(str(tmp))
    _drop_inline_entity_vocab(tmp / CONFIG_FILE)
    _write_sources(tmp, sp_model, entity_vocab)  # save_pretrained may have rewritten them
    load_tokenizer(tmp)  # the directory as a user loads it
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def _write_sources(directory: Path, sp_model: bytes, entity_vocab: dict[str, int]) -> None:
    (directory / SP_MODEL_FILE).write_bytes(sp_model)
    (directory / ENTITY_VOCAB_FILE).write_text(json.dumps(entity_vocab, ensure_ascii=False),
                                               encoding="utf-8")


def _drop_inline_entity_vocab(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("entity_vocab", None)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def load_tokenizer(directory: Path):
    """The MLukeTokenizer in `directory`, loaded exactly as a user would (AutoTokenizer)."""
    from transformers import AutoTokenizer, MLukeTokenizer

    directory = Path(directory)
    if not (directory / SP_MODEL_FILE).is_file() and not (directory / "tokenizer.json").is_file():
        raise TokenizerError(f"{directory}: not a tokenizer directory (no {SP_MODEL_FILE} "
                             f"or tokenizer.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    except Exception as error:  # transformers raises many kinds; the user needs the directory
        raise TokenizerError(f"{directory}: transformers cannot load this tokenizer: {error}") \
            from error
    if not isinstance(tokenizer, MLukeTokenizer):
        raise TokenizerError(f"{directory}: loads as {type(tokenizer).__name__}, "
                             f"expected MLukeTokenizer")
    return tokenizer


def read_entity_vocab(path: Path) -> dict[str, int]:
    """An entity_vocab.json (title -> id)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_same_entity_vocab(tokenizer_dir: Path, corpus_vocab: dict[str, int],
                            corpus_vocab_path: Path) -> None:
    """Refuse a reused tokenizer whose entity vocabulary is not the corpus's; name a difference."""
    path = Path(tokenizer_dir) / ENTITY_VOCAB_FILE
    if not path.is_file():
        raise TokenizerError(f"{tokenizer_dir}: no {ENTITY_VOCAB_FILE}; not a LUKE tokenizer dir")
    reused = read_entity_vocab(path)
    if reused == corpus_vocab:
        return
    differing = next((t for t in sorted(set(reused) | set(corpus_vocab))
                      if reused.get(t) != corpus_vocab.get(t)), None)
    raise TokenizerError(
        f"--tokenizer {tokenizer_dir}: its entity vocabulary ({len(reused)} entries) differs "
        f"from this corpus's {corpus_vocab_path} ({len(corpus_vocab)} entries), e.g. "
        f"{differing!r}: id {reused.get(differing)} there, {corpus_vocab.get(differing)} here. "
        f"Reuse a tokenizer only with the entity vocabulary it was built with, or omit "
        f"--tokenizer to train a new one.")


# What a LUKE tokenizer directory holds; a reused directory may hold more (model weights of an
# export), which is not copied into the build.
TOKENIZER_FILES = (SP_MODEL_FILE, ENTITY_VOCAB_FILE, CONFIG_FILE, "tokenizer.json",
                   "special_tokens_map.json")


def copy_tokenizer_dir(source: Path, out_dir: Path) -> None:
    """Copy a reused tokenizer directory's tokenizer files into the build, after checking that
    its ids are usable for pretraining (whole or not at all)."""
    source = Path(source)
    if not (source / SP_MODEL_FILE).is_file():
        raise TokenizerError(f"--tokenizer {source}: no {SP_MODEL_FILE}; reuse the tokenizer "
                             f"directory of a luke-corpus build or export")
    check_reusable(load_tokenizer(source), source)
    tmp = Path(out_dir).with_name(Path(out_dir).name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    load_tokenizer(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def check_reusable(tokenizer, source: Path) -> None:
    """transformers' Unigram model sends unknown characters to id 0: it must be <unk>."""
    if tokenizer.unk_token_id != UNK_ID:
        raise TokenizerError(
            f"--tokenizer {source}: <unk> has id {tokenizer.unk_token_id}, not {UNK_ID}; "
            f"transformers would map every unknown character to id {UNK_ID} "
            f"({tokenizer.convert_ids_to_tokens(UNK_ID)!r}). Train a new tokenizer instead.")


def sentencepiece_size(directory: Path) -> int:
    """Number of pieces in the directory's sentencepiece model (the word vocabulary size used)."""
    import sentencepiece as spm

    model = spm.SentencePieceProcessor(model_file=str(Path(directory) / SP_MODEL_FILE))
    return model.get_piece_size()


def tokenizer_fingerprint(directory: Path) -> str:
    """A digest of the files that decide ids: the sentencepiece model and the entity vocabulary."""
    digest = hashlib.sha256()
    for name in (SP_MODEL_FILE, ENTITY_VOCAB_FILE):
        digest.update((Path(directory) / name).read_bytes())
    return digest.hexdigest()
