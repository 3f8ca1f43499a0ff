"""A synthetic multistream dump of any size made from a few real articles, for measuring the build.

The same pages repeated would understate what grows with a real dump: distinct link targets
(entity counting, the vocabulary, link resolution) and distinct words (the tokenizer, the
examples stage's word cache). So each synthetic article is a real seed article under a new title,
changed in the two ways that matter:
  - every link into the main namespace points to a new target, drawn over a Zipf popularity
    (rank r with weight 1/r) over the dump's own titles (articles and redirects) and a share of
    titles that are not in the dump (red links), so distinct targets grow with the dump as they
    do on Wikipedia; the anchor text stays what the seed shows;
  - from the second copy of a seed article on, each rare word of the seeds (seen at most twice in
    all of them) takes a suffix drawn from a Zipf law, so new words keep coming, sublinearly
    (a Heaps-like growth), as in real text.
Per byte of XML the dump has English Wikipedia's composition (ENGLISH_*: 7 M articles, 10 M
redirects and 160 M links in 100 GB), because the build's costs grow per page, per redirect
and per link as well as per byte, and the benchmark projects its per-GB rates to English:
  - seed articles longer than English's mean are cut at their headings into parts of
    about that size, each part an article of its own ("Title (part 2)");
  - where the seeds link more densely than English, each link is kept with the probability
    that brings the rate down to English's, and the others become their anchor text, so the
    text is the same;
  - redirects are added at English's rate, a few of them chained and a few in loops.
Everything is a function of the seed dump, the number of articles and `seed`; streams are
generated and compressed in parallel.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import multiprocessing
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from corpus.dump import DumpReader, decoded_xml
from corpus.progress import count_progress

PAGES_PER_STREAM = 100            # as in Wikimedia's multistream files
STREAMS_PER_TASK = 8
ENGLISH_XML_BYTES = 100e9         # the figures the benchmark projects to
ENGLISH_ARTICLES = 7e6
ENGLISH_REDIRECTS = 10e6
ENGLISH_LINKS = 160e6
LINK_POPULARITY_EXPONENT = 1.0    # Zipf exponent of link targets' popularity
REDLINK_SHARE = 0.05              # links to titles that are not in the dump
CHAINED_REDIRECT_SHARE = 0.02     # redirects that point to another redirect
LOOPED_REDIRECT_SHARE = 0.0005    # redirects in two-title loops
RARE_WORD_COUNT = 2               # a word seen at most this often in the seeds is rare
WORD_SUFFIX_EXPONENT = 1.5        # Zipf exponent of the suffix a rare word takes
_WORD = re.compile(r"\b[A-Za-z][a-z]{3,}\b")
# The innermost [[target|anchor]] (a link inside a file caption is innermost too).
_LINK = re.compile(r"\[\[([^\[\]|\n]*)(\|[^\[\]]*)?\]\]")
# A heading line ("== History ==", "=== Early life ==="), where a long seed article may be cut.
_SECTION = re.compile(r"^==+[^=\n].*==+[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class SyntheticPlan:
    """What every page of the synthetic dump is made from (written once, read by each worker)."""
    header: str                         # the seed's XML up to its first <page>
    seed_titles: tuple[str, ...]
    seed_texts: tuple[str, ...]
    rare_words: frozenset
    articles: int
    redirects: int
    seed: int
    link_share: float = 1.0             # the share of the seeds' links kept as links

    def article_title(self, number: int) -> str:
        copy, seed_index = divmod(number, len(self.seed_titles))
        title = self.seed_titles[seed_index]
        return title if copy == 0 else f"{title} ({copy})"

    def redirect_title(self, number: int) -> str:
        return f"{self.seed_titles[number % len(self.seed_titles)]} (alias {number})"


@dataclass(frozen=True)
class SyntheticDump:
    dump: Path
    index: Path
    articles: int
    redirects: int
    xml_bytes: int
    links: int


def write_synthetic_dump(seed_dump: Path, articles: int, out_dir: Path, seed: int = 0,
                         workers: int = 1) -> SyntheticDump:
    """Write `out_dir`/synthetic-N-multistream.xml.bz2 and its index (see the module docstring)."""
    plan = make_plan(Path(seed_dump), articles, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan_file = out_dir / "synthetic-plan.pickle"
    plan_file.write_bytes(pickle.dumps(plan))
    dump = out_dir / f"synthetic-{articles}-multistream.xml.bz2"
    index = out_dir / f"synthetic-{articles}-multistream-index.txt.bz2"
    pages = page_numbers(plan)
    tasks = [(str(plan_file), pages[i: i + PAGES_PER_STREAM * STREAMS_PER_TASK])
             for i in range(0, len(pages), PAGES_PER_STREAM * STREAMS_PER_TASK)]
    xml_bytes = links = 0
    index_lines: list[str] = []
    with open(dump, "wb") as out:
        header = bz2.compress(plan.header.encode("utf-8"), 9)
        out.write(header)
        xml_bytes += len(plan.header.encode("utf-8"))
        with _pool(workers) as pool, count_progress(len(pages), f"synthetic dump ({articles:,} "
                                                           f"articles)") as bar:
            for streams in (pool.imap(_write_streams, tasks) if pool else map(_write_streams,
                                                                               tasks)):
                for data, entries, size, stream_links in streams:
                    offset = out.tell()
                    index_lines += [f"{offset}:{page_id}:{title}\n" for page_id, title in entries]
                    out.write(data)
                    xml_bytes += size
                    links += stream_links
                    bar.update(len(entries))
        footer = "</mediawiki>\n".encode("utf-8")
        out.write(bz2.compress(footer, 9))
        xml_bytes += len(footer)
    index.write_bytes(bz2.compress("".join(index_lines).encode("utf-8"), 9))
    plan_file.unlink()
    return SyntheticDump(dump, index, plan.articles, plan.redirects, xml_bytes, links)


def _pool(workers: int):
    if workers <= 1:
        import contextlib
        return contextlib.nullcontext(None)
    return multiprocessing.get_context("forkserver").Pool(workers)


def make_plan(seed_dump: Path, articles: int, seed: int) -> SyntheticPlan:
    """The seed's articles (cut to English's mean size), its rare words, the share of its links
    kept, and the number of redirects for `articles` (all at English's rates per byte)."""
    reader = DumpReader(seed_dump)
    whole = [(p.title, p.text) for p in reader
             if p.ns == 0 and p.redirect is None and not p.malformed and p.text.strip()]
    if not whole:
        raise ValueError(f"{seed_dump}: no article to make a synthetic dump from")
    header = _header(seed_dump)
    counts: dict[str, int] = {}
    for _, text in whole:
        for word in _WORD.findall(text):
            counts[word] = counts.get(word, 0) + 1
    rare = frozenset(w for w, c in counts.items() if c <= RARE_WORD_COUNT)
    # English's 100 GB hold its redirects too: an article's own XML is its share of the bytes
    # less its share of redirect pages.
    redirect_bytes = len(_page_xml("A seed title (alias 1234567)", 12345678,
                                   "#REDIRECT [[A seed title]]", "A seed title").encode("utf-8"))
    redirect_share = 1 + redirect_bytes * ENGLISH_REDIRECTS / ENGLISH_XML_BYTES
    article_bytes = ENGLISH_XML_BYTES / ENGLISH_ARTICLES / redirect_share
    seeds = [part for title, text in whole
             for part in article_parts(title, text, round(_xml_bytes(text) / article_bytes))]
    xml_per_article = sum(_xml_bytes(text) for _, text in seeds) / len(seeds)
    redirects = round(articles * xml_per_article * ENGLISH_REDIRECTS / ENGLISH_XML_BYTES)
    seed_links = sum(1 for _, text in seeds for match in _LINK.finditer(text)
                     if _retargetable(match))
    english_links = xml_per_article * redirect_share * ENGLISH_LINKS / ENGLISH_XML_BYTES
    link_share = min(1.0, english_links * len(seeds) / seed_links) if seed_links else 1.0
    return SyntheticPlan(header, tuple(t for t, _ in seeds), tuple(x for _, x in seeds), rare,
                         articles, redirects, seed, link_share)


def _xml_bytes(text: str) -> int:
    """The bytes of an article page holding `text` in a dump."""
    return len(_page_xml("A seed title", 12345678, text).encode("utf-8"))


def article_parts(title: str, text: str, parts: int) -> list[tuple[str, str]]:
    """(title, text) of `text` cut at headings into at most `parts` articles of about
    equal size: the first keeps the title, the others are "Title (part k)". An article without
    headings stays whole."""
    size = len(text) / max(1, parts)
    cuts: list[int] = []
    for heading in _SECTION.finditer(text):
        if len(cuts) < parts - 1 and heading.start() >= (len(cuts) + 1) * size:
            cuts.append(heading.start())
    bounds = [0, *cuts, len(text)]
    return [(title if k == 0 else f"{title} (part {k + 1})", text[a:b])
            for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]


def _retargetable(link: re.Match) -> bool:
    """Whether a seed link points into the main namespace (not another namespace, an
    interwiki or a section of the page itself)."""
    target = link.group(1).strip()
    return bool(target) and ":" not in target and not target.startswith("#")


def _header(seed_dump: Path) -> str:
    """The seed's `<mediawiki>` opening and `<siteinfo>`, or a bare opening without one."""
    xml = decoded_xml(seed_dump)
    first = xml.find("<page>")
    head = xml[:first] if first > 0 else ""
    if "<mediawiki" not in head:
        head = '<mediawiki xml:lang="en">\n'
    return head


def page_numbers(plan: SyntheticPlan) -> list[int]:
    """Pages in dump order: article i is i, redirect r is -(r + 1); redirects spread among the
    articles as a dump's page ids spread them."""
    order: list[int] = []
    for article in range(plan.articles):
        order.append(article)
        first = article * plan.redirects // plan.articles
        last = (article + 1) * plan.redirects // plan.articles
        order += [-(r + 1) for r in range(first, last)]
    return order


@functools.lru_cache(maxsize=1)
def _load_plan(path: str) -> tuple[SyntheticPlan, np.ndarray, np.ndarray]:
    """The plan and its popularity tables, once per worker process."""
    plan = pickle.loads(Path(path).read_bytes())
    titles = plan.articles + plan.redirects
    weights = 1.0 / np.arange(1, titles + 1) ** LINK_POPULARITY_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    # which title has popularity rank r: a permutation, so the first articles are not the
    # most linked ones
    by_rank = np.random.default_rng([plan.seed, 1]).permutation(titles)
    return plan, cdf, by_rank


def _write_streams(task: tuple[str, list[int]]) -> list[tuple[bytes, list, int, int]]:
    """(compressed stream, index entries, XML bytes, links) for each stream of the task."""
    plan_file, numbers = task
    plan, cdf, by_rank = _load_plan(plan_file)
    streams = []
    for start in range(0, len(numbers), PAGES_PER_STREAM):
        parts, entries, links = [], [], 0
        for number in numbers[start: start + PAGES_PER_STREAM]:
            page_id = _page_id(plan, number)
            if number >= 0:
                title = plan.article_title(number)
                text, page_links = article_text(plan, number, cdf, by_rank)
                links += page_links
                parts.append(_page_xml(title, page_id, text))
            else:
                title, target = redirect_page(plan, -number - 1, cdf, by_rank)
                parts.append(_page_xml(title, page_id, f"#REDIRECT [[{target}]]", target))
            entries.append((page_id, title))
        xml = "".join(parts).encode("utf-8")
        streams.append((bz2.compress(xml, 9), entries, len(xml), links))
    return streams


def _page_id(plan: SyntheticPlan, number: int) -> int:
    return number + 1 if number >= 0 else plan.articles + (-number)


def _rng(plan: SyntheticPlan, kind: int, number: int) -> np.random.Generator:
    return np.random.default_rng([plan.seed, kind, number])


def _title_of_rank(plan: SyntheticPlan, rank: int) -> str:
    return plan.article_title(rank) if rank < plan.articles else \
        plan.redirect_title(rank - plan.articles)


def article_text(plan: SyntheticPlan, number: int, cdf: np.ndarray, by_rank: np.ndarray
                 ) -> tuple[str, int]:
    """Article `number`'s wikitext (its seed's, rare words and link targets changed) and the
    number of links kept (and retargeted)."""
    copy, seed_index = divmod(number, len(plan.seed_titles))
    rng = _rng(plan, 0, number)
    text = plan.seed_texts[seed_index]
    if copy:
        text = _vary_rare_words(text, plan.rare_words, rng)
    matches = [match for match in _LINK.finditer(text) if _retargetable(match)]
    draws = by_rank[np.searchsorted(cdf, rng.random(len(matches)))]
    red = rng.random(len(matches)) < REDLINK_SHARE
    kept = rng.random(len(matches)) < plan.link_share
    pieces, cursor, links = [], 0, 0
    for match, drawn, is_red, is_kept in zip(matches, draws, red, kept):
        target = match.group(1).strip()
        anchor = (match.group(2)[1:] if match.group(2) else match.group(1)) or target
        new = f"Missing page {int(drawn)}" if is_red else _title_of_rank(plan, int(drawn))
        pieces += [text[cursor: match.start()], f"[[{new}|{anchor}]]" if is_kept else anchor]
        cursor = match.end()
        links += bool(is_kept)
    pieces.append(text[cursor:])
    return "".join(pieces), links


def _vary_rare_words(text: str, rare: frozenset, rng: np.random.Generator) -> str:
    suffixes = iter(rng.zipf(WORD_SUFFIX_EXPONENT, size=len(text) // 4 + 1) - 1)

    def vary(match: re.Match) -> str:
        word = match.group(0)
        if word not in rare:
            return word
        number = int(next(suffixes))
        return word + _letters(number) if number else word

    return _WORD.sub(vary, text)


def _letters(number: int) -> str:
    """1 -> 'a', 26 -> 'z', 27 -> 'aa' ...: a suffix that keeps a word a word."""
    letters = ""
    while number > 0:
        number, digit = divmod(number - 1, 26)
        letters = chr(ord("a") + digit) + letters
    return letters


def redirect_page(plan: SyntheticPlan, number: int, cdf: np.ndarray, by_rank: np.ndarray
                  ) -> tuple[str, str]:
    """(title, target) of redirect `number`: to a popular article, to another redirect (a
    chain), or, for a few, to the redirect that points back (a loop)."""
    rng = _rng(plan, 1, number)
    share = rng.random()
    if share < LOOPED_REDIRECT_SHARE and plan.redirects > 1:
        partner = number ^ 1 if (number ^ 1) < plan.redirects else number
        return plan.redirect_title(number), plan.redirect_title(partner)
    if share < LOOPED_REDIRECT_SHARE + CHAINED_REDIRECT_SHARE and plan.redirects > 1:
        other = int(rng.integers(plan.redirects))
        return plan.redirect_title(number), plan.redirect_title(other)
    ranks = by_rank[np.searchsorted(cdf, rng.random(8))]
    article = next((int(r) for r in ranks if r < plan.articles), number % plan.articles)
    return plan.redirect_title(number), plan.article_title(article)


def _page_xml(title: str, page_id: int, text: str, redirect: str | None = None) -> str:
    sha = hashlib.sha1(text.encode("utf-8")).hexdigest()
    redirect_line = f"    <redirect title={quoteattr(redirect)} />\n" if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>0</ns>\n"
            f"    <id>{page_id}</id>\n{redirect_line}    <revision>\n"
            f"      <id>{page_id + 1000000000}</id>\n"
            f"      <timestamp>2026-01-01T00:00:00Z</timestamp>\n"
            f"      <contributor>\n        <username>Synthetic</username>\n"
            f"        <id>1</id>\n      </contributor>\n"
            f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f"      <text xml:space=\"preserve\">{escape(text)}</text>\n"
            f"      <sha1>{sha}</sha1>\n    </revision>\n  </page>\n")
