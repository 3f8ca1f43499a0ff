"""The fine-tuning recipe of the README, run as written on a tiny export: launch/silver_spans.py
makes span-classification data from the English build, launch/finetune_spans.py fine-tunes
LukeForEntitySpanClassification on it with transformers' Trainer (accelerate installed by the
`finetune` extra), cutting long paragraphs with pretrain.entity_truncation; the saved model and
tokenizer load back through transformers with the export's ids."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from train_helpers import ROOT, run_command

LAUNCH = ROOT / "launch"


@pytest.fixture(scope="module")
def silver(en_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("silver")
    done = run_command([sys.executable, str(LAUNCH / "silver_spans.py"), str(en_corpus), "--out",
                        str(out), "--max-examples", "40"])
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_silver_spans_are_links_and_free_word_runs(en_corpus, silver):
    import datasets

    from corpus.reader import Corpus

    corpus = Corpus.open(en_corpus)
    pages = datasets.load_from_disk(str(corpus.pages_dir))
    held_out = [p for p in pages if p["id"] in corpus.examples.validation_page_ids]
    anchors = {p["text"][s:e] for p in held_out for s, e in zip(p["link_start"], p["link_end"])}
    records = read_jsonl(silver / "validation.jsonl")
    assert records and len(read_jsonl(silver / "train.jsonl")) == 40
    for record in records:
        spans = [tuple(span) for span in record["spans"]]
        assert spans == sorted(spans) and len(spans) == len(record["labels"])
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # no overlap
        for (start, end), label in zip(spans, record["labels"]):
            if label == "entity":
                assert record["text"][start:end] in anchors


@pytest.mark.slow
def test_the_recipe_fine_tunes_saves_and_reloads(tiny_export, silver, tmp_path):
    from transformers import AutoTokenizer, LukeForEntitySpanClassification

    out = tmp_path / "finetuned"
    done = run_command([sys.executable, str(LAUNCH / "finetune_spans.py"), str(tiny_export),
                        "--train", str(silver / "train.jsonl"),
                        "--validation", str(silver / "validation.jsonl"), "--out", str(out),
                        "--epochs", "1", "--max-length", "64"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out span accuracy" in done.stdout
    # The sample's paragraphs run past 64 tokens: cut, with the dropped spans counted.
    assert "texts cut to 64 tokens" in done.stderr and "entity spans dropped" in done.stderr
    exported = AutoTokenizer.from_pretrained(tiny_export, task="entity_span_classification")
    reloaded = AutoTokenizer.from_pretrained(out)
    record = read_jsonl(silver / "validation.jsonl")[0]
    spans = [tuple(span) for span in record["spans"]]
    inputs = reloaded(record["text"], entity_spans=spans, return_tensors="pt")
    assert {k: v.tolist() for k, v in inputs.items()} == \
        {k: v.tolist() for k, v in exported(record["text"], entity_spans=spans,
                                            return_tensors="pt").items()}
    model = LukeForEntitySpanClassification.from_pretrained(out).eval()
    assert model.config.id2label == {0: "entity", 1: "other"}
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, len(spans), 2) and torch.isfinite(logits).all()
