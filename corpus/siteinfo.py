"""What a dump says about its wiki: language, title case rule and namespace names.

The dump reader fills a SiteInfo from the `<siteinfo>` block; a fragment without one gets
`SiteInfo.default()` (MediaWiki's English defaults). The wikitext parser and title
normalization read namespace names from here, never from a hard-coded English list, so a
Bulgarian dump's `Категория:` is recognized as a category.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# MediaWiki's canonical namespace names (also valid on every wiki, beside the local ones).
CANONICAL_NAMESPACES: dict[int, str] = {
    -2: "Media", -1: "Special", 1: "Talk", 2: "User", 3: "User talk", 4: "Project",
    5: "Project talk", 6: "File", 7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk",
    10: "Template", 11: "Template talk", 12: "Help", 13: "Help talk", 14: "Category",
    15: "Category talk", 100: "Portal", 101: "Portal talk", 118: "Draft", 119: "Draft talk",
    828: "Module", 829: "Module talk",
}
# Aliases MediaWiki accepts everywhere.
NAMESPACE_ALIASES: dict[str, int] = {"Image": 6, "Image talk": 7, "WP": 4, "Wikipedia": 4}


@dataclass(frozen=True)
class SiteInfo:
    dbname: str = ""                     # e.g. "enwiki"; "" when the dump has no siteinfo
    language: str = "en"                 # MediaWiki language code: parsing rules, sentence
                                         # splitting (ICU reads the same codes)
    case: str = "first-letter"           # "first-letter" or "case-sensitive"
    namespaces: dict[int, str] = field(default_factory=dict)  # local names from <siteinfo>
    from_dump: bool = False              # False: defaults used because siteinfo was absent
    language_from_dump: bool = False     # the language came from the dump (dbname, xml:lang)

    @classmethod
    def default(cls) -> "SiteInfo":
        return cls(namespaces=dict(CANONICAL_NAMESPACES), from_dump=False)

    def namespace_ids(self) -> dict[str, int]:
        """Every name that selects a namespace (local, canonical, aliases), case-folded."""
        ids = {name.casefold(): ns for ns, name in CANONICAL_NAMESPACES.items()}
        ids.update({name.casefold(): ns for name, ns in NAMESPACE_ALIASES.items()})
        ids.update({name.casefold(): ns for ns, name in self.namespaces.items() if name})
        return ids
