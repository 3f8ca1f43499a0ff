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
from typing import Iterable, Iterator

import numpy as np

from corpus.dump import DumpError, RawPage, XmlPageParser, check_encoding
from corpus.siteinfo import SiteInfo

_ROOT_OPEN, _ROOT_CLOSE = b"<mediawiki>", b"</mediawiki>"
# Index text read at a time: English's is ~1 GB. The workers start on the streams of the first
# block while the rest is read, so a block is small: what they wait for before any work. The
# first is smaller still (a few thousand streams, read in milliseconds) and each next one twice
# the last, up to the largest.
INDEX_BLOCK_BYTES = 1 << 22
FIRST_INDEX_BLOCK_BYTES = 1 << 16
MAX_OFFSET_DIGITS = 18            # a byte offset fits an int64


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
    found = np.unique(np.concatenate([np.zeros(0, np.int64), *_index_blocks(index)]))
    if not len(found):
        raise DumpError(f"{index}: the multistream index is empty")
    return found.tolist()


def ordered_stream_offsets(index: Path) -> Iterator[int]:
    """The distinct stream offsets of an index file in the order it lists them, block by block,
    so that the streams named first can be read while the rest of the index is (English's is
    ~1 GB of text: a quarter of a minute of one process). Wikimedia's indexes list the streams
    in file order; an offset listed again later is passed over, and one below an offset already
    listed that was not itself listed is refused (its stream would be read out of order)."""
    listed: list[np.ndarray] = []
    last = -1
    for values in _index_blocks(index):
        before = np.maximum.accumulate(np.concatenate([[last], values]))[:-1]
        behind = values[values < before]
        if len(behind):
            unseen = behind[~np.isin(behind, np.concatenate([np.zeros(0, np.int64), *listed]))]
            if len(unseen):
                raise DumpError(f"{index}: stream offset {unseen[0]} is listed after larger "
                                f"ones: the index is not in the dump's order")
        new = values[values > before]
        if len(new):
            listed.append(new)
            last = int(new[-1])
            yield from new.tolist()
    if last < 0:
        raise DumpError(f"{index}: the multistream index is empty")


def _index_blocks(index: Path) -> Iterator[np.ndarray]:
    """The offsets of the index's lines, in line order, a block of whole lines at a time.

    English Wikipedia's index has a line for each of its ~20 M pages: the offsets (the digits
    before each line's first ':') are read from blocks of whole lines with numpy, not line by
    line in Python."""
    index = Path(index)
    if not index.is_file():
        raise DumpError(f"{index}: multistream index not found (no such file)")
    with open(index, "rb") as raw:
        compressed = raw.read(3) == b"BZh"
    lines_before, rest = 0, b""
    size = min(FIRST_INDEX_BLOCK_BYTES, INDEX_BLOCK_BYTES)
    with (bz2.open if compressed else open)(index, "rb") as lines:
        while True:
            block = lines.read(size)
            size = min(2 * size, INDEX_BLOCK_BYTES)
            data, rest = rest + block, b""
            if block:                            # whole lines only; the rest goes with the next
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            yield _line_offsets(data, lines_before, index)
            lines_before += data.count(b"\n")
            if not block:
                break


def _line_offsets(block: bytes, lines_before: int, index: Path) -> np.ndarray:
    """The integers before the first ':' of the lines of `block` (whole lines), in line order;
    a blank line is skipped, any other line without them is refused, naming its number."""
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    colons = np.flatnonzero(data == ord(":"))
    colon = np.append(colons, len(data))[np.searchsorted(colons, starts)]
    width = colon - starts
    bad = (colon >= ends) | (width == 0) | (width > MAX_OFFSET_DIGITS)
    padded = np.append(data, np.uint8(0))
    values = np.zeros(len(starts), dtype=np.int64)
    for k in range(MAX_OFFSET_DIGITS):
        inside = ~bad & (k < width)
        if not inside.any():
            break
        digit = padded[np.minimum(starts + k, len(data))].astype(np.int64) - ord("0")
        bad |= inside & ((digit < 0) | (digit > 9))
        values = np.where(inside, values * 10 + digit, values)
    for line in np.flatnonzero(bad):                # blank lines are fine, others are not
        text = block[starts[line]:ends[line]]
        if text.strip():
            raise DumpError(f"{index}: line {lines_before + line + 1} is not "
                            f"'offset:page_id:title': {text.decode('utf-8', 'replace')[:80]!r}")
    return values[~bad]


def stream_ranges(offsets: list[int], file_size: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of the page streams; the last one runs to the end of the file."""
    return list(iter_stream_ranges(offsets, file_size))


def iter_stream_ranges(offsets: Iterable[int], file_size: int) -> Iterator[tuple[int, int]]:
    """stream_ranges, as the ascending offsets come (each range once its end is known)."""
    start = None
    for offset in offsets:
        if offset >= file_size:
            continue
        if start is not None:
            yield start, offset
        start = offset
    if start is not None:
        yield start, file_size


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
