"""Local files: atomic replacement, locks, and names that are safe as paths.

Every write of state goes through :func:`atomic_write`: a temp file in the same
directory, flush, fsync, ``os.replace``, then an fsync of the directory — so a kill
at any moment leaves either the old or the new bytes, never a mix (SPEC §3.9).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from repotool.errors import UsageError, UserError

__all__ = [
    "atomic_write", "duration_max", "fsync_dir", "hash_file", "locked", "parse_duration",
    "safe_name",
]

_DURATION = re.compile(r"([1-9][0-9]{0,9})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# seconds; the longest lifetime any duration may give (10 years, see parse_duration)
duration_max = 3650 * 86400


def _human(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_duration(
    text: str, *, option: str = "duration", maximum: int = duration_max, hint: str | None = None
) -> int:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` → seconds, at most ``maximum``.

    The default cap, 10 years, is far beyond any sensible metadata lifetime (SPEC §4's
    defaults run from a day to a year) yet keeps every ``now + duration`` well inside
    what ``datetime`` can represent, so no lifetime can overflow or silently disable
    expiry.

    Raises:
        UsageError: not a number and a unit, or more than ``maximum`` (exit 2).
    """
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise UsageError(
            f"invalid {option} {text!r}: expected a number and a unit s, m, h, d or w "
            "(e.g. 7d)"
        )
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > maximum:
        raise UsageError(
            f"{option} {text.strip()!r} is too long: at most {_human(maximum)}", hint
        )
    return seconds


def safe_name(name: str) -> bool:
    """True for names usable as one path component (source names)."""
    return bool(_SAFE.fullmatch(name)) and name not in {".", ".."}


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size of a file (``hashlib.file_digest``: memory stays flat).
    The size is the number of bytes hashed, read from the position the hashing ended."""
    import hashlib

    with open(path, "rb", buffering=0) as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return digest, f.tell()


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o644, sync_dir: bool = True,
    fsync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` (bytes, or chunks of them) atomically (temp file,
    fsync, rename).

    ``fsync=False`` is for callers that make many files durable at once with one
    ``os.sync()`` before the write that makes them reachable (``repo sign``), or whose
    files are re-hashed on every read (content-addressed caches).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="-" + path.name[:32])
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                f.writelines(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


@contextlib.contextmanager
def locked(lock_path: Path, what: str, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` for the duration of the block.

    The lock dies with the process, so kill -9 never leaves a stale lock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            raise UserError(f"{what} is in use by another repotool process") from None
        yield
    finally:
        os.close(fd)
