"""Write page_props dumps in the layout Wikimedia publishes them (`*-page_props.sql.gz`): the
mysqldump header naming the database, the `CREATE TABLE`, then multi-row `INSERT` statements,
one per line, with MySQL's string escapes. corpus/page_props.py reads them; the tests, the
bundled samples' dumps and `luke-corpus bench-items` write theirs with this, so that what is
read is the real layout with chosen rows."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Iterable, Iterator

HEADER = """-- MySQL dump 10.19  Distrib 10.3.39-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: db1206    Database: {dbname}
-- ------------------------------------------------------
-- Server version\t10.6.16-MariaDB-log

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;

--
-- Table structure for table `page_props`
--

DROP TABLE IF EXISTS `page_props`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
/*!40101 SET character_set_client = utf8 */;
CREATE TABLE `page_props` (
  `pp_page` int(10) unsigned NOT NULL,
  `pp_propname` varbinary(60) NOT NULL,
  `pp_value` blob NOT NULL,
  `pp_sortkey` float DEFAULT NULL,
  PRIMARY KEY (`pp_page`,`pp_propname`),
  UNIQUE KEY `pp_propname_page` (`pp_propname`,`pp_page`),
  UNIQUE KEY `pp_propname_sortkey_page` (`pp_propname`,`pp_sortkey`,`pp_page`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;
/*!40101 SET character_set_client = @saved_cs_client */;

--
-- Dumping data for table `page_props`
--

/*!40000 ALTER TABLE `page_props` DISABLE KEYS */;
"""
FOOTER = """/*!40000 ALTER TABLE `page_props` ENABLE KEYS */;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed on 2024-06-01  0:21:04
"""


def sql_string(value: str) -> str:
    """A MySQL string literal, escaped as mysqldump escapes it."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def row_sql(page: int, name: str, value: str, sortkey: float | None = None) -> str:
    return f"({page},{sql_string(name)},{sql_string(value)}," \
           f"{'NULL' if sortkey is None else repr(sortkey)})"


def page_props_lines(dbname: str, rows: Iterable[tuple], rows_per_statement: int = 3
                     ) -> Iterator[str]:
    """The dump's text, line by line: rows are (page, propname, value[, sortkey]), in the
    order given (real dumps hold about a megabyte of rows per statement)."""
    yield HEADER.format(dbname=dbname)
    rows = iter(rows)
    while statement := list(itertools.islice(rows, rows_per_statement)):
        yield "INSERT INTO `page_props` VALUES " + ",".join(
            row_sql(*row) for row in statement) + ";\n"
    yield FOOTER


def write_page_props(path: Path, dbname: str, rows: Iterable[tuple],
                     rows_per_statement: int = 3) -> Path:
    """The dump gzip-compressed, as Wikimedia serves it."""
    with gzip.open(path, "wt", encoding="utf-8", newline="\n") as out:
        out.writelines(page_props_lines(dbname, rows, rows_per_statement))
    return path


def page_props_text(dbname: str, rows: Iterable[tuple], rows_per_statement: int = 3) -> str:
    """The whole dump's text (page_props_lines joined)."""
    return "".join(page_props_lines(dbname, rows, rows_per_statement))
