"""The word tokenizer of an existing encoder (`--base-model DIR`), written as the build's LUKE
tokenizer so that every word id means what it meant to the base model.

Two families can be expressed as a LUKE tokenizer that transformers loads:
  - RoBERTa (`model_type` "roberta"): byte-level BPE. `LukeTokenizer` built from the base's
    vocabulary and merges gives exactly RoBERTa's ids (measured, transformers 5.24); it appends
    `<ent>`, `<ent2>` and, as word tokens too, `[UNK]`, `[PAD]`, `[MASK]`, `[MASK2]` after them.
  - XLM-R (`model_type` "xlm-roberta"): sentencepiece in fairseq's layout (`<s>`=0, `<pad>`=1,
    `</s>`=2, `<unk>`=3, piece + 1, `<mask>` last). transformers 5.24's `MLukeTokenizer`
    rebuilds its own backend from the vocabulary of a `tokenizer.json`: given the base's
    (fairseq order) the piece ids are XLM-R's, but it hard-codes unknown id 0 (`<s>` there),
    splits on every space where XLM-R first collapses whitespace, and does not apply XLM-R's
    NFKC normalization. The build's examples hold whitespace-collapsed sentences and drop every
    sentence holding a character the vocabulary lacks (corpus/examples.py), so each stored id
    is both what the exported tokenizer gives and what XLM-R gives; text outside that (runs of
    spaces, unknown characters) tokenizes differently in the two, which tests document.
A BERT-style WordPiece vocabulary has no LUKE tokenizer class and is refused.

The directory written holds the LUKE class's own `tokenizer.json` (what it builds when
loaded), the sources it came from, `entity_vocab.json` and `tokenizer_config.json`, and is
checked against the base tokenizer on probe texts before it is kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from corpus.word_tokenizer import TokenizerError, write_luke_tokenizer_dir

# model_type of config.json -> (tokenizer kind, LUKE tokenizer class)
FAMILIES = {"roberta": ("bpe", "LukeTokenizer"), "xlm-roberta": ("xlmr", "MLukeTokenizer")}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The files of a base model's tokenizer that decide its ids (whichever it has).
BASE_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "sentencepiece.bpe.model")
BASE_MODEL_KEY = "base_model"    # where the manifest's tokenizer section records it


@dataclass(frozen=True)
class BaseModel:
    directory: Path
    model_type: str
    kind: str                      # "bpe" or "xlmr"
    luke_class: str                # the LUKE tokenizer class its tokenizer becomes
    config: dict                   # the base's config.json

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])


def open_base_model(directory: Path, what: str = "--base-model") -> BaseModel:
    """The base model in `directory` (a transformers `save_pretrained` directory), refused with
    one line when it is not one of the supported families or lacks its tokenizer or weights."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not directory.is_dir():
        raise TokenizerError(f"{what} {directory}: no such directory")
    if not config_path.is_file():
        raise TokenizerError(f"{what} {directory}: no config.json; give the directory that "
                             f"save_pretrained wrote for the model")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TokenizerError(f"{config_path}: unreadable ({error})") from None
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise TokenizerError(
            f"{what} {directory}: model_type {model_type!r} is not supported; LUKE tokenizers "
            f"express byte-level BPE (RoBERTa family, model_type 'roberta') and sentencepiece "
            f"(XLM-R family, 'xlm-roberta') only (a BERT WordPiece vocabulary has no LUKE "
            f"tokenizer class)")
    if not any((directory / name).is_file() for name in BASE_TOKENIZER_FILES):
        raise TokenizerError(f"{what} {directory}: the model has no tokenizer files "
                             f"({', '.join(BASE_TOKENIZER_FILES)}); save its tokenizer with it")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise TokenizerError(f"{what} {directory}: the tokenizer has no model weights beside it "
                             f"({' or '.join(WEIGHT_FILES)}); give the directory of the model "
                             f"the run will start from")
    kind, luke_class = FAMILIES[model_type]
    return BaseModel(directory, model_type, kind, luke_class, config)


def base_tokenizer_fingerprint(directory: Path) -> str:
    """A digest of the base model's tokenizer files: a corpus built with one base tokenizer
    must not train a model initialised from another."""
    digest = hashlib.sha256()
    for name in BASE_TOKENIZER_FILES:
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def load_base_tokenizer(base: BaseModel):
    """The base model's own tokenizer, as transformers loads it."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(base.directory))
    except Exception as error:  # transformers raises many kinds; the user needs the directory
        raise TokenizerError(f"--base-model {base.directory}: transformers cannot load its "
                             f"tokenizer: {error}") from None


def write_base_tokenizer_dir(base: BaseModel, out_dir: Path, entity_vocab: dict[str, int],
                             probes: Iterable[str]) -> None:
    """Write the LUKE tokenizer of `base` into out_dir, then check its ids against the base
    tokenizer's on the probe texts (whitespace-collapsed sentences of the corpus)."""
    reference = load_base_tokenizer(base)
    backend = json.loads(reference.backend_tokenizer.to_str())
    sources = _sources(base, backend)
    tokenizer = write_luke_tokenizer_dir(out_dir, sources, base.luke_class, entity_vocab)
    check_same_ids(tokenizer, reference, probes, base)


def _sources(base: BaseModel, backend: dict) -> dict[str, bytes]:
    """The files the LUKE class reads to rebuild the base's vocabulary."""
    model = backend.get("model") or {}
    if base.kind == "bpe":
        if model.get("type") != "BPE" or (backend.get("pre_tokenizer") or {}).get(
                "type") != "ByteLevel":
            raise TokenizerError(f"--base-model {base.directory}: a roberta model whose "
                                 f"tokenizer is not byte-level BPE")
        merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
        return {"vocab.json": json.dumps(model["vocab"], ensure_ascii=False).encode(),
                "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()}
    if model.get("type") != "Unigram":
        raise TokenizerError(f"--base-model {base.directory}: an xlm-roberta model whose "
                             f"tokenizer is not a sentencepiece unigram model")
    # MLukeTokenizer takes the vocabulary, in this (fairseq) order, from a tokenizer.json.
    sources = {"tokenizer.json": json.dumps(backend, ensure_ascii=False).encode()}
    spm = base.directory / "sentencepiece.bpe.model"
    if spm.is_file():
        sources["sentencepiece.bpe.model"] = spm.read_bytes()
    return sources


def check_same_ids(tokenizer, reference, probes: Iterable[str], base: BaseModel) -> None:
    """Refuse a LUKE tokenizer that gives other ids than the base's on any probe text the
    build would keep (for XLM-R: without a character the vocabulary lacks)."""
    unknown = tokenizer.convert_tokens_to_ids(tokenizer.unk_token) if base.kind == "bpe" else 0
    for text in probes:
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        if base.kind == "xlmr" and unknown in ours:
            continue
        theirs = reference(text, add_special_tokens=False)["input_ids"]
        if ours != theirs:
            raise TokenizerError(
                f"--base-model {base.directory}: the LUKE tokenizer gives other ids than the "
                f"base tokenizer for {text[:80]!r}: {ours[:12]} vs {theirs[:12]}")
