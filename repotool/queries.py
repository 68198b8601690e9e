"""Answers from local verified state: list, search, show, resolve, download, verify.

Which source provides a project — one rule, for direct and transitive requirements:

1. A source fenced with ``--only`` provides only the projects its patterns match, and
   a project matched by a fence comes from the fenced source(s) alone (highest
   priority first); if they lack it, nothing else may fill in.
2. Otherwise the project comes entirely from the highest-priority unfenced source
   that has it (ties: the source added first). Versions from different sources are
   never mixed: a higher version elsewhere does not win.
3. A candidate source that was never updated, or whose last update failed, is an
   error — never a reason to fall through to the next source.
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
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from repotool.errors import DownloadError, RepotoolError, UserError, VerificationError
from repotool.home import Home, SourceConfig
from repotool.state import SourceView, load_view
from repotool.storage import fsync_dir, hash_file

__all__ = ["Resolution", "download", "list_projects", "resolve", "search", "show", "verify_files"]


@dataclass
class Resolution:
    project: str
    source: SourceView
    reason: str


class Views:
    """Lazily loaded views of every source, in resolution order."""

    def __init__(self, home: Home, only_source: str | None = None) -> None:
        self.home = home
        cfgs = [home.source(only_source)] if only_source else home.sources()
        self.cfgs = cfgs
        self._views: dict[str, SourceView | None] = {}

    def view(self, cfg: SourceConfig) -> SourceView | None:
        if cfg.name not in self._views:
            self._views[cfg.name] = load_view(self.home, cfg)
        return self._views[cfg.name]

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
        VerificationError: the project is fenced to sources that lack it.
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


def choose_file(view: SourceView, req: Any, *, sdist_ok: bool = True) -> Any:
    """The best file for ``req`` in ``view``: highest version the specifier allows
    (yanked only if pinned with ==), then the most specific compatible wheel, else sdist."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    proj = view.project(canonicalize_name(req.name))
    if proj is None:
        raise UserError(f"source {view.cfg.name!r} has no {req.name}")
    pinned = any(s.operator in ("==", "===") for s in req.specifier)
    rank = {t: i for i, t in enumerate(sys_tags())}
    best: tuple[Any, ...] | None = None
    for f in proj.files:
        v = Version(f.version)
        if f.yanked is not False and not pinned:
            continue
        if not req.specifier.contains(v, prereleases=True if pinned else None):
            continue
        if f.is_wheel:
            tags = parse_wheel_filename(f.filename)[3]
            r = min((rank[t] for t in tags if t in rank), default=None)
            if r is None:
                continue
            key = (v, 1, -r)
        elif sdist_ok:
            key = (v, 0, 0)
        else:
            continue
        if best is None or key > best[0]:
            best = (key, f)
    if best is None:
        raise UserError(
            f"no file of {req.name} matches {str(req.specifier) or 'any version'} "
            f"for this Python in source {view.cfg.name!r}"
        )
    return best[1]


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
    from repotool.layout import dist_target_path, hashed_name
    from repotool.transport import Fetcher

    files = view.cache / "files"
    dest = files / entry.sha256
    if dest.exists():
        if hash_file(dest) == (entry.sha256, entry.size):
            return Path(dest)
        dest.unlink()
    files.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(limits, home.ca_cert(view.cfg))
    path = hashed_name(dist_target_path(project, entry.filename), entry.sha256)
    failures: list[tuple[str, RepotoolError]] = []
    for url in view.cfg.urls:
        fd, tmp = tempfile.mkstemp(dir=files, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                fetcher.download_verified(url + path, out, entry.size, entry.sha256)
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
    report: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fetch, verify and place the best file for each requirement (and dependencies
    with ``deps``) into ``dest_dir``; never leaves a partial or unverified file there.
    Locations that failed before another served a file are passed to ``report``."""
    reqs = [parse_requirement(r) for r in requirements]
    views = Views(home)
    done: dict[str, dict[str, Any]] = {}
    queue = list(reqs)
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in done:
            continue
        res = resolve(views, name)
        entry = choose_file(res.source, req)
        cached = cached_file(home, res.source, name, entry, limits, report=report)
        target = dest_dir / entry.filename
        dest_dir.mkdir(parents=True, exist_ok=True)  # only once a verified file is at hand
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".part-")
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
        fsync_dir(dest_dir)
        done[name] = {"project": name, "version": entry.version, "filename": entry.filename,
                      "sha256": entry.sha256, "size": entry.size, "source": res.source.cfg.name,
                      "path": str(target)}
        if deps:
            from packaging.markers import default_environment

            env = {k: str(v) for k, v in default_environment().items()}
            for d in entry.requires_dist:
                dreq = parse_requirement(d)
                if dreq.marker is None or dreq.marker.evaluate({**env, "extra": ""}):
                    queue.append(dreq)
    return list(done.values())


def verify_files(home: Home, paths: list[Path]) -> list[dict[str, Any]]:
    """Which trusted source vouches for each file (by filename, sha256 and size).

    A source vouches only for projects it may provide (rule 1 of the module docstring):
    not for names outside its ``--only`` fence, nor for names fenced to other sources —
    else ``verify`` would bless the very file dependency confusion plants.
    """
    from repotool.dists import _parse_name

    views = Views(home)
    out = []
    for path in paths:
        try:
            sha, size = hash_file(path)
        except OSError as e:
            raise UserError(f"cannot read {str(path)!r}: {e.strerror}") from None
        item: dict[str, Any] = {"file": str(path), "sha256": sha, "size": size,
                                "vouched_by": []}
        try:
            name, _v, _k = _parse_name(path.name)
            project = canonicalize_name(name)
        except UserError:
            project = None
        fenced = {c.name for c in views.cfgs if project and c.provides(project)}
        for cfg in views.cfgs:
            if fenced and cfg.name not in fenced:
                continue  # outside its own fence, or the name is pinned elsewhere
            view = views.view(cfg)
            proj = view.project(project) if (view and project) else None
            for f in proj.files if proj else []:
                if f.filename == path.name and hmac.compare_digest(f.sha256, sha) \
                        and f.size == size:
                    item["vouched_by"].append(
                        {"source": cfg.name, "project": project, "version": f.version,
                         "yanked": f.yanked}
                    )
        out.append(item)
    return out
