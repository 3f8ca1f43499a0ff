"""Wikitext of one article -> clean text with its hyperlinks as character spans.

`parse_page(wikitext, title, site)` is a pure function in four steps, one module each:
  1. corpus/wikitext_prepass.py cuts what the text drops (templates, refs, tables ...) with a
     linear scan, so the parser never reads it;
  2. corpus/wikitext_links.py resolves the simple links and leaves a marker in their place
     (the parser would spend more on their nodes than on the rest of the text), and
     corpus/wikitext_lists.py marks list items (half the parser's time went to their nodes);
  3. mwparserfromhell's tokenizer reads what remains; the walk below goes over its tokens,
     writes the visible text, puts the stashed links back and records every article link as
     a span. It reads the tokens as mwparserfromhell's builder would make them into nodes,
     without making them (the nodes cost more than the tokenizing): a construct's pieces are
     the tokens between its opening and closing ones, and only an entity, or a link title or
     tag name holding markup (whose wikitext str() gives), goes through the builder;
  4. corpus/wikitext_layout.py tidies paragraphs and whitespace while the spans follow.
On wikis whose language has variants, corpus/wikitext_variants.py first renders the `-{...}-`
markup (after step 1, before step 2) in the variant asked for.
Steps 1 and 2 are shortcuts only: `parse_page(..., prepass=False)` parses everything with
mwparserfromhell and gives the same result on the real samples (tests/test_wikitext.py lists
the two kinds of broken tables where the pre-pass follows MediaWiki and the parser does not).

What the clean text holds, and why:
- Prose as a reader sees it: bold/italic quotes, HTML tags, list markers and entities are
  gone (`&nbsp;` becomes a plain space); the contents of formatting tags stay.
- Dropped: templates, tables, references, comments, math, galleries and the other extension
  tags of DROPPED_TAGS, files/images, category tags, language links, bare external URLs (an
  external link keeps its label), magic words.
- Headings are dropped (they only end a paragraph): they are labels, not sentences, and kept
  as paragraphs they would become fragment "sentences" in the pretraining text.
- Paragraphs as MediaWiki makes them: a blank line, a heading, a list item or a block tag
  starts one; a single line break inside a paragraph is a space. Paragraphs are separated by
  "\\n"; no empty paragraphs; whitespace runs collapsed to one space. `<br>` breaks the
  paragraph as it breaks the line on screen.
Links (`ParsedPage.links`, (start, end, target) with text[start:end] the anchor text):
- only links whose target is in namespace 0 of this wiki; the target is the normalized title
  (corpus/titles.py), `[[#Section]]` resolving to the current page;
- `[[Target|anchor]]` spans the anchor as displayed (its own markup stripped);
  `[[Target]]` spans the target as written (without a leading ':');
- a blend `[[Target]]s` spans "Targets": MediaWiki draws the trailing letters as part of the
  link, so they are part of the mention. Which letters join is the wiki language's link trail
  (corpus/languages.py): a-z in English, German adds äöüß, Russian its alphabet, and in
  Chinese nothing joins (`[[東京]]都` is a link "東京" and the text "都");
- links to other namespaces (`[[:Category:X|...]]`, `[[Wikipedia:...]]`) and interwiki links
  (`[[wikt:word|word]]`) keep their visible text but are never spans; category tags, files and
  language links render no text at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mwparserfromhell.parser import Builder, CTokenizer, ParserError, tokens
from mwparserfromhell.parser.tokenizer import Tokenizer as PythonTokenizer
from mwparserfromhell.wikicode import Wikicode

from corpus.siteinfo import SiteInfo
from corpus.wikitext_links import MARKER, MARKER_OPEN, LinkRules, StashedLink, stash_simple_links
from corpus.wikitext_lists import (LIST_MARK, has_list_marks, mark_list_items,
                                   restore_list_marks)
from corpus.wikitext_layout import Span, finish_layout
from corpus.wikitext_prepass import DROPPED_TAGS, drop_comment_lines, strip_dropped
from corpus.wikitext_variants import render_variants

# Tags whose contents are dropped (the pre-pass cuts most before parsing; tables are
# mwparserfromhell Tag nodes too).
_DROPPED_TAG_NAMES = frozenset((*DROPPED_TAGS, "table", "tr", "td", "th", "caption", "math"))
# List items (`*`, `#`, `:`, `;`): a paragraph that ends with its line.
_LIST_ITEM_TAGS = frozenset({"li", "dt", "dd"})
# Tags that start a new paragraph: list items, rules, line breaks, blocks.
_BREAK_TAGS = frozenset({"li", "dt", "dd", "br", "hr", "p", "div", "blockquote", "center",
                         "ul", "ol", "dl", "poem"})
_PARAGRAPH_BREAK = "\n\n"   # what finish_layout reads as a paragraph break
# mwparserfromhell's tokenizer, its C one where the installed wheel has it (as its parse()).
_Tokenizer = CTokenizer or PythonTokenizer
# The tokens that open and close a construct (one node of mwparserfromhell's tree), and those
# that part one construct's pieces.
_OPENING_TOKENS = frozenset((tokens.TemplateOpen, tokens.ArgumentOpen, tokens.WikilinkOpen,
                             tokens.ExternalLinkOpen, tokens.HTMLEntityStart, tokens.HeadingStart,
                             tokens.CommentStart, tokens.TagOpenOpen))
_CLOSING_TOKENS = frozenset((tokens.TemplateClose, tokens.ArgumentClose, tokens.WikilinkClose,
                             tokens.ExternalLinkClose, tokens.HTMLEntityEnd, tokens.HeadingEnd,
                             tokens.CommentEnd, tokens.TagCloseSelfclose, tokens.TagCloseClose))
_WIKILINK_SEPARATOR = frozenset((tokens.WikilinkSeparator,))
_EXTERNAL_LINK_SEPARATOR = frozenset((tokens.ExternalLinkSeparator,))
_TAG_NAME_ENDS = frozenset((tokens.TagAttrStart, tokens.TagCloseOpen, tokens.TagCloseSelfclose))
_TAG_OPEN_ENDS = frozenset((tokens.TagCloseOpen, tokens.TagCloseSelfclose))
_TAG_CONTENTS_END = frozenset((tokens.TagOpenClose,))
# Bold/italic quotes: the parser keeps them as text (skip_style_tags, cheaper than building
# nodes for them) and each text node drops them here, so runs never merge across a link edge.
_QUOTE_RUN = re.compile(r"''+")


def _without_quotes(m: re.Match) -> str:
    """Runs of 2, 3, 5 or more quotes are markup; a run of 4 is an apostrophe before bold
    ("l" + 4 quotes + "amour" + 3 quotes shows "l'amour"), as MediaWiki renders it."""
    return "'" if len(m.group()) == 4 else ""


@dataclass(frozen=True)
class ParsedPage:
    text: str
    links: list[tuple[int, int, str]]   # (start, end, normalized target), text[start:end] = anchor
    # Quality figures (luke-corpus inspect --stats), not part of the result's identity: the
    # article links the parser found, those kept with text[start:end] = the anchor as written,
    # those a link trail extended.
    links_made: int = field(default=0, compare=False)
    links_on_anchor: int = field(default=0, compare=False)
    links_trailed: int = field(default=0, compare=False)


@dataclass(frozen=True)
class _Context:
    rules: LinkRules
    stash: list[StashedLink]      # links replaced by markers before parsing (may be empty)
    list_marks: bool = False      # list markers replaced by marks before parsing


class _TextBuilder:
    """Collects visible text and link spans over it, in order; puts stashed links back.

    links=False (inside a link's label) writes links as their text only.
    """

    def __init__(self, context: _Context, links: bool = True) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[Span] = []
        self.trailed = 0           # spans a link trail extended
        self._context = context
        self._links = links
        self._trail_open = False   # the last thing written was a span: letters may join it
        self._in_list_item = False  # a list item's line is open: its line break ends a paragraph

    def text(self, value: str) -> None:
        if self._context.list_marks and has_list_marks(value):
            self._text_with_list_marks(value)
            return
        if MARKER_OPEN in value and self._context.stash:
            self._text_with_stashed_links(value)
            return
        if self._trail_open:
            self._trail_open = False
            trail = self._context.rules.trail.match(value)
            if trail:
                start, _, target = self.spans[-1]
                self.spans[-1] = (start, self.length + trail.end(), target)
                self.trailed += 1
        if "''" in value:
            value = _QUOTE_RUN.sub(_without_quotes, value)
        if self._in_list_item and "\n" in value:
            self._in_list_item = False
            value = value.replace("\n", _PARAGRAPH_BREAK, 1)
        self.parts.append(value)
        self.length += len(value)

    def link(self, anchor: str, target: str | None) -> None:
        """A link's anchor, a span over it when it points at an article (and links are on)."""
        self.close_trail()
        if target is None or not self._links:
            self.text(anchor)
            return
        start = self.length
        self.text(anchor)
        self.spans.append((start, self.length, target))
        self._trail_open = self._context.rules.trail is not None

    def _text_with_stashed_links(self, value: str) -> None:
        pos = 0
        for marker in MARKER.finditer(value):
            self.text(value[pos:marker.start()])
            self.link(*self._context.stash[int(marker.group(1))])
            pos = marker.end()
        self.text(value[pos:])

    def _text_with_list_marks(self, value: str) -> None:
        """Each mark makes the calls its list-item tag would (corpus/wikitext_lists.py)."""
        for index, piece in enumerate(LIST_MARK.split(value)):
            if index:
                self.close_trail()
                self.open_list_item()
            if piece:
                self.text(piece)

    def close_trail(self) -> None:
        self._trail_open = False

    def open_list_item(self) -> None:
        self.text(_PARAGRAPH_BREAK)
        self._in_list_item = True

    def joined(self) -> str:
        return "".join(self.parts)


def parse_page(wikitext: str, title: str, site: SiteInfo, *, prepass: bool = True,
               variant: str | None = None) -> ParsedPage:
    """Clean text and article-link spans of one page's wikitext (see the module docstring).

    `variant`: the variant `-{...}-` markup is rendered in, on a wiki whose language has
    variants (default: the language itself, i.e. the text as written; see
    corpus/wikitext_variants.py). `prepass=False` parses the whole wikitext with
    mwparserfromhell, without the pre-pass and the simple-link shortcut (slower, same result;
    kept to test the shortcuts against). May raise on a pathological page (mwparserfromhell's
    ParserError, RecursionError): the caller counts and skips it.
    """
    rules = LinkRules(title, site)
    stash: list[StashedLink] = []
    source = drop_comment_lines(wikitext)
    if prepass:
        source = strip_dropped(source, site, rules.namespace_ids)
    if rules.variants is not None and "-{" in source:
        source = render_variants(source, rules.variants, variant or rules.variants.main)
    list_marks = False
    if prepass:
        source, stash = stash_simple_links(source, rules)
        source, list_marks = mark_list_items(source)
    context = _Context(rules, stash, list_marks)
    builder = _TextBuilder(context)
    toks = _Tokenizer().tokenize(source, 0, True)    # skip_style_tags: quotes stay text
    _write_tokens(toks, 0, len(toks), context, builder)
    raw = builder.joined()
    text, spans = finish_layout(raw, builder.spans, keep_empty=True)
    on_anchor = sum(_on_anchor(raw[before[0]:before[1]], text[after[0]:after[1]])
                    for before, after in zip(builder.spans, spans))
    return ParsedPage(text=text, links=[s for s in spans if s[0] < s[1]],
                      links_made=len(spans), links_on_anchor=on_anchor,
                      links_trailed=builder.trailed)


def _on_anchor(written: str, kept: str) -> bool:
    """Whether a kept span shows the anchor as the page wrote it (whitespace aside): the layout
    may only collapse and trim spaces inside a span, and should never need to. Counted per
    page; luke-corpus inspect --stats reports the share."""
    return bool(kept) and (written == kept or " ".join(written.split()) == kept)


def _write_tokens(toks: list, start: int, stop: int, context: _Context, out: _TextBuilder
                  ) -> None:
    """Write the visible text of toks[start:stop] (whole constructs) into out."""
    index = start
    while index < stop:
        token = toks[index]
        kind = type(token)
        if kind is tokens.Text:
            out.text(token["text"])
            index += 1
            continue
        end = _construct_end(toks, index)
        if kind is tokens.CommentStart:
            index = end     # MediaWiki removes comments first: `[[a]]<!-- -->s` is "as"
            continue
        out.close_trail()   # only text right after a link can extend it
        if kind is tokens.WikilinkOpen:
            _write_link(toks, index, end, context, out)
        elif kind is tokens.TagOpenOpen:
            _write_tag(toks, index, end, context, out)
        elif kind is tokens.HTMLEntityStart:
            out.text(_nodes(toks, index, end).nodes[0].normalize())
        elif kind is tokens.ExternalLinkOpen:
            separator = _at_top(toks, index, end, _EXTERNAL_LINK_SEPARATOR)
            if separator is not None:   # a bare URL or [http://x] shows no words
                _write_tokens(toks, separator + 1, end - 1, context, out)
        elif kind is tokens.HeadingStart:
            out.text(_PARAGRAPH_BREAK)
        # Template, Argument: nothing visible.
        index = end


def _construct_end(toks: list, start: int) -> int:
    """The index after the construct (a node of mwparserfromhell's tree) that toks[start]
    opens."""
    depth = 0
    for index in range(start, len(toks)):
        kind = type(toks[index])
        if kind in _OPENING_TOKENS:
            depth += 1
        elif kind in _CLOSING_TOKENS:
            depth -= 1
            if not depth:
                return index + 1
    raise ParserError(f"{type(toks[start]).__name__} at token {start} is never closed")


def _at_top(toks: list, start: int, end: int, kinds: frozenset) -> int | None:
    """The index of the first token of `kinds` in the construct toks[start:end] that belongs
    to it, not to a construct inside it; None if there is none."""
    depth = 0
    for index in range(start, end):
        kind = type(toks[index])
        if depth == 1 and kind in kinds:
            return index
        if kind in _OPENING_TOKENS:
            depth += 1
        elif kind in _CLOSING_TOKENS:
            depth -= 1
    return None


def _nodes(toks: list, start: int, stop: int) -> Wikicode:
    """mwparserfromhell's nodes for toks[start:stop] (whole constructs), built by its
    builder: for what the walk needs as a node (an entity) or as wikitext (str())."""
    return Builder().build(toks[start:stop])


def _source(toks: list, start: int, stop: int) -> str:
    """The wikitext of toks[start:stop], as str() of their nodes gives it."""
    if all(type(toks[index]) is tokens.Text for index in range(start, stop)):
        return "".join(toks[index]["text"] for index in range(start, stop))
    return str(_nodes(toks, start, stop))


def _write_tag(toks: list, start: int, end: int, context: _Context, out: _TextBuilder
               ) -> None:
    name = _source(toks, start + 1, _at_top(toks, start, end, _TAG_NAME_ENDS)).strip().lower()
    if name in _DROPPED_TAG_NAMES:
        return
    if name in _LIST_ITEM_TAGS and toks[start].get("wiki_markup"):
        out.open_list_item()
    elif name in _BREAK_TAGS:
        out.text(_PARAGRAPH_BREAK)
    opened = _at_top(toks, start, end, _TAG_OPEN_ENDS)
    if type(toks[opened]) is tokens.TagCloseOpen:     # not self-closing: it has contents
        _write_tokens(toks, opened + 1, _at_top(toks, start, end, _TAG_CONTENTS_END),
                      context, out)
        if name in _BREAK_TAGS:
            out.text(_PARAGRAPH_BREAK)


def _write_link(toks: list, start: int, end: int, context: _Context, out: _TextBuilder
                ) -> None:
    separator = _at_top(toks, start, end, _WIKILINK_SEPARATOR)
    raw_target = _source(toks, start + 1, end - 1 if separator is None else separator)
    if MARKER_OPEN in raw_target and context.stash:
        # `[[a [[b]] c]]`: a target holding a link is no link (MediaWiki shows the brackets
        # as text, which the layout drops); the inner link stays one.
        label = "" if separator is None else f"|{_source(toks, separator + 1, end - 1)}"
        out.text(restore_list_marks(f"[[{raw_target}{label}]]"))
        return
    renders, article = context.rules.lookup(raw_target)
    if renders:
        out.link(_anchor_text(toks, separator, end, raw_target, context), article)


def _anchor_text(toks: list, separator: int | None, end: int, raw_target: str,
                 context: _Context) -> str:
    """The text MediaWiki shows for a link: its label (after `separator`) without markup, else
    the target as written (percent-encoding and entities decoded, leading ':' removed).

    A label that is empty here was emptied by a cut (`[[Foo|{{lang|fr|bar}}]]`): the link
    shows nothing. (It is not MediaWiki's pipe trick `[[Foo (bar)|]]`: saving a page expands
    that, so dumps do not hold it.)
    """
    if separator is None:
        return context.rules.shown_target(raw_target)
    label = _TextBuilder(context, links=False)
    _write_tokens(toks, separator + 1, end - 1, context, label)
    shown = label.joined()
    return shown.replace("\n", " ") if shown.strip() else ""
