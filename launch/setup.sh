#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install the project into it.
# torch is pinned to 2.13.0 and installed first, so that no dependency pulls a newer torch. Which
# build pip takes depends on its index: on this project's machines (and in CI) that is the CPU
# build; on PyPI proper the Linux wheel is a CUDA build of several GB. To choose, set TORCH_SPEC
# and pip's index, e.g. PIP_EXTRA_INDEX_URL=<PyTorch's CPU or CUDA wheel index> (README, recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    echo "usage: bash launch/setup.sh   (env: PYTHON, VENV=.venv, TORCH_SPEC=torch==2.13.0)"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -m pip install --quiet -e '.[test,plot,finetune]' 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "import torch, deepspeed, transformers, datasets, accelerate, corpus, pretrain" \
    || { echo "setup: the environment in $VENV is incomplete (see pip output above)" >&2; exit 1; }
# On a CPU-only machine DeepSpeed compiles its shared-memory allreduce op at the first
# init_distributed (about a minute on 2 cores). Compile it here, once, so that the first run or
# test does not, and no run killed mid-compile leaves torch's build lock behind (every later
# run then waits on that lock forever: seen in CI).
"$VENV/bin/python" - <<'PY'
import torch
if not torch.cuda.is_available():
    from deepspeed.accelerator import get_accelerator
    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None and builder.is_compatible():
        print("setup: compiling DeepSpeed's CPU allreduce op (once)", flush=True)
        builder.load(verbose=False)
PY
echo "setup: $VENV ready (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
