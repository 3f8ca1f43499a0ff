"""Reading a wiki's page_props dump (corpus/page_props.py) in the layout Wikimedia publishes:
the wikibase_item rows among the others, MySQL escapes that cannot fake a row, the three
compressions, and a cut or foreign file named with where it fails."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest

from corpus.page_props import PagePropsError, read_wikidata_items
from corpus.page_props_sql import page_props_text, write_page_props

# Values that would fool a reader splitting on "),(" or looking for an item row anywhere: an
# item row written inside another property's value (MySQL escapes its quotes) is no item.
ROWS = [(10, "wikibase_item", "Q42"), (10, "defaultsort", "Adams, Douglas"),
        (11, "displaytitle", "it's a ),(9,'wikibase_item','Q7',NULL),( trap \\"),
        (11, "wikibase_item", "Q1"), (12, "page_image_free", "x\ny.jpg"),
        (13, "page_top_level_section_count", "7", 7.0), (14, "wikibase_item", "Q123456789"),
        (15, "wikibase_item", "not an item")]


def test_reads_the_items_among_every_other_property(tmp_path):
    path = write_page_props(tmp_path / "enwiki-20240601-page_props.sql.gz", "enwiki", ROWS,
                            rows_per_statement=3)
    seen = []
    items = read_wikidata_items(path, lambda *progress: seen.append(progress))
    assert items.dbname == "enwiki" and items.statements == 3
    assert items.page_ids.tolist() == [10, 11, 14] and items.items.tolist() == [42, 1, 123456789]
    assert items.items_of(np.array([14, 10, 99, 11, 13])).tolist() == [123456789, 42, -1, 1, -1]
    # progress: the compressed file's bytes, the items and the SQL text read so far
    assert seen[-1] == (path.stat().st_size, 3, items.bytes_read)


@pytest.mark.parametrize("compress, suffix", [(bz2.compress, ".sql.bz2"),
                                              (lambda data: data, ".sql")])
def test_bz2_and_plain_files_read_as_gzip_does(tmp_path, compress, suffix):
    text = page_props_text("bgwiki", ROWS).encode("utf-8")
    path = tmp_path / f"bgwiki-page_props{suffix}"
    path.write_bytes(compress(text))
    gzipped = tmp_path / "bgwiki-page_props.sql.gz"
    gzipped.write_bytes(gzip.compress(text))
    one, other = read_wikidata_items(path), read_wikidata_items(gzipped)
    assert one.dbname == "bgwiki"
    assert np.array_equal(one.page_ids, other.page_ids)
    assert np.array_equal(one.items, other.items)


def test_a_cut_statement_names_its_line(tmp_path):
    text = page_props_text("enwiki", ROWS, rows_per_statement=8)
    cut = text[:text.index("(13,")]           # the statement ends inside its rows
    path = tmp_path / "cut.sql"
    path.write_text(cut, encoding="utf-8")
    line = cut.count("\n") + 1
    with pytest.raises(PagePropsError) as refused:
        read_wikidata_items(path)
    message = str(refused.value)       # with the end of the line, where it stops
    assert message.startswith(f"{path}: line {line}: the statement ends early (a cut file?): ...")
    assert message.endswith("y.jpg',NULL),\"")


def test_missing_and_foreign_files_are_named(tmp_path):
    with pytest.raises(PagePropsError, match="absent.sql.gz: page_props dump not found"):
        read_wikidata_items(tmp_path / "absent.sql.gz")
    other = tmp_path / "page.sql"
    other.write_text("-- Host: db1    Database: enwiki\nINSERT INTO `page` VALUES (1,0,'A');\n")
    with pytest.raises(PagePropsError, match="page.sql: not a page_props dump"):
        read_wikidata_items(other)


def test_bench_items_prints_its_figures(tmp_path, capsys):
    """The benchmark runs end to end on tiny synthetic wikis (its figures are for the README,
    not asserted: only that each is printed)."""
    from corpus.cli import main

    assert main(["bench-items", "--languages", "2", "--articles", "400", "--links", "5",
                 "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 wikis of 400 articles and 5 links each" in out
    assert "corpus.page_props" in out and "gunzip + lines (floor)" in out
    assert "2 languages, items" in out and "1 language, titles" in out
    assert "extrapolated: " in out       # at this size, most likely that it cannot
