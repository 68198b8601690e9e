"""What the proxy sends and what it records: served files, refusals, pages, and the
open file whose very bytes were checked against the signed index."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from repotool.errors import VerificationError

__all__ = ["NotFound", "Page", "Problem", "Refused", "Served", "open_verified", "send_chunk"]

send_chunk = 256 * 1024  # bytes per read or write of a file being sent


@dataclass(frozen=True)
class Served:
    """A file whose verified bytes the proxy sent."""

    project: str
    version: str
    filename: str
    sha256: str
    size: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Problem:
    """Something the proxy refused to serve, and why.

    ``kind`` is ``"file"`` (a listed file failed verification or could not be fetched),
    ``"project"`` (resolution refused the project or no source has it) or
    ``"internal"`` (a local error while answering; nothing was sent).
    """

    kind: str
    subject: str  # project name or file name
    message: str
    exit_code: int
    source: str | None = None
    locations: tuple[str, ...] = ()
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["locations"] = list(self.locations)
        return d


class NotFound(Exception):
    pass


class Refused(Exception):
    pass


@dataclass
class Page:
    body: bytes
    content_type: str
    source: str | None = None



def open_verified(path: Path, sha256: str, size: int) -> IO[bytes]:
    """Open ``path`` and check the bytes of this very file object against the index.

    Hashing the open file (not the name) means the bytes sent are the bytes checked,
    even if the cache entry is replaced meanwhile.

    Raises:
        VerificationError: the size or sha256 differs.
    """
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    try:
        h = hashlib.sha256()
        n = 0
        while chunk := f.read(send_chunk):
            h.update(chunk)
            n += len(chunk)
        if n != size or not hmac.compare_digest(h.hexdigest(), sha256):
            raise VerificationError(f"cached copy of {path.name} changed after verification")
        f.seek(0)
        return f
    except BaseException:
        f.close()
        raise
