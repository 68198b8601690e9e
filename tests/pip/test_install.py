"""``repotool install``, ``lock`` and ``proxy`` with REAL pip in REAL venvs.

pip never receives a byte that was not verified: every scenario runs pip against the
verified proxy, with this machine's own pip configuration and environment in place
(global constraints, user find-links and extra-index-url, PIP_FIND_LINKS), which
repotool must neutralise.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel, sha256_file
from conftest import cli
from servers import RepoServer
from venvs import make_venv, pip_freeze, run_pip

from repotool.client.home import Home
from repotool.format.layout import dist_target_path, hashed_name
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.transport.limits import Limits

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_source(home: Path, name: str, location: Any, key: Path, *extra: str) -> None:
    r = cli("--home", home, "source", "add", name, location, "--key", key, *extra)
    assert r.exit_code == 0, r.output


def update(home: Path, code: int = 0) -> None:
    r = cli("--home", home, "update")
    assert r.exit_code == code, r.output


def install(home: Path, python: Path, *args: str | Path) -> Any:
    return cli("--home", home, "install", "--python", python, *args)


def installed_lines(stdout: str) -> dict[str, tuple[str, str]]:
    """{project: (version, source)} from the summary's 'installed' lines."""
    found = re.findall(r"^(?:installed|would install) (\S+) (\S+) from (\S+):", stdout, re.M)
    return {p: (v, s) for p, v, s in found}


def with_build_requires(sdist: Path, requires: list[str]) -> None:
    """Rewrite ``sdist`` so that building it needs ``requires`` (PEP 518)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(sdist.read_bytes()))) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            f = src.extractfile(member)
            data = f.read() if f else b""
            if member.name.endswith("/pyproject.toml"):
                data = data.replace(b"requires = []", f"requires = {json.dumps(requires)}"
                                    .encode())
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    sdist.write_bytes(gzip.compress(out.getvalue(), mtime=0))


def test_install_dependencies_from_same_and_second_source(make_published, home: Path,
                                                          tmp_path: Path) -> None:
    main = make_published("main", projects={"lib": ["1.0", "2.0"], "buildhelper": ["1.0"]})
    app = main.add_wheel("app", "1.0", requires_dist=["lib<2", "helper"])
    main.sign()
    second = make_published("second", projects={"unrelated": ["1.0"]})
    sdist = build_sdist(second.dist, "helper", "3.0")  # sdist only: pip builds it,
    with_build_requires(sdist, ["buildhelper"])  # with a build dependency from 'main'
    second.repo.add([sdist], now=datetime.now(UTC))
    second.sign()
    add_source(home, "main", main.root, main.key.public)
    add_source(home, "second", second.root, second.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")
    user_home = tmp_path / "user-home"  # pip must write nothing here (no cache, no temp)
    user_home.mkdir()
    env = {"HOME": str(user_home), "XDG_CACHE_HOME": str(user_home / ".cache"),
           # pip runs `rustc --version` for its user agent; this machine's rustup shim
           # would create $HOME/.rustup if it did not know where its home is
           "RUSTUP_HOME": os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))}

    r = cli("--home", home, "install", "--python", py, "app", env=env)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"app": "1.0", "helper": "3.0", "lib": "1.0"}
    assert list(user_home.iterdir()) == []
    assert installed_lines(r.stdout) == {
        "app": ("1.0", "main"), "lib": ("1.0", "main"), "helper": ("3.0", "second")}
    assert f"app-1.0-py3-none-any.whl sha256:{sha256_file(app)}" in r.stdout
    assert f"helper-3.0.tar.gz sha256:{sha256_file(sdist)}" in r.stdout
    # the build dependency came through the proxy too (verified, used, not installed)
    assert "verified, not installed: buildhelper 1.0 from main" in r.stdout
    assert "Successfully installed" in r.stderr  # pip's own output is shown
    # pip's temporary files stayed inside repotool's home and were removed
    assert list((home / "tmp").iterdir()) == []

    r = install(home, py, "app")
    assert r.exit_code == 0, r.output
    assert "nothing to install" in r.stdout


def test_dependency_confusion_direct_and_transitive(make_published, home: Path,
                                                    tmp_path: Path) -> None:
    internal = make_published("internal", projects={"corp-lib": ["1.0"]})
    internal.add_wheel("corp-app", "1.0", requires_dist=["corp-lib"])
    internal.sign()
    public = make_published("public", projects={
        "corp-lib": ["99.0"], "corp-app": ["99.0"], "corp-extra": ["99.0"], "util": ["1.0"]})
    public.add_wheel("tool", "1.0", requires_dist=["corp-lib", "util"])
    public.sign()
    lower = make_published("lower", projects={"tool": ["50.0"], "util": ["50.0"]})
    add_source(home, "internal", internal.root, internal.key.public, "--only", "corp-*")
    add_source(home, "public", public.root, public.key.public, "--priority", "100")
    add_source(home, "lower", lower.root, lower.key.public, "--priority", "-5")
    update(home)
    py = make_venv(tmp_path / "venv")

    r = install(home, py, "corp-app", "tool")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"corp-app": "1.0", "corp-lib": "1.0", "tool": "1.0",
                              "util": "1.0"}
    assert installed_lines(r.stdout) == {
        "corp-app": ("1.0", "internal"),  # direct, pinned by --only
        "corp-lib": ("1.0", "internal"),  # transitive, from two parents
        "tool": ("1.0", "public"),  # direct, higher priority beats a higher version
        "util": ("1.0", "public"),  # transitive, same
    }
    assert "99.0" not in r.stdout and "50.0" not in r.stdout

    # a name fenced to 'internal' that only 'public' has: refused, not taken from public
    before = pip_freeze(py, all=True)
    r = install(home, py, "corp-extra")
    assert r.exit_code == 3, r.output
    assert "corp-extra is pinned to source(s) internal (--only)" in r.stderr
    assert pip_freeze(py, all=True) == before


def test_tampered_wheel_on_server_during_install(make_published, home: Path,
                                                 tmp_path: Path) -> None:
    pub = make_published(projects={"base": ["1.0"]})
    lib = pub.add_wheel("lib", "1.0")
    pub.add_wheel("app", "1.0", requires_dist=["lib"])
    pub.sign()
    py = make_venv(tmp_path / "venv")
    with RepoServer(pub.root) as server:
        add_source(home, "demo", server.url, pub.key.public)
        update(home)
        assert install(home, py, "base").exit_code == 0
        before = pip_freeze(py, all=True)
        target = hashed_name(dist_target_path("lib", lib.name), sha256_file(lib))
        evil = bytearray(lib.read_bytes())
        evil[-1] ^= 0xFF
        server.override[target] = bytes(evil)  # same size, other bytes

        r = install(home, py, "app")
        assert server.count(target) >= 1  # the attack was really served to repotool
    assert r.exit_code == 3, r.output
    assert f"refused {lib.name} from source 'demo'" in r.stderr
    assert "sha256 differs from the signed index" in r.stderr
    assert "pip received none of its bytes" in r.stderr
    assert "HTTP error 502" in r.stderr  # what pip saw instead of the file
    assert "lib" not in installed_lines(r.stdout)
    assert pip_freeze(py, all=True) == before  # app (downloaded fine) not installed either


def test_unreachable_higher_priority_source_no_fall_through(make_published, home: Path,
                                                            tmp_path: Path) -> None:
    high = make_published("high", projects={"demo-pkg": ["1.0"]})
    low = make_published("low", projects={"demo-pkg": ["2.0"], "other": ["1.0"]})
    with RepoServer(high.root) as server:
        add_source(home, "high", server.url, high.key.public, "--priority", "10")
        add_source(home, "low", low.root, low.key.public)
        update(home)
    update(home, code=1)  # the server is gone: high's last update failed
    py = make_venv(tmp_path / "venv")
    before = pip_freeze(py, all=True)

    r = install(home, py, "demo-pkg")
    assert r.exit_code == 1, r.output
    assert "source 'high' could not be updated" in r.stderr
    assert "refusing to look for demo-pkg in lower-priority sources" in r.stderr
    assert pip_freeze(py, all=True) == before


def test_yanked_version_not_chosen_unless_pinned(make_published, home: Path,
                                                 tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0", "2.0"]})
    pub.repo.yank("demo-pkg", "2.0", "broken")
    pub.sign()
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")

    r = install(home, py, "demo-pkg")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"demo-pkg": "1.0"}

    r = install(home, py, "demo-pkg==2.0")
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"demo-pkg": "2.0"}
    assert "yanked" in r.stderr.lower()  # pip warns about installing a yanked release

    r = install(home, py, "no-such-project")
    assert r.exit_code == 1, r.output
    assert "no source provides no-such-project" in r.stderr


def test_dry_run_says_source_and_why_and_installs_nothing(
        make_published, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    internal = make_published("internal", projects={"corp-lib": ["1.0"]})
    public = make_published("public", projects={"corp-lib": ["9.0"], "util": ["1.0"]})
    add_source(home, "internal", internal.root, internal.key.public, "--only", "corp-*")
    add_source(home, "public", public.root, public.key.public, "--priority", "5")
    update(home)
    py = make_venv(tmp_path / "venv")
    monkeypatch.chdir(tmp_path)

    r = install(home, Path("venv/bin/python"), "--dry-run", "corp-lib", "util")  # relative
    assert r.exit_code == 0, r.output
    assert "corp-lib: resolves to internal (pinned by --only to internal" in r.stdout
    assert "util: resolves to public (highest-priority source that has it" in r.stdout
    assert installed_lines(r.stdout) == {"corp-lib": ("1.0", "internal"),
                                         "util": ("1.0", "public")}
    assert "Would install corp-lib-1.0 util-1.0" in r.stderr
    assert pip_freeze(py) == {}


def test_lock_then_require_hashes_reproduces(make_published, home: Path,
                                             tmp_path: Path) -> None:
    pub = make_published(projects={"lib": ["1.0"]})
    lib_sdist = build_sdist(pub.dist, "lib", "1.0")
    pub.repo.add([lib_sdist], now=datetime.now(UTC))
    app = pub.add_wheel("app", "1.0", requires_dist=["lib"])
    pub.sign()
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")
    lockfile = tmp_path / "requirements.lock"

    r = cli("--home", home, "lock", "app", "-o", lockfile, "--python", py)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {}  # resolution only
    text = lockfile.read_text()
    lib_whl = pub.dist / "lib-1.0-py3-none-any.whl"
    hashes = dict(re.findall(r"^(\S+)==\S+ \\\n((?:    --hash=sha256:\w+(?: \\\n)?)+)", text,
                             re.M))
    assert set(hashes) == {"app", "lib"}
    assert re.findall(r"sha256:(\w+)", hashes["app"]) == [sha256_file(app)]
    assert sorted(re.findall(r"sha256:(\w+)", hashes["lib"])) == sorted(
        [sha256_file(lib_whl), sha256_file(lib_sdist)])  # every file of that version
    assert "# source: demo" in text

    # plain pip, hash-checking mode, through the proxy
    with RunningProxy(VerifiedIndex(Home(home), Limits())) as proxy:
        run_pip(py, "install", "--isolated", "--disable-pip-version-check", "--no-input",
                "--require-hashes", "-r", str(lockfile), "--index-url", proxy.index_url)
    assert pip_freeze(py) == {"app": "1.0", "lib": "1.0"}

    # and repotool install -r LOCKFILE (the --hash options survive sanitizing)
    py2 = make_venv(tmp_path / "venv2")
    r = install(home, py2, "-r", lockfile)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py2) == {"app": "1.0", "lib": "1.0"}


def test_proxy_command_used_by_pip_from_another_process(make_published, home: Path,
                                                        tmp_path: Path) -> None:
    pub = make_published(projects={"lib": ["1.0"]})
    pub.add_wheel("app", "2.0", requires_dist=["lib"])
    pub.sign()
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    py = make_venv(tmp_path / "venv")
    log = tmp_path / "proxy.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "repotool", "--home", str(home), "proxy", "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env, text=True)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline(), proc.stdout.readline()]
            index_url = lines[1].split("--index-url ", 1)[1].strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/simple/", index_url), lines
            run_pip(py, "install", "--isolated", "--index-url", index_url, "app")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0
    assert pip_freeze(py) == {"app": "2.0", "lib": "1.0"}
    text = log.read_text()
    assert "served app-2.0-py3-none-any.whl" in text and "from demo" in text
    assert "Traceback" not in text


def test_pip_configuration_and_environment_cannot_add_files(make_published, home: Path,
                                                            tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_source(home, "demo", pub.root, pub.key.public)
    update(home)
    evil = tmp_path / "evil"
    build_wheel(evil / "links", "demo-pkg", "9.0")
    build_wheel(evil / "links", "sneaky", "1.0")
    conf = evil / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {evil / 'links'}\n"
                    f"extra-index-url = {(evil / 'links').as_uri()}\n")
    py = make_venv(tmp_path / "venv")
    (py.parent.parent / "pip.conf").write_text(conf.read_text())  # site config of the venv

    env = {"PIP_FIND_LINKS": str(evil / "links"), "PIP_CONFIG_FILE": str(conf),
           "PIP_EXTRA_INDEX_URL": (evil / "links").as_uri(), "PIP_NO_INDEX": "1"}
    r = cli("--home", home, "install", "--python", py, "demo-pkg", env=env)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"demo-pkg": "1.0"}
    r = cli("--home", home, "install", "--python", py, "sneaky", env=env)
    assert r.exit_code == 1, r.output
    assert pip_freeze(py) == {"demo-pkg": "1.0"}


def test_install_refuses_requirements_that_bypass_the_index(make_published, home: Path,
                                                            tmp_path: Path) -> None:
    pub = make_published()
    add_source(home, "demo", pub.root, pub.key.public)
    py = tmp_path / "never-used-python"
    bad = [
        ("demo-pkg @ https://example.invalid/demo_pkg-1.0-py3-none-any.whl",),
        ("not a requirement!",),
    ]
    for args in bad:
        r = install(home, py, *args)
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith("repotool: error:")
    for line in ["--index-url http://example.invalid/simple/", "-e .", "--extra-index-url=x",
                 "-f /tmp", "demo-pkg --install-option=x", "./demo_pkg-1.0-py3-none-any.whl",
                 "demo-pkg --hash=md5:abc"]:
        req = tmp_path / "req.txt"
        req.write_text(f"# comment\n{line}\n")
        r = install(home, py, "-r", req)
        assert r.exit_code == 2, (line, r.output)
        assert "req.txt:2" in r.stderr
    r = install(home, py, "-r", tmp_path / "missing.txt")
    assert r.exit_code == 1 and "cannot read requirements file" in r.stderr
    r = install(home, py, "demo-pkg")
    assert r.exit_code == 1 and "never-used-python" in r.stderr
    r = install(home, py)
    assert r.exit_code == 2 and "nothing to install" in r.stderr
