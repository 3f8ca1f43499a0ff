"""The one typed reader of a finished corpus build: what training, export, the model card and
`luke-corpus inspect` know about a build directory DIR, read from DIR/manifest.json once.

`Corpus.open(DIR)` checks that the build is finished (every stage of corpus/stages.py has its
section, the schema version is this code's, the outputs a reader needs exist) and returns
frozen records with typed fields, one per stage. A reader that needs only the pages (inspect's
statistics of a build stopped with --until pages) asks for them alone; the records of the
stages it did not ask for are then None when those stages are not built. A build that cannot
be used raises CorpusError naming the directory and what is wrong. Nothing here imports more
than the standard library, so the trainer (`pretrain/`) reads a build without pulling in the
corpus side's dependencies.

The manifest's layout is corpus/schema.py's; the stages write it (corpus/build.py). New kinds
of build (other tokenizers, several languages) widen these records, not their readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from corpus import schema
from corpus.manifest import ManifestError, read_manifest
from corpus.options import Limits
from corpus.stages import STAGE_NAMES


class CorpusError(ValueError):
    """A corpus directory that cannot be used; the message names the directory and the fault."""


@dataclass(frozen=True)
class LanguagePages:
    """One dump's share of DIR/pages."""
    language: str                    # the wiki's language code
    dump: Path                       # the dump file its pages were read from
    dbname: str                      # e.g. "enwiki"; "" when the dump has no siteinfo
    rows: tuple[int, int]            # [start, end) of its rows in DIR/pages
    id_offset: int                   # page ids in DIR/pages are its wiki's ids plus this
    counts: Mapping[str, int] = field(default_factory=dict)
    rules: Mapping[str, Any] = field(default_factory=dict)   # link trail, variant, MediaWiki

    @property
    def articles(self) -> int:
        return self.rows[1] - self.rows[0]


@dataclass(frozen=True)
class PagesInfo:
    languages: tuple[LanguagePages, ...]   # in the order of the build's dumps
    truncated: bool                  # built from a dump that ended early (--allow-truncated)
    fingerprint: str
    counts: Mapping[str, int] = field(default_factory=dict)   # over every language

    @property
    def articles(self) -> int:
        return sum(language.articles for language in self.languages)

    @property
    def language(self) -> str:
        """The language of a build of one dump (the first of several)."""
        return self.languages[0].language

    @property
    def dump(self) -> Path:
        return self.languages[0].dump

    @property
    def dbname(self) -> str:
        return self.languages[0].dbname


@dataclass(frozen=True)
class EntityVocabInfo:
    size: int                        # entity ids, the four specials included
    fingerprint: str
    counts: Mapping[str, int] = field(default_factory=dict)
    keys: str = "title"              # "title", or "language:title" (mLUKE's "en:Tokyo") in a
                                     # build of several languages or with Wikidata items

    def key_prefix(self, language: str) -> str:
        """What comes before a title in the entity vocabulary's keys, for `language`."""
        return f"{language}:" if self.keys == "language:title" else ""


@dataclass(frozen=True)
class TokenizerInfo:
    vocab_size: int                  # len(tokenizer): every id the tokenizer can emit
    pad_token_id: int
    bos_token_id: int
    eos_token_id: int
    mask_token_id: int
    fingerprint: str                 # of the files that decide ids (word_tokenizer)
    kind: str = "sentencepiece"      # sentencepiece (trained here) | xlmr | bpe (a base's)
    word_start_marker: str = "\u2581"  # the mark of a piece that starts a word
    base_model: Mapping[str, Any] | None = None   # path, model_type, tokenizer_fingerprint
    # a trained tokenizer's sample: training_pages, training_lines, training_characters,
    # training_sample_capped (1 when the pages held more than sentencepiece's caps)
    counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LanguageExamples:
    """One language's share of DIR/examples and DIR/validation."""
    language: str
    locale: str                      # the sentence splitter's locale
    rows: tuple[int, int]            # [start, end) of its rows in DIR/examples
    validation_rows: tuple[int, int]  # ... and in DIR/validation
    validation_page_ids: tuple[int, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def validation_examples(self) -> int:
        return self.validation_rows[1] - self.validation_rows[0]


@dataclass(frozen=True)
class ExamplesInfo:
    num_examples: int                # training examples (DIR/examples)
    validation_examples: int         # DIR/validation
    fingerprint: str                 # of every stored value: what a run's checkpoints record
    limits: Limits                   # the packing limits the examples were built with
    languages: tuple[LanguageExamples, ...] = ()   # in the order of the build's dumps
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def locale(self) -> str:
        """The sentence splitter's locale of a build of one dump (the first of several)."""
        return self.languages[0].locale

    @property
    def validation_page_ids(self) -> tuple[int, ...]:
        return tuple(page for language in self.languages
                     for page in language.validation_page_ids)

    def language(self, name: str) -> LanguageExamples:
        found = [entry for entry in self.languages if entry.language == name]
        if not found:
            raise KeyError(f"the build has no language {name!r} (it has "
                           f"{', '.join(e.language for e in self.languages)})")
        return found[0]


@dataclass(frozen=True)
class Corpus:
    """A finished corpus build (see the module docstring)."""
    directory: Path
    pages: PagesInfo
    entity_vocab: EntityVocabInfo | None      # None only where `needs` did not require it
    tokenizer: TokenizerInfo | None
    examples: ExamplesInfo | None

    @property
    def pages_dir(self) -> Path:
        return self.directory / schema.PAGES_DIR

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / schema.TOKENIZER_DIR

    @property
    def entity_vocab_file(self) -> Path:
        return self.directory / schema.ENTITY_VOCAB_DIR / schema.ENTITY_VOCAB_FILE

    def split_dir(self, split: str) -> Path:
        """DIR/examples for "train", DIR/validation for "validation"."""
        dirs = {"train": schema.EXAMPLES_DIR, "validation": schema.VALIDATION_DIR}
        if split not in dirs:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(dirs)}")
        return self.directory / dirs[split]

    def split_size(self, split: str) -> int:
        return self.examples.num_examples if split == "train" else \
            self.examples.validation_examples

    @classmethod
    def open(cls, directory, needs: tuple[str, ...] = ("tokenizer", "train", "validation")
             ) -> "Corpus":
        """The finished build in `directory`; `needs` names the outputs the caller reads
        ("pages", "tokenizer", "train", "validation"; validation only where it has examples),
        which must exist."""
        directory = Path(directory)
        stages = _finished_stages(directory, _last_stage_needed(needs))
        section = _Section(directory, stages)
        built = lambda stage, read: read() if stage in stages else None  # noqa: E731
        corpus = cls(
            directory=directory,
            pages=PagesInfo(
                languages=tuple(LanguagePages(
                    language=str(entry["language"]), dump=Path(str(entry["dump"])),
                    dbname=str((entry.get("siteinfo") or {}).get("dbname", "")),
                    rows=tuple(entry["rows"]), id_offset=int(entry.get("id_offset", 0)),
                    counts=dict(entry.get("counts", {})),
                    rules=dict(entry.get("language_rules", {})))
                    for entry in section.get("pages", "languages")),
                truncated=bool(section.get("pages", "truncated", False)),
                fingerprint=str(section.get("pages", "fingerprint")),
                counts=dict(stages["pages"].get("counts", {}))),
            entity_vocab=built("entity_vocab", lambda: EntityVocabInfo(
                size=int(section.get("entity_vocab", "size")),
                fingerprint=str(section.get("entity_vocab", "fingerprint")),
                counts=dict(stages["entity_vocab"].get("counts", {})),
                keys=str(section.get("entity_vocab", "keys", "title")))),
            tokenizer=built("tokenizer", lambda: TokenizerInfo(
                **{key: int(section.get("tokenizer", key)) for key in (
                    "vocab_size", "pad_token_id", "bos_token_id", "eos_token_id",
                    "mask_token_id")},
                fingerprint=str(section.get("tokenizer", "fingerprint")),
                kind=str(section.get("tokenizer", "kind")),
                word_start_marker=str(section.get("tokenizer", "word_start_marker")),
                base_model=section.get("tokenizer", "base_model"),
                counts=dict(stages["tokenizer"].get("counts", {})))),
            examples=built("examples", lambda: ExamplesInfo(
                num_examples=int(section.get("examples", "num_examples")),
                validation_examples=int(section.get("examples", "validation_examples")),
                fingerprint=str(section.get("examples", "fingerprint")),
                limits=Limits(**{key: section.get("examples", key) for key in (
                    "max_seq_length", "max_entities", "max_mention_length",
                    "min_sentence_tokens", "unk_entities")}),
                languages=tuple(LanguageExamples(
                    language=str(entry["language"]), locale=str(entry["locale"]),
                    rows=tuple(entry["rows"]), validation_rows=tuple(entry["validation_rows"]),
                    validation_page_ids=tuple(entry.get("validation_page_ids", ())),
                    counts=dict(entry.get("counts", {})))
                    for entry in section.get("examples", "languages")),
                counts=dict(stages["examples"].get("counts", {})))))
        corpus._check_outputs(needs)
        return corpus

    def _check_outputs(self, needs: tuple[str, ...]) -> None:
        paths = {"pages": self.pages_dir, "tokenizer": self.tokenizer_dir,
                 "train": self.split_dir("train"), "validation": self.split_dir("validation")}
        for need in needs:
            if need == "validation" and not self.examples.validation_examples:
                continue
            if not paths[need].exists():
                raise CorpusError(f"{self.directory}: not a finished corpus build: "
                                  f"{paths[need].name}/ is missing")


# The stage whose output each need is.
_STAGE_OF_NEED = {"pages": "pages", "tokenizer": "tokenizer", "train": "examples",
                  "validation": "examples"}


def _last_stage_needed(needs: tuple[str, ...]) -> str:
    """The latest stage, in build order, that makes one of `needs`."""
    unknown = sorted(set(needs) - set(_STAGE_OF_NEED))
    if unknown:
        raise ValueError(f"unknown corpus output(s) {unknown}: expected some of "
                         f"{sorted(_STAGE_OF_NEED)}")
    return max((_STAGE_OF_NEED[need] for need in needs), key=STAGE_NAMES.index,
               default=STAGE_NAMES[-1])


def _finished_stages(directory: Path, through: str) -> dict[str, dict]:
    """The manifest's stage sections, once the manifest shows every stage up to `through`
    finished (the later ones are returned too where they are)."""
    if not directory.is_dir():
        raise CorpusError(f"{directory}: corpus directory does not exist")
    try:
        manifest = read_manifest(directory)
    except ManifestError as error:
        raise CorpusError(str(error)) from None
    if manifest is None:
        raise CorpusError(f"{directory}: not a finished corpus build: {schema.MANIFEST_FILE} "
                          "is missing (run `luke-corpus build` to completion)")
    stages = manifest["stages"]
    required = STAGE_NAMES[: STAGE_NAMES.index(through) + 1]
    missing = [name for name in required if name not in stages]
    if missing:
        raise CorpusError(f"{directory}: not a finished corpus build: stage(s) "
                          f"{', '.join(missing)} missing from {schema.MANIFEST_FILE}")
    return stages


class _Section:
    """Looks a key up in a stage's section, where stages keep it: at its top, under "counts",
    under "options", or (the wiki's names) under "siteinfo"."""

    _MISSING = object()

    def __init__(self, directory: Path, stages: dict[str, dict]) -> None:
        self.directory = directory
        self.stages = stages

    def get(self, stage: str, key: str, default: Any = _MISSING) -> Any:
        section = self.stages[stage]
        for place in (section, section.get("counts", {}), section.get("options", {}),
                      section.get("siteinfo", {})):
            if key in place:
                return place[key]
        if default is self._MISSING:
            raise CorpusError(f"{self.directory}/{schema.MANIFEST_FILE}: key "
                              f"stages.{stage}.{key} is missing")
        return default
