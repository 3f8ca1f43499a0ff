"""List items marked before the parse: a speed shortcut of the same kind as the stashed links.

A line of wikitext that starts with `*`, `#` or `:` is a list item. mwparserfromhell makes a
Tag node for each such marker (`**` makes two), and on Wikipedia articles those nodes are a
quarter of what it builds and half its parse time (measured after the pre-pass). The text walk
of corpus/wikitext.py does one thing per list-item tag: end the paragraph and open a list item
(`_TextBuilder.open_list_item`). So `mark_list_items` replaces each marker at a line start by a
private-use character, one per marker kind; the parser reads those as plain text, and the
text builder turns each back into the calls the tag would have made. Text written raw (a link
that is no link) gets its markers back from `restore_list_marks`.

Where mwparserfromhell's tokenizer makes list tags, and so where this marks them: a run of
`*#:;` at the start of the text or right after a line break, in any context (its rule reads
the raw text's previous character). Left to the parser, whole: a run holding `;` (a definition
term, whose first `:` later on the line starts a definition: state the parser keeps), runs
inside closed nowiki sections (not parsed), and pages holding a tag whose contents
mwparserfromhell does not parse, or the mark characters themselves. parse_page with and without
the shortcuts gives the same result (tests/test_wikitext.py, on the real samples).
"""

from __future__ import annotations

import re

from corpus.wikitext_prepass import NowikiSections

LIST_MARKS = {"*": "\ue002", "#": "\ue003", ":": "\ue004"}
LIST_MARK = re.compile("[\ue002\ue003\ue004]")
_TO_MARKS = str.maketrans(LIST_MARKS)
_FROM_MARKS = str.maketrans({mark: marker for marker, mark in LIST_MARKS.items()})
# A run after a line break (the text start is given one): a pattern that starts with a literal
# character is searched for that character in C, where `^` is tried at every position.
_LIST_RUN = re.compile(r"\n[*#:]++(?!;)")
# mwparserfromhell's tags whose contents it keeps unparsed, but nowiki (its sections are
# skipped one by one). The pre-pass cuts them all; one it did not cut turns the shortcut off.
_UNPARSED_TAG = re.compile(
    r"<\s*/?\s*(?:categorytree|ce|chem|gallery|graph|hiero|imagemap|inputbox|math|pre|score"
    r"|section|source|syntaxhighlight|templatedata|timeline)\b", re.IGNORECASE)


def mark_list_items(text: str) -> tuple[str, bool]:
    """The text with each list marker at a line start replaced by its mark, and whether any
    was (see the module docstring for the runs and pages left as they are)."""
    if has_list_marks(text) or _UNPARSED_TAG.search(text):
        return text, False
    sections = NowikiSections(text)
    marked = False

    def mark(run: re.Match) -> str:          # run.start() is its first marker's position
        nonlocal marked
        if sections.end_around(run.start()) is not None:
            return run.group()
        marked = True
        return run.group().translate(_TO_MARKS)

    return _LIST_RUN.sub(mark, "\n" + text)[1:], marked


_STAR_MARK, _HASH_MARK, _COLON_MARK = LIST_MARKS.values()


def has_list_marks(text: str) -> bool:
    # Three substring searches run faster than one search for a character class, and written
    # out they run six times faster than any() over them: the text builder asks this of every
    # piece of text it writes.
    return _STAR_MARK in text or _HASH_MARK in text or _COLON_MARK in text


def restore_list_marks(text: str) -> str:
    """`text` with its marks back to the list markers they stand for."""
    return text.translate(_FROM_MARKS)
