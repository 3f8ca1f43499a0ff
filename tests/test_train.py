"""End-to-end tests of `luke-train` on the English sample corpus: the real deepspeed launcher
with two CPU ranks (gloo), checkpoints, exact resume after SIGTERM for ZeRO 2 and 3, and the
messages of every refused input. Runs are shared between assertions (module-scoped)."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from pretrain import run_layout
from pretrain.cli import main
from pretrain.shm_segments import SHM_DIR, SEGMENT_PREFIX
from train_helpers import (deepspeed_command, free_port, interrupt_after, metrics_lines,
                           run_command, single_command, train_args, train_losses)

STEPS, SAVE_EVERY = 24, 8


def straight_run(corpus, run, stage):
    """(RUN, its stderr) of a run that never stops."""
    result = run_command(deepspeed_command(train_args(
        corpus, run, "--max-steps", str(STEPS), "--save-every", str(SAVE_EVERY),
        "--zero-stage", str(stage))))
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result.stderr


@pytest.fixture(scope="module", params=[2, 3], ids=["zero2", "zero3"])
def runs(request, en_corpus, tmp_path_factory):
    """(stage, a straight run, a run stopped by SIGTERM and then resumed, the stop's output,
    the step it stopped at, the straight run's stderr, the resume's arguments)."""
    stage = request.param
    base = tmp_path_factory.mktemp(f"zero{stage}")
    straight, straight_err = straight_run(en_corpus, base / "straight", stage)
    resumed = base / "resumed"
    args = train_args(en_corpus, resumed, "--max-steps", str(STEPS),
                      "--save-every", str(SAVE_EVERY), "--zero-stage", str(stage))
    stopped = interrupt_after(deepspeed_command(args), resumed, steps=3)
    stopped_at = run_layout.latest_step(resumed)
    again = run_command(deepspeed_command(args + ["--resume"]))
    assert again.returncode == 0, again.stderr[-3000:]
    return stage, straight, resumed, stopped, stopped_at, straight_err, args


@pytest.mark.slow
def test_loss_falls_and_run_files(runs):
    stage, straight, *_ = runs
    losses = train_losses(straight)
    assert sorted(losses) == list(range(1, STEPS + 1))
    first, last = [losses[s] for s in range(1, 5)], [losses[s] for s in range(STEPS - 3, STEPS + 1)]
    assert sum(last) / 4 < sum(first) / 4 - 0.3, losses
    ds_config = json.loads((straight / run_layout.DS_CONFIG_FILE).read_text())
    # tiny.toml: global 16 = micro 4 x accumulation 2 x 2 ranks
    assert ds_config["gradient_accumulation_steps"] == 2
    assert ds_config["zero_optimization"]["stage"] == stage
    config = json.loads((straight / run_layout.CONFIG_FILE).read_text())
    assert config["train"]["max_steps"] == STEPS and config["model"]["hidden_size"] == 64
    assert run_layout.latest_step(straight) == STEPS
    for step in (8, 16, 24):
        directory = run_layout.checkpoint_dir(straight, step)
        state = json.loads((directory / run_layout.TRAINER_STATE_FILE).read_text())
        assert state["step"] == step and state["data_position"]["next_step"] == step
        assert len(state["corpus_fingerprint"]) > 8
        assert {p.name for p in directory.glob("rng_state_rank*.pt")} == {
            "rng_state_rank0.pt", "rng_state_rank1.pt"}
    validation = [r for r in metrics_lines(straight) if r["kind"] == "validation"]
    assert [r["step"] for r in validation] == [20, STEPS]  # tiny.toml: every 20, and the last
    assert 0 <= validation[0]["word_accuracy"] <= 1 and 0 <= validation[0]["entity_accuracy"] <= 1
    line = metrics_lines(straight)[0]
    for key in ("mlm_loss", "mep_loss", "lr", "grad_norm", "tokens_per_s", "seconds_per_step",
                "data_wait_share"):
        assert line[key] is not None, key


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(runs):
    _, _, _, stopped, stopped_at, *_ = runs
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert stopped_at is not None and 3 <= stopped_at < STEPS
    assert f"stopped by SIGTERM after step {stopped_at}" in stopped.stderr


@pytest.mark.slow
def test_resume_reproduces_the_straight_run(runs):
    _, straight, resumed, _, stopped_at, *_ = runs
    expected, got = train_losses(straight), train_losses(resumed)
    assert sorted(got) == list(range(1, STEPS + 1))  # no step lost or logged twice
    for step in range(1, STEPS + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-5), (step, stopped_at)


@pytest.mark.slow
def test_lr_is_nonzero_from_the_first_step_and_peaks_after_warmup(runs):
    _, straight, _, _, _, straight_err, _ = runs
    lrs = {r["step"]: r["lr"] for r in metrics_lines(straight) if r["kind"] == "train"}
    warmup, lr = 5, 1e-3  # tiny.toml
    assert lrs[1] == pytest.approx(lr / warmup) and lrs[2] == pytest.approx(2 * lr / warmup)
    assert max(lrs, key=lrs.get) == warmup and lrs[warmup] == pytest.approx(lr)
    assert all(lrs[s + 1] < lrs[s] for s in range(warmup, STEPS)) and lrs[STEPS] > 0
    assert "learning rate from scheduler before it has started" not in straight_err


@pytest.mark.slow
def test_config_records_the_command_and_each_resume(runs):
    _, straight, resumed, _, _, _, args = runs
    command = shlex.join(["luke-train", *args])  # the launcher's --local_rank left out
    config = json.loads((straight / run_layout.CONFIG_FILE).read_text())
    original = command.replace(str(resumed), str(straight))
    assert config["command"] == original and config["world_size"] == 2
    assert config["resume_commands"] == []
    config = json.loads((resumed / run_layout.CONFIG_FILE).read_text())
    assert config["command"] == command  # the first start's, kept across the resume
    assert config["resume_commands"] == [command + " --resume"]


def fake_run_with_checkpoint(source, target):
    """A run dir holding only its config record and the newest checkpoint's trainer state
    (enough to be refused)."""
    step = run_layout.latest_step(source)
    directory = run_layout.checkpoint_dir(target, step)
    directory.mkdir(parents=True)
    shutil.copy(source / run_layout.CONFIG_FILE, target / run_layout.CONFIG_FILE)
    shutil.copy(run_layout.checkpoint_dir(source, step) / run_layout.TRAINER_STATE_FILE, directory)
    (target / run_layout.CHECKPOINTS_DIR / run_layout.LATEST_FILE).write_text(f"{step}\n")
    return target


@pytest.mark.slow
def test_resume_is_refused_against_another_corpus(runs, en_corpus_copy, tmp_path, capsys):
    run = fake_run_with_checkpoint(runs[1], tmp_path / "run")
    manifest_path = en_corpus_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stages"]["examples"]["fingerprint"] = "0" * 64  # as a rebuild with other options
    manifest_path.write_text(json.dumps(manifest))
    assert main(train_args(en_corpus_copy, run, "--resume")) == 1
    err = capsys.readouterr().err
    assert "another corpus" in err and "0" * 64 in err and str(run) in err


@pytest.mark.slow
def test_resume_is_refused_with_a_changed_model_shape(runs, en_corpus, tmp_path, capsys):
    run = fake_run_with_checkpoint(runs[1], tmp_path / "run")
    assert main(train_args(en_corpus, run, "--resume", "model.hidden_size=128")) == 1
    assert "model.hidden_size was 64, now 128" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_with_checkpoints_is_not_restarted_without_resume(runs, en_corpus, tmp_path, capsys):
    run = fake_run_with_checkpoint(runs[1], tmp_path / "run")
    assert main(train_args(en_corpus, run)) == 1
    assert "pass --resume" in capsys.readouterr().err


def test_missing_corpus_is_named(tmp_path, capsys):
    assert main(train_args(tmp_path / "nowhere", tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "does not exist" in err


def test_unknown_override_names_the_nearest_key(en_corpus, tmp_path, capsys):
    assert main(train_args(en_corpus, tmp_path / "run", "optim.lrr=1e-3")) == 1
    assert "unknown config key 'optim.lrr'; did you mean optim.lr?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written for a refused run


@pytest.mark.slow
def test_two_rank_run_leaves_no_shared_memory_behind(en_corpus, tmp_path):
    """DeepSpeed's CPU allreduce maps a 69 MB /dev/shm segment per rank and never unlinks it;
    luke-train unlinks its own once every rank has mapped its peers' (pretrain.shm_segments).
    Left there, a day of test runs filled 21 GiB of RAM on this machine."""
    port = free_port()
    result = run_command(deepspeed_command(
        train_args(en_corpus, tmp_path / "run", "--max-steps", "2"), port=port))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deepspeed_shm_comm_op built successfully" in result.stdout  # the shm path was used
    assert train_losses(tmp_path / "run").keys() == {1, 2}  # and the run trained over it
    assert not list(SHM_DIR.glob(f"{SEGMENT_PREFIX}_*_{port}_*"))


@pytest.mark.slow
def test_nan_loss_stops_with_step_parts_and_pages(en_corpus, tmp_path):
    """A huge learning rate really diverges: the run stops at the first non-finite loss and
    the last checkpoint before it stays the newest."""
    run = tmp_path / "run"
    result = run_command(single_command(train_args(
        en_corpus, run, "--max-steps", "12", "--save-every", "1", "optim.lr=1e30")))
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("luke-train: error")]
    assert len(error) == 1, result.stderr[-3000:]
    step = int(error[0].split("non-finite loss at step ")[1].split()[0])
    assert "mlm_loss" in error[0] and "mep_loss" in error[0] and "batch pages [" in error[0]
    assert run_layout.latest_step(run) == step - 1
    assert f"last good checkpoint is step {step - 1}" in error[0]
    assert not run_layout.checkpoint_dir(run, step).exists()


@pytest.mark.slow
def test_nan_policy_skip_goes_on_and_logs_skipped_steps(en_corpus, tmp_path):
    run = tmp_path / "run"
    result = run_command(single_command(train_args(
        en_corpus, run, "--max-steps", "6", "optim.lr=1e30", "train.nan_policy=skip")))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [r for r in metrics_lines(run) if r["kind"] == "train"]
    assert len(lines) == 6 and lines[0]["skipped"] is False and lines[-1]["skipped"] is True
    assert "skipped: non-finite loss at step" in result.stderr
