"""The no-change update's probe: small bounded GETs without requests or python-tuf.

The no-change ``update`` (SPEC §5) must not import requests, urllib3 or python-tuf's
client (~60 ms of start-up): its probe fetches two small files whose bytes are compared
against digests the keyring holds, so nothing it reads is trusted and TLS details cannot
change what is trusted. It reads ``file://`` URLs through files.py and bounds every
download through bounds.py, as the full fetcher (fetcher.py) does, so both paths share
one set of limits.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator

from tuf.api import exceptions as tuf_exc

from repotool.transport.bounds import bounded, check_command_time
from repotool.transport.files import chunk_size, file_chunks, open_file_url
from repotool.transport.limits import Limits

__all__ = ["Probe"]

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY")


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
            data = self._collect(file_chunks(open_file_url(url)), url, max_length,
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
