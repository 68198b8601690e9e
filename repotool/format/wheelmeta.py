"""A wheel's core metadata (PEP 658/714): the exact bytes of its ``*.dist-info/METADATA``.

The publisher writes them next to the wheel as ``FILENAME.metadata`` (a TUF target of its
own, listed in the index entry with sha256 and size); the proxy serves them so pip and uv
resolve without downloading wheels, and checks that a wheel it sends has the METADATA
it advertised. The member chosen is the one the publisher's ``dists.inspect`` reads: the
single top-level ``NAME.dist-info/METADATA`` of the archive.
"""

from __future__ import annotations

import zipfile
from typing import IO

from repotool.errors import VerificationError

__all__ = ["METADATA_SUFFIX", "metadata_max_length", "wheel_metadata"]

METADATA_SUFFIX = ".metadata"
metadata_max_length = 4 * 1024 * 1024  # bytes: as the publisher's limit for METADATA


def wheel_metadata(f: IO[bytes], filename: str) -> bytes:
    """The METADATA bytes of the wheel open in ``f`` (read from the start, bounded).

    Raises:
        VerificationError: not a readable wheel, or not exactly one METADATA member, or
            one larger than ``metadata_max_length``.
    """
    try:
        with zipfile.ZipFile(f) as z:
            names = [n for n in z.namelist() if n.count("/") == 1
                     and n.endswith("/METADATA") and n.split("/")[0].endswith(".dist-info")]
            if len(names) != 1:
                raise VerificationError(f"{filename} has {len(names)} METADATA files, expected 1")
            info = z.getinfo(names[0])
            if info.file_size > metadata_max_length:
                raise VerificationError(f"{filename}: its METADATA is too large")
            with z.open(info) as m:
                data = m.read(metadata_max_length + 1)
            if len(data) > metadata_max_length:
                raise VerificationError(f"{filename}: its METADATA is too large")
            return data
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise VerificationError(f"{filename} is not a readable wheel: {e}") from None
