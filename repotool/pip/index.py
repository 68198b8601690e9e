"""The verified index behind the proxy: pages and files from the verified state only.

Invariant: **only verified bytes leave the proxy.** Every page is generated from the
signed indexes (``client.views.Views``), and every distribution is sent only after
``client.download.cached_file`` fetched it through its source's mirrors and checked
length and sha256 against the signed index, and the exact open file about to be sent
was hashed again (the file cache is not a trust anchor). A file that fails verification
is refused, never a byte of it, and the failure is recorded (source, locations, reason)
so ``repotool install`` can report it and exit 3.

One project, one source: a project page lists the files of the ONE source the
resolution rule (``client.views.resolve``) picks — never a mix. A project the rule
refuses (fenced away, a candidate source that failed its last update) or that no
source has is not found, with the reason recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name

from repotool.client.download import cached_file
from repotool.client.home import Home
from repotool.client.state import keyring_state
from repotool.client.views import Resolution, Views, resolve
from repotool.errors import RepotoolError
from repotool.format.simple import (
    JSON_CONTENT_TYPE,
    project_html,
    project_json,
    root_html,
    root_json,
)
from repotool.pip.metadata import METADATA_SUFFIX, MetadataShas, metadata_entry
from repotool.pip.served import NotFound, Page, Problem, Refused, Served, open_verified
from repotool.transport.limits import Limits

__all__ = ["NotFound", "Page", "Problem", "Refused", "Served", "VerifiedIndex", "open_verified"]

problems_max = 100  # distinct refusals kept in memory; further ones are only counted


warnings_max = 100  # failed-location reports kept; further ones are only counted


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
    _root_pages: dict[str, Page] = field(default_factory=dict)
    _meta: MetadataShas = field(default_factory=MetadataShas)  # verified wheels' METADATA
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
        except NotFound:
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
            NotFound: refused, unknown, or its cached index part is damaged (recorded).
        """
        try:
            res = self.resolve(project)
        except RepotoolError:
            raise NotFound from None
        try:
            with self._lock:
                proj = res.source.project(res.project)
        except RepotoolError as e:  # cached shard no longer matches its signed hash
            self._record(Problem("project", res.project, e.message, e.exit_code,
                                 res.source.cfg.name, hint=e.hint))
            raise NotFound from None
        if proj is None:  # the derived list and the shard disagree: treat as absent
            raise NotFound
        return res, proj

    # ---- pages --------------------------------------------------------------------------

    def root_page(self, fmt: str) -> Page:
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
                page = Page(root_json(listed), JSON_CONTENT_TYPE)
            else:
                page = Page(root_html(listed), fmt)
            self._root_pages[fmt] = page
            return page

    def project_page(self, project: str, fmt: str) -> Page:
        """The resolved source's files for ``project``.

        Raises:
            NotFound: resolution refused it, or no source has it (recorded).
        """
        res, proj = self._project(project)
        extra = self._meta.known(proj.files)  # METADATA of wheels verified here
        # Links are absolute paths on this server: whatever host name the client used.
        if fmt == "json":
            return Page(project_json(proj, base="/", metadata=extra), JSON_CONTENT_TYPE,
                        res.source.cfg.name)
        return Page(project_html(proj, base="/", metadata=extra), fmt, res.source.cfg.name)

    # ---- files --------------------------------------------------------------------------

    def open_file(self, project: str, filename: str) -> tuple[IO[bytes], Served]:
        """An open file holding exactly the verified bytes of ``filename``.

        Raises:
            NotFound: not a file the resolved source lists for ``project``.
            Refused: it failed verification or could not be fetched (recorded).
        """
        res, proj = self._project(project)
        view = res.source
        entry = next((f for f in proj.files if f.filename == filename), None)
        if entry is None:
            raise NotFound
        source = view.cfg.name
        try:
            f = open_verified(self._fetch(res, entry), entry.sha256, entry.size)
            if entry.is_wheel:
                try:
                    self._meta.check(entry, f)
                except BaseException:
                    f.close()
                    raise
        except RepotoolError as e:
            self._record(Problem("file", filename, e.message, e.exit_code, source,
                                 tuple(view.cfg.urls), e.hint))
            raise Refused from None
        served = Served(res.project, entry.version, filename, entry.sha256, entry.size, source)
        with self._lock:
            self._served[(res.project, filename)] = served
        if self.log:
            self.log(f"served {filename} sha256:{entry.sha256} from {source}")
        return f, served

    def _fetch(self, res: Resolution, entry: Any) -> Path:
        """``entry`` in the file cache, verified (one fetch per sha256 at a time)."""
        with self._lock:
            flock = self._file_locks.setdefault(entry.sha256, threading.Lock())
        with flock:
            return cached_file(self.home, res.source, res.project, entry, self.limits,
                               report=self._warn)

    def open_metadata(self, project: str, filename: str) -> bytes:
        """The verified core metadata of wheel ``filename`` (PEP 658): the signed
        ``.metadata`` target, or — when the entry names none — the verified wheel's.

        Raises:
            NotFound: not a wheel the resolved source lists for ``project``.
            Refused: it failed verification or could not be fetched (recorded).
        """
        res, proj = self._project(project)
        view = res.source
        entry = next((f for f in proj.files if f.filename == filename), None)
        if entry is None or not entry.is_wheel:
            raise NotFound
        name = filename + METADATA_SUFFIX
        try:
            if entry.metadata_sha256 is not None:
                meta = metadata_entry(entry)
                with open_verified(self._fetch(res, meta), meta.sha256, meta.size) as mf:
                    data = mf.read()
                wheel = view.cache / "files" / entry.sha256  # sent before: must agree
                if wheel.exists():
                    with open_verified(wheel, entry.sha256, entry.size) as wf:
                        self._meta.check(entry, wf)
            else:
                with open_verified(self._fetch(res, entry), entry.sha256, entry.size) as wf:
                    data = self._meta.check(entry, wf)
        except RepotoolError as e:
            self._record(Problem("file", name, e.message, e.exit_code, view.cfg.name,
                                 tuple(view.cfg.urls), e.hint))
            raise Refused from None
        if self.log:
            self.log(f"served {name} from {view.cfg.name}")
        return data
