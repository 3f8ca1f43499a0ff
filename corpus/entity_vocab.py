"""The entity vocabulary stage: DIR/pages -> DIR/entity_vocab/{entity_vocab.json, counts.jsonl}.

Counts the links per resolved target and keeps the top K (the four specials included) in count
order, ties broken by title (code point order), so the same dump always gives the same ids:
`[PAD]`=0, `[UNK]`=1, `[MASK]`=2, `[MASK2]`=3, then titles, dense. By default only titles that
are articles of the dump are candidates (a link to a missing page or a redirect has no
description to learn from); `partial_dump` is for a fragment of a dump, whose link targets are
mostly absent from it: then every resolved target is a candidate. Counting runs on the Arrow
columns (pyarrow's hash kernels), not in a Python loop, so a full English dump's 160M links are
counted in seconds to minutes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.options import StageContext
from corpus.schema import (ENTITY_COUNTS_FILE, ENTITY_SPECIALS, ENTITY_VOCAB_DIR,
                           ENTITY_VOCAB_FILE, PAGES_DIR)


def count_link_targets(pages) -> pa.Table:
    """A table (title, count) of every resolved link target of a pages dataset."""
    targets = pc.list_flatten(pages.data.column("link_target"))
    counted = pc.value_counts(targets)
    return pa.table({"title": counted.field("values"), "count": counted.field("counts")})


def top_entities(counts: pa.Table, size: int, min_count: int,
                 articles: pa.Array | None) -> list[tuple[str, int]]:
    """The (title, count) pairs that get ids, best first: count descending, then title."""
    if size < len(ENTITY_SPECIALS):
        raise ValueError(f"entity_vocab_size {size} is smaller than the "
                         f"{len(ENTITY_SPECIALS)} special entities")
    keep = pc.greater_equal(counts.column("count"), min_count)
    if articles is not None:
        keep = pc.and_(keep, pc.is_in(counts.column("title"), value_set=articles))
    candidates = counts.filter(keep)
    order = pc.sort_indices(candidates, sort_keys=[("count", "descending"),
                                                  ("title", "ascending")])
    best = candidates.take(order[: size - len(ENTITY_SPECIALS)])
    return list(zip(best.column("title").to_pylist(), best.column("count").to_pylist()))


def write_vocab(entities: list[tuple[str, int]], language: str, vocab_dir: Path) -> None:
    """entity_vocab.json (title -> id, transformers' format) and counts.jsonl (LUKE's format)."""
    vocab_dir.mkdir(parents=True, exist_ok=True)
    rows = [(name, 0) for name in ENTITY_SPECIALS] + entities
    vocab = {title: entity_id for entity_id, (title, _) in enumerate(rows)}
    with open(vocab_dir / ENTITY_VOCAB_FILE, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
    with open(vocab_dir / ENTITY_COUNTS_FILE, "w", encoding="utf-8") as f:
        for entity_id, (title, count) in enumerate(rows):
            f.write(json.dumps({"id": entity_id, "entities": [[title, language]], "count": count},
                               ensure_ascii=False) + "\n")


def _files_digest(paths: list[Path]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(ctx: StageContext) -> dict:
    """Build DIR/entity_vocab from DIR/pages; return the stage's manifest section."""
    import datasets

    options = ctx.options
    pages = datasets.load_from_disk(str(ctx.out_dir / PAGES_DIR))
    counts = count_link_targets(pages)
    articles = None if options.partial_dump else pages.data.column("title").combine_chunks()
    entities = top_entities(counts, options.entity_vocab_size, options.min_link_count, articles)
    language = ctx.manifest.get("pages", {}).get("language", "en")
    vocab_dir = ctx.out_dir / ENTITY_VOCAB_DIR
    write_vocab(entities, language, vocab_dir)
    links = int(pc.sum(counts.column("count")).as_py() or 0)
    in_vocab = sum(count for _, count in entities)
    size = len(ENTITY_SPECIALS) + len(entities)
    return {"fingerprint": _files_digest([vocab_dir / ENTITY_VOCAB_FILE,
                                          vocab_dir / ENTITY_COUNTS_FILE]),
            "size": size,
            "counts": {"size": size, "titles": len(entities), "links": links,
                       "links_in_vocab": in_vocab, "distinct_targets": counts.num_rows}}
