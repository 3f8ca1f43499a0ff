"""Shared fixtures: the bundled real dump samples, corpora built from them, and a short training
run of the English one with its export, each made once per session.

Building a corpus trains a small sentencepiece model, so it is done once per test session and
shared read-only; a test that needs to modify a build copies it first.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from corpus.options import BuildOptions

# Launchers started by tests (deepspeed, luke-train, ninja for DeepSpeed's CPU op) must come
# from the same environment as this interpreter: a system ninja of another version makes
# DeepSpeed rebuild its op at every switch, and a clean machine may have none at all.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

DATA = Path(__file__).parent / "data"
EN_DUMP = DATA / "enwiki-sample-5-articles.xml.bz2"
BG_DUMP = DATA / "bgwiki-sample-utf16.xml.bz2"

# Small enough to train in seconds on the samples, large enough to make real examples.
TEST_BUILD = dict(word_vocab_size=2000, entity_vocab_size=2000, max_seq_length=128,
                  max_entities=32, partial_dump=True, validation_pages=1, workers=1)
TINY_RUN_STEPS = 10


def build_corpus(dump: Path, out: Path, **overrides) -> Path:
    from corpus.build import build

    build(BuildOptions(dumps=(dump,), out=out, **{**TEST_BUILD, **overrides}))
    return out


@pytest.fixture(scope="session")
def en_corpus(tmp_path_factory) -> Path:
    """A full corpus build (pages .. examples) of the English sample. Treat as read-only."""
    return build_corpus(EN_DUMP, tmp_path_factory.mktemp("en") / "corpus")


@pytest.fixture(scope="session")
def tiny_run(en_corpus, tmp_path_factory) -> Path:
    """A short luke-train run of configs/tiny.toml on the English build, one process without a
    launcher, checkpointed at its last step (TINY_RUN_STEPS). Treat as read-only."""
    from train_helpers import run_command, single_command, train_args

    run = tmp_path_factory.mktemp("tiny") / "run"
    steps = str(TINY_RUN_STEPS)
    done = run_command(single_command(train_args(en_corpus, run, "--max-steps", steps,
                                                 "--save-every", steps)))
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported by luke-export: what a user downloads. Treat as read-only."""
    from pretrain.export import export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("tiny") / "hf")


@pytest.fixture
def en_corpus_copy(en_corpus, tmp_path) -> Path:
    """A private copy of the English build that a test may modify."""
    return Path(shutil.copytree(en_corpus, tmp_path / "corpus"))


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    from base_models import sample_lines as lines_of
    return lines_of(EN_DUMP)


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory, sample_lines) -> Path:
    """A RoBERTa-family base model directory (tests/base_models.py). Treat as read-only."""
    from base_models import make_roberta
    return make_roberta(tmp_path_factory.mktemp("bases") / "roberta", sample_lines)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory, sample_lines) -> Path:
    """An XLM-R-family base model directory (tests/base_models.py). Treat as read-only."""
    from base_models import make_xlmr
    return make_xlmr(tmp_path_factory.mktemp("bases") / "xlmr", sample_lines)


@pytest.fixture(scope="session")
def roberta_corpus(tmp_path_factory, tiny_roberta) -> Path:
    """The English sample built with the tiny RoBERTa's tokenizer. Treat as read-only."""
    return build_corpus(EN_DUMP, tmp_path_factory.mktemp("en-roberta") / "corpus",
                        base_model=tiny_roberta)


@pytest.fixture(scope="session")
def xlmr_corpus(tmp_path_factory, tiny_xlmr) -> Path:
    """The English sample built with the tiny XLM-R's tokenizer. Treat as read-only."""
    return build_corpus(EN_DUMP, tmp_path_factory.mktemp("en-xlmr") / "corpus",
                        base_model=tiny_xlmr)
