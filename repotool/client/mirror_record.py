"""The record of DEST files a mirror run verified (``DEST/.repotool-mirror/verified``).

A refresh of a large mirror would otherwise re-hash every file DEST holds. For each file
a run wrote or hashed, the record keeps its path (relative to DEST), size,
``st_mtime_ns``, ``st_ino`` and ``st_ctime_ns``, plus the sha256 for plain names (which
do not carry it). A later run trusts a file without hashing it only when its name
carries the signed sha256 (or the record's sha256 is the signed one), its size is the
signed length, and every stat field equals the record: an in-place write moves mtime and
ctime, a rename over it changes the inode, and ``os.utime`` cannot restore ctime.

The record is only a cache: missing, unreadable, malformed or written for another
directory (another device) means "no cache" — everything is hashed as before. Format
(text, one line each)::

    repotool-mirror-verified 1 <st_dev of DEST>
    <size> <mtime_ns> <ino> <ctime_ns> <sha256 or -> <path>

``-``: the path's file name starts with the sha256 (a hash-prefixed name).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from repotool.storage import atomic_write

__all__ = ["NAME", "Record", "clean_stale", "parse", "render", "stamp"]

NAME = "verified"
_MAGIC = "repotool-mirror-verified 1"
_HEX = frozenset("0123456789abcdef")


def stamp(st: os.stat_result, sha: str | None) -> str | None:
    """The record's value for a file with this stat (None: not a regular file)."""
    if not stat.S_ISREG(st.st_mode):
        return None
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_ctime_ns} {sha or '-'}"


def parse(data: bytes, dev: int) -> dict[str, str] | None:
    """Path -> stamp, or None when ``data`` is not a record of this device's DEST.

    Never raises: any malformed line makes the whole record void.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines[0] != f"{_MAGIC} {dev}" or lines[-1] != "":
        return None
    out: dict[str, str] = {}
    for line in lines[1:-1]:
        parts = line.split(" ", 5)
        if len(parts) != 6:
            return None
        *nums, sha, path = parts
        if not all(n.isascii() and n.isdigit() for n in nums):
            return None
        if sha != "-" and (len(sha) != 64 or not _HEX.issuperset(sha)):
            return None
        if not _safe(path) or path in out:
            return None
        out[path] = " ".join([*(str(int(n)) for n in nums), sha])
    return out


def _safe(path: str) -> bool:
    return bool(path) and "\r" not in path and "\x00" not in path and not \
        path.startswith("/") and ".." not in path.split("/")


def render(entries: dict[str, str], dev: int) -> bytes:
    lines = [f"{_MAGIC} {dev}"]
    lines += [f"{v} {p}" for p, v in sorted(entries.items()) if _safe(p) and "\n" not in p]
    return ("\n".join(lines) + "\n").encode("utf-8")


class Record:
    """One run's view: the previous record (trusted stamps) and the new one."""

    def __init__(self, dest: Path, work: Path, *, use: bool = True) -> None:
        self.base, self.path = str(dest), work / NAME
        self.dev = os.stat(dest).st_dev
        self.old: dict[str, str] = {}
        if use:
            with contextlib.suppress(OSError, ValueError, MemoryError):
                self.old = parse(self.path.read_bytes(), self.dev) or {}
        self.new: dict[str, str] = {}

    def trusted(self, rel: str, st: os.stat_result, length: int, sha: str | None) -> bool:
        """The file at ``rel`` (stat ``st``) is as a run verified it, ``length`` bytes."""
        if st.st_size != length:
            return False
        value = stamp(st, sha)
        return value is not None and self.old.get(rel) == value

    def carry(self, rel: str) -> None:
        """Keep ``rel``'s stamp from the previous record (it was just found trusted)."""
        self.new[rel] = self.old[rel]

    def keep(self, rel: str, before: os.stat_result, sha: str | None) -> None:
        """Record ``rel``, verified with stat ``before``, if it still looks so now.

        ctime may have moved since (a hardlink made by this run); size, mtime and inode
        may not.
        """
        with contextlib.suppress(OSError):
            st = os.stat(os.path.join(self.base, rel))
            if (st.st_size, st.st_mtime_ns, st.st_ino) == \
                    (before.st_size, before.st_mtime_ns, before.st_ino):
                value = stamp(st, sha)
                if value is not None:
                    self.new[rel] = value

    def save(self) -> None:
        with contextlib.suppress(OSError):
            atomic_write(self.path, render(self.new, self.dev))


def clean_stale(dest: Path, work: Path) -> None:
    """Remove what a killed run left: ``run-*`` scratch dirs and ``.part-*``/``.tmp-*``
    files under DEST. Call with DEST's lock held."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(work):
            if entry.name.startswith("run-") and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
    for top, dirs, files in os.walk(dest):
        if top == str(dest):
            dirs[:] = [d for d in dirs if d != work.name]
        for f in files:
            if f.startswith((".part-", ".tmp-")):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(top, f))
