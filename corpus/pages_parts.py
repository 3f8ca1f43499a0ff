"""The pages stage one dump at a time: a part per dump, then one DIR/pages for them all.

Each dump of a build (one per language) is read into its own part under DIR/.pages-parts/,
with a marker written last that records what the part was made from (the dump's content
digest, its language and index, the stage's options). A build interrupted after some dumps
keeps their parts, and its rerun reads only the dumps that have none, as the examples stage
resumes from its finished shards. A part's page ids are already its wiki's ids plus
PAGE_ID_STRIDE times the dump's position (corpus/schema.py: unique across the languages), so
when every dump has its part they are joined without copying a page:
  - one part: its pages dataset and redirects.tsv are renamed into place;
  - several: the parts' data files are renamed into one pages dataset, each language's rows
    together in the order of the dumps; redirects.tsv holds `<lang>:<title>` on both sides
    (the keys mLUKE's entity vocabulary uses).
The stage's manifest section lists the languages with their row ranges, dumps and counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from corpus.arrow_files import combined_digest, join_datasets
from corpus.dump_languages import DumpLanguage
from corpus.manifest import file_fingerprint
from corpus.schema import PAGE_ID_STRIDE, PAGES_DIR, REDIRECTS_FILE

PARTS_DIR = ".pages-parts"
MARKER = "part.json"
# What a part holds beyond its inputs: 2 = ids already offset, data files cut by the workers
# (a part of an older layout is read again rather than joined wrongly).
PART_LAYOUT = 2


def part_key(entry: DumpLanguage, options: dict[str, Any]) -> str:
    """What a part depends on: the dump's content, its language and index, the options."""
    text = json.dumps({"dump": file_fingerprint(entry.dump)["digest"],
                       "language": entry.language, "index": str(entry.index),
                       "options": options, "layout": PART_LAYOUT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def built_part(build_dir: Path, number: int, entry: DumpLanguage, options: dict[str, Any],
               build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """(the part's directory, its section): the finished part of a previous run when it was
    made from the same input, else `build(part_dir)` run now."""
    part = build_dir / PARTS_DIR / f"{number:03d}-{entry.language}"
    key = part_key(entry, options)
    marker = part / MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("key") == key:
            return part, recorded["section"]
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    section = build(part)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "section": section}, ensure_ascii=False),
                   encoding="utf-8")
    os.replace(tmp, marker)
    return part, section


def join_parts(parts: list[tuple[DumpLanguage, Path, dict]], out: Path) -> list[dict]:
    """Put the parts' pages and redirects into `out` as one; returns each language's entry
    for the manifest (its section, language, dump and row range)."""
    several = len(parts) > 1
    if several:
        join_datasets([part / PAGES_DIR for _, part, _ in parts], out / PAGES_DIR,
                      joined_fingerprint([section for _, _, section in parts]))
        _join_redirects([(entry.language, part / REDIRECTS_FILE) for entry, part, _ in parts],
                        out / REDIRECTS_FILE)
    else:
        _, part, _ = parts[0]
        os.replace(part / PAGES_DIR, out / PAGES_DIR)
        os.replace(part / REDIRECTS_FILE, out / REDIRECTS_FILE)
    entries, start = [], 0
    for number, (entry, _, section) in enumerate(parts):
        articles = section["counts"]["articles"]
        entries.append({**section, "language": entry.language, "dump": str(entry.dump),
                        "rows": [start, start + articles],
                        "id_offset": number * PAGE_ID_STRIDE})
        start += articles
    return entries


def _join_redirects(sources: list[tuple[str, Path]], out: Path) -> None:
    """`<lang>:<source><TAB><lang>:<target>` lines, language by language."""
    with open(out, "w", encoding="utf-8") as joined:
        for language, path in sources:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    source, _, target = line.rstrip("\n").partition("\t")
                    joined.write(f"{language}:{source}\t{language}:{target}\n")


def summed_counts(entries: list[dict]) -> dict[str, int]:
    """The languages' counts added up (the build's own counts)."""
    total: dict[str, int] = {}
    for entry in entries:
        for key, value in entry["counts"].items():
            if isinstance(value, int) and key != "longest_redirect_chain":
                total[key] = total.get(key, 0) + value
    total["longest_redirect_chain"] = max(
        (entry["counts"].get("longest_redirect_chain", 0) for entry in entries), default=0)
    return total


def joined_fingerprint(sections: list[dict]) -> str:
    """One fingerprint of the parts' (each the digest of its files), in the order joined."""
    return combined_digest([section["fingerprint"] for section in sections])


def remove_parts(build_dir: Path) -> None:
    shutil.rmtree(build_dir / PARTS_DIR, ignore_errors=True)
