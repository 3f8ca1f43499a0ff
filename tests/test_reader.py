"""The typed reader of a finished corpus build (corpus/reader.py): what it reads from the
manifest, and the one-line refusals of builds that cannot be used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import schema
from corpus.options import Limits
from corpus.reader import Corpus, CorpusError

MANIFEST = {"schema_version": schema.SCHEMA_VERSION, "stages": {
    "pages": {"languages": [{"language": "bg",
                             "dump": "/data/bgwiki-20240601-pages-articles.xml.bz2",
                             "siteinfo": {"dbname": "bgwiki", "language": "bg"}, "rows": [0, 3],
                             "id_offset": 0, "counts": {"articles": 3}}],
              "truncated": False, "fingerprint": "p1", "counts": {"articles": 3}},
    "entity_vocab": {"size": 2000, "fingerprint": "e1"},
    "tokenizer": {"vocab_size": 2009, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3,
                  "mask_token_id": 2001, "fingerprint": "t1", "kind": "bpe",
                  "word_start_marker": "\u0120",
                  "base_model": {"path": "/models/roberta-base", "model_type": "roberta"}},
    "examples": {"fingerprint": "ab12", "max_seq_length": 128, "max_entities": 32,
                 "max_mention_length": 30,
                 "options": {"max_seq_length": 128, "max_entities": 32,
                             "max_mention_length": 30, "min_sentence_tokens": 5,
                             "unk_entities": "keep"},
                 "languages": [{"language": "bg", "locale": "bg", "rows": [0, 40],
                                "validation_rows": [0, 5], "validation_page_ids": [7]}],
                 "counts": {"num_examples": 40, "validation_examples": 5}},
}}

# The same build read from two dumps: Bulgarian first, then English.
TWO_LANGUAGES = json.loads(json.dumps(MANIFEST))
TWO_LANGUAGES["stages"]["pages"]["languages"].append(
    {"language": "en", "dump": "/data/enwiki-20240601-pages-articles.xml.bz2",
     "siteinfo": {"dbname": "enwiki"}, "rows": [3, 8], "id_offset": schema.PAGE_ID_STRIDE})
TWO_LANGUAGES["stages"]["entity_vocab"]["keys"] = "language:title"
TWO_LANGUAGES["stages"]["examples"]["languages"].append(
    {"language": "en", "locale": "en", "rows": [40, 100], "validation_rows": [5, 9],
     "validation_page_ids": [schema.PAGE_ID_STRIDE + 12]})


def write_build(root: Path, manifest: dict) -> Path:
    for name in (schema.TOKENIZER_DIR, schema.EXAMPLES_DIR, schema.VALIDATION_DIR):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    return root


def without(manifest: dict, stage: str, key: str | None = None) -> dict:
    copy = json.loads(json.dumps(manifest))
    if key is None:
        del copy["stages"][stage]
    else:
        del copy["stages"][stage][key]
    return copy


def test_reads_every_stage_into_typed_records(tmp_path):
    corpus = Corpus.open(write_build(tmp_path, MANIFEST))
    assert (corpus.pages.dbname, corpus.pages.language, corpus.pages.articles) == ("bgwiki", "bg",
                                                                                   3)
    assert corpus.pages.dump.name == "bgwiki-20240601-pages-articles.xml.bz2"
    assert (corpus.tokenizer.vocab_size, corpus.tokenizer.pad_token_id,
            corpus.tokenizer.mask_token_id) == (2009, 1, 2001)
    assert (corpus.tokenizer.kind, corpus.tokenizer.word_start_marker) == ("bpe", "\u0120")
    assert corpus.tokenizer.base_model["path"] == "/models/roberta-base"
    assert corpus.entity_vocab.size == 2000
    examples = corpus.examples
    assert (examples.num_examples, examples.validation_examples, examples.fingerprint) == (
        40, 5, "ab12")
    assert examples.limits == Limits(128, 32, 30, 5, "keep")
    assert (examples.locale, examples.validation_page_ids) == ("bg", (7,))
    assert corpus.split_dir("train") == tmp_path / schema.EXAMPLES_DIR
    assert corpus.split_size("validation") == 5
    assert corpus.tokenizer_dir == tmp_path / schema.TOKENIZER_DIR


@pytest.mark.parametrize("manifest, message", [
    (MANIFEST | {"schema_version": 99}, "schema version 99, this code reads version 3"),
    (without(MANIFEST, "examples"), "stage\\(s\\) examples missing"),
    (without(MANIFEST, "tokenizer", "mask_token_id"), "stages.tokenizer.mask_token_id is missing"),
])
def test_refuses_unfinished_or_foreign_builds(tmp_path, manifest, message):
    with pytest.raises(CorpusError, match=message):
        Corpus.open(write_build(tmp_path, manifest))


def test_refuses_a_dir_without_manifest_or_the_outputs_it_needs(tmp_path):
    with pytest.raises(CorpusError, match=f"{tmp_path}/absent: corpus directory does not exist"):
        Corpus.open(tmp_path / "absent")
    with pytest.raises(CorpusError, match=f"{tmp_path}.*manifest.json is missing"):
        Corpus.open(tmp_path)
    write_build(tmp_path, MANIFEST)
    (tmp_path / schema.EXAMPLES_DIR).rmdir()
    with pytest.raises(CorpusError, match="examples/ is missing"):
        Corpus.open(tmp_path)
    assert Corpus.open(tmp_path, needs=("tokenizer",)).tokenizer.vocab_size == 2009


def test_reads_the_real_build(en_corpus):
    corpus = Corpus.open(en_corpus)
    assert corpus.pages.articles == 5 and corpus.pages.language == "en"
    assert corpus.examples.num_examples > 0 and corpus.examples.locale == "en"
    assert corpus.examples.limits.max_seq_length == 128


def test_reads_each_language_of_a_build_of_several_dumps(tmp_path):
    corpus = Corpus.open(write_build(tmp_path, TWO_LANGUAGES))
    assert [(entry.language, entry.dbname, entry.rows, entry.articles)
            for entry in corpus.pages.languages] == [("bg", "bgwiki", (0, 3), 3),
                                                     ("en", "enwiki", (3, 8), 5)]
    assert corpus.pages.articles == 8 and corpus.pages.language == "bg"
    assert corpus.pages.languages[1].id_offset == schema.PAGE_ID_STRIDE
    assert corpus.entity_vocab.key_prefix("en") == "en:"
    english = corpus.examples.language("en")
    assert (english.locale, english.num_examples, english.validation_examples) == ("en", 60, 4)
    assert corpus.examples.validation_page_ids == (7, schema.PAGE_ID_STRIDE + 12)
    with pytest.raises(KeyError, match="no language 'ja' \\(it has bg, en\\)"):
        corpus.examples.language("ja")


def test_a_reader_of_the_pages_alone_opens_a_build_stopped_after_them(tmp_path):
    pages_only = json.loads(json.dumps(MANIFEST))
    for stage in ("entity_vocab", "tokenizer", "examples"):
        del pages_only["stages"][stage]
    (write_build(tmp_path, pages_only) / schema.PAGES_DIR).mkdir()
    corpus = Corpus.open(tmp_path, needs=("pages",))
    assert corpus.pages.articles == 3
    assert (corpus.entity_vocab, corpus.tokenizer, corpus.examples) == (None, None, None)
    with pytest.raises(CorpusError, match="stage\\(s\\) entity_vocab, tokenizer missing"):
        Corpus.open(tmp_path, needs=("tokenizer",))
