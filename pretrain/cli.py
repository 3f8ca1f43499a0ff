"""`luke-train`: pretrain LUKE on a corpus build, or plot runs (`luke-train plot RUN ...`).

    deepspeed [--num_gpus G] $(which luke-train) --config configs/tiny.toml --corpus DIR \\
        --output RUN [--max-steps N] [--save-every N] [--seed S] [--zero-stage 1|2|3] \\
        [--resume [--allow-change KEY] | --resume-from STEP] [key=value ...]

Runs the same under `torchrun` and as a plain single process. The flags are shorthands for
overrides (`--max-steps 100` is `train.max_steps=100`); `key=value` overrides come last.
Errors the user can fix print one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

# Flag -> config key; applied before the key=value overrides so those win.
FLAG_KEYS = {"max_steps": "train.max_steps", "save_every": "train.save_every",
             "seed": "train.seed", "zero_stage": "train.zero_stage"}


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="luke-train", description="Pretrain LukeForMaskedLM with DeepSpeed on a corpus "
        "built by luke-corpus. `luke-train plot RUN ...` draws runs' curves.")
    parser.add_argument("--config", type=Path, help="TOML file in configs/ (only what differs "
                        "from the defaults)")
    parser.add_argument("--corpus", type=Path, required=True, help="a luke-corpus build dir")
    parser.add_argument("--output", type=Path, required=True, help="the run directory RUN")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (default: one epoch "
                        "of the corpus, or train.epochs)")
    parser.add_argument("--save-every", type=int, help="checkpoint every N steps")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3))
    parser.add_argument("--resume", action="store_true",
                        help="continue from RUN/checkpoints/latest (fresh start if none)")
    parser.add_argument("--resume-from", type=int, metavar="STEP",
                        help="continue from checkpoint STEP instead of the latest (implies "
                             "--resume); for a latest checkpoint that is damaged")
    parser.add_argument("--allow-change", action="append", default=[], metavar="KEY",
                        help="on --resume, accept a changed value of config KEY (e.g. optim.lr, "
                             "train.max_steps); repeat or comma-separate for several. Without "
                             "it a resume refuses any change that alters batches, masks, "
                             "optimizer or schedule")
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.lr=3e-4 model.hidden_size=256")
    return parser


def overrides_from(args: argparse.Namespace) -> list[str]:
    flags = [f"{key}={getattr(args, name)}" for name, key in FLAG_KEYS.items()
             if getattr(args, name) is not None]
    return flags + list(args.overrides)


def launch_command(argv: list[str]) -> str:
    """The command line as the user wrote it after the launcher: `luke-train` and its
    arguments, less the --local_rank that the deepspeed launcher adds per process."""
    kept, skip_value = [], False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in ("--local_rank", "--local-rank"):
            skip_value = True
        elif not arg.startswith(("--local_rank=", "--local-rank=")):
            kept.append(arg)
    return shlex.join(["luke-train", *kept])


def run_training(argv: list[str]) -> int:
    from pretrain.checkpoint import ResumeError
    from pretrain.config import ConfigError, load_config
    from corpus.reader import CorpusError
    from pretrain.train import TrainingError, train

    args = train_parser().parse_args(argv)
    allowed = tuple(key.strip() for keys in args.allow_change for key in keys.split(",")
                    if key.strip())
    resume = args.resume or args.resume_from is not None
    try:
        if allowed and not resume:
            raise ConfigError("--allow-change applies to a resumed run only (with --resume)")
        config = load_config(args.config, overrides_from(args))
        train(config, args.corpus, args.output, resume, command=launch_command(argv),
              allowed_changes=allowed, resume_from=args.resume_from)
    except (ConfigError, CorpusError, ResumeError, TrainingError) as e:
        if os.environ.get("RANK", "0") == "0":  # every rank fails alike: one line is enough
            print(f"luke-train: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["plot"]:
        from pretrain.plot import main as plot_main

        return plot_main(argv[1:])
    return run_training(argv)


if __name__ == "__main__":
    sys.exit(main())
