"""The executable's fast path for list/search/show: same answers as the full CLI, and no
network or crypto code imported (SPEC §5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

from repotool.cli.entry import _parse


def _exe(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REPOTOOL_HOME"}
    return subprocess.run([sys.executable, "-m", "repotool", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def updated_home(make_published, home: Path) -> Path:
    pub = make_published(projects={"demo-pkg": ["1.0", "1.1"], "other": ["0.1"]})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    return home


@pytest.mark.parametrize("args", [
    ["list"], ["list", "--json"], ["list", "--source", "demo"], ["search", "DEMO"],
    ["search", "demo", "--json"], ["show", "demo-pkg"], ["show", "Demo_Pkg", "--json"],
])
def test_fast_path_answers_like_the_full_cli(updated_home: Path, args: list[str]) -> None:
    assert _parse(["--home", str(updated_home), *args]) is not None
    fast = _exe("--home", updated_home, *args)
    full = cli("--home", updated_home, *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.exit_code, full.stdout,
                                                           full.stderr)


def test_fast_path_errors_like_the_full_cli(updated_home: Path) -> None:
    for args in (["show", "nope"], ["list", "--source", "nope"]):
        fast = _exe("--home", updated_home, *args)
        full = cli("--home", updated_home, *args)
        assert fast.returncode == full.exit_code == 1
        assert fast.stderr == full.stderr and "Traceback" not in fast.stderr


@pytest.mark.parametrize("argv", [
    ["list", "--help"], ["show"], ["show", "a", "b"], ["search", "--bogus", "x"],
    ["update", "demo"], ["update", "--allow-name-change"], ["--timeout", "3", "list"],
    ["list", "--source"],
])
def test_anything_else_goes_to_the_full_cli(argv: list[str]) -> None:
    assert _parse(argv) is None


def test_queries_import_no_network_or_crypto_code(updated_home: Path) -> None:
    for args in (["list"], ["search", "demo"], ["show", "demo-pkg"]):
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "repotool", "--home",
                            str(updated_home), *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines()
                    if line.startswith("import time:")}
        for heavy in ("tuf", "securesystemslib", "cryptography", "requests", "urllib3",
                      "typer", "ssl"):
            assert heavy not in imported, (args, heavy)


def test_fast_update_answers_like_the_full_cli(updated_home: Path) -> None:
    fast = _exe("--home", updated_home, "update")
    full = cli("--home", updated_home, "update")
    assert fast.returncode == full.exit_code == 0
    assert fast.stdout == full.stdout and "unchanged" in fast.stdout


def test_no_change_update_over_http_imports_no_tuf_client_requests_or_typer(
        make_published, home: Path) -> None:
    """SPEC §5: the no-change update is a couple of small requests and nothing else."""
    from servers import RepoServer

    pub = make_published()
    with RepoServer(pub.root) as srv:
        assert cli("--home", home, "source", "add", "demo", srv.url, "--key",
                   pub.key.public).exit_code == 0
        assert cli("--home", home, "update").exit_code == 0
        srv.clear_log()
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "repotool", "--home",
                            str(home), "update"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert srv.requests == ["/metadata/2.root.json", "/metadata/timestamp.json"]
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    for heavy in ("tuf.ngclient", "tuf.api.metadata", "cryptography", "requests", "urllib3",
                  "typer"):
        assert heavy not in imported, heavy
