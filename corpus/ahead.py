"""Work a later stage starts early, in a process of its own, beside the stages before it.

A stage may declare that its long part needs only an earlier stage's outputs
(`Stage.starts_after`, corpus/stages.py): the tokenizer's sentencepiece training reads the
pages' text alone, and the entity vocabulary only goes into the tokenizer's files once
training is done. The build driver then starts that part as soon as the earlier stage is
done, so the stages in between (the entity vocabulary) run beside it rather than before it;
the stage collects the result when its turn comes (`AheadWork.result`). What it computes is a
function of the same inputs either way: the stage's output does not depend on whether its
part ran ahead.

The process is started from the forkserver (never fork a process that runs threads), dies
with the build (a daemon, and it exits when its parent does, however the parent ends), and is
stopped when the build stops early (`cancel`).
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any, Callable

from corpus.workers import exit_with_parent, picklable


class AheadCrashed(RuntimeError):
    """The process ended without a result (killed, out of memory): the stage does the work
    itself instead."""


class AheadWork:
    """`func(*args)` running in a process of its own; `result()` waits for its value."""

    def __init__(self, func: Callable[..., Any], args: tuple, what: str) -> None:
        self.what = what
        context = multiprocessing.get_context("forkserver")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_run, args=(send, func, args), daemon=True,
                                        name=f"ahead: {what}")
        self._process.start()
        send.close()            # ours closed: the pipe reports EOF when the process ends

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def result(self) -> Any:
        """The function's value; its exception raised here; AheadCrashed if the process ended
        without either."""
        try:
            succeeded, value = self._receive.recv()
        except EOFError:
            self._process.join()
            raise AheadCrashed(f"{self.what}: its process ended without a result (exit code "
                               f"{self._process.exitcode})") from None
        finally:
            self._receive.close()
        self._process.join()
        if succeeded:
            return value
        raise value

    def cancel(self) -> None:
        """Stop the process if it still runs (the build stops before collecting it)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()


def _run(send, func: Callable[..., Any], args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the build's to handle
    exit_with_parent()
    try:
        send.send((True, func(*args)))
    except BaseException as error:                  # raised again in the build's process
        send.send((False, picklable(error)))
