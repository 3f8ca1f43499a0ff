#!/usr/bin/env bash
# Pretrain on one machine through the real `deepspeed` launcher: one process per local GPU, or
# N CPU processes (gloo backend) on a machine without a GPU.
#
# usage: bash launch/single_node.sh [OPTIONS] [--] TRAINER_ARGS...
#
#   --gpus G          use G GPUs (default: every GPU this process may see; CUDA_VISIBLE_DEVICES
#                     is respected and passed to deepspeed as --include localhost:IDS)
#   --procs N         CPU processes when there is no GPU (default 2)
#   --master-port P   rendezvous port (default: MASTER_PORT, else a free port)
#   --dry-run         print the exact commands and run nothing (same as DRY_RUN=1)
#   -h, --help        this text
#
# TRAINER_ARGS go to luke-train unchanged (the first argument this script does not know starts
# them; `--` makes that explicit), e.g.
#   bash launch/single_node.sh --config configs/tiny.toml --corpus data/en --output runs/tiny \
#       --max-steps 100 --save-every 50 optim.lr=3e-4
# Resume a stopped run by adding --resume to the same command.
#
# On CPU, OMP_NUM_THREADS defaults to cores / processes so that the ranks do not fight over cores.
set -euo pipefail
source "$(dirname "$0")/common.sh"

gpus="" procs=2 port=${MASTER_PORT:-}
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) print_help "$0"; exit 0 ;;
        --dry-run) DRY_RUN=1 ;;
        --gpus) gpus=${2:?--gpus needs a number}; shift ;;
        --procs) procs=${2:?--procs needs a number}; shift ;;
        --master-port) port=${2:?--master-port needs a number}; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || die "no trainer arguments (at least --config, --corpus, --output); see --help"
[[ "$procs" =~ ^[1-9][0-9]*$ ]] || die "--procs must be a positive integer, got '$procs'"
[ -n "$port" ] || port=$(free_port)

visible_gpus=$(count_local_gpus)
[ -n "$gpus" ] || gpus=$visible_gpus
launcher=(deepspeed --master_port "$port")
env_vars=()
if [ "$gpus" -gt 0 ]; then
    [ "$gpus" -le "$visible_gpus" ] || die "--gpus $gpus but only $visible_gpus GPU(s) visible"
    # deepspeed ignores CUDA_VISIBLE_DEVICES when --num_gpus is given; --include keeps it.
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && [ "$gpus" -eq "$visible_gpus" ]; then
        launcher+=(--include "localhost:$CUDA_VISIBLE_DEVICES")
    else
        launcher+=(--num_gpus "$gpus")
    fi
    note "$gpus GPU(s), port $port"
else
    launcher+=(--num_gpus "$procs")
    env_vars=(env "OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(cpu_threads_per_process "$procs")}")
    note "no GPU: $procs CPU processes (gloo), port $port"
fi
run_cmd "${env_vars[@]}" "${launcher[@]}" "$(trainer_path)" "$@"
