"""The run config of `luke-train`: one typed tree of dataclasses, loaded in three layers.

Defaults live in the dataclasses below (LUKE-base, as the reference trained it); a TOML file
in configs/ holds only what differs from them; dotted `key=value` overrides from the command
line come last. Any key that is not in the tree is an error naming the nearest valid key, so
a misspelt `optim.learning_rate` never silently trains with the default.

The model's keys carry `LukeConfig`'s own names (`model.hidden_size`). Sizes and special ids
that a corpus fixes (vocab sizes, pad/bos/eos) are not keys at all: they come from the corpus
manifest (see `luke_config`), so data and model cannot disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.masking import MaskingConfig


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message names the key."""


@dataclass
class ModelConfig:
    impl: str = "fast"                     # fast: pretrain.models' fused model; hf: transformers'
    compile: bool = False                  # torch.compile the model
    activation_checkpointing: bool = False
    # LukeConfig keys (LUKE-base). The reference pretrained with plain attention and turned
    # entity-aware attention on only at export, so it is off by default here too.
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    entity_emb_size: int = 256
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    use_entity_aware_attention: bool = False


@dataclass
class DataConfig:
    eval_batches: int = 16                 # validation micro-batches per evaluation and per
                                           # language of the corpus (0: all)
    language_alpha: float = 0.7            # several languages: each drawn with probability
                                           # proportional to its examples ** alpha (1: as
                                           # they come, 0: evenly); one language: unused


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    weight_decay: float = 0.01             # not applied to biases and LayerNorm weights
    warmup_steps: int = 2500               # linear warmup, then linear decay to 0
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    micro_batch_size: int = 16             # sequences per rank per forward
    global_batch_size: int = 2048          # sequences per optimizer step, all ranks together
    max_steps: int | None = None           # None: epochs over the corpus manifest's examples
    epochs: float = 1.0
    save_every: int = 1000
    eval_every: int = 1000
    eval_ed_every: int | None = None       # entity disambiguation every N steps; 0/None: off
    precision: str = "bf16"                # fp32 | bf16 | fp16
    zero_stage: int = 1
    seed: int = 0
    nan_policy: str = "stop"               # stop | skip
    trainable: str = "all"                 # all | entity: the entity side only (word side frozen)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Keys a user might reach for that the corpus decides; a clearer message than "unknown key".
FROM_CORPUS = {"model.vocab_size", "model.entity_vocab_size", "model.pad_token_id",
               "model.bos_token_id", "model.eos_token_id"}

CHOICES = {"model.impl": ("fast", "hf"), "train.precision": ("fp32", "bf16", "fp16"),
           "train.zero_stage": (0, 1, 2, 3), "train.nan_policy": ("stop", "skip"),
           "train.trainable": ("all", "entity")}


def valid_keys(config: RunConfig) -> list[str]:
    """Every dotted leaf key of the tree, e.g. 'optim.lr'."""
    return [f"{section.name}.{leaf.name}"
            for section in dataclasses.fields(config)
            for leaf in dataclasses.fields(getattr(config, section.name))]


# Names other trainers use, which string similarity alone would not lead to.
ALIASES = {"learning_rate": "lr", "batch_size": "micro_batch_size", "steps": "max_steps",
           "clip": "grad_clip", "dtype": "precision", "zero": "zero_stage"}


def nearest_key(key: str, config: RunConfig) -> str | None:
    """The valid key a misspelt `key` most likely meant."""
    section, _, leaf = key.partition(".")
    for valid in valid_keys(config):
        if valid.split(".")[1] == ALIASES.get(leaf) and (valid.startswith(section + ".")):
            return valid
    near = difflib.get_close_matches(key, valid_keys(config), n=1, cutoff=0.5)
    return near[0] if near else None


def unknown_key_error(key: str, config: RunConfig, where: str) -> ConfigError:
    if key in FROM_CORPUS:
        return ConfigError(f"{where}: {key} is not a setting: it comes from the corpus manifest")
    near = nearest_key(key, config)
    hint = f"; did you mean {near}?" if near else ""
    return ConfigError(f"{where}: unknown config key {key!r}{hint}")


def field_type(section: Any, name: str) -> Any:
    return typing.get_type_hints(type(section))[name]


def coerce(value: Any, kind: Any, key: str, where: str) -> Any:
    """`value` (from TOML or a command-line string) as the field's declared type."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):          # `int | None`
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} comma-separated values")
            return tuple(coerce(v, a, key, where) for v, a in zip(items, args))
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError(f"expected a {kind.__name__}")
        typed = kind(value)
        if kind is float and not math.isfinite(typed):
            raise ValueError("expected a finite number")
        return typed
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {key}={value!r}: {e}") from None


def set_key(config: RunConfig, key: str, value: Any, where: str) -> None:
    """Set dotted `key` of `config` to `value`, coerced to the field's type."""
    section_name, _, leaf = key.partition(".")
    sections = {f.name for f in dataclasses.fields(config)}
    section = getattr(config, section_name) if section_name in sections else None
    if section is None or leaf not in {f.name for f in dataclasses.fields(section)}:
        raise unknown_key_error(key, config, where)
    typed = coerce(value, field_type(section, leaf), key, where)
    if key in CHOICES and typed not in CHOICES[key]:
        raise ConfigError(f"{where}: {key}={typed!r} is not one of {CHOICES[key]}")
    try:  # replace() rather than setattr: MaskingConfig is frozen and checks itself
        setattr(config, section_name, dataclasses.replace(section, **{leaf: typed}))
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}."""
    flat = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"command line: override {text!r} is not of the form key=value")
    return key.strip(), value.strip()


def load_config(path: Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Defaults, then the TOML file at `path`, then `key=value` overrides; validated."""
    return load_config_and_keys(path, overrides)[0]


def load_config_and_keys(path: Path | None = None, overrides: list[str] = ()
                         ) -> tuple[RunConfig, set[str]]:
    """load_config's config, and the keys the file and the overrides set (the rest are
    defaults, which a model's fixed shape may replace: with_fixed_shape)."""
    config, chosen = RunConfig(), set()
    if path is not None:
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        for key, value in flatten(table).items():
            set_key(config, key, value, str(path))
            chosen.add(key)
    for text in overrides:
        key, value = parse_override(text)
        set_key(config, key, value, "command line")
        chosen.add(key)
    check_config(config)
    return config, chosen


def with_fixed_shape(config: RunConfig, chosen: set[str], shape: dict[str, Any],
                     source: str) -> RunConfig:
    """`config` with the model keys that `source` (the weights a run starts from) fixes; a key
    the user chose with another value is refused by name."""
    model = config.model
    for key, value in shape.items():
        typed = coerce(value, field_type(model, key), f"model.{key}", source)
        if f"model.{key}" in chosen and getattr(model, key) != typed:
            raise ConfigError(f"model.{key}={getattr(model, key)!r} contradicts {source}, whose "
                              f"weights have {key}={typed!r}: leave it out (the shape comes "
                              f"from the weights the run starts from)")
        model = dataclasses.replace(model, **{key: typed})
    config = dataclasses.replace(config, model=model)
    check_config(config)
    return config


def check_config(config: RunConfig) -> None:
    """Refuse combinations no run can use, naming the keys."""
    t, m, o = config.train, config.model, config.optim
    for key in ("micro_batch_size", "global_batch_size", "save_every", "eval_every"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {getattr(t, key)}")
    if t.eval_ed_every is not None and t.eval_ed_every < 0:
        raise ConfigError(f"train.eval_ed_every must be 0 (off) or positive, got {t.eval_ed_every}")
    if t.max_steps is not None and t.max_steps < 1:
        raise ConfigError(f"train.max_steps must be at least 1, got {t.max_steps}")
    if t.epochs <= 0:
        raise ConfigError(f"train.epochs must be positive, got {t.epochs}")
    if o.warmup_steps < 1:
        raise ConfigError(f"optim.warmup_steps must be at least 1, got {o.warmup_steps}")
    for key, value in (("optim.lr", o.lr), ("optim.eps", o.eps)):
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    for key, value in (("optim.weight_decay", o.weight_decay), ("optim.grad_clip", o.grad_clip)):
        if value < 0:
            raise ConfigError(f"{key} must not be negative, got {value}")
    if not 0 <= config.data.language_alpha <= 1:
        raise ConfigError(f"data.language_alpha must lie in [0, 1], got "
                          f"{config.data.language_alpha}")
    if not all(0 <= beta < 1 for beta in o.betas):
        raise ConfigError(f"optim.betas must lie in [0, 1), got {o.betas}")
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if not 0 <= getattr(m, key) < 1:
            raise ConfigError(f"model.{key} must lie in [0, 1), got {getattr(m, key)}")
    if m.hidden_size % m.num_attention_heads:
        raise ConfigError(f"model.hidden_size {m.hidden_size} is not a multiple of "
                          f"model.num_attention_heads {m.num_attention_heads}")


def config_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_hash(config: RunConfig) -> str:
    """A short digest of the resolved config, recorded with each checkpoint."""
    text = json.dumps(config_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """The tree back from config_dict's output (RUN/config.json)."""
    config = RunConfig()
    for key, value in flatten(values).items():
        set_key(config, key, value, "config.json")
    return config


def luke_config(model: ModelConfig, corpus) -> "transformers.LukeConfig":  # noqa: F821
    """The LukeConfig of the model to train: shape from `model`, vocabularies and special ids
    from the corpus manifest (`corpus` is a corpus.reader.Corpus)."""
    from transformers import LukeConfig

    tokens = corpus.tokenizer
    longest = corpus.examples.limits.max_seq_length
    needed = longest + tokens.pad_token_id + 1  # RoBERTa positions start past pad
    if model.max_position_embeddings < needed:
        raise ConfigError(
            f"model.max_position_embeddings={model.max_position_embeddings} is too small for the "
            f"corpus's max_seq_length {longest} (needs {needed})")
    shape = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
             if f.name not in ("impl", "compile", "activation_checkpointing")}
    return LukeConfig(vocab_size=tokens.vocab_size, entity_vocab_size=corpus.entity_vocab.size,
                      pad_token_id=tokens.pad_token_id, bos_token_id=tokens.bos_token_id,
                      eos_token_id=tokens.eos_token_id, **shape)
