"""Progress of a Spark job on stderr while it runs: the active stages with their tasks done over total, and the
rows read so far, so a job that takes minutes is not silent.

A daemon thread in the driver polls Spark's status tracker (of whichever SparkContext is active: the job may
start Spark after the poller). On a terminal it rewrites one line every `interval` seconds; otherwise (a log
file, a pipe, a test) it prints a plain line when the line changed, at most every `plain_interval` seconds. It
reads counts only (stage ids, task counts, an accumulator), never a data value. `SPARK_UDFS_PROGRESS_SECONDS`
sets the plain lines' interval (a test of a short job uses a short one).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # pyspark is imported when Spark runs, not when the job's --help does
    from pyspark import SparkContext


def stage_summary(context: SparkContext) -> str | None:
    """`stage 3 5/8 tasks, stage 4 0/2 tasks` for the active stages, or None when none runs."""
    tracker = context.statusTracker()
    parts = []
    for stage_id in sorted(tracker.getActiveStageIds()):
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            parts.append(f"stage {stage_id} {info.numCompletedTasks}/{info.numTasks} tasks")
    return ", ".join(parts) if parts else None


class JobProgress:
    """`with JobProgress("batch") as progress: ...` prints progress until the block ends; `progress.rows` may
    be set to a callable giving the rows read so far (an accumulator's value: updated as tasks finish)."""

    def __init__(
        self, label: str, *, stream: TextIO | None = None, interval: float = 1.0, plain_interval: float | None = None
    ) -> None:
        if plain_interval is None:
            plain_interval = float(os.environ.get("SPARK_UDFS_PROGRESS_SECONDS") or 5.0)
        self.label = label
        self.rows: Callable[[], int] | None = None
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty()
        self.interval = interval if self.terminal else plain_interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{label}-progress", daemon=True)
        self._last = ""

    def line(self) -> str | None:
        """The progress line now, or None while no stage runs (nothing worth a line)."""
        from pyspark import SparkContext

        context = SparkContext._active_spark_context
        stages = stage_summary(context) if context is not None else None
        if stages is None:
            return None
        rows = f", {self.rows():,} rows read" if self.rows is not None else ""
        return f"{self.label}: {stages}{rows}"

    def _print(self) -> None:
        try:
            text = self.line()
        except Exception:  # Spark is starting or stopping: progress is never worth failing the job for
            return
        if text is None or (not self.terminal and text == self._last):
            return
        elapsed = f" ({time.monotonic() - self.started:.0f} s)"
        self.stream.write(("\r\033[K" + text + elapsed) if self.terminal else (text + elapsed + "\n"))
        self.stream.flush()
        self._last = text

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def __enter__(self) -> JobProgress:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.terminal and self._last:  # leave the terminal on a clean line for what comes next
            self.stream.write("\r\033[K")
            self.stream.flush()


def step(label: str, message: str, stream: TextIO | None = None) -> None:
    """One start-up line (`stream-consumer: starting Spark`) on stderr, for the silent steps before work shows."""
    out = stream if stream is not None else sys.stderr
    out.write(f"{label}: {message}\n")
    out.flush()
