"""MediaWiki's per-language parsing rules, read from the table corpus/data/mediawiki_languages.json.

The table is generated from MediaWiki's own source by corpus/languages_generate.py (its header
names the MediaWiki version). What a wiki does with its content language, and how this module
answers it the same way:
- Fallback chain: the language's `$fallback` list, then English. MediaWiki does not follow the
  fallbacks of the fallbacks: each language lists its whole chain.
- Link trail (`link_trail`): the first language of the chain that defines one wins (the key is
  not merged). Chinese defines `()`, so nothing joins a link; Japanese defines none and
  inherits English's `[a-z]+`. A language MediaWiki has no rules for gets English's, as there.
- Namespace names and aliases (`namespace_names`): merged along the chain (a name the language
  itself gives wins), plus the gender forms of the first language that has them, plus, for a
  language with variants (Chinese, Serbian ...), the namespace names of each variant (as
  MediaWiki's converter adds them). `$1` in a name is the wiki's project name; names that need
  `{{GRAMMAR:...}}` (project talk in a few languages) are left out. The language's own names
  count even where a wiki renamed the namespace (jawiki's siteinfo says `Category` where
  Japanese says `カテゴリ`): its editors still write them, no article title starts with them,
  and a category tag misread as an article link would leak its name and sort key.
- Converters (`converter`): the variants of a language that has them, for `-{...}-` markup
  (corpus/wikitext_variants.py).
Answers are cached per language: every worker reads the table once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE_PATH = Path(__file__).parent / "data" / "mediawiki_languages.json"


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


def mediawiki_version() -> str:
    return _table()["mediawiki_version"]


def language_code(language: str) -> str:
    """A language name as MediaWiki spells its codes: lower case, '-' between parts."""
    return language.strip().lower().replace("_", "-")


def is_known(language: str) -> bool:
    """Whether MediaWiki knows the language (with rules of its own or English's)."""
    code = language_code(language)
    return code in _table()["languages"] or code in _table()["codes_without_rules"]


def fallback_chain(language: str) -> tuple[str, ...]:
    """The language, its `$fallback` list, then English."""
    code = language_code(language)
    row = _table()["languages"].get(code, {})
    chain = [code, *row.get("fallback", [])]
    if chain[-1] != "en":
        chain.append("en")
    return tuple(chain)


def _rows(language: str) -> list[dict]:
    languages = _table()["languages"]
    return [languages[code] for code in fallback_chain(language) if code in languages]


@lru_cache(maxsize=None)
def link_trail(language: str) -> re.Pattern | None:
    """The letters after `]]` that join a link (match at the start of the following text);
    None where nothing ever joins."""
    for row in _rows(language):
        if "link_trail" in row:
            return re.compile(row["link_trail"]) if row["link_trail"] else None
    raise AssertionError("MediaWiki's English rules define a link trail")


def link_trail_source(language: str) -> str:
    """The PHP regex the trail of `language` comes from (for the manifest and reports)."""
    return next(row["link_trail_php"] for row in _rows(language) if "link_trail" in row)


def _merged(language: str, key: str) -> dict:
    """A mergeable key along the chain: the first language giving an entry wins it."""
    merged: dict = {}
    for row in _rows(language):
        for name, value in row.get(key, {}).items():
            merged.setdefault(name, value)
    return merged


def _spelled(name: str, project: str) -> str | None:
    """A namespace name as a title prefix (spaces, `$1` = project name), folded for lookups;
    None for a name that needs MediaWiki's grammar functions."""
    if "{{" in name:
        return None
    return name.replace("$1", project).replace("_", " ").casefold()


@lru_cache(maxsize=None)
def namespace_names(language: str, project: str) -> dict[str, int]:
    """Folded name -> namespace id for every name and alias MediaWiki's language files give
    the language (see the module docstring); `project` is the wiki's name for namespace 4."""
    names: dict[str, int] = {}

    def add(name: str, ns: int) -> None:
        spelled = _spelled(name, project)
        if spelled:
            names[spelled] = int(ns)

    for ns, name in _merged(language, "namespace_names").items():
        add(name, ns)
    converter = variant_rules(language)
    for variant in converter.variants if converter else ():
        if variant != language_code(language):
            for ns, name in _merged(variant, "namespace_names").items():
                add(name, ns)
    gender = next((row["namespace_gender_aliases"] for row in _rows(language)
                   if "namespace_gender_aliases" in row), {})
    for ns, forms in gender.items():
        for name in forms.values():
            add(name, ns)
    for name, ns in _merged(language, "namespace_aliases").items():
        add(name, ns)
    return names


@dataclass(frozen=True)
class VariantRules:
    """A language converter's facts: what `-{...}-` markup can name and how it falls back."""
    main: str                                  # the language itself: no conversion
    variants: tuple[str, ...]
    fallbacks: dict[str, tuple[str, ...]]      # variant -> variants tried after it
    manual_levels: dict[str, str]              # variant -> bidirectional|unidirectional|disable
    flags: dict[str, str]                      # flag as written -> flag meant
    names: dict[str, str]                      # variant -> its name (the N and D flags)
    spellings: dict[str, str]                  # folded spelling (BCP 47, deprecated) -> variant
    separator_spellings: tuple[str, ...]       # as written between choices, case-sensitive
    description_separators: tuple[str, str]    # between a name and its text, between rules

    def valid(self, spelled: str) -> str | None:
        """The variant a spelling names (case-insensitive, BCP 47 or deprecated codes too)."""
        return self.spellings.get(spelled.strip().lower())

    def fallbacks_of(self, variant: str) -> tuple[str, ...]:
        return self.fallbacks.get(variant, (self.main,))


@lru_cache(maxsize=None)
def variant_rules(language: str) -> VariantRules | None:
    """The converter of a language with variants (zh, sr, kk ...), None for the others."""
    data = _table()["converters"].get(language_code(language))
    if data is None:
        return None
    variants = tuple(data["variants"])
    spellings = {v: v for v in variants}
    spellings.update({bcp.lower(): v for v, bcp in data["bcp47"].items()})
    spellings.update({old: new for old, new in data["deprecated"].items()})
    flags = {flag: flag for flag in "ATRD-HN"}
    flags.update(data["flags"])
    flags.update({v: v for v in variants})
    return VariantRules(
        main=language_code(language), variants=variants,
        fallbacks={v: tuple(f) if isinstance(f, list) else (f,)
                   for v, f in data["fallbacks"].items()},
        manual_levels={v: data["manual_levels"].get(v, "bidirectional") for v in variants},
        flags=flags, names=dict(data["variant_names"]), spellings=spellings,
        separator_spellings=tuple({*variants, *data["bcp47"].values(), *data["deprecated"]}),
        description_separators=(data["desc_code_separator"], data["desc_var_separator"]))


def check_variant(language: str, variant: str | None) -> str | None:
    """The variant to render `-{...}-` markup in: None for a language without variants, the
    language itself (no conversion) when none is asked for. Raises ValueError, naming the
    choices, for a variant the language does not have."""
    rules = variant_rules(language)
    if rules is None:
        if variant:
            raise ValueError(f"--variant {variant}: the wiki's language {language!r} has no "
                             f"variants (only languages with a MediaWiki converter do: "
                             f"{', '.join(sorted(_table()['converters']))})")
        return None
    if not variant:
        return rules.main
    chosen = rules.valid(variant)
    if chosen is None:
        raise ValueError(f"--variant {variant}: not a variant of {language!r} "
                         f"(variants: {', '.join(rules.variants)})")
    return chosen
