"""The interpreter that ``download`` chooses files for: wheel tags, version and markers.

A ``Target`` answers three questions about a file of the signed index, as pip would for
that interpreter: does a wheel's tag fit (and how specific is it), does the file's
Requires-Python admit the target's version, and does a marker (with ``extra``) hold in
the target's environment. Three ways to get one, as ``pip download`` offers them:

* ``Target.current()``: the interpreter running repotool;
* ``Target.of_interpreter(PATH)``: one subprocess asks that interpreter for its tags,
  version and marker environment (``packaging.tags`` if it can import it, or pip's
  vendored copy, else derived here from its ``sysconfig``);
* ``target(..., platforms=[...], python_version="3.8")``: cross-downloading, the tags
  recomputed for those platforms and that version. Unlike pip, the marker environment
  follows too (``sys_platform``, ``os_name``, ``platform_system`` and
  ``platform_machine`` from the first ``--platform``; ``python_version`` and
  ``python_full_version`` from ``--python-version``), so a dependency marked
  ``sys_platform == "win32"`` is followed for a ``win_amd64`` target.

Example::

    t = target(platforms=["manylinux2014_aarch64"], python_version="3.12")
    t.wheel_rank("x-1.0-cp312-cp312-manylinux_2_17_aarch64.whl")   # an int: fits
    t.python_ok(">=3.8"), t.marker_ok(Marker('platform_machine == "aarch64"'))
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker, default_environment
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import (
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    mac_platforms,
    sys_tags,
)
from packaging.tags import platform_tags as local_platform_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from repotool.errors import UsageError, UserError

__all__ = ["Target", "expand_platform", "parse_python_version", "target"]

_probe_timeout = 60.0  # seconds for the --python interpreter to answer
_probe_output_max_length = 4 * 1024 * 1024  # bytes of its answer (~40 KB is usual)
_tags_max_count = 20_000  # tags accepted from an interpreter's answer
_PLATFORM = re.compile(r"^[a-z0-9_]{1,100}$")
_INTERPRETERS = {"cpython": "cp", "pypy": "pp", "ironpython": "ip", "jython": "jy"}
_MARKER_KEYS = (
    "implementation_name", "implementation_version", "os_name", "platform_machine",
    "platform_release", "platform_system", "platform_version", "python_full_version",
    "platform_python_implementation", "python_version", "sys_platform",
)

# Run by the --python interpreter with -I: stdlib only, plus packaging if it has it.
# The marker environment is computed as packaging.markers.default_environment() does.
_PROBE = r"""
import json, os, platform, sys, sysconfig
def fmt(i):
    v = "%d.%d.%d" % (i.major, i.minor, i.micro)
    return v if i.releaselevel == "final" else v + i.releaselevel[0] + str(i.serial)
env = {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
tags = None
for mod in ("packaging.tags", "pip._vendor.packaging.tags"):
    try:
        tags = [str(t) for t in __import__(mod, fromlist=["sys_tags"]).sys_tags()]
        break
    except Exception:
        pass
sys.stdout.write(json.dumps({"env": env, "tags": tags, "platform": sysconfig.get_platform(),
                             "version": list(sys.version_info[:2])}))
"""


@dataclass(frozen=True)
class Target:
    """What files are chosen for.

    Attributes:
        python_version: the version Requires-Python is checked against.
        tags: wheel tags the target accepts, most specific first.
        env: the marker environment (without ``extra``).
    """

    python_version: Version
    tags: tuple[Tag, ...]
    env: Mapping[str, str]
    _rank: dict[Tag, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rank: dict[Tag, int] = {}
        for i, t in enumerate(self.tags):
            rank.setdefault(t, i)
        object.__setattr__(self, "_rank", rank)

    @property
    def label(self) -> str:
        """``Python 3.11.7 (cp311-cp311-manylinux_2_36_x86_64)``, for messages."""
        best = f" ({self.tags[0]})" if self.tags else ""
        return f"Python {self.python_version}{best}"

    @classmethod
    def current(cls) -> Target:
        env = {k: str(v) for k, v in default_environment().items()}
        return cls(_version_of(env["python_full_version"]), tuple(sys_tags()), env)

    @classmethod
    def of_interpreter(cls, python: Path) -> Target:
        """Ask ``python`` (one subprocess) for its tags, version and markers.

        Raises:
            UserError: it cannot be run or does not answer as a Python interpreter.
        """
        exe = _interpreter_path(python)
        hint = "give --python a Python interpreter (a venv's bin/python)"
        try:
            proc = subprocess.run(
                [str(exe), "-I", "-c", _PROBE], capture_output=True, timeout=_probe_timeout,
                stdin=subprocess.DEVNULL, check=False,
            )
        except subprocess.TimeoutExpired:
            raise UserError(f"{str(exe)!r} did not answer within {_probe_timeout:g} s",
                            hint) from None
        except OSError as e:
            raise UserError(f"cannot run {str(exe)!r}: {e.strerror or e}", hint) from None
        if proc.returncode != 0:
            last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
            raise UserError(f"{str(exe)!r} failed: {last[:200]}", hint)
        try:
            if len(proc.stdout) > _probe_output_max_length:
                raise ValueError("answer too long")
            return cls._from_probe(json.loads(proc.stdout))
        except (ValueError, TypeError, KeyError, InvalidVersion):
            raise UserError(f"{str(exe)!r} did not answer as a Python interpreter", hint) \
                from None

    @classmethod
    def _from_probe(cls, doc: dict[str, Any]) -> Target:
        env = doc["env"]
        if not (isinstance(env, dict) and all(isinstance(env.get(k), str) for k in _MARKER_KEYS)):
            raise ValueError("marker environment")
        env = {k: env[k] for k in _MARKER_KEYS}
        raw = doc["tags"]
        if raw is not None:
            if not isinstance(raw, list) or len(raw) > _tags_max_count:
                raise ValueError("tags")
            tags = tuple(_tag(t) for t in raw)
        else:  # neither packaging nor pip there: derive the tags from sysconfig's answer
            plat, ver = doc["platform"], doc["version"]
            if not (isinstance(plat, str) and isinstance(ver, list) and len(ver) == 2
                    and all(type(v) is int for v in ver)):
                raise ValueError("platform")
            local = _normalize_platform(_sysconfig_platform())
            mine = _normalize_platform(plat)
            platforms = list(local_platform_tags()) if mine == local else [mine]
            tags = _tags_for(env["implementation_name"], (ver[0], ver[1]), None, platforms)
        return cls(_version_of(env["python_full_version"]), tags, env)

    def wheel_rank(self, filename: str) -> int | None:
        """How specific the wheel is for the target (lower is better), None if it does not
        fit (or its name does not parse)."""
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            return None
        return min((self._rank[t] for t in tags if t in self._rank), default=None)

    def python_ok(self, requires_python: str | None) -> bool:
        """Whether the target's version satisfies a file's Requires-Python (an invalid
        specifier admits nothing: the file is skipped, never guessed about)."""
        if not requires_python:
            return True
        spec = _specifier(requires_python)
        return spec is not None and spec.contains(self.python_version, prereleases=True)

    def marker_ok(self, marker: Marker, extras: Iterable[str] = ()) -> bool:
        """Whether ``marker`` holds in the target's environment, for no extra or for any
        of ``extras``."""
        names: list[str] = [canonicalize_name(e) for e in extras] or [""]
        return any(marker.evaluate({**self.env, "extra": e}) for e in names)


def target(
    python: Path | None = None, *, platforms: Sequence[str] = (),
    python_version: str | None = None,
) -> Target:
    """The target of ``download --python/--platform/--python-version``.

    Raises:
        UsageError: a malformed ``--platform`` or ``--python-version``.
        UserError: ``--python`` cannot be asked.
    """
    expanded = [p for tag in platforms for p in expand_platform(tag)]
    version = parse_python_version(python_version) if python_version else None
    base = Target.of_interpreter(python) if python else Target.current()
    if not expanded and version is None:
        return base
    env = dict(base.env)
    if version is None:
        release = base.python_version.release
        short = (release[0], release[1] if len(release) > 1 else 0)
        abis: list[str] | None = _unique(t.abi for t in base.tags if t.abi not in ("abi3", "none"))
    else:
        short, abis = (version[0], version[1]), None
        full = ".".join(map(str, version))
        env.update(python_version=f"{version[0]}.{version[1]}", python_full_version=full)
        if env.get("implementation_name") == "cpython":
            env["implementation_version"] = full
    if expanded:
        env.update(_platform_env(expanded[0]))
    plats = expanded or _unique(t.platform for t in base.tags if t.platform != "any")
    tags = _tags_for(env["implementation_name"], short, abis, plats)
    return Target(_version_of(env["python_full_version"]), tags, env)


def parse_python_version(text: str) -> tuple[int, ...]:
    """``3``, ``3.8``, ``3.8.1`` or pip's ``38`` → (3, 8, 0)-style tuple (micro 0 if absent).

    Raises:
        UsageError: anything else.
    """
    parts: tuple[int, ...]
    if re.fullmatch(r"\d{2,3}", text):
        parts = (int(text[0]), int(text[1:]))
    elif re.fullmatch(r"\d{1,2}(\.\d{1,3}){0,2}", text):
        parts = tuple(int(p) for p in text.split("."))
    else:
        raise UsageError(f"invalid --python-version {text!r}", "e.g. 3.12 or 3.12.1")
    return (*parts, 0, 0)[:3] if len(parts) < 3 else parts


def expand_platform(tag: str) -> list[str]:
    """A ``--platform`` tag and the older ones a system of that kind also runs, most
    specific first: ``manylinux_2_17_x86_64`` (or ``manylinux2014_x86_64``) brings every
    ``manylinux_2_Y`` down to 2.5 and the legacy aliases, ``musllinux_1_2_*`` the older
    musl ones, ``macosx_11_0_arm64`` the older macOS versions (as ``packaging.tags``).

    Raises:
        UsageError: not a platform tag.
    """
    norm = _normalize_platform(tag)
    if not _PLATFORM.match(norm):
        raise UsageError(f"invalid --platform {tag!r}", "e.g. manylinux_2_17_x86_64 or win_amd64")
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    alias = {v: k for k, v in legacy.items()}
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", norm) or re.fullmatch(
        r"(manylinux1|manylinux2010|manylinux2014)_(\w+)", norm)
    if m:
        top, arch = m.group(1), m.group(2)
        glibc = legacy.get(top) or int(top)
        out = []
        for minor in range(glibc, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            if minor in alias:
                out.append(f"{alias[minor]}_{arch}")
        return out
    if m := re.fullmatch(r"musllinux_1_(\d+)_(\w+)", norm):
        return [f"musllinux_1_{n}_{m.group(2)}" for n in range(int(m.group(1)), -1, -1)]
    if m := re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", norm):
        version = (int(m.group(1)), int(m.group(2)))
        return list(mac_platforms(version, m.group(3))) or [norm]
    return [norm]


# ---- helpers ------------------------------------------------------------------------------


def _interpreter_path(python: Path) -> Path:
    """A bare name is looked up on PATH (as ``install --python`` does)."""
    text = str(python)
    if os.sep not in text and (found := shutil.which(text)):
        return Path(found)
    return Path(os.path.abspath(text))


def _tags_for(
    implementation: str, version: tuple[int, int], abis: list[str] | None,
    platforms: list[str],
) -> tuple[Tag, ...]:
    """The tags of an interpreter, as pip's ``get_supported`` builds them."""
    short = _INTERPRETERS.get(implementation, implementation)
    interp = f"{short}{version[0]}{version[1]}"
    if short == "cp":
        first = list(cpython_tags(version, abis, platforms))
    else:
        first = list(generic_tags(interp, abis or ["none"], platforms))
    return tuple(_unique([*first, *compatible_tags(version, interp, platforms)]))


def _platform_env(platform: str) -> dict[str, str]:
    """The marker variables a platform tag determines (the rest stay the base's)."""
    if platform.startswith("win"):
        machine = {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64"}.get(platform)
        env = {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows"}
        return {**env, "platform_machine": machine} if machine else env
    if m := re.fullmatch(r"macosx_\d+_\d+_(\w+)", platform):
        env = {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin"}
        arch = m.group(1)
        return {**env, "platform_machine": arch} if arch in ("x86_64", "arm64") else env
    linux = r"(?:manylinux(?:_\d+_\d+|1|2010|2014)|musllinux_\d+_\d+|linux)_(\w+)"
    if m := re.fullmatch(linux, platform):
        return {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                "platform_machine": m.group(1)}
    return {}


def _normalize_platform(tag: str) -> str:
    return tag.strip().lower().replace("-", "_").replace(".", "_")


def _sysconfig_platform() -> str:
    import sysconfig

    return sysconfig.get_platform()


def _tag(text: Any) -> Tag:
    if not isinstance(text, str):
        raise ValueError("tag")
    parts = text.split("-")
    if len(parts) != 3 or not all(parts):
        raise ValueError("tag")
    return Tag(*parts)


def _version_of(text: str) -> Version:
    """``3.11.7`` (a build may say ``3.11.7+``: the numeric part counts)."""
    m = re.match(r"\d+(\.\d+)*", text)
    if not m:
        raise InvalidVersion(text)
    return Version(m.group(0))


@functools.lru_cache(maxsize=1024)
def _specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))
