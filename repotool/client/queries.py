"""Answers from local verified state: list, search, show, resolve, download, verify.

Which source provides a project — one rule, for direct and transitive requirements:

1. A source fenced with ``--only`` provides only the projects its patterns match, and
   a project matched by a fence comes from the fenced source(s) alone (highest
   priority first); if they lack it, nothing else may fill in.
2. Otherwise the project comes entirely from the highest-priority unfenced source
   that has it (ties: the source added first). Versions from different sources are
   never mixed: a higher version elsewhere does not win.
3. A candidate source that was never updated, whose last update failed, or whose
   verified metadata has expired since (judged at one reference time per run, minus
   that source's clock skew) is an error — never a reason to fall through to the next
   source.

``resolve`` is that rule, and the only copy of it: ``download``, ``verify``, the proxy
(hence ``install``) and ``lock`` all ask it which source provides a name. ``verify``
accepts a file only when the source ``resolve`` picks lists it with that sha256 and
size — a source fenced away from the name, or outranked, never vouches for it.

``list``, ``search`` and ``show`` are informational: they answer from expired state
too, with a warning (``Views(warn=...)``) that an ``update`` is due.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from repotool.client.home import Home, SourceConfig
from repotool.client.state import SourceView, load_view
from repotool.errors import DownloadError, RepotoolError, UserError, VerificationError
from repotool.storage import fsync_dir, hash_file

__all__ = [
    "Resolution", "choose_file", "download", "list_projects", "resolve", "search", "show",
    "verify_files",
]


@dataclass
class Resolution:
    project: str
    source: SourceView
    reason: str


class Views:
    """Lazily loaded views of every source, in resolution order.

    ``now`` is the run's one reference time for expiry (default: when the views are
    created). ``warn``, when given, receives one line per source whose verified state
    has expired — for the informational queries, which still answer; ``resolve``
    refuses such a source whatever ``warn`` is.
    """

    def __init__(self, home: Home, only_source: str | None = None, *,
                 now: datetime | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.home = home
        cfgs = [home.source(only_source)] if only_source else home.sources()
        self.cfgs = cfgs
        self.now = now or datetime.now(UTC)
        self._warn = warn
        self._views: dict[str, SourceView | None] = {}
        self._expired: dict[str, str | None] = {}

    def view(self, cfg: SourceConfig) -> SourceView | None:
        if cfg.name not in self._views:
            view = self._views[cfg.name] = load_view(self.home, cfg)
            why = view.expired(self.now) if view is not None else None
            if why and self._warn is not None:
                self._warn(f"source {cfg.name!r}: {why}; answering from that last verified "
                           f"state (run 'repotool update {cfg.name}')")
        return self._views[cfg.name]

    def expired(self, cfg: SourceConfig) -> str | None:
        """Why the source's verified state may not be handed out at this run's reference
        time, or None (judged once per source: the proxy's root page asks per name)."""
        if cfg.name not in self._expired:
            view = self.view(cfg)
            self._expired[cfg.name] = view.expired(self.now) if view is not None else None
        return self._expired[cfg.name]

    def outlived(self, now: datetime) -> bool:
        """True when a loaded source that was fresh at this run's reference time has
        expired by ``now``: a long-running reader (the proxy) must load new views."""
        return any(v is not None and v.expired(self.now) is None and v.expired(now) is not None
                   for v in self._views.values())

    def status_ok(self, cfg: SourceConfig) -> tuple[bool, str]:
        try:
            doc = json.loads((self.home.source_dir(cfg.name) / "status.json").read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("status.json is not an object")
        except (OSError, ValueError, RecursionError):
            return self.view(cfg) is not None, "never updated"
        if doc.get("ok"):
            return True, ""
        return False, str(doc.get("error") or "its last update failed")


def _last_exit_code(home: Home, cfg: SourceConfig) -> int:
    try:
        code = json.loads((home.source_dir(cfg.name) / "status.json").read_bytes())["exit_code"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return 1
    return code if type(code) is int else 1


def resolve(views: Views, project: str) -> Resolution:
    """Apply the rule in the module docstring.

    Raises:
        VerificationError: the project is fenced to sources that lack it, or a candidate
            source's verified metadata expired, or its last update was refused.
        UserError: no source has it, or a candidate source is not usable.
    """
    project = canonicalize_name(project)
    fenced = [c for c in views.cfgs if c.provides(project)]
    candidates = fenced or [c for c in views.cfgs if c.provides(project) is None]
    why = (
        f"pinned by --only to {', '.join(c.name for c in fenced)}"
        if fenced else "highest-priority source that has it"
    )
    for cfg in candidates:
        ok, reason = views.status_ok(cfg)
        view = views.view(cfg)
        if not ok or view is None:
            # a source refused for verification stays a refusal (exit 3), not a mere error
            refused = _last_exit_code(views.home, cfg) == VerificationError.exit_code
            raise (VerificationError if refused else UserError)(
                f"source {cfg.name!r} could not be updated ({reason}); refusing to look for "
                f"{project} in lower-priority sources",
                f"fix and run 'repotool update {cfg.name}'",
            )
        expired = views.expired(cfg)
        if expired:  # a freeze: refused until 'update' brings fresh metadata (SPEC §3.3)
            raise VerificationError(
                f"source {cfg.name!r}: {expired}; its verified index may no longer be used "
                f"(refusing to look for {project} in it or in lower-priority sources)",
                f"run 'repotool update {cfg.name}'",
            )
        if project in view.projects:
            return Resolution(project, view, f"{why} (priority {cfg.priority})")
    if fenced:
        raise VerificationError(
            f"{project} is pinned to source(s) {', '.join(c.name for c in fenced)} "
            "(--only), which do not provide it; no other source may",
        )
    others = [c.name for c in views.cfgs if c.provides(project) is False]
    hint = f"sources {', '.join(others)} are fenced (--only) away from it" if others else None
    raise UserError(f"no source provides {project}", hint or "run 'repotool update' first?")


def list_projects(views: Views) -> list[dict[str, Any]]:
    out = []
    for cfg in views.cfgs:
        view = views.view(cfg)
        if view is None:
            continue
        for name, p in view.projects.items():
            out.append({"project": name, "version": p["latest"], "source": cfg.name,
                        "summary": p["summary"], "files": p["files"]})
    return sorted(out, key=lambda d: (d["project"], d["source"]))


def search(views: Views, text: str) -> list[dict[str, Any]]:
    needle = text.lower()
    return [
        d for d in list_projects(views)
        if needle in d["project"].lower() or needle in d["summary"].lower()
    ]


def show(views: Views, project: str) -> dict[str, Any]:
    name = canonicalize_name(project)
    found = []
    for cfg in views.cfgs:
        view = views.view(cfg)
        if view is None:
            continue
        proj = view.project(name)
        if proj is None:
            continue
        versions: dict[str, list[dict[str, Any]]] = {}
        for f in sorted(proj.files, key=lambda f: f.filename):
            versions.setdefault(f.version, []).append(f.to_dict())
        from packaging.version import Version

        found.append({
            "source": cfg.name,
            "summary": proj.summary,
            "versions": [
                {"version": v, "files": versions[v]}
                for v in sorted(versions, key=Version, reverse=True)
            ],
        })
    if not found:
        raise UserError(f"no source has {name}", "see 'repotool list' or 'repotool update'")
    resolution: dict[str, Any]
    try:
        r = resolve(views, name)
        resolution = {"source": r.source.cfg.name, "reason": r.reason}
    except RepotoolError as e:
        resolution = {"source": None, "reason": e.message}
    return {"project": name, "resolved": resolution, "sources": found}


# ---- choosing and fetching files --------------------------------------------------------


def choose_file(view: SourceView, req: Any, *, sdist_ok: bool = True,
                target: Any = None) -> Any:
    """The best file for ``req`` (a packaging Requirement) in ``view`` for ``target``
    (default: this interpreter): highest version the specifier allows (yanked only if
    pinned with ==, prereleases as pip), then the most specific fitting wheel, else sdist."""
    from repotool.client.resolver import Requirement, releases
    from repotool.client.targets import Target

    target = target or Target.current()
    want = Requirement.of(req)
    if view.project(want.name) is None:
        raise UserError(f"source {view.cfg.name!r} has no {req.name}")
    rels = releases(view, want.name, target, sdist_ok=sdist_ok)
    usable = {v: f for v, r in rels.items() if (f := r.best(want.pinned)) is not None}
    chosen = sorted(want.specifier.filter(usable), reverse=True)
    if not chosen:
        raise UserError(
            f"no file of {req.name} matches {str(req.specifier) or 'any version'} "
            f"for {target.label} in source {view.cfg.name!r}"
        )
    return usable[chosen[0]]


def cached_file(
    home: Home, view: SourceView, project: str, entry: Any, limits: Any,
    *, report: Callable[[str], None] | None = None,
) -> Path:
    """A verified copy of ``entry`` in the source's file cache, fetched if needed.

    A cached copy is re-hashed before use (the cache is not trusted); mirrors are tried
    in order and each failure is reported: to ``report`` when a later location served
    the file (SPEC §3.6 "reports which one failed"), in the error when none did.

    Raises:
        VerificationError: every location served wrong bytes (or any did, and the rest
            were unreachable).
        DownloadError: no location could be reached.
    """
    from repotool import progress
    from repotool.format.layout import dist_target_path, hashed_name
    from repotool.transport.fetcher import Fetcher

    files = view.cache / "files"
    dest = files / entry.sha256
    if dest.exists():
        if hash_file(dest) == (entry.sha256, entry.size):
            return Path(dest)
        dest.unlink()
    cap = limits.file_max_length
    if entry.size > cap:  # endless data, signed: refused unfetched
        raise VerificationError(
            f"{entry.filename} from source {view.cfg.name!r}: the signed index declares "
            f"{entry.size} bytes, more than the {cap} a file may have")
    files.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(limits, home.ca_cert(view.cfg))
    path = hashed_name(dist_target_path(project, entry.filename), entry.sha256)
    failures: list[tuple[str, RepotoolError]] = []
    for url in view.cfg.urls:
        fd, tmp = tempfile.mkstemp(dir=files, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, \
                    progress.task(entry.filename, total=entry.size, unit="bytes") as bar:
                fetcher.download_verified(url + path, bar.writer(out), entry.size,
                                          entry.sha256)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
            if report is not None:
                for u, e in failures:
                    report(f"{entry.filename}: location failed, next one used: {_where(u, e)}")
            return Path(dest)
        except RepotoolError as e:
            failures.append((url, e))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    msg = "; ".join(_where(u, e) for u, e in failures)
    if any(isinstance(e, VerificationError) for _, e in failures):
        raise VerificationError(f"{entry.filename} from source {view.cfg.name!r} refused: {msg}")
    raise DownloadError(f"{entry.filename} from source {view.cfg.name!r}: {msg}")


def _where(url: str, e: RepotoolError) -> str:
    """``URL: message``, without repeating a URL the message already names."""
    return e.message if url in e.message else f"{url}: {e.message}"


def parse_requirement(text: str) -> Any:
    from packaging.requirements import InvalidRequirement, Requirement

    from repotool.errors import UsageError

    try:
        return Requirement(text)
    except InvalidRequirement as e:
        raise UsageError(f"invalid requirement {text!r}: {str(e).splitlines()[0]}") from None


def download(
    home: Home, requirements: list[str], dest_dir: Path, *, deps: bool, limits: Any,
    report: Callable[[str], None] | None = None, target: Any = None, pre: bool = False,
) -> list[dict[str, Any]]:
    """Resolve the requirements for ``target`` (a ``targets.Target``; default: this
    interpreter) as ``resolver.resolve_requirements`` documents, then fetch, verify and
    place each chosen file into ``dest_dir``; never leaves a partial or unverified file
    there, and fetches nothing unless the whole set resolves. Locations that failed
    before another served a file, and named requirements whose markers exclude the
    target, are passed to ``report``.

    Raises:
        UsageError: a malformed or direct-URL requirement (before anything is read).
        UserError: the requirements cannot be satisfied (the conflict is named).
    """
    from repotool import progress
    from repotool.client.resolver import Requirement, resolve_requirements
    from repotool.client.targets import Target

    parsed = [Requirement.parse(r) for r in requirements]
    target = target or Target.current()
    roots = []
    for req in parsed:
        if req.marker is not None and not target.marker_ok(req.marker):
            if report is not None:
                report(f"ignoring {req.text!r}: its markers exclude {target.label}")
            continue
        roots.append(req)
    chosen = resolve_requirements(Views(home), roots, target, deps=deps, pre=pre)
    done = []
    with progress.task("download", total=len(chosen), unit="files") as bar:
        for cand in chosen:
            entry, view = cand.entry, cand.view
            cached = cached_file(home, view, cand.name, entry, limits, report=report)
            target_path = dest_dir / entry.filename
            dest_dir.mkdir(parents=True, exist_ok=True)  # only once a verified file is at hand
            _place(cached, target_path, entry)
            done.append({"project": cand.name, "version": entry.version,
                         "filename": entry.filename, "sha256": entry.sha256,
                         "size": entry.size, "source": view.cfg.name,
                         "path": str(target_path)})
            bar.advance()
    return done


def _place(cached: Path, target: Path, entry: Any) -> None:
    """Copy a verified cached file to ``target`` atomically, re-checking its hash."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, open(cached, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        if hash_file(Path(tmp)) != (entry.sha256, entry.size):
            raise VerificationError(f"{entry.filename} changed while it was copied")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(target.parent)


def verify_files(home: Home, paths: list[Path], *, now: datetime | None = None
                 ) -> list[dict[str, Any]]:
    """Whether the source allowed to provide each file's project vouches for it.

    The file's name gives its project (``repotool.format.names``, the publisher's rule);
    ``resolve`` gives the ONE source that may provide that project — fences, priority,
    unusable or expired sources exactly as for ``download`` and ``install``; that
    source's signed entry for the file name must match sha256 and size. Another source
    listing the same bytes does not count (else ``verify`` would bless the very file
    dependency confusion plants); ``reason`` says why a file is not vouched for.

    Raises:
        UserError: a file cannot be read.
    """
    from repotool.format.names import InvalidName, parse_filename

    views = Views(home, now=now)
    out = []
    for path in paths:
        try:
            sha, size = hash_file(path)
        except OSError as e:
            raise UserError(f"cannot read {str(path)!r}: {e.strerror}") from None
        item: dict[str, Any] = {"file": str(path), "sha256": sha, "size": size,
                                "vouched_by": [], "reason": None}
        out.append(item)
        try:
            project = str(parse_filename(path.name)[0])
        except InvalidName as e:
            item["reason"] = f"vouched for by no trusted source: {e.message}"
            continue
        try:
            res = resolve(views, project)
            proj = res.source.project(project)
        except RepotoolError as e:
            item["reason"] = f"vouched for by no trusted source: {e.message}"
            item["reason"] += _others(views, None, project, path.name, sha, size)
            continue
        name = res.source.cfg.name
        entry = next((f for f in proj.files if f.filename == path.name), None) if proj else None
        if entry is not None and hmac.compare_digest(entry.sha256, sha) and entry.size == size:
            item["vouched_by"].append({"source": name, "project": project,
                                       "version": entry.version, "yanked": entry.yanked})
            continue
        what = "does not list this file" if entry is None else \
            "lists this file name with other contents (sha256 or size differ)"
        item["reason"] = (f"{name}, the source that provides {project} ({res.reason}), {what}"
                          + _others(views, res, project, path.name, sha, size))
    return out


def _others(views: Views, res: Resolution | None, project: str, filename: str, sha: str,
            size: int) -> str:
    """``; X lists it but may not provide P (why)`` for sources listing these bytes."""
    notes = []
    fenced = [c.name for c in views.cfgs if c.provides(project)]
    for cfg in views.cfgs:
        if res is not None and cfg.name == res.source.cfg.name:
            continue
        try:
            view = views.view(cfg)
            proj = view.project(project) if view is not None else None
        except RepotoolError:
            continue
        if proj is None or not any(f.filename == filename and f.size == size
                                   and hmac.compare_digest(f.sha256, sha) for f in proj.files):
            continue
        if cfg.provides(project) is False:
            why = f"fenced by --only {' '.join(cfg.only)}"
        elif fenced and cfg.name not in fenced:
            why = f"pinned by --only to {', '.join(fenced)}"
        elif res is not None:
            why = f"{res.source.cfg.name} comes first"
        else:
            why = "it is not usable now"
        notes.append(f"{cfg.name} lists it but may not provide {project} ({why})")
    return "".join(f"; {n}" for n in notes)
