"""The starting weights of a run given `luke-train --init-from DIR`, and the shape they fix.

DIR is one of three things, told apart by what it holds:
  - a base encoder (a `save_pretrained` directory of a RoBERTa- or XLM-R-family *ForMaskedLM):
    its word side (word, position and token type embeddings with their LayerNorm, every encoder
    layer, the MLM head) is copied into LUKE, where the two share names; the entity side
    (entity table, its projection, entity position and type embeddings and LayerNorm, the
    entity head) keeps its fresh initialisation. LUKE's word ids extend the base's: `<ent>` and
    `<ent2>` start as copies of "@" and "#" (as the reference LUKE's conversion did), and the
    entity specials transformers 5 also appends as word tokens (`[UNK]` ...; text holding them
    never reaches the data) as copies of `<unk>`. Fed words alone, the initialised model gives
    the base model's MLM logits (tests/test_base_model.py);
  - a luke-train run: the fp32 weights of its latest checkpoint, merged offline (a word side
    the run kept frozen since a base encoder is taken from that encoder, exactly);
  - a luke-export directory: its model.safetensors (entity-aware queries that the export only
    copied from `query` are dropped again for a model trained with plain attention).
A run started from a run or an export gets every weight from it, and a fresh optimizer,
schedule and step count: the second stage of the reference's two-stage training.

The source fixes the model's shape (`shape`): a config key the user set that says otherwise
is refused by name (pretrain.config.with_fixed_shape). Whether the corpus was built with the
source's tokenizer is checked too: ids would silently mean other words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from corpus.base_tokenizer import (FAMILIES, WEIGHT_FILES, base_tokenizer_fingerprint,
                                   open_base_model)
from corpus.reader import Corpus
from corpus.word_tokenizer import TokenizerError, tokenizer_fingerprint
from pretrain import run_layout

# LukeConfig keys a base encoder's config fixes (RobertaConfig and XLMRobertaConfig share them).
BASE_SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                   "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
                   "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")
# ... and those a LUKE model's config fixes besides.
LUKE_SHAPE_KEYS = (*BASE_SHAPE_KEYS, "entity_emb_size", "use_entity_aware_attention")
EXTRA_QUERIES = ("w2e_query", "e2w_query", "e2e_query")
# Parameters that make up the entity side (everything else is the word side).
ENTITY_SIDE = ("luke.entity_embeddings.", "entity_predictions.")


class InitError(ValueError):
    """An --init-from directory that cannot start this run; the message says what and where."""


@dataclass(frozen=True)
class InitSource:
    path: Path
    kind: str                              # "base", "run" or "export"
    shape: dict[str, Any]                  # ModelConfig keys its weights fix
    record: dict[str, Any] = field(default_factory=dict)   # for RUN/config.json

    @property
    def base_model(self) -> str | None:
        """The base encoder the weights came from in the end (through earlier runs too)."""
        return self.record.get("base_model")


def open_init_source(path: Path) -> InitSource:
    """What --init-from DIR names, refused with one line when it is none of the three."""
    path = Path(path)
    if (path / run_layout.MODEL_CONFIG_FILE).is_file() and \
            (path / run_layout.CHECKPOINTS_DIR).is_dir():
        return _run_source(path)
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
    if config.get("model_type") == "luke":
        return _export_source(path, config)
    if config.get("model_type") in FAMILIES or not config:
        try:
            base = open_base_model(path, what="--init-from")
        except TokenizerError as error:
            raise InitError(str(error)) from None
        shape = {key: base.config[key] for key in BASE_SHAPE_KEYS if key in base.config}
        return InitSource(path, "base", shape,
                          {"path": str(path.resolve()), "kind": "base",
                           "model_type": base.model_type, "base_model": str(path.resolve())})
    raise InitError(f"--init-from {path}: model_type {config.get('model_type')!r}: give a "
                    f"RoBERTa- or XLM-R-family encoder, a luke-train run or a luke-export "
                    f"directory")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InitError(f"{path}: unreadable ({error})") from None


def _run_source(run: Path) -> InitSource:
    step = run_layout.latest_step(run)
    if step is None:
        raise InitError(f"--init-from {run}: the run has no complete checkpoint")
    config = _read_json(run / run_layout.MODEL_CONFIG_FILE)
    recorded = _read_json(run / run_layout.CONFIG_FILE).get("init_from") or {}
    return InitSource(run, "run", {k: config[k] for k in LUKE_SHAPE_KEYS if k in config},
                      {"path": str(run.resolve()), "kind": "run", "step": step,
                       "base_model": recorded.get("base_model")})


def _export_source(path: Path, config: dict) -> InitSource:
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise InitError(f"--init-from {path}: no model weights ({' or '.join(WEIGHT_FILES)})")
    return InitSource(path, "export", {k: config[k] for k in LUKE_SHAPE_KEYS if k in config},
                      {"path": str(path.resolve()), "kind": "export"})


# ----------------------------------------------------------------- does it fit the corpus

def check_fits_corpus(source: InitSource, corpus: Corpus, luke_cfg) -> None:
    """Refuse a source whose word ids are not the corpus's (another tokenizer) or whose tables
    have other sizes."""
    where = f"--init-from {source.path}"
    if source.kind == "base":
        built_with = (corpus.tokenizer.base_model or {}).get("tokenizer_fingerprint")
        if built_with != base_tokenizer_fingerprint(source.path):
            how = (f"with the tokenizer of {corpus.tokenizer.base_model['path']}"
                   if built_with else "with a tokenizer it trained itself")
            raise InitError(f"{where}: the corpus {corpus.directory} was built {how}, not this "
                            f"model's: its word ids would mean other words to the model; build "
                            f"the corpus with --base-model {source.path}")
        return
    trained_on = _trained_tokenizer(source)
    if trained_on is not None and trained_on != corpus.tokenizer.fingerprint:
        raise InitError(f"{where}: it was trained with another tokenizer (fingerprint "
                        f"{trained_on}) than the corpus {corpus.directory} has "
                        f"({corpus.tokenizer.fingerprint}): its ids would mean other words")
    for key in ("vocab_size", "entity_vocab_size"):
        theirs = _source_config(source).get(key)
        if theirs != getattr(luke_cfg, key):
            raise InitError(f"{where}: {key} is {theirs}, the corpus gives "
                            f"{getattr(luke_cfg, key)}: it was trained on another corpus")


def _trained_tokenizer(source: InitSource) -> str | None:
    if source.kind == "export":
        return tokenizer_fingerprint(source.path)
    state = run_layout.checkpoint_dir(source.path, source.record["step"]) / \
        run_layout.TRAINER_STATE_FILE
    return _read_json(state).get("tokenizer_fingerprint")


def _source_config(source: InitSource) -> dict:
    name = run_layout.MODEL_CONFIG_FILE if source.kind == "run" else "config.json"
    return _read_json(source.path / name)


# ----------------------------------------------------------------- the weights

def initial_weights(source: InitSource, model: torch.nn.Module, corpus: Corpus
                    ) -> dict[str, torch.Tensor]:
    """The tensors to load into `model` (named as LukeForMaskedLM names them): the word side
    of a base encoder, or every weight of a run or an export."""
    if source.kind == "base":
        return base_word_side(source.path, model, corpus)
    if source.kind == "run":
        from pretrain.consolidate import CheckpointError, luke_weights

        try:
            weights = luke_weights(run_layout.checkpoint_dir(source.path, source.record["step"]))
        except CheckpointError as error:
            raise InitError(f"--init-from {source.path}: {error}") from None
        frozen_since = _frozen_base(source.path)
        if frozen_since is not None:
            weights.update(base_word_side(frozen_since, model, corpus))
        return weights
    return _export_weights(source.path, model)


def _frozen_base(run: Path) -> Path | None:
    """The base encoder whose word side the run kept frozen all along (train.trainable
    "entity" from the start), when it is still on disk. Its checkpoint holds that word side as
    DeepSpeed kept it, in bf16 under bf16 training; the base holds it exactly."""
    config = _read_json(run / run_layout.CONFIG_FILE)
    init = config.get("init_from") or {}
    frozen = (config.get("train") or {}).get("trainable") == "entity" and not any(
        change.get("key") == "train.trainable" for change in config.get("changes", []))
    if frozen and init.get("kind") == "base" and Path(init["path"]).is_dir():
        return Path(init["path"])
    return None


def _load_file(path: Path) -> dict[str, torch.Tensor]:
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()))
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(weights))
    return torch.load(weights, map_location="cpu", weights_only=True)


def _export_weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    weights = _load_file(path)
    wanted = model.state_dict()
    for name in [n for n in weights if n not in wanted and n.rsplit(".", 2)[-2] in EXTRA_QUERIES]:
        query = weights[name.replace(name.rsplit(".", 2)[-2], "query")]
        if not torch.equal(weights[name], query):
            raise InitError(f"--init-from {path}: {name} was trained (it differs from the "
                            f"layer's query): keep it with model.use_entity_aware_attention=true")
        del weights[name]       # a copy the export made for entity-aware attention
    return weights


def base_word_side(path: Path, model: torch.nn.Module, corpus: Corpus
                   ) -> dict[str, torch.Tensor]:
    """The base encoder's word side under LUKE's names, the word tables grown to the corpus
    tokenizer's ids (see the module docstring)."""
    base = {name.removeprefix("roberta."): t for name, t in _load_file(path).items()}
    missing = [n for n in ("embeddings.word_embeddings.weight", "lm_head.dense.weight")
               if n not in base]
    if missing:
        raise InitError(f"--init-from {path}: its weights lack {', '.join(missing)}: save the "
                        f"model as RobertaForMaskedLM / XLMRobertaForMaskedLM (with its MLM head)")
    wanted = model.state_dict()
    weights: dict[str, torch.Tensor] = {}
    for name, tensor in base.items():
        luke_name = name if name.startswith("lm_head.") else f"luke.{name}"
        if luke_name in wanted and not luke_name.startswith(("luke.embeddings.word_embeddings",
                                                             "lm_head.decoder", "lm_head.bias")):
            weights[luke_name] = tensor
    rows = _extended_rows(path, corpus, base["embeddings.word_embeddings.weight"].shape[0])
    table = base["embeddings.word_embeddings.weight"][rows]
    bias = base.get("lm_head.bias", base.get("lm_head.decoder.bias"))
    weights.update({"luke.embeddings.word_embeddings.weight": table,
                    "lm_head.decoder.weight": table, "lm_head.bias": bias[rows],
                    "lm_head.decoder.bias": bias[rows]})
    for layer in range(model.config.num_hidden_layers):   # entity-aware queries start as query
        prefix = f"luke.encoder.layer.{layer}.attention.self."
        for extra in EXTRA_QUERIES:
            for part in ("weight", "bias"):
                if f"{prefix}{extra}.{part}" in wanted:
                    weights[f"{prefix}{extra}.{part}"] = weights[f"{prefix}query.{part}"]
    return {name: tensor for name, tensor in weights.items() if name in wanted}


def _extended_rows(path: Path, corpus: Corpus, base_rows: int) -> torch.Tensor:
    """For each word id of the corpus tokenizer, the base row it starts from."""
    from transformers import AutoTokenizer

    from corpus.word_tokenizer import load_tokenizer

    ours = load_tokenizer(corpus.tokenizer_dir)
    theirs = AutoTokenizer.from_pretrained(str(path))
    shared = len(theirs)
    if shared > base_rows:
        raise InitError(f"--init-from {path}: its tokenizer has {shared} ids, its embedding "
                        f"table {base_rows} rows")

    def base_id(token: str) -> int:
        for candidate in (token, "\u2581" + token):
            found = theirs.convert_tokens_to_ids(candidate)
            if found is not None and found != theirs.unk_token_id:
                return found
        return theirs.unk_token_id

    copies = {"<ent>": base_id("@"), "\u2581<ent>": base_id("@"),
              "<ent2>": base_id("#"), "\u2581<ent2>": base_id("#")}
    extra = ours.convert_ids_to_tokens(list(range(shared, len(ours))))
    return torch.tensor(list(range(shared)) + [copies.get(token, theirs.unk_token_id)
                                               for token in extra])


def load_initial_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                         source: InitSource) -> None:
    """Copy `weights` into `model` (before deepspeed.initialize: after it, mixed-precision
    copies of the weights already exist and the load would be lost). A base encoder fills the
    word side only; a run or an export must fill every parameter."""
    wanted = model.state_dict()
    for name, tensor in weights.items():
        if name in wanted and tuple(tensor.shape) != tuple(wanted[name].shape):
            raise InitError(f"--init-from {source.path}: {name} has shape "
                            f"{tuple(tensor.shape)}, the model {tuple(wanted[name].shape)}")
    if source.kind != "base":
        missing = [names[0] for names in _names_per_tensor(model)
                   if not any(name in weights for name in names)]
        if missing:
            raise InitError(f"--init-from {source.path}: lacks {', '.join(missing[:6])}")
    with torch.no_grad():
        for name, param in _named_tensors(model).items():
            if name in weights:
                param.copy_(weights[name])


def _named_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer under each of its names (tied ones under all)."""
    tensors = dict(model.named_buffers())
    tensors.update(model.named_parameters(remove_duplicate=False))
    return tensors


def _names_per_tensor(model: torch.nn.Module) -> list[list[str]]:
    """The names of each parameter and persistent buffer (tied parameters have several; any
    one of them fills the tensor)."""
    persistent = set(model.state_dict())
    groups: dict[int, list[str]] = {}
    for name, tensor in _named_tensors(model).items():
        if name in persistent:
            groups.setdefault(id(tensor), []).append(name)
    return list(groups.values())


def freeze_word_side(model: torch.nn.Module) -> int:
    """Train the entity side only (`train.trainable = "entity"`): every other parameter stops
    taking gradients, so the optimizer holds no state for it. Returns the trainable count."""
    trainable = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(ENTITY_SIDE))
        trainable += param.numel() if param.requires_grad else 0
    return trainable
