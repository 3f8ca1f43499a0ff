"""Continuing an existing encoder: a RoBERTa- and an XLM-R-family base model made in the test
run (tests/base_models.py), their tokenizers as the corpus's LUKE tokenizer, their weights as
LUKE's word side, the two-stage schedule through the real deepspeed launcher, and every refusal.

The invariants held here: the LUKE tokenizer gives the base tokenizer's ids; the stored ids are
what the exported tokenizer gives; the initialised model, fed words alone, gives the base
model's MLM logits; stage 1 leaves the word side bit-identical to the base; stage 2 starts from
stage 1's weights with a fresh optimizer; each stage resumes exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import EN_DUMP, build_corpus
from corpus.reader import Corpus
from pretrain import run_layout
from train_helpers import (TINY, deepspeed_command, interrupt_after, metrics_lines, run_command,
                           single_command, train_args, train_losses)

TRICKY = ["Tallinn is the capital of Estonia.", " leading space", "trailing ", "",
          "Ünïcödé café naïve", "emoji 🙂 and ☃", "<mask> and <s> in text", "x\ty\nz",
          "two  spaces", "digits 2011 and 1,000.5"]


def base_tokenizer(base: Path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(base))


def luke_tokenizer(corpus: Path):
    from corpus.word_tokenizer import load_tokenizer
    return load_tokenizer(corpus / "tokenizer")


# ------------------------------------------------------------------------ tokenizers

def test_roberta_luke_tokenizer_gives_robertas_ids_on_any_text(roberta_corpus, tiny_roberta,
                                                               sample_lines):
    ours, theirs = luke_tokenizer(roberta_corpus), base_tokenizer(tiny_roberta)
    assert type(ours).__name__ == "LukeTokenizer"
    for text in sample_lines + TRICKY:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
    base_size = len(theirs)
    added = ours.convert_tokens_to_ids(["<ent>", "<ent2>", "[UNK]", "[PAD]", "[MASK]",
                                        "[MASK2]"])
    assert added == list(range(base_size, base_size + 6)) and len(ours) == base_size + 6
    corpus = Corpus.open(roberta_corpus)
    assert (corpus.tokenizer.kind, corpus.tokenizer.word_start_marker) == ("bpe", "\u0120")
    assert corpus.tokenizer.vocab_size == len(ours)
    assert (corpus.tokenizer.pad_token_id, corpus.tokenizer.bos_token_id,
            corpus.tokenizer.eos_token_id) == (theirs.pad_token_id, theirs.bos_token_id,
                                               theirs.eos_token_id)


def test_xlmr_luke_tokenizer_gives_xlmrs_ids_where_mluke_can(xlmr_corpus, tiny_xlmr,
                                                             sample_lines):
    """transformers 5.24's MLukeTokenizer rebuilds its own backend: the piece ids are XLM-R's
    (fairseq layout), but unknown characters become id 0 (<s>) instead of 3 (<unk>) and a run
    of spaces gives a lone "▁" piece that XLM-R's whitespace split never makes. Everything else
    tokenizes alike; the stored examples hold neither case (whitespace collapsed, sentences
    with unknown characters dropped)."""
    ours, theirs = luke_tokenizer(xlmr_corpus), base_tokenizer(tiny_xlmr)
    assert type(ours).__name__ == "MLukeTokenizer"
    compared = 0
    for text in sample_lines + TRICKY:
        text = " ".join(text.split())
        ids = ours(text)["input_ids"]
        if 0 in ids[1:]:
            continue                              # holds a character the vocabulary lacks
        assert ids == theirs(text)["input_ids"], text
        compared += 1
    assert compared > 0.8 * len(sample_lines)          # the rest hold characters it lacks
    for token in ("<s>", "<pad>", "</s>", "<unk>", "<mask>"):
        assert ours.convert_tokens_to_ids(token) == theirs.convert_tokens_to_ids(token)
    # the known differences, so that a transformers release that mends them is noticed
    assert ours("☃")["input_ids"][1:-1] != theirs("☃")["input_ids"][1:-1]
    assert 0 in ours("☃")["input_ids"][1:] and 3 in theirs("☃")["input_ids"]
    assert ours("two  spaces")["input_ids"] != theirs("two  spaces")["input_ids"]
    assert Corpus.open(xlmr_corpus).tokenizer.kind == "xlmr"


@pytest.mark.parametrize("family", ["roberta", "xlmr"])
def test_built_ids_are_what_the_luke_tokenizer_gives(family, request):
    from corpus.inspect import CorpusView

    corpus = request.getfixturevalue(f"{family}_corpus")
    for split in ("examples", "validation"):
        view = CorpusView(corpus, split)
        assert len(view.dataset) > 0
        for row in range(len(view.dataset)):
            assert view.round_trips(view.example(row)), (split, row)


def test_sentences_with_characters_xlmr_lacks_are_dropped_and_counted(xlmr_corpus):
    import datasets

    counts = json.loads((xlmr_corpus / "manifest.json").read_text())["stages"]["examples"][
        "counts"]
    assert counts["sentences_with_unknown_characters"] > 0
    words = datasets.load_from_disk(str(xlmr_corpus / "examples"))["word_ids"]
    assert all(0 not in ids[1:] for ids in words)         # <s> only where it begins a sequence


# ------------------------------------------------------------------------ initial weights

def initialised_model(family: str, impl: str, base: Path, corpus_dir: Path):
    from pretrain.config import load_config_and_keys, luke_config, with_fixed_shape
    from pretrain.init_weights import initial_weights, load_initial_weights, open_init_source
    from pretrain.models import build_model

    corpus = Corpus.open(corpus_dir)
    source = open_init_source(base)
    config, chosen = load_config_and_keys(TINY, [f"model.impl={impl}"])
    config = with_fixed_shape(config, chosen, source.shape, str(base))
    torch.manual_seed(0)
    model = build_model(luke_config(config.model, corpus), impl)
    load_initial_weights(model, initial_weights(source, model, corpus), source)
    return model.eval()


def base_logits(base: Path, texts: list[str]):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(base)).eval()
    batch = base_tokenizer(base)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    return batch, logits[batch["attention_mask"].bool()]


def word_logits(model, batch, width: int):
    """The logits of every real word position (fast model: all positions labelled)."""
    words = batch["attention_mask"].bool()
    with torch.no_grad():
        if hasattr(model, "sparse_grads_on_cpu"):            # the fast model
            labels = batch["input_ids"].masked_fill(~words, -100)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=labels).logits
        else:
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits[words]
    return logits[:, :width]


@pytest.mark.parametrize("impl", ["fast", "hf"])
@pytest.mark.parametrize("family", ["roberta", "xlmr"])
def test_the_initialised_model_gives_the_base_models_logits(family, impl, request, sample_lines):
    base, corpus = request.getfixturevalue(f"tiny_{family}"), request.getfixturevalue(
        f"{family}_corpus")
    batch, expected = base_logits(base, sample_lines[:4])
    got = word_logits(initialised_model(family, impl, base, corpus), batch, expected.shape[-1])
    assert (got - expected).abs().max().item() < 1e-5


def test_ent_rows_start_as_at_and_hash(tiny_roberta, roberta_corpus):
    model = initialised_model("roberta", "fast", tiny_roberta, roberta_corpus)
    theirs = base_tokenizer(tiny_roberta)
    table = model.luke.embeddings.word_embeddings.weight
    ent, ent2 = luke_tokenizer(roberta_corpus).convert_tokens_to_ids(["<ent>", "<ent2>"])
    assert torch.equal(table[ent], table[theirs.convert_tokens_to_ids("@")])
    assert torch.equal(table[ent2], table[theirs.convert_tokens_to_ids("#")])


# ------------------------------------------------------------------------ refusals

def test_a_base_model_that_luke_cannot_express_is_refused_before_any_work(tmp_path, capsys):
    from transformers import BertConfig, BertForMaskedLM

    from corpus.cli import main

    bert = tmp_path / "bert"
    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32)).save_pretrained(bert)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]))
    capsys.readouterr()
    assert main(["build", str(EN_DUMP), "--out", str(tmp_path / "out"),
                 "--base-model", str(bert)]) == 1
    err = capsys.readouterr().err
    assert "model_type 'bert' is not supported" in err and "RoBERTa family" in err
    assert err.count("\n") == 1 and not (tmp_path / "out" / "pages").exists()


@pytest.mark.parametrize("missing, message", [
    ("weights", "the tokenizer has no model weights beside it"),
    ("tokenizer", "the model has no tokenizer files")])
def test_a_base_model_without_its_tokenizer_or_its_weights_is_refused(tiny_roberta, tmp_path,
                                                                      capsys, missing, message):
    from corpus.cli import main

    base = Path(shutil.copytree(tiny_roberta, tmp_path / "base"))
    names = ("model.safetensors",) if missing == "weights" else (
        "tokenizer.json", "vocab.json", "merges.txt")
    for name in names:
        (base / name).unlink()
    assert main(["build", str(EN_DUMP), "--out", str(tmp_path / "out"),
                 "--base-model", str(base)]) == 1
    assert message in capsys.readouterr().err


def refused_train(capsys, *args: str) -> str:
    from pretrain.cli import main

    assert main(list(args)) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1
    return lines[0]


def test_a_corpus_of_another_tokenizer_is_refused(tiny_xlmr, tiny_roberta, roberta_corpus,
                                                  en_corpus, tmp_path, capsys):
    message = refused_train(capsys, *train_args(roberta_corpus, tmp_path / "run",
                                                "--init-from", str(tiny_xlmr)))
    assert f"was built with the tokenizer of {tiny_roberta}, not this model's" in message
    message = refused_train(capsys, *train_args(en_corpus, tmp_path / "run",
                                                "--init-from", str(tiny_roberta)))
    assert "was built with a tokenizer it trained itself" in message
    assert not (tmp_path / "run").exists()


def test_a_shape_that_contradicts_the_base_is_refused(tiny_roberta, roberta_corpus, tmp_path,
                                                      capsys):
    message = refused_train(capsys, *train_args(roberta_corpus, tmp_path / "run", "--init-from",
                                                str(tiny_roberta), "model.hidden_size=128"))
    assert "model.hidden_size=128 contradicts --init-from" in message
    assert "whose weights have hidden_size=64" in message


# ------------------------------------------------------------------------ two stages, for real

STEPS, SAVE_EVERY = 24, 8
STAGE1 = ("train.trainable=entity", "optim.lr=1e-2")


def word_side_equals_base(run: Path, base: Path) -> list[str]:
    """The names of the base's tensors that the run's latest checkpoint does not hold as-is."""
    from safetensors.torch import load_file

    from pretrain.consolidate import luke_weights

    trained = luke_weights(run_layout.checkpoint_dir(run, run_layout.latest_step(run)))
    differing = []
    for name, tensor in load_file(str(base / "model.safetensors")).items():
        name = name.removeprefix("roberta.")
        ours = trained[name if name.startswith("lm_head.") else f"luke.{name}"]
        if not torch.equal(ours[:tensor.shape[0]], tensor):
            differing.append(name)
    return differing


@pytest.fixture(scope="module", params=[2, 3], ids=["zero2", "zero3"])
def stage1(request, tiny_roberta, roberta_corpus, tmp_path_factory):
    """(stage, a straight stage-1 run, the same run stopped by SIGTERM and resumed)."""
    stage = request.param
    base = tmp_path_factory.mktemp(f"stage1-zero{stage}")

    def args(run: Path) -> list[str]:
        return train_args(roberta_corpus, run, "--max-steps", str(STEPS), "--save-every",
                          str(SAVE_EVERY), "--zero-stage", str(stage), "--init-from",
                          str(tiny_roberta), *STAGE1)
    straight = run_command(deepspeed_command(args(base / "straight")))
    assert straight.returncode == 0, straight.stderr[-3000:]
    interrupt_after(deepspeed_command(args(base / "resumed")), base / "resumed", steps=3)
    again = run_command(deepspeed_command(args(base / "resumed") + ["--resume"]))
    assert again.returncode == 0, again.stderr[-3000:]
    return stage, base / "straight", base / "resumed"


@pytest.mark.slow
def test_stage1_trains_the_entity_side_only_and_resumes_exactly(stage1, tiny_roberta):
    _, straight, resumed = stage1
    assert word_side_equals_base(straight, tiny_roberta) == []
    entity = [r["mep_loss"] for r in metrics_lines(straight) if r["kind"] == "train"]
    assert sum(entity[-4:]) / 4 < sum(entity[:4]) / 4 - 0.1, entity
    expected, got = train_losses(straight), train_losses(resumed)
    assert sorted(got) == list(range(1, STEPS + 1))
    assert all(got[s] == pytest.approx(expected[s], rel=1e-5) for s in expected)
    init = json.loads((straight / "config.json").read_text())["init_from"]
    assert (init["kind"], init["path"]) == ("base", str(tiny_roberta.resolve()))


@pytest.mark.slow
@pytest.mark.parametrize("stage1", [2], indirect=True, ids=["zero2"])
def test_stage1_export_gives_the_base_logits_for_words(stage1, tiny_roberta, sample_lines,
                                                       tmp_path):
    from transformers import LukeForMaskedLM

    from pretrain.export import export_run

    _, straight, _ = stage1
    out = export_run(straight, tmp_path / "hf")
    batch, expected = base_logits(tiny_roberta, sample_lines[:4])
    got = word_logits(LukeForMaskedLM.from_pretrained(str(out)).eval(), batch,
                      expected.shape[-1])
    assert (got - expected).abs().max().item() < 1e-5
    card = (out / "README.md").read_text()
    assert f"Started from: the roberta encoder `{tiny_roberta.resolve()}`" in card
    assert "trained the entity side only" in card


@pytest.mark.slow
@pytest.mark.parametrize("stage1", [2], indirect=True, ids=["zero2"])
def test_stage2_starts_from_stage1_with_a_fresh_optimizer(stage1, roberta_corpus, tiny_roberta,
                                                          tmp_path):
    from pretrain.consolidate import luke_weights
    from pretrain.init_weights import open_init_source

    _, stage1_run, _ = stage1

    def args(run: Path) -> list[str]:
        return train_args(roberta_corpus, run, "--max-steps", "6", "--save-every", "2",
                          "--zero-stage", "2", "--init-from", str(stage1_run))
    run, resumed = tmp_path / "stage2", tmp_path / "stage2-resumed"
    result = run_command(deepspeed_command(args(run)))
    assert result.returncode == 0, result.stderr[-3000:]
    # the same stage stopped and resumed, without --init-from: its checkpoint has the weights
    interrupt_after(deepspeed_command(args(resumed)), resumed, steps=2)
    again = run_command(deepspeed_command([a for a in args(resumed) if a not in (
        "--init-from", str(stage1_run))] + ["--resume"]))
    assert again.returncode == 0, again.stderr[-3000:]
    expected, got = train_losses(run), train_losses(resumed)
    assert sorted(got) == list(range(1, 7))
    assert all(got[s] == pytest.approx(expected[s], rel=1e-5) for s in expected)
    lines = [r for r in metrics_lines(run) if r["kind"] == "train"]
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert lines[0]["lr"] == pytest.approx(1e-3 / 5)           # tiny.toml's warmup, from step 1
    source = open_init_source(stage1_run)
    assert source.kind == "run" and source.base_model == str(tiny_roberta.resolve())
    start = initialised_model("roberta", "fast", stage1_run, roberta_corpus).state_dict()
    trained = luke_weights(run_layout.checkpoint_dir(stage1_run, STEPS))
    assert all(torch.equal(start[name], trained[name]) for name in start if name in trained)
    config = json.loads((run / "config.json").read_text())
    assert config["init_from"]["kind"] == "run" and config["train"]["trainable"] == "all"


README_MARK = "<!-- recipe: tiny base model -->"


def readme_recipe() -> str:
    """The bash block of the README that follows README_MARK."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split(README_MARK, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block


@pytest.mark.slow
@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_the_readme_recipe_runs_as_written(family, tmp_path, sample_lines):
    """The README's tiny-encoder block, word for word, with FAMILY and the work directory
    set: both stages and the export, then what each promises."""
    import os
    import subprocess
    import sys

    from transformers import AutoTokenizer, LukeForMaskedLM

    script = readme_recipe()
    assert "FAMILY=roberta" in script and "W=/tmp/luke-from-$FAMILY" in script
    script = script.replace("FAMILY=roberta", f"FAMILY={family}").replace(
        "W=/tmp/luke-from-$FAMILY", f"W={tmp_path}/w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LUKE_PROGRESS": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "w"
    assert word_side_equals_base(work / "stage1", work / "encoder") == []
    tokenizer = AutoTokenizer.from_pretrained(str(work / "hf"))
    assert type(tokenizer).__name__ == ("LukeTokenizer" if family == "roberta"
                                        else "MLukeTokenizer")
    config = json.loads((work / "stage2" / "config.json").read_text())
    assert config["init_from"]["kind"] == "run"
    assert config["init_from"]["base_model"] == str((work / "encoder").resolve())
    model = LukeForMaskedLM.from_pretrained(str(work / "hf"))
    assert model.config.vocab_size == len(tokenizer)
