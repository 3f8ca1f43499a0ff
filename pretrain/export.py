"""`luke-export RUN --out HF_DIR`: one checkpoint of a training run as a transformers directory.

The directory is what `LukeForMaskedLM.from_pretrained` and `AutoTokenizer.from_pretrained`
load as they are: config.json, model.safetensors, the corpus build's tokenizer files (copied,
so the ids of the exported tokenizer are the ids the model was trained on), entity_vocab.json,
tokenizer_config.json with the entity settings, and a README.md model card.

The weights are DeepSpeed's fp32 master weights merged offline (pretrain/consolidate.py), so
this runs on a CPU machine without a launcher, whatever ZeRO stage and world size trained them.
A model pretrained with plain attention is exported with entity-aware attention on and each
layer's `query` copied into `w2e_query`, `e2w_query` and `e2e_query`, as the reference did at
conversion; the copies make the four attention blocks compute exactly the plain attention, so
the outputs do not change. Everything is written into a temporary directory beside HF_DIR and
renamed at the end: a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import shutil
import sys
from pathlib import Path

import torch

from corpus import schema
from corpus.reader import Corpus, CorpusError
from pretrain import run_layout
from pretrain.consolidate import CheckpointError, luke_weights
from pretrain.model_card import write_model_card

EXTRA_QUERIES = ("w2e_query", "e2w_query", "e2e_query")
TOKENIZER_DEFAULTS = {"entity_token_1": "<ent>", "entity_token_2": "<ent2>",
                      "entity_unk_token": "[UNK]", "entity_pad_token": "[PAD]",
                      "entity_mask_token": "[MASK]", "entity_mask2_token": "[MASK2]"}
# Files save_pretrained of the model writes; a tokenizer file of the same name must not win.
MODEL_FILES = ("config.json", "generation_config.json")


class ExportError(Exception):
    """A run or checkpoint that cannot be exported; the message names what is missing."""


def export_run(run_dir, out_dir, checkpoint: int | None = None,
               entity_aware_attention: bool | None = None, overwrite: bool = False,
               corpus_dir=None) -> Path:
    """Export checkpoint `checkpoint` (default: the run's latest) of RUN into `out_dir`.

    entity_aware_attention: None keeps the reference convention (on, queries copied when the
    model was pretrained without it); False exports plain attention, which a model pretrained
    with entity-aware attention cannot honour (refused). corpus_dir: the corpus build whose
    tokenizer to ship, when it moved since training (default: the one RUN/config.json names).
    Returns `out_dir`.
    """
    run, out = Path(run_dir), Path(out_dir)
    step = _resolve_step(run, checkpoint)
    corpus = _run_corpus(run, corpus_dir)
    _check_destination(out, overwrite, {"training run": run, "corpus": corpus.directory})
    _check_trained_on(corpus, run, step)
    model = _trained_model(run, step, entity_aware_attention)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        _copy_tokenizer(corpus, tmp, model.config)
        write_model_card(tmp, run=run, step=step, corpus=corpus, config=model.config)
        _move_into_place(tmp, out, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_trained_model(run_dir, checkpoint: int | None = None, corpus: Corpus | None = None):
    """(transformers' LukeForMaskedLM of checkpoint `checkpoint` (default: the latest) of a
    run, its step), consolidated and converted exactly as the export writes it; with `corpus`,
    refused unless that corpus's tokenizer and entity vocabulary are the ones it learned."""
    run = Path(run_dir)
    step = _resolve_step(run, checkpoint)
    if corpus is not None:
        _check_trained_on(corpus, run, step)
    return _trained_model(run, step, entity_aware_attention=None), step


def _check_destination(out: Path, overwrite: bool, protected: dict[str, Path]) -> None:
    """Refuse an --out that is, holds or lies inside the run or the corpus, whatever
    --overwrite says (replacing it would delete them); refuse a non-empty --out without
    --overwrite, and with it one that holds anything but an earlier export."""
    target = out.resolve()
    for what, path in protected.items():
        kept = path.resolve()
        relation = ("is" if target == kept else "lies inside" if target.is_relative_to(kept)
                    else "holds" if kept.is_relative_to(target) else None)
        if relation:
            raise ExportError(f"{out}: {relation} the {what} {path}; an export there would "
                              f"replace or mix with it: choose an --out outside the run and "
                              f"the corpus")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise ExportError(f"{out}: already exists and is not empty (pass --overwrite to replace)")
    if not is_export(out):
        raise ExportError(f"{out}: holds files that are not a luke-export output; --overwrite "
                          f"replaces only an earlier export: choose another --out")


def is_export(directory: Path) -> bool:
    """Whether a directory holds what luke-export writes (a model config and its weights)."""
    return (directory / "config.json").is_file() and any(
        (directory / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))


def _check_trained_on(corpus: Corpus, run: Path, step: int) -> None:
    """Refuse a corpus whose tokenizer or entity vocabulary is not the one the checkpoint
    learned: the export would ship ids that mean other words or entities to the model."""
    state = _read_json(run_layout.checkpoint_dir(run, step) / run_layout.TRAINER_STATE_FILE)
    for part, ours in (("tokenizer", corpus.tokenizer.fingerprint),
                       ("entity_vocab", corpus.entity_vocab.fingerprint)):
        trained = state.get(f"{part}_fingerprint")
        if trained is not None and trained != ours:
            raise ExportError(
                f"{corpus.directory}: its {part.replace('_', ' ')} (fingerprint {ours}) is not "
                f"the one checkpoint {step} was trained with ({trained}): the exported model "
                f"would read other ids; pass the corpus the run trained on with --corpus")


def _resolve_step(run: Path, checkpoint: int | None) -> int:
    """The step to export, checked to have a checkpoint directory."""
    if not run.is_dir():
        raise ExportError(f"{run}: no such run directory")
    if checkpoint is None:
        try:
            checkpoint = run_layout.latest_step(run)
        except ValueError:
            latest = run / run_layout.CHECKPOINTS_DIR / run_layout.LATEST_FILE
            raise ExportError(f"{latest}: does not hold a step number") from None
        if checkpoint is None:
            raise ExportError(f"{run}: the run has no complete checkpoint "
                              f"({run_layout.CHECKPOINTS_DIR}/{run_layout.LATEST_FILE} missing)")
    directory = run_layout.checkpoint_dir(run, checkpoint)
    if not directory.is_dir():
        raise ExportError(f"{directory}: no checkpoint for step {checkpoint} "
                          f"(the run has: {', '.join(map(str, run_layout.saved_steps(run))) or 'none'})")
    # luke-train writes the trainer state after every rank's DeepSpeed files: without it the
    # checkpoint was cut short while saving.
    if not (directory / run_layout.TRAINER_STATE_FILE).is_file():
        raise ExportError(f"{directory}: {run_layout.TRAINER_STATE_FILE} missing: the checkpoint "
                          "was not finished (the run stopped while saving it)")
    return checkpoint


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ExportError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: not valid JSON ({error})") from None


def _run_corpus(run: Path, given=None) -> Corpus:
    """The corpus build the run trained on: `given`, or as recorded in RUN/config.json."""
    config_path = run / run_layout.CONFIG_FILE
    recorded = _read_json(config_path).get("corpus")
    if given is None and not recorded:
        raise ExportError(f"{config_path}: does not record the corpus directory ('corpus' key); "
                          "name it with --corpus")
    directory = Path(given if given is not None else recorded)
    where = "given with --corpus" if given is not None else f"named in {config_path}"
    tokenizer = directory / schema.TOKENIZER_DIR
    if not tokenizer.is_dir():
        raise ExportError(f"{tokenizer}: the tokenizer of the run's corpus is missing (corpus "
                          f"{where}; if it moved, pass --corpus DIR)")
    try:
        return Corpus.open(directory, needs=("tokenizer",))
    except CorpusError as error:
        raise ExportError(f"{error} (corpus {where})") from None


def _trained_model(run: Path, step: int, entity_aware_attention: bool | None):
    """transformers' LukeForMaskedLM holding the weights of checkpoint `step`."""
    from transformers import LukeConfig, LukeForMaskedLM

    config = LukeConfig.from_dict(_read_json(run / run_layout.MODEL_CONFIG_FILE))
    try:
        weights = luke_weights(run_layout.checkpoint_dir(run, step))
    except CheckpointError as error:
        raise ExportError(str(error)) from None
    trained_eaa = bool(config.use_entity_aware_attention)
    if trained_eaa and entity_aware_attention is False:
        raise ExportError(f"{run}: the model was pretrained with entity-aware attention; "
                          "exporting it without would drop its trained w2e/e2w/e2e queries")
    if not trained_eaa and entity_aware_attention is not False:
        weights = with_copied_queries(weights, config.num_hidden_layers)
        config.use_entity_aware_attention = True
    model = LukeForMaskedLM(config)
    _load_exactly(model, weights, run_layout.checkpoint_dir(run, step))
    return model.eval()


def with_copied_queries(weights: dict[str, torch.Tensor],
                        num_layers: int) -> dict[str, torch.Tensor]:
    """`weights` plus each layer's query copied into the three entity-aware queries."""
    weights = dict(weights)
    for layer in range(num_layers):
        prefix = f"luke.encoder.layer.{layer}.attention.self."
        for part in ("weight", "bias"):
            query = weights[f"{prefix}query.{part}"]
            for extra in EXTRA_QUERIES:
                weights[f"{prefix}{extra}.{part}"] = query.clone()
    return weights


def _load_exactly(model, weights: dict[str, torch.Tensor], where: Path) -> None:
    """Load every parameter of `model` from `weights`, refusing gaps, leftovers and untied ties."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ExportError(f"{where}: the checkpoint does not hold LukeForMaskedLM's weights: "
                          f"missing {missing[:8] or 'none'}, unexpected {unexpected[:8] or 'none'}")
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ExportError(f"{where}: {name} has shape {tuple(tensor.shape)}, the model config "
                              f"says {tuple(expected[name].shape)}")
    for tied, source in _tied_pairs(model):
        if not torch.equal(weights[tied], weights[source]):
            raise ExportError(f"{where}: {tied} differs from {source}, which transformers ties")
    model.load_state_dict(weights, strict=True)


def _tied_pairs(model) -> list[tuple[str, str]]:
    """(name, name) of parameters that are one tensor in the built transformers model."""
    owner_of, pairs = {}, []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in owner_of:
            pairs.append((name, owner_of[id(param)]))
        else:
            owner_of[id(param)] = name
    return pairs


def _copy_tokenizer(corpus: Corpus, out: Path, config) -> None:
    """The corpus build's tokenizer files into `out`, with the entity settings made explicit."""
    source = corpus.tokenizer_dir
    for path in source.iterdir():
        if path.is_file() and path.name not in MODEL_FILES:
            shutil.copy2(path, out / path.name)
    _check_entity_vocab(out / schema.ENTITY_VOCAB_FILE, source, config)
    settings_path = out / "tokenizer_config.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    settings.update({key: value for key, value in _entity_settings(corpus).items()
                     if key not in settings})
    # Longest input the position table takes (RoBERTa positions start past the pad id).
    longest = config.max_position_embeddings - config.pad_token_id - 1
    if settings.get("model_max_length", longest + 1) > longest:
        settings["model_max_length"] = longest
    settings_path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    _check_tokenizer_matches(out, config)


def _check_entity_vocab(path: Path, source: Path, config) -> None:
    if not path.is_file():
        raise ExportError(f"{source / schema.ENTITY_VOCAB_FILE}: missing from the corpus tokenizer")
    vocab = json.loads(path.read_text())
    absent = [name for name in schema.ENTITY_SPECIALS if name not in vocab]
    if absent:
        raise ExportError(f"{source / schema.ENTITY_VOCAB_FILE}: lacks {', '.join(absent)}")
    # Ids, not keys: in mLUKE's format several keys ("en:Tokyo", "ja:東京") share one id.
    entities = len(set(vocab.values()))
    if entities != config.entity_vocab_size:
        raise ExportError(f"{source / schema.ENTITY_VOCAB_FILE}: {entities} entities, the model "
                          f"has {config.entity_vocab_size}: the run trained on another corpus")


def _entity_settings(corpus: Corpus) -> dict:
    """tokenizer_config.json entity keys, limits from the corpus manifest."""
    limits = corpus.examples.limits
    return {**TOKENIZER_DEFAULTS, "max_entity_length": limits.max_entities,
            "max_mention_length": limits.max_mention_length}


def _check_tokenizer_matches(out: Path, config) -> None:
    """The exported tokenizer must give the ids the model was built for."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(out)
    except Exception as error:  # transformers raises many kinds; all mean the same to a user
        raise ExportError(f"{out}: the copied tokenizer does not load ({error})") from None
    if len(tokenizer) != config.vocab_size or tokenizer.pad_token_id != config.pad_token_id:
        raise ExportError(
            f"{out}: the corpus tokenizer has {len(tokenizer)} tokens and pad id "
            f"{tokenizer.pad_token_id}, the model {config.vocab_size} and {config.pad_token_id}: "
            "the run trained on another corpus")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished export to `out`, replacing an earlier export only when asked. The
    two are swapped in one step where the system can (Linux renameat2), so `out` always holds
    one complete export, the old or the new."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not overwrite and any(out.iterdir()):
        raise ExportError(f"{out}: appeared while exporting; not replaced")
    if exchange_paths(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)          # now the old export
        return
    old = out.parent / f".{out.name}.replaced-{os.getpid()}"
    os.replace(out, old)
    os.replace(tmp, out)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot (no renameat2, or a
    file system without RENAME_EXCHANGE), so the caller falls back to two renames."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(error, os.strerror(error), str(b))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="luke-export",
        description="Export a luke-train checkpoint as a directory transformers loads.")
    parser.add_argument("run", type=Path, help="the training run directory (luke-train --output)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--checkpoint", type=int, default=None, metavar="STEP",
                        help="the step to export (default: the run's latest checkpoint)")
    parser.add_argument("--entity-aware-attention", choices=("on", "off"), default=None,
                        help="default on: a plain-attention model gets its queries copied into "
                             "the entity-aware ones; off keeps plain attention")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                        help="the corpus build the run trained on, if it moved since "
                             "(default: the one RUN/config.json names)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    eaa = None if args.entity_aware_attention is None else args.entity_aware_attention == "on"
    try:
        out = export_run(args.run, args.out, args.checkpoint, eaa, args.overwrite, args.corpus)
    except (ExportError, CheckpointError) as error:
        print(f"luke-export: error: {error}", file=sys.stderr)
        return 1
    print(f"exported {args.run} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
