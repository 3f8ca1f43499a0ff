"""Zero-shot entity disambiguation: the task (pretrain/ed_task.py), `luke-eval` on exported
models and runs (pretrain/ed_eval.py), `train.eval_ed_every` under ZeRO-3 on two ranks, and the
score in the model card.

The five bundled English articles share no ambiguous anchor text across pages, so the task is
checked on a dump written here: three training pages where "Mercury" links to the planet three
times and to the element twice, and "Paris" to the city three times and to Paris, Texas twice,
and one held-out page whose mentions cover each case: a scored one the prior gets wrong, a
scored one it gets right, one and no candidates, a target outside the vocabulary (linked once,
under --min-link-count 2) and a target never linked from its anchor text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY_RUN_STEPS, build_corpus
from corpus.examples_stage import choose_validation_rows
from corpus.reader import Corpus
from pretrain.ed_eval import main as luke_eval
from pretrain.ed_score import rank_batches
from pretrain.ed_task import (EDTask, TaskExample, count_anchor_targets, build_ed_task,
                              ranked_candidates)
from test_dump import write_dump
from train_helpers import BIN, deepspeed_command, run_command, train_args

TRAINING_PAGES = [
    dict(title="Mercury (planet)", text=(
        "[[Mercury (planet)|Mercury]] is the smallest planet of the Solar System. "
        "The planet [[Mercury (planet)|Mercury]] orbits very close to the [[Sun]]. "
        "Astronomers watch [[Mercury (planet)|Mercury]] at dawn and at dusk. "
        "The city of [[Paris]] has an old observatory for the planets.")),
    dict(title="Mercury (element)", text=(
        "[[Mercury (element)|Mercury]] is a metal that is liquid at room temperature. "
        "Old thermometers held [[Mercury (element)|Mercury]] inside a thin glass tube. "
        "Shops in [[Paris]] sold such thermometers for many years.")),
    dict(title="Paris, Texas", text=(
        "[[Paris, Texas|Paris]] is a small city in the state of [[Texas]]. "
        "Visitors often confuse [[Paris, Texas|Paris]] with the French capital. "
        "A film named after [[Paris]] in France was shot far away from there.")),
]
VALIDATION_PAGE = dict(title="Confusions", text=(
    # Each mention's fate in a comment: scored, or why not.
    "Doctors once used [[Mercury (element)|Mercury]] in medicine for many years. "  # scored
    "Tourists in [[Paris]] walk along the river every single day. "                 # scored
    "The river [[Seine]] flows through the old city centre. "                       # 1 candidate
    "The town of [[Lyon]] lies far to the south of the capital. "                   # none
    "The god [[Mercury (mythology)|Mercury]] carried messages for the other gods. "  # [UNK]
    "The rodeo near [[Texas|Paris]] drew large crowds last summer. "  # gold not a candidate
    "The [[Seine]] river is long."))                                                # 1 candidate
EXCLUDED = {"fewer_than_two_candidates": 3, "gold_outside_vocabulary": 1,
            "gold_not_a_candidate": 1}
GOLD = ["Mercury (element)", "Paris"]
PRIOR = ["Mercury (planet)", "Paris"]           # the most linked target of each anchor text


@pytest.fixture(scope="module")
def ed_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ed")
    pages = list(TRAINING_PAGES)
    pages.insert(choose_validation_rows(len(pages) + 1, 1, seed=0)[0], VALIDATION_PAGE)
    dump = write_dump(root / "ambiguous.xml.bz2",
                      [dict(page, page_id=i + 1) for i, page in enumerate(pages)])
    corpus = build_corpus(dump, root / "corpus", min_link_count=2)
    held_out = Corpus.open(corpus).examples.validation_page_ids
    assert held_out == (pages.index(VALIDATION_PAGE) + 1,)
    return corpus


def entity_vocab(corpus: Path) -> dict[str, int]:
    return json.loads(Corpus.open(corpus).entity_vocab_file.read_text(encoding="utf-8"))


def handmade_model(corpus_dir: Path, out: Path, favoured: list[str]) -> Path:
    """A LukeForMaskedLM for the corpus whose masked-entity head prefers the `favoured`
    entities whatever the context (a bias of 100 over random logits), saved as luke-export
    would (config, weights, the corpus's entity_vocab.json)."""
    from transformers import LukeForMaskedLM

    from pretrain.config import ModelConfig, luke_config

    torch.manual_seed(0)
    shape = ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, entity_emb_size=16)
    model = LukeForMaskedLM(luke_config(shape, Corpus.open(corpus_dir)))
    vocab = entity_vocab(corpus_dir)
    with torch.no_grad():
        model.entity_predictions.bias.zero_()
        model.entity_predictions.bias[[vocab[title] for title in favoured]] = 100.0
    model.save_pretrained(out)
    shutil.copy(corpus_dir / "tokenizer" / "entity_vocab.json", out)
    return out


def eval_json(capsys, *args: str) -> dict:
    """luke-eval's --json object, run in this process. (DeepSpeed, imported earlier in the
    session, may log to the captured stdout; a fresh process keeps stdout to the object, which
    test_export_and_run_of_the_sample_score_alike checks.)"""
    assert luke_eval([*map(str, args), "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def eval_error(capsys, *args: str) -> str:
    assert luke_eval(list(map(str, args))) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith("luke-eval: error: ")
    return lines[-1]


# ------------------------------------------------------------------------- the task

def test_dictionary_counts_training_anchors_only_whitespace_collapsed():
    pages = [{"id": 1, "text": "Go to  Paris\nnow, Paris!", "link_start": [6, 18],
              "link_end": [12, 23], "link_target": ["Paris", "Paris, Texas"]},
             {"id": 2, "text": "Paris", "link_start": [0], "link_end": [5],
              "link_target": ["Paris (mythology)"]},
             {"id": 3, "text": "Mercury\n rises", "link_start": [0], "link_end": [14],
              "link_target": ["Mercury rising"]}]
    targets, pages_read, links = count_anchor_targets(pages, {2}, {"Paris", "Mercury rises"})
    assert targets == {"Paris": {"Paris": 1, "Paris, Texas": 1},
                       "Mercury rises": {"Mercury rising": 1}}
    assert (pages_read, links) == (2, 3)


def test_candidates_are_in_the_vocabulary_most_linked_first_ties_by_id():
    vocab = {"A": 9, "B": 5, "C": 7}
    assert ranked_candidates({"A": 2, "B": 2, "C": 3, "Outside": 10}, vocab) == (7, 5, 9)


def test_task_scores_ambiguous_mentions_and_counts_the_others(ed_corpus):
    task = build_ed_task(Corpus.open(ed_corpus))
    vocab = entity_vocab(ed_corpus)
    scored = [m for example in task.examples for m in example.mentions]
    assert [(m.gold, m.candidates) for m in scored] == [
        (vocab["Mercury (element)"], (vocab["Mercury (planet)"], vocab["Mercury (element)"])),
        (vocab["Paris"], (vocab["Paris"], vocab["Paris, Texas"]))]
    assert [m.prior for m in scored] == [vocab[title] for title in PRIOR]
    assert task.summary() == {"prior_accuracy": 0.5, "mentions": 2, "candidates": 4,
                              "validation_mentions": 7, "excluded": EXCLUDED}
    assert task.training_pages == len(TRAINING_PAGES)


def test_every_rank_runs_as_many_forwards_and_each_example_counts_once():
    task = EDTask([TaskExample({"page_id": i}, ()) for i in range(5)], validation_mentions=0)
    for world in (1, 2, 3, 4, 8):
        plans = [rank_batches(task, 2, rank, world) for rank in range(world)]
        assert len({len(plan) for plan in plans}) == 1
        counted = [e.row["page_id"] for plan in plans for batch, counts in plan if counts
                   for e in batch]
        assert sorted(counted) == list(range(5))
    assert rank_batches(EDTask([], validation_mentions=0), 2, 1, 2) == []


# ------------------------------------------------------------------------- luke-eval

def test_a_model_preferring_the_gold_candidates_scores_one(ed_corpus, tmp_path, capsys):
    model = handmade_model(ed_corpus, tmp_path / "gold", GOLD)
    result = eval_json(capsys, model, "--corpus", ed_corpus)
    assert (result["accuracy"], result["prior_accuracy"]) == (1.0, 0.5)
    assert (result["mentions"], result["candidates"], result["validation_mentions"]) == (2, 4, 7)
    assert result["excluded"] == EXCLUDED and result["step"] is None
    # The head decides: preferring the other candidates gets every mention wrong.
    wrong = handmade_model(ed_corpus, tmp_path / "wrong", ["Mercury (planet)", "Paris, Texas"])
    assert eval_json(capsys, wrong, "--corpus", ed_corpus)["accuracy"] == 0.0


def test_the_table_sets_model_and_prior_side_by_side(ed_corpus, tmp_path, capsys):
    model = handmade_model(ed_corpus, tmp_path / "gold", GOLD)
    assert luke_eval([str(model), "--corpus", str(ed_corpus)]) == 0
    table = capsys.readouterr().out
    assert f"| masked-entity head of {model} | 1.0000 | 2 | 4 (2.00) |" in table
    assert "| prior: most frequent target | 0.5000 | 2 | 4 (2.00) |" in table
    assert "(2 of 7)" in table and "fewer than two candidates 3" in table


def test_export_and_run_of_the_sample_score_alike(en_corpus, tiny_run, tiny_export, capsys):
    """On the bundled sample no validation mention has two candidates: all are counted."""
    import datasets

    exported = eval_json(capsys, tiny_export, "--corpus", en_corpus)
    done = run_command([str(BIN / "luke-eval"), str(tiny_run), "--corpus", str(en_corpus),
                        "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.splitlines()) == 1        # the object alone, DeepSpeed's logs aside
    run = json.loads(done.stdout)
    assert run["step"] == TINY_RUN_STEPS
    for key in ("model", "step"):
        del exported[key], run[key]
    assert exported == run
    validation = datasets.load_from_disk(str(en_corpus / "validation"))
    mentions = sum(len(ids) for ids in validation["entity_ids"])
    assert exported["validation_mentions"] == mentions > 0
    assert exported["mentions"] + sum(exported["excluded"].values()) == mentions
    assert exported["accuracy"] is None and exported["prior_accuracy"] is None
    assert exported["training_pages"] == 4


def test_a_model_of_another_corpus_is_refused(ed_corpus, en_corpus, tiny_run, tmp_path,
                                              capsys):
    model = handmade_model(ed_corpus, tmp_path / "gold", GOLD)
    assert "evaluate with the corpus the model was trained on" in \
        eval_error(capsys, model, "--corpus", en_corpus)
    assert "pass the corpus the run trained on" in eval_error(capsys, tiny_run, "--corpus",
                                                              ed_corpus)


def test_bad_model_arguments_are_one_line(ed_corpus, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "neither an exported model" in eval_error(capsys, tmp_path / "empty", "--corpus",
                                                     ed_corpus)
    model = handmade_model(ed_corpus, tmp_path / "gold", GOLD)
    assert "--checkpoint is for a training run" in eval_error(
        capsys, model, "--corpus", ed_corpus, "--checkpoint", "3")
    assert "corpus directory does not exist" in eval_error(capsys, model, "--corpus",
                                                           tmp_path / "nowhere")


def test_a_corpus_without_validation_pages_is_refused(ed_corpus, tmp_path, capsys):
    corpus = Path(shutil.copytree(ed_corpus, tmp_path / "corpus"))
    manifest = json.loads((corpus / "manifest.json").read_text())
    manifest["stages"]["examples"]["validation_examples"] = 0
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    model = handmade_model(ed_corpus, tmp_path / "gold", GOLD)
    assert "has no validation examples to disambiguate" in eval_error(
        capsys, model, "--corpus", corpus)


# ------------------------------------------------------------------------- during training

@pytest.mark.slow
def test_training_logs_the_score_under_zero3_and_the_card_shows_it(ed_corpus, tmp_path,
                                                                   capsys):
    """Two ranks under ZeRO-3 with one validation batch: the rank without one must still run
    a forward, or the other waits forever. The logged score is luke-eval's on the same
    checkpoint, and the export's model card shows it."""
    from pretrain.export import export_run

    run = tmp_path / "run"
    done = run_command(deepspeed_command(train_args(
        ed_corpus, run, "--max-steps", "4", "--zero-stage", "3", "train.micro_batch_size=1",
        "train.global_batch_size=4", "train.eval_ed_every=2")), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scores = [line for line in lines if line["kind"] == "entity_disambiguation"]
    assert [line["step"] for line in scores] == [2, 4]
    measured = eval_json(capsys, run, "--corpus", ed_corpus)
    for key in ("accuracy", "prior_accuracy", "mentions", "candidates", "validation_mentions"):
        assert scores[-1][key] == measured[key], key
    assert scores[-1]["excluded"] == sum(EXCLUDED.values())
    card = (export_run(run, tmp_path / "hf") / "README.md").read_text()
    assert (f"- Zero-shot entity disambiguation (step 4, masked-entity head ranking the "
            f"candidates of 2 validation mentions): accuracy {measured['accuracy']:.4f}, "
            f"most-frequent-target baseline 0.5000") in card


def test_the_card_of_a_run_without_the_score_says_how_to_measure_it(tiny_export):
    card = (tiny_export / "README.md").read_text()
    assert "Zero-shot entity disambiguation: not measured during training " \
           "(`train.eval_ed_every`); measure it with `luke-eval THIS_DIR --corpus DIR`" in card


def test_eval_ed_every_needs_validation_examples(ed_corpus, tmp_path, capsys):
    from pretrain.cli import main as luke_train

    corpus = Path(shutil.copytree(ed_corpus, tmp_path / "corpus"))
    manifest = json.loads((corpus / "manifest.json").read_text())
    manifest["stages"]["examples"]["validation_examples"] = 0
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    assert luke_train(train_args(corpus, tmp_path / "run", "--max-steps", "2",
                                 "train.eval_ed_every=5")) == 1
    assert "train.eval_ed_every: " in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
