"""The tiny base encoders of the tests: launch/tiny_base_model.py's, loaded from its file (the
launch scripts are not a package). A RoBERTa (byte-level BPE) and an XLM-R (sentencepiece in
XLM-R's layout), each trained on the bundled English sample and saved as save_pretrained saves a
real one, with weights of configs/tiny.toml's shape. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "launch" / "tiny_base_model.py"
_spec = importlib.util.spec_from_file_location("tiny_base_model", _SCRIPT)
tiny_base_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_base_model)

sample_lines = tiny_base_model.clean_lines
make_roberta = tiny_base_model.make_roberta
make_xlmr = tiny_base_model.make_xlmr
