"""`luke-corpus inspect`: readable examples, JSON a user can feed to transformers, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import datasets

from corpus.cli import main
from corpus.schema import EXAMPLES_DIR, TOKENIZER_DIR
from corpus.word_tokenizer import load_tokenizer


def inspect_json(corpus, capsys, *extra) -> list[dict]:
    assert main(["inspect", str(corpus), "--json", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_json_lines_round_trip_through_transformers(en_corpus, capsys):
    lines = inspect_json(en_corpus, capsys, "--random", "20", "--seed", "1")
    assert len(lines) == 20
    tokenizer = load_tokenizer(en_corpus / TOKENIZER_DIR)
    stored = datasets.load_from_disk(str(en_corpus / EXAMPLES_DIR))
    for line in lines:
        assert set(line) >= {"text", "entities", "entity_spans", "word_ids", "entity_ids"}
        encoded = tokenizer(line["text"], entities=line["entities"],
                            entity_spans=[tuple(s) for s in line["entity_spans"]],
                            max_entity_length=len(line["entities"]), truncation=False)
        assert encoded["input_ids"] == line["word_ids"] == stored[line["row"]]["word_ids"]
        assert encoded["entity_ids"] == line["entity_ids"] == stored[line["row"]]["entity_ids"]
        for (start, end), title in zip(line["entity_spans"], line["entities"]):
            assert line["text"][start:end].strip() == line["text"][start:end] != ""
            assert title in tokenizer.entity_vocab


def test_random_choice_depends_on_seed_only(en_corpus, capsys):
    def rows(seed: str) -> list[int]:
        return [line["row"] for line in inspect_json(en_corpus, capsys, "--random", "5",
                                                     "--seed", seed)]

    assert rows("4") == rows("4") != rows("5")


def test_human_view_marks_mentions_with_titles(en_corpus, capsys):
    [line] = inspect_json(en_corpus, capsys, "--random", "1", "--seed", "2")
    assert main(["inspect", str(en_corpus), "--random", "1", "--seed", "2"]) == 0
    shown = capsys.readouterr().out
    start, end = line["entity_spans"][0]
    assert f"[{line['text'][start:end]}]({line['entities'][0]})" in shown
    assert f"page {line['page_id']}" in shown


def test_validation_split_and_check(en_corpus, capsys):
    assert main(["inspect", str(en_corpus), "--json", "--split", "validation", "--check"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert lines and all(line["page_id"] == lines[0]["page_id"] for line in lines)
    assert f"checked {len(lines)} examples, 0 mismatches" in captured.err


def test_changed_data_is_reported_not_misshown(en_corpus_copy, capsys):
    examples = datasets.load_from_disk(str(en_corpus_copy / EXAMPLES_DIR))
    altered = examples.map(lambda row: {"word_ids": row["word_ids"][:-2] + row["word_ids"][-1:]})
    altered.save_to_disk(str(en_corpus_copy / "altered"))
    capsys.readouterr()
    shutil.rmtree(en_corpus_copy / EXAMPLES_DIR)
    (en_corpus_copy / "altered").rename(en_corpus_copy / EXAMPLES_DIR)
    assert main(["inspect", str(en_corpus_copy), "--json"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("luke-corpus: error:") and "row 0" in error and "\n" not in error


def test_not_a_build_is_one_clear_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "corpus.cli", "inspect", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"luke-corpus: error: {tmp_path}: not a finished corpus build: manifest.json is "
        f"missing (run `luke-corpus build` to completion)"]


def test_bench_tokenize_prints_figures_and_ratios(en_corpus, capsys):
    assert main(["bench-tokenize", str(en_corpus), "--pages", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "examples stage / transformers batch:" in out


def test_output_cut_short_by_a_pipe_is_not_an_error(en_corpus):
    """`luke-corpus inspect DIR --json | head -1`: the reader closing early is a success."""
    process = subprocess.Popen([sys.executable, "-m", "corpus.cli", "inspect", str(en_corpus),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()                   # as `head -1` does after its line
    stderr = process.communicate()[1].decode()
    assert json.loads(first)["word_ids"]
    assert process.returncode == 0, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr


def test_stats_give_quality_figures_per_language(en_corpus, capsys):
    assert main(["inspect", str(en_corpus), "--stats", "--json"]) == 0
    (english,) = json.loads(capsys.readouterr().out)["languages"]
    pages = datasets.load_from_disk(str(en_corpus / "pages"))
    assert english["language"] == "en" and english["articles"] == len(pages) == 5
    assert english["links"] == sum(len(t) for t in pages["link_target"])
    assert english["links_per_article"] == english["links"] / 5 > 9
    assert english["link_spans_on_anchor"] == 1.0            # every span on its anchor text
    assert 0 < english["link_spans_trailed"] < 0.1           # "[[Estonia]]n" and the like
    assert english["markup_per_mb"] == 0 and set(english["markup"]) >= {"[[", "-{", "''"}
    examples = datasets.load_from_disk(str(en_corpus / EXAMPLES_DIR))
    assert english["sequences"] == len(examples)
    assert english["mentions_per_sequence"] == sum(map(len, examples["entity_ids"])) / len(
        examples)
    assert main(["inspect", str(en_corpus), "--stats"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["language", "articles", "links/article", "spans", "on",
                                "anchor", "trailed", "markup/MB", "mentions/seq", "words/seq",
                                "malformed"]
    assert table[1].split()[:4] == ["en", "5", f"{english['links_per_article']:.1f}", "100.00%"]


def test_stats_count_markup_left_in_the_text(en_corpus_copy, capsys):
    rows = datasets.load_from_disk(str(en_corpus_copy / "pages")).to_list()
    rows[0]["text"] += " [[x]] -{y}- (, ) （）"
    shutil.rmtree(en_corpus_copy / "pages")
    datasets.Dataset.from_list(rows).save_to_disk(str(en_corpus_copy / "pages"))
    assert main(["inspect", str(en_corpus_copy), "--stats", "--json"]) == 0
    (english,) = json.loads(capsys.readouterr().out)["languages"]
    assert {k: v for k, v in english["markup"].items() if v} == {
        "[[": 1, "]]": 1, "-{": 1, "}-": 1, "empty brackets": 1, "stranded separators": 1}
    assert english["markup_per_mb"] == 6 / english["text_mb"]


def test_stats_of_a_directory_without_pages_is_one_clear_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path), "--stats"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"luke-corpus: error: {tmp_path}: not a finished corpus build: manifest.json is "
        f"missing (run `luke-corpus build` to completion)")
