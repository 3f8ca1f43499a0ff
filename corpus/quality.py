"""`luke-corpus inspect DIR --stats`: figures that tell at a glance whether a corpus is sane.

One record per language of the build (its rows of the pages and of the examples, as the
typed reader corpus.reader gives them), from the manifest's counts and a pass over the text:
  - links per article: article links kept in DIR/pages, divided by the articles;
  - spans on their anchor: the share of the article links the parser found whose span is
    exactly the anchor as the page shows it (label or target, plus the letters the language's
    link trail joins); counted by the parser in the pages stage;
  - spans extended by a trail: the share a link trail lengthened (a language whose trail joins
    nothing, like Chinese, must show 0; a figure near half means a wrong trail);
  - markup left per MB of clean text: leftovers of wikitext (`[[`, `{{`, `-{`, `<ref`, `''`,
    empty brackets, separators stranded at a bracket's edge ...), counted in the text column;
  - mentions per sequence and words per sequence of the examples (when that stage is built).
`--json` prints the same as one object: {"languages": [record, ...]}.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from corpus.progress import count_progress
from corpus.reader import Corpus, CorpusError

# What should never be left in clean text: (name, regular expression counted).
MARKUP = (
    ("[[", re.escape("[[")), ("]]", re.escape("]]")), ("{{", re.escape("{{")),
    ("}}", re.escape("}}")), ("{|", re.escape("{|")), ("|}", re.escape("|}")),
    ("-{", re.escape("-{")), ("}-", re.escape("}-")), ("<ref", "(?i)<ref"),
    ("</", re.escape("</")), ("''", re.escape("''")), ("&nbsp;", "&(?:nbsp|amp|quot);"),
    ("empty brackets", "\\(\\s*\\)|（\\s*）|\\[\\s*\\]"),
    ("stranded separators", "[(（][\\s,;:，；、：]*[,;，；、]|[,;，；、]\\s*[)）]"),
)
# (Arrow's regular expressions are RE2's: the full-width characters are written as they are.)
MB = 1_000_000


class StatsError(Exception):
    """The build cannot be measured; the message names the directory and what is missing."""


def corpus_stats(directory: Path) -> dict:
    """{"languages": [one record per language of the build]} (see the module docstring)."""
    import datasets

    try:
        corpus = Corpus.open(directory, needs=("pages",))
    except CorpusError as error:
        raise StatsError(str(error)) from None
    pages = datasets.load_from_disk(str(corpus.pages_dir)).data.table
    examples = None
    if corpus.examples is not None and corpus.split_dir("train").exists():
        examples = datasets.load_from_disk(str(corpus.split_dir("train"))).data.table
    records = []
    for index, language in enumerate(corpus.pages.languages):
        counts, rules = language.counts, language.rules
        records.append({
            "language": language.language,
            "variant": rules.get("variant"),
            "link_trail": rules.get("link_trail"),
            "articles": language.articles,
            "links": counts["links"],
            "links_per_article": _ratio(counts["links"], language.articles),
            "link_spans_on_anchor": _ratio(counts.get("link_spans_on_anchor"),
                                           counts.get("link_spans_made")),
            "link_spans_trailed": _ratio(counts.get("link_spans_trailed"),
                                         counts.get("link_spans_made")),
            "malformed_pages": counts.get("malformed_pages", 0),
            "skipped_pages": counts.get("skipped", 0),
            **_markup(pages.slice(language.rows[0], language.articles)),
            **_sequences(examples, corpus.examples.languages[index]
                         if examples is not None else None),
        })
    return {"languages": records}


def _ratio(part: int | None, whole: int | None) -> float | None:
    return None if part is None or not whole else part / whole


def _markup(table) -> dict:
    """Clean-text size and markup leftovers, counted batch by batch (Arrow, memory-mapped)."""
    import pyarrow.compute as pc

    found = dict.fromkeys((name for name, _ in MARKUP), 0)
    text_bytes = 0
    with count_progress(table.num_rows, "markup left") as bar:
        for batch in table.column("text").chunks:
            text_bytes += pc.sum(pc.binary_length(batch)).as_py() or 0
            for name, pattern in MARKUP:
                found[name] += pc.sum(pc.count_substring_regex(batch, pattern)).as_py() or 0
            bar.update(len(batch))
    megabytes = text_bytes / MB
    return {"text_mb": megabytes,
            "markup_per_mb": _ratio(sum(found.values()), megabytes) if megabytes else None,
            "markup": found}


def _sequences(examples, language) -> dict:
    """Mentions and words per training sequence of one language (None without examples)."""
    import pyarrow.compute as pc

    if examples is None:
        return {"sequences": None, "mentions_per_sequence": None, "words_per_sequence": None}
    table = examples.slice(language.rows[0], language.num_examples)
    mentions = pc.sum(pc.list_value_length(table.column("entity_ids"))).as_py() or 0
    words = pc.sum(pc.list_value_length(table.column("word_ids"))).as_py() or 0
    return {"sequences": table.num_rows,
            "mentions_per_sequence": _ratio(mentions, table.num_rows),
            "words_per_sequence": _ratio(words, table.num_rows)}


def _shown(value, form: str) -> str:
    return "-" if value is None else format(value, form)


def format_stats(stats: dict) -> str:
    """A table, one row per language, then each language's markup leftovers."""
    columns = ("language", "articles", "links/article", "spans on anchor", "trailed",
               "markup/MB", "mentions/seq", "words/seq", "malformed")
    rows = [[r["language"] + (f" ({r['variant']})" if r["variant"] and r["variant"] !=
                              r["language"] else ""),
             f"{r['articles']:,}", _shown(r["links_per_article"], ".1f"),
             _shown(r["link_spans_on_anchor"], ".2%"), _shown(r["link_spans_trailed"], ".1%"),
             _shown(r["markup_per_mb"], ".2f"), _shown(r["mentions_per_sequence"], ".1f"),
             _shown(r["words_per_sequence"], ".0f"), f"{r['malformed_pages']:,}"]
            for r in stats["languages"]]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    for r in stats["languages"]:
        left = ", ".join(f"{name} {n:,}" for name, n in r["markup"].items() if n) or "none"
        lines.append(f"{r['language']}: {r['text_mb']:.2f} MB of clean text; markup left: "
                     f"{left}; link trail {r['link_trail'] or '-'}")
    return "\n".join(lines)


def print_stats(directory: Path, as_json: bool) -> None:
    stats = corpus_stats(directory)
    print(json.dumps(stats, ensure_ascii=False) if as_json else format_stats(stats))
