"""Where ``repo publish`` copies a repository: the destination interface, and a directory.

``Destination`` is small: a listing (name → size, and an MD5 where the listing carries
one for free), a streamed digest, a bounded read, a put, a barrier after each stage
(``sync``) and a final audit as a client would verify. ``DirectoryDestination`` writes
each file atomically and audits with ``repo check``; ``repotool.publish.s3`` adds S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from repotool.format.layout import METADATA_DIR
from repotool.storage import fsync_dir

__all__ = ["TOPS", "Destination", "DirectoryDestination", "LocalFile", "Remote"]

TOPS = ("files", "index", "simple")  # the repository's directories besides metadata/


@dataclass(frozen=True)
class Remote:
    """What a destination's listing says about one file: its size and, when the listing
    carries it for free (an S3 ETag of a single-part upload), its MD5."""

    size: int
    md5: str | None = None


@dataclass
class LocalFile:
    name: str  # "/"-separated path relative to the repository directory
    path: Path
    size: int
    stage: int
    _digests: tuple[str, str] | None = None

    def digests(self) -> tuple[str, str]:
        """(sha256, md5) of the bytes, computed once."""
        if self._digests is None:
            sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    sha.update(chunk)
                    md5.update(chunk)
            self._digests = (sha.hexdigest(), md5.hexdigest())
        return self._digests


class Destination(Protocol):
    url: str  # how messages name it

    def listing(self) -> dict[str, Remote]: ...

    def digest(self, name: str, size: int) -> tuple[str, int] | None:
        """sha256 and size of ``name`` as stored (reading at most ``size + 1`` bytes)."""
        ...

    def read(self, name: str, limit: int) -> bytes | None: ...

    def put(self, f: LocalFile, content_type: str, cache_control: str) -> None: ...

    def sync(self) -> None:
        """Make the stage just uploaded durable before the next one starts."""
        ...

    def audit(self, now: datetime) -> list[str] | None:
        """Problems a client would find verifying the whole destination; None when the
        destination cannot be audited as a whole (each upload was read back instead)."""
        ...


class DirectoryDestination:
    """A directory (local disk, a mounted share): each file written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self._dirs: set[Path] = set()

    def listing(self) -> dict[str, Remote]:
        out: dict[str, Remote] = {}
        for top in (METADATA_DIR, *TOPS):
            for p in (self.root / top).rglob("*"):
                if p.is_file() and not p.is_symlink():
                    out[p.relative_to(self.root).as_posix()] = Remote(p.stat().st_size)
        return out

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    def digest(self, name: str, size: int) -> tuple[str, int] | None:
        h, n = hashlib.sha256(), 0
        try:
            with open(self._path(name), "rb") as f:
                while n <= size and (chunk := f.read(min(1 << 20, size + 1 - n))):
                    h.update(chunk)
                    n += len(chunk)
        except OSError:
            return None
        return h.hexdigest(), n

    def read(self, name: str, limit: int) -> bytes | None:
        try:
            with open(self._path(name), "rb") as f:
                return f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def put(self, f: LocalFile, content_type: str, cache_control: str) -> None:
        target = self._path(f.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix="-publish")
        try:
            with os.fdopen(fd, "wb") as out, open(f.path, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._dirs.add(target.parent)

    def sync(self) -> None:
        for d in sorted(self._dirs):
            fsync_dir(d)
        self._dirs.clear()

    def audit(self, now: datetime) -> list[str] | None:
        from repotool.publish.check import check_repository

        return check_repository(self.root, now=now).problems
