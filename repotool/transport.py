"""Transport: one fetcher interface over paths, file://, http:// and https://.

Every fetcher is a python-tuf ``FetcherInterface`` (only ``_fetch`` is ours), so the
TUF workflow, repotool's shard and file downloads, and the conformance adapter all go
through the same code, with the same limits:

* a length cap on every download (python-tuf's ``download_bytes``/``download_file``
  raise as soon as one byte more than the signed length arrives);
* connect and read timeouts on every socket operation;
* an overall deadline per download, checked between reads that return whatever
  bytes have arrived (``read1``), so a server dripping one byte a second is cut off.

Transport is never trusted: TLS only adds privacy. ``ca_cert`` adds a CA for one
source; otherwise requests uses the system CAs or ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tuf.api import exceptions as tuf_exc

from repotool.errors import DownloadError, UsageError, VerificationError

if TYPE_CHECKING:
    import requests

__all__ = [
    "Limits",
    "normalize_url",
]

chunk_size = 64 * 1024  # bytes per read


@dataclass(frozen=True)
class Limits:
    connect_timeout: float = 10.0  # seconds to establish a connection
    read_timeout: float = 15.0  # seconds with no byte received
    download_deadline: float = 300.0  # seconds for one whole download
    metadata_max_length: int = 16 * 1024 * 1024  # bytes, for metadata of unknown length


def normalize_url(text: str) -> str:
    """A path, ``file://``, ``http://`` or ``https://`` location → a URL ending in ``/``.

    Whatever the text (it comes from the command line or a hand-edited config), the
    result is a URL that ``normalize_url`` maps to itself, or a ``UsageError``.

    Raises:
        UsageError: whitespace or unprintable characters, any other scheme, a URL that
            does not parse (e.g. ``http://[::1``), a bad host or port, credentials, a
            query or fragment, or a ``file:`` path that is not UTF-8 or holds NUL.
        UserError: a local path that cannot be resolved (e.g. a symlink loop).
    """
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise UsageError(
            f"invalid repository location {text!r}: it is empty or has whitespace or "
            "unprintable characters"
        )
    try:
        parsed = urllib.parse.urlsplit(text)
        if parsed.scheme in ("http", "https"):
            _ = parsed.port
    except ValueError as e:  # "Invalid IPv6 URL", a bad bracketed host, a bad port
        raise UsageError(f"invalid URL {text!r}: {e}") from None
    if parsed.scheme in ("http", "https"):
        host = parsed.hostname
        if not host:
            raise UsageError(f"invalid URL {text!r}: no host")
        if parsed.username is not None or parsed.password is not None:
            raise UsageError(f"URL {text!r} carries credentials; repotool refuses them")
        if parsed.query or parsed.fragment or text.endswith(("?", "#")):
            raise UsageError(f"URL {text!r} has a query or fragment")
        import re

        # urlsplit ignores what follows "]" ("http://[::1]x/") and lets "[]%" into names
        hostport = parsed.netloc.rpartition("@")[2]
        if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:%]+)(:[0-9]*)?", hostport):
            raise UsageError(f"invalid URL {text!r}: bad host {hostport!r}")
        if ":" not in host:  # not an IPv6 literal (urlsplit checked those)
            try:
                host.encode("idna")
            except UnicodeError:
                raise UsageError(f"invalid URL {text!r}: bad host name {host!r}") from None
        url = text
    elif parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"file URL {text!r} names a host")
        if parsed.query or parsed.fragment or text.endswith(("?", "#")):
            raise UsageError(f"file URL {text!r} has a query or fragment",
                             "percent-encode '?' and '#' in a file name")
        try:
            path = urllib.parse.unquote_to_bytes(parsed.path).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"file URL {text!r}: the path is not UTF-8") from None
        if "\x00" in path:
            raise UsageError(f"file URL {text!r}: the path holds a NUL byte")
        if not path.startswith("/"):  # "file:a" is no location; "file://a/" names a host
            raise UsageError(f"file URL {text!r}: the path is not absolute",
                             "write file:///absolute/path, or give the path itself")
        url = "file://" + urllib.parse.quote(path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        try:
            p = Path(text).expanduser()
        except RuntimeError:  # "~nobody/x": no such user
            raise UsageError(f"invalid repository location {text!r}: unknown home "
                             "directory") from None
        try:
            url = p.resolve().as_uri()
        except (OSError, RuntimeError) as e:  # e.g. a symlink loop
            from repotool.errors import UserError

            raise UserError(f"cannot resolve the path {text!r}: {e}") from None
    else:
        raise UsageError(
            f"unsupported URL scheme {parsed.scheme!r} in {text!r}",
            "use a path, file://, http:// or https://",
        )
    return url if url.endswith("/") else url + "/"


class _BaseFetcher:
    """python-tuf's fetcher contract (``fetch``, ``download_bytes``, ``download_file``,
    raising ``tuf.api.exceptions`` download errors), plus a streaming download-with-hash.

    It does not subclass ``tuf.ngclient.FetcherInterface``: importing ``tuf.ngclient``
    pulls in the updater and urllib3, which commands that never verify metadata (and the
    no-change update) do not need. Only ``_fetch`` differs by transport.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes_fetched = 0
        self.files_fetched = 0
        self.last_url: str | None = None  # names the file an error is about

    def _fetch(self, url: str) -> Iterator[bytes]:
        raise NotImplementedError

    def as_tuf(self) -> Any:
        """This fetcher, typed for python-tuf's ``Updater(fetcher=...)`` (duck-typed)."""
        return self

    def fetch(self, url: str) -> Iterator[bytes]:
        try:
            return self._fetch(url)
        except tuf_exc.DownloadError:
            raise
        except Exception as e:
            raise tuf_exc.DownloadError(f"Failed to download {url}") from e

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """The whole body, refused as soon as it exceeds ``max_length`` bytes."""
        buf = bytearray()
        for chunk in self.fetch(url):
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
            for chunk in self.fetch(url):
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
            DownloadError: transport failure.
        """
        h = hashlib.sha256()
        received = 0
        try:
            for chunk in self.fetch(url):
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
        return self._chunks(os.fdopen(fd, "rb"))

    def _chunks(self, f: IO[bytes]) -> Iterator[bytes]:
        deadline = time.monotonic() + self.limits.download_deadline
        with f:
            while chunk := f.read(chunk_size):
                yield chunk
                if time.monotonic() > deadline:
                    raise tuf_exc.SlowRetrievalError("download took too long")


class RequestsFetcher(_BaseFetcher):
    """HTTP(S) with one ``requests.Session`` per (scheme, host)."""

    def __init__(self, limits: Limits, ca_cert: str | None = None) -> None:
        super().__init__(limits)
        self.ca_cert = ca_cert
        # per (thread, scheme, host): shards are fetched by a few threads at once, and a
        # requests.Session is not documented as thread-safe
        self._sessions: dict[tuple[int, str, str], requests.Session] = {}

    def _session(self, url: str) -> requests.Session:
        import requests

        parsed = urllib.parse.urlsplit(url)
        key = (threading.get_ident(), parsed.scheme, parsed.netloc)
        if key not in self._sessions:
            s = requests.Session()
            s.headers["User-Agent"] = "repotool"
            s.headers["Accept-Encoding"] = "identity"
            if self.ca_cert:
                s.verify = self.ca_cert
            self._sessions[key] = s
        return self._sessions[key]

    def _fetch(self, url: str) -> Iterator[bytes]:
        import requests

        try:
            resp = self._session(url).get(
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
            raise tuf_exc.SlowRetrievalError(f"{url} timed out") from None
        except requests.exceptions.RequestException as e:
            raise tuf_exc.DownloadError(f"cannot reach {url}: {_reason(e)}") from None
        if resp.status_code != 200:
            resp.close()
            raise tuf_exc.DownloadHTTPError(f"HTTP {resp.status_code} for {url}", resp.status_code)
        return self._chunks(resp)

    def _chunks(self, resp: Any) -> Iterator[bytes]:
        import requests
        import urllib3

        deadline = time.monotonic() + self.limits.download_deadline
        try:
            raw = resp.raw
            while True:
                if time.monotonic() > deadline:
                    raise tuf_exc.SlowRetrievalError(
                        f"{resp.url}: download exceeded {self.limits.download_deadline:g} s"
                    )
                chunk = raw.read1(chunk_size)
                if not chunk:
                    break
                yield chunk
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            if "timed out" in str(e).lower():
                raise tuf_exc.SlowRetrievalError(f"{resp.url}: read timed out") from None
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
    """Dispatches by scheme; the one fetcher a source uses."""

    def __init__(self, limits: Limits | None = None, ca_cert: str | None = None) -> None:
        super().__init__(limits or Limits())
        self._file = FileFetcher(self.limits)
        self._http = RequestsFetcher(self.limits, ca_cert)

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        if url.startswith("file:"):
            return self._count(self._file._fetch(url))
        if url.startswith(("http://", "https://")):
            return self._count(self._http._fetch(url))
        raise tuf_exc.DownloadError(f"unsupported URL {url!r}")

    def _count(self, it: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in it:
            self.bytes_fetched += len(chunk)
            yield chunk
        self.files_fetched += 1


    def lean_bytes(self, url: str, max_length: int) -> bytes:
        """A small download without importing requests/urllib3 (~55 ms of start-up):
        for the no-change update's probes, whose bytes are compared against digests the
        keyring holds, so TLS details cannot change what is trusted. With a proxy
        configured in the environment, requests (which honours it) is used instead.

        Raises:
            tuf.api.exceptions.DownloadHTTPError: a status other than 200.
            tuf.api.exceptions.DownloadError: anything else; the caller falls back.
        """
        proxied = any(os.environ.get(v) for v in (
            "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"))
        if not url.startswith(("http://", "https://")) or proxied:
            return self.download_bytes(url, max_length)
        import http.client

        self.last_url = url
        p = urllib.parse.urlsplit(url)
        timeout = min(self.limits.read_timeout, self.limits.download_deadline)
        conn: http.client.HTTPConnection
        if p.scheme == "https":
            import ssl

            cafile = self._http.ca_cert or os.environ.get("REQUESTS_CA_BUNDLE") or None
            ctx = ssl.create_default_context(cafile=cafile)
            conn = http.client.HTTPSConnection(p.hostname or "", p.port, timeout=timeout,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection(p.hostname or "", p.port, timeout=timeout)
        deadline = time.monotonic() + self.limits.download_deadline
        try:
            conn.request("GET", p.path or "/",
                         headers={"User-Agent": "repotool", "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise tuf_exc.DownloadHTTPError(f"HTTP {resp.status} for {url}", resp.status)
            buf = bytearray()
            while chunk := resp.read1(chunk_size):
                buf += chunk
                if len(buf) > max_length:
                    raise tuf_exc.DownloadLengthMismatchError(
                        f"Downloaded more than the maximum allowed length of {max_length}")
                if time.monotonic() > deadline:
                    raise tuf_exc.SlowRetrievalError(f"{url}: download took too long")
        except (OSError, http.client.HTTPException) as e:
            raise tuf_exc.DownloadError(f"cannot reach {url}: {e}") from None
        finally:
            conn.close()
        self.bytes_fetched += len(buf)
        self.files_fetched += 1
        return bytes(buf)


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
