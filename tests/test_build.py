"""The build driver and CLI (corpus/build.py, corpus/cli.py) with the pages stage: `--until`,
skip on rerun, the same pages from 1 and 2 workers and from a multistream file, pages the
parser chokes on, and every bad-input case (missing file, malformed XML, truncated dump, an
out dir holding another build, an interrupted stage)."""

from __future__ import annotations

import bz2
import dataclasses
import json
import logging

import datasets
import pytest

import corpus.examples_stage as examples_stage
import corpus.link_resolution
import corpus.pages_stage as pages_stage
import corpus.wikitext
import corpus.workers
from corpus import languages
from corpus.build import build
from corpus.cli import BUILD_FLAGS, INTERRUPTED_BUILD, main
from corpus.dump import MALFORMED_KINDS, DumpReader
from corpus.options import BuildOptions
from corpus.quality import corpus_stats
from corpus.siteinfo import SiteInfo
from test_dump import (BG_DUMP, EN_DUMP, MALFORMED_PAGES, write_dump,
                       write_dump_with_malformed_pages, write_multistream)


def run_cli(capsys, *args) -> tuple[int, str]:
    """Exit code and stderr of `luke-corpus ARGS`."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def manifest_of(out) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("luke-corpus: error")]


def assert_nothing_looks_built(out) -> None:
    assert not (out / "pages").exists() and not (out / "redirects.tsv").exists()
    assert not list(out.glob(".staging-*"))
    assert "pages" not in manifest_of(out)["stages"]


# --- stages, skipping, refusal ----------------------------------------------------------------

def test_until_and_skip_on_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "pages",
                        "--partial-dump")
    assert code == 0 and list(manifest_of(out)["stages"]) == ["pages"]
    assert "pages         ran in" in err and "entity_vocab  not built" in err
    pages_section = manifest_of(out)["stages"]["pages"]
    arrow = sorted((out / "pages").glob("*.arrow"))[0]
    mtime = arrow.stat().st_mtime_ns

    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "entity_vocab",
                        "--partial-dump")
    assert code == 0 and "pages         up to date, skipped" in err
    assert "entity_vocab  ran in" in err
    stages = manifest_of(out)["stages"]
    assert stages["pages"] == pages_section and arrow.stat().st_mtime_ns == mtime
    assert stages["entity_vocab"]["upstream"] == {"pages": pages_section["fingerprint"]}

    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "entity_vocab",
                        "--partial-dump")
    assert code == 0 and err.count("up to date, skipped") == 2


def test_other_options_are_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "entity_vocab")[0] == 0
    first = manifest_of(out)["stages"]

    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "entity_vocab",
                        "--entity-vocab-size", "100")
    assert code == 1 and len(error_lines(err)) == 1
    assert "holds a different build (stage entity_vocab: entity_vocab_size was 500000, now " \
           "100); pass --overwrite" in err

    code, err = run_cli(capsys, "build", BG_DUMP, "--out", out, "--until", "pages")
    assert code == 1 and "dumps was" in err and manifest_of(out)["stages"] == first

    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "entity_vocab",
                        "--entity-vocab-size", "100", "--overwrite")
    stages = manifest_of(out)["stages"]
    assert code == 0 and stages["pages"] == first["pages"]        # only the vocabulary redone
    assert stages["entity_vocab"]["options"]["entity_vocab_size"] == 100


def test_a_non_empty_foreign_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out)
    assert code == 1 and "is not empty and holds no luke-corpus build (thesis.tex" in err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_a_changed_dump_file_is_a_different_build(tmp_path, capsys):
    dump = write_dump(tmp_path / "d.xml", [dict(title="A", text="[[B]]", page_id=1)])
    out = tmp_path / "out"
    assert run_cli(capsys, "build", dump, "--out", out, "--until", "pages")[0] == 0
    write_dump(dump, [dict(title="A", text="[[C]] and more", page_id=1)])
    code, err = run_cli(capsys, "build", dump, "--out", out, "--until", "pages")
    assert code == 1 and "changed since stage pages read it" in err
    assert run_cli(capsys, "build", dump, "--out", out, "--until", "pages", "--overwrite")[0] == 0
    pages = datasets.load_from_disk(str(out / "pages"))
    assert pages[0]["link_target"] == ["C"]


# --- the wiki's language -----------------------------------------------------------------------

ZH_DUMP = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="zh">
  <siteinfo><dbname>zhwiki</dbname><case>first-letter</case><namespaces>
    <namespace key="0" case="first-letter" />
    <namespace key="6" case="first-letter">File</namespace>
    <namespace key="14" case="first-letter">Category</namespace>
  </namespaces></siteinfo>
  <page><title>東京</title><ns>0</ns><id>1</id><revision><id>9</id><text>[[日本]]首都是[[東京]]都。
用-{zh-hans:计算机;zh-hant:電腦;}-和[[电脑|-{zh-hans:计算机;zh-hant:電腦}-]]。
[[分类:日本]][[文件:X.jpg|缩略图|说明]]</text></revision></page>
</mediawiki>
"""


def test_a_chinese_dump_in_its_language_and_variant(tmp_path, capsys):
    dump = tmp_path / "zhwiki.xml"
    dump.write_text(ZH_DUMP, encoding="utf-8")
    out = tmp_path / "o"
    assert run_cli(capsys, "build", dump, "--out", out, "--until", "pages")[0] == 0
    section = manifest_of(out)["stages"]["pages"]["languages"][0]
    assert section["language_rules"] == {"language": "zh", "variant": "zh",
                                         "link_trail": "/^()(.*)$/sD",
                                         "mediawiki": languages.mediawiki_version()}
    page = datasets.load_from_disk(str(out / "pages"))[0]
    assert page["text"] == "日本首都是東京都。 用计算机和计算机。"
    anchors = [page["text"][s:e] for s, e in zip(page["link_start"], page["link_end"])]
    assert anchors == ["日本", "東京", "计算机"]
    (chinese,) = corpus_stats(out)["languages"]      # what inspect --stats reports
    assert (chinese["language"], chinese["links"], chinese["link_spans_on_anchor"],
            chinese["link_spans_trailed"], chinese["markup_per_mb"]) == ("zh", 3, 1.0, 0.0, 0)

    # another variant or language is another build: refused unless --overwrite, then rebuilt
    code, err = run_cli(capsys, "build", dump, "--out", out, "--until", "pages",
                        "--variant", "zh-tw")
    assert code == 1 and "stage pages: variant was None, now 'zh-tw'" in err
    assert run_cli(capsys, "build", dump, "--out", out, "--until", "pages", "--variant",
                   "zh-tw", "--overwrite")[0] == 0
    page = datasets.load_from_disk(str(out / "pages"))[0]
    assert page["text"] == "日本首都是東京都。 用電腦和電腦。"
    code, err = run_cli(capsys, "build", dump, "--out", out, "--until", "pages",
                        "--variant", "zh-tw", "--language", "en", "--overwrite")
    assert code == 1 and len(error_lines(err)) == 1
    assert "--variant zh-tw: the wiki's language 'en' has no variants" in err


def test_language_option_overrides_the_dumps_for_the_parsing_rules(tmp_path, capsys, caplog):
    caplog.set_level(logging.WARNING)
    dump = write_dump(tmp_path / "d.xml", [dict(title="Haus", text="[[Mutter]]ärzte",
                                               page_id=1)])
    spans = {}
    for language in ("de", "en", "xx"):
        out = tmp_path / language
        assert run_cli(capsys, "build", dump, "--out", out, "--until", "pages", "--language",
                       language)[0] == 0
        page = datasets.load_from_disk(str(out / "pages"))[0]
        spans[language] = [page["text"][s:e] for s, e in zip(page["link_start"],
                                                           page["link_end"])]
        assert manifest_of(out)["stages"]["pages"]["options"]["language"] == [language]
    assert spans == {"de": ["Mutterärzte"], "en": ["Mutter"], "xx": ["Mutter"]}
    assert "language 'xx' is not one MediaWiki knows; its English rules apply" in caplog.text


def test_an_unknown_variant_is_one_line_naming_the_choices(tmp_path, capsys):
    dump = tmp_path / "zhwiki.xml"
    dump.write_text(ZH_DUMP, encoding="utf-8")
    code, err = run_cli(capsys, "build", dump, "--out", tmp_path / "o", "--variant", "zh-xx")
    assert code == 1 and len(error_lines(err)) == 1
    assert "--variant zh-xx: not a variant of 'zh' (variants: zh, zh-hans, zh-hant" in err
    assert_nothing_looks_built(tmp_path / "o")


# --- workers and multistream ------------------------------------------------------------------

def test_same_pages_with_one_and_two_workers_and_from_multistream(tmp_path, monkeypatch):
    monkeypatch.setattr(pages_stage, "CHUNK_WIKITEXT_CHARS", 1)    # one task per article
    monkeypatch.setattr(pages_stage, "INLINE_LINK_RESOLUTION_BYTES", 0)   # links in workers too
    one = build(BuildOptions(dumps=(EN_DUMP,), out=tmp_path / "one", workers=1), until="pages")
    two = build(BuildOptions(dumps=(EN_DUMP,), out=tmp_path / "two", workers=2), until="pages")
    multi_dump, index = write_multistream(EN_DUMP, tmp_path)
    multi = build(BuildOptions(dumps=(multi_dump,), out=tmp_path / "multi", workers=2),
                  until="pages")
    prints = [m["stages"]["pages"]["fingerprint"] for m in (one, two, multi)]
    assert prints[0] == prints[1] == prints[2]
    assert multi["stages"]["pages"]["languages"][0]["index"] == str(index)   # beside the dump
    rows = [datasets.load_from_disk(str(tmp_path / d / "pages")).to_list()
            for d in ("one", "multi")]
    assert rows[0] == rows[1] and len(rows[0]) == 5
    for name in ("articles", "links", "link_targets_missing"):
        assert one["stages"]["pages"]["counts"][name] == multi["stages"]["pages"]["counts"][name]


def test_the_pages_files_depend_on_the_pages_alone(tmp_path, monkeypatch):
    """However the first pass cuts its tasks, the second writes the same files: here one stream
    per task and files of a few pages each, their links resolved by two worker processes,
    against the default cut resolved in the main process (a small dump's)."""
    multi_dump, _ = write_multistream(EN_DUMP, tmp_path)
    whole = build(BuildOptions(dumps=(multi_dump,), out=tmp_path / "whole", workers=2),
                  until="pages")
    monkeypatch.setattr(pages_stage, "TASK_COMPRESSED_BYTES", 1)
    monkeypatch.setattr(corpus.link_resolution, "TARGET_FILE_BYTES", 50_000)
    monkeypatch.setattr(pages_stage, "INLINE_LINK_RESOLUTION_BYTES", 0)
    cut = build(BuildOptions(dumps=(multi_dump,), out=tmp_path / "cut", workers=2), until="pages")
    files = sorted(p.name for p in (tmp_path / "cut" / "pages").glob("*.arrow"))
    assert len(files) >= 3 and files[0] == f"data-00000-of-{len(files):05d}.arrow"
    rows = [datasets.load_from_disk(str(tmp_path / d / "pages")).to_list()
            for d in ("whole", "cut")]
    assert rows[0] == rows[1] and len(rows[0]) == 5
    assert whole["stages"]["pages"]["counts"] == cut["stages"]["pages"]["counts"]


def test_a_dump_without_an_index_says_first_that_one_process_bounds_it(tmp_path, capsys):
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", tmp_path / "plain", "--until",
                        "pages")
    assert code == 0 and err.splitlines()[0].startswith(
        f"luke-corpus: note: {EN_DUMP}: no multistream index, so one process reads and "
        f"decompresses the whole dump")
    assert "-multistream-index.txt.bz2" in err.splitlines()[0]
    multi_dump, _ = write_multistream(EN_DUMP, tmp_path)
    code, err = run_cli(capsys, "build", multi_dump, "--out", tmp_path / "multi", "--until",
                        "pages")
    assert code == 0 and "no multistream index" not in err


def test_bulgarian_sample_keeps_only_the_article(tmp_path):
    manifest = build(BuildOptions(dumps=(BG_DUMP,), out=tmp_path / "bg"), until="pages")
    pages = datasets.load_from_disk(str(tmp_path / "bg" / "pages"))
    assert pages["title"] == ["Григориански календар"] and pages["id"] == [558]
    section = manifest["stages"]["pages"]["languages"][0]
    assert section["counts"]["other_namespace_pages"] == 2 and section["language"] == "bg"
    assert section["siteinfo"]["dbname"] == "bgwiki"
    text = pages[0]["text"]
    assert "Категория" not in text and "File:" not in text and "[[" not in text
    assert all(text[s:e] for s, e in zip(pages[0]["link_start"], pages[0]["link_end"]))


# --- pages the parser chokes on ---------------------------------------------------------------

def test_parser_exceptions_and_recursion_skip_the_page_not_the_chunk(monkeypatch):
    """The worker task itself, in this process, with a parser that fails on two real pages."""
    real_parse = corpus.wikitext.parse_page

    def choking_parser(wikitext, title, site, **options):
        if title == "Economy of Estonia":
            raise ValueError("unbalanced markup")
        if title == "Brahui language":
            raise RecursionError("maximum recursion depth exceeded")
        return real_parse(wikitext, title, site, **options)

    monkeypatch.setattr(corpus.wikitext, "parse_page", choking_parser)
    pages = list(DumpReader(EN_DUMP))
    result = pages_stage.parse_articles(pages, pages_stage.ParseContext(SiteInfo.default(), 10))
    assert [row[1] for row in result.rows] == [p.title for p in pages[:3]]
    assert result.skipped == [
        (9391, "Economy of Estonia", "exception", "ValueError: unbalanced markup"),
        (4702, "Brahui language", "recursion", "RecursionError")]


def slow_page_dump(tmp_path):
    """Two ordinary articles around one whose 13 MB of wikitext takes over a second to parse
    (the limits below are a tenth of that, the ordinary pages take a millisecond)."""
    return write_dump(tmp_path / "slow.xml", [
        dict(title="Before", text="Ordinary [[text]].", page_id=1),
        dict(title="Huge", text="Some words and a [[Linked page|link]] here. " * 300_000,
             page_id=2),
        dict(title="After", text="More [[text]].", page_id=3)])


def test_a_page_over_the_time_limit_is_skipped_counted_and_named(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    manifest = build(BuildOptions(dumps=(slow_page_dump(tmp_path),), out=tmp_path / "o",
                                  page_timeout=0.1), until="pages")
    section = manifest["stages"]["pages"]
    assert section["counts"]["skipped_timeout"] == 1 and section["counts"]["articles"] == 2
    assert section["skipped_pages"] == [[2, "Huge", "timeout"]]
    assert "skipped page 'Huge' (id 2): timeout: over 0.1 s" in caplog.text


def test_a_dump_without_articles_is_refused_with_its_counts(tmp_path, capsys):
    dump = write_dump(tmp_path / "d.xml", [
        dict(title="USA", text="#REDIRECT [[United States]]", page_id=1,
             redirect="United States"),
        dict(title="Talk:USA", text="Hello", page_id=2, ns=1)])
    code, err = run_cli(capsys, "build", dump, "--out", tmp_path / "o")
    assert code == 1 and len(error_lines(err)) == 1
    assert "d.xml: no article to keep: 1 redirects, 1 pages outside namespace 0, 0 articles " \
           "skipped" in err
    assert_nothing_looks_built(tmp_path / "o")


def test_watchdog_kills_a_worker_stuck_where_the_alarm_cannot_reach(tmp_path, monkeypatch,
                                                                   caplog):
    monkeypatch.setattr(pages_stage, "ALARM_TIMEOUTS", False)   # as inside native code
    monkeypatch.setattr(corpus.workers, "WATCHDOG_GRACE", 0.05)
    monkeypatch.setattr(pages_stage, "CHUNK_WIKITEXT_CHARS", 1)
    caplog.set_level(logging.WARNING)
    manifest = build(BuildOptions(dumps=(slow_page_dump(tmp_path),), out=tmp_path / "o", workers=2,
                                  page_timeout=0.1), until="pages")
    counts = manifest["stages"]["pages"]["counts"]
    assert counts["articles"] == 2 and counts["skipped_timeout"] == 1
    assert datasets.load_from_disk(str(tmp_path / "o" / "pages"))["title"] == ["Before", "After"]
    assert "skipped page 'Huge' (id 2): timeout: stuck over 0.15 s where the alarm could not " \
           "stop it; worker restarted" in caplog.text


# --- malformed pages --------------------------------------------------------------------------

@pytest.mark.parametrize("multistream", [False, True])
def test_malformed_pages_are_skipped_counted_and_named_and_the_build_goes_on(
        tmp_path, capsys, caplog, multistream):
    caplog.set_level(logging.WARNING)
    dump = write_dump_with_malformed_pages(tmp_path / "m.xml.bz2")
    if multistream:
        dump, _ = write_multistream(dump, tmp_path, pages_per_stream=3)
    code, err = run_cli(capsys, "build", dump, "--out", tmp_path / "o", "--until", "pages",
                        "--workers", 2)
    assert code == 0
    section = manifest_of(tmp_path / "o")["stages"]["pages"]
    counts = section["counts"]
    assert counts["articles"] == 2 and counts["malformed_pages"] == len(MALFORMED_PAGES)
    assert {kind: counts[f"malformed_{kind}"] for kind in MALFORMED_KINDS} == {
        "no_title": 1, "no_ns": 1, "bad_ns": 1, "bad_id": 1, "no_text": 2,
        "redirect_without_title": 1}
    assert [row[2] for row in section["skipped_pages"]] == [
        f"malformed_{kind}" for _, kind, _ in MALFORMED_PAGES]
    assert datasets.load_from_disk(str(tmp_path / "o" / "pages"))["title"] == ["Good",
                                                                              "Also good"]
    for _, _, what in MALFORMED_PAGES:
        assert what in caplog.text
    assert "invalid literal" not in err
    assert "WARNING: 7 malformed pages skipped (no_title 1, no_ns 1, bad_ns 1, bad_id 1, " \
           "no_text 2, redirect_without_title 1); the log names each" in err


# --- bad input --------------------------------------------------------------------------------

def test_missing_dump_is_one_line_and_non_zero(tmp_path, capsys):
    code, err = run_cli(capsys, "build", tmp_path / "gone.xml.bz2", "--out", tmp_path / "o")
    assert code == 1 and err.strip().endswith("gone.xml.bz2: dump not found (no such file)")
    assert len(err.strip().splitlines()) == 1


def test_missing_index_is_one_line_and_non_zero(tmp_path, capsys):
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", tmp_path / "o", "--index",
                        tmp_path / "gone-index.txt.bz2")
    assert code == 1 and err.strip().endswith("gone-index.txt.bz2: index not found (no such file)")


def test_malformed_xml_fails_cleanly_and_leaves_nothing_that_looks_built(tmp_path, capsys):
    xml = bz2.open(EN_DUMP).read().replace(b"<ns>0</ns>", b"<ns>0</nz>", 3)
    dump = tmp_path / "broken.xml.bz2"
    dump.write_bytes(bz2.compress(xml))
    out = tmp_path / "out"
    code, err = run_cli(capsys, "build", dump, "--out", out)
    assert code == 1 and len(error_lines(err)) == 1
    assert "broken.xml.bz2: malformed XML at byte" in err and "mismatched tag" in err
    assert_nothing_looks_built(out)


def test_interrupted_stage_leaves_no_complete_looking_output(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "pages")[0] == 0
    real_add = pages_stage.PagesCollector.add
    added = []

    def interrupted(collector, result):          # Ctrl-C while the third chunk comes in
        added.append(result)
        if len(added) == 3:
            raise KeyboardInterrupt
        real_add(collector, result)

    monkeypatch.setattr(pages_stage, "CHUNK_WIKITEXT_CHARS", 1)
    monkeypatch.setattr(pages_stage.PagesCollector, "add", interrupted)
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "pages",
                        "--page-timeout", "20", "--overwrite")
    assert code == 130 and INTERRUPTED_BUILD in err
    assert_nothing_looks_built(out)
    monkeypatch.setattr(pages_stage.PagesCollector, "add", real_add)
    (out / ".staging-pages" / "pages").mkdir(parents=True)      # as a killed process leaves it
    assert run_cli(capsys, "build", EN_DUMP, "--out", out, "--until", "pages",
                   "--page-timeout", "20")[0] == 0
    assert not list(out.glob(".staging-*")) and (out / "pages").is_dir()


def test_interrupted_examples_stage_keeps_its_finished_shards_and_says_a_rerun_resumes(
        en_corpus_copy, capsys, monkeypatch):
    out = en_corpus_copy
    # The fixture's options with fewer entities per example: only the examples stage reruns.
    flags = ["build", EN_DUMP, "--out", out, "--word-vocab-size", "2000", "--entity-vocab-size",
             "2000", "--partial-dump", "--validation-pages", "1", "--workers", "1",
             "--max-seq-length", "128", "--max-entities", "16", "--overwrite"]
    real_build_shard = examples_stage.build_shard
    built: list[str] = []

    def build_two_then_stop(job):                # Ctrl-C while the third shard is built
        if len(built) == 2:
            raise KeyboardInterrupt
        built.append(job.name)
        return real_build_shard(job)

    monkeypatch.setattr(examples_stage, "build_shard", build_two_then_stop)
    code, err = run_cli(capsys, *flags)
    assert code == 130 and INTERRUPTED_BUILD in err and "resumes from the shards" in err, err[-600:]
    parts = out / examples_stage.PARTS_DIR
    assert len(list(parts.glob("examples-*.json"))) == 2
    assert "examples" not in manifest_of(out)["stages"] and not (out / "examples").exists()
    monkeypatch.setattr(examples_stage, "build_shard", real_build_shard)
    assert run_cli(capsys, *flags)[0] == 0
    assert manifest_of(out)["stages"]["examples"]["options"]["max_entities"] == 16
    assert not parts.exists()


def test_truncated_dump_keeps_pages_and_exits_non_zero_unless_allowed(tmp_path, capsys):
    data = bz2.compress(bz2.open(EN_DUMP).read(), compresslevel=1)   # 100 kB blocks
    dump = tmp_path / "cut.xml.bz2"
    dump.write_bytes(data[: int(len(data) * 0.8)])
    out = tmp_path / "out"
    code, err = run_cli(capsys, "build", dump, "--out", out, "--partial-dump")
    assert code == 3 and "cut.xml.bz2: input truncated" in err and "--allow-truncated" in err
    section = manifest_of(out)["stages"]["pages"]
    assert section["truncated"] and 1 <= section["counts"]["articles"] < 5
    assert "entity_vocab" not in manifest_of(out)["stages"]
    assert len(datasets.load_from_disk(str(out / "pages"))) == section["counts"]["articles"]
    code, err = run_cli(capsys, "build", dump, "--out", out, "--partial-dump",
                        "--allow-truncated", "--until", "entity_vocab", "--overwrite")
    assert code == 0 and "WARNING: " in err and "input truncated" in err
    assert manifest_of(out)["stages"]["entity_vocab"]["size"] > 4


def test_truncated_multistream_keeps_the_complete_streams(tmp_path, capsys):
    dump, index = write_multistream(EN_DUMP, tmp_path)
    offsets = sorted({int(line.split(":")[0]) for line in
                      bz2.open(index, "rt").read().splitlines()})
    data = dump.read_bytes()
    dump.write_bytes(data[: (offsets[1] + offsets[2]) // 2])     # cut inside the 2nd stream
    code, err = run_cli(capsys, "build", dump, "--out", tmp_path / "o", "--until", "pages")
    section = manifest_of(tmp_path / "o")["stages"]["pages"]
    assert code == 3 and section["truncated"] and section["counts"]["articles"] == 2
    assert "wiki-multistream.xml.bz2: input truncated" in err


def test_an_index_out_of_the_dumps_order_is_refused_naming_the_offset(tmp_path, capsys):
    dump, index = write_multistream(EN_DUMP, tmp_path)      # 3 streams of 2 pages
    lines = bz2.open(index, "rt").read().splitlines(keepends=True)
    index.write_bytes(bz2.compress("".join(lines[2:] + lines[:2]).encode()))
    code, err = run_cli(capsys, "build", dump, "--out", tmp_path / "o", "--until", "pages")
    first = int(lines[0].split(":")[0])
    assert code != 0 and f"stream offset {first} is listed after larger ones: the index is " \
        f"not in the dump's order" in err
    assert not (tmp_path / "o" / "pages").exists()


# --- the command line -------------------------------------------------------------------------

def test_every_build_option_has_a_flag_with_help(capsys):
    fields = {f.name for f in dataclasses.fields(BuildOptions)} - {"dumps", "out"}
    assert {name for name, _, _ in BUILD_FLAGS} == fields
    with pytest.raises(SystemExit) as done:
        main(["build", "--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    for name in fields | {"until", "overwrite"}:
        assert "--" + name.replace("_", "-") in usage


def test_bad_option_values_are_one_line_errors(tmp_path, capsys):
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", tmp_path / "o", "--workers", "0",
                        "--entity-vocab-size", "3")
    assert code == 1 and len(error_lines(err)) == 1
    assert "workers must be >= 1" in err and "entity vocabulary size 3" in err
