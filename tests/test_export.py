"""luke-export on real runs: two `luke-train` runs of configs/tiny.toml on the English build,
through the real `deepspeed` launcher with two CPU ranks (ZeRO-2 with plain attention, ZeRO-3
with entity-aware attention), exported and loaded back through transformers.

The round trip compares the exported model with the training model *as DeepSpeed loads the
checkpoint itself* (`engine.load_checkpoint` in a second two-rank launch: this file run as a
script, see `probe_main`), so the export's own consolidation is not what it is checked against.

Run as a script under the launcher, this file is that probe:
  deepspeed --num_gpus 2 tests/test_export.py OUT.pt RUN [RUN ...]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from train_helpers import BIN, TINY, free_port
from train_helpers import ROOT as REPO

STEPS, SAVE_EVERY = 4, 2
# Small batches keep the runs to seconds; evaluation at every checkpoint fills the card.
RUN_OVERRIDES = ("train.micro_batch_size=2", "train.global_batch_size=4", "train.eval_every=2",
                 "data.eval_batches=2")
RUNS = {"zero2_plain": (2, "model.use_entity_aware_attention=false"),
        "zero3_entity_aware": (3, "model.use_entity_aware_attention=true")}
BODY_PREFIXES = ("embeddings.", "entity_embeddings.", "encoder.")
HEAD_CLASSES = ("LukeModel", "LukeForEntityClassification", "LukeForEntityPairClassification",
                "LukeForEntitySpanClassification", "LukeForSequenceClassification",
                "LukeForTokenClassification", "LukeForQuestionAnswering", "LukeForMultipleChoice")
TOL = 1e-5


def deepspeed_launch(*args: str) -> None:
    """`deepspeed --num_gpus 2 ARGS` (two CPU ranks here); fails the test with its output."""
    command = [str(BIN / "deepspeed"), "--master_port", str(free_port()), "--num_gpus", "2",
               *args]
    # The venv's bin is first on PATH (conftest), so DeepSpeed builds its op with the venv's ninja.
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, \
        f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def runs(en_corpus, tmp_path_factory) -> dict[str, Path]:
    """The two training runs, each with checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, (stage, attention) in RUNS.items():
        run = root / name
        deepspeed_launch(str(BIN / "luke-train"), "--config", str(TINY), "--corpus", str(en_corpus),
                         "--output", str(run), "--max-steps", str(STEPS), "--save-every",
                         str(SAVE_EVERY), "--zero-stage", str(stage), *RUN_OVERRIDES, attention)
        made[name] = run
    return made


@pytest.fixture(scope="module")
def zero1_single_rank_run(en_corpus, tmp_path_factory) -> Path:
    """A ZeRO-1 run of one process started without any launcher, of transformers' own model
    (model.impl=hf) rather than the fast one."""
    run = tmp_path_factory.mktemp("runs1") / "zero1_single_hf"
    command = [str(BIN / "luke-train"), "--config", str(TINY), "--corpus", str(en_corpus),
               "--output", str(run), "--max-steps", str(STEPS), "--save-every", str(STEPS),
               "--zero-stage", "1", *RUN_OVERRIDES, "model.impl=hf"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def probes(runs, tmp_path_factory) -> dict[str, dict]:
    """For each run: a corpus batch and the training model's outputs on it, as DeepSpeed
    loaded the latest checkpoint (both runs in one two-rank launch)."""
    out = tmp_path_factory.mktemp("probe") / "probes.pt"
    deepspeed_launch(str(Path(__file__).resolve()), str(out), *map(str, runs.values()))
    results = torch.load(out, weights_only=False)
    return {name: results[str(run)] for name, run in runs.items()}


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory) -> dict[str, Path]:
    from pretrain.export import export_run

    root = tmp_path_factory.mktemp("hf")
    return {name: export_run(run, root / name) for name, run in runs.items()}


def load_masked_lm(directory: Path):
    from transformers import LukeForMaskedLM

    model, info = LukeForMaskedLM.from_pretrained(directory, output_loading_info=True)
    return model.eval(), info


# ------------------------------------------------------------------------------ round trip

@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_exported_model_reproduces_the_training_model(name, exports, probes):
    model, info = load_masked_lm(exports[name])
    assert not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    probe = probes[name]
    batch = probe["batch"]
    with torch.no_grad():
        out = model(**batch)
    words, entities = batch["labels"].ne(-100), batch["entity_labels"].ne(-100)
    assert words.any() and entities.any()
    # The training model (fast implementation) returns logits of the labelled positions only,
    # in row-major order: exactly what boolean indexing of the full logits gives.
    torch.testing.assert_close(out.logits[words], probe["logits"], rtol=TOL, atol=TOL)
    torch.testing.assert_close(out.entity_logits[entities], probe["entity_logits"],
                               rtol=TOL, atol=TOL)
    for key in ("loss", "mlm_loss", "mep_loss"):
        torch.testing.assert_close(getattr(out, key), probe[key], rtol=TOL, atol=TOL)


@pytest.mark.slow
def test_tied_weights_stay_tied_and_entity_bias_survives(runs, exports):
    from safetensors.torch import load_file

    from pretrain.consolidate import consolidate_checkpoint
    from pretrain.run_layout import checkpoint_dir

    for name, run in runs.items():
        trained = consolidate_checkpoint(checkpoint_dir(run, STEPS))
        model, _ = load_masked_lm(exports[name])
        luke = model.luke
        entity_table = luke.entity_embeddings.entity_embeddings.weight
        assert model.entity_predictions.decoder.weight is entity_table
        torch.testing.assert_close(model.lm_head.decoder.weight,
                                   luke.embeddings.word_embeddings.weight, rtol=0, atol=0)
        # trained away from its zero init, and exported as trained
        bias = trained["entity_predictions.bias"]
        assert bias.abs().sum() > 0
        torch.testing.assert_close(model.entity_predictions.bias, bias, rtol=0, atol=0)
        saved = load_file(exports[name] / "model.safetensors")
        torch.testing.assert_close(saved["entity_predictions.bias"], bias, rtol=0, atol=0)
        word_table = trained["luke.embeddings.word_embeddings.weight"]
        torch.testing.assert_close(saved["lm_head.decoder.weight"], word_table, rtol=0, atol=0)


@pytest.mark.slow
def test_merged_partitions_equal_the_module_deepspeed_saved(runs, zero1_single_rank_run):
    """With ZeRO 1 and 2 DeepSpeed also saves the whole module; merging the fp32 partitions of
    all ranks must give exactly it (1 rank and 2 ranks), tied names included."""
    from pretrain.consolidate import consolidate_checkpoint
    from pretrain.run_layout import checkpoint_dir

    for run in (zero1_single_rank_run, runs["zero2_plain"]):
        directory = checkpoint_dir(run, STEPS)
        merged = consolidate_checkpoint(directory)
        module = torch.load(directory / "mp_rank_00_model_states.pt", weights_only=False)["module"]
        assert set(merged) == set(module)
        for name, tensor in module.items():
            assert torch.equal(merged[name], tensor.float()), (run.name, name)
        assert torch.equal(merged["entity_predictions.decoder.weight"],
                           merged["luke.entity_embeddings.entity_embeddings.weight"])


@pytest.mark.slow
def test_single_rank_zero1_hf_run_round_trip(zero1_single_rank_run, tmp_path):
    """The training model (transformers' implementation, word decoder tied) holding the module
    DeepSpeed saved gives the exported model's logits and loss."""
    from pretrain.export import export_run
    from pretrain.run_layout import checkpoint_dir

    run = zero1_single_rank_run
    config, corpus, training = training_model(run)
    saved = torch.load(checkpoint_dir(run, STEPS) / "mp_rank_00_model_states.pt",
                       weights_only=False)["module"]
    training.load_state_dict(saved)
    model, info = load_masked_lm(export_run(run, tmp_path / "hf"))
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.use_entity_aware_attention
    batch = probe_batch(corpus, config)
    with torch.no_grad():
        expected, got = training.eval()(**batch), model(**batch)
    for key in ("logits", "entity_logits", "loss", "mlm_loss", "mep_loss"):
        torch.testing.assert_close(getattr(got, key), getattr(expected, key), rtol=TOL, atol=TOL)


@pytest.mark.slow
def test_entity_aware_queries(runs, exports, tmp_path):
    from pretrain.export import ExportError, export_run

    plain, _ = load_masked_lm(exports["zero2_plain"])
    assert plain.config.use_entity_aware_attention
    for layer in plain.luke.encoder.layer:
        attention = layer.attention.self
        for extra in (attention.w2e_query, attention.e2w_query, attention.e2e_query):
            assert torch.equal(extra.weight, attention.query.weight)
            assert torch.equal(extra.bias, attention.query.bias)
            assert extra.weight is not attention.query.weight  # copies, free to fine-tune apart

    aware, _ = load_masked_lm(exports["zero3_entity_aware"])
    trained_own = [not torch.equal(layer.attention.self.w2e_query.weight,
                                   layer.attention.self.query.weight)
                   for layer in aware.luke.encoder.layer]
    assert all(trained_own)

    kept_plain = export_run(runs["zero2_plain"], tmp_path / "plain", entity_aware_attention=False)
    config = json.loads((kept_plain / "config.json").read_text())
    assert config["use_entity_aware_attention"] is False
    model, info = load_masked_lm(kept_plain)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not hasattr(model.luke.encoder.layer[0].attention.self, "w2e_query")

    with pytest.raises(ExportError, match="pretrained with entity-aware attention"):
        export_run(runs["zero3_entity_aware"], tmp_path / "refused", entity_aware_attention=False)
    assert not (tmp_path / "refused").exists()


# ------------------------------------------------------------------------------ loading

@pytest.mark.slow
def test_every_luke_class_loads_the_body(exports):
    import transformers

    directory = exports["zero2_plain"]
    reference, _ = load_masked_lm(directory)
    body = reference.luke.state_dict()
    for class_name in HEAD_CLASSES:
        model, info = getattr(transformers, class_name).from_pretrained(
            directory, output_loading_info=True)
        missing_body = [k for k in info["missing_keys"]
                        if k.removeprefix("luke.").startswith(BODY_PREFIXES)]
        assert not missing_body, f"{class_name} misses body weights {missing_body}"
        assert not info["mismatched_keys"], class_name
        luke = model if class_name == "LukeModel" else model.luke
        for key in ("entity_embeddings.entity_embeddings.weight",
                    "encoder.layer.1.attention.self.e2e_query.weight",
                    "embeddings.word_embeddings.weight"):
            assert torch.equal(luke.state_dict()[key], body[key]), (class_name, key)


@pytest.mark.slow
def test_auto_classes(exports):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer, LukeModel

    directory = exports["zero2_plain"]
    assert type(AutoTokenizer.from_pretrained(directory)).__name__ == "MLukeTokenizer"
    assert isinstance(AutoModel.from_pretrained(directory), LukeModel)
    assert type(AutoModelForMaskedLM.from_pretrained(directory)).__name__ == "LukeForMaskedLM"


@pytest.mark.slow
def test_exported_tokenizer_reproduces_the_corpus_ids(en_corpus, exports):
    """One id mapping: transformers' call on each example's text, with the exported tokenizer,
    gives the ids stored in the build, and the files are the build's own."""
    from transformers import AutoTokenizer

    from corpus.inspect import CorpusView, example_json

    directory = exports["zero2_plain"]
    for name in ("sentencepiece.bpe.model", "tokenizer.json", "entity_vocab.json"):
        assert (directory / name).read_bytes() == (en_corpus / "tokenizer" / name).read_bytes()
    settings = json.loads((directory / "tokenizer_config.json").read_text())
    assert settings["max_mention_length"] == 30 and settings["max_entity_length"] > 0
    assert (settings["entity_token_1"], settings["entity_token_2"]) == ("<ent>", "<ent2>")
    entity_vocab = json.loads((directory / "entity_vocab.json").read_text())
    assert [entity_vocab[s] for s in ("[PAD]", "[UNK]", "[MASK]", "[MASK2]")] == [0, 1, 2, 3]

    tokenizer = AutoTokenizer.from_pretrained(directory)
    view = CorpusView(en_corpus, "examples")
    rows = range(0, len(view.dataset), max(1, len(view.dataset) // 12))
    for row in rows:
        data = example_json(view.example(row), row)
        encoded = tokenizer(data["text"], entities=data["entities"],
                            entity_spans=[tuple(s) for s in data["entity_spans"]],
                            max_entity_length=len(data["entities"]), truncation=False)
        assert encoded["input_ids"] == data["word_ids"], row
        assert encoded["entity_ids"] == data["entity_ids"], row
    assert len(rows) >= 5


def two_titles_in_one_sentence(en_corpus) -> tuple[str, list[str], list[tuple[int, int]]]:
    """A real sentence of the build with two linked mentions whose titles are in the vocabulary."""
    from corpus.inspect import CorpusView

    view = CorpusView(en_corpus, "examples")
    for row in range(len(view.dataset)):
        example = view.example(row)
        known = [m for m in example.mentions if m.title != "[UNK]"]
        if len(known) >= 2:
            first, second = known[:2]
            text = example.text[:second.end]
            return text, [first.title, second.title], [(first.start, first.end),
                                                       (second.start, second.end)]
    raise AssertionError("no example with two known entities in the build")


@pytest.mark.slow
def test_documentation_usage_examples(en_corpus, exports):
    """transformers' three LUKE usage examples, as written there (AutoTokenizer in place of
    LukeTokenizer: this tokenizer is sentencepiece-based), on a sentence of the build."""
    from transformers import AutoTokenizer, LukeForEntityPairClassification, LukeModel

    directory = exports["zero2_plain"]
    text, entities, entity_spans = two_titles_in_one_sentence(en_corpus)
    model = LukeModel.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)

    # Compute the contextualized entity representation corresponding to the entity mention
    inputs = tokenizer(text, entity_spans=entity_spans[:1], add_prefix_space=True,
                       return_tensors="pt")
    assert inputs["entity_ids"].tolist() == [[tokenizer.entity_vocab["[MASK]"]]]
    outputs = model(**inputs)
    assert outputs.entity_last_hidden_state.shape == (1, 1, model.config.hidden_size)

    # Input Wikipedia entities to obtain enriched contextualized representations of word tokens
    inputs = tokenizer(text, entities=entities, entity_spans=entity_spans,
                       add_prefix_space=True, return_tensors="pt")
    assert inputs["entity_ids"].tolist() == [[tokenizer.entity_vocab[e] for e in entities]]
    outputs = model(**inputs)
    assert outputs.last_hidden_state.shape[1] == inputs["input_ids"].shape[1]

    # Classify the relationship between two entities with LukeForEntityPairClassification
    model = LukeForEntityPairClassification.from_pretrained(directory, num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(directory, task="entity_pair_classification")
    inputs = tokenizer(text, entity_spans=entity_spans, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert tokens.count(tokenizer.entity_2_token) == 2 or tokens.count("▁<ent2>") == 2
    assert inputs["entity_ids"].tolist() == [[tokenizer.entity_vocab["[MASK]"],
                                              tokenizer.entity_vocab["[MASK2]"]]]
    outputs = model(**inputs)
    predicted_class_idx = int(outputs.logits[0].argmax())
    assert 0 <= predicted_class_idx < 3


# ------------------------------------------------------------------------------ model card

@pytest.mark.slow
def test_model_card(runs, exports):
    from pretrain.metrics import read_metrics

    card = (exports["zero3_entity_aware"] / "README.md").read_text()
    assert "enwiki-sample-5-articles.xml.bz2" in card
    assert "CC BY-SA" in card and "Wikipedia contributors" in card
    assert f"Steps: {STEPS}" in card and "| hidden_size | 64 |" in card
    metrics = read_metrics(runs["zero3_entity_aware"])
    last_train = [m for m in metrics if m["kind"] == "train" and m["step"] <= STEPS][-1]
    assert f"loss {last_train['loss']:.4f}" in card
    validation = [m for m in metrics if m["kind"] == "validation"][-1]
    assert f"word_accuracy {validation['word_accuracy']:.4f}" in card
    # The command as luke-train recorded it (less the launcher's --local_rank), on 2 ranks.
    assert (f"--max-steps {STEPS} --save-every {SAVE_EVERY} --zero-stage 3 "
            f"{' '.join(RUN_OVERRIDES)} model.use_entity_aware_attention=true`") in card
    assert "on 2 rank(s)" in card and "--local_rank" not in card and "Resumed" not in card
    # A run that predates the record gets an equivalent command rebuilt from its config.
    from pretrain.model_card import command_lines

    resolved = json.loads((runs["zero3_entity_aware"] / "config.json").read_text())
    del resolved["command"]
    [rebuilt] = command_lines(runs["zero3_entity_aware"], resolved, STEPS)
    assert "equivalent" in rebuilt and "deepspeed --num_gpus 2 $(which luke-train)" in rebuilt
    assert "train.zero_stage=3" in rebuilt and "model.use_entity_aware_attention=true" in rebuilt
    plain_card = (exports["zero2_plain"] / "README.md").read_text()
    assert "Pretrained with plain attention" in plain_card


def test_model_card_names_a_full_dumps_wiki_and_date(en_corpus_copy, tmp_path):
    """A real dump's name carries its date; the card states it with the wiki's dbname."""
    from transformers import LukeConfig

    from corpus.manifest import read_manifest, write_manifest
    from corpus.reader import Corpus
    from pretrain.model_card import render_model_card

    run = tmp_path / "run"
    run.mkdir()
    manifest = read_manifest(en_corpus_copy)
    [english] = manifest["stages"]["pages"]["languages"]
    english["dump"] = "/data/enwiki-20240601-pages-articles-multistream.xml.bz2"
    english["siteinfo"]["dbname"] = "enwiki"
    write_manifest(en_corpus_copy, manifest)
    card = render_model_card(run, 7, Corpus.open(en_corpus_copy), LukeConfig())
    assert "`enwiki-20240601-pages-articles-multistream.xml.bz2` (wiki `enwiki`, dump date " \
           "2024-06-01)" in card
    assert "Steps: 7" in card and "not logged" in card


# ------------------------------------------------------------------------------ failures

def copy_run(run: Path, where: Path) -> Path:
    return Path(shutil.copytree(run, where / run.name))


def export_cli(run: Path, out: Path, *extra: str, capsys) -> tuple[int, str]:
    from pretrain.export import main

    code = main([str(run), "--out", str(out), *extra])
    return code, capsys.readouterr().err


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


BREAKAGES = {
    # name: (how to break a copy of the ZeRO-3 run, what the message must name)
    "no_latest": (lambda run: (run / "checkpoints" / "latest").unlink(), "no complete checkpoint"),
    "missing_shard": (lambda run: (run / "checkpoints" / str(STEPS) /
                                   "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink(),
                      "a rank's shard is missing"),
    "missing_model_shard": (lambda run: (run / "checkpoints" / str(STEPS) /
                                         "zero_pp_rank_1_mp_rank_00_model_states.pt").unlink(),
                            "holds 1 model state files"),
    "truncated_states": (lambda run: truncate(run / "checkpoints" / str(STEPS) /
                                              "zero_pp_rank_0_mp_rank_00_model_states.pt"),
                         "zero_pp_rank_0_mp_rank_00_model_states.pt: not a complete"),
    "no_model_states": (lambda run: [p.unlink() for p in
                                     (run / "checkpoints" / str(STEPS)).glob("*model_states.pt")],
                        "no DeepSpeed model states"),
    "no_model_config": (lambda run: (run / "model_config.json").unlink(),
                        "model_config.json: missing"),
    "unfinished": (lambda run: (run / "checkpoints" / str(STEPS) / "trainer_state.json").unlink(),
                   "trainer_state.json missing: the checkpoint was not finished"),
    "checkpoint_dir_gone": (lambda run: shutil.rmtree(run / "checkpoints" / str(STEPS)),
                            f"no checkpoint for step {STEPS} (the run has: {SAVE_EVERY})"),
}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.slow
@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_checkpoint_is_named_and_nothing_written(breakage, runs, tmp_path, capsys):
    run = copy_run(runs["zero3_entity_aware"], tmp_path)
    damage, expected = BREAKAGES[breakage]
    damage(run)
    out = tmp_path / "hf"
    code, err = export_cli(run, out, capsys=capsys)
    assert code == 1
    message = [line for line in err.splitlines() if line.startswith("luke-export: error:")]
    assert len(message) == 1 and expected in message[0], err
    assert_nothing_written(out)


@pytest.mark.slow
def test_run_and_corpus_that_disagree_are_refused(runs, en_corpus_copy, tmp_path, capsys):
    run = copy_run(runs["zero2_plain"], tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "corpus": str(en_corpus_copy)}))
    vocab_path = en_corpus_copy / "tokenizer" / "entity_vocab.json"
    vocab = json.loads(vocab_path.read_text())
    vocab.pop(max(vocab, key=vocab.get))
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False))
    out = tmp_path / "hf"
    code, err = export_cli(run, out, capsys=capsys)
    assert code == 1 and "the run trained on another corpus" in err
    assert_nothing_written(out)

    shutil.rmtree(en_corpus_copy / "tokenizer")
    code, err = export_cli(run, out, capsys=capsys)
    assert code == 1 and "the tokenizer of the run's corpus is missing" in err
    assert "pass --corpus DIR" in err
    assert_nothing_written(out)


@pytest.mark.slow
def test_moved_corpus_is_given_with_corpus_flag(runs, en_corpus, tmp_path, capsys):
    run = copy_run(runs["zero2_plain"], tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "corpus": str(tmp_path / "moved")}))
    out = tmp_path / "hf"
    code, err = export_cli(run, out, capsys=capsys)
    assert code == 1 and f"{tmp_path / 'moved'}/tokenizer" in err
    assert_nothing_written(out)
    assert export_cli(run, out, "--corpus", str(en_corpus), capsys=capsys)[0] == 0
    assert (out / "entity_vocab.json").read_bytes() == \
        (en_corpus / "tokenizer" / "entity_vocab.json").read_bytes()


@pytest.mark.slow
def test_checkpoint_choice_and_existing_output(runs, tmp_path, capsys):
    run = runs["zero2_plain"]
    code, err = export_cli(run, tmp_path / "missing", "--checkpoint", "3", capsys=capsys)
    assert code == 1 and f"no checkpoint for step 3 (the run has: {SAVE_EVERY}, {STEPS})" in err
    assert_nothing_written(tmp_path / "missing")

    out = tmp_path / "early"
    assert export_cli(run, out, "--checkpoint", str(SAVE_EVERY), capsys=capsys)[0] == 0
    assert f"Steps: {SAVE_EVERY}" in (out / "README.md").read_text()
    before = (out / "model.safetensors").read_bytes()
    code, err = export_cli(run, out, capsys=capsys)
    assert code == 1 and "already exists" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert export_cli(run, out, "--overwrite", capsys=capsys)[0] == 0
    assert f"Steps: {STEPS}" in (out / "README.md").read_text()
    assert (out / "model.safetensors").read_bytes() != before


# ------------------------------------------------------------------------------ the probe

def probe_batch(corpus, config) -> dict:
    """The first micro-batch of step 0 as a one-rank run would see it: the same on every rank."""
    from pretrain.data import StepSampler, TrainBatches

    sampler = StepSampler(corpus.examples.num_examples, config.train.micro_batch_size,
                          config.train.micro_batch_size, 1, 0, config.train.seed)
    batches = TrainBatches(corpus, "train", sampler, config.masking, config.train.seed)
    batch = batches.batch(0)[0]
    batch.pop("page_ids")
    return batch


def training_model(run: Path):
    """(run config, corpus, freshly built training model) as luke-train builds them for RUN."""
    from pretrain import run_layout
    from pretrain.config import config_from_dict, luke_config
    from corpus.reader import Corpus
    from pretrain.train import RUN_RECORD_KEYS, build_model

    resolved = json.loads((run / run_layout.CONFIG_FILE).read_text())
    corpus = Corpus.open(resolved.pop("corpus"))
    for record in RUN_RECORD_KEYS:  # how it ran, not config
        resolved.pop(record, None)
    config = config_from_dict(resolved)
    return config, corpus, build_model(luke_config(config.model, corpus), config.model)


def probe_run(run: Path, rank: int) -> dict:
    """The training model's outputs on a corpus batch, loaded by DeepSpeed from RUN's latest."""
    import deepspeed

    from pretrain import checkpoint, run_layout
    from pretrain.train import param_groups

    config, corpus, model = training_model(run)
    ds_config = json.loads((run / run_layout.DS_CONFIG_FILE).read_text())
    engine, *_ = deepspeed.initialize(model=model, config=ds_config, model_parameters=param_groups(
        model, config.optim.weight_decay))
    checkpoint.load_checkpoint(engine, run, run_layout.latest_step(run), rank)
    engine.eval()
    batch = probe_batch(corpus, config)
    with torch.no_grad():
        out = engine(**batch)
    return {"batch": batch, "loss": out.loss, "mlm_loss": out.mlm_loss, "mep_loss": out.mep_loss,
            "logits": out.logits, "entity_logits": out.entity_logits}


def probe_main(argv: list[str]) -> None:
    from pretrain.train import init_distributed

    out, *run_dirs = [a for a in argv if not a.startswith("--local_rank")]
    rank, _ = init_distributed()
    results = {run: probe_run(Path(run), rank) for run in run_dirs}
    if rank == 0:
        torch.save(results, out)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    probe_main(sys.argv[1:])
