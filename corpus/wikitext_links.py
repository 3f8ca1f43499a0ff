"""The links of one page: what each `[[...]]` shows, where it points, and a shortcut for the
simple ones.

`LinkRules` answers, for a raw link target, whether the link renders at all (files, category
tags and language links do not), the text MediaWiki shows for it, and the article it points at
(None for other namespaces and interwiki links); answers are memoized per page, since a page
links the same titles again and again.

`stash_simple_links` is a speed shortcut: most links are `[[Target]]` or `[[Target|plain
label]]`, and mwparserfromhell spends more on building a Wikilink node (title and label each
their own Wikicode) than on the text around it. Such links are resolved here and replaced by a
marker (private-use characters around an index) that the parser reads as plain text; the text
builder of corpus/wikitext.py puts the link back. A link with anything in it that needs
parsing (markup, entities, a label a cut left empty) is left for mwparserfromhell; a page that
already holds the marker characters is not shortcut at all. The result is the same as parsing
every link (tested).
"""

from __future__ import annotations

import re

from corpus.languages import link_trail, variant_rules
from corpus.siteinfo import SiteInfo
from corpus.titles import link_display_text, namespace_names, namespace_of, resolve_link_target
from corpus.wikitext_prepass import INVISIBLE_LINK_NAMESPACES, NowikiSections

MARKER_OPEN, MARKER_CLOSE = "\ue000", "\ue001"
MARKER = re.compile(f"{MARKER_OPEN}([0-9]+){MARKER_CLOSE}")
# A target without markup, and a label (if any) without markup, quotes pairs or entities.
_SIMPLE_LINK = re.compile(r"\[\[([^\[\]{}<>|\n]+)(?:\|((?:[^\[\]{}<>|\n'&]|'(?!'))+))?\]\]")

StashedLink = tuple[str, "str | None"]      # (anchor text, resolved article title or None)
# Answers shared by the pages of a wiki (one set of namespace names and case rule): a target's
# answer does not depend on the page linking it, but for `[[#Section]]` (the page itself), and
# a wiki's pages link the same popular titles again and again. New answers past this many are
# not kept.
MAX_SHARED_ANSWERS = 100_000   # ~15 MB
_SHARED_ANSWERS: dict[tuple[int, str], tuple[dict, dict]] = {}


def _shared_answers(ids: dict[str, int], case: str) -> dict[str, tuple[bool, str | None]]:
    """The answers of the wiki whose namespace names are `ids` (titles.namespace_names gives
    one dict per wiki: it is kept here with its answers, so its id names no other)."""
    entry = _SHARED_ANSWERS.get((id(ids), case))
    if entry is None or entry[0] is not ids:
        entry = _SHARED_ANSWERS[(id(ids), case)] = (ids, {})
    return entry[1]


class LinkRules:
    """Visibility, shown text and article target of the link targets of one page, memoized
    (for the wiki's pages together, but for fragments of this page); the wiki language's link
    trail (None: nothing joins) and variants (None: it has none)."""

    def __init__(self, title: str, site: SiteInfo) -> None:
        self.title = title
        self.site = site
        self.namespace_ids = namespace_names(site)
        self.trail = link_trail(site.language)
        self.variants = variant_rules(site.language)
        self._answers = _shared_answers(self.namespace_ids, site.case)
        self._page_answers: dict[str, tuple[bool, str | None]] = {}

    def lookup(self, raw_target: str) -> tuple[bool, str | None]:
        """(renders, article): renders is False for a file, category tag or language link
        (no leading ':'), which show no text at all; article is the normalized title the link
        points at, None outside namespace 0."""
        answer = self._answers.get(raw_target) or self._page_answers.get(raw_target)
        if answer is None:
            ns = namespace_of(raw_target, self.site, self.namespace_ids)
            renders = ns not in INVISIBLE_LINK_NAMESPACES or raw_target.lstrip().startswith(":")
            article = (resolve_link_target(raw_target, self.title, self.site, self.namespace_ids)
                       if ns == 0 else None)
            answer = (renders, article)
            if raw_target.strip().startswith("#"):    # the page itself: this page's answer
                self._page_answers[raw_target] = answer
            elif len(self._answers) < MAX_SHARED_ANSWERS:
                self._answers[raw_target] = answer
        return answer

    def shown_target(self, raw_target: str) -> str:
        """What `[[raw_target]]` shows: the target as written, without a leading ':'."""
        shown = link_display_text(raw_target)
        return shown[1:] if shown.startswith(":") else shown


def stash_simple_links(text: str, rules: LinkRules) -> tuple[str, list[StashedLink]]:
    """The text with each simple link replaced by a marker, and the stashed links by index."""
    if MARKER_OPEN in text or MARKER_CLOSE in text:
        return text, []
    stash: list[StashedLink] = []

    def replace(m: re.Match) -> str:
        raw_target, label = m.group(1), m.group(2)
        if label is not None and not label.strip():
            return m.group()     # a label left empty by a cut: the parser's job
        renders, article = rules.lookup(raw_target)
        if not renders:
            return m.group()     # an invisible link the pre-pass kept (not on one line)
        anchor = label if label is not None else rules.shown_target(raw_target)
        stash.append((anchor, article))
        return f"{MARKER_OPEN}{len(stash) - 1}{MARKER_CLOSE}"

    pieces, pos = [], 0
    for start, end in [*NowikiSections(text).regions(), (len(text), len(text))]:
        pieces.append(_SIMPLE_LINK.sub(replace, text[pos:start]))
        pieces.append(text[start:end])             # links inside nowiki are text
        pos = end
    return "".join(pieces), stash
