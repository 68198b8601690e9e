"""``repotool install`` and what pip does besides installing: building sdists (their
build requirements, the pip a build backend starts itself) and installing into
repotool's own environment. REAL pip, REAL venvs, real sdists with in-tree backends."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sysconfig
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist
from conftest import cli
from venvs import make_venv, pip_freeze

from repotool.errors import UserError
from repotool.pip.buildreqs import build_requires
from repotool.pip.environment import own_dependencies, pip_environment


def add_source(home: Path, name: str, pub: Any) -> None:
    r = cli("--home", home, "source", "add", name, pub.root, "--key", pub.key.public)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output


def rewrite_sdist(sdist: Path, edit: Callable[[str, bytes], bytes | None]) -> None:
    """Rewrite the members of ``sdist``: ``edit(name, data)`` returns new bytes, or
    None to drop the member."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(sdist.read_bytes()))) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            f = src.extractfile(member)
            data = edit(member.name, f.read() if f else b"")
            if data is None:
                continue
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    sdist.write_bytes(gzip.compress(out.getvalue(), mtime=0))


def set_build_system(sdist: Path, table: str | None) -> None:
    """Replace the [build-system] table of the sdist's pyproject.toml (None: drop it)."""
    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith("/pyproject.toml"):
            return data
        text = data.decode()
        rest = text.partition("[project]")[2]
        return ((table + "\n\n" if table else "") + "[project]" + rest).encode()
    rewrite_sdist(sdist, edit)


# ---- pip started by a build backend ------------------------------------------------------


_RECORDER = '''

def _record():
    import json, os, subprocess, sys
    seen = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_"))}
    if not os.path.exists(RECORD):
        # as setuptools' fetch_build_eggs does: pip, on its own, with no --index-url
        code = ("import sys; sys.path.insert(0, %r); "
                "from pip._internal.cli.main import main; sys.exit(main())" % SITE)
        proc = subprocess.run([sys.executable, "-c", code, "download", "--no-deps",
                               "--retries", "0", "--timeout", "5", "-d", DOWNLOADS,
                               "buildhelper"], capture_output=True, text=True)
        seen["pip download exit"] = proc.returncode
        seen["pip download output"] = proc.stdout + proc.stderr
        with open(RECORD, "w") as f:
            json.dump(seen, f)


_record()
'''


def test_build_backend_pip_uses_the_proxy_not_the_public_index(
        make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"buildhelper": ["1.0"]})
    sdist = build_sdist(pub.dist, "recorder", "1.0")
    py = make_venv(tmp_path / "venv")
    site = sysconfig.get_paths(vars={"base": str(py.parent.parent),
                                     "platbase": str(py.parent.parent)})["purelib"]
    record, downloads = tmp_path / "record.json", tmp_path / "downloads"
    consts = f"RECORD = {str(record)!r}\nDOWNLOADS = {str(downloads)!r}\nSITE = {site!r}\n"
    rewrite_sdist(sdist, lambda name, data: data + (consts + _RECORDER).encode()
                  if name.endswith("/backend.py") else data)
    pub.repo.add([sdist], now=datetime.now(UTC))
    pub.sign()
    add_source(home, "demo", pub)
    hostile = {"PIP_NO_INDEX": "1", "PIP_EXTRA_INDEX_URL": "http://public.invalid/simple/",
               "PIP_FIND_LINKS": str(tmp_path), "UV_INDEX": "http://public.invalid/simple/",
               "UV_EXTRA_INDEX_URL": "http://public.invalid/simple/",
               "UV_FIND_LINKS": str(tmp_path), "UV_INDEX_URL": "http://public.invalid/"}

    r = cli("--home", home, "install", "--python", py, "recorder", env=hostile)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"recorder": "1.0"}
    seen = json.loads(record.read_text())
    proxy = re.fullmatch(r"http://127\.0\.0\.1:\d+/simple/", seen["PIP_INDEX_URL"])
    assert proxy, seen
    assert seen["UV_DEFAULT_INDEX"] == seen["UV_INDEX_URL"] == seen["PIP_INDEX_URL"]
    for name in ("PIP_NO_INDEX", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "UV_INDEX",
                 "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS"):
        assert name not in seen, name
    # the backend's own pip really got the verified file through repotool's proxy
    assert seen["pip download exit"] == 0, seen["pip download output"]
    assert [p.name for p in downloads.iterdir()] == ["buildhelper-1.0-py3-none-any.whl"]
    assert "verified, not installed: buildhelper 1.0 from demo" in r.stdout


def test_pip_environment_points_every_installer_at_the_proxy(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k, v in {"PIP_NO_INDEX": "1", "UV_INDEX": "x", "UV_FIND_LINKS": "/x",
                 "uv_extra_index_url": "x"}.items():
        monkeypatch.setenv(k, v)
    env = pip_environment(tmp_path, "http://127.0.0.1:1/simple/")
    assert env["PIP_INDEX_URL"] == env["UV_DEFAULT_INDEX"] == "http://127.0.0.1:1/simple/"
    assert not {k for k in env if k.upper() in (
        "PIP_NO_INDEX", "UV_INDEX", "UV_FIND_LINKS", "UV_EXTRA_INDEX_URL")}
    assert "PIP_INDEX_URL" not in pip_environment(tmp_path)


# ---- build requirements no source provides ----------------------------------------------


def test_sdist_build_requirement_no_source_provides_fails_before_pip(
        make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"setuptools": ["50.0"]})  # too old for the sdist
    sdist = build_sdist(pub.dist, "demo-sdist", "1.0")
    set_build_system(sdist, '[build-system]\nrequires = ["setuptools>=61", "wheel"]\n'
                     'build-backend = "setuptools.build_meta"')
    pub.repo.add([sdist], now=datetime.now(UTC))
    pub.add_wheel("app", "1.0", requires_dist=["demo-sdist"])
    pub.sign()
    add_source(home, "demo", pub)
    py = make_venv(tmp_path / "venv")
    before = pip_freeze(py, all=True)

    for wanted in ("demo-sdist", "app"):  # direct, and as a dependency of a wheel
        r = cli("--home", home, "install", "--python", py, wanted)
        assert r.exit_code == 1, r.output
        assert r.stderr.splitlines()[0] == (
            "repotool: error: demo-sdist 1.0 needs build requirement 'setuptools>=61' "
            "which no source provides")
        assert "source 'demo' has setuptools but no file that satisfies it" in r.stderr
        assert "Collecting" not in r.stderr and "Looking in" not in r.stderr  # no pip ran
    assert pip_freeze(py, all=True) == before
    assert build_requires(b'[project]\nname = "x"\n', "x") == ["setuptools>=40.8.0"]
    assert build_requires(None, "x") == ["setuptools>=40.8.0"]


def test_sdist_default_build_requirement_and_malformed_pyproject(
        make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"other": ["1.0"]})
    legacy = build_sdist(pub.dist, "legacy", "1.0")
    set_build_system(legacy, None)  # PEP 517 default: setuptools>=40.8.0
    broken = build_sdist(pub.dist, "broken", "1.0")
    set_build_system(broken, '[build-system\nrequires = "setuptools"')
    pub.repo.add([legacy, broken], now=datetime.now(UTC))
    pub.sign()
    add_source(home, "demo", pub)
    py = make_venv(tmp_path / "venv")

    r = cli("--home", home, "install", "--python", py, "legacy")
    assert r.exit_code == 1, r.output
    assert "legacy 1.0 needs build requirement 'setuptools>=40.8.0' which no source " \
        "provides" in r.stderr
    r = cli("--home", home, "install", "--python", py, "broken")
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("repotool: error: broken 1.0: its pyproject.toml is not "
                               "valid TOML")
    assert len(r.stderr.splitlines()) == 2
    with pytest.raises(UserError, match="no list of strings"):
        build_requires(b'[build-system]\nrequires = "setuptools"\n', "x")
    with pytest.raises(UserError, match="not valid TOML"):
        build_requires(b"\xff\xfe", "x")
    assert pip_freeze(py) == {}


# ---- repotool's own environment ---------------------------------------------------------


def test_install_into_own_environment_cannot_replace_repotool_dependencies(
        make_published, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"harmless": ["1.0"], "platformdirs": ["99.0"],
                                   "cryptography": ["99.0"]})
    pub.add_wheel("needs-crypto", "1.0", requires_dist=["cryptography>=99"])
    pub.sign()
    add_source(home, "demo", pub)
    # An environment where repotool runs (its code and dependencies from this
    # worktree's venv, added as a site directory), so its sys.prefix is the target.
    own = make_venv(tmp_path / "own")
    site = Path(sysconfig.get_paths(vars={"base": str(own.parent.parent),
                                          "platbase": str(own.parent.parent)})["purelib"])
    ours = sysconfig.get_paths()["purelib"]
    (site / "repotool-dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(own), "-m", "repotool", "--home", str(home), "install",
                               *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300, check=False)

    r = run("harmless")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("warning: installing into repotool's own environment "
                               f"({own.parent.parent})")
    assert "installed harmless 1.0 from demo" in r.stdout
    installed = set(os.listdir(site))
    for wanted, clash in [("platformdirs==99.0", "platformdirs 99.0"),
                          ("needs-crypto", "cryptography 99.0")]:  # also when transitive
        r = run(wanted)
        assert r.returncode == 1, r.stderr
        assert f"repotool: error: refusing to install {clash} into repotool's own " \
            "environment" in r.stderr
        assert "hint: give --python PATH" in r.stderr
        assert "Traceback" not in r.stderr
        assert set(os.listdir(site)) == installed  # nothing was installed
    assert {"repotool", "cryptography", "cffi", "tuf", "requests", "urllib3"} <= \
        own_dependencies()
    assert "pytest" not in own_dependencies()  # an extra, not a dependency



def test_oversized_pyproject_in_sdist_refused_unread(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import repotool.pip.buildreqs as buildreqs

    monkeypatch.setattr(buildreqs, "pyproject_max_length", 64)
    for size, ok in ((64, True), (65, False)):
        sdist = tmp_path / f"big-{size}.tar.gz"
        with tarfile.open(sdist, "w:gz") as tf:
            data = b"#" * size
            info = tarfile.TarInfo("big-1.0/pyproject.toml")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if ok:
            assert buildreqs._open_pyproject(sdist, sdist.name) == data
        else:
            with pytest.raises(UserError, match=r"pyproject\.toml is larger than 64 bytes"):
                buildreqs._open_pyproject(sdist, sdist.name)
    nested = tmp_path / "nested-1.0.tar.gz"  # only the top-level pyproject.toml counts
    with tarfile.open(nested, "w:gz") as tf:
        info = tarfile.TarInfo("nested-1.0/vendored/pyproject.toml")
        tf.addfile(info, io.BytesIO(b""))
    assert buildreqs._open_pyproject(nested, nested.name) is None
