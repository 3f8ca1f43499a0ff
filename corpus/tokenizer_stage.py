"""Build stage `tokenizer`: write DIR/tokenizer, the build's LUKE word tokenizer.

Three ways, chosen by the build options:
  - `--base-model DIR`: the tokenizer of an existing encoder (RoBERTa or XLM-R family),
    expressed as a LUKE tokenizer with the base's ids (corpus/base_tokenizer.py), so that a
    model initialised from the base reads every word as the base did;
  - `--tokenizer DIR`: an existing LUKE tokenizer directory reused, so that several dumps or a
    continued run share word ids; it must carry this corpus's entity vocabulary;
  - otherwise a unigram sentencepiece model trained on the pages' text with
    `--word-vocab-size` pieces (lowered with a warning when the text cannot support so many):
    all of it when it fits sentencepiece's caps (1 M paragraphs, 100 M characters), else whole
    pages drawn at random from the seed until a cap is reached (`sample_training_lines`); in a
    build of several languages, each language's share of the caps is proportional to its
    paragraphs to the power `--language-alpha` (`balanced_sample`). The training reads the
    pages alone, so a build of 10 GB of XML or more starts it in a process of its own as soon
    as the pages stage is done, and the entity_vocab stage runs beside it (`work_ahead`,
    corpus/ahead.py).
The manifest section records what the trainer and the examples stage need to know of it: its
kind, its special ids, its size, its fingerprint, and the base model it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus import word_tokenizer as wt
from corpus.ahead import AheadCrashed
from corpus.arrow_files import take_rows
from corpus.language_shares import quotas
from corpus.options import StageContext
from corpus.schema import ENTITY_VOCAB_DIR, ENTITY_VOCAB_FILE, PAGES_DIR, TOKENIZER_DIR

log = logging.getLogger(__name__)

PROBE_LINES = 2000   # paragraphs on which a base model's LUKE tokenizer is checked against it
SAMPLE_BLOCK = 1000  # pages read from Arrow at a time
# The training starts ahead, beside the entity_vocab stage, from this much XML on. A process
# of its own costs seconds to start (it imports datasets and sentencepiece), and the
# entity_vocab stage it hides takes about 1.5 s plus 0.3 s per GB of XML (measured, English
# composition): below ten GB, it gains less than it costs.
AHEAD_MIN_XML_BYTES = 10 * 1024 ** 3


def run(ctx: StageContext) -> dict:
    """Write DIR/tokenizer and return the manifest section."""
    options = ctx.options
    out_dir = ctx.out_dir / TOKENIZER_DIR
    vocab_path = ctx.out_dir / ENTITY_VOCAB_DIR / ENTITY_VOCAB_FILE
    entity_vocab = wt.read_entity_vocab(vocab_path)
    base = trained = None
    if options.base_model is not None:
        from corpus.base_tokenizer import open_base_model, write_base_tokenizer_dir

        base = open_base_model(Path(options.base_model))
        texts = _batched_texts(page_texts(ctx.out_dir / PAGES_DIR))
        probes = (" ".join(line.split()) for line in wt.training_lines(texts))
        write_base_tokenizer_dir(base, out_dir, entity_vocab, islice(probes, PROBE_LINES))
    elif options.tokenizer is not None:
        wt.check_same_entity_vocab(Path(options.tokenizer), entity_vocab, vocab_path)
        wt.copy_tokenizer_dir(Path(options.tokenizer), out_dir)
    else:
        trained = _trained_words(ctx)
        wt.write_tokenizer_dir(out_dir, trained.model, entity_vocab)
    section = manifest_section(out_dir, ctx, base)
    if trained is not None:
        section["counts"].update(trained.counts)
        if trained.shares:
            section["training_lines"] = trained.shares
    return section


@dataclass(frozen=True)
class TrainedWords:
    model: bytes                                  # the serialized sentencepiece model
    counts: dict[str, int]                        # its training sample, for the manifest
    shares: dict[str, dict[str, int]]             # per language (balanced_sample), or empty


def train_words(pages_dir: str, languages: list[dict], options) -> TrainedWords:
    """The sentencepiece model of the pages' text (`languages`: the pages stage's entries),
    trained on its sample (module docstring). It reads the pages alone, so the build starts it
    as soon as they are written (work_ahead)."""
    texts = page_texts(Path(pages_dir))
    shares: dict[str, dict[str, int]] = {}
    if len(languages) == 1:
        sample = sample_training_lines(texts, options.seed, wt.SP_MAX_TRAINING_LINES,
                                       wt.SP_MAX_TRAINING_CHARS)
    else:
        sample, shares = balanced_sample(texts, languages, options.language_alpha, options.seed)
    model, _ = wt.train_sentencepiece(sample.lines, options.word_vocab_size, seed=options.seed)
    counts = {"training_pages": sample.pages, "training_lines": len(sample.lines),
              "training_characters": sample.characters,
              "training_sample_capped": int(sample.capped)}
    return TrainedWords(model, counts, shares)


def work_ahead(build_dir: Path, options, sections: dict) -> tuple | None:
    """The training (function, arguments, what it is), to start once DIR/pages is written,
    when these options train a model (not with a base model's or a given tokenizer) and the
    dump is large enough for that to pay (AHEAD_MIN_XML_BYTES)."""
    if options.base_model is not None or options.tokenizer is not None:
        return None
    if sections["pages"]["counts"].get("xml_bytes", 0) < AHEAD_MIN_XML_BYTES:
        return None
    return (train_words, (str(build_dir / PAGES_DIR), sections["pages"]["languages"], options),
            "the tokenizer's training")


def _trained_words(ctx: StageContext) -> TrainedWords:
    """The training the build started ahead, else (or if its process died) trained here."""
    if ctx.ahead is not None:
        try:
            return ctx.ahead.result()
        except AheadCrashed as error:
            log.warning(f"{error}; training here instead")
    return train_words(str(ctx.out_dir / PAGES_DIR), ctx.manifest["pages"]["languages"],
                       ctx.options)


@dataclass(frozen=True)
class TrainingSample:
    lines: list[str]        # paragraphs (cut to what sentencepiece takes), pages in row order
    pages: int              # the pages they come from
    characters: int
    capped: bool            # the text had more: `lines` is a sample of whole pages


def sample_training_lines(texts: pa.ChunkedArray, seed: int, max_lines: int, max_chars: int
                          ) -> TrainingSample:
    """What sentencepiece trains on: every page's paragraphs when they fit both caps, else the
    paragraphs of whole pages drawn in a random order (from `seed`) until a cap is reached.

    Only the pages drawn are read in Python: which pages fit is decided on the text column's
    lengths (Arrow kernels), so the stage costs the same on a dump of any size past the caps.
    The sample depends on the pages and the seed alone, never on the number of workers."""
    import numpy as np

    chars = pc.utf8_length(texts).to_numpy()
    # an upper bound of each page's lines: paragraphs, plus the cuts of long ones
    lines = (pc.count_substring(texts, "\n").to_numpy() + 1
             + chars // wt.TRAINING_LINE_CHARS)
    if chars.sum() <= max_chars and lines.sum() <= max_lines:
        return TrainingSample(list(wt.training_lines(_batched_texts(texts))), len(texts),
                              int(chars.sum()), capped=False)
    order = np.random.default_rng(seed).permutation(len(texts))
    taken: list[tuple[int, list[str]]] = []
    line_count = char_count = 0
    for start in range(0, len(order), SAMPLE_BLOCK):
        rows = order[start:start + SAMPLE_BLOCK]
        for row, text in zip(rows, take_rows(texts, rows).to_pylist()):
            page_lines, whole = [], True
            for line in wt.training_lines([text]):
                if line_count == max_lines or char_count + len(line) > max_chars:
                    whole = False
                    break
                page_lines.append(line)
                line_count, char_count = line_count + 1, char_count + len(line)
            taken.append((int(row), page_lines))
            if not whole:
                return _sample(taken, char_count, capped=True)
    return _sample(taken, char_count, capped=False)   # the bounds overestimated: all fit


def balanced_sample(texts: pa.ChunkedArray, languages: list[dict], alpha: float, seed: int
                    ) -> tuple[TrainingSample, dict[str, dict[str, int]]]:
    """The training sample of several languages (`languages`: the pages stage's entries, each
    with its row range): each language's share of the caps, in lines and in characters,
    proportional to its number of paragraphs to the power `alpha` (below 1, small languages
    gain on large ones, as mLUKE sampled its languages), the lines' shares filling
    min(line cap, paragraphs) exactly. A language with more text than its share gives whole pages
    (`sample_training_lines`, from `seed` and its position); one with less repeats its lines,
    drawn with replacement, so that it keeps its weight. Returns the sample and, per language,
    its paragraphs and the lines it gave."""
    import numpy as np

    parts = [texts.slice(start, end - start) for start, end in (e["rows"] for e in languages)]
    sizes = np.array([paragraphs(part) for part in parts], dtype=np.float64)
    line_quotas = quotas(sizes, alpha, min(wt.SP_MAX_TRAINING_LINES, int(sizes.sum()))).tolist()
    # characters are only a cap (sentencepiece's memory): each language's share of it
    char_quotas = quotas(sizes, alpha, wt.SP_MAX_TRAINING_CHARS).tolist()
    lines: list[str] = []
    shares, pages, characters, capped = {}, 0, 0, False
    for number, (entry, part) in enumerate(zip(languages, parts)):
        sample = sample_training_lines(part, seed + number, line_quotas[number],
                                       char_quotas[number])
        chosen = sample.lines if sample.capped else _repeated(
            sample.lines, line_quotas[number], char_quotas[number],
            np.random.default_rng([seed, number]))
        lines += chosen
        pages, capped = pages + sample.pages, capped or sample.capped
        characters += sum(map(len, chosen))
        shares[entry["language"]] = {"paragraphs": int(sizes[number]), "lines": len(chosen)}
    return TrainingSample(lines, pages, characters, capped), shares


def _repeated(lines: list[str], wanted_lines: int, wanted_chars: int, rng) -> list[str]:
    """`lines` and lines of theirs drawn with replacement by `rng`, up to `wanted_lines` lines
    and `wanted_chars` characters."""
    import numpy as np

    if not lines or len(lines) >= wanted_lines:
        return lines
    extra = [lines[i] for i in rng.integers(0, len(lines), size=wanted_lines - len(lines))]
    room = wanted_chars - sum(map(len, lines))
    fits = int(np.searchsorted(np.cumsum([len(line) for line in extra]), room, side="right"))
    return lines + extra[:fits]


def paragraphs(texts: pa.ChunkedArray) -> int:
    """About how many training lines the pages hold (their paragraphs; Arrow, no Python loop)."""
    return int(pc.sum(pc.count_substring(texts, "\n")).as_py() or 0) + len(texts)


def _sample(taken: list[tuple[int, list[str]]], characters: int, capped: bool
            ) -> TrainingSample:
    taken.sort(key=lambda item: item[0])
    return TrainingSample([line for _, lines in taken for line in lines], len(taken),
                          characters, capped)


def page_texts(pages_dir: Path) -> pa.ChunkedArray:
    """The pages' text column, memory-mapped."""
    import datasets

    return datasets.load_from_disk(str(pages_dir)).data.column("text")


def _batched_texts(texts: pa.ChunkedArray):
    for chunk in texts.chunks:
        for start in range(0, len(chunk), SAMPLE_BLOCK):
            yield from chunk.slice(start, SAMPLE_BLOCK).to_pylist()


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
