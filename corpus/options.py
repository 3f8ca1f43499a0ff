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

    def limits(self) -> "Limits":
        """The packing limits of the examples stage."""
        return Limits(self.max_seq_length, self.max_entities, self.max_mention_length,
                      self.min_sentence_tokens, self.unk_entities)

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named options as JSON-ready values, for the manifest and skip decisions."""
        values = dataclasses.asdict(self)
        return {n: (str(values[n]) if isinstance(values[n], Path) else values[n]) for n in names}


@dataclass
class StageContext:
    options: BuildOptions
    manifest: dict[str, Any]             # sections of the stages already finished (read-only)
    workers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.options.out
