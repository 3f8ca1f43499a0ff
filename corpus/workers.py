"""An ordered pool of parse worker processes with a per-page watchdog.

SIGALRM stops a page whose parsing runs in Python, but not one stuck inside native code (the
C tokenizer of mwparserfromhell has had such hangs, and they block signals), nor a crash.
So every worker tells the main process, through shared memory (PageWatch), which page it is on
since when; a worker past page_timeout + WATCHDOG_GRACE is killed and replaced, the page is
counted as skipped, and its task is sent again without that page. That is why this is its own
small pool rather than multiprocessing.Pool: only killing its process frees a stuck page.

The contract with a task function: `func(*args, skip=frozenset_of_indices, watch=PageWatch)`
calls `watch.begin(index, page)` (page has `.id` and `.title`) before each item it processes
(and `watch.idle()` after the last, when it has more to do),
leaves out the indices in `skip`, and returns an object with a `skipped` list, to which the
pool appends (page id, title, reason, why) for every page the watchdog took out.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

WATCHDOG_GRACE = 5.0                # seconds past page_timeout before a stuck worker is killed
CHECK_SECONDS = 0.2                 # how often the workers are checked (each check polls every
                                    # worker: on every result, it cost the main process more
                                    # than the results themselves with tens of workers)


class PageWatch:
    """Shared memory through which one worker reports the page it is parsing since when."""

    def __init__(self, mp_context) -> None:
        self.started = mp_context.Value("d", 0.0, lock=False)   # time.monotonic(); 0 = idle
        self.task = mp_context.Value("q", -1, lock=False)       # task id held; -1 = none
        self.index = mp_context.Value("q", -1, lock=False)      # page index within the task
        self.page_id = mp_context.Value("q", 0, lock=False)
        self.title = mp_context.Array("c", 512, lock=False)

    def begin(self, index: int, page) -> None:
        self.index.value, self.page_id.value = index, page.id
        self.title.value = page.title.encode("utf-8")[:500]
        self.started.value = time.monotonic()

    def idle(self) -> None:
        """Between pages: what the task does next (writing its results) is no page's time."""
        self.started.value = 0.0

    def page(self) -> tuple[int, str]:
        return self.page_id.value, self.title.value.decode("utf-8", errors="replace")


@dataclass
class _TaskError:
    error: BaseException


def exit_with_parent() -> None:
    """End this worker process as soon as the process that started it dies, however it dies.

    A worker blocks on its task queue; if the main process is killed (kill -9, the OOM killer)
    nothing ever arrives and nothing tells it to stop, so it would wait forever, and the
    forkserver that forked it with it. The parent's sentinel becomes ready when the parent
    exits: a daemon thread waits on it and ends the process at once."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def wait_for_parent() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=wait_for_parent, name="exit-with-parent", daemon=True).start()


def _worker_loop(tasks, results, watch: PageWatch) -> None:
    """A worker process: run tasks until None; Ctrl-C is the main process's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    while (item := tasks.get()) is not None:
        task_id, func, args, skip = item
        watch.task.value = task_id
        try:
            result = func(*args, skip=skip, watch=watch)
        except BaseException as error:       # sent back, raised in the main process
            result = _TaskError(picklable(error))
        watch.started.value = 0.0
        results.put((task_id, result))
        watch.task.value = -1


def picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


@dataclass
class _Task:
    func: Callable[..., Any]
    args: tuple
    skip: frozenset = frozenset()
    skipped: list = field(default_factory=list)     # pages the watchdog took out
    lost: int = 0                                   # times its worker died outside any page


class WatchedPool:
    """N worker processes running tasks in order, a few ahead, with a per-page watchdog."""

    def __init__(self, workers: int, page_timeout: float, preload: Iterable[str] = ()) -> None:
        # forkserver: never fork a process that runs threads (tqdm's monitor, arrow's pools).
        self.mp = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has already imported the parser, so starting one
        # (and replacing one the watchdog killed) costs a fork, not a second of imports.
        self.mp.set_forkserver_preload([__name__, *preload])
        self.tasks, self.results = self.mp.Queue(), self.mp.Queue()
        self.limit = page_timeout + WATCHDOG_GRACE if page_timeout > 0 else None
        self.slots = [self._start_worker() for _ in range(workers)]
        self.pending: dict[int, _Task] = {}
        self.done: dict[int, Any] = {}
        self.checked = 0.0                  # time.monotonic() of the last check

    def _start_worker(self) -> tuple:
        watch = PageWatch(self.mp)
        process = self.mp.Process(target=_worker_loop, args=(self.tasks, self.results, watch),
                                  daemon=True)
        process.start()
        return process, watch

    def map_ordered(self, func: Callable[..., Any], tasks: Iterable[tuple]
                    ) -> Iterator[Any]:
        """func(*task) for every task, yielded in task order."""
        source, submitted, next_out = iter(tasks), 0, 0
        exhausted = False
        while True:
            while not exhausted and submitted - next_out < 3 * len(self.slots):
                args = next(source, None)
                if args is None:
                    exhausted = True
                    break
                self._submit(submitted, _Task(func, args))
                submitted += 1
            if next_out in self.done:
                yield self._finish(next_out)
                next_out += 1
            elif exhausted and next_out == submitted:
                return
            else:
                self._receive()

    def _submit(self, task_id: int, task: _Task) -> None:
        self.pending[task_id] = task
        self.tasks.put((task_id, task.func, task.args, task.skip))

    def _finish(self, task_id: int) -> Any:
        result, task = self.done.pop(task_id), self.pending.pop(task_id)
        result.skipped.extend(task.skipped)
        return result

    def _receive(self) -> None:
        try:
            task_id, result = self.results.get(timeout=CHECK_SECONDS)
        except queue.Empty:
            self._check_workers()
            return
        if isinstance(result, _TaskError):
            raise result.error
        if task_id in self.pending:          # else a duplicate of a task resent and finished
            self.done[task_id] = result
        if time.monotonic() - self.checked >= CHECK_SECONDS:
            self._check_workers()

    def _check_workers(self) -> None:
        now = self.checked = time.monotonic()
        for number, (process, watch) in enumerate(self.slots):
            started = watch.started.value
            stuck = self.limit is not None and started and now - started > self.limit
            if process.is_alive() and not stuck:
                continue
            task_id = watch.task.value
            if stuck:
                process.kill()
            process.join()
            self.slots[number] = self._start_worker()
            if task_id >= 0 and task_id in self.pending and task_id not in self.done:
                self._retry_without_page(task_id, watch, "timeout" if stuck else "crash",
                                         process.exitcode, bool(started))

    def _retry_without_page(self, task_id: int, watch: PageWatch, reason: str, exitcode,
                            in_page: bool) -> None:
        task = self.pending[task_id]
        if not in_page:    # died between pages (or its result was still in the pipe): once more
            task.lost += 1
            if task.lost > 1:
                raise RuntimeError(f"parse workers died twice (exit code {exitcode}) on the same "
                                   f"task outside any page; see the log above")
        else:
            page_id, title = watch.page()
            why = (f"stuck over {self.limit:g} s where the alarm could not stop it; worker "
                   f"restarted" if reason == "timeout" else f"worker died (exit code {exitcode})")
            task.skip = task.skip | {watch.index.value}
            task.skipped.append((page_id, title, reason, why))
        self._submit(task_id, task)

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their last task, or at once (abort) on an error."""
        for _ in self.slots:
            self.tasks.put(None)
        for process, _ in self.slots:
            if abort:
                process.kill()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        self.tasks.cancel_join_thread()
        self.results.cancel_join_thread()


def process_map(func: Callable[[Any], Any], jobs: list, workers: int) -> Iterator[Any]:
    """func(job) for every job, in order, on `workers` processes (in this one when workers is
    1). For tasks that need no watchdog: they parse no wikitext."""
    if workers <= 1:
        yield from map(func, jobs)
        return
    # forkserver: never fork a process whose threads (tqdm, tokenizers, arrow) hold locks.
    with multiprocessing.get_context("forkserver").Pool(min(workers, max(1, len(jobs))),
                                                        initializer=exit_with_parent) as pool:
        yield from pool.imap(func, jobs)


def ordered_map(func: Callable[..., Any], tasks: Iterable[tuple], workers: int,
                page_timeout: float, preload: Iterable[str] = ()) -> Iterator[Any]:
    """func(*task) for every task, in task order, on `workers` watched processes; `preload`
    names modules the workers import once, before forking (the task function's module)."""
    pool = WatchedPool(workers, page_timeout, preload)
    try:
        yield from pool.map_ordered(func, tasks)
    except BaseException:
        pool.close(abort=True)
        raise
    pool.close()
