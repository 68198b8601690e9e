"""``file://`` reads: only regular files, never a path that climbs out of the tree.

Shared by the full fetcher (fetcher.py) and the no-change probe (probe.py).
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Iterator
from typing import IO

from tuf.api import exceptions as tuf_exc

__all__ = ["chunk_size", "file_chunks", "open_file_url"]

chunk_size = 64 * 1024  # bytes per read


def open_file_url(url: str) -> IO[bytes]:
    """A ``file://`` URL opened for reading, only if it names a regular file.

    Raises:
        tuf.api.exceptions.DownloadHTTPError: unsafe path, missing, not a regular file.
    """
    parsed = urllib.parse.urlsplit(url)
    # decode segment by segment: a name from remote metadata such as "..%2Fx" must
    # never climb out of the repository directory
    segments = [urllib.parse.unquote(seg) for seg in parsed.path.split("/")]
    if any("/" in seg or seg in (".", "..") for seg in segments):
        raise tuf_exc.DownloadHTTPError(f"{url}: unsafe path", 404)
    path = "/".join(segments)
    try:
        # O_NONBLOCK: opening a FIFO planted in the tree must not block forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise tuf_exc.DownloadHTTPError(f"{url} not found", 404) from None
    except IsADirectoryError:
        raise tuf_exc.DownloadHTTPError(f"{url} is a directory", 404) from None
    except PermissionError:
        raise tuf_exc.DownloadHTTPError(f"{url}: permission denied", 403) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, FIFO, device, socket
        os.close(fd)
        raise tuf_exc.DownloadHTTPError(f"{url} is not a regular file", 404)
    return os.fdopen(fd, "rb")


def file_chunks(f: IO[bytes]) -> Iterator[bytes]:
    """The bytes of an open file, ``chunk_size`` at a time; the file is closed after."""
    with f:
        while chunk := f.read(chunk_size):
            yield chunk
