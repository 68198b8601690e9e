"""Core metadata behind the proxy (PEP 658/714): ``/files/PROJECT/WHEEL.metadata``.

A wheel whose signed entry names its ``.metadata`` file (sha256, size; format 2
repositories) is advertised on the pages, and its metadata is fetched and checked like
any file; the wheel itself is then sent only if its own METADATA is exactly those bytes
(pip and uv resolved with them). A wheel whose entry does not name one (format 1, or a
repository that predates metadata files) gets its METADATA extracted from the verified
wheel, and is advertised once this proxy has verified that wheel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
from collections.abc import Iterable
from typing import IO, Any

from repotool.errors import VerificationError
from repotool.format.wheelmeta import METADATA_SUFFIX, wheel_metadata

__all__ = ["METADATA_SUFFIX", "MetadataShas", "metadata_entry"]


class MetadataShas:
    """The sha256 of the METADATA of every wheel verified here (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sha: dict[str, str] = {}  # wheel sha256 -> its METADATA's sha256

    def check(self, entry: Any, f: IO[bytes]) -> bytes:
        """The METADATA of the verified wheel open in ``f`` (rewound after), which must
        be the signed ``.metadata`` when the entry names one; remembered for the pages.

        Raises:
            VerificationError: unreadable, or not the metadata the index signed.
        """
        data = wheel_metadata(f, entry.filename)
        f.seek(0)
        sha = hashlib.sha256(data).hexdigest()
        if entry.metadata_sha256 is not None and not hmac.compare_digest(
                sha, entry.metadata_sha256):
            raise VerificationError(
                f"{entry.filename}: its METADATA differs from the signed {entry.filename}"
                ".metadata that installers resolved with")
        with self._lock:
            self._sha[entry.sha256] = sha
        return data

    def known(self, files: Iterable[Any]) -> dict[str, str]:
        """filename → METADATA sha256 of the listed ``files`` verified here."""
        with self._lock:
            return {f.filename: m for f in files if (m := self._sha.get(f.sha256))}


def metadata_entry(entry: Any) -> Any:
    """The index entry of a wheel's signed ``.metadata`` file, fetched like a file."""
    return dataclasses.replace(entry, filename=entry.filename + METADATA_SUFFIX,
                               sha256=entry.metadata_sha256, size=entry.metadata_size)
