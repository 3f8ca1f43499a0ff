"""Stream the pages of a MediaWiki XML dump (.xml.bz2, .xml.gz or plain .xml), one at a time.

The reader runs expat over the decompressed bytes and keeps only the fields of the page being
read (title, ns, id, redirect target, wikitext); no element tree is ever built, so memory stays
flat however large the dump is (ElementTree.iterparse would need every page element cleared and
the root's children dropped to get the same). The `<siteinfo>` block becomes a SiteInfo; a
fragment without one gets MediaWiki's defaults.

Encodings: expat reads UTF-8 and UTF-16 (with or without a BOM) natively, so a UTF-16 dump is
read correctly; anything else that expat cannot read (UTF-32) is refused with a message that
says how to convert it. Bad input raises DumpError naming the file and the byte offset; a
truncated input is not an error here: iteration ends after the last complete page and
`reader.truncated` says so, because finished pages are worth keeping.

A well-formed `<page>` that lacks what a page needs (MALFORMED_KINDS: no `<title>`, no `<ns>` or
one that is not an integer, an `<id>` that is not an integer, no `<text>` or a deleted one, a
`<redirect>` without a title) is yielded all the same with `malformed` set to its kind and
`problem` saying what is wrong and where (its id, else its byte offset), so that the caller
can skip, count and name it and go on: one odd page must not stop a build of millions.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import gzip
import os
import queue
import threading
import zlib
import xml.parsers.expat as expat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from corpus.siteinfo import SiteInfo

CHUNK_BYTES = 1 << 20          # plain XML read per call
COMPRESSED_CHUNK_BYTES = 1 << 18   # compressed bytes per call: about 1 MB of XML, so the
                                   # parse workers get pages while the rest decompresses

# expat errors that mean "the document stopped early" when they come from the final parse call.
_EARLY_END_ERRORS = {
    expat.errors.codes[m] for m in (
        expat.errors.XML_ERROR_NO_ELEMENTS, expat.errors.XML_ERROR_UNCLOSED_TOKEN,
        expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION, expat.errors.XML_ERROR_PARTIAL_CHAR)
}

# dbnames whose language code is not simply the name minus "wiki".
_DBNAME_LANGUAGES = {"simplewiki": "en", "be_x_oldwiki": "be-tarask", "zh_classicalwiki": "lzh",
                     "zh_min_nanwiki": "nan", "zh_yuewiki": "yue", "nowiki": "nb"}
_PROJECT_SUFFIXES = ("wiktionary", "wikibooks", "wikinews", "wikiquote", "wikisource",
                     "wikiversity", "wikivoyage", "wiki")


class DumpError(Exception):
    """The dump cannot be read; the message names the file and where."""


MALFORMED_KINDS = ("no_title", "no_ns", "bad_ns", "bad_id", "no_text", "redirect_without_title")


@dataclass(frozen=True)
class RawPage:
    """One `<page>` as the dump holds it; `redirect` is the raw `<redirect title=...>`.
    A malformed page (see the module docstring) has `malformed` set to one of MALFORMED_KINDS
    and `problem` describing it; its other fields are then whatever could be read."""
    id: int
    title: str
    ns: int
    text: str
    redirect: str | None = None
    malformed: str = ""
    problem: str = ""


def language_of_dbname(dbname: str) -> str | None:
    """The language code of a wiki's database name ("bgwiki" -> "bg"), None if not a wiki name."""
    if dbname in _DBNAME_LANGUAGES:
        return _DBNAME_LANGUAGES[dbname]
    for suffix in _PROJECT_SUFFIXES:
        if dbname.endswith(suffix) and len(dbname) > len(suffix):
            return dbname[: -len(suffix)].replace("_", "-")
    return None


def open_dump(path: Path) -> tuple[BinaryIO, Callable[[], Any] | None]:
    """(raw file, decompressor factory or None for plain XML), chosen by magic bytes."""
    path = Path(path)
    if not path.is_file():
        raise DumpError(f"{path}: dump not found (no such file)")
    raw = open(path, "rb")
    magic = raw.read(3)
    raw.seek(0)
    if magic == b"BZh":
        return raw, bz2.BZ2Decompressor
    if magic[:2] == b"\x1f\x8b":
        return raw, lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)
    return raw, None


def check_encoding(head: bytes, path: Path) -> None:
    """Refuse encodings expat cannot read, saying what the file is and how to convert it."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise DumpError(
            f"{path}: the XML is UTF-32 (byte-order mark at byte 0), which the reader does not "
            f"support; convert it to UTF-8 first, e.g. "
            f"bzcat {path.name} | iconv -f UTF-32 -t UTF-8 | bzip2 > converted.xml.bz2")


class _PageHandler:
    """expat callbacks that collect siteinfo and complete pages into `self.pages`."""

    _PAGE_FIELDS = {"title", "ns", "id"}

    def __init__(self, position: Callable[[], int] = lambda: -1, source: str = "",
                 offset_note: str = "") -> None:
        self.position = position                 # byte offset in the XML, for naming pages
        self.source, self.offset_note = source, offset_note
        self.pages: list[RawPage] = []
        self.site: SiteInfo | None = None
        self.current_title: str | None = None    # for error messages
        self._stack: list[str] = []
        self._capture: list[str] | None = None
        self._fields: dict[str, str] = {}
        self._site_fields: dict[str, str] = {}
        self._namespaces: dict[int, str] = {}
        self._ns_key: int | None = None
        self._lang: str | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else None
        self._stack.append(name)
        if parent == "page" and name in self._PAGE_FIELDS:
            self._capture = []
        elif parent == "revision" and name == "text":
            self._capture = []
            if "deleted" in attrs:
                self._fields["text_deleted"] = attrs["deleted"]
        elif name == "page":
            self._finish_siteinfo()
            self._fields = {"offset": str(self.position())}
        elif parent == "page" and name == "redirect":
            self._fields["redirect"] = attrs.get("title")
        elif parent == "siteinfo" and name in ("dbname", "case"):
            self._capture = []
        elif parent == "namespaces" and name == "namespace":
            self._ns_key = int(attrs.get("key", "0"))
            self._capture = []
        elif name == "mediawiki":
            self._lang = attrs.get("xml:lang")

    def data(self, text: str) -> None:
        if self._capture is not None:
            self._capture.append(text)

    def end(self, name: str) -> None:
        self._stack.pop()
        parent = self._stack[-1] if self._stack else None
        if self._capture is not None:
            value = "".join(self._capture)
            self._capture = None
            if parent == "page":
                self._fields[name] = value
                if name == "title":
                    self.current_title = value
            elif parent == "revision":
                self._fields["text"] = value
            elif parent == "siteinfo":
                self._site_fields[name] = value
            elif name == "namespace":
                self._namespaces[self._ns_key] = value
        elif name == "page":
            self.pages.append(self._page_from_fields())
        elif name == "siteinfo":
            self._finish_siteinfo()

    def _page_from_fields(self) -> RawPage:
        f = self._fields
        page_id, ns = _integer(f.get("id")), _integer(f.get("ns"))
        kind, what = _malformation(f, page_id, ns)
        page = RawPage(id=page_id if page_id is not None else -1, title=f.get("title", ""),
                       ns=ns if ns is not None else 0, text=f.get("text", ""),
                       redirect=f.get("redirect"))
        if not kind:
            return page
        where = (f"page id {page_id}" if page_id is not None
                 else f"the page at byte {f['offset']} of the decompressed XML{self.offset_note}")
        title = f" ({f['title']!r})" if f.get("title") else ""
        return dataclasses.replace(page, malformed=kind,
                                   problem=f"{self.source}: {where}{title}: {what}")

    def _finish_siteinfo(self) -> None:
        if self.site is not None:
            return
        if not self._site_fields and not self._namespaces:
            self.site = SiteInfo.default()
            if self._lang:
                self.site = dataclasses.replace(self.site, language=self._lang,
                                                language_from_dump=True)
            return
        dbname = self._site_fields.get("dbname", "")
        language = language_of_dbname(dbname) or self._lang
        self.site = SiteInfo(dbname=dbname, language=language or "en",
                             case=self._site_fields.get("case", "first-letter"),
                             namespaces=dict(self._namespaces), from_dump=True,
                             language_from_dump=language is not None)


def _integer(value: str | None) -> int | None:
    """An XML integer field, None when absent or not an integer."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _malformation(fields: dict[str, str], page_id: int | None, ns: int | None
                  ) -> tuple[str, str]:
    """(kind, what is wrong) of a page's fields, ("", "") for a sound page."""
    if "title" not in fields:
        return "no_title", "no <title>"
    if "ns" not in fields:
        return "no_ns", "no <ns>"
    if ns is None:
        return "bad_ns", f"<ns> {fields['ns']!r} is not an integer"
    if page_id is None:
        return "bad_id", ("no <id>" if "id" not in fields
                          else f"<id> {fields['id']!r} is not an integer")
    if "redirect" in fields and not fields["redirect"]:
        return "redirect_without_title", "<redirect> without a title"
    if "text_deleted" in fields:
        return "no_text", "its <text> is deleted"
    if "text" not in fields:
        return "no_text", "no <text>"
    return "", ""


class XmlPageParser:
    """Feed bytes, get complete pages; errors name `source` and the byte offset."""

    def __init__(self, source: str, base_offset: int = 0, offset_note: str = "") -> None:
        self.source = source
        self.base_offset = base_offset
        self.offset_note = offset_note
        self.handler = _PageHandler(lambda: self.xml_offset, source, offset_note)
        self.truncated = False
        self._parser = expat.ParserCreate()
        self._parser.buffer_text = True
        self._parser.buffer_size = 1 << 16
        self._parser.StartElementHandler = self.handler.start
        self._parser.EndElementHandler = self.handler.end
        self._parser.CharacterDataHandler = self.handler.data

    @property
    def xml_offset(self) -> int:
        return self.base_offset + max(self._parser.CurrentByteIndex, 0)

    def feed(self, data: bytes, final: bool = False) -> list[RawPage]:
        """Parse `data`; return the pages completed by it."""
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as error:
            if final and error.code in _EARLY_END_ERRORS:
                self.truncated = True       # the document stopped inside an element
            else:
                raise DumpError(self._describe(error)) from None
        pages, self.handler.pages = self.handler.pages, []
        return pages

    def _describe(self, error: expat.ExpatError) -> str:
        where = f"page {self.handler.current_title!r}" if self.handler.current_title else "header"
        return (f"{self.source}: malformed XML at byte {self.xml_offset} of the decompressed "
                f"XML{self.offset_note} (line {error.lineno}, column {error.offset}, "
                f"after {where}): {expat.errors.messages[error.code]}")


class DumpReader:
    """Iterate the pages of one dump file; `site`, `truncated` and progress counters on the side.

    `on_progress(compressed_bytes_read, xml_bytes_read)` is called after every chunk.
    """

    def __init__(self, path: Path, on_progress: Callable[[int, int], None] | None = None) -> None:
        self.path = Path(path)
        self.on_progress = on_progress
        self.size = self.path.stat().st_size if self.path.is_file() else 0
        self.site: SiteInfo | None = None
        self.truncated = False
        self.truncation: str = ""
        self.xml_bytes = 0
        self.pages_read = 0

    def __iter__(self) -> Iterator[RawPage]:
        raw, new_decompressor = open_dump(self.path)
        chunks = self._chunks(raw, new_decompressor)
        with raw, contextlib.closing(chunks):      # the reading thread stops before the file
            parser = XmlPageParser(str(self.path))
            for chunk, input_pos in chunks:
                if self.xml_bytes == 0:
                    check_encoding(chunk, self.path)
                self.xml_bytes += len(chunk)
                yield from self._pages(parser, parser.feed(chunk))
                if self.on_progress:
                    self.on_progress(input_pos, self.xml_bytes)
            yield from self._pages(parser, parser.feed(b"", final=True))
            if parser.truncated and not self.truncated:
                self._mark_truncated(f"the XML ends inside an element at byte {self.xml_bytes}")
            if self.site is None:
                self.site = parser.handler.site or SiteInfo.default()

    def _pages(self, parser: XmlPageParser, pages: list[RawPage]) -> Iterator[RawPage]:
        if self.site is None and parser.handler.site is not None:
            self.site = parser.handler.site
        for page in pages:
            self.pages_read += 1
            yield page

    def _chunks(self, raw: BinaryIO, new_decompressor: Callable[[], Any] | None
                ) -> Iterator[tuple[bytes, int]]:
        """(XML bytes, input bytes consumed so far). Decompression runs in a thread: bz2 and
        zlib release the GIL, so it overlaps with the XML parsing and task dispatch here."""
        if new_decompressor is None:
            while block := raw.read(CHUNK_BYTES):
                yield block, raw.tell()
            return
        for xml, input_pos in in_thread(decompressed(raw, new_decompressor, self.path)):
            if xml is None:
                self._mark_truncated(f"the compressed data ends early (at byte {input_pos} of "
                                     f"{self.size}, after {self.xml_bytes} bytes of XML)")
            else:
                yield xml, input_pos

    def _mark_truncated(self, how: str) -> None:
        self.truncated = True
        self.truncation = (f"{self.path}: input truncated: {how}; "
                           f"{self.pages_read} complete pages kept")


def decompressed(raw: BinaryIO, new_decompressor: Callable[[], Any], path: Path
                 ) -> Iterator[tuple[bytes | None, int]]:
    """(XML, input position) pairs, then (None, position) if the last stream ends early.

    Streams are decompressed here rather than through BZ2File so that a truncated file still
    gives every complete block before the cut; concatenated streams (multistream files) are
    read one after the other."""
    decompressor, in_stream = new_decompressor(), False
    while block := raw.read(COMPRESSED_CHUNK_BYTES):
        while block:
            try:
                xml = decompressor.decompress(block)
            except (OSError, zlib.error) as error:
                raise DumpError(f"{path}: cannot decompress near byte "
                                f"{raw.tell() - len(block)} of {os.fstat(raw.fileno()).st_size}: "
                                f"{error}") from None
            in_stream = True
            if xml:
                yield xml, raw.tell()
            if not decompressor.eof:
                break
            block = decompressor.unused_data      # the next stream starts here
            decompressor, in_stream = new_decompressor(), False
    if in_stream:
        yield None, raw.tell()


_END = object()


def in_thread(items: Iterator, ahead: int = 4) -> Iterator:
    """The items of a generator produced in a background thread, at most `ahead` in advance;
    its exceptions are raised here. Stopping early stops the thread."""
    handoff: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                hand_over(item)
                if stop.is_set():
                    return
            hand_over(_END)
        except BaseException as error:      # raised again in the consuming thread
            hand_over(error)

    thread = threading.Thread(target=produce, name="dump-decompressor", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def read_siteinfo(path: Path) -> SiteInfo:
    """The SiteInfo of a dump, reading only up to its first page."""
    reader = DumpReader(path)
    for _ in reader:
        break
    return reader.site or SiteInfo.default()


def decoded_xml(path: Path) -> str:
    """The whole XML of a small dump as text (UTF-8, or UTF-16 with a byte-order mark): for
    tools that rewrite a sample, never for a real dump."""
    path = Path(path)
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    with opener(path, "rb") as stream:
        data = stream.read()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    return data.decode("utf-8")


def iter_pages(path: Path) -> Iterable[RawPage]:
    """Every page of the dump, in dump order (convenience for tools and tests)."""
    return DumpReader(path)


