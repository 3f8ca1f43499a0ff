"""`luke-train plot`: several runs' metrics.jsonl on one figure, and a clear error for a run
without metrics. The metrics lines are written in the trainer's own format (MetricsLog)."""

from __future__ import annotations

import math

from pretrain.cli import main
from pretrain.metrics import MetricsLog
from pretrain.plot import PANELS, plot_runs


def write_run(run, steps: int, scale: float) -> None:
    """A run directory with `steps` train lines, and a validation line and an entity-
    disambiguation line every 5 steps."""
    run.mkdir(parents=True)
    log = MetricsLog(run, rank=0, start_step=0, total_steps=steps)
    for step in range(1, steps + 1):
        loss = scale * (10 + math.exp(-step / 5))
        log.log({"kind": "train", "step": step, "loss": loss, "mlm_loss": loss * 0.6,
                 "mep_loss": loss * 0.4, "lr": 1e-3 * min(1, step / 3), "grad_norm": 1.0,
                 "tokens_per_s": 1000.0 + step, "sequences_per_s": 10.0,
                 "seconds_per_step": 0.1, "data_wait_share": 0.01, "skipped": False})
        if step % 5 == 0:
            log.log({"kind": "validation", "step": step, "word_accuracy": step / 100,
                     "entity_accuracy": step / 200, "loss": loss})
            log.log({"kind": "entity_disambiguation", "step": step, "accuracy": step / 50,
                     "prior_accuracy": 0.3, "mentions": 10, "candidates": 25,
                     "validation_mentions": 40, "excluded": 30})
    log.close()


def test_two_runs_on_one_figure(tmp_path, capsys):
    write_run(tmp_path / "small", 12, 1.0)
    write_run(tmp_path / "large", 20, 0.9)
    fig = plot_runs([tmp_path / "small", tmp_path / "large"])
    titled = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(titled) == [title for title, _, _ in PANELS]
    for ax in titled.values():
        shown = [line.get_label() for line in ax.get_lines() if not line.get_label()[0] == "_"]
        assert shown == ["small", "large"]
    steps = titled["validation word accuracy"].get_lines()[1].get_xdata()
    assert list(steps) == [5, 10, 15, 20]
    # The prior baseline is drawn dashed in the run's colour beside its accuracy.
    accuracy, prior = titled["entity disambiguation (dashed: prior)"].get_lines()[:2]
    assert list(accuracy.get_ydata()) == [0.1, 0.2] and list(prior.get_ydata()) == [0.3, 0.3]
    assert prior.get_linestyle() == "--" and prior.get_color() == accuracy.get_color()
    out = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "small"), str(tmp_path / "large"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert str(out) in capsys.readouterr().out


def test_run_without_metrics_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("luke-train plot: error:") and "metrics.jsonl" in err
