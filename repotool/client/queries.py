"""Answers from local verified state: list, search, show, choose a file, verify.

Each asks ``views.resolve`` which source provides a name (the one copy of the rule,
documented in views.py); downloading lives in download.py.

``list``, ``search`` and ``show`` are informational: they answer from expired state
too, with a warning (``Views(warn=...)``) that an ``update`` is due.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from repotool.client.home import Home
from repotool.client.state import SourceView
from repotool.client.views import Resolution, Views, resolve
from repotool.errors import RepotoolError, UserError
from repotool.storage import hash_file

__all__ = [
    "choose_file", "list_projects", "parse_requirement", "search", "show", "verify_files",
]


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
            entry = f.to_dict()
            if f.filename in view.provenance:  # 'repo import' record, verified at update
                entry["imported_from"] = view.provenance[f.filename]
            versions.setdefault(f.version, []).append(entry)
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


def parse_requirement(text: str) -> Any:
    from packaging.requirements import InvalidRequirement, Requirement

    from repotool.errors import UsageError

    try:
        return Requirement(text)
    except InvalidRequirement as e:
        raise UsageError(f"invalid requirement {text!r}: {str(e).splitlines()[0]}") from None


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
