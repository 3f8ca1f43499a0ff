"""Redirects: follow chains to their final target, cut loops, read and write redirects.tsv.

A redirect page says "source -> target", and the target may itself be a redirect. Links are
resolved to the end of the chain, so that every link to an article counts toward that article's
entity whatever name it used. A chain that comes back to a title it already passed (A -> B -> A,
or A -> A) has no end: every source on it, and every source leading into it, is dropped from
the table and counted, so links to them stay unresolved instead of landing on an arbitrary page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpus.dump import DumpError


@dataclass(frozen=True)
class ResolvedRedirects:
    targets: dict[str, str]   # source -> final target (which is not itself a redirect)
    loops: int                # distinct cycles found
    in_loops: int             # sources dropped because their chain never ends
    longest_chain: int        # hops of the longest chain followed


def resolve_redirects(raw: dict[str, str]) -> ResolvedRedirects:
    """Final targets of every redirect source, in O(number of redirects)."""
    final: dict[str, str | None] = {}          # None: the chain loops
    loops = longest = 0
    for source in raw:
        if source in final:
            continue
        chain, on_chain, title = [], set(), source
        while title in raw and title not in final and title not in on_chain:
            chain.append(title)
            on_chain.add(title)
            title = raw[title]
        if title in on_chain:                    # came back to a title of this very chain
            loops += 1
            end = None
        else:
            end = final[title] if title in final else title
        longest = max(longest, len(chain))
        for hop in chain:
            final[hop] = end
    targets = {s: t for s, t in final.items() if t is not None and t != s}
    return ResolvedRedirects(targets, loops, len(final) - len(targets), longest)


def write_redirects_tsv(targets: dict[str, str], path: Path) -> None:
    """`source<TAB>final target` per line, sorted by source so the file is deterministic."""
    with open(path, "w", encoding="utf-8") as out:
        for source in sorted(targets):
            out.write(f"{source}\t{targets[source]}\n")


def read_redirects_tsv(path: Path) -> dict[str, str]:
    """The table written by write_redirects_tsv."""
    targets = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            source, sep, target = line.rstrip("\n").partition("\t")
            if not sep:
                raise DumpError(f"{path}: line {number} is not 'source<TAB>target'")
            targets[source] = target
    return targets
