"""Options of `luke-corpus build`, shared by every stage, and the context a stage runs in.

A stage is a function `run(ctx: StageContext) -> dict` (in its own module) that writes its
outputs under `ctx.out_dir` and returns its manifest section (see corpus/schema.py). The build
driver (corpus/build.py) decides which stages run, skips finished ones whose options and inputs
are unchanged, and writes the manifest. A stage names the options it depends on in
STAGE_OPTIONS so that changing an unrelated option does not redo it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuildOptions:
    dump: Path
    out: Path
    workers: int = 1
    index: Path | None = None            # multistream index; found beside the dump if None
    partial_dump: bool = False           # vocabulary candidates: every resolved link target
    entity_vocab_size: int = 500_000     # specials included
    min_link_count: int = 1
    allow_truncated: bool = False
    page_timeout: float = 10.0           # seconds of parsing per page before it is skipped
    word_vocab_size: int = 32_000
    tokenizer: Path | None = None        # reuse an existing tokenizer directory
    max_seq_length: int = 512            # <s> and </s> included
    max_entities: int = 128
    max_mention_length: int = 30
    min_sentence_tokens: int = 5
    unk_entities: str = "keep"           # keep | drop
    validation_pages: int = 0
    language: str | None = None          # the wiki's language (parsing rules, sentence
                                         # splitting); from siteinfo if None
    variant: str | None = None           # variant `-{...}-` markup is shown in; the language
    seed: int = 0

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named options as JSON-ready values, for the manifest and skip decisions."""
        values = dataclasses.asdict(self)
        return {n: (str(values[n]) if isinstance(values[n], Path) else values[n]) for n in names}


# The options each stage's output depends on (upstream outputs are tracked by fingerprint).
STAGE_OPTIONS: dict[str, tuple[str, ...]] = {
    "pages": ("dump", "index", "allow_truncated", "page_timeout", "language", "variant"),
    "entity_vocab": ("partial_dump", "entity_vocab_size", "min_link_count"),
    "tokenizer": ("word_vocab_size", "tokenizer", "seed"),
    "examples": ("max_seq_length", "max_entities", "max_mention_length", "min_sentence_tokens",
                 "unk_entities", "validation_pages", "language", "seed"),
}


@dataclass
class StageContext:
    options: BuildOptions
    manifest: dict[str, Any]             # sections of the stages already finished (read-only)
    workers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.options.out
