"""The trainer's data side: manifest checks, global step order, rank slices, rows, collation.

The sampler and collation tests run on plain arrays; the batch tests run on the real English
corpus build of tests/conftest.py (`en_corpus`): its tokenizer, its Arrow shards, its spans.
"""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from corpus import schema
from pretrain.collate import MaskedExample, collate, mention_positions
from pretrain.data import CorpusError, CorpusInfo, StepSampler, read_rows, tables_from_pieces

# ---------------------------------------------------------------- StepSampler


def all_ranks(step, world=4, **kw):
    """The micro-batches of every rank at `step`, rank by rank."""
    args = dict(num_examples=103, global_batch_size=24, micro_batch_size=3, seed=5) | kw
    return [StepSampler(world_size=world, rank=r, **args).indices_for_step(step)
            for r in range(world)]


def test_ranks_take_disjoint_slices_of_each_global_batch():
    for step in range(12):
        ranks = all_ranks(step)
        assert all(len(micro) == 2 and all(len(m) == 3 for m in micro) for micro in ranks)
        flat = [i for micro in ranks for m in micro for i in m]
        # Within an epoch a step's 24 examples are distinct; across ranks they tile the batch.
        assert flat == [i for m in all_ranks(step, world=1)[0] for i in m]
        if StepSampler(103, 24, 3, 4, 0, 5).epoch_of(step) == (step * 24 + 23) // 103:
            assert len(set(flat)) == 24


def test_each_epoch_is_a_permutation_and_a_function_of_seed_and_epoch():
    sampler = StepSampler(num_examples=103, global_batch_size=1, micro_batch_size=1,
                          world_size=1, rank=0, seed=5)
    epoch0 = [sampler.indices_for_step(s)[0][0] for s in range(103)]
    epoch1 = [sampler.indices_for_step(s)[0][0] for s in range(103, 206)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(103))
    assert epoch0 != epoch1 and epoch0 != list(range(103))
    assert sampler.epoch_of(102) == 0 and sampler.epoch_of(103) == 1
    other_seed = StepSampler(103, 1, 1, 1, 0, seed=6)
    assert [other_seed.indices_for_step(s)[0][0] for s in range(103)] != epoch0


def test_step_straddling_an_epoch_boundary_reads_both_epochs():
    sampler = StepSampler(num_examples=10, global_batch_size=4, micro_batch_size=2,
                          world_size=1, rank=0, seed=0)
    stream = [i for s in range(5) for m in sampler.indices_for_step(s) for i in m]
    assert sorted(stream[:10]) == list(range(10))          # step 2 = epoch 0's last 2 + epoch 1
    assert stream[8:10] == sampler.permutation(0)[8:].tolist()
    assert stream[10:12] == sampler.permutation(1)[:2].tolist()
    assert sampler.epoch_of(2) == 0 and sampler.epoch_of(3) == 1


def test_resuming_at_any_step_equals_continuing():
    straight = StepSampler(50, 8, 2, 2, 1, seed=3)
    expected = [straight.indices_for_step(s) for s in range(30)]
    for resume_at in [0, 6, 7, 13, 29]:
        fresh = StepSampler(50, 8, 2, 2, 1, seed=3)
        assert [fresh.indices_for_step(s) for s in range(resume_at, 30)] == expected[resume_at:]


@pytest.mark.parametrize("kw, message", [
    (dict(global_batch_size=20), "not a positive multiple of micro batch size 3 x world size 4"),
    (dict(num_examples=0), "nothing to train on"),
    (dict(rank=4), "rank 4 outside world size 4"),
])
def test_bad_sampler_arguments_are_explained(kw, message):
    args = dict(num_examples=103, global_batch_size=24, micro_batch_size=3, world_size=4,
                rank=0, seed=0) | kw
    with pytest.raises(ValueError, match=message):
        StepSampler(**args)


# ---------------------------------------------------------------- CorpusInfo.load

MANIFEST = {"schema_version": schema.SCHEMA_VERSION, "stages": {
    "pages": {"counts": {}},
    "entity_vocab": {"size": 2000},
    "tokenizer": {"vocab_size": 2009, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3,
                  "mask_token_id": 2001},
    "examples": {"fingerprint": "ab12", "max_seq_length": 128, "max_entities": 32,
                 "max_mention_length": 30, "counts": {"num_examples": 40,
                                                      "validation_examples": 5}},
}}


def write_build(root: Path, manifest: dict) -> Path:
    for name in (schema.TOKENIZER_DIR, schema.EXAMPLES_DIR, schema.VALIDATION_DIR):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / schema.MANIFEST_FILE).write_text(json.dumps(manifest))
    return root


def test_load_reads_manifest_fields_and_paths(tmp_path):
    info = CorpusInfo.load(write_build(tmp_path, MANIFEST))
    assert (info.vocab_size, info.pad_token_id, info.mask_token_id) == (2009, 1, 2001)
    assert (info.entity_vocab_size, info.num_examples, info.validation_examples) == (2000, 40, 5)
    assert (info.fingerprint, info.max_mention_length) == ("ab12", 30)
    assert info.examples_dir == tmp_path / schema.EXAMPLES_DIR


def without(manifest, stage, key=None):
    copy = json.loads(json.dumps(manifest))
    if key is None:
        del copy["stages"][stage]
    else:
        del copy["stages"][stage][key]
    return copy


@pytest.mark.parametrize("manifest, message", [
    (MANIFEST | {"schema_version": 99}, "schema_version 99, this trainer reads 1"),
    (without(MANIFEST, "examples"), "stage\\(s\\) examples missing"),
    (without(MANIFEST, "tokenizer", "mask_token_id"), "stages.tokenizer.mask_token_id is missing"),
])
def test_load_refuses_unfinished_or_foreign_builds(tmp_path, manifest, message):
    with pytest.raises(CorpusError, match=message):
        CorpusInfo.load(write_build(tmp_path, manifest))


def test_load_refuses_dir_without_manifest_or_dataset(tmp_path):
    with pytest.raises(CorpusError, match=f"{tmp_path}.*manifest.json is missing"):
        CorpusInfo.load(tmp_path)
    write_build(tmp_path, MANIFEST)
    (tmp_path / schema.EXAMPLES_DIR).rmdir()
    with pytest.raises(CorpusError, match="examples/ is missing"):
        CorpusInfo.load(tmp_path)


# ---------------------------------------------------------------- word tables, rows, collate


def test_word_tables_from_pieces():
    pieces = ["<unk>", "<pad>", "<s>", "</s>", "\u2581the", "re", "\u2581", "s", "<mask>"]
    maskable, word_start = tables_from_pieces(pieces, [0, 1, 2, 3, 8])
    assert maskable.tolist() == [False] * 4 + [True] * 4 + [False]
    assert word_start.tolist() == [False] * 4 + [True, False, True, False, False]


def test_read_rows_returns_requested_rows_in_order(tmp_path):
    rows = {"word_ids": [[0, 10 + i, 2] * (i + 1) for i in range(6)],
            "entity_ids": [[4 + i] for i in range(6)], "entity_start": [[1]] * 6,
            "entity_end": [[2]] * 6, "page_id": list(range(100, 106))}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"), num_shards=3)
    dataset = datasets.load_from_disk(str(tmp_path / "ds"))
    got = read_rows(dataset, [5, 0, 3, 3])
    assert [r["page_id"] for r in got] == [105, 100, 103, 103]
    assert [r["word_ids"].tolist() for r in got] == [rows["word_ids"][i] for i in [5, 0, 3, 3]]
    assert got[0]["entity_ids"].dtype == np.int64


def example(n_words, spans, page_id=7):
    start, end = (np.array(x, dtype=np.int64) for x in zip(*spans)) if spans else ([], [])
    labels = np.full(n_words, -100)
    labels[1] = 42
    return MaskedExample(np.arange(10, 10 + n_words), labels, np.arange(5, 5 + len(spans)),
                         np.full(len(spans), -100), np.asarray(start), np.asarray(end), page_id)


def test_collate_pads_to_longest_and_lays_out_mentions():
    batch = collate([example(6, [(1, 3), (4, 5)]), example(4, [(1, 4)], page_id=9)],
                    pad_token_id=1, max_mention_length=2)
    assert set(batch) == {"input_ids", "attention_mask", "entity_ids", "entity_attention_mask",
                          "entity_position_ids", "labels", "entity_labels", "page_ids"}
    assert all(t.dtype == torch.int64 for t in batch.values())
    assert batch["input_ids"][1].tolist() == [10, 11, 12, 13, 1, 1]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0]
    assert batch["labels"][1].tolist() == [-100, 42, -100, -100, -100, -100]
    assert batch["entity_ids"][1].tolist() == [5, 0]
    assert batch["entity_attention_mask"][1].tolist() == [1, 0]
    assert batch["entity_labels"][1].tolist() == [-100, -100]
    # (1, 4) is 3 tokens long: cut to max_mention_length 2; the padding entity is all -1.
    assert batch["entity_position_ids"].tolist() == [[[1, 2], [4, -1]], [[1, 2], [-1, -1]]]
    assert batch["page_ids"].tolist() == [7, 9]


def test_mention_positions_pad_with_minus_one():
    assert mention_positions(np.array([0, 5]), np.array([1, 8]), 4).tolist() == [
        [0, -1, -1, -1], [5, 6, 7, -1]]


@pytest.mark.parametrize("spans, message", [
    ([(3, 3)], r"entity 0 has span \[3, 3\)"),
    ([(1, 2), (2, 7)], r"page 7: entity 1 has span \[2, 7\) outside its 6 word tokens"),
])
def test_collate_refuses_bad_spans_naming_page_and_entity(spans, message):
    with pytest.raises(ValueError, match=message):
        collate([example(6, spans)], pad_token_id=1, max_mention_length=30)
