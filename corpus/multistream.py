"""Multistream dumps: the index, the byte ranges of the bz2 streams, and reading one stream.

A `*-pages-articles-multistream.xml.bz2` is a concatenation of bz2 streams: the first holds the
`<mediawiki>` header and `<siteinfo>`, then each stream holds about 100 `<page>` elements, and a
last one closes `</mediawiki>`. The index (`*-multistream-index.txt.bz2`) has one line per page,
`offset:page_id:title`, where offset is the byte where the page's stream starts in the .bz2 file
(titles may themselves contain ':'). Each stream decompresses on its own, so worker processes
can each take a byte range and read it without the others: that is what makes parallel reading
possible. Page streams are not well-formed XML on their own; they are parsed inside a synthetic
root element.
"""

from __future__ import annotations

import bz2
from dataclasses import dataclass
from pathlib import Path

from corpus.dump import DumpError, RawPage, XmlPageParser, check_encoding
from corpus.siteinfo import SiteInfo

_ROOT_OPEN, _ROOT_CLOSE = b"<mediawiki>", b"</mediawiki>"


def find_index(dump: Path) -> Path | None:
    """The index that the Wikimedia dumps put beside a multistream file, if it is there."""
    name = Path(dump).name
    for suffix in (".xml.bz2", ".xml"):
        if name.endswith(suffix):
            for index_suffix in ("-index.txt.bz2", "-index.txt"):
                candidate = Path(dump).with_name(name[: -len(suffix)] + index_suffix)
                if candidate.is_file():
                    return candidate
    return None


def read_stream_offsets(index: Path) -> list[int]:
    """The sorted distinct stream offsets of an index file (.txt or .txt.bz2)."""
    index = Path(index)
    if not index.is_file():
        raise DumpError(f"{index}: multistream index not found (no such file)")
    opener = bz2.open if index.read_bytes()[:3] == b"BZh" else open
    offsets: set[int] = set()
    with opener(index, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            offset, sep, _rest = line.partition(":")
            if not sep or not offset.isdigit():
                raise DumpError(f"{index}: line {number} is not 'offset:page_id:title': "
                                f"{line[:80]!r}")
            offsets.add(int(offset))
    if not offsets:
        raise DumpError(f"{index}: the multistream index is empty")
    return sorted(offsets)


def stream_ranges(offsets: list[int], file_size: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of the page streams; the last one runs to the end of the file."""
    starts = [o for o in offsets if o < file_size]
    return [(s, e) for s, e in zip(starts, starts[1:] + [file_size])]


def decompress_streams(data: bytes, where: str) -> tuple[bytes, bool]:
    """Decompress every bz2 stream in `data`: (xml, truncated), truncated if the last ends early."""
    parts = []
    while data:
        decompressor = bz2.BZ2Decompressor()
        try:
            parts.append(decompressor.decompress(data))
        except OSError as error:
            raise DumpError(f"{where}: cannot decompress: {error}") from None
        if not decompressor.eof:
            return b"".join(parts), True
        data = decompressor.unused_data
    return b"".join(parts), False


def read_header_site(dump: Path) -> SiteInfo:
    """The SiteInfo from the first bz2 stream (the header stream of a Wikimedia dump)."""
    decompressor, parts = bz2.BZ2Decompressor(), []
    with open(dump, "rb") as raw:
        while not decompressor.eof and (block := raw.read(1 << 20)):
            try:
                parts.append(decompressor.decompress(block))
            except OSError as error:
                raise DumpError(f"{dump}: cannot decompress the first stream: {error}") from None
    xml = b"".join(parts)
    if xml[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DumpError(f"{dump}: a UTF-16 multistream dump cannot be read stream by stream; "
                        f"convert it to UTF-8 (bzcat | iconv -f UTF-16 -t UTF-8 | bzip2) or "
                        f"read it without an index")
    check_encoding(xml, Path(dump))
    parser = XmlPageParser(str(dump))
    parser.feed(xml)
    return parser.handler.site or SiteInfo.default()


@dataclass
class StreamPages:
    pages: list[RawPage]       # the complete pages, in order
    truncated: bool            # the range's last stream ends early
    xml_bytes: int             # decompressed size


def read_stream_pages(dump: Path, start: int, end: int) -> StreamPages:
    """The complete pages of the bz2 streams in bytes [start, end) of the dump."""
    where = f"{dump} (stream at byte {start})"
    with open(dump, "rb") as raw:
        raw.seek(start)
        data = raw.read(end - start)
    xml, truncated = decompress_streams(data, where)
    body = xml.rstrip()
    if body.endswith(_ROOT_CLOSE):          # the footer stream, when it shares the last range
        body = body[: -len(_ROOT_CLOSE)]
    has_root = b"<mediawiki" in body[:4096]
    opening = b"" if has_root else _ROOT_OPEN
    parser = XmlPageParser(str(dump), base_offset=-len(opening),
                           offset_note=f" of the bz2 stream starting at byte {start}")
    pages = parser.feed(opening + body)
    if not truncated:                        # else the last page may be cut: keep complete ones
        pages += parser.feed(_ROOT_CLOSE, final=True)
    return StreamPages(pages, truncated or parser.truncated, len(xml))


def write_multistream(xml: str, dump: Path, pages_per_stream: int = 100) -> Path:
    """Write a whole dump's XML text as a Wikimedia-style multistream file at `dump` (a header
    stream, streams of `pages_per_stream` pages, a closing stream) and its bz2 index beside it
    (`<name>-index.txt.bz2`, found by find_index); returns the index path. For tests and the
    benchmark, which need a multistream file made from a sample."""
    first, last = xml.index("<page>"), xml.rindex("</page>") + len("</page>")
    pages = [page + "</page>\n" for page in xml[first:last].split("</page>") if page.strip()]
    groups = ["".join(pages[i: i + pages_per_stream])
              for i in range(0, len(pages), pages_per_stream)]
    name = Path(dump).name.removesuffix(".xml.bz2")
    index = Path(dump).with_name(name + "-index.txt.bz2")
    lines, offset = [], 0
    with open(dump, "wb") as out:
        for part in [xml[:first]] + groups + [xml[last:]]:
            if part in groups:
                parsed = XmlPageParser(str(dump)).feed(
                    _ROOT_OPEN + part.encode("utf-8") + _ROOT_CLOSE, final=True)
                lines += [f"{offset}:{page.id}:{page.title}\n" for page in parsed]
            data = bz2.compress(part.encode("utf-8"), compresslevel=1)
            out.write(data)
            offset += len(data)
    index.write_bytes(bz2.compress("".join(lines).encode("utf-8")))
    return index
