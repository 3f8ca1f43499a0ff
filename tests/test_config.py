"""The run config tree: layering (defaults < TOML file < overrides), refused keys and values,
the DeepSpeed config derived from it, and every shipped config building its model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from corpus.options import Limits
from corpus.reader import (Corpus, EntityVocabInfo, ExamplesInfo, LanguageExamples,
                           LanguagePages, PagesInfo, TokenizerInfo)
from pretrain.cli import launch_command, overrides_from, train_parser
from pretrain.config import (ConfigError, config_dict, config_from_dict, config_hash,
                             load_config, luke_config)
from pretrain.ds_config import derive_ds_config, total_steps
from pretrain.train import build_model, param_groups

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def reference_corpus() -> Corpus:
    """A corpus of the sizes of LUKE's released vocabularies (what a model's shape needs)."""
    return Corpus(
        directory=Path("reference"),
        pages=PagesInfo(languages=(LanguagePages(language="en", dump=Path("enwiki"),
                                                 dbname="enwiki", rows=(0, 0), id_offset=0),),
                        truncated=False, fingerprint=""),
        entity_vocab=EntityVocabInfo(size=500_000, fingerprint=""),
        tokenizer=TokenizerInfo(vocab_size=50267, pad_token_id=1, bos_token_id=0,
                                eos_token_id=2, mask_token_id=50264, fingerprint=""),
        examples=ExamplesInfo(num_examples=0, validation_examples=0, fingerprint="",
                              limits=Limits(), languages=(LanguageExamples(
                                  language="en", locale="en", rows=(0, 0),
                                  validation_rows=(0, 0)),)))


def test_shipped_configs_exist():
    assert {"tiny.toml", "base.toml", "large.toml"} <= {p.name for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_builds_its_model(path):
    config = load_config(path)
    with torch.device("meta"):  # shapes only: large would need gigabytes of real weights
        model = build_model(luke_config(config.model, reference_corpus()), config.model)
    params = sum(p.numel() for p in model.parameters())
    # REFERENCE section 5: LUKE-base 253M parameters, LUKE-large 484M
    expected = {"base": 253e6, "large": 484e6}.get(path.stem.split("-")[0])
    if expected:
        assert params == pytest.approx(expected, rel=0.01)
    groups = param_groups(model, config.optim.weight_decay)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_tiny_config_builds_on_the_sample_corpus(en_corpus):
    corpus = Corpus.open(en_corpus)
    config = load_config(CONFIGS[0].parent / "tiny.toml")
    luke = luke_config(config.model, corpus)
    assert (luke.vocab_size, luke.entity_vocab_size) == (corpus.tokenizer.vocab_size,
                                                         corpus.entity_vocab.size)
    assert luke.pad_token_id == corpus.tokenizer.pad_token_id and luke.hidden_size == 64
    model = build_model(luke, config.model)
    assert model.luke.embeddings.word_embeddings.weight.shape == (corpus.tokenizer.vocab_size,
                                                                  64)


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[optim]\nlr = 3e-4\nbetas = [0.9, 0.98]\n[train]\nzero_stage = 2\n")
    config = load_config(path, ["train.zero_stage=3", "train.max_steps=7",
                                "masking.whole_word=false"])
    assert config.optim.lr == 3e-4 and config.optim.betas == (0.9, 0.98)
    assert config.train.zero_stage == 3 and config.train.max_steps == 7
    assert config.masking.whole_word is False
    assert config.optim.eps == 1e-6  # untouched default


def test_cli_flags_are_overrides_that_key_value_pairs_beat():
    args = train_parser().parse_args(["--corpus", "c", "--output", "o", "--max-steps", "5",
                                      "--zero-stage", "3", "--local_rank=1", "train.max_steps=9"])
    config = load_config(None, overrides_from(args))
    assert config.train.max_steps == 9 and config.train.zero_stage == 3


@pytest.mark.parametrize("override, message", [
    ("optim.learning_rate=1", "unknown config key 'optim.learning_rate'; did you mean optim.lr?"),
    ("model.hiden_size=8", "did you mean model.hidden_size?"),
    ("trian.seed=1", "did you mean train.seed?"),
    ("model.vocab_size=10", "comes from the corpus manifest"),
    ("train.precision=fp8", "train.precision='fp8' is not one of"),
    ("train.seed=1.5", "train.seed='1.5'"),
    ("masking.word_mask_prob=1.5", "masking.word_mask_prob must be within [0, 1]"),
    ("model.num_attention_heads=5", "not a multiple of model.num_attention_heads 5"),
    ("optim.lr", "is not of the form key=value"),
    ("train.eval_ed_every=-1", "train.eval_ed_every must be 0 (off) or positive"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nweight_decy = 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown config key 'optim.weight_decy'; "
                                          r"did you mean optim.weight_decay\?"):
        load_config(path)


def test_resolved_config_round_trips_through_json():
    config = load_config(None, ["optim.betas=0.9,0.95", "train.max_steps=3"])
    again = config_from_dict(json.loads(json.dumps(config_dict(config))))
    assert again == config and config_hash(again) == config_hash(config)
    assert config_hash(load_config(None, ["train.seed=1"])) != config_hash(config)


def test_ds_config_is_derived():
    config = load_config(None, ["train.micro_batch_size=8", "train.global_batch_size=64",
                                "train.zero_stage=3", "optim.warmup_steps=10"])
    ds = derive_ds_config(config, world_size=2, first_lr=1e-5)
    assert ds["train_batch_size"] == 64 and ds["train_micro_batch_size_per_gpu"] == 8
    assert ds["gradient_accumulation_steps"] == 4  # 64 = 8 x 4 x 2
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"]
    assert "scheduler" not in ds          # pretrain/schedule.py drives the lr
    assert ds["optimizer"]["params"]["lr"] == 1e-5
    assert ds["gradient_clipping"] == config.optim.grad_clip
    # torch's AdamW: nothing to compile; its fused CUDA kernel only where there is a GPU
    assert ds["optimizer"]["params"]["torch_adam"] and not ds["optimizer"]["params"]["fused"]
    assert derive_ds_config(config, 2, 1e-5, on_gpu=True)["optimizer"]["params"]["fused"]


def test_global_batch_must_divide():
    config = load_config(None, ["train.micro_batch_size=8", "train.global_batch_size=60"])
    with pytest.raises(ConfigError, match=r"train.global_batch_size=60 is not a multiple of "
                                          r"train.micro_batch_size=8 x world size 2 = 16"):
        derive_ds_config(config, world_size=2, first_lr=1e-5)


def test_total_steps_come_from_the_manifest():
    config = load_config(None, ["train.global_batch_size=16", "train.micro_batch_size=4"])
    assert total_steps(config, num_examples=144) == 9           # one epoch, whole steps
    config.train.epochs = 2.5
    assert total_steps(config, num_examples=144) == 22
    config.train.max_steps = 5
    assert total_steps(config, num_examples=144) == 5
    config.train.max_steps = None
    with pytest.raises(ConfigError, match="144 training examples"):
        total_steps(load_config(None), num_examples=144)        # global batch 2048


@pytest.mark.parametrize("launcher_args", [["--local_rank=1"], ["--local-rank", "1"], []])
def test_launch_command_leaves_out_the_launchers_local_rank(launcher_args):
    argv = [*launcher_args, "--config", "configs/tiny.toml", "--corpus", "my corpus",
            "--output", "run", "optim.lr=3e-4"]
    assert launch_command(argv) == ("luke-train --config configs/tiny.toml --corpus 'my corpus' "
                                    "--output run optim.lr=3e-4")
