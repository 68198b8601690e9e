"""Light transport pieces: the no-change update's probe, safe ``file://`` reads, and the
time bound every download goes through.

The no-change ``update`` (SPEC §5) must not import requests, urllib3 or python-tuf's
client (~60 ms of start-up): its probe fetches two small files whose bytes are compared
against digests the keyring holds, so nothing it reads is trusted and TLS details cannot
change what is trusted. repotool/transport/fetcher.py (the full fetcher, a python-tuf
``FetcherInterface``) uses :func:`open_file_url` and :func:`bounded` from here, so both
paths share one set of limits.
"""

from __future__ import annotations

import os
import stat
import time
import urllib.parse
from collections.abc import Iterator
from typing import IO

from tuf.api import exceptions as tuf_exc

from repotool.transport.limits import Limits

__all__ = ["Probe", "bounded", "open_file_url"]

chunk_size = 64 * 1024  # bytes per read
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY")


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


class Probe:
    """Small bounded GETs for the no-change update, without requests/urllib3/tuf's
    client. Through a proxy set in the environment (which requests honours and
    http.client does not) the full fetcher is used instead."""

    def __init__(self, limits: Limits, ca_cert: str | None = None) -> None:
        self.limits = limits
        self.ca_cert = ca_cert
        self.end = limits.command_end()
        self.bytes_fetched = 0
        self.files_fetched = 0

    def get(self, url: str, max_length: int) -> bytes:
        """The body of ``url``, at most ``max_length`` bytes, within the limits.

        Raises:
            tuf.api.exceptions.DownloadHTTPError: a status other than 200, a missing file.
            tuf.api.exceptions.DownloadError: anything else; the caller falls back.
        """
        check_command_time(url, self.limits, self.end)
        start = time.monotonic()
        if url.startswith(("http://", "https://")) and any(
                os.environ.get(v) for v in _PROXY_VARS):
            from repotool.transport.fetcher import Fetcher

            data = Fetcher(self.limits, self.ca_cert).download_bytes(url, max_length)
        elif url.startswith(("http://", "https://")):
            data = self._http(url, max_length, start)
        elif url.startswith("file:"):
            data = self._collect(self._file_chunks(open_file_url(url)), url, max_length,
                                 start)
        else:
            raise tuf_exc.DownloadError(f"unsupported URL {url!r}")
        self.bytes_fetched += len(data)
        self.files_fetched += 1
        return data

    def _collect(self, chunks: Iterator[bytes], url: str, max_length: int,
                 start: float) -> bytes:
        buf = bytearray()
        for chunk in bounded(chunks, url, self.limits, max_length, start, self.end):
            buf += chunk
            if len(buf) > max_length:
                raise tuf_exc.DownloadLengthMismatchError(
                    f"Downloaded more than the maximum allowed length of {max_length}")
        return bytes(buf)

    @staticmethod
    def _file_chunks(f: IO[bytes]) -> Iterator[bytes]:
        with f:
            while chunk := f.read(chunk_size):
                yield chunk

    def _http(self, url: str, max_length: int, start: float) -> bytes:
        import http.client

        p = urllib.parse.urlsplit(url)
        left = max(0.1, self.end - time.monotonic())
        timeout = min(self.limits.read_timeout, left)
        conn: http.client.HTTPConnection
        if p.scheme == "https":
            import ssl

            cafile = self.ca_cert or os.environ.get("REQUESTS_CA_BUNDLE") or None
            ctx = ssl.create_default_context(cafile=cafile)
            conn = http.client.HTTPSConnection(p.hostname or "", p.port, timeout=timeout,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection(p.hostname or "", p.port, timeout=timeout)
        try:
            conn.request("GET", p.path or "/",
                         headers={"User-Agent": "repotool", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise tuf_exc.DownloadHTTPError(f"HTTP {resp.status} for {url}", resp.status)

            def chunks() -> Iterator[bytes]:
                while chunk := resp.read1(chunk_size):
                    yield chunk

            return self._collect(chunks(), url, max_length, start)
        except (OSError, http.client.HTTPException) as e:
            raise tuf_exc.DownloadError(f"cannot reach {url}: {e}") from None
        finally:
            conn.close()
