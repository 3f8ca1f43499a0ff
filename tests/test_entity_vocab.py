"""The entity vocabulary (corpus/entity_vocab.py): id layout, count order with title ties,
candidates (articles only, or every target with partial_dump), min_link_count, size limit,
and determinism across builds and worker counts."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from corpus.build import build
from corpus.entity_vocab import top_entities
from corpus.options import BuildOptions
from test_dump import EN_DUMP, write_dump

SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}


def counts_table(pairs: dict[str, int]) -> pa.Table:
    return pa.table({"title": list(pairs), "count": list(pairs.values())})


def test_order_is_count_then_title_and_size_counts_the_specials():
    counts = counts_table({"Zeta": 5, "Beta": 7, "Alpha": 5, "Émile": 5, "Gamma": 1})
    assert top_entities(counts, 100, 1, None) == [
        ("Beta", 7), ("Alpha", 5), ("Zeta", 5), ("Émile", 5), ("Gamma", 1)]
    assert top_entities(counts, 6, 1, None) == [("Beta", 7), ("Alpha", 5)]
    assert top_entities(counts, 100, 5, None) == [("Beta", 7), ("Alpha", 5), ("Zeta", 5),
                                                  ("Émile", 5)]
    assert top_entities(counts, 100, 1, pa.array(["Gamma", "Zeta", "Nowhere"])) == [
        ("Zeta", 5), ("Gamma", 1)]
    with pytest.raises(ValueError, match="smaller than the 4 special entities"):
        top_entities(counts, 3, 1, None)


@pytest.fixture(scope="module")
def linked_dump(tmp_path_factory):
    """Three articles; links to them, to a redirect, and to pages absent from the dump."""
    tmp = tmp_path_factory.mktemp("vocab")
    return write_dump(tmp / "d.xml.bz2", [
        dict(title="Paris", text="[[France]] and [[France]], [[Seine]], [[Lutetia]].", page_id=1),
        dict(title="France", text="[[Paris]], [[Seine]], [[Europe]], [[Europe]].", page_id=2),
        dict(title="Seine", text="[[Paris]] [[France]] [[Lutetia]] [[Europe]].", page_id=3),
        dict(title="Lutetia", text="#REDIRECT [[Paris]]", page_id=4, redirect="Paris"),
    ])


def read_vocab(out) -> tuple[dict, list[dict]]:
    vocab = json.loads((out / "entity_vocab" / "entity_vocab.json").read_text(encoding="utf-8"))
    counts = [json.loads(line) for line in
              (out / "entity_vocab" / "counts.jsonl").read_text(encoding="utf-8").splitlines()]
    return vocab, counts


def test_default_vocabulary_holds_articles_by_resolved_count(linked_dump, tmp_path):
    manifest = build(BuildOptions(dumps=(linked_dump,), out=tmp_path / "o"), until="entity_vocab")
    vocab, counts = read_vocab(tmp_path / "o")
    # Paris 2 + 2 via the redirect Lutetia = 4, France 3, Seine 2; Europe (3) is no article.
    assert vocab == {**SPECIALS, "Paris": 4, "France": 5, "Seine": 6}
    assert [c["count"] for c in counts] == [0, 0, 0, 0, 4, 3, 2]
    assert counts[4] == {"id": 4, "entities": [["Paris", "en"]], "count": 4}
    assert manifest["stages"]["entity_vocab"]["size"] == 7


def test_partial_dump_and_min_link_count(linked_dump, tmp_path):
    build(BuildOptions(dumps=(linked_dump,), out=tmp_path / "o", partial_dump=True,
                       min_link_count=3), until="entity_vocab")
    vocab, _ = read_vocab(tmp_path / "o")
    assert vocab == {**SPECIALS, "Paris": 4, "Europe": 5, "France": 6}


def test_vocabulary_is_deterministic_and_dense(tmp_path):
    """The real English sample, built twice (1 and 2 workers): identical files, ids 0..n-1."""
    options = dict(dumps=(EN_DUMP,), partial_dump=True, entity_vocab_size=200)
    first = build(BuildOptions(out=tmp_path / "a", workers=1, **options), until="entity_vocab")
    second = build(BuildOptions(out=tmp_path / "b", workers=2, **options), until="entity_vocab")
    for name in ("entity_vocab.json", "counts.jsonl"):
        assert (tmp_path / "a" / "entity_vocab" / name).read_bytes() == \
            (tmp_path / "b" / "entity_vocab" / name).read_bytes()
    assert first["stages"]["entity_vocab"]["fingerprint"] == \
        second["stages"]["entity_vocab"]["fingerprint"]
    vocab, counts = read_vocab(tmp_path / "a")
    assert sorted(vocab.values()) == list(range(200)) and len(vocab) == 200
    assert list(vocab)[:4] == list(SPECIALS)
    ordered = [(-c["count"], c["entities"][0][0]) for c in counts[4:]]
    assert ordered == sorted(ordered)
    assert all(vocab[c["entities"][0][0]] == c["id"] for c in counts)


def test_the_vocab_files_are_written_as_json_writes_them(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    from corpus.entity_vocab import json_strings, vocab_json, write_vocab

    keys = ["[PAD]", 'Quote "x" \\ y', "Zürich", "東京", "\U0001F600", "Line\u2028sep", ""]
    ids = list(range(len(keys)))
    vocab = dict(zip(keys, ids))
    as_text = pc.cast(pa.array(ids, pa.int64()), pa.string())
    assert vocab_json(json_strings(pa.array(keys)), as_text) == json.dumps(
        vocab, ensure_ascii=False, indent=0)
    assert vocab_json(pa.array([], pa.string()), pa.array([], pa.string())) == "{}"
    with_control = ["Tab\there", "bell\x07", 'plain "q"']    # control characters go through json
    assert json_strings(pa.array(with_control)).to_pylist() == [
        json.dumps(key, ensure_ascii=False) for key in with_control]
    write_vocab([(key, 10 - n) for n, key in enumerate(keys[1:])], "en", tmp_path)
    # one entry a line; U+2028 in a title is a line break only to str.splitlines
    lines = (tmp_path / "counts.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    assert [json.loads(line) for line in lines][-1] == {"id": 9, "entities": [["", "en"]],
                                                        "count": 5}
    assert lines[4] == json.dumps({"id": 4, "entities": [[keys[1], "en"]], "count": 10},
                                  ensure_ascii=False)
