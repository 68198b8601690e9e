"""The time bound every download goes through, full fetcher and probe alike: a rate
floor and a deadline per download that grow with its declared length (``Limits``), and
one bound for the whole command, checked as bytes arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from tuf.api import exceptions as tuf_exc

from repotool.transport.limits import Limits

__all__ = ["bounded", "check_command_time"]


def check_command_time(url: str, limits: Limits, end: float) -> None:
    """Refuse to start (or go on with) a download once the command's bound is spent."""
    if time.monotonic() > end:
        raise tuf_exc.SlowRetrievalError(
            f"{url}: slow retrieval: this command's time bound of "
            f"{limits.command_deadline:g} s is spent")


def bounded(chunks: Iterator[bytes], url: str, limits: Limits, declared: int,
            start: float, end: float) -> Iterator[bytes]:
    """``chunks`` as they arrive, abandoned (``SlowRetrievalError``) as soon as the
    download is too slow for ``declared`` bytes (``Limits.too_slow``, ``start`` being
    when it began) or the command's bound ``end`` (monotonic) has passed."""
    received = 0
    try:
        for chunk in chunks:
            received += len(chunk)
            now = time.monotonic()
            if limits.too_slow(received, now - start, declared):
                raise tuf_exc.SlowRetrievalError(
                    limits.slow_message(url, received, now - start))
            check_command_time(url, limits, end)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the socket or file now, not at garbage collection
