"""The verified simple index: a PEP 503/691 server over the verified state of all sources.

Invariant: **only verified bytes leave the proxy** (the pages and files come from
index.py's ``VerifiedIndex``; see its docstring). A file that fails verification is
answered with 502, never a byte of it; a project the resolution rule refuses, or that
no source has, is a 404, with the reason recorded. The Host header is checked against
DNS rebinding (hosts.py). Pages carry ``#sha256=`` fragments (HTML) or
``hashes`` (JSON), ``data-requires-python`` and ``data-yanked`` (PEP 592: installers
skip yanked files unless pinned with ``==``).

Routes::

    /simple/                       every project that resolves, HTML or JSON (PEP 691)
    /simple/PROJECT/               the resolved source's files (non-normalized → 301)
    /files/PROJECT/FILENAME        the verified bytes of one listed file
    /files/PROJECT/WHEEL.metadata  the wheel's verified core metadata (PEP 658/714;
                                   metadata.py)

Example::

    index = VerifiedIndex(Home(path), Limits())
    with RunningProxy(index) as proxy:          # 127.0.0.1, a free port
        subprocess.run([python, "-m", "pip", "install", "--index-url", proxy.index_url, "x"])
    index.failures()                            # verification refusals, if any
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from packaging.utils import canonicalize_name

from repotool.format.simple import HTML_CONTENT_TYPE, JSON_CONTENT_TYPE
from repotool.pip.hosts import HostCheck
from repotool.pip.index import NotFound, Problem, Refused, VerifiedIndex
from repotool.pip.metadata import METADATA_SUFFIX
from repotool.pip.served import send_chunk

__all__ = ["HTML_V1_TYPE", "RunningProxy", "choose_format"]

HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
_JSON_TYPES = (JSON_CONTENT_TYPE, "application/vnd.pypi.simple.latest+json")
_HTML_V1_TYPES = (HTML_V1_TYPE, "application/vnd.pypi.simple.latest+html")


# ---- content negotiation (PEP 691) --------------------------------------------------------


def choose_format(accept: str | None, query_format: str | None = None) -> str | None:
    """``"json"``, an HTML content type, or None (nothing acceptable: 406).

    The ``format`` query parameter wins over ``Accept`` (PEP 691). Without either,
    HTML (``text/html``), as a plain PEP 503 server.
    """
    if query_format:
        accept = query_format
    if not accept:
        return HTML_CONTENT_TYPE
    best: tuple[float, int] | None = None
    choice: str | None = None
    for i, part in enumerate(accept.split(",")):
        fields = [x.strip() for x in part.split(";")]
        mtype = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            k, _, v = param.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if mtype in _JSON_TYPES:
            fmt = "json"
        elif mtype in _HTML_V1_TYPES:
            fmt = HTML_V1_TYPE
        elif mtype in ("text/html", "text/*", "*/*"):
            fmt = HTML_CONTENT_TYPE
        else:
            continue
        key = (q, -i)
        if best is None or key > best:
            best, choice = key, fmt
    return choice


# ---- HTTP ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "repotool-proxy"
    sys_version = ""
    timeout = 60  # seconds a keep-alive connection may stay idle
    # headers and body are separate writes: without TCP_NODELAY each small answer on a
    # keep-alive connection waits for the client's delayed ACK (~40 ms)
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def end_headers(self) -> None:
        self._headers_sent = True
        super().end_headers()

    def _handle(self, *, head: bool) -> None:
        self._headers_sent = False
        host = self.headers.get("Host")
        if not self.server.hosts.accepts(host):
            # DNS rebinding guard (see HostCheck): nothing of the index in the answer
            self.close_connection = True
            if self.server.index.log:
                self.server.index.log(f"refused a request for Host {host!r}: not a name "
                                      "this proxy answers to (see --allow-host)")
            self._text(421, "misdirected request: this proxy does not answer to that Host "
                       "name\n", head=head)
            return
        try:
            self._route(head=head)
        except NotFound:
            self._text(404, "not found in the verified index\n", head=head)
        except Refused:
            self._text(502, "refused: failed verification or could not be fetched\n", head=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug or a local I/O error: one line, never the bytes
            self.server.index._record(
                Problem("internal", self.path, f"internal error: {e!r}", 1))
            self.close_connection = True
            if not self._headers_sent:  # else the short body makes the client fail
                with contextlib.suppress(Exception):
                    self._text(502, "internal error\n", head=head)

    def _route(self, *, head: bool) -> None:
        split = urllib.parse.urlsplit(self.path)
        raw = split.path.split("/")
        parts = [urllib.parse.unquote(p) for p in raw]
        if any("/" in p or "\x00" in p for p in parts):
            raise NotFound
        # not parse_qs: it would turn the "+" of "...v1+json" into a space
        query = dict(urllib.parse.unquote(p).partition("=")[::2]
                     for p in split.query.split("&") if p)
        index = self.server.index
        if parts in (["", ""], ["", "simple"]):
            return self._redirect("/simple/", head=head)
        if parts[:2] != ["", "simple"] and parts[:2] != ["", "files"]:
            raise NotFound
        if parts[1] == "files":
            if len(parts) != 4 or not parts[2] or not parts[3]:
                raise NotFound
            if parts[3].endswith(METADATA_SUFFIX):  # PEP 658: no distribution ends so
                body = index.open_metadata(canonicalize_name(parts[2]),
                                           parts[3][:-len(METADATA_SUFFIX)])
                return self._send(200, body, "application/octet-stream", head=head)
            return self._file(parts[2], parts[3], head=head)
        fmt = choose_format(self.headers.get("Accept"), query.get("format"))
        if len(parts) == 3 and parts[2] == "":
            if fmt is None:
                return self._text(406, "not acceptable: ask for HTML or PEP 691 JSON\n",
                                  head=head)
            page = index.root_page(fmt)
            return self._send(200, page.body, page.content_type, head=head)
        if len(parts) == 3 or (len(parts) == 4 and parts[3] == ""):
            name = parts[2]
            canon = canonicalize_name(name)
            if len(parts) == 3 or name != canon:
                return self._redirect(f"/simple/{urllib.parse.quote(canon)}/", head=head)
            if fmt is None:
                return self._text(406, "not acceptable: ask for HTML or PEP 691 JSON\n",
                                  head=head)
            page = index.project_page(canon, fmt)
            return self._send(200, page.body, page.content_type, head=head,
                              source=page.source)
        raise NotFound

    def _file(self, project: str, filename: str, *, head: bool) -> None:
        f, served = self.server.index.open_file(canonicalize_name(project), filename)
        with f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(served.size))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Repotool-Source", served.source)
            self.end_headers()
            if head:
                return
            left = served.size
            while left > 0:
                chunk = f.read(min(send_chunk, left))
                if not chunk:  # cannot happen: the size was just checked on this file
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                left -= len(chunk)

    def _redirect(self, location: str, *, head: bool) -> None:
        self.send_response(301)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def _text(self, code: int, text: str, *, head: bool) -> None:
        self._send(code, text.encode(), "text/plain; charset=utf-8", head=head)

    def _send(self, code: int, body: bytes, content_type: str, *, head: bool,
              source: str | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Vary", "Accept")
        if source:
            self.send_header("X-Repotool-Source", source)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], index: VerifiedIndex,
                 allow_hosts: tuple[str, ...] = ()) -> None:
        self.index = index
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.hosts = HostCheck.for_address(address[0], int(self.server_address[1]),
                                           allow_hosts)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not our problem; anything else is
        # reported in one line (never a traceback on the user's terminal).
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        if self.index.log:
            self.index.log(f"internal error while answering a request: {exc!r}")


class RunningProxy:
    """The verified index served by a background thread (a context manager).

    Raises:
        OSError: the address cannot be bound (port in use, unknown host).
    """

    def __init__(self, index: VerifiedIndex, host: str = "127.0.0.1", port: int = 0,
                 allow_hosts: tuple[str, ...] = ()) -> None:
        self.index = index
        self.server = _Server((host, port), index, allow_hosts)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        h = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{h}]" if ":" in h else h
        return f"http://{shown}:{port}/"

    @property
    def hosts(self) -> HostCheck:
        return self.server.hosts

    @property
    def index_url(self) -> str:
        return self.url + "simple/"

    def start(self) -> RunningProxy:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
            name="repotool-proxy", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
            self._thread = None
        self.server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``KeyboardInterrupt`` (or an exception)."""
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.server.server_close()

    def __enter__(self) -> RunningProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
