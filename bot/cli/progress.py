"""The progress bar of `sesguard scan` on a terminal: files, records and records per second, on stderr.

The CLI shows it only when stderr is a terminal and the output is not `--json`, so that nothing a
script reads ever carries it. The number of files is counted in the background (the inputs are listed
lazily); until it is known, the line shows counts without a bar.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

from detection.scan import ScanSummary

REDRAW_SECONDS = 0.1  # a terminal redrawn more often than this only costs time
BAR_CELLS = 24  # at most: the bar shrinks to leave the counts room on a narrow terminal


class ScanProgress:
    """A `progress` callback for `detection.scan.scan`; `close()` erases the line."""

    def __init__(self, stream: TextIO, count_files: Callable[[], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.drawn_at: float | None = None
        self.total_files: int | None = None
        self._count_files = count_files

    def __call__(self, summary: ScanSummary) -> None:
        now = self.clock()
        if self._count_files is not None:
            # Started at the first file, once any worker processes exist: a thread running while they
            # are forked could leave them a lock it holds.
            threading.Thread(target=self._count, args=(self._count_files,), daemon=True).start()
            self._count_files = None
        if self.drawn_at is not None and now - self.drawn_at < REDRAW_SECONDS:
            return
        self.drawn_at = now
        width = shutil.get_terminal_size(fallback=(80, 24)).columns - 1  # the last column would wrap
        self.stream.write("\r" + line(summary, self.total_files, now - self.started, width)[:width] + "\x1b[K")
        self.stream.flush()

    def _count(self, count_files: Callable[[], int | None]) -> None:
        try:
            self.total_files = count_files()
        except OSError:  # a folder that cannot be listed is named by the scan itself
            pass

    def close(self) -> None:
        if self.drawn_at is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def line(summary: ScanSummary, total_files: int | None, seconds: float, width: int = 79) -> str:
    """`[######......] 120/200 files  120,000 records  410,000 records/s  0:03` (ASCII: any terminal)."""
    rate = summary.records / seconds if seconds > 0 else 0.0
    elapsed = f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    counts = f"{summary.records:,} records  {rate:,.0f} records/s  {elapsed}"
    if not total_files:
        return f"scanning  {summary.files:,} files  {counts}"
    text = f"{summary.files:,}/{total_files:,} files  {counts}"
    cells = max(0, min(BAR_CELLS, width - len(text) - 3))
    if not cells:
        return text
    filled = int(min(summary.files / total_files, 1.0) * cells)
    return f"[{'#' * filled}{'.' * (cells - filled)}] {text}"
