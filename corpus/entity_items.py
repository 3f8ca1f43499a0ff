"""The entity vocabulary of a build of several languages, or of one with Wikidata ids: one
entity per Wikidata item, keyed `<lang>:<title>` as mLUKE's vocabulary is.

Inputs, per language (the pages of one dump: a row range of DIR/pages): the link target
counts, the articles (title, page id), and, with `--wikidata-ids`, that wiki's page_props dump
(corpus/page_props.py) giving each page's item. A link target that is an article with an item
counts for the item; the counts of an item are summed over every language. An item appears in
a language when that language's dump has an article of it; the vocabulary keeps the items that
appear in at least `--min-languages` languages and have at least `--min-link-count` links, the
top K (the specials included) by count, ties broken by item number. Each kept item gets one id
and a key for each language that has an article of it (`"en:Tokyo"`, `"ja:東京"`). Targets
without an item (no article in the dump, or an article Wikidata does not know) are left out,
or with `--local-entities` kept as entities of their language alone (`"bg:Title"`, one key),
ranked with the items by count, after them on equal counts. Everything runs on Arrow columns:
no Python loop over the links or the articles.

A page_props dump is checked against its pages dump before use: it must name the same wiki
(the dbname of its header against the dump's siteinfo, or the dump's language), and at least
half of the dump's articles must have an item in it (a page_props dump of another date maps
ids to other pages: most would be missing); each is a one-line refusal naming both files.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.dump import language_of_dbname
from corpus.page_props import WikidataItems, read_wikidata_items
from corpus.progress import byte_progress
from corpus.schema import ENTITY_SPECIALS

log = logging.getLogger(__name__)

MIN_ARTICLES_WITH_ITEM = 0.5      # below this share, the page_props dump is another wiki's
_DUMP_DATE = re.compile(r"(?<!\d)(20\d{6})(?!\d)")


class EntityItemsError(ValueError):
    """Inputs that cannot make the vocabulary; the message names the files."""


@dataclass(frozen=True)
class Entity:
    """One id of the vocabulary: its keys, its count, its item (None for a local entity)."""
    keys: tuple[tuple[str, str], ...]   # (language, title), in the order of the languages
    count: int
    item: int | None


def language_tables(pages_table: pa.Table, entry: dict, props: WikidataItems | None
                    ) -> tuple[pa.Table, pa.Table]:
    """(links, articles) of one language: links = (title, count) of its link targets,
    articles = (title, item) of its articles (item -1 without one, or without props)."""
    start, end = entry["rows"]
    rows = pages_table.slice(start, end - start)
    counted = pc.value_counts(pc.list_flatten(rows.column("link_target")))
    links = pa.table({"title": counted.field("values"), "count": counted.field("counts")})
    page_ids = pc.subtract(rows.column("id"), pa.scalar(entry["id_offset"], pa.int64()))
    items = (props.items_of(page_ids.to_numpy()) if props is not None
             else np.full(rows.num_rows, -1, dtype=np.int64))
    articles = pa.table({"title": rows.column("title").combine_chunks(),
                         "item": pa.array(items, pa.int64())})
    return links, articles


def check_props(props: WikidataItems, path: Path, entry: dict, articles: pa.Table) -> dict:
    """Refuse a page_props dump of another wiki or date; its figures for the manifest."""
    dump = Path(entry["dump"])
    dbname = (entry.get("siteinfo") or {}).get("dbname") or ""
    language = entry["language"]
    same_wiki = props.dbname == dbname if dbname else \
        language_of_dbname(props.dbname) in (None, language)
    if props.dbname and not same_wiki:
        raise EntityItemsError(f"{path}: a page_props dump of {props.dbname}, but {dump} is "
                               f"{dbname or language + ' (language)'}: give each dump's own "
                               f"page_props dump, in the order of the dumps")
    with_item = int(pc.sum(pc.greater_equal(articles.column("item"), 0)).as_py() or 0)
    total = articles.num_rows
    if total and with_item < MIN_ARTICLES_WITH_ITEM * total:
        raise EntityItemsError(f"{path}: only {with_item} of the {total} articles of {dump} "
                               f"have a Wikidata item there: it is another wiki's or another "
                               f"date's page_props dump (page ids would map to other pages)")
    dates = [_DUMP_DATE.search(p.name) for p in (path, dump)]
    if all(dates) and dates[0].group(1) != dates[1].group(1):
        log.warning("%s is dated %s, %s %s: page ids of pages made in between have no item",
                    path, dates[0].group(1), dump, dates[1].group(1))
    return {"dbname": props.dbname, "items": len(props.page_ids), "sql_bytes": props.bytes_read,
            "articles_with_item": with_item, "articles_without_item": total - with_item}


def read_props(path: Path) -> tuple[WikidataItems, float]:
    """A page_props dump read with a progress bar; (items, seconds)."""
    started = time.perf_counter()
    with byte_progress(Path(path).stat().st_size, f"wikidata ids ({Path(path).name})",
                       items="items", text="SQL") as bar:
        props = read_wikidata_items(path, bar.update)
    return props, time.perf_counter() - started


def item_entities(per_language: list[tuple[str, pa.Table, pa.Table]], size: int,
                  min_count: int, min_languages: int, local: bool, partial: bool
                  ) -> list[Entity]:
    """The entities that get ids, best first (see the module docstring).
    per_language: (language, links, articles) in the order of the languages."""
    if size < len(ENTITY_SPECIALS):
        raise ValueError(f"entity_vocab_size {size} is smaller than the "
                         f"{len(ENTITY_SPECIALS)} special entities")
    linked_items, locals_ = [], []
    for number, (_, links, articles) in enumerate(per_language):
        joined = links.join(articles, "title", join_type="left outer")
        item = pc.fill_null(joined.column("item"), -1)
        has_item = pc.greater_equal(item, 0)
        linked_items.append(pa.table({"item": pc.filter(item, has_item),
                                      "count": pc.filter(joined.column("count"), has_item)}))
        if local:
            keep = pc.invert(has_item) if partial else pc.and_(
                pc.invert(has_item), pc.is_in(joined.column("title"),
                                              value_set=articles.column("title")))
            locals_.append(pa.table({
                "title": pc.filter(joined.column("title"), keep),
                "count": pc.filter(joined.column("count"), keep),
                "language": pa.array([number] * int(pc.sum(keep).as_py() or 0), pa.int32())}))
    # The best `limit` of each kind are enough: merged, they cannot lose one of the best.
    limit = size - len(ENTITY_SPECIALS)
    items = _ranked_items(linked_items, per_language, min_count, min_languages, limit)
    local_rows = _ranked_locals(locals_, min_count, limit) if local else []
    ranked = _merge_by_count(items, local_rows)[:limit]
    kept = pa.array([what for _, kind, what in ranked if kind == 0], pa.int64())
    titles = [(language, _item_titles(articles, kept)) for language, _, articles in per_language]
    return [_entity(row, per_language, titles) for row in ranked]


def _ranked_items(linked: list[pa.Table], per_language, min_count: int,
                  min_languages: int, limit: int) -> list[tuple[int, int, int]]:
    """(count, 0, item) of the best `limit` items kept, best first."""
    counts = pa.concat_tables(linked).group_by("item").aggregate([("count", "sum")])
    appearing = pa.concat_tables([
        pa.table({"item": pc.unique(pc.filter(a.column("item"),
                                              pc.greater_equal(a.column("item"), 0)))})
        for _, _, a in per_language]).group_by("item").aggregate([("item", "count")])
    table = counts.join(appearing, "item")
    keep = pc.and_(pc.greater_equal(table.column("count_sum"), min_count),
                   pc.greater_equal(table.column("item_count"), min_languages))
    kept = table.filter(keep)
    order = pc.sort_indices(kept, sort_keys=[("count_sum", "descending"),
                                             ("item", "ascending")])
    kept = kept.take(order[:limit])
    return [(count, 0, item) for count, item in zip(kept.column("count_sum").to_pylist(),
                                                    kept.column("item").to_pylist())]


def _ranked_locals(tables: list[pa.Table], min_count: int, limit: int
                   ) -> list[tuple[int, int, tuple]]:
    """(count, 1, (language number, title)) of the best `limit` local entities kept, best
    first."""
    table = pa.concat_tables(tables)
    table = table.filter(pc.greater_equal(table.column("count"), min_count))
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("language", "ascending"),
                                              ("title", "ascending")])
    table = table.take(order[:limit])
    return [(count, 1, (language, title)) for count, language, title in zip(
        table.column("count").to_pylist(), table.column("language").to_pylist(),
        table.column("title").to_pylist())]


def _merge_by_count(items: list, locals_: list) -> list:
    """The two ranked lists as one: by count, an item before a local entity on a tie."""
    merged, i, j = [], 0, 0
    while i < len(items) or j < len(locals_):
        if j == len(locals_) or (i < len(items) and items[i][0] >= locals_[j][0]):
            merged.append(items[i])
            i += 1
        else:
            merged.append(locals_[j])
            j += 1
    return merged


def _item_titles(articles: pa.Table, items: pa.Array) -> dict[int, str]:
    """item -> title of the articles of one language whose item is among `items`."""
    chosen = articles.filter(pc.is_in(articles.column("item"), value_set=items))
    return dict(zip(chosen.column("item").to_pylist(), chosen.column("title").to_pylist()))


def _entity(row: tuple, per_language, titles: list[tuple[str, dict[int, str]]]) -> Entity:
    count, kind, what = row
    if kind == 1:
        number, title = what
        return Entity(((per_language[number][0], title),), count, None)
    return Entity(tuple((language, found[what]) for language, found in titles if what in found),
                  count, what)
