#!/usr/bin/env bash
# Pretrain through `torchrun` instead of the deepspeed launcher: one machine, or several with a
# c10d rendezvous (run the same command on every node; no ssh, no hostfile).
#
# usage: bash launch/torchrun.sh [OPTIONS] [--] TRAINER_ARGS...
#
#   --nproc-per-node G  processes per node (default: every visible GPU, else 2 CPU processes)
#   --nnodes N          number of nodes (default 1: a standalone rendezvous on this machine)
#   --rdzv-id ID        job id shared by the nodes (default: "luke")
#   --dry-run           print the exact command and run nothing (same as DRY_RUN=1)
#   -h, --help          this text
#
# Several nodes: set MASTER_ADDR (a host every node reaches; its port MASTER_PORT, default
# 29500, must be open) on every node, plus the NCCL variables described in multi_node.sh
# (NCCL_SOCKET_IFNAME, NCCL_IB_DISABLE) where the network needs them.
#
# Example: bash launch/torchrun.sh --nproc-per-node 8 -- --config configs/base.toml \
#              --corpus /data/enwiki --output /runs/base
set -euo pipefail
source "$(dirname "$0")/common.sh"

nproc="" nnodes=1 rdzv_id=luke
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) print_help "$0"; exit 0 ;;
        --dry-run) DRY_RUN=1 ;;
        --nproc-per-node) nproc=${2:?--nproc-per-node needs a number}; shift ;;
        --nnodes) nnodes=${2:?--nnodes needs a number}; shift ;;
        --rdzv-id) rdzv_id=${2:?--rdzv-id needs a value}; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || die "no trainer arguments (at least --config, --corpus, --output); see --help"

gpus=$(count_local_gpus)
env_vars=()
if [ -z "$nproc" ]; then
    nproc=$(( gpus > 0 ? gpus : 2 ))
fi
if [ "$gpus" -eq 0 ]; then
    env_vars=(env "OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(cpu_threads_per_process "$nproc")}")
fi
if [ "$nnodes" -eq 1 ]; then
    rendezvous=(--standalone)
else
    [ -n "${MASTER_ADDR:-}" ] \
        || die "--nnodes $nnodes needs MASTER_ADDR (the rendezvous host) set on every node"
    rendezvous=(--rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:${MASTER_PORT:-29500}"
                --rdzv-id "$rdzv_id")
fi
note "$nnodes node(s) x $nproc process(es) per node"
run_cmd "${env_vars[@]}" torchrun --nnodes "$nnodes" --nproc-per-node "$nproc" "${rendezvous[@]}" \
    "$(trainer_path)" "$@"
