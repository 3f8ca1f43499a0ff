"""Options of `luke-corpus build`, shared by every stage, and the context a stage runs in.

A stage is a function `run(ctx: StageContext) -> dict` (in its own module) that writes its
outputs under `ctx.out_dir` and returns its manifest section (see corpus/schema.py). The build
driver (corpus/build.py) decides which stages run, skips finished ones whose options and inputs
are unchanged, and writes the manifest. Which options each stage depends on is declared with
the stage in corpus/stages.py, so that changing an unrelated option does not redo it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Limits:
    """The packing limits of the examples stage (recorded in the manifest, read by inspect)."""
    max_seq_length: int = 512        # <s> and </s> included
    max_entities: int = 128
    max_mention_length: int = 30     # tokens; longer mentions are cut to their first tokens
    min_sentence_tokens: int = 5
    unk_entities: str = "keep"       # keep: link to a title outside the vocabulary -> [UNK]

    def check(self) -> None:
        """Refuse limits under which no example can exist, naming the option."""
        problems = [f"--{name.replace('_', '-')} must be >= {least}, not {value}"
                    for name, least, value in (
                        ("max_seq_length", 3, self.max_seq_length),
                        ("max_entities", 1, self.max_entities),
                        ("max_mention_length", 1, self.max_mention_length),
                        ("min_sentence_tokens", 1, self.min_sentence_tokens))
                    if value < least]
        if self.unk_entities not in ("keep", "drop"):
            problems.append(f"--unk-entities must be keep or drop, not {self.unk_entities!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class BuildOptions:
    dumps: tuple[Path, ...]              # one dump per language (corpus/dump_languages.py)
    out: Path
    workers: int = 1
    index: Path | None = None            # multistream index; found beside the dump if None
    partial_dump: bool = False           # vocabulary candidates: every resolved link target
    wikidata_ids: tuple[Path, ...] = ()  # one *-page_props.sql.gz per dump: one entity per item
    min_languages: int = 1               # items kept: those with articles in this many languages
    local_entities: bool = False         # with wikidata_ids: targets without an item stay, as
                                         # entities of their language alone
    entity_vocab_size: int = 500_000     # specials included
    min_link_count: int = 1
    allow_truncated: bool = False
    page_timeout: float = 10.0           # seconds of parsing per page before it is skipped
    word_vocab_size: int = 32_000
    tokenizer: Path | None = None        # reuse an existing tokenizer directory
    base_model: Path | None = None       # the tokenizer of this encoder's directory
    language_alpha: float = 0.7          # several languages: the tokenizer's training text has
                                         # each language's share of text raised to this power
    max_seq_length: int = 512            # <s> and </s> included
    max_entities: int = 128
    max_mention_length: int = 30
    min_sentence_tokens: int = 5
    unk_entities: str = "keep"           # keep | drop
    validation_pages: int = 0
    language: tuple[str, ...] = ()       # each dump's language (parsing rules, sentence
                                         # splitting), in their order; from siteinfo if ()
    variant: str | None = None           # variant `-{...}-` markup is shown in; the language
    seed: int = 0

    def limits(self) -> "Limits":
        """The packing limits of the examples stage."""
        return Limits(self.max_seq_length, self.max_entities, self.max_mention_length,
                      self.min_sentence_tokens, self.unk_entities)

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named options as JSON-ready values, for the manifest and skip decisions."""
        values = dataclasses.asdict(self)
        return {name: _json_ready(values[name]) for name in names}


def _json_ready(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_json_ready(item) for item in value]
    return value


@dataclass
class StageContext:
    options: BuildOptions
    manifest: dict[str, Any]             # sections of the stages already finished (read-only)
    workers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    build_dir: Path | None = None        # DIR itself: where work kept across runs may lie
    ahead: Any = None                    # the stage's long part, started early by the build
                                         # (corpus.ahead.AheadWork), or None: do it here

    @property
    def out_dir(self) -> Path:
        """Where the stage writes its outputs (DIR's staging directory for it)."""
        return self.options.out

    @property
    def lasting_dir(self) -> Path:
        """Where a stage keeps work that must outlive an interrupted run (its staging
        directory is removed then): DIR, or the output directory when run on its own."""
        return self.build_dir or self.out_dir
