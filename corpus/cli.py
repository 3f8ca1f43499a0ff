"""`luke-corpus`: build a LUKE pretraining corpus from a Wikipedia dump, inspect it, benchmark it.

  luke-corpus build DUMP [DUMP ...] --out DIR [--workers N] [--entity-vocab-size K] ...
  luke-corpus inspect | bench | bench-tokenize | bench-items ...   (their modules add their
  own arguments)

Every BuildOptions field has one flag here, generated from one table so that help text and
defaults cannot drift apart. Errors are one line on stderr and a non-zero exit: 1 for bad input
or a refused build, 3 for a truncated dump whose pages were kept (0 with --allow-truncated),
130 when interrupted. LUKE_DEBUG=1 shows the traceback as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from pathlib import Path

from corpus.options import BuildOptions
from corpus.stages import STAGE_NAMES

# Subcommands whose modules are imported only when chosen (they may pull heavy dependencies).
LAZY_COMMANDS = {
    "inspect": ("corpus.inspect", "show what a corpus build holds"),
    "bench": ("corpus.bench", "measure corpus build speed against baselines"),
    "bench-tokenize": ("corpus.bench_tokenize", "measure tokenizer/examples speed"),
    "bench-items": ("corpus.bench_items", "measure the Wikidata-item entity vocabulary: "
                                          "page_props reading, the stage's memory"),
}

# What an interrupted build keeps (corpus/build.py): finished stages; nothing of the unfinished
# one that looks complete; and, for the examples stage, the shards it finished, which it keeps
# in DIR/.examples-parts on purpose so that a rerun does not build them again.
INTERRUPTED_BUILD = ("luke-corpus: interrupted; finished stages are kept and the unfinished one "
                     "left no output that looks complete; rerun the same command to go on "
                     "(the examples stage resumes from the shards it had finished)")

# (field, metavar, help) for every BuildOptions field besides dumps and out; bools are switches,
# tuples take one value per dump.
BUILD_FLAGS = (
    ("workers", "N", "worker processes for parsing (and for reading a multistream dump)"),
    ("index", "FILE", "multistream index (offset:page_id:title); found beside the dump if omitted"),
    ("partial_dump", None, "the dump is a fragment: every resolved link target may enter the "
                           "entity vocabulary, not only the articles present in it"),
    ("wikidata_ids", "SQL", "one *-page_props.sql.gz per dump, in the order of the dumps: one "
                            "entity per Wikidata item across the languages, keyed "
                            "'<lang>:<title>' (needed with several dumps)"),
    ("min_languages", "N", "with --wikidata-ids, keep the items that have an article in at "
                           "least N of the languages"),
    ("local_entities", None, "with --wikidata-ids, keep link targets that have no item as "
                             "entities of their language alone (without it they are left out)"),
    ("entity_vocab_size", "K", "entity vocabulary size, the 4 special entities included"),
    ("min_link_count", "C", "least number of links for a title to enter the entity vocabulary"),
    ("allow_truncated", None, "go on with the pages of a truncated dump (exit 0)"),
    ("page_timeout", "SECONDS", "parsing time per page before the page is skipped (0: no limit)"),
    ("word_vocab_size", "V", "word (sentencepiece) vocabulary size"),
    ("language_alpha", "A", "several languages: each language's share of the tokenizer's "
                            "training text is proportional to its size to the power A, so a "
                            "small language is not drowned (mLUKE's 0.7)"),
    ("tokenizer", "DIR", "reuse this tokenizer directory instead of training one"),
    ("base_model", "DIR", "use the tokenizer of this encoder (a save_pretrained directory of a "
                          "RoBERTa- or XLM-R-family model) instead of training one, so that a "
                          "run initialised from it (luke-train --init-from DIR) reads every "
                          "word as it did"),
    ("max_seq_length", "L", "tokens per example, <s> and </s> included"),
    ("max_entities", "E", "entities kept per example"),
    ("max_mention_length", "M", "tokens per mention; longer mentions are cut"),
    ("min_sentence_tokens", "T", "sentences shorter than this many tokens are dropped"),
    ("unk_entities", "{keep,drop}", "links to titles outside the vocabulary: keep as [UNK] "
                                    "entities or drop them"),
    ("validation_pages", "P", "pages held out for the validation set"),
    ("language", "LANG", "the wiki's language, a MediaWiki code such as en, de, zh, ja: its "
                         "link trail, namespace aliases and variants, and the sentence "
                         "splitter's locale; one per dump, in their order (default: from "
                         "each dump's siteinfo)"),
    ("variant", "VARIANT", "on a wiki whose language has variants (zh, sr, kk ...), the one "
                           "-{...}- markup shows, e.g. zh-hans, zh-tw (default: the language "
                           "itself: the text as its authors wrote it)"),
    ("seed", "S", "random seed (tokenizer training, validation split)"),
)


def _add_build_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = {f.name: f for f in dataclasses.fields(BuildOptions)}
    parser.add_argument("dumps", type=Path, nargs="+", metavar="DUMP",
                        help="*-pages-articles[-multistream].xml.bz2 or .xml; several (one per "
                             "language) build one multilingual corpus")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    for name, metavar, text in BUILD_FLAGS:
        flag, default = "--" + name.replace("_", "-"), defaults[name].default
        if metavar is None:
            parser.add_argument(flag, action="store_true", help=text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=str if name == "language" else Path, nargs="+",
                                default=default, metavar=metavar, help=text)
        else:
            kind = Path if name in ("index", "tokenizer", "base_model") else type(default) \
                if default is not None else str
            parser.add_argument(flag, type=kind, default=default, metavar=metavar,
                                help=f"{text} (default: {default})")
    parser.add_argument("--until", choices=STAGE_NAMES, help="stop after this stage")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different build already in --out")


def _options_from(args: argparse.Namespace) -> BuildOptions:
    names = [name for name, _, _ in BUILD_FLAGS]
    values = {n: tuple(v) if isinstance(v, list) else v for n, v in vars(args).items()
              if n in names}
    return BuildOptions(dumps=tuple(args.dumps), out=args.out, **values)


def _run_build(args: argparse.Namespace) -> int:
    from corpus.build import build
    build(_options_from(args), until=args.until, overwrite=args.overwrite)
    return 0


def make_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser; only the chosen lazy subcommand's module is imported for its arguments."""
    parser = argparse.ArgumentParser(prog="luke-corpus", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="build a corpus from a dump",
                                description="Dump -> pages, entity vocabulary, tokenizer, "
                                            "examples, in stages that a rerun skips when done.")
    _add_build_arguments(build)
    build.set_defaults(handler=_run_build)
    for name, (module_name, text) in LAZY_COMMANDS.items():
        sub = commands.add_parser(name, help=text)
        if name == command:
            module = _import_command(name, module_name)
            module.add_arguments(sub)
            sub.set_defaults(handler=module.run)
    return parser


def _import_command(name: str, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise SystemExit(f"luke-corpus: error: '{name}' is not available in this install "
                         f"({module_name} is missing)")


def _error_code(error: BaseException) -> int:
    from corpus.build import TruncatedInput
    return 3 if isinstance(error, TruncatedInput) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.WARNING, format="luke-corpus: %(levelname)s: %(message)s")
    command = next((a for a in argv if not a.startswith("-")), None)
    args = make_parser(command).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # `luke-corpus inspect ... | head`: the reader has what it wanted. Point stdout at
        # devnull so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(INTERRUPTED_BUILD if command == "build" else "luke-corpus: interrupted",
              file=sys.stderr)
        return 130
    except Exception as error:        # one clear line; the traceback only on request
        if os.environ.get("LUKE_DEBUG"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"luke-corpus: error: {message}", file=sys.stderr)
        return _error_code(error)


if __name__ == "__main__":
    sys.exit(main())
