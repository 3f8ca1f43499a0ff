#!/usr/bin/env bash
# Pretrain on several machines with the real `deepspeed` launcher and a DeepSpeed hostfile.
#
# usage: bash launch/multi_node.sh --hostfile FILE [OPTIONS] [--] TRAINER_ARGS...
#
#   --hostfile FILE     one line per node: "HOST slots=GPUS" (e.g. "node1 slots=8")
#   --num-nodes N       use the first N hosts of FILE (default: all)
#   --gpus-per-node G   use G GPUs on each node (default: the slots of each line)
#   --node-rank R       no-ssh mode: run this same command on every node, each with its own R
#                       (0 .. N-1; default: NODE_RANK when set). Without it, run it once on the
#                       first host and deepspeed starts the others over ssh (pdsh).
#   --dry-run           print the exact commands and run nothing (same as DRY_RUN=1)
#   -h, --help          this text
#
# Environment a user sets (the same on every node):
#   MASTER_ADDR         address of rank 0 that the others can reach (default: the first host of
#                       FILE; set it to the IP of the fast interface if names resolve elsewhere)
#   MASTER_PORT         rendezvous port, open between the nodes (default 29500)
#   NCCL_SOCKET_IFNAME  network interface NCCL uses for bootstrap and sockets (e.g. eth0, ib0,
#                       ^lo,docker0); the usual fix when ranks hang at init
#   NCCL_IB_DISABLE=1   when the nodes have no InfiniBand/RoCE (or it is misconfigured)
#   NCCL_DEBUG=INFO     to see which interfaces and transports NCCL picked
# deepspeed forwards NCCL_*, PYTHON*, UCX_* and MV2_* variables to the other nodes; put anything
# else in ./.deepspeed_env or ~/.deepspeed_env ("KEY=VALUE" per line).
# ssh mode needs passwordless ssh from the first host to every host, pdsh installed, and this
# checkout with its .venv at the same path on every node (a shared filesystem).
#
# Example: bash launch/multi_node.sh --hostfile hosts.txt -- --config configs/base.toml \
#              --corpus /data/enwiki --output /runs/base --save-every 1000
set -euo pipefail
source "$(dirname "$0")/common.sh"

hostfile="" num_nodes="" gpus_per_node="" node_rank=${NODE_RANK:-}
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) print_help "$0"; exit 0 ;;
        --dry-run) DRY_RUN=1 ;;
        --hostfile) hostfile=${2:?--hostfile needs a file}; shift ;;
        --num-nodes) num_nodes=${2:?--num-nodes needs a number}; shift ;;
        --gpus-per-node) gpus_per_node=${2:?--gpus-per-node needs a number}; shift ;;
        --node-rank) node_rank=${2:?--node-rank needs a number}; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
    shift
done
[ -n "$hostfile" ] || die "--hostfile FILE is required (lines 'HOST slots=GPUS'); see --help"
[ -r "$hostfile" ] || die "hostfile $hostfile: not found or not readable"
[ $# -gt 0 ] || die "no trainer arguments (at least --config, --corpus, --output); see --help"
mapfile -t hosts < <(awk 'NF && $1 !~ /^#/ {print $1}' "$hostfile")
[ ${#hosts[@]} -gt 0 ] || die "hostfile $hostfile: no host lines (expected 'HOST slots=GPUS')"
num_nodes=${num_nodes:-${#hosts[@]}}
[ "$num_nodes" -le ${#hosts[@]} ] \
    || die "--num-nodes $num_nodes but $hostfile lists ${#hosts[@]} host(s)"

launcher=(deepspeed --hostfile "$hostfile" --num_nodes "$num_nodes"
          --master_addr "${MASTER_ADDR:-${hosts[0]}}" --master_port "${MASTER_PORT:-29500}")
[ -z "$gpus_per_node" ] || launcher+=(--num_gpus "$gpus_per_node")
if [ -n "$node_rank" ]; then
    [ "$node_rank" -lt "$num_nodes" ] || die "--node-rank $node_rank but only $num_nodes node(s)"
    launcher+=(--no_ssh --node_rank "$node_rank")
elif [ "$num_nodes" -gt 1 ] && [ "$DRY_RUN" != 1 ] && ! command -v pdsh >/dev/null 2>&1; then
    die "ssh mode needs pdsh on this host (install it)," \
        "or run this command on every node with --node-rank R"
fi
nccl_env=()
for var in NCCL_SOCKET_IFNAME NCCL_IB_DISABLE NCCL_DEBUG; do
    [ -z "${!var:-}" ] || nccl_env+=("$var=${!var}")
done
[ ${#nccl_env[@]} -eq 0 ] || nccl_env=(env "${nccl_env[@]}")
note "$num_nodes node(s) from $hostfile, master ${MASTER_ADDR:-${hosts[0]}}:${MASTER_PORT:-29500}"
run_cmd "${nccl_env[@]}" "${launcher[@]}" "$(trainer_path)" "$@"
