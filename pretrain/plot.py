"""`luke-train plot RUN [RUN ...] [--out FILE.png]`: a run's curves from RUN/metrics.jsonl.

One figure, one panel per quantity (total, word and entity losses, validation accuracies,
learning rate, tokens/s, and the entity-disambiguation accuracy with its prior baseline dashed
when the run logged it) against step, one line per run so runs can be compared; a run on a
corpus of several languages adds one thinner line per language to the validation panels.
Drawn with matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pretrain import run_layout
from pretrain.metrics import read_metrics

# (panel title, metrics kind, key)
PANELS = (
    ("loss", "train", "loss"),
    ("word loss (MLM)", "train", "mlm_loss"),
    ("entity loss (MEP)", "train", "mep_loss"),
    ("validation word accuracy", "validation", "word_accuracy"),
    ("validation entity accuracy", "validation", "entity_accuracy"),
    ("learning rate", "train", "lr"),
    ("tokens/s", "train", "tokens_per_s"),
    ("entity disambiguation (dashed: prior)", "entity_disambiguation", "accuracy"),
)
# Panels that also draw a baseline of the same records, dashed, in the run's colour.
BASELINES = {"accuracy": "prior_accuracy"}


class PlotError(ValueError):
    pass


def series(records: list[dict], kind: str, key: str, language: str | None = None
           ) -> tuple[list[int], list[float]]:
    """(steps, values) of one quantity (of one language's part of the records, when given),
    skipping lines that lack it (or hold null)."""
    fields = [(r["step"], r if language is None else r.get("languages", {}).get(language, {}))
              for r in records if r.get("kind") == kind]
    points = [(step, found[key]) for step, found in fields if found.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def languages_of(records: list[dict]) -> list[str]:
    """The languages that the run's validation lines report apart, in first-seen order."""
    return list(dict.fromkeys(language for r in records
                              for language in r.get("languages", {})))


def plot_runs(runs: list[Path]):
    """The matplotlib Figure of the given runs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = {}
    for run in runs:
        records = read_metrics(run)
        if not records:
            raise PlotError(f"{Path(run) / run_layout.METRICS_FILE}: missing or empty")
        histories[Path(run).name or str(run)] = records
    columns = 4
    rows = -(-len(PANELS) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, (title, kind, key) in zip(axes.flat, PANELS):
        for name, records in histories.items():
            steps, values = series(records, kind, key)
            line, = ax.plot(steps, values, label=name, marker="o" if kind != "train" else None,
                            markersize=3)
            if kind == "validation":
                for language in languages_of(records):
                    ax.plot(*series(records, kind, key, language), linewidth=0.8,
                            marker=".", markersize=2, label=f"{name} {language}")
            if key in BASELINES:
                ax.plot(*series(records, kind, BASELINES[key]), linestyle="--",
                        color=line.get_color(), label=f"_{name} {BASELINES[key]}")
        if kind == "validation" and any(map(languages_of, histories.values())):
            ax.legend(fontsize="x-small")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(PANELS):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="luke-train plot",
                                     description="Draw runs' curves from RUN/metrics.jsonl.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    parser.add_argument("--out", type=Path, help="PNG to write (default: RUN/curves.png of "
                        "the first run)")
    args = parser.parse_args(argv)
    out = args.out or args.runs[0] / "curves.png"
    try:
        fig = plot_runs(args.runs)
    except PlotError as e:
        print(f"luke-train plot: error: {e}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0
