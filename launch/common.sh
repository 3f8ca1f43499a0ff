# Shell functions shared by the launchers in launch/ (sourced, never run on its own).
#
# Every launcher prints the exact commands it runs; with DRY_RUN=1 (or --dry-run) it prints them
# on stdout, one per line and shell-quoted (so `bash -c "$line"` runs the same thing), and runs
# nothing. Real runs echo each command on stderr with a "+ " prefix, as `set -x` would.

LUKE_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The project's own environment first, so that `deepspeed`, `torchrun` and `luke-train` resolve to
# the versions setup.sh installed even when the user did not activate the venv.
LUKE_VENV=${VENV:-$LUKE_REPO/.venv}
case "$LUKE_VENV" in /*) ;; *) LUKE_VENV=$LUKE_REPO/$LUKE_VENV ;; esac
[ -d "$LUKE_VENV/bin" ] && PATH="$LUKE_VENV/bin:$PATH"
DRY_RUN=${DRY_RUN:-0}

die() {  # one clear line on stderr, then a non-zero exit
    echo "${0##*/}: error: $*" >&2
    exit 2
}

note() {  # progress messages go to stderr so that a dry run's stdout holds only commands
    echo "${0##*/}: $*" >&2
}

print_help() {  # the launcher's help is its header comment: one text, never a twin
    sed -n '2,/^[^#]/p' "$1" | grep -v '^#SBATCH\|^#!' | grep '^#' | sed 's/^# \{0,1\}//'
}

shell_quote() {  # WORD as the shell reads it back: bare when safe, else in single quotes
    if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

quote_cmd() {  # the command as one shell-quoted line (what a dry run prints)
    local out="" word
    for word in "$@"; do out+="$(shell_quote "$word") "; done
    echo "${out% }"
}

run_cmd() {  # print the command; run it unless this is a dry run
    if [ "$DRY_RUN" = 1 ]; then
        quote_cmd "$@"
    else
        echo "+ $(quote_cmd "$@")" >&2
        "$@"
    fi
}

python_bin() {  # the interpreter the launchers use for small helper computations
    if [ -x "$LUKE_VENV/bin/python" ]; then echo "$LUKE_VENV/bin/python"; else echo python3; fi
}

trainer_path() {  # absolute path of the luke-train console script (launchers run it as a script)
    local path
    path=$(command -v luke-train) || die "luke-train not found: run 'bash launch/setup.sh' first"
    echo "$path"
}

count_local_gpus() {  # CUDA devices this process may use (CUDA_VISIBLE_DEVICES respected)
    if ! command -v nvidia-smi >/dev/null 2>&1; then echo 0; return; fi
    local gpus
    gpus=$("$(python_bin)" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null) \
        || gpus=0
    # setup.sh installs the CPU build of torch by default: say so instead of silently using CPU.
    if [ "$gpus" = 0 ] && [ -z "${CUDA_VISIBLE_DEVICES+set}" ] \
            && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        note "warning: nvidia-smi lists GPUs but this torch has no CUDA, so this runs on CPU;" \
             "install a CUDA build of torch into $LUKE_VENV (TORCH_SPEC, see launch/setup.sh)"
    fi
    echo "$gpus"
}

free_port() {  # a TCP port nobody listens on, so two runs on one machine do not collide
    "$(python_bin)" -c 'import socket; s = socket.socket(); s.bind(("", 0))
print(s.getsockname()[1])'
}

cpu_threads_per_process() {  # cores / processes, at least 1: N CPU ranks must not oversubscribe
    local cores
    cores=$(nproc 2>/dev/null || echo 1)
    echo $(( cores / $1 > 0 ? cores / $1 : 1 ))
}

expand_nodelist() {  # SLURM nodelist ("gpu-[01-02,07],cpu9") -> one host name per line
    # scontrol knows every syntax SLURM accepts; without it (a laptop, a test, a login node of
    # another cluster) the fallback below handles the forms SLURM writes into SLURM_JOB_NODELIST:
    # comma-separated names, each with at most one bracket group of numbers and zero-padded ranges.
    if command -v scontrol >/dev/null 2>&1; then
        scontrol show hostnames "$1"
        return
    fi
    "$(python_bin)" - "$1" <<'PY'
import re, sys
for prefix, group, suffix in re.findall(r"([^,\[]+)(?:\[([^\]]+)\])?([^,]*)", sys.argv[1]):
    if not group:
        print(prefix + suffix)
        continue
    for part in group.split(","):
        first, _, last = part.partition("-")
        for number in range(int(first), int(last or first) + 1):
            print(f"{prefix}{number:0{len(first)}d}{suffix}")
PY
}

hostfile_lines() {  # DeepSpeed hostfile: "host slots=N" per node, N = processes per node
    local slots=$1 host
    shift
    for host in "$@"; do echo "$host slots=$slots"; done
}

write_hostfile() {  # write (or, dry, print the command that writes) a hostfile for the hosts given
    local file=$1 slots=$2
    shift 2
    local lines=()
    mapfile -t lines < <(hostfile_lines "$slots" "$@")
    if [ "$DRY_RUN" = 1 ]; then
        echo "printf '%s\\n' $(quote_cmd "${lines[@]}") > $(shell_quote "$file")"
    else
        mkdir -p "$(dirname "$file")"
        printf '%s\n' "${lines[@]}" > "$file"
        note "hostfile $file: ${lines[*]}"
    fi
}

has_flag() {  # has_flag FLAG ARGS...: whether FLAG is among ARGS
    local flag=$1 arg
    shift
    for arg in "$@"; do [ "$arg" = "$flag" ] && return 0; done
    return 1
}

flag_value() {  # flag_value FLAG ARGS...: the value after FLAG (or of FLAG=VALUE), empty if absent
    local flag=$1
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            "$flag") echo "${2:-}"; return ;;
            "$flag"=*) echo "${1#*=}"; return ;;
        esac
        shift
    done
}

run_latest_step() {  # step of RUN's newest complete checkpoint, empty when it has none
    "$(python_bin)" -c 'import sys
from pretrain.run_layout import latest_step
step = latest_step(sys.argv[1])
print("" if step is None else step)' "$1"
}

run_steps_remaining() {  # optimizer steps RUN still has to do; "unknown" before its first save
    # The total is the one the trainer derived and recorded in RUN/config.json (total_steps),
    # so this never recomputes it from the corpus.
    "$(python_bin)" - "$1" <<'PY'
import json, sys
from pathlib import Path
from pretrain.run_layout import CONFIG_FILE, latest_step
run = Path(sys.argv[1])
done = latest_step(run)
try:
    total = json.loads((run / CONFIG_FILE).read_text())["total_steps"]
except (OSError, ValueError, KeyError):
    total = None
print("unknown" if total is None or done is None else max(0, total - done))
PY
}
