"""Progress bars on stderr for the corpus stages: rate and ETA, in pages/s and MB/s.

Three shapes cover the stages: `byte_progress` for reading an input of known size (the bar
advances with input bytes, so the ETA is right even though pages vary a lot in size; pages/s
and MB/s of XML are shown beside it, or items/s and MB/s of SQL for a page_props dump),
`item_progress` for a loop over a known number of items (pages, sentences, examples), and
`count_progress` for a loop over batches that advances by each batch's size. All are plain
tqdm bars on stderr; LUKE_PROGRESS=0 turns them off (for logs that should hold only results).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")
MB = 1_000_000


def progress_enabled() -> bool:
    return os.environ.get("LUKE_PROGRESS", "1") not in ("0", "")


class ByteProgress:
    """A bar over the input's bytes with items/s and MB/s of decompressed text as a postfix
    (pages and XML for a dump, Wikidata items and SQL for a page_props dump)."""

    def __init__(self, total_bytes: int, desc: str, items: str = "pages", text: str = "XML"
                 ) -> None:
        self.items, self.text = items, text
        self.bar = tqdm(total=total_bytes, desc=desc, unit="B", unit_scale=True,
                        unit_divisor=1024, file=sys.stderr, disable=not progress_enabled(),
                        dynamic_ncols=True, smoothing=0.05)
        self.started = time.perf_counter()
        self._shown_at = 0.0
        self._last = (0, 0)

    def update(self, input_bytes: int, pages: int, xml_bytes: int) -> None:
        """Move the bar to `input_bytes` read so far (absolute, not a delta)."""
        self.bar.update(max(0, input_bytes - self.bar.n))
        self._last = (pages, xml_bytes)
        now = time.perf_counter()
        if now - self._shown_at > 0.5:      # formatting the postfix costs; twice a second is plenty
            self._show_rates(now)

    def _show_rates(self, now: float) -> None:
        pages, xml_bytes = self._last
        seconds = max(now - self.started, 1e-9)
        self.bar.set_postfix_str(f"{pages / seconds:,.0f} {self.items}/s, "
                                 f"{xml_bytes / MB / seconds:.2f} MB/s {self.text}",
                                 refresh=False)
        self._shown_at = now

    def close(self) -> None:
        self._show_rates(time.perf_counter())     # the final rates, not the last sampled ones
        self.bar.close()

    def __enter__(self) -> "ByteProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def byte_progress(total_bytes: int, desc: str, items: str = "pages", text: str = "XML"
                  ) -> ByteProgress:
    return ByteProgress(total_bytes, desc, items, text)


def item_progress(items: Iterable[T], desc: str, unit: str = "page",
                  total: int | None = None) -> Iterable[T]:
    """Wrap an iterable in a bar counting `unit`s per second with an ETA when total is known."""
    return tqdm(items, desc=desc, unit=unit, total=total, file=sys.stderr,
                disable=not progress_enabled(), dynamic_ncols=True, smoothing=0.05)


def count_progress(total: int | None, desc: str, unit: str = "page") -> tqdm:
    """A bar advanced by hand (`bar.update(n)`), for loops over batches of known total size."""
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                disable=not progress_enabled(), dynamic_ncols=True, smoothing=0.05)


@contextlib.contextmanager
def quiet_datasets():
    """No `datasets` progress bar inside the block (one per saved or loaded file would drown
    the stage's own bar or a benchmark's figures)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
