"""Every stage of a corpus build, declared once: its name, the module that runs it, what it
writes into the build directory DIR, and the build options its output depends on.

The build driver (corpus/build.py) runs the stages in this order, skips one whose recorded
options and upstream fingerprints are unchanged, and drops everything downstream of a stage
it reruns; the typed reader (corpus/reader.py) refuses a build that lacks any of them. A stage
module has `run(ctx: StageContext) -> dict` (corpus/options.py) returning its manifest section,
and a stage with `starts_after` has `work_ahead(build_dir, options, sections)` too (`sections`:
the manifest's sections of the stages done): the function, arguments and name of its long
part, or None when these options give it none.
"""

from __future__ import annotations

from dataclasses import dataclass

from corpus.schema import (ENTITY_VOCAB_DIR, EXAMPLES_DIR, PAGES_DIR, REDIRECTS_FILE,
                           TOKENIZER_DIR, VALIDATION_DIR)


@dataclass(frozen=True)
class Stage:
    name: str
    module: str                    # the module whose run(ctx) builds it
    outputs: tuple[str, ...]       # what it writes in DIR; a rerun replaces these
    options: tuple[str, ...]       # BuildOptions fields its output depends on (upstream
                                   # outputs are tracked by their fingerprints instead)
    inputs: tuple[str, ...] = ()   # those options that name input files: their contents are
                                   # fingerprinted too, so a changed file redoes the stage
    starts_after: str | None = None   # an earlier stage whose outputs are all that this one's
                                   # long part reads: its module's `work_ahead` starts that
                                   # part once the earlier one is done (corpus/ahead.py)


STAGES: tuple[Stage, ...] = (
    Stage("pages", "corpus.pages_stage", (PAGES_DIR, REDIRECTS_FILE),
          ("dumps", "index", "allow_truncated", "page_timeout", "language", "variant"),
          inputs=("dumps",)),
    Stage("entity_vocab", "corpus.entity_vocab", (ENTITY_VOCAB_DIR,),
          ("partial_dump", "entity_vocab_size", "min_link_count", "wikidata_ids",
           "min_languages", "local_entities"), inputs=("wikidata_ids",)),
    Stage("tokenizer", "corpus.tokenizer_stage", (TOKENIZER_DIR,),
          ("word_vocab_size", "tokenizer", "base_model", "language_alpha", "seed"),
          starts_after="pages"),   # training reads the pages; entity_vocab runs beside it
    Stage("examples", "corpus.examples_stage", (EXAMPLES_DIR, VALIDATION_DIR),
          ("max_seq_length", "max_entities", "max_mention_length", "min_sentence_tokens",
           "unk_entities", "validation_pages", "language", "seed")),
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
_BY_NAME = {stage.name: stage for stage in STAGES}


def stage(name: str) -> Stage:
    """The stage called `name`; a KeyError names the stages there are."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r} (stages: {', '.join(STAGE_NAMES)})") from None


def upstream_of(name: str) -> tuple[str, ...]:
    """The stages before `name`, in build order."""
    return STAGE_NAMES[: STAGE_NAMES.index(name)]


def downstream_of(name: str) -> tuple[str, ...]:
    """`name` and the stages after it, in build order."""
    return STAGE_NAMES[STAGE_NAMES.index(name):]
