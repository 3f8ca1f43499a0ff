"""Two packages, one way (DESIGN.md, principle 1): the corpus package never imports torch or
deepspeed (building a corpus must work on a machine without them and not pay their import
time), and the pretrain package never imports the wikitext parser (it reads a build only through
corpus/schema.py and the manifest). Checked in a fresh interpreter, importing every module."""

from __future__ import annotations

import json
import subprocess
import sys

# Imports every module of a package in a fresh interpreter, then lists which of the named
# modules (or their submodules) were pulled in along the way.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
package, forbidden = sys.argv[1], sys.argv[2:]
names = sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__,
                                                    package + "."))
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules
                if any(m == f or m.startswith(f + ".") for f in forbidden))
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def import_every_module(package: str, forbidden: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, package, *forbidden],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_every_corpus_module_leaves_torch_and_deepspeed_out():
    result = import_every_module("corpus", ["torch", "deepspeed"])
    assert {"corpus.build", "corpus.cli", "corpus.pages_stage", "corpus.dump"} <= \
        set(result["imported"])
    assert result["loaded"] == []


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


def test_importing_every_pretrain_module_leaves_the_wikitext_parser_out():
    parser = ["mwparserfromhell", "corpus.wikitext", "corpus.wikitext_prepass",
              "corpus.wikitext_links", "corpus.wikitext_layout", "corpus.dump",
              "corpus.pages_stage"]
    result = import_every_module("pretrain", parser)
    assert {"pretrain.train", "pretrain.export", "pretrain.data"} <= set(result["imported"])
    assert result["loaded"] == []
