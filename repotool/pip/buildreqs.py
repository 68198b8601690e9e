"""Build requirements of the sdists an install would build, checked before pip runs.

pip builds an sdist in an isolated environment after installing its PEP 518 build
requirements (``[build-system] requires`` in its ``pyproject.toml``; PEP 517's default
``setuptools>=40.8.0`` when there is none). Through the verified proxy those come from
the sources like any other project, so a build requirement no source provides used to
fail deep inside pip's output. ``check_build_requirements`` finds it first:

1. Walk the requirements as pip would start to: the project's source by the one rule
   (``queries.resolve``), the highest version the specifier allows, a compatible wheel
   of it before its sdist (tags, Requires-Python and markers of the *target*
   interpreter), its dependencies from the signed index. Something already installed
   that satisfies a requirement is not walked (pip keeps it).
2. For each sdist on that walk, read ``pyproject.toml`` from the verified file (the
   source's file cache, re-hashed against the signed index), with a size cap and
   tomllib; malformed is a clear refusal.
3. Each build requirement (and, in turn, its dependencies and the build requirements
   of its sdists) must resolve to a source with a file that satisfies it; else
   ``UserError``: "demo-sdist 1.0 needs build requirement 'setuptools>=61' which no
   source provides".

The walk is a forecast, not pip's resolver: where it cannot tell (a runtime
dependency no source has, a conflict pip would backtrack over) it stops walking that
branch and leaves the verdict to pip; it refuses only on a missing build requirement.
"""

from __future__ import annotations

import tarfile
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from repotool.client.download import cached_file
from repotool.client.home import Home
from repotool.client.views import Views, resolve
from repotool.errors import RepotoolError, UserError
from repotool.transport.limits import Limits

__all__ = ["DEFAULT_BUILD_REQUIRES", "Target", "build_requires", "check_build_requirements"]

DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)  # PEP 517/518, without [build-system]
pyproject_max_length = 1024 * 1024  # bytes of pyproject.toml read from an sdist
sdist_members_max = 100_000  # archive members looked through for pyproject.toml
walk_steps_max = 10_000  # requirements visited, against pathological graphs
_missing_hint = "add a source that provides it, or ask the publisher for a wheel"


@dataclass(frozen=True)
class Target:
    """The interpreter pip installs for: marker environment, wheel tags, installed."""

    markers: dict[str, str]
    tags: frozenset[str]
    installed: dict[str, str] = field(default_factory=dict)  # canonical name -> version


def _open_pyproject(path: Path, filename: str) -> bytes | None:
    """The top-level ``pyproject.toml`` of an sdist archive, or None if it has none.

    Raises:
        UserError: the archive cannot be read or the file is too large.
    """
    def member_ok(name: str) -> bool:
        parts = name.split("/")
        return len(parts) == 2 and parts[1] == "pyproject.toml" and bool(parts[0])

    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist()[:sdist_members_max]:
                    if member_ok(info.filename):
                        if info.file_size > pyproject_max_length:
                            raise UserError(f"{filename}: pyproject.toml is larger than "
                                            f"{pyproject_max_length} bytes")
                        with zf.open(info) as f:
                            return f.read(pyproject_max_length + 1)[:pyproject_max_length]
            return None
        with tarfile.open(path, mode="r|*") as tf:
            for n, member in enumerate(tf):
                if n >= sdist_members_max:
                    break
                if member.isfile() and member_ok(member.name):
                    if member.size > pyproject_max_length:
                        raise UserError(f"{filename}: pyproject.toml is larger than "
                                        f"{pyproject_max_length} bytes")
                    member_file = tf.extractfile(member)
                    return member_file.read() if member_file is not None else None
        return None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"cannot read sdist {filename}: {e}") from None


def build_requires(data: bytes | None, what: str) -> list[str]:
    """``[build-system] requires`` of a pyproject.toml (the default when it has none).

    Raises:
        UserError: not UTF-8 TOML, or a ``[build-system]`` table without a list of
            strings in ``requires`` (pip refuses those too).
    """
    if data is None:
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{what}: its pyproject.toml is not valid TOML ({e})",
                        "tell the publisher; pip cannot build it either") from None
    table = doc.get("build-system")
    if table is None:
        return list(DEFAULT_BUILD_REQUIRES)
    reqs = table.get("requires") if isinstance(table, dict) else None
    if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
        raise UserError(f"{what}: its pyproject.toml has no list of strings in "
                        "[build-system] requires", "tell the publisher; pip cannot build it "
                        "either")
    return list(reqs)


class _Walk:
    def __init__(self, home: Home, views: Views, limits: Limits, target: Target,
                 ignore_installed: bool, report: Callable[[str], None] | None) -> None:
        self.home, self.views, self.limits, self.target = home, views, limits, target
        self.ignore_installed = ignore_installed
        self.report = report
        self.seen: set[tuple[str, str, str | None]] = set()
        self.checked_sdists: set[str] = set()
        self.steps = 0

    def applies(self, req: Requirement, extras: frozenset[str]) -> bool:
        if req.marker is None:
            return True
        return any(req.marker.evaluate({**self.target.markers, "extra": e})
                   for e in (extras or {""}))

    def best(self, proj: Any, req: Requirement) -> Any:
        """The file pip would take for ``req`` first: highest allowed version, a
        compatible wheel before the sdist; yanked only when pinned with ==."""
        pinned = any(s.operator in ("==", "===") for s in req.specifier)
        py = self.target.markers.get("python_full_version", "")
        best: tuple[Any, ...] | None = None
        for f in proj.files:
            try:
                v = Version(f.version)
                if f.requires_python and py and not SpecifierSet(f.requires_python) \
                        .contains(py, prereleases=True):
                    continue
            except (InvalidVersion, InvalidSpecifier):
                continue
            if f.yanked is not False and not pinned:
                continue
            if not req.specifier.contains(v, prereleases=True if pinned else None):
                continue
            if f.is_wheel:
                try:
                    tags = {str(t) for t in parse_wheel_filename(f.filename)[3]}
                except ValueError:
                    continue
                if not tags & self.target.tags:
                    continue
                key = (v, 1)
            else:
                key = (v, 0)
            if best is None or key > best[0]:
                best = (key, f)
        return best[1] if best else None

    def visit(self, req: Requirement, extras: frozenset[str], build_of: str | None) -> None:
        """Walk ``req``; ``build_of`` names the sdist whose build needs it, if any.

        Raises:
            UserError, VerificationError: a build requirement cannot be provided.
        """
        self.steps += 1
        key = (canonicalize_name(req.name), str(req.specifier) + str(sorted(req.extras)),
               build_of)
        if key in self.seen or self.steps > walk_steps_max:
            return
        self.seen.add(key)
        name = key[0]
        if build_of is None and not self.ignore_installed:
            have = self.target.installed.get(name)
            try:
                if have is not None and req.specifier.contains(Version(have),
                                                               prereleases=True):
                    return  # pip keeps what is installed
            except InvalidVersion:
                pass
        try:
            res = resolve(self.views, name)
            proj = res.source.project(name)
        except RepotoolError as e:
            if build_of is None:
                return  # pip will say so, through the proxy
            if e.message.startswith("no source provides"):  # and none is fenced or failed
                raise UserError(f"{build_of} needs build requirement {str(req)!r} which no "
                                "source provides", e.hint or _missing_hint) from None
            raise type(e)(f"{build_of} needs build requirement {str(req)!r}: {e.message}",
                          e.hint) from None
        entry = self.best(proj, req) if proj is not None else None
        if entry is None:
            if build_of is None:
                return
            raise UserError(
                f"{build_of} needs build requirement {str(req)!r} which no source provides",
                f"source {res.source.cfg.name!r} has {name} but no file that satisfies it"
                if proj is not None else _missing_hint)
        if not entry.is_wheel and entry.sha256 not in self.checked_sdists:
            self.checked_sdists.add(entry.sha256)
            what = f"{name} {entry.version}"
            path = cached_file(self.home, res.source, name, entry, self.limits,
                               report=self.report)
            for text in build_requires(_open_pyproject(path, entry.filename), what):
                breq = _parse(text, what)
                if self.applies(breq, frozenset()):
                    self.visit(breq, frozenset(breq.extras), what)
        for text in entry.requires_dist:
            try:
                dep = Requirement(text)
            except InvalidRequirement:
                continue
            if self.applies(dep, extras):
                self.visit(dep, frozenset(dep.extras), build_of)


def _parse(text: str, what: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement:
        raise UserError(f"{what}: invalid build requirement {text!r} in its pyproject.toml",
                        "tell the publisher; pip cannot build it either") from None


def check_build_requirements(home: Home, views: Views, requirements: list[str],
                             limits: Limits, target: Target, *, ignore_installed: bool = False,
                             report: Callable[[str], None] | None = None) -> None:
    """Refuse, before pip runs, an install whose sdists need a build requirement that
    no source provides (module docstring).

    Raises:
        UserError: a build requirement is missing, or an sdist's pyproject.toml is
            malformed or unreadable.
        VerificationError: a build requirement is fenced away (``--only``), or an sdist
            failed verification when fetched.
    """
    walk = _Walk(home, views, limits, target, ignore_installed, report)
    for line in requirements:
        req = Requirement(line.split(" --hash=")[0])
        if walk.applies(req, frozenset()):
            walk.visit(req, frozenset(req.extras), None)


def probe_code() -> str:
    """Python run by the target interpreter: what ``Target`` and pip's version need."""
    return _PROBE


_PROBE = """
import json, sys
out = {"prefix": sys.prefix}
try:
    import pip
    out["pip"] = pip.__version__
except Exception:
    pass
try:
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.tags import sys_tags
    out["markers"] = {k: str(v) for k, v in default_environment().items()}
    out["tags"] = [str(t) for t in sys_tags()]
except Exception:
    pass
try:
    import importlib.metadata as m
    out["installed"] = {d.metadata["Name"]: d.version for d in m.distributions()
                        if d.metadata["Name"]}
except Exception:
    pass
sys.stdout.write(json.dumps(out))
"""


def target_from_probe(doc: dict[str, Any]) -> Target:
    """A ``Target`` from the probe's output; this interpreter's values fill gaps."""
    from packaging.markers import default_environment
    from packaging.tags import sys_tags

    markers = doc.get("markers")
    if not isinstance(markers, dict):
        markers = {k: str(v) for k, v in default_environment().items()}
    tags = doc.get("tags")
    if not isinstance(tags, list):
        tags = [str(t) for t in sys_tags()]
    installed = doc.get("installed")
    return Target({str(k): str(v) for k, v in markers.items()},
                  frozenset(str(t) for t in tags),
                  {canonicalize_name(str(k)): str(v)
                   for k, v in (installed.items() if isinstance(installed, dict) else [])})

