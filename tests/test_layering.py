"""Two packages, one way (DESIGN.md, principle 1): the corpus package never imports torch or
deepspeed (building a corpus must work on a machine without them and not pay their import
time), and the pretrain package never imports the wikitext parser (it reads a build only through
corpus/schema.py and the manifest). Checked in a fresh interpreter, importing every module."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import importlib, json, pkgutil, sys
import corpus
names = sorted(m.name for m in pkgutil.iter_modules(corpus.__path__, "corpus."))
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "deepspeed"))
print(json.dumps({"imported": names, "heavy": heavy}))
"""


def test_importing_every_corpus_module_leaves_torch_and_deepspeed_out():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"corpus.build", "corpus.cli", "corpus.pages_stage", "corpus.dump"} <= \
        set(result["imported"])
    assert result["heavy"] == []


def test_the_cli_help_runs_without_torch():
    code = ("import sys, runpy\n"
            "sys.argv = ['luke-corpus', 'build', '--help']\n"
            "from corpus.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'deepspeed' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--entity-vocab-size" in done.stdout


PRETRAIN_CHECK = """
import importlib, json, pkgutil, sys
import pretrain
names = sorted(m.name for m in pkgutil.iter_modules(pretrain.__path__, "pretrain."))
for name in names:
    importlib.import_module(name)
parser = sorted(m for m in sys.modules if m.split(".")[0] == "mwparserfromhell"
                or m.startswith("corpus.wikitext") or m in ("corpus.dump", "corpus.pages_stage"))
print(json.dumps({"imported": names, "parser": parser}))
"""


def test_importing_every_pretrain_module_leaves_the_wikitext_parser_out():
    done = subprocess.run([sys.executable, "-c", PRETRAIN_CHECK], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"pretrain.train", "pretrain.export", "pretrain.data"} <= set(result["imported"])
    assert result["parser"] == []
