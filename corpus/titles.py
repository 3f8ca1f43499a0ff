"""Page titles as MediaWiki normalizes them, and the namespace a link target points into.

Link targets, redirect targets and page titles must meet on one spelling, or links miss the
vocabulary (`[[los_angeles]]`, `[[Los Angeles#History]]` and `[[Los%20Angeles]]` are all the
page "Los Angeles"). The rules follow MediaWiki's Title class: percent-encoding and HTML
entities decoded, `_` = space, whitespace trimmed and collapsed, direction marks removed,
`#Section` dropped, one leading ':' dropped, the namespace prefix replaced by the wiki's local
name, and the first letter upper-cased on "first-letter" wikis (the `case` of `<siteinfo>`).

Namespaces come from the dump's `<siteinfo>` (one name each), plus what MediaWiki accepts on
every wiki of the language and siteinfo does not list: the canonical English names and the
aliases of the language's MediaWiki files (corpus/languages.py: bgwiki's "Картинка:", zhwiki's
"分类:" and "分類:", jawiki's "画像:"); see namespace_names.
Interwiki prefixes are not in a dump, so the Wikimedia ones are listed here; `namespace_of`
returns the markers INTERWIKI (`wikt:`, `commons:` ...: shown inline, but not an article of
this wiki) and LANGUAGE_LINK (`fr:`, `de:` ...: a link to another language edition, which
MediaWiki moves to the sidebar). Both are non-zero, so no caller mistakes them for articles.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from urllib.parse import unquote

from corpus import languages
from corpus.siteinfo import CANONICAL_NAMESPACES, SiteInfo

INTERWIKI = -1000          # namespace_of marker: a Wikimedia interwiki prefix (wikt:, commons:)
LANGUAGE_LINK = -1001      # namespace_of marker: a language edition prefix (fr:, de:, simple:)

# Language editions of Wikipedia (and the aliases MediaWiki accepts) as of 2024.
LANGUAGE_PREFIXES = frozenset("""
aa ab ace ady af ak als alt am ami an ang anp ar arc ary arz as ast atj av avk awa ay az azb ba
ban bar bat-smg bbc bcl bdr be be-tarask be-x-old bew bg bh bi bjn blk bm bn bo bpy br bs btm bug
bxr ca cbk-zam cdo ce ceb ch cho chr chy ckb co cr crh cs csb cu cv cy da dag de dga din diq dk
dsb dtp dty dv dz ee el eml en eo es et eu ext fa fat ff fi fiu-vro fj fo fon fr frp frr fur fy
ga gag gan gcr gd gl glk gn gom gor got gpe gsw gu guc gur guw gv ha hak haw he hi hif ho hr hsb
ht hu hy hyw hz ia iba id ie ig igl ii ik ilo inh io is it iu ja jam jbo jv ka kaa kab kbd kbp
kcg kg kge ki kj kk kl km kn knc ko koi kr krc ks ksh ku kus kv kw ky la lad lb lbe lez lfn lg
li lij lld lmo ln lo lrc lt ltg lv lzh mad mai map-bms mdf mg mh mhr mi min mk ml mn mni mnw mo
mos mr mrj ms mt mus mwl my myv mzn na nah nan nap nb nds nds-nl ne new ng nia nl nn no nov nqo
nr nrm nso nup nv ny oc olo om or os pa pag pam pap pcd pcm pdc pfl pi pih pl pms pnb pnt ps pt
pwn qu rm rmy rn ro roa-rup roa-tara rsk ru rue rup rw sa sah sat sc scn sco sd se sg sgs sh shi
shn shy si simple sk skr sl sm smn sn so sq sr srn ss st stq su sv sw syl szl szy ta tay tcy tdd
te tet tg th ti tig tk tl tly tn to tpi tr trv ts tt tum tw ty tyv udm ug uk ur uz ve vec vep
vi vls vo vro wa war wo wuu xal xh xmf yi yo yue za zea zgh zh zh-classical zh-min-nan zh-yue zu
""".split())

# Interwiki prefixes of Wikimedia projects and the common external ones of the interwiki map.
INTERWIKI_PREFIXES = frozenset("""
w wikipedia wikt wiktionary n wikinews b wikibooks q wikiquote s wikisource oldwikisource
species wikispecies v wikiversity voy wikivoyage wmf foundation wikimedia c commons m meta
metawikimedia metawikipedia mw mediawikiwiki d wikidata incubator outreach phab phabricator
mediazilla bugzilla gerrit rev testwiki wikitech toollabs wikimania sulutil quality strategy
usability advisory nost otrs ticket doi arxiv google wikia fandom translatewiki betawiki
""".split())

# MediaWiki's title whitespace (Title::newFromText), and the direction marks it deletes.
_SPACES = re.compile("[ _\u00a0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\t\n\r]+")
_DIRECTION_MARKS = re.compile("[\u200e\u200f\u202a-\u202e]")
# Characters MediaWiki never allows in a title.
_ILLEGAL = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f\ufffd]")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_MAY_HAVE_PREFIX = re.compile(r"[:%&]")     # ':' written, percent-encoded or as an entity
# Most link targets need no decoding, no whitespace work and have no prefix: words separated by
# single spaces, none of % & # _ : or direction marks. They only get the case rule.
_PLAIN_WORD = r"[^\s%&#_:\u200e\u200f\u202a-\u202e]+"
_PLAIN_TITLE = re.compile(f"{_PLAIN_WORD}(?: {_PLAIN_WORD})*")


def _clean_spelling(raw: str) -> str:
    """Decode, drop the fragment, unify and collapse whitespace; no namespace or case rules."""
    if "%" in raw and _PERCENT.search(raw):
        raw = unquote(raw)               # rawurldecode: '+' stays '+'
    if "&" in raw:
        raw = html.unescape(raw)
    raw = raw.split("#", 1)[0]
    if _DIRECTION_MARKS.search(raw):
        raw = _DIRECTION_MARKS.sub("", raw)
    return _SPACES.sub(" ", raw).strip()


def link_display_text(raw: str) -> str:
    """What MediaWiki shows for `[[raw]]` without a label: the target as written, trimmed,
    with percent-encoding and entities decoded (underscores and `#Section` stay)."""
    if "%" in raw and _PERCENT.search(raw):
        raw = unquote(raw)
    return html.unescape(raw).strip() if "&" in raw else raw.strip()


def _upper_first(text: str) -> str:
    """Upper-case the first letter, as MediaWiki's ucfirst does.

    Kept as they are: a letter whose upper case is longer ('ß' -> 'SS': MediaWiki keeps the page
    "ß"), and Georgian Mkhedruli letters (Unicode 11 gave them upper cases that MediaWiki does
    not apply, so kawiki titles start with the lower-case letter).
    """
    if not text:
        return text
    first = text[0]
    if "\u10d0" <= first <= "\u10ff":
        return text
    upper = first.upper()
    return (upper if len(upper) == 1 else first) + text[1:]


def namespace_names(site: SiteInfo) -> dict[str, int]:
    """Every name that selects a namespace on the site, case-folded: the names and aliases of
    its language's MediaWiki files, then the canonical names, the Wikimedia aliases and the
    local names of its siteinfo (SiteInfo.namespace_ids), which win a clash. Pass it as `ids`
    when calling the functions here in a loop; the dict is shared, never change it."""
    return _namespace_names(site.language, tuple(site.namespaces.items()))


@lru_cache(maxsize=16)
def _namespace_names(language: str, namespaces: tuple) -> dict[str, int]:
    local = dict(namespaces)
    project = local.get(4) or CANONICAL_NAMESPACES[4]
    ids = dict(languages.namespace_names(language, project))
    ids.update(SiteInfo(namespaces=local).namespace_ids())
    return ids


def _split_prefix(title: str) -> tuple[str, str] | None:
    """('prefix', 'rest') for 'prefix:rest' with both sides trimmed, else None."""
    colon = title.find(":")
    if colon <= 0:
        return None
    return title[:colon].strip(), title[colon + 1:].strip()


def _prefix_namespace(prefix: str, ids: dict[str, int]) -> int | None:
    """The namespace a title prefix selects: a real one, a marker, or None for no prefix."""
    folded = prefix.casefold()
    ns = ids.get(folded)
    if ns is not None:
        return ns
    if folded in LANGUAGE_PREFIXES:
        return LANGUAGE_LINK
    if folded in INTERWIKI_PREFIXES:
        return INTERWIKI
    return None


def namespace_of(title: str, site: SiteInfo, ids: dict[str, int] | None = None) -> int:
    """The namespace of a (raw or normalized) title: 0 for articles.

    Namespace names come from the dump's siteinfo (see namespace_names); pass
    `ids=namespace_names(site)` when calling in a loop. A Wikimedia interwiki prefix gives
    INTERWIKI, a language edition prefix LANGUAGE_LINK; both are negative markers below any
    real namespace, so `namespace_of(t) == 0` means "article". A leading ':' (`:Category:X`, a
    visible link to the category page) is ignored here: the namespace is that of the page
    linked to.
    """
    if not _MAY_HAVE_PREFIX.search(title):
        return 0
    parts = _split_prefix(_drop_leading_colon(_clean_spelling(title)))
    if parts is None:
        return 0
    ns = _prefix_namespace(parts[0], namespace_names(site) if ids is None else ids)
    return 0 if ns is None else ns


def normalize_title(raw: str, site: SiteInfo, ids: dict[str, int] | None = None) -> str:
    """The title MediaWiki would store for `raw` (a link target, redirect target or title).

    `[[#Section]]`-style targets give "" (see resolve_link_target for the current page). The
    namespace prefix becomes the wiki's local name (`category:x` -> "Категория:X" on bgwiki).
    An interwiki prefix is lower-cased and the rest kept as written, since it names no page of
    this wiki and the other wiki's case rule is unknown.
    """
    if _PLAIN_TITLE.fullmatch(raw):
        return _case_rule(raw, site)
    title = _drop_leading_colon(_clean_spelling(raw))
    parts = _split_prefix(title)
    if parts is not None:
        ns = _prefix_namespace(parts[0], namespace_names(site) if ids is None else ids)
        if ns in (INTERWIKI, LANGUAGE_LINK):
            return f"{parts[0].lower()}:{parts[1]}"
        if ns is not None:
            name = site.namespaces.get(ns) or CANONICAL_NAMESPACES.get(ns, parts[0])
            return f"{name}:{_case_rule(parts[1], site)}"
    return _case_rule(title, site)


def _drop_leading_colon(title: str) -> str:
    return title[1:].lstrip() if title.startswith(":") else title


def _case_rule(text: str, site: SiteInfo) -> str:
    return _upper_first(text) if site.case == "first-letter" else text


def resolve_link_target(raw: str, current_title: str, site: SiteInfo,
                        ids: dict[str, int] | None = None) -> str | None:
    """The normalized title a link target points at, or None where it names no page.

    `[[#Section]]` points at the current page. None for an empty target, a target holding
    characters MediaWiki forbids in titles (`<>[]{}|`, control characters, and the leftovers of
    template syntax), and one longer than MediaWiki's 255 bytes.
    """
    title = normalize_title(raw, site, ids)
    if not title:
        return normalize_title(current_title, site, ids) if raw.strip().startswith("#") else None
    if _ILLEGAL.search(title) or len(title.encode("utf-8")) > 255:
        return None
    return title
