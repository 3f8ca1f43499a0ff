"""Which language each dump of a build holds, decided before a page is parsed.

A build takes one dump per language (`luke-corpus build enwiki-... jawiki-... bgwiki-...`). A
dump's language comes from its `<siteinfo>` (the dbname, "jawiki" -> "ja") or the `xml:lang` of
its root element; `--language` overrides it, one code per dump in the order of the dumps (a
fragment of a dump may lack its siteinfo). A build of several dumps refuses a dump that names
no language and is given none (its pages could not be told apart from another's) and a
language given twice; the order of the dumps is the order of the languages everywhere after
(row ranges, entity keys, manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpus.dump import DumpError, read_siteinfo
from corpus.multistream import find_index, read_header_site
from corpus.siteinfo import SiteInfo


@dataclass(frozen=True)
class DumpLanguage:
    language: str
    dump: Path
    index: Path | None        # its multistream index, when there is one
    site: SiteInfo            # as its header says (the language possibly overridden)


def dump_languages(dumps: tuple[Path, ...], index: Path | None = None,
                   given: tuple[str, ...] = ()) -> list[DumpLanguage]:
    """The language of each dump, in order (`given`: one per dump, overriding the dumps');
    DumpError names the dump at fault."""
    found: list[DumpLanguage] = []
    for number, dump in enumerate(dumps):
        dump_index = index or find_index(Path(dump))
        site = read_header_site(Path(dump)) if dump_index else read_siteinfo(Path(dump))
        if len(dumps) > 1 and not given and not site.language_from_dump:
            raise DumpError(f"{dump}: the dump names no language (no <siteinfo> dbname, no "
                            f"xml:lang); a build of several dumps needs each dump's language: "
                            f"give --language with one code per dump, in their order")
        found.append(DumpLanguage(given[number] if given else site.language, Path(dump),
                                  Path(dump_index) if dump_index else None, site))
    first_of: dict[str, Path] = {}
    for entry in found:
        if entry.language in first_of:
            raise DumpError(f"{entry.dump} and {first_of[entry.language]} are both "
                            f"'{entry.language}' wikis: give one dump per language")
        first_of[entry.language] = entry.dump
    return found
