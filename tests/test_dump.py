"""The dump reader (corpus/dump.py) and multistream reading (corpus/multistream.py) on the real
samples: siteinfo and namespaces, UTF-16, multistream = plain, and every bad-input case.

Also holds the small dump writers the other corpus tests use (`write_dump`, `write_multistream`)
and a worker task that crashes (`crash_on_page_crash`)."""

from __future__ import annotations

import bz2
import os
import tracemalloc
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from corpus import multistream as corpus_multistream
from corpus.dump import DumpError, DumpReader, RawPage, language_of_dbname, read_siteinfo
from corpus.multistream import (find_index, ordered_stream_offsets, read_header_site,
                                read_stream_offsets, read_stream_pages, stream_ranges)

DATA = Path(__file__).parent / "data"
EN_DUMP = DATA / "enwiki-sample-5-articles.xml.bz2"
BG_DUMP = DATA / "bgwiki-sample-utf16.xml.bz2"

EN_SITEINFO = """  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>enwiki</dbname>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="4" case="first-letter">Wikipedia</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""


def page_xml(title: str, text: str, page_id: int, ns: int = 0, redirect: str | None = None) -> str:
    redirect_tag = f"    <redirect title={quoteattr(redirect)} />\n" if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n"
            f"    <id>{page_id}</id>\n{redirect_tag}    <revision>\n"
            f"      <id>{page_id + 1000}</id>\n"
            f"      <text xml:space=\"preserve\">{escape(text)}</text>\n"
            f"    </revision>\n  </page>\n")


def dump_xml(pages: list[dict], siteinfo: bool = True, dbname: str = "enwiki") -> str:
    """A complete dump document of wiki `dbname` (its siteinfo English's but for the dbname);
    each page a dict of page_xml's arguments."""
    language = language_of_dbname(dbname)
    head = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" '
            f'xml:lang="{language}">\n')
    body = "".join(page_xml(**p) for p in pages)
    site = EN_SITEINFO.replace("<dbname>enwiki</dbname>", f"<dbname>{dbname}</dbname>")
    return head + (site if siteinfo else "") + body + "</mediawiki>\n"


def write_dump(path: Path, pages: list[dict], siteinfo: bool = True, dbname: str = "enwiki"
               ) -> Path:
    """A tiny dump file; bz2-compressed when the name ends in .bz2."""
    data = dump_xml(pages, siteinfo, dbname).encode("utf-8")
    path.write_bytes(bz2.compress(data) if path.suffix == ".bz2" else data)
    return path


def write_multistream(source: Path, out_dir: Path, pages_per_stream: int = 2
                      ) -> tuple[Path, Path]:
    """A multistream file + index made from a plain bz2 dump (corpus.multistream's writer)."""
    dump = out_dir / "wiki-multistream.xml.bz2"
    xml = bz2.open(source).read().decode("utf-8")
    return dump, corpus_multistream.write_multistream(xml, dump, pages_per_stream)


def crash_on_page_crash(titles, skip=frozenset(), watch=None):
    """A worker task (for test_workers's watchdog test) that kills its process on the page titled
    "Crash". It lives here because worker processes import its module, and this one is light."""
    from corpus.pages_stage import ChunkResult
    result = ChunkResult()
    for index, title in enumerate(titles):
        if index not in skip:
            watch.begin(index, RawPage(id=index, title=title, ns=0, text=""))
            if title == "Crash":
                os._exit(3)
            result.rows.append(title)
    return result


def read_all(path: Path) -> tuple[list[RawPage], DumpReader]:
    reader = DumpReader(path)
    return list(reader), reader


# --- siteinfo and namespaces ------------------------------------------------------------------

def test_bulgarian_utf16_sample_is_read_with_its_siteinfo():
    pages, reader = read_all(BG_DUMP)
    assert [(p.title, p.ns) for p in pages] == [
        ("Григориански календар", 0),
        ("Уикипедия:Редактиране на страници", 4),
        ("Уикипедия:Разговори/Архив/2005/октомври-ноември-декември", 4)]
    assert pages[0].text.startswith("[[File:Gregory XIII.jpg|thumb|[[Папа]]")
    site = reader.site
    assert (site.dbname, site.language, site.case, site.from_dump) == \
        ("bgwiki", "bg", "first-letter", True)
    assert site.namespaces[14] == "Категория" and site.namespaces[4] == "Уикипедия"
    assert site.namespace_ids()["категория"] == 14
    assert not reader.truncated


def test_fragment_without_siteinfo_falls_back_to_mediawiki_defaults():
    pages, reader = read_all(EN_DUMP)
    assert len(pages) == 5 and all(p.ns == 0 and p.redirect is None for p in pages)
    assert pages[0].title == "Constructive vote of no confidence" and pages[0].id == 217916
    assert not reader.site.from_dump and reader.site.language == "en"
    assert reader.site.namespaces[14] == "Category"


def test_siteinfo_of_a_written_dump_and_languages_of_dbnames(tmp_path):
    dump = write_dump(tmp_path / "d.xml", [dict(title="A", text="x", page_id=1)])
    site = read_siteinfo(dump)
    assert site.dbname == "enwiki" and site.language == "en" and site.namespaces[4] == "Wikipedia"
    assert [language_of_dbname(n) for n in ("bgwiki", "zh_yuewiki", "simplewiki", "dewiktionary",
                                            "be_x_oldwiki", "nonsense")] == \
        ["bg", "yue", "en", "de", "be-tarask", None]


def test_redirect_element_and_plain_xml_are_read(tmp_path):
    dump = write_dump(tmp_path / "d.xml", [
        dict(title="USA", text="#REDIRECT [[United States]]", page_id=1,
             redirect="United States"),
        dict(title="Talk:USA", text="hi", page_id=2, ns=1)])
    pages, _ = read_all(dump)
    assert pages[0].redirect == "United States" and pages[1].ns == 1 and pages[1].redirect is None


# --- malformed pages --------------------------------------------------------------------------

REVISION = "<revision><id>1</id><text>Some [[text]].</text></revision>"
# (page XML, kind, what the message says of it) for every kind of malformed page
MALFORMED_PAGES = [
    (f"<page><ns>0</ns><id>11</id>{REVISION}</page>", "no_title", "page id 11: no <title>"),
    (f"<page><title>NoNs</title><id>12</id>{REVISION}</page>", "no_ns",
     "page id 12 ('NoNs'): no <ns>"),
    (f"<page><title>BadNs</title><ns>zero</ns><id>13</id>{REVISION}</page>", "bad_ns",
     "page id 13 ('BadNs'): <ns> 'zero' is not an integer"),
    (f"<page><title>BadId</title><ns>0</ns><id>x7</id>{REVISION}</page>", "bad_id",
     "('BadId'): <id> 'x7' is not an integer"),
    ("<page><title>NoText</title><ns>0</ns><id>15</id><revision><id>1</id></revision></page>",
     "no_text", "page id 15 ('NoText'): no <text>"),
    ('<page><title>Deleted</title><ns>0</ns><id>16</id><revision><id>1</id>'
     '<text deleted="deleted" /></revision></page>', "no_text",
     "page id 16 ('Deleted'): its <text> is deleted"),
    (f"<page><title>Nowhere</title><ns>0</ns><id>17</id><redirect />{REVISION}</page>",
     "redirect_without_title", "page id 17 ('Nowhere'): <redirect> without a title"),
]


def write_dump_with_malformed_pages(path: Path) -> Path:
    """A dump: a good article, every malformed page of MALFORMED_PAGES, another good article."""
    xml = dump_xml([dict(title="Good", text="A [[link]].", page_id=1),
                    dict(title="Also good", text="More [[Good|text]].", page_id=2)])
    first_end = xml.index("</page>") + len("</page>\n")
    xml = xml[:first_end] + "".join(f"  {page}\n" for page, _, _ in MALFORMED_PAGES) + \
        xml[first_end:]
    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def test_malformed_pages_are_read_with_their_kind_and_where(tmp_path):
    dump = write_dump_with_malformed_pages(tmp_path / "m.xml.bz2")
    pages, _ = read_all(dump)
    assert [p.title for p in pages if not p.malformed] == ["Good", "Also good"]
    malformed = [p for p in pages if p.malformed]
    assert [p.malformed for p in malformed] == [kind for _, kind, _ in MALFORMED_PAGES]
    for page, (_, _, what) in zip(malformed, MALFORMED_PAGES):
        assert page.problem.startswith(f"{dump}: ") and page.problem.endswith(what)
    # without an id, the page is named by where it starts in the XML
    offset = bz2.open(dump).read().index(b"<page><title>BadId")
    assert f"the page at byte {offset} of the decompressed XML" in malformed[3].problem


def test_malformed_pages_of_a_multistream_dump_name_their_stream(tmp_path):
    plain = write_dump_with_malformed_pages(tmp_path / "m.xml.bz2")
    dump, index = write_multistream(plain, tmp_path, pages_per_stream=3)
    pages = [page for start, end in stream_ranges(read_stream_offsets(index),
                                                  dump.stat().st_size)
             for page in read_stream_pages(dump, start, end).pages]
    assert [p.malformed for p in pages] == [p.malformed for p in read_all(plain)[0]]
    bad_id = next(p for p in pages if p.malformed == "bad_id")
    assert "of the decompressed XML of the bz2 stream starting at byte" in bad_id.problem


# --- encodings --------------------------------------------------------------------------------

def test_utf16_without_compression_reads_the_same_pages(tmp_path):
    plain = tmp_path / "bg.xml"
    plain.write_bytes(bz2.open(BG_DUMP).read())
    assert [p.text for p in read_all(plain)[0]] == [p.text for p in read_all(BG_DUMP)[0]]


def test_utf32_is_refused_with_a_conversion_hint(tmp_path):
    dump = tmp_path / "d.xml"
    dump.write_bytes(dump_xml([dict(title="A", text="x", page_id=1)]).encode("utf-32"))
    with pytest.raises(DumpError, match=r"d\.xml: the XML is UTF-32.*iconv -f UTF-32 -t UTF-8"):
        read_all(dump)


# --- multistream ------------------------------------------------------------------------------

def test_multistream_reading_equals_plain_reading(tmp_path):
    dump, index = write_multistream(EN_DUMP, tmp_path)
    assert find_index(dump) == index
    offsets = read_stream_offsets(index)
    ranges = stream_ranges(offsets, dump.stat().st_size)
    assert len(ranges) == 3                       # 5 pages, 2 per stream
    streamed = [p for start, end in ranges for p in read_stream_pages(dump, start, end).pages]
    assert streamed == read_all(EN_DUMP)[0]
    assert read_all(dump)[0] == streamed          # bz2 reads the concatenated streams as one
    assert read_header_site(dump).namespaces[14] == "Category"


def test_index_titles_may_contain_colons(tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("600:10:Star Wars: Episode IV – A New Hope\n600:11:A:B:C\n"
                     "1200:12:Plain\n")
    assert read_stream_offsets(index) == [600, 1200]
    assert stream_ranges([600, 1200, 5000], 3000) == [(600, 1200), (1200, 3000)]


def test_bad_index_line_is_named(tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("600:10:A\nnot an index line\n")
    with pytest.raises(DumpError, match=r"index\.txt: line 2 is not 'offset:page_id:title'"):
        read_stream_offsets(index)


# --- bad input --------------------------------------------------------------------------------

def _recompressed_in_small_blocks(tmp_path: Path) -> bytes:
    """The English sample in 100 kB bz2 blocks, so a cut file still holds whole blocks."""
    return bz2.compress(bz2.open(EN_DUMP).read(), compresslevel=1)


def test_truncated_bz2_keeps_complete_pages_and_says_where(tmp_path):
    data = _recompressed_in_small_blocks(tmp_path)
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    pages, reader = read_all(cut)
    assert reader.truncated
    assert 1 <= len(pages) < 5
    assert pages == read_all(EN_DUMP)[0][: len(pages)]    # complete pages, unchanged
    assert "cut.xml.bz2: input truncated: the compressed data ends early (at byte" in \
        reader.truncation and f"{len(pages)} complete pages kept" in reader.truncation


def test_plain_xml_cut_mid_page_is_truncated_not_malformed(tmp_path):
    xml = bz2.open(EN_DUMP).read()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(xml[: xml.index(b"<title>Economy of Estonia") + 10])
    pages, reader = read_all(cut)
    assert reader.truncated and len(pages) == 3
    assert "the XML ends inside an element" in reader.truncation


def test_malformed_xml_names_file_byte_offset_and_page(tmp_path):
    xml = bz2.open(EN_DUMP).read()
    broken = xml.replace(b"</title>\n    <ns>0</ns>\n    <id>9391", b"</titel>\n    <ns>0</ns>"
                                                                   b"\n    <id>9391", 1)
    assert broken != xml
    dump = tmp_path / "broken.xml.bz2"
    dump.write_bytes(bz2.compress(broken))
    with pytest.raises(DumpError) as caught:
        read_all(dump)
    message = str(caught.value)
    assert "broken.xml.bz2: malformed XML at byte" in message
    assert "after page 'Academy Award for Best Production Design'): mismatched tag" in message
    offset = int(message.split("at byte ")[1].split()[0])
    assert broken.index(b"</titel>") <= offset <= broken.index(b"</titel>") + 10


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DumpError, match=r"nope\.xml\.bz2: dump not found"):
        read_all(tmp_path / "nope.xml.bz2")


def test_corrupt_bz2_data_is_named(tmp_path):
    data = bytearray(bz2.compress(bz2.open(EN_DUMP).read()))
    data[5000:5100] = bytes(100)
    dump = tmp_path / "corrupt.xml.bz2"
    dump.write_bytes(bytes(data))
    with pytest.raises(DumpError, match=r"corrupt\.xml\.bz2: cannot decompress near byte"):
        read_all(dump)


# --- memory -----------------------------------------------------------------------------------

def test_memory_stays_flat_over_a_large_dump(tmp_path):
    """40 MB of XML read while holding well under one chunk's worth of Python objects per MB."""
    text = "Some article text with a [[Link]]. " * 60
    dump = tmp_path / "big.xml"
    with open(dump, "w", encoding="utf-8") as out:
        out.write(dump_xml([], siteinfo=True).replace("</mediawiki>\n", ""))
        for i in range(20_000):
            out.write(page_xml(f"Page {i}", text, i + 1))
        out.write("</mediawiki>\n")
    size = dump.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in DumpReader(dump))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20_000 and size > 40_000_000
    assert peak < 8_000_000, f"peak {peak} bytes while reading {size} bytes"


def test_gzip_dump_reads_the_same_pages(tmp_path):
    import gzip
    dump = tmp_path / "en.xml.gz"
    dump.write_bytes(gzip.compress(bz2.open(EN_DUMP).read()))
    assert read_all(dump)[0] == read_all(EN_DUMP)[0]


def test_utf16_multistream_is_refused_with_a_conversion_hint(tmp_path):
    header = bz2.compress(dump_xml([]).replace("</mediawiki>\n", "").encode("utf-16"))
    dump = tmp_path / "wide-multistream.xml.bz2"
    dump.write_bytes(header + bz2.compress("</mediawiki>\n".encode("utf-16-le")))
    with pytest.raises(DumpError, match=r"UTF-16 multistream dump cannot be read stream by "
                                        r"stream; convert it to UTF-8 \(bzcat \| iconv"):
        read_header_site(dump)


def test_stopping_early_stops_the_decompressing_thread():
    import threading
    before = threading.active_count()
    for _ in range(5):
        assert read_siteinfo(BG_DUMP).dbname == "bgwiki"     # reads up to the first page only
    reader = iter(DumpReader(EN_DUMP))
    next(reader)
    reader.close()
    assert threading.active_count() == before


def test_index_offsets_are_read_in_blocks_with_blank_lines_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_multistream, "INDEX_BLOCK_BYTES", 16)   # lines across blocks
    index = tmp_path / "index.txt.bz2"
    lines = "".join(f"{600 * (n // 3)}:{n}:Title {n}: part\n" for n in range(40))
    index.write_bytes(bz2.compress((lines + "\n  \n" + lines).encode()))
    assert read_stream_offsets(index) == [600 * k for k in range(14)]
    index.write_bytes(bz2.compress((lines + "\n12x:1:Bad\n").encode()))
    with pytest.raises(DumpError, match=r"line 42 is not 'offset:page_id:title': '12x:1:Bad'"):
        read_stream_offsets(index)


def test_index_blocks_start_small_and_double(tmp_path, monkeypatch):
    """The workers wait for the first block only: it is small, and the next ones grow."""
    monkeypatch.setattr(corpus_multistream, "FIRST_INDEX_BLOCK_BYTES", 64)
    monkeypatch.setattr(corpus_multistream, "INDEX_BLOCK_BYTES", 256)
    index = tmp_path / "index.txt"
    index.write_text("".join(f"{n:07d}:1:Title\n" for n in range(100)))   # 16 bytes a line
    sizes = [len(block) for block in corpus_multistream._index_blocks(index)]
    assert sizes == [4, 8, 16, 16, 16, 16, 16, 8, 0]
    assert list(ordered_stream_offsets(index)) == list(range(100))


def test_index_offsets_come_in_the_indexs_order_as_its_blocks_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_multistream, "INDEX_BLOCK_BYTES", 16)   # lines across blocks
    index = tmp_path / "index.txt"
    lines = "".join(f"{600 * (n // 3)}:{n}:Title {n}\n" for n in range(12))
    # a stream listed again, later, is passed over
    index.write_text(lines + "\n600:99:Again\n" + lines)
    assert list(ordered_stream_offsets(index)) == [0, 600, 1200, 1800]
    offsets = ordered_stream_offsets(index)
    assert next(offsets) == 0           # before the rest of the index is read
    index.write_text(lines + "900:50:Between\n")   # a stream that would be read out of order
    with pytest.raises(DumpError, match=r"index\.txt: stream offset 900 is listed after larger "
                                        r"ones: the index is not in the dump's order"):
        list(ordered_stream_offsets(index))
    index.write_text("\n\n")
    with pytest.raises(DumpError, match=r"index\.txt: the multistream index is empty"):
        list(ordered_stream_offsets(index))
