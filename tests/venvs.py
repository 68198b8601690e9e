"""Throw-away virtual environments for end-to-end tests (offline).

Public API::

    make_venv(path, *, fresh=False) -> Path      # the venv's python
    venv_python(venv_dir) -> Path
    pip_env(extra=None) -> dict[str, str]        # hermetic environment for pip
    run_pip(python, *args, env=None, check=True, timeout=300.0, cwd=None)
        -> subprocess.CompletedProcess[str]
    run_python(python, code, *, env=None, check=True, timeout=120.0, cwd=None)
        -> subprocess.CompletedProcess[str]
    pip_freeze(python, *, all=False) -> dict[str, str]   # canonical name -> version

``python -m venv`` with ensurepip takes ~5 s here, so ``make_venv`` builds one
template venv per process (with ``python -m venv``; pip comes from ensurepip,
no network) and copies it (~0.1 s), rewriting the absolute paths in
``pyvenv.cfg`` and ``bin/`` scripts.  ``fresh=True`` runs ``python -m venv``
directly into ``path``.

The machine's environment and pip config files are NOT hermetic: this machine
sets PIP_FIND_LINKS, PIP_CERT, REQUESTS_CA_BUNDLE ... and has pip.conf files
adding find-links / extra-index-url / constraints.  ``pip_env`` drops all of
that (PIP_CONFIG_FILE=os.devnull disables every config file), so a test's pip
only sees what the test passes on the command line or in ``extra``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "make_venv",
    "pip_env",
    "pip_freeze",
    "run_pip",
    "run_python",
    "venv_python",
]

# Like `pip freeze` without --all.
_FREEZE_HIDDEN = {"pip", "setuptools", "wheel", "distribute"}

# Variables that make pip/requests/ssl behave differently from a clean machine.
_DROPPED_VARS = {
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
}

_template_lock = threading.Lock()
_template: Path | None = None


def venv_python(venv_dir: Path) -> Path:
    venv_dir = Path(venv_dir)
    if sys.platform == "win32":  # pragma: no cover
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def pip_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of os.environ made hermetic for pip, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in _DROPPED_VARS
    }
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,  # ignore every pip.conf
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_NO_PYTHON_VERSION_WARNING": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
            "PIP_PROGRESS_BAR": "off",
            "PYTHONNOUSERSITE": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    if extra:
        env.update(extra)
    return env


def _neutral_cwd(python: Path) -> Path:
    # ``python -c``/``-m`` put the cwd on sys.path: run from the venv's own
    # directory so a checkout's package (or its *.egg-info) is not picked up
    # instead of what is installed in the venv.
    return Path(python).absolute().parent.parent


def _run(
    cmd: list[str],
    *,
    env: Mapping[str, str] | None,
    check: bool,
    timeout: float,
    cwd: Path,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=pip_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit code {proc.returncode}: {cmd}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def run_pip(
    python: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 300.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m pip *args`` in a hermetic environment (see ``pip_env``).

    ``env`` adds variables (e.g. ``{"PIP_CERT": ca_file}``).  With ``check``
    a failure raises AssertionError showing pip's output.  The default ``cwd``
    is the venv's directory, never the caller's (see ``_neutral_cwd``).
    """
    return _run(
        [str(python), "-m", "pip", *args],
        env=env,
        check=check,
        timeout=timeout,
        cwd=cwd or _neutral_cwd(python),
    )


def run_python(
    python: Path,
    code: str,
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` in the same hermetic environment
    (default ``cwd``: the venv's directory)."""
    return _run(
        [str(python), "-c", code],
        env=env,
        check=check,
        timeout=timeout,
        cwd=cwd or _neutral_cwd(python),
    )


def _create_venv(path: Path) -> Path:
    # sys.executable may itself be a venv's python: venv uses the base one.
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [sys.executable, "-m", "venv", str(path)],
        env=None,
        check=True,
        timeout=300.0,
        cwd=path.parent,
    )
    python = venv_python(path)
    if not python.exists():  # pragma: no cover
        raise AssertionError(f"venv creation did not produce {python}")
    return python


def _template_venv() -> Path:
    global _template
    with _template_lock:
        if _template is None or not venv_python(_template).exists():
            holder = Path(tempfile.mkdtemp(prefix="repotool-venv-template-"))
            atexit.register(shutil.rmtree, holder, ignore_errors=True)
            _create_venv(holder / "venv")
            _template = holder / "venv"
        return _template


def _clone_venv(template: Path, path: Path) -> Path:
    shutil.copytree(template, path, symlinks=True, dirs_exist_ok=True)
    old, new = os.fsencode(str(template)), os.fsencode(str(path))
    bin_dir = venv_python(path).parent
    candidates = [path / "pyvenv.cfg", *bin_dir.iterdir()]
    for file in candidates:
        if file.is_symlink() or not file.is_file():
            continue
        data = file.read_bytes()
        if old in data:
            file.write_bytes(data.replace(old, new))
    return venv_python(path)


def make_venv(path: Path, *, fresh: bool = False) -> Path:
    """Create a virtual environment with pip (from ensurepip, offline) at
    ``path`` and return its python.

    By default a per-process template venv is copied (fast); ``fresh=True``
    runs ``python -m venv`` into ``path`` itself (~5 s).
    """
    path = Path(path).absolute()
    if fresh:
        return _create_venv(path)
    return _clone_venv(_template_venv(), path)


_FREEZE_CODE = """
import importlib.metadata as m, json
found = {}
for dist in m.distributions():
    name = dist.metadata["Name"]
    if name and name not in found:
        found[name] = dist.version
print(json.dumps(found))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_freeze(python: Path, *, all: bool = False) -> dict[str, str]:
    """What is installed in ``python``'s environment: {canonical name: version}.

    Names are canonicalized (PEP 503: lower case, runs of ``-_.`` -> ``-``).
    Like ``pip freeze``, pip/setuptools/wheel/distribute are left out unless
    ``all=True``.  Reads importlib.metadata in the venv (much faster than
    starting pip, and unaffected by pip's "name @ file://" freeze format).
    """
    proc = run_python(python, _FREEZE_CODE)
    raw: dict[str, str] = json.loads(proc.stdout)
    result = {_canonical(name): version for name, version in raw.items()}
    if not all:
        for hidden in _FREEZE_HIDDEN:
            result.pop(hidden, None)
    return dict(sorted(result.items()))
