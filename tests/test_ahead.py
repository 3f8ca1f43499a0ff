"""Work started ahead (corpus/ahead.py): a later stage's long part in a process of its own.
Its value, its exception and its crash reach the stage; a build that stops first stops it; a
build whose tokenizer trains ahead, beside the entity vocabulary, writes the very tokenizer
and examples of a build that trains it in turn, and so does one whose training process is
killed (the stage then trains itself)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time

import pytest

import corpus.build
import corpus.entity_vocab
import corpus.tokenizer_stage as tokenizer_stage
from corpus.ahead import AheadCrashed, AheadWork
from corpus.build import build
from corpus.cli import INTERRUPTED_BUILD
from corpus.options import BuildOptions
from test_build import manifest_of, run_cli
from test_dump import EN_DUMP


def _double(value: int) -> int:
    return 2 * value


def _fail(what: str) -> None:
    raise ValueError(f"bad {what}")


def _ahead_processes() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("ahead:")]


def test_the_value_and_the_exception_come_back():
    assert AheadWork(_double, (21,), "doubling").result() == 42
    with pytest.raises(ValueError, match="bad input"):
        AheadWork(_fail, ("input",), "failing").result()
    assert not _ahead_processes()


def test_a_process_that_dies_says_so_with_its_exit_code():
    with pytest.raises(AheadCrashed, match=r"^dying: its process ended .*exit code 3\)"):
        AheadWork(os._exit, (3,), "dying").result()


def test_cancel_stops_the_process():
    work = AheadWork(time.sleep, (60,), "sleeping")
    started = time.monotonic()
    work.cancel()
    assert time.monotonic() - started < 10 and not _ahead_processes()


def _options(out) -> BuildOptions:
    return BuildOptions(dumps=(EN_DUMP,), out=out, workers=1, word_vocab_size=1000)


def _outputs(manifest: dict) -> dict:
    stages = manifest["stages"]
    return {"tokenizer": stages["tokenizer"]["fingerprint"],
            "training": {k: v for k, v in stages["tokenizer"]["counts"].items()
                         if k.startswith("training")},
            "examples": stages["examples"]["fingerprint"]}


class _Recorded(AheadWork):
    started: list[str] = []

    def __init__(self, func, args, what) -> None:
        super().__init__(func, args, what)
        self.started.append(what)


class _KilledAtOnce(_Recorded):
    def __init__(self, func, args, what) -> None:
        super().__init__(func, args, what)
        os.kill(self.pid, signal.SIGKILL)     # as the OOM killer would


def test_training_ahead_gives_what_training_in_turn_gives(tmp_path, monkeypatch, caplog):
    in_turn = _outputs(build(_options(tmp_path / "in-turn")))
    assert in_turn["training"]["training_lines"] > 0
    monkeypatch.setattr(tokenizer_stage, "AHEAD_MIN_XML_BYTES", 0)
    for kind in (_Recorded, _KilledAtOnce):
        kind.started = []
        monkeypatch.setattr(corpus.build, "AheadWork", kind)
        with caplog.at_level(logging.WARNING, logger="corpus.tokenizer_stage"):
            outputs = _outputs(build(_options(tmp_path / kind.__name__)))
        assert kind.started == ["the tokenizer's training"] and outputs == in_turn
        killed = [r.message for r in caplog.records if "training here instead" in r.message]
        assert len(killed) == (kind is _KilledAtOnce)
        assert not _ahead_processes()


def test_below_its_threshold_nothing_starts_ahead(tmp_path, monkeypatch):
    _Recorded.started = []
    monkeypatch.setattr(corpus.build, "AheadWork", _Recorded)
    build(_options(tmp_path / "out"))
    assert _Recorded.started == []


def test_a_build_stopped_beside_the_training_stops_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tokenizer_stage, "AHEAD_MIN_XML_BYTES", 0)
    _Recorded.started = []
    monkeypatch.setattr(corpus.build, "AheadWork", _Recorded)

    def interrupted(ctx):                   # Ctrl-C while the entity vocabulary is counted
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus.entity_vocab, "run", interrupted)
    out = tmp_path / "out"
    code, err = run_cli(capsys, "build", EN_DUMP, "--out", out, "--word-vocab-size", "1000")
    assert code == 130 and INTERRUPTED_BUILD in err
    assert _Recorded.started == ["the tokenizer's training"] and not _ahead_processes()
    assert "entity_vocab" not in manifest_of(out)["stages"]


def test_a_stage_that_fails_before_collecting_its_work_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tokenizer_stage, "AHEAD_MIN_XML_BYTES", 0)
    _Recorded.started = []
    monkeypatch.setattr(corpus.build, "AheadWork", _Recorded)

    def unreadable(path):                  # the stage fails before it asks for the training
        raise OSError(f"{path}: unreadable")

    monkeypatch.setattr(tokenizer_stage.wt, "read_entity_vocab", unreadable)
    with pytest.raises(OSError, match="unreadable"):
        build(_options(tmp_path / "out"))
    assert _Recorded.started == ["the tokenizer's training"] and not _ahead_processes()
