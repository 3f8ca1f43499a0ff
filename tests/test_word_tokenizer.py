"""The word tokenizer: trained in the test run, loaded as users load it, reused safely."""

from __future__ import annotations

import json
import shutil

import pytest

from corpus import word_tokenizer as wt
from corpus.options import BuildOptions, StageContext
from corpus.schema import ENTITY_VOCAB_DIR, ENTITY_VOCAB_FILE, MANIFEST_FILE, TOKENIZER_DIR
from tests.conftest import EN_DUMP, build_corpus


def test_build_tokenizer_loads_through_autotokenizer(en_corpus):
    from transformers import AutoTokenizer, MLukeTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(en_corpus / TOKENIZER_DIR))
    assert isinstance(tokenizer, MLukeTokenizer)
    # The layout transformers 5's MLukeTokenizer reads right: raw sentencepiece ids, small
    # special ids.
    assert (tokenizer.unk_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id,
            tokenizer.eos_token_id) == (0, 1, 2, 3)
    assert tokenizer.convert_ids_to_tokens(tokenizer.mask_token_id) == "<mask>"
    entity_vocab = json.loads((en_corpus / ENTITY_VOCAB_DIR / ENTITY_VOCAB_FILE).read_text())
    assert tokenizer.entity_vocab == entity_vocab
    config = json.loads((en_corpus / TOKENIZER_DIR / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "MLukeTokenizer"
    assert config["max_mention_length"] == 30 and config["max_entity_length"] == 32
    assert {"entity_1_token", "entity_2_token"} <= config.keys()


def test_manifest_ids_are_the_tokenizers(en_corpus):
    section = json.loads((en_corpus / MANIFEST_FILE).read_text())["stages"]["tokenizer"]
    tokenizer = wt.load_tokenizer(en_corpus / TOKENIZER_DIR)
    assert section["vocab_size"] == len(tokenizer)
    assert section["mask_token_id"] == tokenizer.mask_token_id
    assert (section["pad_token_id"], section["bos_token_id"], section["eos_token_id"]) == (1, 2, 3)
    # <mask>, <ent>, <ent2> and the four entity specials come after the pieces.
    assert section["vocab_size"] == section["word_vocab_size"] + 7
    # transformers 5 writes the entity markers with a leading metaspace ("▁<ent>").
    appended = range(section["word_vocab_size"], len(tokenizer))
    assert tokenizer.convert_ids_to_tokens(list(appended)) == ["<mask>", "▁<ent>", "▁<ent2>", "[UNK]", "[PAD]", "[MASK]", "[MASK2]"]
    assert section["word_vocab_size"] == 2000  # TEST_BUILD's size, which the sample supports


def test_unknown_character_maps_to_unk(en_corpus):
    tokenizer = wt.load_tokenizer(en_corpus / TOKENIZER_DIR)
    ids = tokenizer("the \u4e2d the")["input_ids"]   # a CJK character the English text lacks
    assert tokenizer.unk_token_id in ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=False).count("<unk>") == 1


def test_vocab_size_is_lowered_with_a_warning_when_text_is_small(caplog):
    lines = list(wt.training_lines(["The cat sat on the mat.\nA dog ran in the park.\n"] * 20))
    model, used = wt.train_sentencepiece(lines, 5000)
    assert used < 5000
    assert f"word vocabulary size lowered from 5000 to {used}" in caplog.text
    import sentencepiece as spm
    assert spm.SentencePieceProcessor(model_proto=model).get_piece_size() == used


def test_training_is_deterministic():
    text = "Sofia is the capital of Bulgaria.\nIt lies near Vitosha."
    lines = list(wt.training_lines([text] * 30))
    assert wt.train_sentencepiece(lines, 60, seed=3) == wt.train_sentencepiece(lines, 60, seed=3)


def test_reused_tokenizer_with_another_entity_vocabulary_is_refused(en_corpus, tmp_path):
    foreign = shutil.copytree(en_corpus / TOKENIZER_DIR, tmp_path / "foreign")
    vocab = json.loads((foreign / ENTITY_VOCAB_FILE).read_text())
    vocab["A title only the other build has"] = len(vocab)
    (foreign / ENTITY_VOCAB_FILE).write_text(json.dumps(vocab))
    with pytest.raises(wt.TokenizerError, match="entity vocabulary .* differs from this corpus"):
        build_corpus(EN_DUMP, tmp_path / "corpus", tokenizer=foreign)


def test_reused_tokenizer_from_same_vocabulary_keeps_ids(en_corpus, tmp_path):
    from corpus import tokenizer_stage

    out = shutil.copytree(en_corpus, tmp_path / "copy")
    shutil.rmtree(out / TOKENIZER_DIR)
    options = BuildOptions(dumps=(EN_DUMP,), out=out, tokenizer=en_corpus / TOKENIZER_DIR)
    section = tokenizer_stage.run(StageContext(options=options, manifest={}))
    original = json.loads((en_corpus / MANIFEST_FILE).read_text())["stages"]["tokenizer"]
    assert section["reused"] and section["fingerprint"] == original["fingerprint"]
    assert section["vocab_size"] == original["vocab_size"]


def test_not_a_tokenizer_directory_is_named(tmp_path):
    with pytest.raises(wt.TokenizerError, match=str(tmp_path)):
        wt.load_tokenizer(tmp_path)


SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}


def test_no_text_is_a_clear_error():
    with pytest.raises(wt.TokenizerError, match="no text to train"):
        wt.train_sentencepiece(wt.training_lines(["", "\n \n"]), 100)


def test_sentencepiece_refusal_is_reported():
    # Fewer pieces than the distinct characters: sentencepiece cannot lower its way out.
    text = "".join(chr(c) for c in range(0x430, 0x450)) + " abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(wt.TokenizerError, match="sentencepiece training failed"):
        wt.train_sentencepiece([text] * 5, 8)


def test_entity_vocab_without_specials_is_refused(tmp_path):
    with pytest.raises(wt.TokenizerError, match=r"lacks the specials \['\[MASK2\]'\]"):
        wt.write_tokenizer_dir(tmp_path / "tok", b"", {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2})


def test_a_tokenizer_whose_unknown_id_is_not_unk_says_so_to_the_examples_stage(en_corpus,
                                                                              tmp_path):
    """transformers 5.24's MLukeTokenizer sends unknown characters to id 0 whatever the model
    says; with <s> at id 0 (fairseq's layout) the examples stage must drop such sentences, and
    the encoder tells it which id that is."""
    import io
    import sentencepiece as spm

    from corpus.word_encoder import WordEncoder

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["Tallinn is the capital of Estonia."] * 50), model_writer=model,
        model_type="unigram", vocab_size=20, unk_id=3, bos_id=0, eos_id=2, pad_id=1,
        minloglevel=2)
    vocab = json.loads((en_corpus / TOKENIZER_DIR / ENTITY_VOCAB_FILE).read_text())
    wt.write_tokenizer_dir(tmp_path / "fairseq", model.getvalue(), vocab)
    wt.copy_tokenizer_dir(tmp_path / "fairseq", tmp_path / "copy")
    tokenizer = wt.load_tokenizer(tmp_path / "copy")
    assert wt.tokenizer_kind(tokenizer) == "xlmr"
    encoder = WordEncoder(tokenizer)
    assert encoder.unknown_id == 0 and tokenizer.convert_ids_to_tokens(0) == "<s>"
    assert 0 in encoder.encode(["Tallinn is in Ωmega"])[0]
    trained = WordEncoder(wt.load_tokenizer(en_corpus / TOKENIZER_DIR))
    assert trained.unknown_id is None


def test_reuse_copies_only_tokenizer_files(en_corpus, tmp_path):
    export = shutil.copytree(en_corpus / TOKENIZER_DIR, tmp_path / "export")
    (export / "model.safetensors").write_bytes(b"weights of an exported model")
    wt.copy_tokenizer_dir(export, tmp_path / "copy")
    assert not (tmp_path / "copy" / "model.safetensors").exists()
    assert wt.tokenizer_fingerprint(tmp_path / "copy") == wt.tokenizer_fingerprint(export)


# --- what sentencepiece trains on ---

def page_texts(pages: int, chunks: int):
    import pyarrow as pa

    texts = ["\n".join(f"Paragraph {k} of page {p}." for k in range(1 + p % 5))
             for p in range(pages)]
    size = -(-pages // chunks)
    return texts, pa.chunked_array([texts[i:i + size] for i in range(0, pages, size)])


def test_training_sample_takes_every_page_when_it_fits_and_whole_pages_when_not():
    from corpus.tokenizer_stage import sample_training_lines

    texts, column = page_texts(300, chunks=3)
    everything = sample_training_lines(column, 0, max_lines=10_000, max_chars=10**9)
    assert everything.lines == list(wt.training_lines(texts)) and not everything.capped
    capped = sample_training_lines(column, 0, max_lines=10_000, max_chars=2000)
    assert capped.capped and capped.characters == sum(map(len, capped.lines)) <= 2000
    assert 0 < capped.pages < 300
    sampled_pages = [int(line.split()[-1].rstrip(".")) for line in capped.lines]
    # whole pages in row order, but for the one at which the cap was reached
    cut = [p for p in set(sampled_pages) if sampled_pages.count(p) != 1 + p % 5]
    assert len(cut) <= 1 and sampled_pages == sorted(sampled_pages)
    # the same pages however the column is chunked (the files of the pages dataset)
    _, other_chunks = page_texts(300, chunks=7)
    assert sample_training_lines(other_chunks, 0, 10_000, 2000) == capped
    by_lines = sample_training_lines(column, 0, max_lines=50, max_chars=10**9)
    assert len(by_lines.lines) == 50 and by_lines.capped
    assert sample_training_lines(column, 1, 10_000, 2000).lines != capped.lines


def test_a_capped_build_records_its_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(wt, "SP_MAX_TRAINING_CHARS", 20_000)
    out = build_corpus(EN_DUMP, tmp_path / "capped", workers=1)
    counts = json.loads((out / MANIFEST_FILE).read_text())["stages"]["tokenizer"]["counts"]
    assert counts["training_sample_capped"] == 1 and counts["training_characters"] <= 20_000
    assert 1 <= counts["training_pages"] < 5
