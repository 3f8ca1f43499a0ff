"""The word tokenizer: train a sentencepiece model and write it as a transformers LUKE tokenizer.

transformers 5 loads a directory holding `sentencepiece.bpe.model`, `entity_vocab.json` and a
`tokenizer_config.json` naming `MLukeTokenizer`. Its Unigram model
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
TOKENIZER_JSON = "tokenizer.json"
UNK_ID, PAD_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# Downstream defaults of the released studio-ousia mLUKE models; fine-tuning users override them.
# The pretraining limits (--max-entities, --max-mention-length) live in the examples manifest.
MAX_ENTITY_LENGTH, MAX_MENTION_LENGTH = 32, 30
# Lines longer than this many bytes are skipped by sentencepiece; paragraphs are cut to fit.
SP_MAX_LINE_BYTES = 4192
TRAINING_LINE_CHARS = SP_MAX_LINE_BYTES // 4   # at most 4 UTF-8 bytes per character
# What sentencepiece trains on at most: a sample of whole pages when the text has more. Its
# unigram trainer holds about 30 bytes per character and takes about a second of one core per
# million characters (measured, 32,000 pieces), most of it in phases that use one thread; 100 M
# characters (~20 M words) are plenty for a vocabulary of tens of thousands of pieces, and keep
# the stage to about a minute and a half and 3 GB whatever the dump's size.
SP_MAX_TRAINING_LINES = 1_000_000
SP_MAX_TRAINING_CHARS = 100_000_000
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
    limit = TRAINING_LINE_CHARS
    for text in texts:
        for paragraph in text.split("\n"):
            paragraph = paragraph.strip()
            for start in range(0, len(paragraph), limit):
                yield paragraph[start:start + limit]


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
    """(serialized unigram model, vocabulary size used), trained on `lines` as they are: the
    tokenizer stage has drawn them within SP_MAX_TRAINING_LINES and SP_MAX_TRAINING_CHARS
    (tokenizer_stage.sample_training_lines).

    Sentencepiece refuses a vocabulary larger than the text supports and says the largest it
    can make; then the size is lowered to that with a warning, so a small dump still builds.
    """
    lines = list(lines)
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
    """Write a trained sentencepiece model as a directory that AutoTokenizer loads as
    MLukeTokenizer (written whole or not at all)."""
    write_luke_tokenizer_dir(out_dir, {SP_MODEL_FILE: sp_model}, "MLukeTokenizer", entity_vocab)


def write_luke_tokenizer_dir(out_dir: Path, sources: dict[str, bytes], tokenizer_class: str,
                             entity_vocab: dict[str, int]):
    """Write a LUKE tokenizer directory from the files its class reads (`sources`: a
    sentencepiece model, or vocab.json + merges.txt, or a tokenizer.json to take the vocabulary
    from), whole or not at all; returns the tokenizer as a user loads it from there.

    transformers builds the class's backend from the sources, then `save_pretrained` writes it
    as `tokenizer.json`, which later loads read first; the entity vocabulary stays only in
    `entity_vocab.json` (one copy: two could disagree), and the sources are kept beside it."""
    missing = [s for s in ENTITY_SPECIALS if s not in entity_vocab]
    if missing:
        raise TokenizerError(f"entity vocabulary lacks the specials {missing}")
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = {"tokenizer_class": tokenizer_class, "max_entity_length": MAX_ENTITY_LENGTH,
              "max_mention_length": MAX_MENTION_LENGTH, "entity_token_1": "<ent>",
              "entity_token_2": "<ent2>", "entity_unk_token": "[UNK]",
              "entity_pad_token": "[PAD]", "entity_mask_token": "[MASK]",
              "entity_mask2_token": "[MASK2]"}
    _write_sources(tmp, sources, entity_vocab)
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    load_tokenizer(tmp).save_pretrained(str(tmp))       # tokenizer.json: the class's own backend
    _drop_inline_entity_vocab(tmp / CONFIG_FILE)
    # save_pretrained may have rewritten the sources; a source tokenizer.json (a vocabulary to
    # take) is replaced by the one just saved, which is what the class builds from it
    _write_sources(tmp, {k: v for k, v in sources.items() if k != TOKENIZER_JSON}, entity_vocab)
    tokenizer = load_tokenizer(tmp)  # the directory as a user loads it
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return tokenizer


def _write_sources(directory: Path, sources: dict[str, bytes],
                   entity_vocab: dict[str, int]) -> None:
    for name, data in sources.items():
        (directory / name).write_bytes(data)
    (directory / ENTITY_VOCAB_FILE).write_text(json.dumps(entity_vocab, ensure_ascii=False),
                                               encoding="utf-8")


def _drop_inline_entity_vocab(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("entity_vocab", None)
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def load_tokenizer(directory: Path):
    """The LUKE tokenizer (MLukeTokenizer or LukeTokenizer) in `directory`, loaded exactly as
    a user would (AutoTokenizer)."""
    from transformers import AutoTokenizer, LukeTokenizer, MLukeTokenizer

    directory = Path(directory)
    if not any((directory / name).is_file() for name in (SP_MODEL_FILE, TOKENIZER_JSON,
                                                          "vocab.json")):
        raise TokenizerError(f"{directory}: not a tokenizer directory (no {SP_MODEL_FILE}, "
                             f"vocab.json or {TOKENIZER_JSON})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    except Exception as error:  # transformers raises many kinds; the user needs the directory
        raise TokenizerError(f"{directory}: transformers cannot load this tokenizer: {error}") \
            from error
    if not isinstance(tokenizer, (MLukeTokenizer, LukeTokenizer)):
        raise TokenizerError(f"{directory}: loads as {type(tokenizer).__name__}, "
                             f"expected MLukeTokenizer or LukeTokenizer")
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


# What a LUKE tokenizer directory holds (sentencepiece or BPE sources, the backend, the entity
# vocabulary, the settings); a reused directory may hold more (model weights of an export),
# which is not copied into the build.
SOURCE_FILES = (SP_MODEL_FILE, "vocab.json", "merges.txt")
TOKENIZER_FILES = (*SOURCE_FILES, TOKENIZER_JSON, ENTITY_VOCAB_FILE, CONFIG_FILE,
                   "special_tokens_map.json")


def copy_tokenizer_dir(source: Path, out_dir: Path) -> None:
    """Copy a reused tokenizer directory's tokenizer files into the build (whole or not at
    all), after checking that transformers loads it as a LUKE tokenizer."""
    source = Path(source)
    if not (source / TOKENIZER_JSON).is_file():
        raise TokenizerError(f"--tokenizer {source}: no {TOKENIZER_JSON}; reuse the tokenizer "
                             f"directory of a luke-corpus build or export")
    load_tokenizer(source)
    tmp = Path(out_dir).with_name(Path(out_dir).name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    load_tokenizer(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


# The tokenizer kinds a build can have, and the mark of a piece that starts a word in each
# (whole-word masking groups a word's pieces by it).
WORD_START_MARKERS = {"sentencepiece": "\u2581", "xlmr": "\u2581", "bpe": "\u0120"}


def tokenizer_kind(tokenizer) -> str:
    """"bpe" (LukeTokenizer: RoBERTa's byte-level BPE), "xlmr" (MLukeTokenizer in fairseq's
    layout, <s> at id 0: an XLM-R vocabulary) or "sentencepiece" (MLukeTokenizer with <unk> at
    id 0: a model this project trained)."""
    from transformers import LukeTokenizer

    if isinstance(tokenizer, LukeTokenizer):
        return "bpe"
    return "sentencepiece" if tokenizer.convert_ids_to_tokens(0) == "<unk>" else "xlmr"


def word_vocab_size(tokenizer) -> int:
    """The pieces of the tokenizer's own vocabulary (without the tokens added around it)."""
    return tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=False)


def tokenizer_fingerprint(directory: Path) -> str:
    """A digest of the files that decide ids: the sources, the backend built from them and the
    entity vocabulary (whichever the directory holds)."""
    digest = hashlib.sha256()
    for name in (*SOURCE_FILES, TOKENIZER_JSON, ENTITY_VOCAB_FILE):
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
