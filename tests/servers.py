"""A real HTTP(S) server for tests, serving a directory, with attack hooks.

Public API::

    tls_ca() -> trustme.CA
    write_ca_bundle(ca, path) -> Path
    RepoServer(root, *, ca=None, host="127.0.0.1", listings=False, slow_interval=1.0)
        .start() -> Self / .stop(timeout=5.0) (idempotent) / context manager
        .url                      "http://127.0.0.1:PORT/" (https with ca=)
        .url_for(path) -> str     .port -> int
        .requests: list[str]      unquoted URL paths fetched, in order
        .log: list[RequestRecord] method, path (raw, with query), headers, status
        .count(key) -> int        .clear_log()      .reset()  (hooks)
        .errors: list[str]        unexpected handler tracebacks (should stay [])
        .root, .ssl_context, .slow_interval (mutable)
        attack hooks (mutable at runtime; see below)

``listings=True`` serves a generated page of links for directories without an
index (usable as ``pip --find-links URL``); by default they are 404.  An
``index.json`` alone (no ``index.html``) is served whatever the Accept header.

Hook keys are either a ``str`` -- matched against the unquoted URL path when it
equals the key or ends with it on a ``/`` boundary ("foo.whl" matches
"/x/foo.whl" but not "/x/barfoo.whl"; "/simple/" matches only paths ending in
"/simple/") -- or a compiled ``re.Pattern`` (``pattern.search(path)``).
Exact matches win over suffix/regex matches.

    override[key] = bytes     serve these bytes instead of the file
    status[key] = int         answer with this status (body: override or a message)
    redirect[key] = url       answer 302 with this Location
    content_length[key] = n   send this Content-Length header (may lie)
    delay[key] = seconds      wait before sending the response headers
    endless.add(key)          after the body (if any), stream zeros forever with
                              no Content-Length (or content_length[key] if set)
    slow.add(key)             drip the body, then spaces, 1 byte per
                              ``slow_interval`` seconds (default 1.0), forever
    drop.add(key)             send full headers, half the body, then close
    flaky[key] = n            answer the first n matching requests with 503
                              (then serve normally); decremented per request

A ``status`` answer whose key is also in ``endless`` streams zeros forever after its
headers (a hostile 503 whose body never ends).

Files are read from disk on every request, so tests may mutate the directory
between requests.  Directory requests serve ``index.html``; when the Accept
header prefers ``application/vnd.pypi.simple.v1+json`` (PEP 691) and an
``index.json`` exists next to it, that is served instead.  A directory URL
without the trailing slash is redirected (301) to the slash form.  Paths with
``..`` or dot-file components are 404.  Every response carries
``Cache-Control: no-store`` so pip's HTTP cache never serves stale bytes.

``stop()`` shuts down every open connection, so endless/slow/keep-alive handler
threads end promptly and are joined.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import re
import socket
import ssl
import sys
import threading
import traceback
import urllib.parse
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import trustme

__all__ = [
    "PEP691_HTML",
    "PEP691_JSON",
    "HookKey",
    "RepoServer",
    "RequestRecord",
    "tls_ca",
    "write_ca_bundle",
]

HookKey = str | re.Pattern[str]
_V = TypeVar("_V")

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
PEP691_HTML = "application/vnd.pypi.simple.v1+html"
_JSON_ALIASES = {PEP691_JSON, "application/vnd.pypi.simple.latest+json"}
_HTML_ALIASES = {PEP691_HTML, "application/vnd.pypi.simple.latest+html"}

_CHUNK = 64 * 1024
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".asc": "text/plain; charset=utf-8",
    ".pem": "application/x-pem-file",
}


def tls_ca() -> trustme.CA:
    """A fresh throw-away certificate authority for one test (or session)."""
    return trustme.CA()


def write_ca_bundle(ca: trustme.CA, path: Path) -> Path:
    """Write the CA certificate as PEM (for ``verify=``, REQUESTS_CA_BUNDLE,
    ``pip --cert`` ...) and return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(path))
    return path


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    method: str
    raw_path: str  # as sent, including any query string
    path: str  # unquoted, without query
    headers: dict[str, str]
    status: int | None = None  # None if the request never got a status line


def _key_matches(key: HookKey, path: str) -> bool:
    if isinstance(key, re.Pattern):
        return key.search(path) is not None
    if path == key:
        return True
    return path.endswith(key if key.startswith("/") else "/" + key)


def _lookup(hooks: Mapping[HookKey, _V], path: str) -> _V | None:
    items = list(hooks.items())  # snapshot: tests mutate hooks concurrently
    for key, value in items:
        if isinstance(key, str) and key == path:
            return value
    for key, value in items:
        if _key_matches(key, path):
            return value
    return None


def _in(keys: Iterable[HookKey], path: str) -> bool:
    return any(_key_matches(k, path) for k in list(keys))


def _accept_prefers_json(accept: str | None) -> bool:
    """True if the Accept header prefers the PEP 691 JSON form over HTML."""
    if not accept:
        return False
    best_json = best_html = 0.0
    for position, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            if param.replace(" ", "").lower().startswith("q="):
                try:
                    q = float(param.split("=", 1)[1])
                except ValueError:
                    q = 0.0
        # earlier entries win ties
        score = q - position * 1e-6
        media = media.lower()
        if media in _JSON_ALIASES:
            best_json = max(best_json, score)
        elif media in _HTML_ALIASES or media in {"text/html", "*/*"}:
            best_html = max(best_html, score)
    return best_json > 0 and best_json > best_html


class _StopServing(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "RepoServer/1.0"
    sys_version = ""
    _status: int | None = None

    # -- connection lifecycle ------------------------------------------------

    def setup(self) -> None:
        raw = self.request
        self.server.track(raw)
        ctx = self.server.owner.ssl_context
        if ctx is not None:
            try:
                raw.settimeout(10)  # bound the handshake
                wrapped = ctx.wrap_socket(raw, server_side=True)
            finally:
                self.server.untrack(raw)
            wrapped.settimeout(None)
            self.request = wrapped
            self.server.track(wrapped)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.request)
            if isinstance(self.request, ssl.SSLSocket):
                # socketserver only closes the raw socket, which the TLS
                # wrapper detached from: close the wrapper ourselves.
                self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        with contextlib.suppress(TypeError, ValueError):
            self._status = int(code)

    # -- request handling ------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _handle(self, *, head: bool) -> None:
        self._status = None
        raw_path = self.path
        # Not urlsplit(): it would read "//x/y" as a host.
        path = urllib.parse.unquote(raw_path.split("?", 1)[0].split("#", 1)[0]) or "/"
        try:
            self._respond(path, head=head)
        except (_StopServing, OSError):  # OSError: the client went away
            self.close_connection = True
        finally:
            self.server.record(
                RequestRecord(
                    method=self.command,
                    raw_path=raw_path,
                    path=path,
                    headers=dict(self.headers.items()),
                    status=self._status,
                )
            )

    def _respond(self, path: str, *, head: bool) -> None:
        owner = self.server.owner
        delay = _lookup(owner.delay, path)
        if delay:
            self.server.sleep(delay)

        status = _lookup(owner.status, path)
        if status is None:
            status = owner.take_flaky(path)
        if status is not None and _in(owner.endless, path):
            self._endless(b"", "text/plain", path, head=head, status=status)
            return
        if status is not None:
            body = _lookup(owner.override, path)
            if body is None:
                body = f"{status} injected by RepoServer\n".encode()
            self._send(status, body, "text/plain; charset=utf-8", path, head=head)
            return

        location = _lookup(owner.redirect, path)
        if location is not None:
            self._send(302, b"", "text/plain", path, head=head, location=location)
            return

        body = _lookup(owner.override, path)
        content_type = _guess_type(path)
        if body is None:
            resolved = self._resolve(path)
            if isinstance(resolved, str):  # directory without the slash
                self._send(301, b"", "text/plain", path, head=head, location=resolved)
                return
            if resolved is not None:
                body, content_type = resolved

        slow = _in(owner.slow, path)
        endless = _in(owner.endless, path)
        if body is None and not (slow or endless):
            self._send(404, b"404 Not Found\n", "text/plain", path, head=head)
            return
        body = body or b""

        if slow:
            self._drip(body, content_type, path, head=head)
        elif endless:
            self._endless(body, content_type, path, head=head)
        elif _in(owner.drop, path):
            self._drop(body, content_type, path, head=head)
        else:
            self._send(200, body, content_type, path, head=head)

    def _resolve(self, path: str) -> tuple[bytes, str] | str | None:
        """Map a URL path to (body, content type), a redirect target, or None."""
        parts = [p for p in path.split("/") if p]
        for part in parts:
            if part.startswith(".") or "\\" in part or "\0" in part:
                return None
        owner = self.server.owner
        root = owner.root
        target = root.joinpath(*parts)
        try:
            target.resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            return None  # escapes the root (e.g. via a symlink)
        try:
            if target.is_dir():
                if not path.endswith("/"):
                    return urllib.parse.quote(path) + "/"
                return self._directory(target)
            if target.is_file():
                return target.read_bytes(), _guess_type(path)
        except OSError:
            pass  # vanished or unreadable between the checks and the read
        return None

    def _directory(self, directory: Path) -> tuple[bytes, str] | None:
        index_json = directory / "index.json"
        index_html = directory / "index.html"
        accept = self.headers.get("Accept")
        if index_json.is_file() and (_accept_prefers_json(accept) or not index_html.is_file()):
            return index_json.read_bytes(), PEP691_JSON
        if index_html.is_file():
            lowered = (accept or "").lower()
            if any(a in lowered for a in _HTML_ALIASES) and not _accepts_text_html(lowered):
                return index_html.read_bytes(), PEP691_HTML
            return index_html.read_bytes(), "text/html; charset=utf-8"
        if self.server.owner.listings:
            return _listing(directory), "text/html; charset=utf-8"
        return None

    # -- response writers ------------------------------------------------------

    def _headers(
        self,
        status: int,
        content_type: str,
        path: str,
        length: int | None,
        *,
        location: str | None = None,
    ) -> None:
        override_length = _lookup(self.server.owner.content_length, path)
        if override_length is not None:
            length = override_length
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.close_connection = True
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Vary", "Accept")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        path: str,
        *,
        head: bool,
        location: str | None = None,
    ) -> None:
        if _lookup(self.server.owner.content_length, path) not in (None, len(body)):
            self.close_connection = True  # the length lies: end by closing
        self._headers(status, content_type, path, len(body), location=location)
        if not head:
            self.wfile.write(body)
            self.wfile.flush()

    def _drop(self, body: bytes, content_type: str, path: str, *, head: bool) -> None:
        self.close_connection = True
        self._headers(200, content_type, path, len(body))
        if not head:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
        self._hard_close()

    def _endless(self, body: bytes, content_type: str, path: str, *, head: bool,
                 status: int = 200) -> None:
        self.close_connection = True
        self._headers(status, content_type, path, None)
        if head:
            return
        self.wfile.write(body)
        filler = b"\0" * _CHUNK
        while not self.server.stopping.is_set():
            self.wfile.write(filler)
        raise _StopServing

    def _drip(self, body: bytes, content_type: str, path: str, *, head: bool) -> None:
        self.close_connection = True
        self._headers(200, content_type, path, None)
        self.wfile.flush()
        if head:
            return
        index = 0
        while True:
            byte = body[index : index + 1] or b" "
            index += 1
            self.wfile.write(byte)
            self.wfile.flush()
            if self.server.sleep(self.server.owner.slow_interval):
                raise _StopServing

    def _hard_close(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.flush()
        _shutdown_socket(self.request)


def _accepts_text_html(accept: str) -> bool:
    return any(item.split(";")[0].strip() in {"text/html", "*/*"} for item in accept.split(","))


def _listing(directory: Path) -> bytes:
    """A PEP 503-style page of links to the directory's entries."""
    names = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in directory.iterdir()
        if not p.name.startswith(".")
    )
    links = "\n".join(
        f'<a href="{html.escape(urllib.parse.quote(n))}">{html.escape(n)}</a><br>' for n in names
    )
    return f"<!DOCTYPE html>\n<html><body>\n{links}\n</body></html>\n".encode()


def _guess_type(path: str) -> str:
    lowered = path.lower()
    for suffix, content_type in _CONTENT_TYPES.items():
        if lowered.endswith(suffix):
            return content_type
    return "application/octet-stream"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, owner: RepoServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        super().__init__(address, _Handler)

    # Skip HTTPServer.server_bind's socket.getfqdn(): it can block on DNS.
    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    # Own thread management so stop() can join handlers with a deadline.
    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"RepoServer-handler-{self.server_port}",
            daemon=True,
        )
        with self._conn_lock:
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Quiet; keep unexpected errors for debugging (server.errors).
        benign = (ConnectionError, TimeoutError, ssl.SSLError, _StopServing)
        if not isinstance(sys.exc_info()[1], benign) and not self.stopping.is_set():
            with self.owner.lock:
                self.owner.errors.append(traceback.format_exc())

    def track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._conns.add(conn)
        if self.stopping.is_set():
            _shutdown_socket(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._conns.discard(conn)

    def record(self, record: RequestRecord) -> None:
        with self.owner.lock:
            self.owner.log.append(record)
            self.owner.requests.append(record.path)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops; True if it is stopping."""
        return self.stopping.wait(seconds)

    def close_all(self, timeout: float) -> list[threading.Thread]:
        with self._conn_lock:
            conns = list(self._conns)
            threads = list(self._handler_threads)
        for conn in conns:
            _shutdown_socket(conn)
        for thread in threads:
            thread.join(timeout)
        return [t for t in threads if t.is_alive()]


def _shutdown_socket(conn: socket.socket) -> None:
    # The base method: SSLSocket.shutdown would also drop its SSL object.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


class RepoServer:
    """Serve ``root`` over HTTP (or HTTPS with ``ca=``) on 127.0.0.1, port 0."""

    def __init__(
        self,
        root: Path,
        *,
        ca: trustme.CA | None = None,
        host: str = "127.0.0.1",
        listings: bool = False,
        slow_interval: float = 1.0,
    ) -> None:
        self.root = Path(root)
        self.ca = ca
        self.host = host
        self.listings = listings
        self.slow_interval = slow_interval

        self.override: dict[HookKey, bytes] = {}
        self.status: dict[HookKey, int] = {}
        self.redirect: dict[HookKey, str] = {}
        self.content_length: dict[HookKey, int] = {}
        self.delay: dict[HookKey, float] = {}
        self.endless: set[HookKey] = set()
        self.slow: set[HookKey] = set()
        self.drop: set[HookKey] = set()
        self.flaky: dict[HookKey, int] = {}

        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.log: list[RequestRecord] = []
        self.errors: list[str] = []

        self.ssl_context: ssl.SSLContext | None = None
        if ca is not None:
            cert = ca.issue_cert("127.0.0.1", "localhost")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            self.ssl_context = ctx

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._stop_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        if self._stopped:
            raise RuntimeError("a stopped RepoServer cannot be restarted")
        self._server = _Server(self, (self.host, 0))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"RepoServer-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and end all handler threads.  Idempotent."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            server.stopping.set()
            server.shutdown()
            thread.join(timeout)
            server.server_close()
            stuck = server.close_all(timeout)
            if stuck:  # pragma: no cover - diagnostic
                self.errors.append(f"handler threads still alive: {stuck}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("RepoServer is not started")
        return self._server.server_port

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:PORT/``."""
        return f"{self.scheme}://{self.host}:{self.port}/"

    def url_for(self, path: str) -> str:
        return self.url + path.lstrip("/")

    # -- logs and hooks -----------------------------------------------------------

    def take_flaky(self, path: str) -> int | None:
        """503 if a ``flaky`` hook matching ``path`` has requests left (one is used)."""
        with self.lock:
            for key in list(self.flaky):
                if _key_matches(key, path) and self.flaky[key] > 0:
                    self.flaky[key] -= 1
                    return 503
        return None

    def count(self, key: HookKey) -> int:
        """How many requests matched ``key`` (same matching as the hooks)."""
        with self.lock:
            paths = list(self.requests)
        return sum(1 for p in paths if _key_matches(key, p))

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()
            self.log.clear()

    def reset(self) -> None:
        """Remove every attack hook."""
        for hooks in (
            self.override,
            self.status,
            self.redirect,
            self.content_length,
            self.delay,
            self.flaky,
        ):
            hooks.clear()
        for keys in (self.endless, self.slow, self.drop):
            keys.clear()
