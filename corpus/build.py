"""The build driver: run the corpus stages in order into one output directory, safely.

`build(options)` runs corpus.schema.STAGES (pages, entity_vocab, tokenizer, examples), each a
module with `run(ctx) -> dict`. What it guarantees:
  - skip: a stage whose manifest section holds the same options (STAGE_OPTIONS), the same
    upstream fingerprints and, for pages, the same input file, and whose outputs exist, is
    not run again; when a stage does run, the sections and outputs downstream of it are dropped,
    so nothing stale stays next to the new data;
  - atomic: a stage writes into DIR/.staging-<stage>/ (upstream outputs visible there through
    symlinks), and only when it returns are its outputs renamed into DIR and its section
    written to the manifest; an interrupted stage leaves no output that looks complete (its
    staging directory is removed, or swept by the next build if the process was killed);
  - refusal: a DIR that holds a different build (another dump, other options) or foreign files
    is refused unless overwrite=True;
  - truncated input: the pages kept are saved and the manifest says truncated, then the build
    stops with TruncatedInput unless options.allow_truncated.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from corpus.dump import DumpError
from corpus.manifest import empty_manifest, read_manifest, write_manifest
from corpus.options import STAGE_OPTIONS, BuildOptions, StageContext
from corpus.schema import (ENTITY_VOCAB_DIR, EXAMPLES_DIR, MANIFEST_FILE, PAGES_DIR,
                           REDIRECTS_FILE, STAGES, TOKENIZER_DIR, VALIDATION_DIR)

STAGE_MODULES = {"pages": "corpus.pages_stage", "entity_vocab": "corpus.entity_vocab",
                 "tokenizer": "corpus.tokenizer_stage", "examples": "corpus.examples_stage"}
# What each stage writes in DIR; a rerun replaces these (and never writes through them).
STAGE_OUTPUTS = {"pages": (PAGES_DIR, REDIRECTS_FILE), "entity_vocab": (ENTITY_VOCAB_DIR,),
                 "tokenizer": (TOKENIZER_DIR,), "examples": (EXAMPLES_DIR, VALIDATION_DIR)}
STAGING_PREFIX = ".staging-"


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
    manifest = _open_out_dir(out, options, overwrite)
    ran: dict[str, float] = {}
    for stage in STAGES[: STAGES.index(until) + 1 if until else len(STAGES)]:
        if not _is_current(stage, manifest, options, out):
            started = time.perf_counter()
            manifest = _run_stage(stage, manifest, options, out)
            ran[stage] = time.perf_counter() - started
        if stage == "pages":
            _check_truncated(manifest, options, ran)
    print(format_summary(manifest, ran, out), file=sys.stderr)
    return manifest


def _absolute(options: BuildOptions) -> BuildOptions:
    """Paths made absolute, so a rerun from another directory is recognized as the same build."""
    paths = {name: Path(getattr(options, name)).absolute()
             for name in ("dump", "out", "index", "tokenizer") if getattr(options, name)}
    return dataclasses.replace(options, **paths)


def _validate(options: BuildOptions, until: str | None) -> None:
    problems = []
    if until is not None and until not in STAGES:
        problems.append(f"unknown stage {until!r} (stages: {', '.join(STAGES)})")
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
    if problems:
        raise BuildError("; ".join(problems))
    for name in ("dump", "index"):
        path = getattr(options, name)
        if path is not None and not Path(path).is_file():
            raise DumpError(f"{path}: {name} not found (no such file)")


def _open_out_dir(out: Path, options: BuildOptions, overwrite: bool) -> dict[str, Any]:
    """The manifest of `out` (created if new), after refusing a different build there."""
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(STAGING_PREFIX + "*"):     # from a build that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    manifest = read_manifest(out)
    if manifest is None:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _known_names())
        if foreign and not overwrite:
            raise BuildError(f"{out} is not empty and holds no luke-corpus build "
                             f"({', '.join(foreign[:3])}...); choose an empty --out or pass "
                             f"--overwrite")
        manifest = empty_manifest()
        write_manifest(out, manifest)
        return manifest
    difference = _difference(manifest, options)
    if difference and not overwrite:
        raise BuildError(f"{out} holds a different build ({difference}); pass --overwrite to "
                         f"replace it or choose another --out")
    return manifest


def _known_names() -> set[str]:
    names = {MANIFEST_FILE}
    for outputs in STAGE_OUTPUTS.values():
        names.update(outputs)
    return names


def _difference(manifest: dict[str, Any], options: BuildOptions) -> str:
    """'' if every finished stage was built from these options and this input, else what differs."""
    for stage, section in manifest["stages"].items():
        wanted = options.subset(STAGE_OPTIONS.get(stage, ()))
        for name, value in wanted.items():
            if section.get("options", {}).get(name) != value:
                return f"stage {stage}: {name} was {section.get('options', {}).get(name)!r}, " \
                       f"now {value!r}"
    pages = manifest["stages"].get("pages")
    if pages and pages.get("input", {}).get("digest") != _input_digest(options):
        return f"the dump {options.dump} changed since it was read"
    return ""


def _input_digest(options: BuildOptions) -> str:
    from corpus.pages_stage import input_fingerprint
    return input_fingerprint(Path(options.dump))["digest"]


def _upstream(stage: str, manifest: dict[str, Any]) -> dict[str, str]:
    before = STAGES[: STAGES.index(stage)]
    return {s: manifest["stages"][s]["fingerprint"] for s in before if s in manifest["stages"]}


def _is_current(stage: str, manifest: dict[str, Any], options: BuildOptions, out: Path) -> bool:
    """True when the stage's recorded output is what these options and inputs would give."""
    section = manifest["stages"].get(stage)
    if section is None:
        return False
    same = (section.get("options") == options.subset(STAGE_OPTIONS.get(stage, ()))
            and section.get("upstream") == _upstream(stage, manifest)
            and all((out / name).exists() for name in section.get("outputs", ())))
    if same and stage == "pages":
        same = section.get("input", {}).get("digest") == _input_digest(options)
    return same


def _run_stage(stage: str, manifest: dict[str, Any], options: BuildOptions, out: Path
               ) -> dict[str, Any]:
    """Run one stage in its staging directory, move its outputs in, record its section."""
    module = importlib.import_module(STAGE_MODULES[stage])
    downstream = STAGES[STAGES.index(stage):]
    manifest = {**manifest, "stages": {s: v for s, v in manifest["stages"].items()
                                       if s not in downstream}}
    write_manifest(out, manifest)          # from here on, this stage and later ones are unfinished
    for name in (n for s in downstream for n in STAGE_OUTPUTS.get(s, ())):
        _remove(out / name)                # stale now; nothing may look finished until replaced
    staging = _make_staging(stage, out)
    try:
        ctx = StageContext(options=dataclasses.replace(options, out=staging),
                           manifest=manifest["stages"], workers=options.workers)
        section = dict(module.run(ctx))
        outputs = _move_outputs(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    section.update(options=options.subset(STAGE_OPTIONS.get(stage, ())),
                   upstream=_upstream(stage, manifest), outputs=outputs,
                   finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    section.setdefault("fingerprint", _section_digest(section))
    manifest["stages"][stage] = section
    write_manifest(out, manifest)
    return manifest


def _make_staging(stage: str, out: Path) -> Path:
    """DIR/.staging-<stage>/ with every finished upstream output linked in."""
    staging = out / f"{STAGING_PREFIX}{stage}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    own = set(STAGE_OUTPUTS.get(stage, ()))
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
    for stage in STAGES:
        section = manifest["stages"].get(stage)
        if section is None:
            lines.append(f"  {stage:<13} not built")
            continue
        state = f"ran in {ran[stage]:.1f} s" if stage in ran else "up to date, skipped"
        counts = section.get("counts", {})
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.items()
                          if isinstance(v, int) and (v or k in ("articles", "size")))[:400]
        lines.append(f"  {stage:<13} {state}: {shown}")
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
