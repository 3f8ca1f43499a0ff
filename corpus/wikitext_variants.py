"""Language-variant markup `-{...}-` rendered as MediaWiki's language converter renders it.

Wikis whose language has variants (Chinese, Serbian, Kazakh ... : corpus/languages.py names
them) write conversion rules inline. MediaWiki applies them to the page after parsing; here they
are applied to the wikitext before parsing (after templates are cut), which gives the same text
because a rule's display is plain text around whatever wikitext it holds. What each form shows
(MediaWiki's ConverterRule, for the reader's variant V):
  -{X}-                        X as written (no conversion)
  -{zh-hans:A;zh-hant:B;}-     the text for V, else for the first of V's fallback variants that
                               the rule has (for the language itself, e.g. plain `zh`: zh-hans,
                               zh-hant, zh-cn, zh-tw ...), else what the converter's manual
                               level allows; nothing when no choice applies (MediaWiki shows an
                               error message there, which is no text of the article)
  -{A|rules}-                  like the plain rule (and declares it for the page)
  -{H|rules}- -{-|rules}-      nothing (declare or remove a rule for the page)
  -{T|rules}-                  nothing (sets the page's displayed title)
  -{R|X}-  -{zh-hans;zh-hant|X}-  X as written
  -{D|rules}-                  a description: each variant's name and its text
  -{N|zh-tw}-                  the variant's name
  a rule whose choices name no valid variant (`-{Note: x}-`) shows its text as written.
Only the explicit choices are applied: the running text is not converted character by
character (MediaWiki's conversion tables are not in this project), so the default variant is the
language itself, which shows the text as its authors wrote it.

Where MediaWiki differs from a plain substitution, this follows it: rules nest (inner ones
first, at most 10 deep); an unclosed `-{` is text; `<nowiki>` sections are not converted; a
link whose target holds a rule is no link (braces are not allowed in titles), so its brackets
become text; and text a rule shows right after `]]` never joins that link as its trail.
Separators (`|`, `;`, `:`) inside links, templates, tags and entities of a rule do not split it,
as they do not in MediaWiki, which sees those already rendered.
"""

from __future__ import annotations

import re

from corpus.languages import VariantRules
from corpus.wikitext_prepass import NowikiSections

MAX_DEPTH = 10
_RULE_EDGE = re.compile(r"-\{|\}-")
# A link target that holds a rule: MediaWiki makes no link of it.
_TARGET_WITH_RULE = re.compile(r"\[\[(?=[^\[\]|\n]*-\{)")
# What a rule's separators must not be looked for in: links, templates, tags, entities.
_OPAQUE = re.compile(r"\[\[[^\[\]]*\]\]|\{\{[^{}]*\}\}|<[^<>]*>|&[#a-zA-Z0-9]+;")
_PHP_TRIM = " \t\n\r\0\x0b"
_PHP_SPACE = "[ \t\n\r\x0b\x0c]"


def render_variants(text: str, rules: VariantRules, variant: str) -> str:
    """The wikitext with every `-{...}-` replaced by what it shows in `variant`."""
    if "-{" not in text:
        return text
    nowiki = NowikiSections(text)
    if _TARGET_WITH_RULE.search(text):
        text = _unlink_targets_with_rules(text, nowiki)
        nowiki = NowikiSections(text)
    renderer = _Renderer(text, rules, variant, nowiki)
    return renderer.top_level()


def _unlink_targets_with_rules(text: str, nowiki: NowikiSections) -> str:
    def unlink(m: re.Match) -> str:
        return m.group() if nowiki.end_around(m.start()) is not None else "<nowiki>[[</nowiki>"
    return _TARGET_WITH_RULE.sub(unlink, text)


class _Renderer:
    """MediaWiki's recursive descent over `-{` and `}-` (LanguageConverter), one page."""

    def __init__(self, text: str, rules: VariantRules, variant: str,
                 nowiki: NowikiSections) -> None:
        self.text, self.rules, self.variant, self.nowiki = text, rules, variant, nowiki
        self.pos = 0

    def top_level(self) -> str:
        out: list[str] = []
        text = self.text
        while (start := text.find("-{", self.pos)) >= 0:
            inside = self.nowiki.end_around(start)
            if inside is not None:           # nowiki: no conversion
                out.append(text[self.pos:inside])
                self.pos = inside
                continue
            out.append(text[self.pos:start])
            self.pos = start
            shown = self.rule(depth=1)
            if shown and text.endswith("]]", 0, start):
                shown = "<nowiki/>" + shown  # ends the link's trail, as the markup did
            out.append(shown)
        out.append(text[self.pos:])
        return "".join(out)

    def rule(self, depth: int) -> str:
        """The display of the rule whose `-{` is at self.pos; moves self.pos past it."""
        text = self.text
        self.pos += 2
        inner: list[str] = []
        while (m := _RULE_EDGE.search(text, self.pos)) is not None:
            inner.append(text[self.pos:m.start()])
            self.pos = m.start()
            if m.group() == "-{":
                if depth >= MAX_DEPTH:
                    inner.append("-{")
                    self.pos += 2
                else:
                    inner.append(self.rule(depth + 1))
                continue
            self.pos += 2
            return display(rule_text="".join(inner), rules=self.rules, variant=self.variant)
        inner.append(text[self.pos:])        # unclosed: the markup is text
        self.pos = len(text)
        return "-{" + "".join(inner)


def _masked(text: str) -> str:
    """text with links, templates, tags and entities blanked (same length)."""
    return _OPAQUE.sub(lambda m: "\0" * len(m.group()), text) if _OPAQUE.search(text) else text


def display(rule_text: str, rules: VariantRules, variant: str) -> str:
    """What one rule (the text between `-{` and `}-`) shows in `variant` (ConverterRule)."""
    flags, variant_flags, body = _parse_flags(rule_text, rules)
    if variant_flags:
        flags = {"R": True}
    bidirectional: dict[str, str] = {}
    unidirectional: dict[str, dict[str, str]] = {}
    if "R" not in flags and "N" not in flags:
        body = body.replace("=&gt;", "=>")
        bidirectional, unidirectional = _parse_choices(body, rules)
    if not bidirectional and not unidirectional:
        if "+" in flags or "-" in flags:
            if body:
                bidirectional = {v: body for v in rules.variants}
        elif "N" not in flags and "T" not in flags:
            flags = {"R": True}
    shown: str | None = None
    for flag in flags:
        if flag == "R":
            shown = body
        elif flag == "N":
            shown = rules.names.get(body.strip(_PHP_TRIM), "")
        elif flag == "D":
            shown = _description(bidirectional, unidirectional, rules)
        elif flag in ("H", "-", "+", "T"):
            shown = ""
        elif flag == "S":
            shown = _choice(body, bidirectional, unidirectional, rules, variant)
    return shown or ""


def _parse_flags(text: str, rules: VariantRules) -> tuple[dict[str, bool], set[str], str]:
    """(flags in MediaWiki's order, variant flags, the rule's body)."""
    flags: dict[str, bool] = {}
    bar = _masked(text).find("|")
    if bar >= 0:
        for written in text[:bar].split(";"):
            meant = rules.flags.get(written.strip(_PHP_TRIM))
            if meant is not None:
                flags[meant] = True
        text = text[bar + 1:]
    variant_flags: set[str] = set()
    if not flags:
        flags = {"S": True}
    elif "R" in flags:
        flags = {"R": True}
    elif "N" in flags:
        flags = {"N": True}
    elif "-" in flags:
        flags = {"-": True}
    elif len(flags) == 1 and "T" in flags:
        flags["H"] = True
    elif "H" in flags:
        flags = {"+": True, "H": True, **{f: True for f in ("T", "D") if f in flags}}
    else:
        if "A" in flags:
            flags["+"] = flags["S"] = True
        if "D" in flags:
            flags.pop("S", None)
        variant_flags = {f for f in flags if f in rules.variants}
        if variant_flags:
            flags = {}
    return flags, variant_flags, text


def _separator(rules: VariantRules) -> re.Pattern:
    """Where a rule's choices split: at a ';' followed by a variant and ':' (or `from=>variant:`)
    or by the end; a ';' inside a choice's text stays (MediaWiki's getVarSeparatorPattern)."""
    spelled = "|".join(re.escape(s) for s in sorted(rules.separator_spellings, key=len,
                                                     reverse=True))
    return re.compile(f";{_PHP_SPACE}*(?=(?:{spelled}){_PHP_SPACE}*:"
                      f"|[^;]*?=>{_PHP_SPACE}*(?:{spelled}){_PHP_SPACE}*:|{_PHP_SPACE}*$)")


_SEPARATORS: dict[str, re.Pattern] = {}


def _parse_choices(body: str, rules: VariantRules
                   ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The rule's bidirectional (variant: text) and unidirectional (from=>variant: text)
    choices; both empty when a choice names no variant (a syntax error in MediaWiki)."""
    separator = _SEPARATORS.get(rules.main)
    if separator is None:
        separator = _SEPARATORS[rules.main] = _separator(rules)
    masked = _masked(body)
    bidirectional: dict[str, str] = {}
    unidirectional: dict[str, dict[str, str]] = {}
    start = 0
    pieces = []
    for m in separator.finditer(masked):
        pieces.append((start, m.start()))
        start = m.end()
    pieces.append((start, len(body)))
    for begin, end in pieces:
        colon = masked.find(":", begin, end)
        if colon < 0:
            continue
        to = body[colon + 1:end].strip(_PHP_TRIM)
        written = body[begin:colon].strip(_PHP_TRIM)
        arrow = written.split("=>", 1)
        variant = rules.valid(written)
        if len(arrow) == 1 and to and variant:
            bidirectional[variant] = to
        elif len(arrow) == 2:
            source = arrow[0].strip(_PHP_TRIM)
            variant = rules.valid(arrow[1].strip(_PHP_TRIM))
            if source and variant:
                unidirectional.setdefault(variant, {})[source] = to
        if variant not in rules.names:
            return {}, {}
    return bidirectional, unidirectional


def _choice(body: str, bidirectional: dict[str, str], unidirectional: dict[str, dict[str, str]],
            rules: VariantRules, variant: str) -> str | None:
    """getRuleConvertedStr: the text a rule with choices shows in variant, None for none."""
    if not bidirectional and not unidirectional:
        return body
    if variant in bidirectional:
        return bidirectional[variant]
    for fallback in rules.fallbacks_of(variant):
        if fallback in bidirectional:
            return bidirectional[fallback]
    if variant in unidirectional:
        return next(iter(unidirectional[variant].values()))
    if rules.manual_levels.get(variant) == "disable":
        if bidirectional:
            return next(iter(bidirectional.values()))
        return next(iter(next(iter(unidirectional.values())).values()))
    return None


def _description(bidirectional: dict[str, str], unidirectional: dict[str, dict[str, str]],
                 rules: VariantRules) -> str:
    between, after = rules.description_separators
    text = "".join(f"{rules.names[v]}{between}{t}{after}" for v, t in bidirectional.items())
    for v, choices in unidirectional.items():
        text += "".join(f"{source}⇒{rules.names[v]}{between}{t}{after}"
                        for source, t in choices.items())
    return text
