"""Read a wiki's `*-page_props.sql.gz` dump: which Wikidata item each page is.

Every Wikimedia wiki publishes its `page_props` table as a MySQL dump: a header of `--`
comments naming the database (`-- Host: ...    Database: enwiki`), a `CREATE TABLE`, then
multi-row statements ``INSERT INTO `page_props` VALUES (10,'wikibase_item','Q1234',NULL),
(12,'defaultsort','Smith, John',NULL),...;`` one per line, with MySQL's string escapes (`\\'`,
`\\\\`, `\\n` ...). A row `(pp_page, 'wikibase_item', 'Q<n>', pp_sortkey)` says page pp_page is
item Q<n>.

The file is streamed line by line (the English one is hundreds of MB) and only the item
rows are picked out of each statement, with one regular expression: `(<digits>,'wikibase_item',
'Q<digits>',`. That is exact without parsing the other rows: inside a MySQL string every quote
is escaped (`\\'`), so a quote that follows a comma or an opening parenthesis always opens a
field, never sits in another property's value. A statement that does not end with `);` is a
cut file, refused with its line. The result is two parallel sorted numpy arrays, page id and
item number, looked up with searchsorted: 16 bytes per item (twice that while sorting),
nothing per other row.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

_INSERT = "INSERT INTO `page_props` VALUES "
_ITEM_ROW = re.compile(r"\((\d+),'wikibase_item','Q(\d+)',")
_DATABASE = re.compile(r"^-- Host: .*Database: (\S+)")


class PagePropsError(ValueError):
    """A page_props dump that cannot be read or does not belong to its pages dump."""


@dataclass(frozen=True)
class WikidataItems:
    """page id -> Wikidata item number, for the pages of one wiki."""
    dbname: str                     # from the dump's header; "" when it names none
    page_ids: np.ndarray            # sorted, int64
    items: np.ndarray               # item number of each page (Q42 -> 42), int64
    statements: int                 # INSERT statements read
    bytes_read: int                 # uncompressed SQL text read

    def items_of(self, page_ids: np.ndarray) -> np.ndarray:
        """The item number of each page id, -1 where the page has none."""
        page_ids = np.asarray(page_ids, dtype=np.int64)
        if not len(self.page_ids):
            return np.full(len(page_ids), -1, dtype=np.int64)
        where = np.searchsorted(self.page_ids, page_ids).clip(0, len(self.page_ids) - 1)
        found = self.page_ids[where] == page_ids
        return np.where(found, self.items[where], -1)


def _open_text(raw) -> io.TextIOWrapper:
    """The dump's text from its raw file (gzip, bz2 or plain, told by the magic bytes)."""
    magic = raw.read(3)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif magic == b"BZh":
        stream = bz2.BZ2File(raw, mode="rb")
    else:
        stream = raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")


def read_wikidata_items(path: Path,
                        on_progress: Callable[[int, int, int], None] | None = None
                        ) -> WikidataItems:
    """The wikibase_item rows of a page_props dump (.sql, .sql.gz or .sql.bz2).
    `on_progress(file bytes, items, SQL bytes)` is called after each line with what was read
    so far: of the file as stored, items found, characters of SQL text."""
    path = Path(path)
    if not path.is_file():
        raise PagePropsError(f"{path}: page_props dump not found (no such file)")
    # 8 bytes an item while reading (a list of Python ints would take 36): the English dump
    # has millions of them.
    dbname, pages, items = "", array("q"), array("q")
    statements = read = 0
    saw_table = False
    try:
        with open(path, "rb") as raw, _open_text(raw) as lines:
            for number, line in enumerate(lines, 1):
                read += len(line)
                if line.startswith("--"):
                    found = _DATABASE.match(line)
                    dbname = found.group(1) if found and not dbname else dbname
                elif line.startswith(_INSERT):
                    saw_table = True
                    statements += 1
                    if not line.rstrip().endswith(");"):
                        raise PagePropsError(f"{path}: line {number}: the statement ends early "
                                             f"(a cut file?): ...{line.rstrip()[-60:]!r}")
                    for page, item in _ITEM_ROW.findall(line):
                        pages.append(int(page))
                        items.append(int(item))
                elif line.startswith("CREATE TABLE `page_props`"):
                    saw_table = True
                if on_progress is not None:
                    on_progress(raw.tell(), len(pages), read)
    except (OSError, EOFError) as error:
        raise PagePropsError(f"{path}: cannot read the page_props dump ({error})") from None
    if not saw_table:
        raise PagePropsError(f"{path}: not a page_props dump (no `page_props` table in it)")
    page_ids = np.frombuffer(pages, dtype=np.int64)
    order = np.argsort(page_ids, kind="stable")
    return WikidataItems(dbname, page_ids[order], np.frombuffer(items, dtype=np.int64)[order],
                         statements, read)
