"""README.md of an exported model: what it was trained on, its shape, how far, how well, how.

Everything comes from files the run and the corpus build already wrote: the corpus build, read
through corpus.reader (dump file, wiki, date when the dump's name carries one), RUN/config.json
(the resolved config and the training command), RUN/metrics.jsonl (the last training,
validation and entity-disambiguation lines up to the exported step) and the exported
LukeConfig. Text from Wikipedia is CC BY-SA: the card says so. The entity-disambiguation score
is the one luke-train logged (`train.eval_ed_every`), never computed at export: that would read
every page of the corpus; without it the card names the `luke-eval` command that measures it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from corpus.reader import Corpus
from pretrain import run_layout
from pretrain.metrics import scalar_fields

SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "entity_emb_size", "vocab_size", "entity_vocab_size", "max_position_embeddings",
              "use_entity_aware_attention")
LOSS_KEYS = ("loss", "mlm_loss", "mep_loss")
DUMP_DATE = re.compile(r"(?<!\d)(20\d{6})(?!\d)")  # enwiki-20240601-pages-articles...


def write_model_card(out_dir: Path, run: Path, step: int, corpus: Corpus, config) -> Path:
    """Write out_dir/README.md for checkpoint `step` of `run`; returns its path."""
    path = Path(out_dir) / "README.md"
    path.write_text(render_model_card(run, step, corpus, config), encoding="utf-8")
    return path


def render_model_card(run: Path, step: int, corpus: Corpus, config) -> str:
    sections = [
        "---\nlibrary_name: transformers\nlicense: cc-by-sa-4.0\ntags: [luke, fill-mask]\n---\n",
        f"# LUKE pretrained from scratch ({Path(run).name}, step {step})\n",
        _data_section(corpus),
        _shape_section(Path(run), config),
        _training_section(Path(run), step),
        _usage_section(),
    ]
    return "\n".join(sections)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _dump_line(language) -> str:
    """`- Wikipedia dump: ...` for one language of the build (corpus.reader.LanguagePages)."""
    dump = language.dump.name
    wiki_text = (f"wiki `{language.dbname}`, " if language.dbname
                 else f"language `{language.language}`, " if language.language else "")
    date = DUMP_DATE.search(dump)
    date_text = (f"{date.group(1)[:4]}-{date.group(1)[4:6]}-{date.group(1)[6:]}" if date
                 else "not stated in the dump's file name")
    return f"- Wikipedia dump: `{dump}` ({wiki_text}dump date {date_text})"


def _data_section(corpus: Corpus) -> str:
    languages = corpus.pages.languages
    several = (f" ({len(languages)} languages: "
               f"{', '.join(language.language for language in languages)}; entities keyed "
               f"`<lang>:<title>`)" if len(languages) > 1 else "")
    lines = [
        "## Data\n",
        *(_dump_line(language) for language in languages),
        f"- Corpus build: `{corpus.directory}`: {corpus.examples.num_examples} training "
        f"sequences of up to {corpus.examples.limits.max_seq_length} tokens, "
        f"{corpus.entity_vocab.size} entities in the vocabulary{several}",
        "- Text and links from Wikipedia, by Wikipedia contributors, licensed under "
        "[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/) "
        "(older revisions CC BY-SA 3.0). Models and data derived from it must give the same "
        "attribution.\n",
    ]
    return "\n".join(lines)


def _shape_section(run: Path, config) -> str:
    rows = "\n".join(f"| {key} | {getattr(config, key, None)} |" for key in SHAPE_KEYS)
    trained = _read_json(run / run_layout.MODEL_CONFIG_FILE).get("use_entity_aware_attention")
    note = ""
    if config.use_entity_aware_attention and trained is False:
        note = ("\nPretrained with plain attention; exported with entity-aware attention, each "
                "layer's `query` copied into `w2e_query`, `e2w_query` and `e2e_query` (as the "
                "original LUKE release did), which computes the same outputs.\n")
    return f"## Shape\n\n| LukeConfig | value |\n|---|---|\n{rows}\n{note}"


def _last_lines_up_to(run: Path, step: int) -> dict[str, dict]:
    """kind -> the last metrics line of that kind ("train", "validation",
    "entity_disambiguation") at or before `step`."""
    last: dict[str, dict] = {}
    path = run / run_layout.METRICS_FILE
    if not path.is_file():
        return last
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; the ones before it still count
        if not isinstance(record, dict) or record.get("step", step + 1) > step:
            continue
        last[record.get("kind", "train")] = record
    return last


def _format(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _training_section(run: Path, step: int) -> str:
    config = _read_json(run / run_layout.CONFIG_FILE)
    last = _last_lines_up_to(run, step)
    train, validation = last.get("train", {}), last.get("validation", {})
    losses = ", ".join(f"{k} {_format(train[k])}" for k in LOSS_KEYS if k in train) or "not logged"
    accuracies = ", ".join(f"{k} {_format(v)}" for k, v in scalar_fields(validation).items())
    settings = {section: config.get(section) for section in ("train", "optim") if section in config}
    return "\n".join([
        "## Training\n",
        f"- Steps: {step} (checkpoint `{run_layout.CHECKPOINTS_DIR}/{step}` of `{run.resolve()}`)",
        *init_lines(config),
        f"- Final training losses (step {train.get('step', '?')}): {losses}",
        f"- Validation (step {validation.get('step', '?')}): {accuracies or 'not logged'}",
        _disambiguation_line(last.get("entity_disambiguation")),
        *command_lines(run, config, step),
        "",
        "Resolved training settings:\n",
        "```json",
        json.dumps(settings, indent=1),
        "```\n",
    ])


def init_lines(config: dict) -> list[str]:
    """Where the run's weights started (RUN/config.json's init_from): a base encoder, an
    earlier run (e.g. stage 1 of two) or an export; nothing for a run from scratch."""
    init = config.get("init_from")
    if not init:
        return ["- Started from: random initialisation"]
    if init.get("kind") == "base":
        where = (f"the {init.get('model_type')} encoder `{init['path']}` (its word side; the "
                 f"entity side started fresh)")
    elif init.get("kind") == "run":
        where = f"step {init.get('step')} of the run `{init['path']}` (every weight)"
    else:
        where = f"the exported model `{init['path']}` (every weight)"
    base = init.get("base_model")
    origin = f"; base model `{base}`" if base and init.get("kind") != "base" else ""
    trainable = (config.get("train") or {}).get("trainable", "all")
    trained = "; trained the entity side only (word side frozen)" if trainable == "entity" else ""
    return [f"- Started from: {where}{origin}{trained}"]


def _disambiguation_line(record: dict | None) -> str:
    """The zero-shot entity-disambiguation score as luke-train logged it (train.eval_ed_every),
    beside the prior baseline; the card does not compute it (that reads every page)."""
    if not record:
        return ("- Zero-shot entity disambiguation: not measured during training "
                "(`train.eval_ed_every`); measure it with `luke-eval THIS_DIR --corpus DIR`")
    return (f"- Zero-shot entity disambiguation (step {record['step']}, masked-entity head "
            f"ranking the candidates of {record['mentions']} validation mentions): accuracy "
            f"{_format(record['accuracy'])}, most-frequent-target baseline "
            f"{_format(record['prior_accuracy'])}")


def command_lines(run: Path, config: dict, step: int) -> list[str]:
    """The card's lines on how the run was started: the recorded command (luke-train records
    it in RUN/config.json with the world size and any --resume commands), or an equivalent one
    rebuilt from the resolved config for runs that predate the record."""
    command = training_command(run, config, step)
    if not config.get("command"):
        return [f"- Command (equivalent, rebuilt from RUN/config.json): `{command}`"]
    world = config.get("world_size", "?")
    return [f"- Command, on {world} rank(s) under any launcher (e.g. "
            f"`deepspeed --num_gpus {world} $(which luke-train) ...`): `{command}`",
            *(f"- Resumed with: `{again}`" for again in config.get("resume_commands", []))]


def training_command(run: Path, config: dict, step: int) -> str:
    """The command that trained the run: as recorded, or rebuilt from the resolved config as
    `luke-train` with every key that differs from the defaults (an equivalent command), on as
    many ranks as checkpoint `step` was written by."""
    recorded = config.get("command")
    if recorded:
        return " ".join(recorded) if isinstance(recorded, list) else str(recorded)
    from pretrain.config import RunConfig, config_dict, flatten

    defaults = flatten(config_dict(RunConfig()))
    chosen = {key: value for key, value in flatten(config).items() if key != "corpus"}
    overrides = [f"{key}={_override_value(value)}" for key, value in chosen.items()
                 if key in defaults and _override_value(defaults[key]) != _override_value(value)]
    state = run_layout.checkpoint_dir(run, step) / run_layout.TRAINER_STATE_FILE
    world = _read_json(state).get("world_size", 1)
    return " ".join([f"deepspeed --num_gpus {world} $(which luke-train)",
                     f"--corpus {config.get('corpus', 'CORPUS')} --output {run.resolve()}",
                     *overrides])


def _override_value(value) -> str:
    """A config value as a command-line override writes it (tuples comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _usage_section() -> str:
    return "\n".join([
        "## Use\n",
        "```python",
        "from transformers import AutoTokenizer, LukeForMaskedLM",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "model = LukeForMaskedLM.from_pretrained(PATH)",
        "```",
        "Fine-tune with `LukeForEntityClassification`, `LukeForEntityPairClassification`, "
        "`LukeForEntitySpanClassification` and the other `LukeFor*` classes loaded from the same "
        "directory.\n",
    ])
