"""Nothing a user types may destroy a run or silently change it: resumes with a changed config
(refused key by key, or accepted with --allow-change and recorded), a longer run on resume (the
lr goes on without a jump), bad values refused before anything is written, a damaged latest
checkpoint (--resume-from), a disk that fills up while saving, and exports aimed at the run or
the corpus, or with another corpus's tokenizer. Real `luke-train` and `luke-export` commands on
one single-process tiny run, copied per case."""

from __future__ import annotations

import json
import resource
import shutil
import signal
from pathlib import Path

import pytest

from conftest import EN_DUMP, build_corpus
from pretrain import run_layout
from train_helpers import metrics_lines, run_command, single_command, train_args

STEPS, SAVE_EVERY = 12, 6


def lrs(run: Path) -> dict[int, float]:
    return {r["step"]: r["lr"] for r in metrics_lines(run) if r["kind"] == "train"}


def error_line(stderr: str, prefix: str = "luke-train: error: ") -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def base_run(en_corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("safety") / "run"
    result = run_command(single_command(train_args(en_corpus, run, "--max-steps", str(STEPS),
                                                   "--save-every", str(SAVE_EVERY))))
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    """A private copy of the finished 12-step run."""
    return Path(shutil.copytree(base_run, tmp_path / "run"))


def resume_args(corpus: Path, run: Path, *extra: str, steps: int = STEPS) -> list[str]:
    return train_args(corpus, run, "--max-steps", str(steps), "--save-every", str(SAVE_EVERY),
                      "--resume", *extra)


def resume(corpus: Path, run: Path, *extra: str, steps: int = STEPS, preexec=None):
    """A resume that trains: its own process, as a user runs it."""
    return run_command(single_command(resume_args(corpus, run, *extra, steps=steps)),
                       preexec=preexec)


def refused(capsys, args: list[str], main=None) -> str:
    """The one error line of a command refused before it starts a process group (run in this
    process: refusals need no rank, and a process start costs seconds)."""
    from pretrain.cli import main as train_main

    assert (main or train_main)(args) == 1
    err = capsys.readouterr().err
    return error_line(err, "luke-export: error: " if main else "luke-train: error: ")


def untouched(run: Path, base_run: Path) -> bool:
    return all((run / name).read_bytes() == (base_run / name).read_bytes()
               for name in (run_layout.CONFIG_FILE, run_layout.METRICS_FILE,
                            f"{run_layout.CHECKPOINTS_DIR}/{run_layout.LATEST_FILE}"))


# ------------------------------------------------------------------------ resume and config

@pytest.mark.parametrize("override, key", [
    ("optim.lr=5e-2", "optim.lr"), ("masking.word_mask_prob=0.3", "masking.word_mask_prob"),
    ("train.micro_batch_size=8", "train.micro_batch_size"), ("model.impl=hf", "model.impl")])
def test_a_changed_key_is_refused_naming_it_unless_allowed(en_corpus, run, base_run, override,
                                                           key, capsys):
    message = refused(capsys, resume_args(en_corpus, run, override))
    old = json.loads((base_run / "config.json").read_text())
    section, leaf = key.split(".")
    assert f"{key} was {old[section][leaf]!r}, now " in message
    assert f"pass --allow-change {key} to accept it" in message
    assert untouched(run, base_run)


@pytest.mark.parametrize("override, key, why", [
    ("train.precision=bf16", "train.precision", "different layouts"),
    ("train.zero_stage=2", "train.zero_stage", "its own layout"),
    ("train.seed=5", "train.seed", "the data position would point at other examples")])
def test_a_key_no_resume_can_change_is_refused_even_when_allowed(en_corpus, run, base_run,
                                                                 override, key, why, capsys):
    message = refused(capsys, resume_args(en_corpus, run, override, "--allow-change", key))
    assert f"--allow-change {key}: a resume can never change it" in message
    message = refused(capsys, resume_args(en_corpus, run, override))
    assert f"{key} was" in message and why in message and "start a new run" in message
    assert untouched(run, base_run)


def test_an_allowed_change_is_recorded_with_its_step(en_corpus, run, capsys):
    message = refused(capsys, resume_args(en_corpus, run, "optim.lr=5e-3", "train.save_every=4",
                                          "--allow-change", "optim.lr", steps=16))
    assert "train.max_steps was 12, now 16" in message and "optim.lr" not in message
    result = resume(en_corpus, run, "optim.lr=5e-3", "train.save_every=4",
                    "--allow-change", "optim.lr,train.max_steps", steps=16)
    assert result.returncode == 0, result.stderr[-3000:]
    changes = json.loads((run / "config.json").read_text())["changes"]
    assert {(c["key"], c["step"], c["how"]) for c in changes} == {
        ("optim.lr", STEPS, "--allow-change"), ("train.save_every", STEPS, "free"),
        ("train.max_steps", STEPS, "--allow-change")}
    assert run_layout.latest_step(run) == 16


def test_a_longer_run_goes_on_decaying_from_where_the_lr_was(en_corpus, run):
    before = lrs(run)
    result = resume(en_corpus, run, "--allow-change", "train.max_steps", steps=24)
    assert result.returncode == 0, result.stderr[-3000:]
    after = lrs(run)
    assert {s: after[s] for s in before} == before            # history kept
    tail = [after[s] for s in range(STEPS, 25)]
    assert all(b < a for a, b in zip(tail, tail[1:]))       # no jump up, strictly decaying
    # the decay line from step 12 reaches 0 one step after the new last step (24)
    assert after[13] == pytest.approx(before[STEPS] * 12 / 13)
    assert after[24] == pytest.approx(before[STEPS] / 13)
    schedule = json.loads((run / "config.json").read_text())["lr_schedule"]
    assert schedule["reanchors"] == [[STEPS, 24]]


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr must be positive, got -1.0"),
    ("optim.lr=nan", "optim.lr='nan': expected a finite number"),
    ("optim.weight_decay=-0.1", "optim.weight_decay must not be negative"),
    ("model.hidden_dropout_prob=1.5", "model.hidden_dropout_prob must lie in [0, 1)")])
def test_bad_values_are_refused_before_anything_is_written(en_corpus, tmp_path, override,
                                                            message, capsys):
    run = tmp_path / "run"
    assert message in refused(capsys, train_args(en_corpus, run, override))
    assert not run.exists()


def test_allow_change_needs_a_resume_and_a_real_key(en_corpus, run, tmp_path, capsys):
    message = refused(capsys, train_args(en_corpus, tmp_path / "new", "--allow-change",
                                         "optim.lr"))
    assert "--allow-change applies to a resumed run only" in message
    message = refused(capsys, resume_args(en_corpus, run, "--allow-change",
                                          "optim.learning_rate"))
    assert "--allow-change optim.learning_rate: not a config key" in message


# ------------------------------------------------------------------------ checkpoints

def test_a_damaged_latest_checkpoint_names_the_file_and_the_one_to_resume_from(en_corpus, run,
                                                                               capsys):
    damaged = run_layout.checkpoint_dir(run, STEPS) / "mp_rank_00_model_states.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    message = refused(capsys, resume_args(en_corpus, run))
    assert f"checkpoint step {STEPS} is damaged (mp_rank_00_model_states.pt: not a complete " \
           f"torch checkpoint file" in message
    assert f"checkpoint {SAVE_EVERY} is complete: continue from it with --resume-from " \
           f"{SAVE_EVERY}" in message
    result = run_command(single_command(train_args(
        en_corpus, run, "--max-steps", str(STEPS), "--save-every", str(SAVE_EVERY),
        "--resume-from", str(SAVE_EVERY))))
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_layout.latest_step(run) == STEPS and sorted(lrs(run)) == list(range(1, STEPS + 1))


def file_size_limit(limit: int):
    """A pre-exec hook: writes past `limit` bytes fail (EFBIG), as on a full disk."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_save_that_cannot_write_ends_in_one_line_and_keeps_the_last_checkpoint(en_corpus,
                                                                                 run):
    # checkpoint files are MBs, every other file the run writes is a few KB
    result = resume(en_corpus, run, "--allow-change", "train.max_steps", steps=18,
                    preexec=file_size_limit(300_000))
    assert result.returncode == 1
    message = error_line(result.stderr)
    assert f"saving checkpoint {run_layout.checkpoint_dir(run, 18)} failed (" in message
    assert "MiB free on its file system" in message
    assert f"latest still names step {STEPS}, which is complete" in message
    assert "Traceback" not in result.stderr
    assert run_layout.latest_step(run) == STEPS
    assert not run_layout.checkpoint_dir(run, 18).exists()
    again = resume(en_corpus, run, steps=18)
    assert again.returncode == 0, again.stderr[-3000:]
    assert run_layout.latest_step(run) == 18


# ------------------------------------------------------------------------ export

def export_main(args: list[str]) -> int:
    from pretrain.export import main
    return main(args)


def export(run: Path, out: Path, *extra: str) -> int:
    return export_main([str(run), "--out", str(out), *extra])


def refused_export(capsys, run: Path, out: Path, *extra: str) -> str:
    return refused(capsys, [str(run), "--out", str(out), *extra], main=export_main)


@pytest.mark.parametrize("where", ["run", "run/checkpoints", "run/checkpoints/new", "corpus",
                                   "parent"])
def test_export_never_writes_over_the_run_or_the_corpus(en_corpus_copy, run, where, tmp_path,
                                                         capsys):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "corpus": str(en_corpus_copy)}))
    out = {"run": run, "run/checkpoints": run / "checkpoints",
           "run/checkpoints/new": run / "checkpoints" / "new", "corpus": en_corpus_copy,
           "parent": tmp_path}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    message = refused_export(capsys, run, out, "--overwrite")
    assert "choose an --out outside the run and the corpus" in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_overwrite_replaces_only_an_earlier_export_and_never_leaves_neither(run, tmp_path,
                                                                           capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    message = refused_export(capsys, run, home, "--overwrite")
    assert "holds files that are not a luke-export output" in message
    assert [p.name for p in home.iterdir()] == ["thesis.tex"]
    out = tmp_path / "hf"
    assert export(run, out) == 0
    first = (out / "model.safetensors").read_bytes()
    assert export(run, out, "--checkpoint", str(SAVE_EVERY), "--overwrite") == 0
    assert (out / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "home", "run"]  # no leftovers


def test_export_refuses_a_corpus_with_another_tokenizer_of_the_same_size(en_corpus, run,
                                                                         tmp_path, capsys):
    import datasets

    from corpus.word_tokenizer import (read_entity_vocab, train_sentencepiece, training_lines,
                                       write_tokenizer_dir)

    # The same number of pieces, other pieces: trained on the sample's text in capitals.
    text = datasets.load_from_disk(str(en_corpus / "pages"))["text"]
    model, size = train_sentencepiece((line.upper() for line in training_lines(text)), 2000)
    assert size == 2000
    write_tokenizer_dir(tmp_path / "tokenizer", model,
                        read_entity_vocab(en_corpus / "entity_vocab" / "entity_vocab.json"))
    other = build_corpus(EN_DUMP, tmp_path / "other", tokenizer=tmp_path / "tokenizer")
    message = refused_export(capsys, run, tmp_path / "hf", "--corpus", str(other))
    assert "its tokenizer (fingerprint " in message and f"checkpoint {STEPS} was trained with" \
        in message
    assert not (tmp_path / "hf").exists()
