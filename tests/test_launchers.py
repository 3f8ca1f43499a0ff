"""The launchers in launch/: their dry runs (exact commands, hostfiles, a faked SLURM job) and a
real two-process CPU run of the single-node launcher through the deepspeed launcher.

A dry run prints one shell-quoted command per line on stdout (lines starting with '#' are
comments), so the tests split each line with shlex, as the shell would.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from train_helpers import BIN as VENV_BIN
from train_helpers import ROOT as REPO
from train_helpers import free_port

LAUNCH = REPO / "launch"
TRAINER = str(VENV_BIN / "luke-train")
TRAINER_ARGS = ["--config", "configs/tiny.toml", "--corpus", "/data/en corpus",
                "--output", "/runs/r"]


def launcher_env(**overrides: str) -> dict[str, str]:
    """The environment of a test launch: no GPU, no SLURM or rendezvous variables of the host."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "MASTER_", "NCCL_", "NODE_RANK", "LAUNCHER", "DRY_RUN"))}
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(overrides)
    return env


def kill_tree(pid: int) -> None:
    """Kill a process and every process it started (a timed-out launch leaves no ranks behind)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        for process in [*parent.children(recursive=True), parent]:
            process.kill()
    except psutil.NoSuchProcess:
        pass


def launch(script: str, *args: str, check: bool = True, timeout: float = 60,
           **env: str) -> subprocess.CompletedProcess:
    command = ["bash", str(LAUNCH / script), *args]
    with subprocess.Popen(command, cwd=REPO, text=True, env=launcher_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            raise
    result = subprocess.CompletedProcess(command, process.returncode, out, err)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def dry_run_lines(script: str, *args: str, **env: str) -> list[str]:
    """The command lines a launcher's dry run prints, comments left out."""
    out = launch(script, "--dry-run", *args, **env).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def dry_run(script: str, *args: str, **env: str) -> list[list[str]]:
    """The commands a launcher's dry run prints, each split into words."""
    return [shlex.split(line) for line in dry_run_lines(script, *args, **env)]


def cpu_threads(processes: int) -> str:
    return str(max(1, len(os.sched_getaffinity(0)) // processes))


@pytest.mark.parametrize("script", ["single_node.sh", "multi_node.sh", "torchrun.sh",
                                    "slurm.sbatch", "quickstart.sh"])
def test_every_launcher_has_help_and_a_dry_run(script):
    result = launch(script, "--help")
    assert "usage:" in result.stdout
    assert "--dry-run" in result.stdout or "DRY_RUN" in result.stdout


def test_single_node_cpu_runs_n_processes_through_deepspeed():
    (command,) = dry_run("single_node.sh", "--procs", "2", "--master-port", "29611", *TRAINER_ARGS)
    assert command == ["env", f"OMP_NUM_THREADS={cpu_threads(2)}", "deepspeed", "--master_port",
                       "29611", "--num_gpus", "2", TRAINER, *TRAINER_ARGS]


def test_single_node_dry_run_env_and_separator_and_overrides():
    (command,) = dry_run("single_node.sh", "--procs", "3", "--", "--resume", "optim.lr=3e-4",
                         *TRAINER_ARGS, DRY_RUN="1", MASTER_PORT="30001", OMP_NUM_THREADS="5")
    assert command[:7] == ["env", "OMP_NUM_THREADS=5", "deepspeed", "--master_port", "30001",
                           "--num_gpus", "3"]
    assert command[7:] == [TRAINER, "--resume", "optim.lr=3e-4", *TRAINER_ARGS]


def test_single_node_picks_a_free_port_when_none_given():
    (command,) = dry_run("single_node.sh", *TRAINER_ARGS)
    port = int(command[command.index("--master_port") + 1])
    assert 1024 <= port < 65536


@pytest.mark.parametrize("args, message", [
    ((), "no trainer arguments"),
    (("--procs", "0", *TRAINER_ARGS), "--procs must be a positive integer"),
    (("--gpus", "2", *TRAINER_ARGS), "only 0 GPU(s) visible"),
])
def test_single_node_refuses_bad_arguments_with_one_line(args, message):
    result = launch("single_node.sh", "--dry-run", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_single_node_on_a_gpu_keeps_the_visible_device_mask():
    # deepspeed drops CUDA_VISIBLE_DEVICES when given --num_gpus; --include keeps the mask.
    (command,) = dry_run("single_node.sh", "--master-port", "29612", *TRAINER_ARGS,
                         CUDA_VISIBLE_DEVICES="0")
    assert command == ["deepspeed", "--master_port", "29612", "--include", "localhost:0",
                       TRAINER, *TRAINER_ARGS]


def write_hostfile(tmp_path: Path, *lines: str) -> Path:
    hostfile = tmp_path / "hosts.txt"
    hostfile.write_text("".join(f"{line}\n" for line in lines))
    return hostfile


def test_multi_node_uses_hostfile_first_host_as_master_and_passes_nccl_env(tmp_path):
    hostfile = write_hostfile(tmp_path, "# two nodes", "node-a slots=8", "node-b slots=8")
    (command,) = dry_run("multi_node.sh", "--hostfile", str(hostfile), "--", *TRAINER_ARGS,
                         NCCL_SOCKET_IFNAME="ib0", NCCL_IB_DISABLE="1")
    assert command == ["env", "NCCL_SOCKET_IFNAME=ib0", "NCCL_IB_DISABLE=1", "deepspeed",
                       "--hostfile", str(hostfile), "--num_nodes", "2", "--master_addr", "node-a",
                       "--master_port", "29500", TRAINER, *TRAINER_ARGS]


def test_multi_node_no_ssh_mode_with_node_rank_and_explicit_master(tmp_path):
    hostfile = write_hostfile(tmp_path, "node-a slots=8", "node-b slots=8", "node-c slots=8")
    (command,) = dry_run("multi_node.sh", "--hostfile", str(hostfile), "--num-nodes", "2",
                         "--gpus-per-node", "4", *TRAINER_ARGS,
                         NODE_RANK="1", MASTER_ADDR="10.0.0.1", MASTER_PORT="6000")
    assert command[:command.index(TRAINER)] == [
        "deepspeed", "--hostfile", str(hostfile), "--num_nodes", "2", "--master_addr", "10.0.0.1",
        "--master_port", "6000", "--num_gpus", "4", "--no_ssh", "--node_rank", "1"]


@pytest.mark.parametrize("hostfile_lines, args, message", [
    (None, (), "--hostfile FILE is required"),
    ((), ("--hostfile", "HOSTFILE"), "no host lines"),
    (("a slots=1",), ("--hostfile", "HOSTFILE", "--num-nodes", "2"), "lists 1 host(s)"),
    (("a slots=1",), ("--hostfile", "HOSTFILE", "--node-rank", "1"), "only 1 node(s)"),
])
def test_multi_node_refuses_bad_hostfiles(tmp_path, hostfile_lines, args, message):
    if hostfile_lines is not None:
        hostfile = write_hostfile(tmp_path, *hostfile_lines)
        args = tuple(str(hostfile) if a == "HOSTFILE" else a for a in args)
    result = launch("multi_node.sh", "--dry-run", *args, *TRAINER_ARGS, check=False)
    assert result.returncode == 2 and message in result.stderr


def test_multi_node_ssh_mode_needs_pdsh(tmp_path):
    hostfile = write_hostfile(tmp_path, "node-a slots=8", "node-b slots=8")
    bin_dir = tmp_path / "bin"  # a PATH with bash and the venv, without pdsh
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "awk", "env"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True,
                                                   check=True).stdout.strip())
    result = launch("multi_node.sh", "--hostfile", str(hostfile), *TRAINER_ARGS, check=False,
                    PATH=f"{VENV_BIN}:{bin_dir}")
    assert result.returncode == 2 and "ssh mode needs pdsh" in result.stderr


def test_torchrun_standalone_on_one_machine():
    (command,) = dry_run("torchrun.sh", "--", *TRAINER_ARGS)
    assert command == ["env", f"OMP_NUM_THREADS={cpu_threads(2)}", "torchrun", "--nnodes", "1",
                       "--nproc-per-node", "2", "--standalone", TRAINER, *TRAINER_ARGS]


def test_torchrun_several_nodes_rendezvous_at_master():
    (command,) = dry_run("torchrun.sh", "--nnodes", "4", "--nproc-per-node", "8",
                         "--rdzv-id", "job7", *TRAINER_ARGS, MASTER_ADDR="head", MASTER_PORT="7000")
    assert command[command.index("torchrun"):command.index(TRAINER)] == [
        "torchrun", "--nnodes", "4", "--nproc-per-node", "8", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", "head:7000", "--rdzv-id", "job7"]
    result = launch("torchrun.sh", "--dry-run", "--nnodes", "2", *TRAINER_ARGS, check=False)
    assert result.returncode == 2 and "needs MASTER_ADDR" in result.stderr


def slurm_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A faked allocation of two GPU nodes, as sbatch would set it up."""
    return {"SLURM_JOB_ID": "73519", "SLURM_JOB_NODELIST": "gpu-[01-02]", "SLURM_NNODES": "2",
            "SLURM_GPUS_ON_NODE": "4", "SLURM_CPUS_PER_TASK": "32", "SLURM_SUBMIT_DIR": str(REPO),
            "LUKE_SLURM_DIR": str(tmp_path / "slurm"), **overrides}


def test_nodelist_expansion_without_scontrol():
    expand = 'source launch/common.sh; expand_nodelist "$1"'
    for nodelist, hosts in [("gpu-[01-02,07],cpu9", ["gpu-01", "gpu-02", "gpu-07", "cpu9"]),
                            ("n[8-11]-ib", ["n8-ib", "n9-ib", "n10-ib", "n11-ib"]),
                            ("single", ["single"])]:
        result = subprocess.run(["bash", "-c", expand, "_", nodelist], cwd=REPO, text=True,
                                capture_output=True, env=launcher_env(), check=True)
        assert result.stdout.split() == hosts


def test_slurm_deepspeed_hostfile_per_node_launch_and_resubmission(tmp_path):
    env = slurm_env(tmp_path)
    write, step, resubmit = dry_run_lines("slurm.sbatch", *TRAINER_ARGS, **env)
    hostfile = tmp_path / "slurm" / "hostfile-73519"
    # The printed hostfile command, run by a shell, writes the hostfile DeepSpeed reads.
    (tmp_path / "slurm").mkdir()
    subprocess.run(["bash", "-c", write], check=True)
    assert hostfile.read_text() == "gpu-01 slots=4\ngpu-02 slots=4\n"

    step, resubmit = shlex.split(step), shlex.split(resubmit)
    assert step[:-1] == ["srun", "--nodes", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
                         "--cpus-per-task", "32", "bash", "-c"]
    per_node = shlex.split(step[-1])
    assert per_node[:per_node.index(TRAINER)] == [
        "trap", "", "TERM;", "exec", "deepspeed", "--hostfile", str(hostfile),
        "--no_ssh", "--node_rank",
        "$SLURM_NODEID", "--master_addr", "gpu-01", "--master_port", str(20000 + 73519 % 10000)]
    assert per_node[per_node.index(TRAINER) + 1:] == TRAINER_ARGS

    assert resubmit == ["sbatch", "--dependency=afterany:73519", "--nodes", "2",
                        "--export=ALL,LUKE_RESUBMIT_COUNT=1", str(LAUNCH / "slurm.sbatch"),
                        *TRAINER_ARGS, "--resume"]


def test_slurm_torchrun_rendezvous_cpu_nodes_and_counted_resubmission(tmp_path):
    env = slurm_env(tmp_path, SLURM_JOB_NODELIST="cpu[7-9]", SLURM_NNODES="3",
                    SLURM_GPUS_ON_NODE="0", LAUNCHER="torchrun", LUKE_RESUBMIT_COUNT="4",
                    MASTER_PORT="6100")
    step, resubmit = dry_run("slurm.sbatch", *TRAINER_ARGS, "--resume", **env)
    assert step[step.index("torchrun"):step.index(TRAINER)] == [
        "torchrun", "--nnodes", "3", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", "cpu7:6100", "--rdzv-id", "73519"]
    assert resubmit.count("--resume") == 1
    assert "--export=ALL,LUKE_RESUBMIT_COUNT=5" in resubmit


@pytest.mark.parametrize("overrides, message", [
    ({"SLURM_JOB_ID": ""}, "SLURM_JOB_ID is not set"),
    ({"SLURM_NNODES": "3"}, "names 2 host(s), SLURM_NNODES=3"),
    ({"LAUNCHER": "mpirun"}, "LAUNCHER=mpirun is not one of"),
])
def test_slurm_refuses_an_inconsistent_environment(tmp_path, overrides, message):
    result = launch("slurm.sbatch", "--dry-run", *TRAINER_ARGS, check=False,
                    **slurm_env(tmp_path, **overrides))
    assert result.returncode == 2 and message in result.stderr


def test_slurm_needs_the_run_directory_to_resume(tmp_path):
    result = launch("slurm.sbatch", "--dry-run", "--config", "configs/tiny.toml", check=False,
                    **slurm_env(tmp_path))
    assert result.returncode == 2 and "lack --output RUN" in result.stderr


def test_quickstart_dry_run_lists_the_pipeline_in_order(tmp_path):
    commands = dry_run("quickstart.sh", QUICKSTART_DIR=str(tmp_path / "qs"), QUICKSTART_STEPS="40")
    qs = str(tmp_path / "qs")
    assert [c[:2] for c in commands] == [
        ["bash", "launch/setup.sh"], ["luke-corpus", "build"], ["bash", "launch/single_node.sh"],
        ["luke-export", f"{qs}/run"], ["python", "launch/show_predictions.py"],
        ["luke-train", "plot"]]
    train = commands[2]
    assert train[train.index("--max-steps") + 1] == "40"
    assert train[train.index("--output") + 1] == f"{qs}/run"


def test_quickstart_refuses_a_bad_step_count():
    result = launch("quickstart.sh", check=False, QUICKSTART_STEPS="ten")
    assert result.returncode == 2
    assert "QUICKSTART_STEPS must be a positive integer, got 'ten'" in result.stderr


def test_quickstart_names_the_stage_that_failed(tmp_path):
    (tmp_path / "corpus").write_text("a file where the corpus directory should go")
    result = launch("quickstart.sh", check=False, QUICKSTART_DIR=str(tmp_path), SKIP_SETUP="1")
    assert result.returncode != 0
    assert "stopped in stage [2/6] corpus" in result.stderr.splitlines()[-1]


def load_show_predictions():
    """launch/show_predictions.py as a module (launch/ is scripts, not a package)."""
    import importlib.util

    path = LAUNCH / "show_predictions.py"
    spec = importlib.util.spec_from_file_location("show_predictions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model_dir(corpus: Path, out: Path) -> Path:
    """What luke-export writes, in small: the corpus's tokenizer files beside a LukeForMaskedLM
    (random weights) whose vocabulary sizes and special ids come from the corpus manifest."""
    import shutil

    import torch
    from transformers import LukeConfig, LukeForMaskedLM

    stages = json.loads((corpus / "manifest.json").read_text())["stages"]
    words = stages["tokenizer"]
    config = LukeConfig(vocab_size=words["vocab_size"],
                        entity_vocab_size=stages["entity_vocab"]["size"], hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        entity_emb_size=16, max_position_embeddings=130,
                        pad_token_id=words["pad_token_id"], bos_token_id=words["bos_token_id"],
                        eos_token_id=words["eos_token_id"])
    shutil.copytree(corpus / "tokenizer", out)
    torch.manual_seed(0)
    LukeForMaskedLM(config).save_pretrained(out)
    return out


def test_show_predictions_ranks_titles_of_the_entity_vocabulary(en_corpus, tmp_path, capsys):
    import re

    model_dir = tiny_model_dir(en_corpus, tmp_path / "hf")
    assert load_show_predictions().main([str(model_dir), "--top-k", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("sentence: Until joining the eurozone, the [Estonian kroon -> [MASK]] had "
                      "been pegged to the euro.")
    ranked = [re.fullmatch(r"\s+(\d+)\. (.+?)\s+([0-9.]+)", line).groups() for line in out[2:]]
    titles = json.loads((model_dir / "entity_vocab.json").read_text())
    assert [int(rank) for rank, _, _ in ranked] == [1, 2, 3, 4]
    assert all(title in titles for _, title, _ in ranked)
    probabilities = [float(p) for _, _, p in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1


@pytest.mark.parametrize("make_dir, args, message", [
    (False, [], "is not an exported model (no config.json)"),
    (True, ["--mention", "Riga"], "mention 'Riga' does not occur in the text"),
])
def test_show_predictions_refuses_bad_input_with_one_line(tmp_path, capsys, make_dir, args,
                                                          message):
    if make_dir:
        (tmp_path / "config.json").write_text("{}")
    assert load_show_predictions().main([str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_single_node_trains_for_real_on_two_cpu_processes(en_corpus, tmp_path):
    run = tmp_path / "run"
    result = launch("single_node.sh", "--procs", "2", "--config", "configs/tiny.toml",
                    "--corpus", str(en_corpus), "--output", str(run), "--max-steps", "3",
                    "--save-every", "3", check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deepspeed --master_port" in result.stderr  # the launcher echoed what it ran
    assert (run / "checkpoints" / "latest").read_text().strip() == "3"
    assert [m["step"] for m in train_lines(run)] == [1, 2, 3]
    remaining = subprocess.run(["bash", "-c", 'source launch/common.sh; run_steps_remaining "$1"',
                                "_", str(run)], cwd=REPO, text=True, capture_output=True,
                               env=launcher_env(), check=True)
    assert remaining.stdout.strip() == "0"


# Stand-ins for the SLURM commands that cannot run without a cluster. `srun` runs the step as
# the only task of a one-node job, in its own process group; `scancel --signal=TERM` signals
# every process of that group, as slurmstepd signals every process of a step; `sbatch` records
# the resubmission instead of queueing it.
FAKE_SRUN = """#!/usr/bin/env bash
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes|--ntasks-per-node|--cpus-per-task) shift 2 ;;
        --*) shift ;;
        *) break ;;
    esac
done
export SLURM_NODEID=0 SLURM_PROCID=0 SLURM_LOCALID=0
setsid "$@" &
echo $! > "$FAKE_SLURM_DIR/step.pgid"
wait $!
"""
FAKE_SCANCEL = '#!/usr/bin/env bash\nkill -TERM -- -"$(cat "$FAKE_SLURM_DIR/step.pgid")"\n'
FAKE_SBATCH = '#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$FAKE_SLURM_DIR/sbatch.txt"\n'


def train_lines(run: Path) -> list[dict]:
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    return [m for m in map(json.loads, lines) if m.get("kind") == "train"]


@pytest.mark.slow
def test_slurm_job_checkpoints_on_sigterm_and_resubmits_with_resume(en_corpus, tmp_path):
    import signal
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scancel", FAKE_SCANCEL), ("sbatch", FAKE_SBATCH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    run, record = tmp_path / "run", tmp_path / "sbatch.txt"
    job_env = slurm_env(tmp_path, SLURM_JOB_ID="41", SLURM_JOB_NODELIST="localhost",
                        SLURM_NNODES="1", SLURM_GPUS_ON_NODE="0", MASTER_PORT=str(free_port()))
    env = launcher_env(**job_env, FAKE_SLURM_DIR=str(tmp_path))
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env.pop("SLURM_CPUS_PER_TASK")
    job = subprocess.Popen(["bash", str(LAUNCH / "slurm.sbatch"), "--config", "configs/tiny.toml",
                            "--corpus", str(en_corpus), "--output", str(run),
                            "--max-steps", "500"], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 400
        while len(train_lines(run)) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        job.send_signal(signal.SIGTERM)  # what `#SBATCH --signal=B:TERM@120` sends
        output, _ = job.communicate(timeout=300)
    finally:
        kill_tree(job.pid)
    assert job.returncode == 0, output[-3000:]
    saved = int((run / "checkpoints" / "latest").read_text())
    assert 2 <= saved < 500 and saved == train_lines(run)[-1]["step"]
    (resubmission,) = record.read_text().splitlines()
    assert resubmission.startswith(
        "--dependency=afterany:41 --nodes 1 --export=ALL,LUKE_RESUBMIT_COUNT=1")
    assert resubmission.endswith(f"--output {run} --max-steps 500 --resume")
