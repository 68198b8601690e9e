"""How much and how long a download may take (SPEC §3.5), as pure decisions.

Kept apart from the fetchers (repotool/transport/fetcher.py) so that the no-change update's
probe (repotool/transport/probe.py) and the queries can use them without importing python-tuf's
client or an HTTP stack.

Time, per download: every download gets a fixed ``allowance`` (connection, TLS, the
server finding the file); after it, the bytes received must keep up with
``min_rate`` — received ≥ (elapsed − allowance) × min_rate — checked each time bytes
arrive, and ``read_timeout`` bounds a wait during which none arrive. So a download of
a declared length L ends within ``allowance + L / min_rate`` seconds, and a server
dripping one byte a second is abandoned just after the allowance (~20 s), whatever
length it declares. Per command: all downloads of one command share one bound,
``command_deadline`` from when the CLI built its limits (``started()``).

Why these numbers: 16 KiB/s (128 kbit/s) is below any link one installs Python
packages over (EDGE mobile data is ~25 KiB/s) yet 16,000 times a 1 B/s drip; 20 s
covers a slow TLS handshake and a cold server. One hour per command covers a large
install (a 2.5 GB wheel at 1 MB/s takes 42 minutes) and still bounds a hostile server
that drips just above the floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0  # seconds to establish a connection
    read_timeout: float = 15.0  # seconds with no byte received
    allowance: float = 20.0  # seconds each download gets before the rate floor applies
    min_rate: float = 16 * 1024.0  # bytes per second a download must average after that
    command_deadline: float = 3600.0  # seconds for all the downloads of one command
    metadata_max_length: int = 16 * 1024 * 1024  # bytes, metadata of unknown length
    shard_max_length: int = 32 * 1024 * 1024  # bytes, one index shard (signed length)
    file_max_length: int = 8 * 1024**3  # bytes, one distribution file (signed size)
    # time.monotonic() at which the command's bound ends; None: each fetcher starts one
    deadline_at: float | None = None

    def started(self) -> Limits:
        """These limits with the command's bound starting now (once per command)."""
        return replace(self, deadline_at=time.monotonic() + self.command_deadline)

    def command_end(self) -> float:
        """The monotonic time the current command's downloads must end by."""
        if self.deadline_at is not None:
            return self.deadline_at
        return time.monotonic() + self.command_deadline

    def download_deadline(self, declared: int) -> float:
        """Seconds one download of ``declared`` bytes (or its cap) may take at most."""
        return self.allowance + declared / self.min_rate

    def too_slow(self, received: int, elapsed: float, declared: int) -> bool:
        """True when a download that has received ``received`` bytes after ``elapsed``
        seconds is to be abandoned: past its deadline, or, after the allowance, behind
        the minimum rate. Pure: the transports call it as bytes arrive."""
        if elapsed > self.download_deadline(declared):
            return True
        return elapsed > self.allowance and received < (elapsed - self.allowance) * self.min_rate

    def slow_message(self, url: str, received: int, elapsed: float) -> str:
        return (f"{url}: slow retrieval: {received} bytes in {elapsed:.1f} s, too slow "
                f"(at least {self.min_rate / 1024:g} KiB/s after the first "
                f"{self.allowance:g} s)")
