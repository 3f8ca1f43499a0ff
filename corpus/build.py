"""The build driver: run the corpus stages in order into one output directory, safely.

`build(options)` runs the stages declared in corpus/stages.py (pages, entity_vocab, tokenizer,
examples), each a module with `run(ctx) -> dict`. What it guarantees:
  - skip: a stage whose manifest section holds the same options (Stage.options), the same
    upstream fingerprints and, for pages, the same input file, and whose outputs exist, is
    not run again; when a stage does run, the sections and outputs downstream of it are dropped,
    so nothing stale stays next to the new data;
  - atomic: a stage writes into DIR/.staging-<stage>/ (upstream outputs visible there through
    symlinks), and only when it returns are its outputs renamed into DIR and its section
    written to the manifest; an interrupted stage leaves no output that looks complete (its
    staging directory is removed, or swept by the next build if the process was killed);
  - refusal: a DIR that holds a different build (another dump, other options) or foreign files
    is refused unless overwrite=True;
  - one writer: a build holds an exclusive lock on DIR/.build.lock while it runs, so a second
    build into the same DIR is refused naming the first one's pid; the kernel drops the lock of
    a build that dies however it dies, and the next build takes over its directory;
  - truncated input: the pages kept are saved and the manifest says truncated, then the build
    stops with TruncatedInput unless options.allow_truncated;
  - work ahead: a later stage's long part that reads only an earlier stage's outputs starts
    in a process of its own once that stage is done (the tokenizer's training beside the
    entity vocabulary, corpus/ahead.py), and is stopped if the build stops first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from corpus.ahead import AheadWork
from corpus.dump import DumpError
from corpus.manifest import (ManifestError, empty_manifest, file_fingerprint, read_manifest,
                             write_manifest)
from corpus.options import BuildOptions, StageContext
from corpus.schema import MANIFEST_FILE
from corpus.stages import STAGE_NAMES, STAGES, downstream_of, stage, upstream_of

STAGING_PREFIX = ".staging-"
LOCK_FILE = ".build.lock"        # holds "pid N on HOST" while a build runs, empty after


class BuildError(Exception):
    """The build cannot start or go on; the message says why and what to do."""


class TruncatedInput(BuildError):
    """The dump ended early; its complete pages were saved and the manifest says truncated."""


def build(options: BuildOptions, until: str | None = None, overwrite: bool = False
          ) -> dict[str, Any]:
    """Run the stages up to `until` (all if None) into options.out; return the manifest."""
    options = _absolute(options)
    _validate(options, until)
    out = Path(options.out)
    _refuse_foreign(out, overwrite)       # before the lock file is written into it
    names = STAGE_NAMES[: STAGE_NAMES.index(until) + 1 if until else len(STAGE_NAMES)]
    with exclusive_writer(out):
        manifest = _open_out_dir(out, options, overwrite)
        ran: dict[str, float] = {}
        ahead: dict[str, AheadWork] = {}
        try:
            for name in names:
                if not _is_current(name, manifest, options, out):
                    started = time.perf_counter()
                    manifest = _run_stage(name, manifest, options, out, ahead.pop(name, None))
                    ran[name] = time.perf_counter() - started
                if name == "pages":
                    _check_truncated(manifest, options, ran)
                ahead.update(_start_ahead(name, names, manifest, options, out))
        finally:
            for work in ahead.values():     # the build stopped before collecting it
                work.cancel()
    print(format_summary(manifest, ran, out), file=sys.stderr)
    return manifest


def _start_ahead(done: str, names: tuple[str, ...], manifest: dict[str, Any],
                 options: BuildOptions, out: Path) -> dict[str, AheadWork]:
    """The long parts that may start now that stage `done` is done: those of the later stages
    this build runs that start after it (Stage.starts_after). Such a stage runs unless it and
    every stage between are current; a stage in between that runs redoes it anyway."""
    started = {}
    for position, name in enumerate(names):
        if stage(name).starts_after != done:
            continue
        between = names[names.index(done) + 1: position + 1]
        if all(_is_current(s, manifest, options, out) for s in between):
            continue
        module = importlib.import_module(stage(name).module)
        work = module.work_ahead(out, options, manifest["stages"])
        if work is not None:
            func, args, what = work
            started[name] = AheadWork(func, args, what)
    return started


@contextlib.contextmanager
def exclusive_writer(out: Path):
    """Hold DIR's build lock while the body runs; refuse when another build holds it.

    flock, not a pid file alone: the kernel releases it when its process ends, so a build that
    was killed never leaves a lock that blocks the next one. The file names its holder for the
    refusal message and is emptied on the way out; a holder still named in a lock that could be
    taken is a build that died, and the new build says it takes over."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(errors="replace").strip() or "pid unknown"
            raise BuildError(f"another build is writing {out} ({holder}); wait for it to "
                             f"finish, or stop it and rerun") from None
        previous = os.read(fd, 256).decode(errors="replace").strip()
        if previous:
            print(f"luke-corpus: note: {out} was left by a build that stopped without finishing "
                  f"({previous}); taking it over", file=sys.stderr)
        _write_holder(fd, f"pid {os.getpid()} on {socket.gethostname()}\n")
        try:
            yield
        finally:
            _write_holder(fd, "")
    finally:
        os.close(fd)     # releases the lock


def _write_holder(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def _absolute(options: BuildOptions) -> BuildOptions:
    """Paths made absolute, so a rerun from another directory is recognized as the same build."""
    paths = {name: Path(getattr(options, name)).absolute()
             for name in ("out", "index", "tokenizer", "base_model") if getattr(options, name)}
    lists = {name: tuple(Path(path).absolute() for path in getattr(options, name))
             for name in ("dumps", "wikidata_ids")}
    return dataclasses.replace(options, **paths, **lists)


def _validate(options: BuildOptions, until: str | None) -> None:
    problems = []
    if until is not None and until not in STAGE_NAMES:
        problems.append(f"unknown stage {until!r} (stages: {', '.join(STAGE_NAMES)})")
    if options.workers < 1:
        problems.append(f"workers must be >= 1, not {options.workers}")
    if options.entity_vocab_size < 5:
        problems.append(f"entity vocabulary size {options.entity_vocab_size} leaves no room "
                        f"beside the 4 special entities")
    if options.min_link_count < 1:
        problems.append(f"min link count must be >= 1, not {options.min_link_count}")
    if options.unk_entities not in ("keep", "drop"):
        problems.append(f"unk_entities must be 'keep' or 'drop', not {options.unk_entities!r}")
    if options.page_timeout < 0:
        problems.append(f"page timeout must be >= 0 seconds, not {options.page_timeout}")
    if options.tokenizer is not None and options.base_model is not None:
        problems.append("--tokenizer and --base-model both name a tokenizer: give one")
    problems += _multilingual_problems(options)
    if problems:
        raise BuildError("; ".join(problems))
    if options.base_model is not None:      # refused now, not after the pages stage
        from corpus.base_tokenizer import open_base_model
        open_base_model(Path(options.base_model))
    files = [("dump", p) for p in options.dumps] + [("index", options.index)] + [
        ("page_props dump", p) for p in options.wikidata_ids]
    for what, path in files:
        if path is not None and not Path(path).is_file():
            raise DumpError(f"{path}: {what} not found (no such file)")


def _multilingual_problems(options: BuildOptions) -> list[str]:
    """What cannot go with several dumps, or with Wikidata ids."""
    problems = []
    several = len(options.dumps) > 1
    if not options.dumps:
        problems.append("no dump given")
    if len(set(options.dumps)) < len(options.dumps):
        problems.append("a dump is given twice")
    if several and options.index is not None:
        problems.append("--index names one dump's index; with several dumps each index is "
                        "found beside its dump")
    if options.language and len(options.language) != len(options.dumps):
        problems.append(f"--language needs one language per dump, in the order of the dumps: "
                        f"{len(options.language)} for {len(options.dumps)} dumps")
    if options.wikidata_ids and len(options.wikidata_ids) != len(options.dumps):
        problems.append(f"--wikidata-ids needs one page_props dump per dump, in the same order: "
                        f"{len(options.wikidata_ids)} for {len(options.dumps)} dumps")
    if several and not options.wikidata_ids and not options.local_entities:
        problems.append("several dumps need --wikidata-ids (one entity per Wikidata item "
                        "across languages), or --local-entities for entities of each language "
                        "alone")
    if options.min_languages < 1:
        problems.append(f"--min-languages must be >= 1, not {options.min_languages}")
    if options.min_languages > 1 and not options.wikidata_ids:
        problems.append("--min-languages counts the languages of a Wikidata item: give "
                        "--wikidata-ids")
    if not 0 < options.language_alpha <= 1:
        problems.append(f"--language-alpha must lie in (0, 1], not {options.language_alpha}")
    return problems


def _refuse_foreign(out: Path, overwrite: bool) -> None:
    """A directory that holds files but no build is the user's: refuse to write into it."""
    if overwrite or not out.is_dir() or (out / MANIFEST_FILE).exists():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _known_names())
    if foreign:
        raise BuildError(f"{out} is not empty and holds no luke-corpus build "
                         f"({', '.join(foreign[:3])}...); choose an empty --out or pass "
                         f"--overwrite")


def _open_out_dir(out: Path, options: BuildOptions, overwrite: bool) -> dict[str, Any]:
    """The manifest of `out` (created if new), after refusing a different build there."""
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(STAGING_PREFIX + "*"):     # from a build that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        manifest = read_manifest(out)
    except ManifestError:
        if not overwrite:
            raise
        manifest = None          # a build of another schema version: replaced stage by stage
    if manifest is None:
        _refuse_foreign(out, overwrite)
        manifest = empty_manifest()
        write_manifest(out, manifest)
        return manifest
    difference = _difference(manifest, options)
    if difference and not overwrite:
        raise BuildError(f"{out} holds a different build ({difference}); pass --overwrite to "
                         f"replace it or choose another --out")
    return manifest


def _known_names() -> set[str]:
    return {MANIFEST_FILE, LOCK_FILE, *(name for spec in STAGES for name in spec.outputs)}


def _difference(manifest: dict[str, Any], options: BuildOptions) -> str:
    """'' if every finished stage was built from these options and this input, else what differs."""
    for name, section in manifest["stages"].items():
        wanted = options.subset(stage(name).options)
        for option, value in wanted.items():
            if section.get("options", {}).get(option) != value:
                return f"stage {name}: {option} was {section.get('options', {}).get(option)!r}, " \
                       f"now {value!r}"
        changed = _changed_input(name, section, options)
        if changed:
            return f"{changed} changed since stage {name} read it"
    return ""


def input_digests(name: str, options: BuildOptions) -> dict[str, list[str]]:
    """The content digests of the files a stage reads (its Stage.inputs), by option."""
    return {option: [file_fingerprint(Path(path))["digest"] for path in getattr(options, option)]
            for option in stage(name).inputs}


def _changed_input(name: str, section: dict[str, Any], options: BuildOptions) -> str:
    """The first input file of the stage whose content differs from what it read, or ''."""
    recorded = section.get("input_digests", {})
    for option, digests in input_digests(name, options).items():
        for path, now, then in zip(getattr(options, option), digests,
                                   recorded.get(option, [None] * len(digests))):
            if now != then:
                return str(path)
    return ""


def _upstream(name: str, manifest: dict[str, Any]) -> dict[str, str]:
    return {s: manifest["stages"][s]["fingerprint"] for s in upstream_of(name)
            if s in manifest["stages"]}


def _is_current(name: str, manifest: dict[str, Any], options: BuildOptions, out: Path) -> bool:
    """True when the stage's recorded output is what these options and inputs would give."""
    section = manifest["stages"].get(name)
    if section is None:
        return False
    same = (section.get("options") == options.subset(stage(name).options)
            and section.get("upstream") == _upstream(name, manifest)
            and all((out / output).exists() for output in section.get("outputs", ())))
    return same and not _changed_input(name, section, options)


def _run_stage(name: str, manifest: dict[str, Any], options: BuildOptions, out: Path,
               ahead: AheadWork | None = None) -> dict[str, Any]:
    """Run one stage in its staging directory, move its outputs in, record its section;
    `ahead`: its long part, started early (_start_ahead)."""
    spec = stage(name)
    module = importlib.import_module(spec.module)
    downstream = downstream_of(name)
    manifest = {**manifest, "stages": {s: v for s, v in manifest["stages"].items()
                                       if s not in downstream}}
    write_manifest(out, manifest)          # from here on, this stage and later ones are unfinished
    for output in (o for s in downstream for o in stage(s).outputs):
        _remove(out / output)              # stale now; nothing may look finished until replaced
    staging = _make_staging(spec.outputs, name, out)
    try:
        ctx = StageContext(options=dataclasses.replace(options, out=staging), build_dir=out,
                           manifest=manifest["stages"], workers=options.workers, ahead=ahead)
        section = dict(module.run(ctx))
        outputs = _move_outputs(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if ahead is not None:
            ahead.cancel()     # a stage that failed before collecting it: it must not go on
    section.update(options=options.subset(spec.options),
                   input_digests=input_digests(name, options),
                   upstream=_upstream(name, manifest), outputs=outputs,
                   finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    section.setdefault("fingerprint", _section_digest(section))
    manifest["stages"][name] = section
    write_manifest(out, manifest)
    return manifest


def _make_staging(own: tuple[str, ...], name: str, out: Path) -> Path:
    """DIR/.staging-<name>/ with every finished upstream output linked in (not the stage's
    own outputs `own`)."""
    staging = out / f"{STAGING_PREFIX}{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for entry in out.iterdir():
        if entry.name.startswith(".") or entry.name in own:
            continue
        (staging / entry.name).symlink_to(Path("..") / entry.name)
    return staging


def _move_outputs(staging: Path, out: Path) -> list[str]:
    """Rename what the stage wrote (everything but the upstream links) into DIR."""
    written = sorted(p.name for p in staging.iterdir() if not p.is_symlink())
    for name in written:
        _remove(out / name)
        os.replace(staging / name, out / name)
    return written


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _section_digest(section: dict[str, Any]) -> str:
    """Fallback fingerprint for a stage that returns none: its options, upstream and counts."""
    import hashlib
    import json
    text = json.dumps({k: section.get(k) for k in ("options", "upstream", "counts")},
                      sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _check_truncated(manifest: dict[str, Any], options: BuildOptions, ran: dict) -> None:
    pages = manifest["stages"]["pages"]
    if pages.get("truncated") and not options.allow_truncated:
        print(format_summary(manifest, ran, Path(options.out)), file=sys.stderr)
        raise TruncatedInput(f"{pages.get('truncation') or 'the input is truncated'}; the "
                             f"pages are saved; pass --allow-truncated to go on with them")


def format_summary(manifest: dict[str, Any], ran: dict[str, float], out: Path) -> str:
    """A one-screen account of the build: what ran, what was skipped, the main counts."""
    lines = [f"luke-corpus build: {out}"]
    for name in STAGE_NAMES:
        section = manifest["stages"].get(name)
        if section is None:
            lines.append(f"  {name:<13} not built")
            continue
        state = f"ran in {ran[name]:.1f} s" if name in ran else "up to date, skipped"
        counts = section.get("counts", {})
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items()
                          if isinstance(v, int) and (v or k in ("articles", "size")))[:400]
        lines.append(f"  {name:<13} {state}: {shown}")
    pages = manifest["stages"].get("pages", {})
    malformed = pages.get("counts", {}).get("malformed_pages")
    if malformed:
        kinds = ", ".join(f"{k.removeprefix('malformed_')} {v:,}"
                          for k, v in pages["counts"].items()
                          if k.startswith("malformed_") and k != "malformed_pages" and v)
        lines.append(f"  WARNING: {malformed:,} malformed pages skipped ({kinds}); the log "
                     f"names each")
    if pages.get("truncated"):
        lines.append(f"  WARNING: {pages.get('truncation') or 'input truncated'}")
    return "\n".join(lines)
