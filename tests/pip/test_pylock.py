"""``repotool lock --format pylock`` writes a PEP 751 ``pylock.toml``; REAL uv installs from it.

pip here (check ``pip --version``: 23.x; pip >= 25.1 only writes pylock) cannot read
one, uv 0.13 can (``uv pip install -r pylock.toml``); the file is re-read with tomllib
and checked against the fields PEP 751 requires.
"""

from __future__ import annotations

import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from builders import build_sdist, build_wheel, sha256_file
from conftest import cli
from servers import RepoServer
from test_install import add_source, update
from test_pip_metadata import _uv, _uv_env
from venvs import make_venv, pip_freeze

from repotool.pip.pylock import is_pylock_name, toml_string


def test_toml_strings_are_escaped() -> None:
    for text in ['plain', 'quote " and \\ back', "tab\tnew\nline\x7f\x00", "ünï 😀"]:
        assert tomllib.loads(f"x = {toml_string(text)}\n")["x"] == text
    assert is_pylock_name("pylock.toml") and is_pylock_name("pylock.dev.toml")
    assert not is_pylock_name("lock.toml") and not is_pylock_name("pylock..toml")


def test_lock_pylock_then_uv_installs_it(make_published, home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uv = _uv()
    pub = make_published(projects={"lib": ["1.0"]})
    lib_sdist = build_sdist(pub.dist, "lib", "1.0")
    pub.repo.add([lib_sdist], now=datetime.now(UTC))
    app = pub.add_wheel("app", "1.0", requires_dist=["lib"], requires_python=">=3.8")
    pub.sign()
    with RepoServer(pub.root) as srv:
        add_source(home, "demo", srv.url, pub.key.public)
        update(home)
        py = make_venv(tmp_path / "venv")
        out = tmp_path / "pylock.toml"
        r = cli("--home", home, "lock", "app", "--format", "pylock", "-o", out, "--python", py)
        assert r.exit_code == 0, r.output
        doc = tomllib.loads(out.read_text())
        # PEP 751: required keys, and what repotool knows from the signed index
        assert doc["lock-version"] == "1.0" and doc["created-by"] == "repotool"
        pkgs = {p["name"]: p for p in doc["packages"]}
        assert set(pkgs) == {"app", "lib"}
        a = pkgs["app"]
        assert a["version"] == "1.0" and a["requires-python"] == ">=3.8"
        assert a["index"] == srv.url + "simple/"
        (w,) = a["wheels"]
        assert w["name"] == app.name and w["size"] == app.stat().st_size
        assert w["hashes"] == {"sha256": sha256_file(app)}
        assert w["url"] == f"{srv.url}files/app/{app.name}"
        assert isinstance(w["upload-time"], datetime)
        s = pkgs["lib"]["sdist"]
        assert s["name"] == lib_sdist.name and s["hashes"] == {"sha256": sha256_file(lib_sdist)}
        for p in doc["packages"]:  # every file: a location and hashes (PEP 751)
            for f in [*p.get("wheels", []), *([p["sdist"]] if "sdist" in p else [])]:
                assert ("url" in f or "path" in f) and f["hashes"]
        r = subprocess.run([uv, "pip", "install", "-r", str(out), "--python", str(py)],
                           env=_uv_env(tmp_path), capture_output=True, text=True,
                           timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert pip_freeze(py) == {"app": "1.0", "lib": "1.0"}
        # sizes and hashes are the signed ones: a swapped file at the URL is refused by uv
        plain = pub.root / "files" / "app" / app.name
        other = build_wheel(tmp_path / "evil", "app", "1.0", summary="not the signed one")
        plain.unlink()  # (a hard link to the hash-named copy)
        plain.write_bytes(other.read_bytes())
        py2 = make_venv(tmp_path / "venv2")
        r = subprocess.run([uv, "pip", "install", "-r", str(out), "--python", str(py2)],
                           env=_uv_env(tmp_path), capture_output=True, text=True,
                           timeout=120, check=False)
        assert r.returncode != 0 and "mismatch" in r.stderr.lower(), r.stderr  # size or hash
        assert pip_freeze(py2) == {}


def test_lock_pylock_refuses_other_file_names(home: Path, tmp_path: Path) -> None:
    r = cli("--home", home, "lock", "app", "--format", "pylock", "-o", tmp_path / "x.toml")
    assert r.exit_code == 2 and "pylock.toml" in r.stderr
    r = cli("--home", home, "lock", "app", "--format", "poetry")
    assert r.exit_code == 2 and "--format" in r.stderr


def test_lock_pylock_of_a_local_directory_source_uses_paths(make_published, home: Path,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    uv = _uv()
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")
    out = tmp_path / "pylock.dev.toml"
    r = cli("--home", home, "lock", "demo-pkg", "--format", "pylock", "-o", out, "--python", py)
    assert r.exit_code == 0, r.output
    (pkg,) = tomllib.loads(out.read_text())["packages"]
    (w,) = pkg["wheels"]
    assert w["path"] == str(pub.root.resolve() / "files" / "demo-pkg" / w["name"])
    r = subprocess.run([uv, "pip", "install", "-r", str(out), "--python", str(py)],
                       env=_uv_env(tmp_path), capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert pip_freeze(py) == {"demo-pkg": "1.0"}
