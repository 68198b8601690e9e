"""Transport: one fetcher over paths, file://, http:// and https://.

Every fetcher is a python-tuf ``FetcherInterface`` (``tuf.ngclient.fetcher``; only
``_fetch`` and the bounded downloads are ours), so the TUF workflow, repotool's shard
and file downloads, and the conformance adapter all go through the same code, with the
same limits (repotool/transport/limits.py):

* a length cap on every download: the signed length, or a fixed cap where none is
  signed, and a configured cap above any signed length (``Limits.*_max_length``);
* connect and read timeouts on every socket operation;
* a rate floor and a deadline per download that grow with its declared length, and one
  bound for the whole command, checked as bytes arrive (``read1`` returns whatever has
  arrived), so a server dripping one byte a second is cut off after the allowance;
* HTTP: a connection that fails is retried (urllib3 ``Retry``, twice, short backoff),
  and a 502/503/504 answer twice after closing — never draining — its body; a body
  already streaming is never retried.

Importing this module imports python-tuf's client and urllib3; the no-change update
uses repotool/transport/probe.py instead.

Transport is never trusted: TLS only adds privacy. ``ca_cert`` adds a CA for one
source; otherwise requests uses the system CAs or ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.fetcher import FetcherInterface

from repotool.errors import DownloadError, VerificationError
from repotool.transport.bounds import bounded, check_command_time
from repotool.transport.files import chunk_size, file_chunks, open_file_url
from repotool.transport.limits import Limits

if TYPE_CHECKING:
    import requests

__all__ = [
    "Fetcher",
    "Limits",
    "translate_download_error",
]

retry_statuses = (502, 503, 504)  # answered by a proxy or an overloaded server
status_retries = 2  # further attempts after such an answer
retry_backoff = 0.25  # seconds before the first retry, doubled each time


class _BaseFetcher(FetcherInterface):
    """python-tuf's fetcher contract, with every download bounded in length and time,
    plus a streaming download-with-hash. Only ``_fetch`` differs by transport."""

    def __init__(self, limits: Limits, end: float | None = None) -> None:
        self.limits = limits
        self.end = limits.command_end() if end is None else end  # the command's bound
        self.bytes_fetched = 0
        self.files_fetched = 0
        self.last_url: str | None = None  # names the file an error is about

    def _bounded(self, url: str, declared: int) -> Iterator[bytes]:
        """``fetch(url)`` within the time limits for ``declared`` bytes."""
        check_command_time(url, self.limits, self.end)
        start = time.monotonic()
        return bounded(self.fetch(url), url, self.limits, declared, start, self.end)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """The whole body, refused as soon as it exceeds ``max_length`` bytes."""
        buf = bytearray()
        for chunk in self._bounded(url, max_length):
            if len(buf) + len(chunk) > max_length:
                raise tuf_exc.DownloadLengthMismatchError(
                    f"Downloaded more than the maximum allowed length of {max_length}"
                )
            buf += chunk
        return bytes(buf)

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        """Like python-tuf's: a temporary file holding at most ``max_length`` bytes."""
        received = 0
        with tempfile.TemporaryFile() as f:
            for chunk in self._bounded(url, max_length):
                received += len(chunk)
                if received > max_length:
                    raise tuf_exc.DownloadLengthMismatchError(
                        f"Downloaded more than the maximum allowed length of {max_length}"
                    )
                f.write(chunk)
            f.seek(0)
            yield f

    def download_verified(
        self, url: str, dest: IO[bytes], length: int, sha256: str
    ) -> None:
        """Stream ``url`` into ``dest`` while hashing; refuse more than ``length`` bytes,
        fewer bytes, or another sha256.

        Raises:
            VerificationError: size or hash differ from the signed ones.
            DownloadError: transport failure, slow retrieval.
        """
        h = hashlib.sha256()
        received = 0
        try:
            for chunk in self._bounded(url, length):
                received += len(chunk)
                if received > length:
                    raise VerificationError(
                        f"{url}: more bytes than the {length} the signed index declares"
                    )
                h.update(chunk)
                dest.write(chunk)
        except tuf_exc.DownloadError as e:
            raise translate_download_error(e, url) from None
        if received != length:
            raise VerificationError(f"{url}: {received} bytes, the signed index says {length}")
        if not hmac.compare_digest(h.hexdigest(), sha256):
            raise VerificationError(f"{url}: sha256 differs from the signed index")


class FileFetcher(_BaseFetcher):
    """``file://`` URLs: the same limits as HTTP, bar the sockets."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        return file_chunks(open_file_url(url))


class RequestsFetcher(_BaseFetcher):
    """HTTP(S) with one ``requests.Session`` per (thread, scheme, host)."""

    def __init__(self, limits: Limits, ca_cert: str | None = None,
                 end: float | None = None) -> None:
        super().__init__(limits, end)
        self.ca_cert = ca_cert
        # per (thread, scheme, host): shards are fetched by a few threads at once, and a
        # requests.Session is not documented as thread-safe
        self._sessions: dict[tuple[int, str, str], requests.Session] = {}

    def _session(self, url: str) -> requests.Session:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        parsed = urllib.parse.urlsplit(url)
        key = (threading.get_ident(), parsed.scheme, parsed.netloc)
        if key not in self._sessions:
            s = requests.Session()
            s.headers["User-Agent"] = "repotool"
            s.headers["Accept-Encoding"] = "identity"
            if self.ca_cert:
                s.verify = self.ca_cert
            # connection failures only: urllib3 would drain the body of a retried status
            # answer, which a hostile server can make endless (those are retried below)
            retry = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=None,
                          backoff_factor=retry_backoff, backoff_max=2.0,
                          respect_retry_after_header=False, raise_on_status=False)
            adapter = HTTPAdapter(max_retries=retry)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            self._sessions[key] = s
        return self._sessions[key]

    def _fetch(self, url: str) -> Iterator[bytes]:
        for attempt in range(status_retries + 1):
            resp = self._get(url)
            if resp.status_code == 200:
                return self._chunks(resp)
            resp.close()  # closes the connection: the body is never read
            if resp.status_code not in retry_statuses or attempt == status_retries:
                break
            check_command_time(url, self.limits, self.end)
            time.sleep(retry_backoff * 2**attempt)
        raise tuf_exc.DownloadHTTPError(f"HTTP {resp.status_code} for {url}", resp.status_code)

    def _get(self, url: str) -> Any:
        import requests

        try:
            return self._session(url).get(
                url,
                # per request: requests lets REQUESTS_CA_BUNDLE override Session.verify
                verify=self.ca_cert if self.ca_cert else True,
                stream=True,
                timeout=(self.limits.connect_timeout, self.limits.read_timeout),
                allow_redirects=True,
            )
        except requests.exceptions.SSLError as e:
            raise tuf_exc.DownloadError(f"TLS failure for {url}: {_reason(e)}") from None
        except requests.exceptions.Timeout:
            raise tuf_exc.SlowRetrievalError(
                f"{url}: slow retrieval: timed out (no answer within "
                f"{self.limits.read_timeout:g} s)") from None
        except requests.exceptions.RequestException as e:
            raise tuf_exc.DownloadError(f"cannot reach {url}: {_reason(e)}") from None

    def _chunks(self, resp: Any) -> Iterator[bytes]:
        import requests
        import urllib3

        try:
            raw = resp.raw
            while chunk := raw.read1(chunk_size):
                yield chunk
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            if "timed out" in str(e).lower():
                raise tuf_exc.SlowRetrievalError(
                    f"{resp.url}: slow retrieval: read timed out (no byte for "
                    f"{self.limits.read_timeout:g} s)") from None
            raise tuf_exc.DownloadError(f"{resp.url}: {_reason(e)}") from None
        finally:
            resp.close()


def _reason(e: BaseException) -> str:
    text = str(e)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:200]


class Fetcher(_BaseFetcher):
    """Dispatches by scheme; the one fetcher a source uses (and python-tuf's Updater)."""

    def __init__(self, limits: Limits | None = None, ca_cert: str | None = None) -> None:
        super().__init__(limits or Limits())
        self._file = FileFetcher(self.limits, self.end)
        self._http = RequestsFetcher(self.limits, ca_cert, self.end)

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        if url.startswith("file:"):
            return self._count(self._file._fetch(url))
        if url.startswith(("http://", "https://")):
            return self._count(self._http._fetch(url))
        raise tuf_exc.DownloadError(f"unsupported URL {url!r}")

    def _count(self, it: Iterator[bytes]) -> Iterator[bytes]:
        try:
            for chunk in it:
                self.bytes_fetched += len(chunk)
                yield chunk
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self.files_fetched += 1


def translate_download_error(e: Exception, url: str | None = None) -> Exception:
    """python-tuf's download exceptions → repotool's (length overruns are refusals)."""
    where = f"{url}: " if url and url not in str(e) else ""
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return VerificationError(f"{where}more bytes than the signed metadata allows ({e})")
    if isinstance(e, tuf_exc.SlowRetrievalError):
        return DownloadError(f"{where}{e}", "the server is too slow or stalled; try a mirror")
    if isinstance(e, tuf_exc.DownloadHTTPError):
        return DownloadError(f"{where}{e}")
    if isinstance(e, tuf_exc.DownloadError):
        cause = e.__cause__
        msg = f"{where}{e}" + (f": {_reason(cause)}" if cause else "")
        return DownloadError(msg)
    return e
