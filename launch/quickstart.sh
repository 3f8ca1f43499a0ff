#!/usr/bin/env bash
# The whole pipeline on the bundled Wikipedia sample, in one command:
#   setup (.venv) -> corpus build -> a short pretraining run of configs/tiny.toml through the
#   real deepspeed launcher (all GPUs, or 2 CPU processes where there is none) -> export for
#   transformers -> what the exported model's entity head predicts for a masked mention ->
#   a picture of the training curves.
#
# usage: bash launch/quickstart.sh [--dry-run] [-h|--help]
#
# Everything goes under quickstart/ (QUICKSTART_DIR): corpus/, run/, hf/, curves.png.
# Rerunning is cheap: the corpus build skips its finished stages, a finished training run is
# kept (an interrupted one resumes from its last checkpoint), the export is redone.
# Environment: QUICKSTART_DIR (quickstart), QUICKSTART_STEPS (optimizer steps, 200),
# QUICKSTART_PROCS (CPU processes without a GPU, 2), SKIP_SETUP=1 (use the .venv as it is),
# DRY_RUN=1 (same as --dry-run: print the commands, run nothing).
# About 2 minutes on 2 CPU cores once pip's cache holds the packages (2 min 10 s measured), about
# 4 minutes the first time, when deepspeed builds its CPU op (about 90 s).
set -Eeuo pipefail  # -E: the ERR trap below also fires inside functions
source "$(dirname "$0")/common.sh"
cd "$LUKE_REPO"

case "${1:-}" in
    -h|--help) print_help "$0"; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) die "unknown argument '$1'; see --help" ;;
esac
out=${QUICKSTART_DIR:-quickstart}
case "$out" in /*) out_abs=$out ;; *) out_abs=$LUKE_REPO/$out ;; esac
steps=${QUICKSTART_STEPS:-200}
procs=${QUICKSTART_PROCS:-2}
dump=tests/data/enwiki-sample-5-articles.xml.bz2
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || die "QUICKSTART_STEPS must be a positive integer, got '$steps'"
[[ "$procs" =~ ^[1-9][0-9]*$ ]] || die "QUICKSTART_PROCS must be a positive integer, got '$procs'"
started=$SECONDS

stage() {  # a header per stage, with the time spent so far
    stage_now="[$1/6] $2"
    echo "" >&2
    echo "==> $stage_now   ($(( SECONDS - started )) s elapsed)" >&2
}
trap 'note "stopped in stage $stage_now: see the error above; a rerun skips the finished work"' ERR

stage 1 "environment: .venv with torch, deepspeed, transformers and this project"
if [ "${SKIP_SETUP:-0}" = 1 ]; then
    note "SKIP_SETUP=1: using $LUKE_VENV as it is"
else
    run_cmd bash launch/setup.sh
fi
PATH="$LUKE_VENV/bin:$PATH"

stage 2 "corpus: pages, entity vocabulary, tokenizer and training sequences from $dump"
# --partial-dump: five articles link mostly to pages outside the sample, and those targets are
# the entities worth learning. Short sequences give a few hundred examples from five articles.
# Two workers at most: five articles do not repay starting more processes.
workers=$(nproc 2>/dev/null || echo 1)
run_cmd luke-corpus build "$dump" --out "$out/corpus" --workers $(( workers < 2 ? workers : 2 )) \
    --partial-dump --word-vocab-size 2000 --entity-vocab-size 2000 \
    --max-seq-length 128 --max-entities 32 --validation-pages 1

stage 3 "pretraining: configs/tiny.toml for $steps steps through the deepspeed launcher"
train=(bash launch/single_node.sh --procs "$procs" --config configs/tiny.toml
       --corpus "$out/corpus" --output "$out/run" --max-steps "$steps" --save-every "$steps")
done_steps=$(run_latest_step "$out/run" 2>/dev/null || true)
if [ -n "$done_steps" ] && [ "$done_steps" -ge "$steps" ]; then
    note "$out/run already holds a checkpoint at step $done_steps: keeping it"
elif [ -n "$done_steps" ]; then
    note "$out/run has a checkpoint at step $done_steps: continuing to step $steps (--resume)"
    run_cmd "${train[@]}" --resume --allow-change train.max_steps
else
    [ ! -e "$out/run" ] || run_cmd rm -rf "$out/run"  # a run that never saved holds nothing to keep
    run_cmd "${train[@]}"
fi

stage 4 "export: $out/run -> $out/hf, a directory transformers loads as it is"
[ ! -e "$out/hf" ] || run_cmd rm -rf "$out/hf"
run_cmd luke-export "$out/run" --out "$out/hf"

stage 5 "the exported model through transformers: entity predictions for a masked mention"
run_cmd python launch/show_predictions.py "$out/hf"

stage 6 "training curves"
run_cmd luke-train plot "$out/run" --out "$out/curves.png"

echo "" >&2
if [ "$DRY_RUN" = 1 ]; then exit 0; fi
cat >&2 <<EOF
==> done in $(( SECONDS - started )) s
    corpus          $out/corpus   (luke-corpus inspect $out/corpus --random 3)
    training run    $out/run      (metrics.jsonl, checkpoints/)
    exported model  $out/hf       (LukeForMaskedLM.from_pretrained("$out/hf"))
    curves          $out_abs/curves.png
    next            luke-eval $out/hf --corpus $out/corpus   (entity disambiguation, README step 8)
                    python launch/finetune_spans.py ...      (fine-tuning with Trainer, step 7)
    Five articles teach a model little: the held-out page's entities never occur in the other
    four, so its validation entity accuracy stays 0. Pretrain on a real dump (README) for more.
EOF
