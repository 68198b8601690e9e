"""Progress of long operations, for a person at a terminal (SPEC §6.6).

Library code marks its long steps with :func:`task`; whether anything is shown is the
command line's choice (:func:`configure`), made once per command::

    with progress.task("update", total=len(sources), unit="sources") as bar:
        for cfg in sources:
            bar.describe(f"update {cfg.name}")
            ...
            bar.advance()

    with progress.task(filename, total=size, unit="bytes") as bar:
        fetcher.download_verified(url, bar.writer(out), size, sha256)

Nothing is shown unless :func:`configure` enabled it, and the command line enables it
only when stderr is a terminal and ``--quiet`` is not given: progress is drawn on
stderr, never on stdout, and a pipe, a file or a CI log gets nothing. The bars are
transient (erased when their task ends), so what stays on the terminal is the
command's own output. ``rich`` is imported only when a bar is actually drawn: this
module costs the fast start-up paths (``list``, ``search``, ``show``, the no-change
``update``) nothing else.

Tasks nest and may be opened from several threads (the proxy serves in threads): all
share one display, started by the first open task and stopped with the last.
Descriptions are shown as plain text (no markup), control characters escaped.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["Task", "configure", "enabled", "suppressed", "task", "terminal_wanted"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class _Config:
    enabled = False
    suppressed = 0


_CONFIG = _Config()
_LOCK = threading.RLock()
_DISPLAY: dict[str, Any] = {"progress": None, "open": 0}


def terminal_wanted(quiet: bool = False) -> bool:
    """Whether a command should show progress: stderr is a terminal (not ``TERM=dumb``)
    and the user did not ask for quiet."""
    if quiet or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def configure(enabled: bool) -> None:
    """Show progress (on stderr) from now on, or not. The command line calls this once
    with :func:`terminal_wanted`; library users get no progress unless they do."""
    _CONFIG.enabled = enabled


def enabled() -> bool:
    return _CONFIG.enabled and not _CONFIG.suppressed


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """No new progress inside (e.g. while another program owns the terminal)."""
    with _LOCK:
        _CONFIG.suppressed += 1
    try:
        yield
    finally:
        with _LOCK:
            _CONFIG.suppressed -= 1


class Task:
    """One line of progress; a no-op when progress is not shown."""

    def __init__(self, bar: Any = None, task_id: Any = None) -> None:
        self._bar = bar
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._id, n)

    def describe(self, description: str) -> None:
        if self._bar is not None:
            # drawn at once: a step that ends within the refresh interval still shows
            self._bar.update(self._id, description=_plain(description), refresh=True)

    def set_total(self, total: int | None) -> None:
        if self._bar is not None:
            self._bar.update(self._id, total=total)

    def writer(self, out: IO[bytes]) -> IO[bytes]:
        """``out``, advancing this task by every byte written to it."""
        return out if self._bar is None else _Counting(out, self)  # type: ignore[return-value]


class _Counting:
    """A binary file that counts what is written through it."""

    def __init__(self, out: IO[bytes], task: Task) -> None:
        self._out = out
        self._task = task

    def write(self, data: bytes) -> int:
        n = self._out.write(data)
        self._task.advance(len(data))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def _plain(text: str) -> str:
    """Shown as is (the column parses no markup), control characters escaped."""
    s = str(text)
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", s) if _UNSAFE.search(s) else s


def _new_display() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    class _Amount(DownloadColumn):  # bytes as sizes, items as "3/12"
        def __init__(self) -> None:
            super().__init__()
            self._count = MofNCompleteColumn()

        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "bytes":
                return super().render(task)
            return self._count.render(task)

    class _Speed(TransferSpeedColumn):
        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "bytes":
                return super().render(task)
            return ""

    console = Console(file=sys.stderr, stderr=True, highlight=False, markup=False)
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), _Amount(), _Speed(),
        TimeRemainingColumn(), console=console, transient=True, redirect_stdout=False,
        redirect_stderr=True,
    )


@contextlib.contextmanager
def task(description: str, total: int | None = None, unit: str = "items") -> Iterator[Task]:
    """A line of progress for the duration of the block: ``total`` steps (None: unknown),
    counted in ``unit`` (``"bytes"`` shows sizes and speed). A no-op unless enabled."""
    if not enabled():
        yield Task()
        return
    with _LOCK:
        bar = _DISPLAY["progress"]
        if bar is None:
            bar = _DISPLAY["progress"] = _new_display()
            bar.start()
        _DISPLAY["open"] += 1
        task_id = bar.add_task(_plain(description), total=total, unit=unit)
    try:
        yield Task(bar, task_id)
    finally:
        with _LOCK:
            bar.remove_task(task_id)
            _DISPLAY["open"] -= 1
            if _DISPLAY["open"] == 0:
                _DISPLAY["progress"] = None
                bar.stop()
