"""``repo import`` (repotool/origin.py, publish/importing.py) and the seed's scenario:
a local repository keeps what the origin's author deletes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import small_repos
from conftest import cli, make_key
from venvs import make_venv, pip_freeze


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    return small_repos.factory(tmp_path)


def ok(*args: Any) -> Any:
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return r


def test_seed_scenario_local_repository_keeps_what_origin_deletes(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    from servers import RepoServer

    origin = make_published(name="origin", projects={"demo-pkg": ["1.0", "1.1"]})
    local_key = make_key(tmp_path / "lk", "local")
    local = tmp_path / "local"
    ok("repo", "init", local, "--name", "farm", "--key", local_key.public)
    with RepoServer(origin.root) as server:
        ok("--home", home, "source", "add", "upstream", server.url, "--key", origin.key.public)
        ok("--home", home, "update")
        r = ok("--home", home, "repo", "import", local, "--from", "upstream",
               "demo-pkg==1.0", "demo-pkg==1.1", "--json")
        assert r.exit_code == 0
        got = json.loads(r.stdout)
        assert {g["version"] for g in got} == {"1.0", "1.1"}
        ok("repo", "sign", local, "--key", local_key.private)
        prov = json.loads((local / ".repotool" / "provenance.json").read_bytes())
        rec = prov["demo_pkg-1.0-py3-none-any.whl"]
        assert (rec["source"], rec["repository"]) == ("upstream", "origin")
        assert rec["root_keys"] == [origin.key.fingerprint]
        # the origin's author deletes 1.0 and re-signs
        origin.repo.remove("demo-pkg", "1.0")
        origin.sign()
        ok("--home", home, "update", "upstream")
        shown = json.loads(ok("--home", home, "show", "demo-pkg", "--json").stdout)
        assert [v["version"] for v in shown["sources"][0]["versions"]] == ["1.1"]
    # the build farm, a client of the local repository only, still installs 1.0, verified
    farm = tmp_path / "farm"
    ok("--home", farm, "source", "add", "local", local, "--key", local_key.public)
    ok("--home", farm, "update")
    py = make_venv(tmp_path / "venv")
    r = ok("--home", farm, "install", "--python", py, "demo-pkg==1.0")
    assert "installed demo-pkg 1.0 from local" in r.stdout
    assert pip_freeze(py) == {"demo-pkg": "1.0"}
    shown = ok("--home", farm, "show", "demo-pkg").stdout
    assert "imported from source upstream (repository 'origin'" in shown
    doc = json.loads(ok("--home", farm, "show", "demo-pkg", "--json").stdout)
    files = [f for v in doc["sources"][0]["versions"] for f in v["files"]]
    assert all(f["imported_from"]["root_keys"] == [origin.key.fingerprint] for f in files)
    listed = ok("repo", "list", local).stdout
    assert "demo_pkg-1.0-py3-none-any.whl" in listed and "imported from upstream" in listed


def test_import_refuses_a_project_another_source_provides(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    a = make_published(name="a", projects={"demo-pkg": ["1.0"]})
    b = make_published(name="b", projects={"demo-pkg": ["2.0"]})
    ok("--home", home, "source", "add", "a", a.root, "--key", a.key.public, "--priority", "5")
    ok("--home", home, "source", "add", "b", b.root, "--key", b.key.public)
    ok("--home", home, "update")
    k = make_key(tmp_path / "lk", "local")
    local = tmp_path / "local"
    ok("repo", "init", local, "--name", "farm", "--key", k.public)
    r = cli("--home", home, "repo", "import", tmp_path / "nowhere", "--from", "a", "demo-pkg")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert not (tmp_path / "nowhere").exists()
    r = cli("--home", home, "repo", "import", local, "--from", "b", "demo-pkg")
    assert r.exit_code == 1 and "resolves to source 'a'" in r.stderr
    assert not (local / ".repotool" / "provenance.json").exists()


def test_arbitrary_content_tampered_provenance_refused(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    origin = make_published(name="origin", projects={"demo-pkg": ["1.0"]})
    k = make_key(tmp_path / "lk", "local")
    local = tmp_path / "local"
    ok("repo", "init", local, "--name", "farm", "--key", k.public)
    ok("--home", home, "source", "add", "upstream", origin.root, "--key", origin.key.public)
    ok("--home", home, "update")
    ok("--home", home, "repo", "import", local, "--from", "upstream", "demo-pkg")
    ok("repo", "sign", local, "--key", k.private)
    [target] = local.glob("*.provenance.json")
    data = target.read_bytes()  # same length, still a valid record: another origin
    target.write_bytes(data.replace(b'"source":"upstream"', b'"source":"evil-src"'))
    assert target.read_bytes() != data
    farm = tmp_path / "farm"
    ok("--home", farm, "source", "add", "local", local, "--key", k.public)
    r = cli("--home", farm, "update")
    assert r.exit_code == 3 and "provenance.json" in r.stderr
    assert "evil-src" not in cli("--home", farm, "show", "demo-pkg").output
