"""The entity vocabulary stage: DIR/pages -> DIR/entity_vocab/{entity_vocab.json, counts.jsonl}.

Counts the links per resolved target and keeps the top K (the four specials included) in count
order, ties broken by title (code point order), so the same dump always gives the same ids:
`[PAD]`=0, `[UNK]`=1, `[MASK]`=2, `[MASK2]`=3, then titles, dense. By default only titles that
are articles of the dump are candidates (a link to a missing page or a redirect has no
description to learn from); `partial_dump` is for a fragment of a dump, whose link targets are
mostly absent from it: then every resolved target is a candidate. Counting runs on the Arrow
columns (pyarrow's hash kernels), not in a Python loop, so a full English dump's 160M links are
counted in seconds to minutes.

That is the vocabulary of a build of one wiki, keyed by title. A build of several wikis, or one
given Wikidata ids (`--wikidata-ids`), has one entity per Wikidata item across its languages,
keyed `<lang>:<title>` as mLUKE's (corpus/entity_items.py); the manifest says which (`keys`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.entity_items import (Entity, check_props, item_entities, language_tables,
                                 read_props)
from corpus.options import StageContext
from corpus.schema import (ENTITY_COUNTS_FILE, ENTITY_SPECIALS, ENTITY_VOCAB_DIR,
                           ENTITY_VOCAB_FILE, PAGES_DIR)

# json.dumps(x, ensure_ascii=False) builds a new encoder at every call: a third of the time of
# writing the vocabulary's files, entity by entity. One encoder, the same text.
_TO_JSON = json.JSONEncoder(ensure_ascii=False).encode


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
    """entity_vocab.json (title -> id, transformers' format) and counts.jsonl (LUKE's format),
    their lines made by Arrow's string kernels (entity by entity through json, 500 K entities
    took seconds)."""
    vocab_dir.mkdir(parents=True, exist_ok=True)
    titles = pa.array([*ENTITY_SPECIALS, *(title for title, _ in entities)], pa.string())
    ids = _numbers_as_text(range(len(titles)))
    counts = _numbers_as_text([0] * len(ENTITY_SPECIALS) + [count for _, count in entities])
    quoted = json_strings(titles)
    (vocab_dir / ENTITY_VOCAB_FILE).write_text(vocab_json(quoted, ids), encoding="utf-8")
    lines = pc.binary_join_element_wise(
        '{"id": ', ids, ', "entities": [[', quoted, f', {_TO_JSON(language)}]], "count": ',
        counts, "}", "")
    (vocab_dir / ENTITY_COUNTS_FILE).write_text("".join(f"{line}\n" for line in
                                                        lines.to_pylist()), encoding="utf-8")


def json_strings(values: pa.Array) -> pa.Array:
    """Each string as json.dumps(value, ensure_ascii=False) writes it: quoted, with backslashes
    and quotes escaped (and control characters, which titles do not hold: through json)."""
    if len(values) and pc.any(pc.match_substring_regex(values, "[\\x00-\\x1f]")).as_py():
        return pa.array([_TO_JSON(value) for value in values.to_pylist()], pa.string())
    escaped = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _numbers_as_text(numbers) -> pa.Array:
    return pc.cast(pa.array(numbers, pa.int64()), pa.string())


def vocab_json(keys: pa.Array, ids: pa.Array) -> str:
    """entity_vocab.json's text from its keys (JSON strings, json_strings) and ids (as text):
    what json.dump(indent=0) writes, whose pure-Python encoder (json uses it whenever it
    indents) took seconds for 500 K entities."""
    if not len(keys):
        return "{}"
    return "{\n" + ",\n".join(pc.binary_join_element_wise(keys, ids, ": ").to_pylist()) + "\n}"


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
    languages = ctx.manifest["pages"]["languages"]
    vocab_dir = ctx.out_dir / ENTITY_VOCAB_DIR
    if len(languages) == 1 and not options.wikidata_ids:
        section = _title_vocab(pages, languages[0]["language"], options, vocab_dir)
    else:
        section = _item_vocab(pages.data.table, languages, options, vocab_dir)
    section["fingerprint"] = _files_digest([vocab_dir / ENTITY_VOCAB_FILE,
                                            vocab_dir / ENTITY_COUNTS_FILE])
    return section


def _title_vocab(pages, language: str, options, vocab_dir: Path) -> dict:
    """One wiki without Wikidata ids: one entity per title, keyed by the title."""
    counts = count_link_targets(pages)
    articles = None if options.partial_dump else pages.data.column("title").combine_chunks()
    entities = top_entities(counts, options.entity_vocab_size, options.min_link_count, articles)
    write_vocab(entities, language, vocab_dir)
    links = int(pc.sum(counts.column("count")).as_py() or 0)
    in_vocab = sum(count for _, count in entities)
    size = len(ENTITY_SPECIALS) + len(entities)
    return {"size": size, "keys": "title",
            "counts": {"size": size, "titles": len(entities), "links": links,
                       "links_in_vocab": in_vocab, "distinct_targets": counts.num_rows}}


def _item_vocab(table, languages: list[dict], options, vocab_dir: Path) -> dict:
    """Several wikis, or Wikidata ids: one entity per item, keyed `<lang>:<title>`
    (corpus/entity_items.py)."""
    per_language, figures = [], {}
    props_files = options.wikidata_ids or (None,) * len(languages)
    for entry, props_path in zip(languages, props_files):
        props, seconds = read_props(props_path) if props_path else (None, 0.0)
        links, articles = language_tables(table, entry, props)
        figures[entry["language"]] = {
            "links": int(pc.sum(links.column("count")).as_py() or 0),
            **(check_props(props, props_path, entry, articles) if props else {}),
            "page_props_seconds": round(seconds, 3)}
        per_language.append((entry["language"], links, articles))
    entities = item_entities(per_language, options.entity_vocab_size, options.min_link_count,
                             options.min_languages, options.local_entities or
                             not options.wikidata_ids, options.partial_dump)
    write_keyed_vocab(entities, vocab_dir)
    size = len(ENTITY_SPECIALS) + len(entities)
    items = sum(entity.item is not None for entity in entities)
    return {"size": size, "keys": "language:title",
            "languages": figures,
            "counts": {"size": size, "items": items, "local_entities": len(entities) - items,
                       "keys": sum(len(entity.keys) for entity in entities),
                       "links": sum(f["links"] for f in figures.values()),
                       "links_in_vocab": sum(entity.count for entity in entities)}}


def write_keyed_vocab(entities: list[Entity], vocab_dir: Path) -> None:
    """entity_vocab.json with a `<lang>:<title>` key per language of each entity (mLUKE's
    format: several keys may share an id; the specials bare) and counts.jsonl with every
    (title, language) pair and the item of each id. Both are written entity by entity: a
    vocabulary of a million entities is never held a second time as Python dicts."""
    vocab_dir.mkdir(parents=True, exist_ok=True)
    specials = [([(None, name)], 0, None) for name in ENTITY_SPECIALS]

    def rows():
        return enumerate(itertools.chain(specials, ((entity.keys, entity.count, entity.item)
                                                    for entity in entities)))

    keyed = [(title if language is None else f"{language}:{title}", entity_id)
             for entity_id, (keys, _, _) in rows() for language, title in keys]
    (vocab_dir / ENTITY_VOCAB_FILE).write_text(vocab_json(
        json_strings(pa.array([key for key, _ in keyed], pa.string())),
        _numbers_as_text([entity_id for _, entity_id in keyed])),
        encoding="utf-8")
    with open(vocab_dir / ENTITY_COUNTS_FILE, "w", encoding="utf-8") as counts:
        for entity_id, (keys, count, item) in rows():
            counts.write(_TO_JSON({"id": entity_id,
                                   "entities": [[title, language] for language, title in keys],
                                   "count": count,
                                   "item": None if item is None else f"Q{item}"}) + "\n")
