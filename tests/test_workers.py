"""The ordered pool of parse workers with its watchdog (corpus/workers.py), on its own: results
come back in task order, and a worker that dies on a page is replaced, the page skipped and
named, and its task run again without it. (The watchdog killing a worker stuck in a real page's
parse is tested through the build in test_build.py.)"""

from __future__ import annotations

import pytest

from corpus.workers import ordered_map
from test_dump import crash_on_page_crash


def test_watchdog_replaces_a_crashed_worker_and_skips_its_page():
    tasks = [(["A", "Crash", "B"],), (["C"],), (["D", "E"],)]
    results = list(ordered_map(crash_on_page_crash, tasks, 2, 10.0))
    assert [r.rows for r in results] == [["A", "B"], ["C"], ["D", "E"]]
    assert results[0].skipped == [(1, "Crash", "crash", "worker died (exit code 3)")]


def test_results_come_back_in_task_order_with_more_tasks_than_the_pool_runs_ahead():
    tasks = [([f"page {i}", f"page {i}b"],) for i in range(20)]
    results = list(ordered_map(crash_on_page_crash, tasks, 2, 10.0))
    assert [r.rows for r in results] == [[f"page {i}", f"page {i}b"] for i in range(20)]
    assert all(r.skipped == [] for r in results)


def test_a_worker_dying_twice_outside_any_page_stops_the_pool():
    with pytest.raises(RuntimeError, match="died twice .* outside any page"):
        list(ordered_map(crash_outside_pages, [(["A"],)], 1, 10.0))


def crash_outside_pages(titles, skip=frozenset(), watch=None):
    """A worker task that kills its process before it reaches any page."""
    import os
    os._exit(4)
