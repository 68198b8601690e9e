"""Running pip: its environment (no configuration, no ``PIP_*``/``UV_*`` variables, the
proxy as the only index), the interpreter and its pip, a working directory inside
repotool's home, and repotool's own dependencies (never replaced under it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from repotool.client.home import Home
from repotool.errors import UserError
from repotool.pip.buildreqs import Target, probe_code, target_from_probe

__all__ = [
    "REPORT_MIN_PIP", "PipProbe", "interpreter", "own_dependencies", "pip_environment", "probe",
    "run_pip", "same_prefix", "workspace",
]

REPORT_MIN_PIP = Version("22.2")  # --report and --dry-run


def pip_environment(workdir: Path, index_url: str | None = None) -> dict[str, str]:
    """The environment for pip: ours without ``PIP_*`` and ``UV_*``, no config file,
    temporary files in repotool's home.

    With ``index_url`` (the proxy), every pip or uv that a build backend starts on its
    own (setuptools' ``fetch_build_eggs``, a backend running ``pip download``) gets the
    proxy as its only index, never the public default: ``PIP_INDEX_URL`` and
    ``UV_DEFAULT_INDEX``/``UV_INDEX_URL`` are set, no extra index, find-links or
    ``PIP_NO_INDEX`` is, and uv reads no configuration file.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("PIP_", "UV_"))}
    no_proxy = ",".join(x for x in ("127.0.0.1", "localhost", env.get("NO_PROXY")) if x)
    env.update({
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf at all (--isolated keeps global ones)
        "PIP_NO_CACHE_DIR": "1",  # for the build-dependency pip (not --isolated)
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "UV_NO_CONFIG": "1",  # no uv.toml or [tool.uv] adds an index
        "UV_NO_CACHE": "1",  # nothing written outside the home
        "TMPDIR": str(workdir),
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    })
    if index_url is not None:
        env.update({"PIP_INDEX_URL": index_url, "UV_DEFAULT_INDEX": index_url,
                    "UV_INDEX_URL": index_url})
    return env


@dataclass(frozen=True)
class PipProbe:
    pip: Version
    prefix: str
    target: Target


def probe(python: Path, env: dict[str, str], cwd: Path) -> PipProbe:
    """pip's version, ``sys.prefix`` and the install target of ``python``.

    Raises:
        UserError: ``python`` cannot be run or has no pip.
    """
    try:
        proc = subprocess.run([str(python), "-c", probe_code()], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"cannot run {str(python)!r}: {e}",
                        "give --python a Python interpreter") from None
    try:
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UserError(f"cannot run {str(python)!r} as a Python interpreter",
                        "give --python a Python interpreter")
    if "pip" not in doc:
        raise UserError(f"{str(python)!r} has no usable pip",
                        f"run '{python} -m ensurepip --upgrade'")
    try:
        version = Version(str(doc["pip"]))
    except InvalidVersion:
        raise UserError(f"{str(python)!r} reports pip version {doc['pip']!r}") from None
    return PipProbe(version, str(doc.get("prefix", "")), target_from_probe(doc))


def own_dependencies() -> set[str]:
    """repotool and every distribution it needs, transitively (canonical names), from
    the installed metadata: what an install into its own environment must not replace."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement

    env = {k: str(v) for k, v in default_environment().items()}
    seen: set[tuple[str, str]] = set()  # (distribution, extra or "")
    queue: list[tuple[str, str]] = [("repotool", "")]
    while queue:
        name, extra = queue.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in reqs:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({**env, "extra": extra}):
                dep = canonicalize_name(req.name)
                queue += [(dep, ""), *((dep, canonicalize_name(e)) for e in req.extras)]
    return {name for name, _ in seen}


def same_prefix(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def run_pip(python: Path, args: list[str], *, env: dict[str, str], cwd: Path,
            echo: Callable[[str], object]) -> int:
    """Run ``python -m pip ARGS``, passing each line of its output to ``echo``."""
    proc = subprocess.Popen([str(python), "-m", "pip", *args], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            echo(raw.decode("utf-8", errors="replace"))
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: do not leave pip running
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def interpreter(python: Path | None) -> Path:
    """``--python`` as an absolute path (pip runs elsewhere); a bare name is looked up
    on PATH. Symlinks are kept: a venv's python is a link to the base interpreter."""
    if python is None:
        return Path(sys.executable)
    text = str(python)
    if os.sep not in text and (found := shutil.which(text)):
        return Path(found)
    return Path(os.path.abspath(text))


@contextlib.contextmanager
def workspace(home: Home) -> Iterator[Path]:
    """A private temporary directory inside repotool's home, removed afterwards."""
    base = home.root / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="pip-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
