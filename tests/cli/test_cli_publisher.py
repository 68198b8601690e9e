"""The publisher's command line: every command, its output and its exit codes (SPEC §2).

0 success · 1 operational error · 2 usage error · 3 verification refused; errors are
one or two lines on stderr, never a traceback (``cli()`` asserts that).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel
from conftest import CliResult, cli

FPR = re.compile(r"^[0-9a-f]{64}$")


def _ok(r: CliResult) -> CliResult:
    assert r.exit_code == 0, r.output
    return r


def _err(r: CliResult, code: int) -> CliResult:
    assert r.exit_code == code, r.output
    if code != 2:  # usage errors come from click: "Usage: ... Error: ..."
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert 1 <= len(lines) <= 2 and lines[0].startswith("repotool: error:"), r.stderr
    return r


@pytest.fixture(scope="module")
def keyfiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    base = tmp_path_factory.mktemp("keys")
    for name in ("main", "root2", "targets", "online"):
        r = _ok(cli("key", "generate", base / name, "--no-passphrase"))
        assert FPR.match(r.stdout.strip())
        out[name] = base / name
    return out


def _pub(k: Path) -> Path:
    return Path(f"{k}.pub")


def _key(k: Path) -> Path:
    return Path(f"{k}.key")


def _fpr(k: Path) -> str:
    return _ok(cli("key", "fingerprint", _pub(k))).stdout.strip()


@pytest.fixture(scope="module")
def shared_repo(tmp_path_factory: pytest.TempPathFactory, keyfiles: dict[str, Path]) -> Path:
    """Published once per module (256 bins take a second); tests that change it get a copy."""
    base = tmp_path_factory.mktemp("shared")
    d = base / "repo"
    _ok(cli("repo", "init", d, "--name", "demo", "--key", _pub(keyfiles["main"])))
    dist = base / "dist"
    build_wheel(dist, "demo-pkg", "1.0")
    build_sdist(dist, "demo-pkg", "1.0")
    r = _ok(cli("repo", "add", d, dist))
    assert r.stdout.count("added demo-pkg 1.0") == 2
    _ok(cli("repo", "sign", d, "--key", _key(keyfiles["main"])))
    return d


@pytest.fixture
def repo(shared_repo: Path, tmp_path: Path) -> Path:
    d = tmp_path / "repo"
    shutil.copytree(shared_repo, d)
    return d


# ---- the happy path, command by command --------------------------------------------------


def test_publisher_workflow(tmp_path: Path, keyfiles: dict[str, Path]) -> None:
    d = tmp_path / "repo"
    main = keyfiles["main"]
    r = _ok(cli("repo", "init", d, "--name", "demo", "--key", _pub(main)))
    assert "repo sign" in r.stderr
    r = _ok(cli("repo", "keys", d))
    assert "not yet signed" in r.stdout and _fpr(main) in r.stdout
    build_wheel(tmp_path / "dist", "demo-pkg", "1.0", requires_python=">=3.8")
    _ok(cli("repo", "add", d, tmp_path / "dist"))
    r = _ok(cli("repo", "sign", d, "--key", _key(main)))
    assert r.stdout.startswith("signed: root v1, targets v1, snapshot v1, timestamp v1, 2 bin(s)")
    assert "1 project(s) changed" in r.stdout
    _ok(cli("repo", "check", d))
    build_wheel(tmp_path / "dist2", "demo-pkg", "2.0")
    _ok(cli("repo", "add", d, tmp_path / "dist2" / "demo_pkg-2.0-py3-none-any.whl"))
    r = _ok(cli("repo", "yank", d, "demo-pkg", "1.0", "--reason", "broken"))
    assert "1 file(s) will be yanked" in r.stderr
    r = _ok(cli("repo", "sign", d, "--key", _key(main), "--json"))
    summary = json.loads(r.stdout)
    assert set(summary) == {"files", "bytes", "versions", "projects_changed", "notes"}
    assert summary["versions"]["targets"] == 2 and summary["versions"]["timestamp"] == 2
    assert "root" not in summary["versions"]
    page = json.loads((d / "simple" / "demo-pkg" / "index.json").read_bytes())
    assert {f["filename"]: f["yanked"] for f in page["files"]} == {
        "demo_pkg-1.0-py3-none-any.whl": "broken", "demo_pkg-2.0-py3-none-any.whl": False}
    r = _ok(cli("repo", "remove", d, "demo-pkg", "2.0"))
    assert "1 file(s) will be unlisted" in r.stderr
    _ok(cli("repo", "sign", d, "--key", _key(main)))
    _ok(cli("repo", "check", d))
    page = json.loads((d / "simple" / "demo-pkg" / "index.json").read_bytes())
    assert [f["filename"] for f in page["files"]] == ["demo_pkg-1.0-py3-none-any.whl"]


def test_sign_json_summary(repo: Path, keyfiles: dict[str, Path]) -> None:
    r = _ok(cli("repo", "sign", repo, "--key", _key(keyfiles["main"]), "--json"))
    assert json.loads(r.stdout) == {"files": 1, "bytes": (repo / "metadata" / "timestamp.json")
                                    .stat().st_size, "versions": {"timestamp": 2},
                                    "projects_changed": 0, "notes": []}


def test_repo_keys_json(shared_repo: Path, keyfiles: dict[str, Path]) -> None:
    doc = json.loads(_ok(cli("repo", "keys", shared_repo, "--json")).stdout)
    fpr = _fpr(keyfiles["main"])
    assert doc["name"] == "demo" and doc["root_version"] == 1 and doc["published"] is True
    assert set(doc["roles"]) == {"root", "targets", "snapshot", "timestamp"}
    for role in doc["roles"].values():
        assert role["keys"] == [fpr] and role["threshold"] == 1
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", role["expires"])


def test_role_separated_init_and_threshold(tmp_path: Path, keyfiles: dict[str, Path]) -> None:
    d = tmp_path / "sep"
    k = keyfiles
    _ok(cli("repo", "init", d, "--name", "sep", "--root-key", _pub(k["main"]),
            "--root-key", _pub(k["root2"]), "--threshold", "2",
            "--targets-key", _pub(k["targets"]), "--online-key", _pub(k["online"])))
    doc = json.loads(_ok(cli("repo", "keys", d, "--json")).stdout)
    assert doc["roles"]["root"]["threshold"] == 2
    assert doc["roles"]["root"]["keys"] == sorted([_fpr(k["main"]), _fpr(k["root2"])])
    assert doc["roles"]["timestamp"]["keys"] == [_fpr(k["online"])]
    r = _err(cli("repo", "sign", d, "--key", _key(k["main"]), "--key", _key(k["targets"]),
                 "--key", _key(k["online"])), 3)
    assert _fpr(k["root2"]) in r.stderr
    assert not (d / "metadata").exists()
    _ok(cli("repo", "sign", d, *[x for n in k for x in ("--key", str(_key(k[n])))]))
    # the online key alone re-signs the timestamp
    r = _ok(cli("repo", "sign", d, "--key", _key(k["online"]), "--json"))
    assert json.loads(r.stdout)["versions"] == {"timestamp": 2}


def test_rotate_cli(repo: Path, keyfiles: dict[str, Path]) -> None:
    k = keyfiles
    r = _ok(cli("repo", "rotate", repo, "--role", "root", "--add", _pub(k["root2"]),
                "--remove", _fpr(k["main"]), "--key", _key(k["main"]), "--key",
                _key(k["root2"])))
    assert "root v2" in r.stdout
    doc = json.loads(_ok(cli("repo", "keys", repo, "--json")).stdout)
    assert doc["root_version"] == 2
    assert doc["roles"]["root"]["keys"] == [_fpr(k["root2"])]
    _ok(cli("repo", "check", repo))


def test_encrypted_key_signs_with_passphrase(tmp_path: Path) -> None:
    env = {"RT_PW": "s3cret"}
    _ok(cli("key", "generate", tmp_path / "k", "--passphrase-env", "RT_PW", env=env))
    d = tmp_path / "repo"
    _ok(cli("repo", "init", d, "--name", "x", "--key", tmp_path / "k.pub"))
    _err(cli("repo", "sign", d, "--key", tmp_path / "k.key"), 1)  # no passphrase, no terminal
    _err(cli("repo", "sign", d, "--key", tmp_path / "k.key", "--passphrase-env", "RT_PW",
             env={"RT_PW": "nope"}), 1)
    assert not (d / "metadata").exists()
    _ok(cli("repo", "sign", d, "--key", tmp_path / "k.key", "--passphrase-env", "RT_PW", env=env))


# ---- exit codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["repo", "sign", "{repo}", "--bogus"],
        ["repo", "init", "{tmp}/new", "--name", "x", "--key", "{pub}", "--frobnicate"],
        ["key", "generate", "{tmp}/k", "--no-such-option"],
        ["repo", "sign", "{repo}", "--key", "{key}", "--expires", "7x"],
        ["repo", "sign", "{repo}", "--key", "{key}", "--expires", "0d"],
        ["repo", "sign", "{repo}", "--key", "{key}", "--expires", "-1d"],
        ["repo", "sign", "{repo}", "--key", "{key}", "--expires", "1.5h"],
        ["repo", "sign", "{repo}", "--key", "{key}", "--role", "everything"],
        ["repo", "rotate", "{repo}", "--role", "root", "--key", "{key}", "--expires", "soon"],
        ["repo", "rotate", "{repo}", "--role", "root", "--key", "{key}", "--remove", "abc"],
        ["repo", "rotate", "{repo}", "--role", "root", "--key", "{key}", "--threshold", "0"],
        ["repo", "remove", "{repo}", "demo-pkg", "not a version"],
        ["repo", "yank", "{repo}", "demo-pkg", "1.0!!"],
        ["repo", "yank", "{repo}", "demo-pkg"],
        ["repo", "init", "{tmp}/new", "--name", "x"],
        ["repo", "init", "{tmp}/new", "--name", "x", "--key", "{pub}", "--online-key", "{pub}"],
        ["repo", "init", "{tmp}/new", "--name", "x", "--root-key", "{pub}"],
        ["repo", "init", "{tmp}/new", "--key", "{pub}"],
        ["repo", "serve", "{repo}", "--port", "99999"],
        ["repo", "frobnicate"],
        ["key", "generate", "{tmp}/k", "--no-passphrase", "--passphrase-file", "{pub}"],
    ],
)
def test_usage_errors_exit_2(shared_repo: Path, keyfiles: dict[str, Path], tmp_path: Path,
                             args: list[str]) -> None:
    repo = shared_repo  # usage errors change nothing
    fill = {"repo": str(repo), "tmp": str(tmp_path), "pub": str(_pub(keyfiles["main"])),
            "key": str(_key(keyfiles["main"]))}
    before = sorted(p.name for p in (repo / "metadata").iterdir())
    r = cli(*[a.format(**fill) for a in args])
    assert r.exit_code == 2, r.output
    assert sorted(p.name for p in (repo / "metadata").iterdir()) == before
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("cmd", [
    ["repo", "add", "{missing}", "{whl}"],
    ["repo", "sign", "{missing}", "--key", "{key}"],
    ["repo", "remove", "{missing}", "demo-pkg"],
    ["repo", "yank", "{missing}", "demo-pkg", "1.0"],
    ["repo", "keys", "{missing}"],
    ["repo", "check", "{missing}"],
    ["repo", "serve", "{missing}", "--port", "0"],
    ["repo", "rotate", "{missing}", "--role", "root", "--key", "{key}"],
])
def test_missing_repository_exit_1(tmp_path: Path, keyfiles: dict[str, Path], cmd: list[str]
                                   ) -> None:
    whl = build_wheel(tmp_path / "d", "demo-pkg", "1.0")
    fill = {"missing": str(tmp_path / "nothing-here"), "whl": str(whl),
            "key": str(_key(keyfiles["main"]))}
    _err(cli(*[a.format(**fill) for a in cmd]), 1)
    assert not (tmp_path / "nothing-here").exists()


def test_operational_errors_exit_1(repo: Path, keyfiles: dict[str, Path], tmp_path: Path) -> None:
    main = keyfiles["main"]
    r = _err(cli("repo", "init", repo, "--name", "again", "--key", _pub(main)), 1)
    assert "already holds a repository" in r.stderr
    _err(cli("repo", "add", repo, tmp_path / "missing.whl"), 1)
    _err(cli("repo", "remove", repo, "no-such-project"), 1)
    _err(cli("repo", "yank", repo, "demo-pkg", "9.9"), 1)
    _err(cli("repo", "sign", repo, "--key", tmp_path / "missing.key"), 1)
    _err(cli("repo", "init", tmp_path / "n2", "--name", "x", "--key", tmp_path / "missing.pub"), 1)
    _err(cli("repo", "rotate", repo, "--role", "bogus", "--key", _key(main)), 1)
    _err(cli("repo", "rotate", repo, "--role", "root", "--remove", "0" * 64, "--key", _key(main)),
         1)


def test_verification_refusals_exit_3(repo: Path, keyfiles: dict[str, Path],
                                      tmp_path: Path) -> None:
    stranger = keyfiles["targets"]  # holds no role in this repository
    before = {p.name: p.read_bytes() for p in (repo / "metadata").iterdir()}
    r = _err(cli("repo", "sign", repo, "--key", _key(stranger)), 3)
    assert _fpr(keyfiles["main"]) in r.stderr  # the signature still missing
    _err(cli("repo", "rotate", repo, "--role", "root", "--add", _pub(stranger),
             "--key", _key(stranger)), 3)
    assert {p.name: p.read_bytes() for p in (repo / "metadata").iterdir()} == before
    (repo / "metadata" / "timestamp.json").write_bytes(b"{}")
    r = cli("repo", "check", repo)  # problems are data: on stdout
    assert r.exit_code == 3, r.output
    assert "problem: metadata" in r.stdout


def test_help_for_every_publisher_command() -> None:
    for cmd in (["key", "generate"], ["key", "fingerprint"], ["repo", "init"], ["repo", "add"],
                ["repo", "remove"], ["repo", "yank"], ["repo", "sign"], ["repo", "check"],
                ["repo", "keys"], ["repo", "rotate"], ["repo", "serve"]):
        r = _ok(cli(*cmd, "--help"))
        assert "Usage:" in r.stdout


# ---- repo serve --------------------------------------------------------------------------


def test_repo_serve_subprocess(shared_repo: Path) -> None:
    repo = shared_repo
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repotool", "repo", "serve", str(repo), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(30, proc.kill)  # a server that never announces itself
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        url = m.group(1)
        assert "--index-url " + url + "simple/" in proc.stdout.readline()
        with urllib.request.urlopen(url + "simple/", timeout=10) as resp:
            assert resp.status == 200
            assert b'href="demo-pkg/"' in resp.read()
        req = urllib.request.Request(url + "simple/demo-pkg/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
            assert json.loads(resp.read())["name"] == "demo-pkg"
        with urllib.request.urlopen(url + "metadata/timestamp.json", timeout=10) as resp:
            assert json.loads(resp.read())["signed"]["_type"] == "timestamp"
        # the publisher's workspace is never served
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(url + ".repotool/config.json", timeout=10)
        assert ei.value.code == 404
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


def test_repo_serve_unsigned_repository_exit_1(tmp_path: Path, keyfiles: dict[str, Path]
                                               ) -> None:
    d = tmp_path / "r"
    _ok(cli("repo", "init", d, "--name", "x", "--key", _pub(keyfiles["main"])))
    _err(cli("repo", "serve", d, "--port", "0"), 1)


# ---- m-of-n: a 2-of-3 repository needs two signatures for everything it publishes ---------


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"}


def test_threshold_one_key_cannot_sign_2_of_3_repository(tmp_path: Path) -> None:
    k = {n: tmp_path / n for n in "ABC"}
    for path in k.values():
        _ok(cli("key", "generate", path, "--no-passphrase"))
    fpr = {n: _fpr(p) for n, p in k.items()}
    d = tmp_path / "repo"
    _ok(cli("repo", "init", d, "--name", "mofn", "--threshold", "2", "--format", "1",
            *[x for p in k.values() for x in ("--key", str(_pub(p)))]))  # 256 bins
    doc = json.loads(_ok(cli("repo", "keys", d, "--json")).stdout)
    assert {r: v["threshold"] for r, v in doc["roles"].items()} == {
        "root": 2, "targets": 2, "snapshot": 2, "timestamp": 2}
    assert doc["bins"] == {"keys": sorted(fpr.values()), "threshold": 2, "count": 256}
    assert doc["warnings"] == []
    build_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    _ok(cli("repo", "add", d, tmp_path / "dist"))

    def refused(*keys: str, roles: list[str], args: tuple[str, ...] = ("sign",)) -> None:
        before = _tree(d)
        r = _err(cli("repo", *args[:1], d, *args[1:],
                     *[x for n in keys for x in ("--key", str(_key(k[n])))]), 3)
        msg = r.stderr.splitlines()[0]
        assert "nothing was written" in msg and "1 more signature(s) needed" in msg, msg
        named = msg.split("nothing was written: ")[1].split(":")[0].split(", ")
        # changed bins are named (bins-XX), or counted when more than two ("3 bins")
        assert [n if not n.startswith("bins-") else "bins-XX" for n in named] == roles, msg
        for n in set("ABC") - set(keys):  # the signatures still missing, by fingerprint
            assert fpr[n] in msg, msg
        assert _tree(d) == before  # byte-identical: nothing half-published

    # the first sign: every role is short of one signature
    refused("A", roles=["root", "targets", "snapshot", "timestamp", "256 bins"])
    _ok(cli("repo", "sign", d, "--key", _key(k["A"]), "--key", _key(k["B"])))
    r = _ok(cli("repo", "check", d))
    assert "warning" not in r.stderr, r.stderr
    # a new release: targets, the bins it changes, snapshot and timestamp
    build_wheel(tmp_path / "dist2", "demo-pkg", "2.0")
    _ok(cli("repo", "add", d, tmp_path / "dist2"))
    # wheel, its .metadata (PEP 658) and 2 pages, each in another bin
    refused("C", roles=["targets", "snapshot", "timestamp", "4 bins"])
    _ok(cli("repo", "sign", d, "--key", _key(k["C"]), "--key", _key(k["A"])))
    # a timestamp refresh, re-signing every bin, a root re-sign: two keys each
    refused("B", roles=["timestamp"])
    refused("B", roles=["snapshot", "timestamp", "256 bins"], args=("sign", "--role", "bins"))
    refused("A", roles=["root", "targets", "snapshot", "timestamp"],
            args=("sign", "--role", "root"))
    # lowering targets to 1 of 3 is a root change: it needs root's 2 (the new targets
    # role, and so the bins, would take A alone; snapshot and timestamp still need 2)
    refused("A", roles=["root", "snapshot", "timestamp"],
            args=("rotate", "--role", "targets", "--threshold", "1"))
    r = _ok(cli("repo", "sign", d, "--key", _key(k["B"]), "--key", _key(k["C"]), "--json"))
    assert json.loads(r.stdout)["versions"] == {"timestamp": 3}
    _ok(cli("repo", "check", d))


@pytest.mark.parametrize("args", [
    ["--key", "{A}", "--key", "{B}", "--threshold", "3"],
    ["--key", "{A}", "--threshold", "0"],
    ["--key", "{A}", "--threshold", "-1"],
    ["--key", "{A}", "--key", "{B}", "--threshold", "2", "--targets-threshold", "1"],
    ["--root-key", "{A}", "--threshold", "2", "--targets-key", "{B}", "--online-key", "{A}"],
    ["--root-key", "{A}", "--targets-key", "{B}", "--targets-threshold", "2",
     "--online-key", "{A}"],
    ["--root-key", "{A}", "--targets-key", "{B}", "--targets-threshold", "0",
     "--online-key", "{A}"],
])
def test_init_threshold_out_of_range_exit_2(tmp_path: Path, keyfiles: dict[str, Path],
                                            args: list[str]) -> None:
    fill = {"A": str(_pub(keyfiles["main"])), "B": str(_pub(keyfiles["root2"]))}
    r = _err(cli("repo", "init", tmp_path / "new", "--name", "x",
                 *[a.format(**fill) for a in args]), 2)
    line = r.stderr.strip().splitlines()[0]
    assert "threshold" in line and line.startswith("repotool: error:"), r.stderr
    assert not (tmp_path / "new").exists()
