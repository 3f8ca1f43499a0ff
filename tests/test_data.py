"""The trainer's data side: manifest checks, global step order, rank slices, rows, collation.

The sampler and collation tests run on plain arrays; the batch tests run on the real English
corpus build of tests/conftest.py (`en_corpus`): its tokenizer, its Arrow shards, its spans.
"""

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from corpus import schema
from pretrain.collate import MaskedExample, collate, mention_positions
from corpus.reader import Corpus, CorpusError
from pretrain.data import (StepSampler, TrainBatches, read_rows,
                           tables_from_pieces)
from pretrain.masking import MaskingConfig

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


# ---------------------------------------------------------------- batches of the real English build

MICRO, GLOBAL = 2, 8


@pytest.fixture(scope="module")
def en_info(en_corpus) -> Corpus:
    return Corpus.open(en_corpus)


def train_batches(info, world=1, rank=0, seed=0) -> TrainBatches:
    sampler = StepSampler(info.examples.num_examples, GLOBAL, MICRO, world, rank, seed)
    return TrainBatches(info, "train", sampler, MaskingConfig(), seed=seed)


@pytest.fixture(scope="module")
def en_batches(en_info) -> TrainBatches:
    return train_batches(en_info)


def test_word_tables_of_the_built_tokenizer(en_info, en_batches):
    maskable, word_start = en_batches.maskable, en_batches.word_start
    assert len(maskable) == len(word_start) == en_info.tokenizer.vocab_size
    ids = en_info.tokenizer
    specials = [ids.pad_token_id, ids.bos_token_id, ids.eos_token_id, ids.mask_token_id]
    assert not maskable[specials].any() and not word_start[specials].any()
    assert 0.2 < word_start.mean() < 0.9  # most sentencepiece pieces open a word, not all


def test_batch_layout_on_real_examples(en_info, en_batches):
    micro_batches = en_batches.batch(3)
    assert len(micro_batches) == GLOBAL // MICRO
    rows = read_rows(en_batches.dataset, en_batches.sampler.indices_for_step(3)[0])
    batch = micro_batches[0]
    for i, row in enumerate(rows):
        n, k = len(row["word_ids"]), len(row["entity_ids"])
        assert batch["page_ids"][i] == row["page_id"]
        assert batch["attention_mask"][i].sum() == n and batch["entity_attention_mask"][i].sum() == k
        assert (batch["input_ids"][i, n:] == en_info.tokenizer.pad_token_id).all()
        assert (batch["labels"][i, n:] == -100).all() and (batch["entity_labels"][i, k:] == -100).all()
        predicted = batch["labels"][i, :n] != -100
        assert predicted.sum() >= 1
        assert torch.equal(batch["labels"][i, :n][predicted], torch.from_numpy(row["word_ids"])[predicted])
        entity_predicted = batch["entity_labels"][i, :k] != -100
        assert entity_predicted.sum() >= 1
        assert (batch["entity_ids"][i, :k][entity_predicted] == schema.ENTITY_MASK_ID).all()
        positions = batch["entity_position_ids"][i]
        assert positions.shape[-1] == en_info.examples.limits.max_mention_length
        assert (positions[k:] == -1).all()
        for e, (start, end) in enumerate(zip(row["entity_start"], row["entity_end"])):
            span = positions[e][positions[e] != -1].tolist()
            longest = en_info.examples.limits.max_mention_length
            assert span == list(range(start, min(end, start + longest)))


def test_ranks_split_each_step_and_resume_replays_batches(en_info, en_batches):
    ranks = [train_batches(en_info, world=2, rank=r) for r in range(2)]
    pages = [p for tb in ranks for micro in tb.batch(5) for p in micro["page_ids"].tolist()]
    assert pages == [p for micro in en_batches.batch(5) for p in micro["page_ids"].tolist()]

    straight = en_batches.iter_from(0)
    expected = [next(straight) for _ in range(4)]
    straight.close()
    resumed = train_batches(en_info).iter_from(2)
    for step, micro_batches in expected[2:]:
        got_step, got = next(resumed)
        assert got_step == step
        assert all(torch.equal(a[key], b[key]) for a, b in zip(micro_batches, got) for key in a)
    resumed.close()
    assert not resumed._thread.is_alive(), "close() stops the prefetch thread"
    assert resumed.wait_seconds >= 0 and en_batches.wait_seconds >= straight.wait_seconds > 0


def test_eval_batches_are_deterministic_and_dealt_over_ranks(en_info, en_batches):
    first, again = list(en_batches.eval_batches(MICRO)), list(en_batches.eval_batches(MICRO))
    assert sum(len(b["page_ids"]) for b in first) == en_info.examples.validation_examples > 0
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again) for k in a)
    shares = [list(train_batches(en_info, world=2, rank=r).eval_batches(MICRO)) for r in range(2)]
    assert len(shares[0]) + len(shares[1]) == len(first)
    assert len(list(en_batches.eval_batches(MICRO, limit=1))) == 1


def test_collated_batch_is_what_luke_for_masked_lm_takes(en_info, en_batches):
    from transformers import LukeConfig, LukeForMaskedLM

    ids = en_info.tokenizer
    config = LukeConfig(vocab_size=ids.vocab_size, entity_vocab_size=en_info.entity_vocab.size,
                        hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, entity_emb_size=16, pad_token_id=ids.pad_token_id,
                        bos_token_id=ids.bos_token_id, eos_token_id=ids.eos_token_id)
    batch = dict(en_batches.batch(0)[0])
    batch.pop("page_ids")
    output = LukeForMaskedLM(config)(**batch)
    assert torch.isfinite(output.loss) and output.mlm_loss > 0 and output.mep_loss > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinned_batches_for_asynchronous_copies(en_info):
    sampler = StepSampler(en_info.examples.num_examples, GLOBAL, MICRO, 1, 0, 0)
    batches = TrainBatches(en_info, "train", sampler, MaskingConfig(), 0, pin_memory=True)
    stream = batches.iter_from(0)
    _, micro_batches = next(stream)
    stream.close()
    assert all(t.is_pinned() for batch in micro_batches for t in batch.values())


def rewrite_examples(corpus: Path, change) -> None:
    """Replace the build's examples/ with `change(rows)` (a dict of columns)."""
    path = corpus / schema.EXAMPLES_DIR
    rows = datasets.load_from_disk(str(path)).to_dict()
    shutil.rmtree(path)
    datasets.Dataset.from_dict(change(rows)).save_to_disk(str(path))


def test_entity_id_past_the_vocabulary_stops_iteration_naming_step_and_page(en_corpus_copy):
    info = Corpus.open(en_corpus_copy)

    def corrupt(rows):
        rows["entity_ids"] = [[info.entity_vocab.size] * len(ids) for ids in rows["entity_ids"]]
        return rows

    rewrite_examples(en_corpus_copy, corrupt)
    batches = train_batches(info).iter_from(4)
    with pytest.raises(RuntimeError, match=r"step 4 failed: .*page \d+: entity ids in"):
        next(batches)


def test_examples_disagreeing_with_manifest_are_refused(en_corpus_copy):
    info = Corpus.open(en_corpus_copy)
    rewrite_examples(en_corpus_copy, lambda rows: {k: v[:-1] for k, v in rows.items()})
    held = info.examples.num_examples - 1
    with pytest.raises(CorpusError, match=f"holds {held} examples, the manifest"):
        train_batches(info)
