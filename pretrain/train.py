"""The training loop of `luke-train`: LukeForMaskedLM under DeepSpeed, on one or many ranks.

`train()` first decides everything that can refuse the run (`plan_run`: the corpus, the model
and DeepSpeed configs, the lr schedule, whether and how a resume may continue), then builds
the model (weights in place before `deepspeed.initialize`, where fp16/bf16 copies are made),
optionally loads the checkpoint to resume from, then runs optimizer steps. Each step sums the micro-batch
losses, reduces them (with token counts and a stop flag) over all ranks in one collective, so
every rank takes the same decision on NaN, evaluation, saving and stopping.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from corpus.reader import Corpus
from pretrain import checkpoint, run_layout
from pretrain.config import RunConfig, config_dict, config_hash, luke_config, with_fixed_shape
from pretrain.data import TrainBatches, training_sampler
from pretrain.ds_config import derive_ds_config, total_steps
from pretrain.init_weights import (InitSource, check_fits_corpus, freeze_word_side,
                                   initial_weights, load_initial_weights, open_init_source)
from pretrain.masking import IGNORE_INDEX
from pretrain.metrics import MetricsLog
from pretrain.resume import ResumePlan, plan_resume, read_run_config
from pretrain.schedule import LrSchedule, ScheduleDriver
from pretrain.shm_segments import unlink_own_segment

# A run whose loss stays non-finite this many steps in a row is not going to recover.
MAX_CONSECUTIVE_SKIPS = 10


class TrainingError(RuntimeError):
    """A run that cannot start or go on; the message says why, with step and where."""


def init_distributed() -> tuple[int, int]:
    """(rank, world size), under deepspeed/torchrun or as a single process without one."""
    import deepspeed

    if "RANK" not in os.environ:  # no launcher: a world of one
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    deepspeed.init_distributed()
    rank = dist.get_rank()
    # Every rank has mapped its peers' shared-memory buffers once init_distributed returns
    # everywhere; after this barrier the names are no longer needed (pretrain.shm_segments).
    dist.barrier()
    unlink_own_segment(rank)
    return rank, dist.get_world_size()


def build_model(luke_cfg, model_cfg):
    """The model to train, weights initialized (pretrain.models' choice of implementation)."""
    from pretrain.models import build_model as build_impl

    return build_impl(luke_cfg, model_cfg.impl, compile=model_cfg.compile,
                      activation_checkpointing=model_cfg.activation_checkpointing)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (as LUKE and BERT)."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue  # tied weights appear under several modules
            seen.add(id(param))
            exempt = isinstance(module, torch.nn.LayerNorm) or name.endswith("bias")
            (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def launch_record(previous: dict, command: str | None, world: int, resuming: bool) -> dict:
    """How the run was started, for RUN/config.json (and the model card): the first command
    (launcher-independent: `luke-train ...`), the world size, and each --resume command since.
    A resume keeps what the run's config.json recorded before it (`previous`)."""
    if command is None:  # train() called from Python, not from the command line
        return {}
    resumes = previous.get("resume_commands", []) + ([command] if resuming else [])
    return {"command": previous.get("command") or command, "world_size": world,
            "resume_commands": resumes}


# Keys RUN/config.json holds beside the config tree: what the run derived (its corpus, its step
# count, which launch/slurm.sbatch reads to decide on a resubmission, its lr schedule, the
# config changes accepted on resume, the weights it started from) and how it was started.
RUN_RECORD_KEYS = ("corpus", "total_steps", "lr_schedule", "changes", "init_from", "command",
                   "world_size", "resume_commands")


@dataclass(frozen=True)
class RunPlan:
    """Everything decided before any rank starts: a refused run stops here, having written
    nothing."""
    config: RunConfig          # the config to run: the model shape fixed by --init-from
    corpus: Corpus
    luke_cfg: Any
    steps: int
    schedule: LrSchedule
    ds_config: dict
    resumed: ResumePlan | None
    launch: dict
    init: InitSource | None    # the weights a new run starts from
    init_record: dict | None   # what RUN/config.json records of them (kept across resumes)


def plan_run(config: RunConfig, chosen: set[str], corpus_dir: Path, run: Path, resume: bool,
             command: str | None, allowed: list[str], resume_from: int | None,
             init_from: Path | None) -> RunPlan:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    corpus = Corpus.open(corpus_dir)
    if config.train.eval_ed_every and not corpus.examples.validation_examples:
        raise TrainingError(f"train.eval_ed_every: {corpus.directory} has no validation "
                            "examples to disambiguate (rebuild it with --validation-pages N)")
    state = checkpoint.read_trainer_state(run, resume_from)
    if state is not None and not resume:
        raise TrainingError(f"{run} already holds checkpoints (latest step {state['step']}): "
                            "pass --resume to continue it, or choose another --output")
    previous = read_run_config(run) if state is not None else {}
    init, init_record = plan_init(init_from, previous.get("init_from"), run)
    if init_record is not None:
        config = with_fixed_shape(config, chosen, init_record["shape"],
                                  f"--init-from {init_record['path']}")
    luke_cfg = luke_config(config.model, corpus)
    if init is not None:
        check_fits_corpus(init, corpus, luke_cfg)
    steps = total_steps(config, corpus.examples.num_examples)
    resumed = None
    if state is not None:
        resumed = plan_resume(run, state, config, corpus.examples.fingerprint,
                              checkpoint.model_shape(luke_cfg), world, steps, allowed)
    schedule = resumed.schedule if resumed else LrSchedule(
        config.optim.lr, min(config.optim.warmup_steps, steps), steps)
    ds_config = derive_ds_config(config, world, schedule.lr(1), on_gpu=torch.cuda.is_available())
    return RunPlan(config, corpus, luke_cfg, steps, schedule, ds_config, resumed,
                   launch_record(previous, command, world, resuming=resumed is not None),
                   init, init_record)


def plan_init(init_from: Path | None, recorded: dict | None, run: Path
              ) -> tuple[InitSource | None, dict | None]:
    """(the source to load weights from, its record). A resumed run loads its checkpoint, not
    the source, and keeps the record (with the shape the source fixed) of its first start."""
    if recorded is not None:
        if init_from is not None and Path(init_from).resolve() != Path(recorded["path"]):
            raise TrainingError(f"{run}: it started from {recorded['path']}, not {init_from}; "
                                f"a resume continues from its checkpoint: drop --init-from")
        return None, recorded
    if init_from is None:
        return None, None
    source = open_init_source(Path(init_from))
    return source, {**source.record, "shape": source.shape}


def write_run_files(run: Path, plan: RunPlan) -> None:
    run.mkdir(parents=True, exist_ok=True)
    resolved = {**config_dict(plan.config), "corpus": str(plan.corpus.directory.resolve()),
                "total_steps": plan.steps, "lr_schedule": dataclasses.asdict(plan.schedule),
                "changes": plan.resumed.changes if plan.resumed else [],
                "init_from": plan.init_record, **plan.launch}
    for name, value in ((run_layout.CONFIG_FILE, resolved),
                        (run_layout.DS_CONFIG_FILE, plan.ds_config),
                        (run_layout.MODEL_CONFIG_FILE, plan.luke_cfg.to_dict())):
        checkpoint.write_atomic(run / name, json.dumps(value, indent=1, default=str) + "\n")


class StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step; a second SIGINT
    interrupts at once (the user means it)."""

    def __init__(self):
        self.received: str | None = None
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)

    def handle(self, signum, frame):
        self.received = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)


def train_step(engine, micro_batches: list[dict], stop: bool) -> tuple[torch.Tensor, list]:
    """Forward/backward over this rank's micro-batches and one optimizer step. Returns the
    world's [loss, mlm_loss, mep_loss] means, its token and sequence counts and stop votes,
    and this rank's page ids."""
    totals = torch.zeros(6, dtype=torch.float64)
    page_ids = []
    for batch in micro_batches:
        page_ids += batch["page_ids"].tolist()
        inputs = {k: v.to(engine.device) for k, v in batch.items() if k != "page_ids"}
        out = engine(**inputs)
        engine.backward(out.loss)
        engine.step()
        totals[:3] += torch.stack([out.loss, out.mlm_loss, out.mep_loss]).detach().double().cpu()
        totals[3] += inputs["attention_mask"].sum().item() + inputs["entity_attention_mask"].sum().item()
        totals[4] += len(batch["page_ids"])
    totals[:3] /= len(micro_batches)
    totals[5] = float(stop)
    dist.all_reduce(totals)
    totals[:3] /= dist.get_world_size()
    return totals, page_ids


def eval_plan(examples: int, micro: int, world: int, max_batches: int) -> tuple[int, int]:
    """(micro batch size, number of micro-batches) giving every rank the same number of full
    validation batches: under ZeRO-3 each forward is a collective, so unequal counts hang."""
    micro = min(micro, examples // world)
    if micro == 0:
        return 0, 0
    per_rank = examples // (micro * world)
    if max_batches:
        per_rank = min(per_rank, max(1, max_batches // world))
    return micro, per_rank * world


@torch.no_grad()
def evaluate(engine, batches: TrainBatches, config: RunConfig, corpus: Corpus) -> dict:
    """Word and entity prediction accuracy (and loss) on the validation split, pooled over
    its languages, and per language under "languages" in a build of several. Each language
    gets up to data.eval_batches micro-batches of its own rows."""
    languages = corpus.examples.languages
    # Per language: word right/total, entity right/total, summed loss, batches.
    counts = torch.zeros(len(languages), 6, dtype=torch.float64)
    engine.eval()
    for number, language in enumerate(languages):
        micro, n_batches = eval_plan(language.validation_examples,
                                     config.train.micro_batch_size, dist.get_world_size(),
                                     config.data.eval_batches)
        counts[number, 5] = n_batches
        if n_batches == 0:      # a language without validation examples (or too few)
            continue
        for batch in batches.eval_batches(micro, n_batches, language.validation_rows, number):
            inputs = {k: v.to(engine.device) for k, v in batch.items() if k != "page_ids"}
            out = engine(**inputs)
            counts[number, :2] += prediction_counts(out.logits, inputs["labels"])
            counts[number, 2:4] += prediction_counts(out.entity_logits, inputs["entity_labels"])
            counts[number, 4] += out.loss.double().item()
    engine.train()
    counts[:, :5] = all_reduced(counts[:, :5])
    if counts[:, 5].sum() == 0:
        return {}
    result = accuracy_fields(counts.sum(0))
    if len(languages) > 1:
        result["languages"] = {language.language: accuracy_fields(counts[number])
                               for number, language in enumerate(languages)
                               if counts[number, 5] > 0}
    return result


def all_reduced(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.contiguous()
    dist.all_reduce(tensor)
    return tensor


def accuracy_fields(counts: torch.Tensor) -> dict:
    """The metrics line's fields from [word right, word total, entity right, entity total,
    summed loss, batches]; an accuracy without any labelled position is None."""
    ratio = lambda part, whole: (part / whole).item() if whole > 0 else None  # noqa: E731
    return {"word_accuracy": ratio(counts[0], counts[1]),
            "entity_accuracy": ratio(counts[2], counts[3]),
            "loss": ratio(counts[4], counts[5])}


def shared_ed_task(corpus: Corpus, rank: int):
    """The entity-disambiguation task (pretrain/ed_task.py), built on rank 0 (which reads the
    pages once) and sent to every rank; a build that fails stops every rank alike."""
    from corpus.inspect import InspectError
    from corpus.reader import CorpusError
    from pretrain.ed_task import build_ed_task

    holder = [None]
    if rank == 0:
        try:
            holder = [build_ed_task(corpus)]
        except (CorpusError, InspectError) as error:
            holder = [str(error)]
    dist.broadcast_object_list(holder, src=0)
    if isinstance(holder[0], str):
        raise TrainingError(f"train.eval_ed_every: {holder[0]}")
    return holder[0]


@torch.no_grad()
def evaluate_ed(engine, task, config: RunConfig, corpus: Corpus) -> dict:
    """Zero-shot entity-disambiguation accuracy of the model being trained, with the prior
    baseline and the task's counts, as one metrics line's fields."""
    from pretrain.ed_score import ed_result, model_correct

    engine.eval()
    right = model_correct(lambda inputs: engine(**inputs).entity_logits, task,
                          config.train.micro_batch_size, corpus.tokenizer.pad_token_id,
                          corpus.examples.limits.max_mention_length, engine.device,
                          dist.get_rank(), dist.get_world_size())
    engine.train()
    total = torch.tensor([right], dtype=torch.float64)
    dist.all_reduce(total)
    result = ed_result(task, int(total.item()))
    return {**result, "excluded": sum(result["excluded"].values())}


def prediction_counts(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[correct, predicted] over the labelled positions. Logits cover every position
    (transformers) or only the labelled ones, in order (a model that gathers before its head)."""
    wanted = labels != IGNORE_INDEX
    if logits.dim() == labels.dim() + 1:
        logits = logits[wanted]
    right = (logits.argmax(-1) == labels[wanted]).sum()
    return torch.tensor([right.item(), wanted.sum().item()], dtype=torch.float64)


def nonfinite_message(done: int, totals: torch.Tensor, page_ids: list, policy: str) -> str:
    parts = ", ".join(f"{n} {v:.6g}" for n, v in zip(("loss", "mlm_loss", "mep_loss"), totals[:3]))
    return (f"non-finite loss at step {done} ({parts}); batch pages {sorted(set(page_ids))}; "
            f"nan_policy={policy}")


def train(config: RunConfig, corpus_dir: Path, run: Path, resume: bool,
          command: str | None = None, allowed_changes: tuple[str, ...] = (),
          resume_from: int | None = None, init_from: Path | None = None,
          chosen: set[str] = frozenset()) -> int:
    """Train (or continue) the run in RUN; returns the last finished step. `command` is the
    command line that started it (pretrain.cli.launch_command), recorded in RUN/config.json;
    `allowed_changes` are the config keys a resume may change (pretrain/resume.py);
    `resume_from` a checkpoint step to resume from instead of the latest; `init_from` the
    weights a new run starts from (pretrain/init_weights.py), whose shape replaces the config's
    model keys except those in `chosen` (the keys the user set), which must agree with it."""
    import deepspeed

    run = Path(run)
    plan = plan_run(config, set(chosen), corpus_dir, run, resume, command, list(allowed_changes),
                    resume_from, init_from)
    config, corpus, steps, seed = plan.config, plan.corpus, plan.steps, config.train.seed
    shape = checkpoint.model_shape(plan.luke_cfg)
    rank, world = init_distributed()
    if rank == 0:
        write_run_files(run, plan)

    torch.manual_seed(seed)  # the same initial weights on every rank
    model = build_model(plan.luke_cfg, config.model)
    if plan.init is not None and plan.resumed is None:
        load_initial_weights(model, initial_weights(plan.init, model, corpus), plan.init)
    if config.train.trainable == "entity":
        freeze_word_side(model)
    engine, *_ = deepspeed.initialize(
        model=model, config=plan.ds_config,
        model_parameters=param_groups(model, config.optim.weight_decay),
        lr_scheduler=lambda optimizer: ScheduleDriver(optimizer, plan.schedule))
    start = 0
    if plan.resumed is not None:
        start = plan.resumed.step
        checkpoint.load_checkpoint(engine, run, start, rank)
    else:
        torch.manual_seed(seed + 1 + rank)  # dropout: a different stream per rank
    sampler = training_sampler(corpus, config.train.global_batch_size,
                               config.train.micro_batch_size, world, rank, seed,
                               config.data.language_alpha)
    batches = TrainBatches(corpus, "train", sampler, config.masking, seed)
    ed_task = shared_ed_task(corpus, rank) if config.train.eval_ed_every else None
    log = MetricsLog(run, rank, start, steps)
    if ed_task is not None:
        log.message(f"entity disambiguation every {config.train.eval_ed_every} steps on "
                    f"{ed_task.describe()}")
    stop = StopSignal()
    stream = batches.iter_from(start)
    done, skipped_in_row, last = start, 0, time.perf_counter()
    wait_before = stream.wait_seconds
    try:
        for step, micro_batches in stream:
            if step >= steps:
                break
            # The rate this step applies (the optimizer's; the scheduler moves it on in the step).
            lr = engine.get_lr()[0]
            totals, page_ids = train_step(engine, micro_batches, stop.received is not None)
            done = step + 1
            now = time.perf_counter()
            seconds, waited = now - last, stream.wait_seconds - wait_before
            last, wait_before = now, stream.wait_seconds
            finite = bool(torch.isfinite(totals[:3]).all())
            if not finite:
                pages = [None] * world
                dist.all_gather_object(pages, page_ids)
                message = nonfinite_message(done, totals, sum(pages, []), config.train.nan_policy)
                skipped_in_row += 1
                if config.train.nan_policy == "stop" or skipped_in_row >= MAX_CONSECUTIVE_SKIPS:
                    raise TrainingError(message + (" (too many in a row)" if skipped_in_row > 1 else "")
                                        + f"; the last good checkpoint is step "
                                        f"{run_layout.latest_step(run)}")
                log.message("skipped: " + message)
            else:
                skipped_in_row = 0
            log.log({"kind": "train", "step": done, "loss": totals[0].item(),
                     "mlm_loss": totals[1].item(), "mep_loss": totals[2].item(),
                     "lr": lr, "grad_norm": grad_norm(engine),
                     "tokens_per_s": totals[3].item() / seconds,
                     "sequences_per_s": totals[4].item() / seconds,
                     "seconds_per_step": seconds, "data_wait_share": waited / seconds,
                     "skipped": not finite})
            stopping = totals[5].item() > 0
            if done % config.train.eval_every == 0 or done == steps:
                result = evaluate(engine, batches, config, corpus)
                if result:
                    log.log({"kind": "validation", "step": done, **result})
            if ed_task is not None and (done % config.train.eval_ed_every == 0 or done == steps):
                log.log({"kind": "entity_disambiguation", "step": done,
                         **evaluate_ed(engine, ed_task, config, corpus)})
            if done % config.train.save_every == 0 or done == steps or stopping:
                save(engine, run, done, corpus, config, shape, world, rank, log)
            if stopping:
                log.message(f"stopped by {stop.received or 'a signal on another rank'} "
                            f"after step {done}; resume with --resume")
                break
            last = time.perf_counter()  # evaluation and saving are not step time
    finally:
        stream.close()
        log.close()
    return done


def grad_norm(engine) -> float | None:
    norm = engine.get_global_grad_norm()
    if norm is None:
        return None
    norm = float(norm)
    return norm if math.isfinite(norm) else None


def save(engine, run, done, corpus, config, shape, world, rank, log) -> None:
    """Save checkpoint `done`; a failure (a full disk, a quota) is one line that names the
    checkpoint and says that `latest` still names the previous, complete one."""
    state = checkpoint.trainer_state(done, corpus_fingerprints(corpus), config_hash(config),
                                     shape, config.train.seed, config.train.global_batch_size,
                                     world)
    try:
        directory = checkpoint.save_checkpoint(engine, run, state, rank)
    except (OSError, RuntimeError) as error:
        raise TrainingError(checkpoint.failed_save_message(run, done, error, rank)) from None
    log.message(f"saved checkpoint {directory}")


def corpus_fingerprints(corpus: Corpus) -> dict[str, str]:
    """What a checkpoint records of the corpus it was trained on: the examples (a resume must
    read the same ones) and the tokenizer and entity vocabulary (an export must ship the ones
    whose ids the model learned)."""
    return {"examples": corpus.examples.fingerprint, "tokenizer": corpus.tokenizer.fingerprint,
            "entity_vocab": corpus.entity_vocab.fingerprint}
