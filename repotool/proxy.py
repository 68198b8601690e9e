"""The verified simple index: a PEP 503/691 server over the verified state of all sources.

Invariant: **only verified bytes leave the proxy.** Every page is generated from the
signed indexes (``queries.Views``), and every distribution is sent only after
``queries.cached_file`` fetched it through its source's mirrors and checked length
and sha256 against the signed index, and the exact open file about to be sent was
hashed again (the file cache is not a trust anchor). A file that fails verification
is answered with 502, never a byte of it, and the failure is recorded (source,
locations, reason) so ``repotool install`` can report it and exit 3.

One project, one source: a project page lists the files of the ONE source the
resolution rule (``queries.resolve``) picks — never a mix. A project the rule refuses
(fenced away, a candidate source that failed its last update) or that no source has
is a 404, with the reason recorded. Pages carry ``#sha256=`` fragments (HTML) or
``hashes`` (JSON), ``data-requires-python`` and ``data-yanked`` (PEP 592: installers
skip yanked files unless pinned with ``==``).

Routes::

    /simple/                       every project that resolves, HTML or JSON (PEP 691)
    /simple/PROJECT/               the resolved source's files (non-normalized → 301)
    /files/PROJECT/FILENAME        the verified bytes of one listed file
    /files/PROJECT/WHEEL.metadata  the wheel's verified core metadata (PEP 658/714)

Core metadata: a wheel whose signed entry names its ``.metadata`` file (sha256, size) is
advertised on the pages, and its metadata is fetched and checked like any file; the
wheel itself is then sent only if its own METADATA is exactly those bytes (pip and uv
resolved with them). A wheel of a repository that predates metadata files gets its
METADATA extracted from the verified wheel, advertised once this proxy verified it.

Example::

    index = VerifiedIndex(Home(path), Limits())
    with RunningProxy(index) as proxy:          # 127.0.0.1, a free port
        subprocess.run([python, "-m", "pip", "install", "--index-url", proxy.index_url, "x"])
    index.failures()                            # verification refusals, if any
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from packaging.utils import canonicalize_name

from repotool.errors import RepotoolError, VerificationError
from repotool.format.simple import (
    HTML_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    project_html,
    project_json,
    root_html,
    root_json,
)
from repotool.home import Home
from repotool.queries import Resolution, Views, cached_file, resolve
from repotool.state import keyring_state
from repotool.transport import Limits
from repotool.wheelmeta import METADATA_SUFFIX, wheel_metadata

__all__ = [
    "HostCheck",
    "Problem",
    "RunningProxy",
    "Served",
    "VerifiedIndex",
    "choose_format",
    "is_loopback",
]

HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
_chunk = 256 * 1024  # bytes per write when sending a file
_JSON_TYPES = (JSON_CONTENT_TYPE, "application/vnd.pypi.simple.latest+json")
_HTML_V1_TYPES = (HTML_V1_TYPE, "application/vnd.pypi.simple.latest+html")
problems_max = 100  # distinct refusals kept in memory; further ones are only counted
warnings_max = 100  # failed-location reports kept; further ones are only counted


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


class _NotFound(Exception):
    pass


class _Refused(Exception):
    pass


@dataclass
class _Page:
    body: bytes
    content_type: str
    source: str | None = None


@dataclass
class VerifiedIndex:
    """The proxy's logic without HTTP: pages and verified files, plus what happened.

    ``live=True`` (the ``proxy`` command) reloads the sources' verified state when an
    ``update`` changed it; ``install`` keeps the state it started with, so one run
    sees one consistent view.
    """

    home: Home
    limits: Limits
    live: bool = False
    log: Callable[[str], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _views: Views | None = None
    _state: object = None
    _served: dict[tuple[str, str], Served] = field(default_factory=dict)
    _problems: dict[tuple[str, str, str], Problem] = field(default_factory=dict)
    _file_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _warnings: list[str] = field(default_factory=list)
    _dropped: dict[tuple[str, int], int] = field(default_factory=dict)
    _warnings_dropped: int = 0
    _root_pages: dict[str, _Page] = field(default_factory=dict)
    _meta_sha: dict[str, str] = field(default_factory=dict)  # verified wheel -> METADATA sha
    loads: int = 0  # how many times the verified state was (re)loaded

    # ---- what happened ------------------------------------------------------------------

    def served(self) -> list[Served]:
        with self._lock:
            return list(self._served.values())

    def served_file(self, project: str, filename: str) -> Served | None:
        with self._lock:
            return self._served.get((project, filename))

    def listed_file(self, project: str, filename: str) -> Served | None:
        """``filename`` as the resolved source's signed index lists it, unfetched: what
        a dry run that resolved from verified metadata (PEP 658) would install."""
        try:
            res, proj = self._project(canonicalize_name(project))
        except _NotFound:
            return None
        e = next((f for f in proj.files if f.filename == filename), None)
        return None if e is None else Served(res.project, e.version, filename, e.sha256,
                                             e.size, res.source.cfg.name)

    def problems(self) -> list[Problem]:
        with self._lock:
            return list(self._problems.values())

    def problems_dropped(self) -> dict[tuple[str, int], int]:
        """Refusals not kept because ``problems_max`` were: {(kind, exit code): count}.

        Every list here is bounded, so a client sending endless bad requests to a
        long-running proxy cannot grow its memory; what was left out is counted.
        """
        with self._lock:
            return dict(self._dropped)

    def warnings(self) -> list[str]:
        """Locations that failed before another one served a file (SPEC §3.6)."""
        with self._lock:
            return list(self._warnings)

    def warnings_dropped(self) -> int:
        with self._lock:
            return self._warnings_dropped

    def _warn(self, message: str) -> None:
        with self._lock:
            if len(self._warnings) < warnings_max:
                self._warnings.append(message)
            else:
                self._warnings_dropped += 1
        if self.log:
            self.log(f"warning: {message}")

    def failures(self) -> list[Problem]:
        """Files refused because their bytes failed verification (exit 3)."""
        return [p for p in self.problems() if p.kind == "file" and p.exit_code == 3]

    def _record(self, problem: Problem) -> None:
        key = (problem.kind, problem.subject, problem.message)
        with self._lock:
            if key in self._problems:
                pass
            elif len(self._problems) < problems_max:
                self._problems[key] = problem
            else:
                count = (problem.kind, problem.exit_code)
                self._dropped[count] = self._dropped.get(count, 0) + 1
        if self.log:
            self.log(f"refused {problem.subject}: {problem.message}")

    # ---- verified state -----------------------------------------------------------------

    def _state_key(self) -> object:
        """What the verified view depends on, per source: its configuration, the
        generation its keyring committed (``keyring/state.json``) and its last update's
        status (resolution refuses a source whose update failed)."""
        parts = []
        for cfg in self.home.sources():
            index = keyring_state(self.home, cfg.name).get("index")
            gen = (index.get("gen"), index.get("sha256")) if isinstance(index, dict) else None
            try:
                st = (self.home.source_dir(cfg.name) / "status.json").stat()
                status: object = (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                status = None
            parts.append((cfg.to_bytes(), gen, status))
        return tuple(parts)

    def views(self) -> Views:
        """The verified state of every source (call with ``_lock`` held).

        Loaded once; a live index reloads it (and forgets the pages built from it)
        only when ``_state_key`` changed, so requests between updates reuse it.
        """
        if self._views is None or self.live:
            key = self._state_key() if self.live else None
            if self._views is None or key != self._state \
                    or self._views.outlived(datetime.now(UTC)):  # expiry: judge anew
                self._views = Views(self.home)
                self._state = key
                self._root_pages = {}
                self.loads += 1
        return self._views

    def state(self) -> Views:
        """The verified state this index answers from (as loaded now)."""
        with self._lock:
            return self.views()

    def resolve(self, project: str) -> Resolution:
        """Resolve ``project`` by the one rule; refusals are recorded and re-raised.

        Raises:
            RepotoolError: as ``queries.resolve``.
        """
        name = canonicalize_name(project)
        with self._lock:
            views = self.views()
            try:
                return resolve(views, name)
            except RepotoolError as e:
                err = e
        self._record(Problem("project", name, err.message, err.exit_code, hint=err.hint))
        raise err

    def explain(self, project: str) -> tuple[str | None, str]:
        """(source, reason) for ``project`` — what ``install --dry-run`` prints."""
        try:
            r = self.resolve(project)
        except RepotoolError as e:
            return None, e.message
        return r.source.cfg.name, r.reason

    def _project(self, project: str) -> tuple[Resolution, Any]:
        """The resolution and the resolved source's entry for ``project``.

        Raises:
            _NotFound: refused, unknown, or its cached index part is damaged (recorded).
        """
        try:
            res = self.resolve(project)
        except RepotoolError:
            raise _NotFound from None
        try:
            with self._lock:
                proj = res.source.project(res.project)
        except RepotoolError as e:  # cached shard no longer matches its signed hash
            self._record(Problem("project", res.project, e.message, e.exit_code,
                                 res.source.cfg.name, hint=e.hint))
            raise _NotFound from None
        if proj is None:  # the derived list and the shard disagree: treat as absent
            raise _NotFound
        return res, proj

    # ---- pages --------------------------------------------------------------------------

    def root_page(self, fmt: str) -> _Page:
        """Every project that resolves; built once per loaded state and format."""
        with self._lock:
            views = self.views()
            page = self._root_pages.get(fmt)
            if page is not None:
                return page
            names: set[str] = set()
            for cfg in views.cfgs:
                view = views.view(cfg)
                if view is not None:
                    names.update(view.projects)
            listed = []
            for name in sorted(names):
                try:
                    resolve(views, name)
                except RepotoolError:
                    continue
                listed.append(name)
            if fmt == "json":
                page = _Page(root_json(listed), JSON_CONTENT_TYPE)
            else:
                page = _Page(root_html(listed), fmt)
            self._root_pages[fmt] = page
            return page

    def project_page(self, project: str, fmt: str) -> _Page:
        """The resolved source's files for ``project``.

        Raises:
            _NotFound: resolution refused it, or no source has it (recorded).
        """
        res, proj = self._project(project)
        with self._lock:  # METADATA of wheels verified here, for entries that lack it
            extra = {f.filename: m for f in proj.files if (m := self._meta_sha.get(f.sha256))}
        # Links are absolute paths on this server: whatever host name the client used.
        if fmt == "json":
            return _Page(project_json(proj, base="/", metadata=extra), JSON_CONTENT_TYPE,
                         res.source.cfg.name)
        return _Page(project_html(proj, base="/", metadata=extra), fmt, res.source.cfg.name)

    # ---- files --------------------------------------------------------------------------

    def open_file(self, project: str, filename: str) -> tuple[IO[bytes], Served]:
        """An open file holding exactly the verified bytes of ``filename``.

        Raises:
            _NotFound: not a file the resolved source lists for ``project``.
            _Refused: it failed verification or could not be fetched (recorded).
        """
        res, proj = self._project(project)
        view = res.source
        entry = next((f for f in proj.files if f.filename == filename), None)
        if entry is None:
            raise _NotFound
        source = view.cfg.name
        with self._lock:
            flock = self._file_locks.setdefault(entry.sha256, threading.Lock())
        try:
            with flock:
                path = cached_file(self.home, view, res.project, entry, self.limits,
                                   report=self._warn)
            f = _open_verified(path, entry.sha256, entry.size)
            if entry.is_wheel:
                try:
                    self._check_metadata(entry, f)
                except BaseException:
                    f.close()
                    raise
        except RepotoolError as e:
            self._record(Problem("file", filename, e.message, e.exit_code, source,
                                 tuple(view.cfg.urls), e.hint))
            raise _Refused from None
        served = Served(res.project, entry.version, filename, entry.sha256, entry.size, source)
        with self._lock:
            self._served[(res.project, filename)] = served
        if self.log:
            self.log(f"served {filename} sha256:{entry.sha256} from {source}")
        return f, served

    def _check_metadata(self, entry: Any, f: IO[bytes]) -> bytes:
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
            self._meta_sha[entry.sha256] = sha
        return data

    def open_metadata(self, project: str, filename: str) -> bytes:
        """The verified core metadata of wheel ``filename`` (PEP 658): the signed
        ``.metadata`` target, or — for a repository that predates them — the METADATA
        of the verified wheel.

        Raises:
            _NotFound: not a wheel the resolved source lists for ``project``.
            _Refused: it failed verification or could not be fetched (recorded).
        """
        res, proj = self._project(project)
        view = res.source
        entry = next((f for f in proj.files if f.filename == filename), None)
        if entry is None or not entry.is_wheel:
            raise _NotFound
        name = filename + METADATA_SUFFIX
        try:
            if entry.metadata_sha256 is not None:
                meta = dataclasses.replace(entry, filename=name, sha256=entry.metadata_sha256,
                                           size=entry.metadata_size)
                with self._lock:
                    flock = self._file_locks.setdefault(meta.sha256, threading.Lock())
                with flock:
                    path = cached_file(self.home, view, res.project, meta, self.limits,
                                       report=self._warn)
                with _open_verified(path, meta.sha256, meta.size) as mf:
                    data = mf.read()
                wheel = view.cache / "files" / entry.sha256  # sent before: must agree
                if wheel.exists():
                    with _open_verified(wheel, entry.sha256, entry.size) as wf:
                        self._check_metadata(entry, wf)
            else:
                with self._lock:
                    flock = self._file_locks.setdefault(entry.sha256, threading.Lock())
                with flock:
                    path = cached_file(self.home, view, res.project, entry, self.limits,
                                       report=self._warn)
                with _open_verified(path, entry.sha256, entry.size) as wf:
                    data = self._check_metadata(entry, wf)
        except RepotoolError as e:
            self._record(Problem("file", name, e.message, e.exit_code, view.cfg.name,
                                 tuple(view.cfg.urls), e.hint))
            raise _Refused from None
        if self.log:
            self.log(f"served {name} from {view.cfg.name}")
        return data


def _open_verified(path: Path, sha256: str, size: int) -> IO[bytes]:
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
        while chunk := f.read(_chunk):
            h.update(chunk)
            n += len(chunk)
        if n != size or not hmac.compare_digest(h.hexdigest(), sha256):
            raise VerificationError(f"cached copy of {path.name} changed after verification")
        f.seek(0)
        return f
    except BaseException:
        f.close()
        raise


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


# ---- which Host names are answered (DNS rebinding) ----------------------------------------

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the proxy on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(header: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header (name lower-cased, IPv6 in brackets), or
    None when it is not ``NAME``, ``NAME:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[:end + 1], text[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text_ = text.partition(":")
        port_text = port_text_ if sep else None
    if not name or (port_text is not None and not (port_text.isdigit() and len(port_text) <= 5)):
        return None
    return name, int(port_text) if port_text is not None else None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class HostCheck:
    """The ``Host`` headers the proxy answers — its guard against DNS rebinding.

    A web page on ``attacker.example`` whose DNS name is re-pointed at 127.0.0.1 makes
    the browser send its requests (and read the answers) to the proxy, with
    ``Host: attacker.example``: refused here (421), so no project list or file leaves.

    Answered: ``localhost``, ``127.0.0.1``, ``[::1]``, the exact ``--host`` given and
    every ``--allow-host`` name, each with the port the proxy listens on (a missing
    port only for port 80 or an ``--allow-host`` name: a reverse proxy in front).
    Listening beyond loopback (``--host 0.0.0.0`` or a LAN address) also answers any
    IP address literal: a rebinding attack needs a DNS name, and clients on the
    network reach the proxy by one of this machine's addresses, which we cannot list.
    A LAN DNS name must be named with ``--allow-host``.
    """

    port: int
    names: frozenset[str]
    allowed: frozenset[str] = frozenset()  # --allow-host names (any port or none)
    any_ip: bool = False

    @classmethod
    def for_address(cls, host: str, port: int, allow: tuple[str, ...] = ()) -> HostCheck:
        names = {*_LOOPBACK_NAMES, _bracketed(host.lower())}
        any_ip = not is_loopback(host)
        return cls(port, frozenset(names), frozenset(_bracketed(a.lower()) for a in allow),
                   any_ip)

    def accepts(self, header: str | None) -> bool:
        if header is None:
            return False  # HTTP/1.1 requires it; a browser always sends one
        split = _split_host(header)
        if split is None:
            return False
        name, port = split
        if name in self.allowed:
            return port is None or port == self.port
        if port != self.port and not (port is None and self.port == 80):
            return False
        if name in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
            except ValueError:
                return False
            return True
        return False

    def describe(self) -> str:
        """The accepted names, for the warning of a proxy listening beyond loopback."""
        names = sorted(self.names | self.allowed)
        return ", ".join(["any IP address", *names] if self.any_ip else names)


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
        except _NotFound:
            self._text(404, "not found in the verified index\n", head=head)
        except _Refused:
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
            raise _NotFound
        # not parse_qs: it would turn the "+" of "...v1+json" into a space
        query = dict(urllib.parse.unquote(p).partition("=")[::2]
                     for p in split.query.split("&") if p)
        index = self.server.index
        if parts in (["", ""], ["", "simple"]):
            return self._redirect("/simple/", head=head)
        if parts[:2] != ["", "simple"] and parts[:2] != ["", "files"]:
            raise _NotFound
        if parts[1] == "files":
            if len(parts) != 4 or not parts[2] or not parts[3]:
                raise _NotFound
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
        raise _NotFound

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
                chunk = f.read(min(_chunk, left))
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
