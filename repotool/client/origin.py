"""The client half of ``repo import``: verified files from one configured source.

Requirements are resolved as ``download`` resolves them (repotool/resolver.py: the one
source rule, ``--only`` fences, expiry, Requires-Python and markers for this
interpreter); every project must resolve to the source named with ``--from``. Each file
of each chosen version that the source's signed index lists is fetched (or taken from
the client cache, re-hashed) and verified like any download, and handed on with its
provenance: the source, the origin repository's name, its root key fingerprints and
the signed sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repotool.client.home import Home
from repotool.errors import UserError

__all__ = ["ImportedFile", "fetch_for_import"]


@dataclass(frozen=True)
class ImportedFile:
    path: Path  # a verified copy in the client cache (content-addressed)
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    source: str
    repository: str  # the origin's name (root's x-repotool name)
    root_keys: tuple[str, ...]  # the origin's root key fingerprints

    def provenance(self) -> dict[str, Any]:
        return {"source": self.source, "repository": self.repository,
                "root_keys": list(self.root_keys), "sha256": self.sha256,
                "project": self.project, "version": self.version}


def fetch_for_import(
    home: Home, source: str, requirements: list[str], *, deps: bool, limits: Any,
) -> list[ImportedFile]:
    """Verified files for ``requirements`` (and their dependencies with ``deps``), every
    one from ``source``; nothing is fetched unless the whole set resolves there.

    Raises:
        UsageError: a malformed requirement.
        UserError: unknown source, unresolvable set, or a project another source provides.
        VerificationError: a file refused, a fence, expired metadata.
    """
    from repotool.client.download import cached_file
    from repotool.client.resolver import Requirement, resolve_requirements
    from repotool.client.targets import Target
    from repotool.client.views import Views

    cfg = home.source(source)
    parsed = [Requirement.parse(r) for r in requirements]
    target = Target.current()
    views = Views(home)
    chosen: list[Any] = []  # each requirement resolved on its own: demo==1.0 demo==1.1
    seen: set[tuple[str, str]] = set()
    for req in parsed:
        for cand in resolve_requirements(views, [req], target, deps=deps):
            if (cand.name, str(cand.version)) not in seen:
                seen.add((cand.name, str(cand.version)))
                chosen.append(cand)
    for cand in chosen:
        if cand.view.cfg.name != source:
            raise UserError(
                f"{cand.name} resolves to source {cand.view.cfg.name!r}, not {source!r} "
                "(each project comes from one source)",
                f"import it with --from {cand.view.cfg.name}, or fence the sources with "
                "--only")
    root_keys = _root_keys(home, source)
    out: list[ImportedFile] = []
    for cand in chosen:
        view = cand.view
        proj = view.project(cand.name)
        entries = [f for f in proj.files if f.version == cand.entry.version]
        for entry in sorted(entries, key=lambda f: f.filename):
            path = cached_file(home, view, cand.name, entry, limits)
            out.append(ImportedFile(path, cand.name, entry.version, entry.filename,
                                    entry.sha256, entry.size, source, cfg.repo_name,
                                    root_keys))
    return out


def _root_keys(home: Home, source: str) -> tuple[str, ...]:
    """The root key fingerprints of the keyring's (verified, newest) root."""
    import json

    try:
        doc = json.loads((home.keyring(source) / "root.json").read_bytes())
        return tuple(sorted(str(k) for k in doc["signed"]["roles"]["root"]["keyids"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"keyring of source {source!r} is unreadable",
                        "remove the source and add it again with its key") from None
