"""Golden repository and forgeries (tests/vectors/, SPEC §4): the golden one verifies,
every forgery is refused, and generate.py reproduces the committed bytes exactly."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, cli

VECTORS = Path(__file__).parent / "vectors"
GOLDEN = VECTORS / "golden"
MANIFEST: dict[str, Any] = json.loads((VECTORS / "vectors.json").read_text())
ROOT_PUB = VECTORS / "keys" / "root.pub"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _overlay(forgery: str, dest: Path) -> Path:
    """A copy of the golden repository with the forgery's files laid over it."""
    shutil.copytree(GOLDEN, dest)
    src = VECTORS / "forgeries" / forgery
    for rel, data in _tree(src).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    return dest


def _client(home: Path, *args: str | Path) -> CliResult:
    return cli("--home", home, *args)


def _add(home: Path, url: Path) -> None:
    r = _client(home, "source", "add", "golden", url, "--key", ROOT_PUB)
    assert r.exit_code == 0, r.output
    assert MANIFEST["keys"]["root"] in r.stdout


# ---- golden ----------------------------------------------------------------------------


def test_golden_passes_repo_check() -> None:
    r = cli("repo", "check", GOLDEN)
    assert r.exit_code == 0, r.output
    assert "0 problem(s)" in r.stdout and "4 distribution file(s)" in r.stdout


def test_golden_client_update(home: Path, tmp_path: Path) -> None:
    _add(home, GOLDEN)
    r = _client(home, "update", "--json")
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)
    assert res["ok"] is True and res["versions"] == MANIFEST["golden"]["versions"]
    listed = json.loads(_client(home, "list", "--json").stdout)
    assert {(x["project"], x["version"]) for x in listed} == {("demo-pkg", "1.1"),
                                                              ("dep-a", "2.0")}
    shown = json.loads(_client(home, "show", "demo-pkg", "--json").stdout)
    assert "1.0" in json.dumps(shown) and "use 1.1" in json.dumps(shown)  # the yank reason
    r = _client(home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output
    got = tmp_path / "dl" / "demo_pkg-1.0-py3-none-any.whl"
    assert got.read_bytes() == (GOLDEN / "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
                                ).read_bytes()
    assert _client(home, "verify", got).exit_code == 0


def test_golden_root_chain_and_keys() -> None:
    """The client followed root 1 → 2 (online key rotation) above; the files say so too."""
    from tuf.api.metadata import Metadata

    r1 = Metadata.from_file(str(GOLDEN / "metadata" / "1.root.json"))
    r2 = Metadata.from_file(str(GOLDEN / "metadata" / "2.root.json"))
    k = MANIFEST["keys"]
    assert r1.signed.roles["timestamp"].keyids == [k["online"]]
    assert r2.signed.roles["timestamp"].keyids == [k["online2"]]
    assert set(r2.signatures) == {k["root"]}
    assert (GOLDEN / "metadata" / "root.json").read_bytes() == (
        GOLDEN / "metadata" / "2.root.json").read_bytes()


def test_golden_fingerprints_match_key_files() -> None:
    for name, fpr in MANIFEST["keys"].items():
        r = cli("key", "fingerprint", VECTORS / "keys" / f"{name}.pub")
        assert r.stdout.strip() == fpr
        r = cli("key", "fingerprint", VECTORS / "keys" / f"{name}.key")
        assert r.stdout.strip() == fpr


# ---- forgeries -------------------------------------------------------------------------

FORGERIES = sorted(MANIFEST["forgeries"])


def test_every_forgery_is_described() -> None:
    assert set(FORGERIES) == {p.name for p in (VECTORS / "forgeries").iterdir()}
    assert set(FORGERIES) == {"tampered-wheel", "targets-wrong-key", "attacker-chain",
                              "shard-mismatch", "timestamp-rollback"}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forgery_repo_check(forgery: str, tmp_path: Path) -> None:
    repo = _overlay(forgery, tmp_path / "repo")
    r = cli("repo", "check", repo)
    assert r.exit_code == MANIFEST["forgeries"][forgery]["check"], r.output


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forgery_refused_by_client(forgery: str, home: Path, tmp_path: Path) -> None:
    expect = MANIFEST["forgeries"][forgery]
    repo = tmp_path / "repo"
    if "update_after_golden" in expect:
        # the client first accepts the golden repository, then the forgery appears
        shutil.copytree(GOLDEN, repo)
        _add(home, repo)
        assert _client(home, "update").exit_code == 0
        shutil.rmtree(repo)
        _overlay(forgery, repo)
        before = _tree(home)
        r = _client(home, "update")
        assert r.exit_code == expect["update_after_golden"], r.output
        assert "rollback" in r.stderr.lower() or "version" in r.stderr.lower(), r.stderr
        # trusted state unchanged (status.json records the failed attempt)
        after = _tree(home)
        assert {k: v for k, v in after.items() if not k.endswith("status.json")} == {
            k: v for k, v in before.items() if not k.endswith("status.json")}
        return
    _overlay(forgery, repo)
    _add(home, repo)
    r = _client(home, "update")
    assert r.exit_code == expect["update"], r.output
    if "download" in expect:
        r = _client(home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
        assert r.exit_code == expect["download"], r.output
        assert not list(tmp_path.glob("dl/*.whl"))  # no unverified bytes handed out
    else:
        assert _client(home, "list").stdout == ""  # nothing was accepted


def test_fresh_client_accepts_rolled_back_but_valid_state(home: Path, tmp_path: Path) -> None:
    """Why the rollback vector needs a client with history: alone it is a valid repository."""
    _add(home, _overlay("timestamp-rollback", tmp_path / "repo"))
    assert _client(home, "update").exit_code == 0


# ---- format 2: golden-v2 (golden migrated) and its forgeries ----------------------------

GOLDEN_V2 = VECTORS / "golden-v2"
FORGERIES_V2 = sorted(MANIFEST["forgeries_v2"])


def _overlay_v2(forgery: str, dest: Path) -> Path:
    shutil.copytree(GOLDEN_V2, dest)
    for rel, data in _tree(VECTORS / "forgeries-v2" / forgery).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    return dest


def test_golden_v2_client_update_and_check(home: Path, tmp_path: Path) -> None:
    assert cli("repo", "check", GOLDEN_V2).exit_code == 0
    _add(home, GOLDEN_V2)
    r = _client(home, "update", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["versions"] == MANIFEST["golden_v2"]["versions"]
    listed = json.loads(_client(home, "list", "--json").stdout)
    assert {(x["project"], x["version"]) for x in listed} == {("demo-pkg", "1.1"),
                                                              ("dep-a", "2.0")}
    r = _client(home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output


def test_golden_client_follows_migration_to_golden_v2(home: Path, tmp_path: Path) -> None:
    """A client that added golden (format 1) follows the migration with its keyring."""
    repo = tmp_path / "repo"
    shutil.copytree(GOLDEN, repo)
    _add(home, repo)
    assert _client(home, "update").exit_code == 0
    shutil.rmtree(repo)
    shutil.copytree(GOLDEN_V2, repo)
    r = _client(home, "update", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["versions"] == MANIFEST["golden_v2"]["versions"]


def test_every_v2_forgery_is_described() -> None:
    assert set(FORGERIES_V2) == {p.name for p in (VECTORS / "forgeries-v2").iterdir()}


@pytest.mark.parametrize("forgery", FORGERIES_V2)
def test_v2_forgery_refused(forgery: str, home: Path, tmp_path: Path) -> None:
    expect = MANIFEST["forgeries_v2"][forgery]
    repo = tmp_path / "repo"
    assert cli("repo", "check", _overlay_v2(forgery, tmp_path / "c")).exit_code == \
        expect["check"]
    if "update_after_golden" in expect:
        shutil.copytree(GOLDEN_V2, repo)
        _add(home, repo)
        assert _client(home, "update").exit_code == 0
        shutil.rmtree(repo)
        _overlay_v2(forgery, repo)
        r = _client(home, "update")
        assert r.exit_code == expect["update_after_golden"], r.output
        assert "version" in r.stderr.lower() or "rollback" in r.stderr.lower(), r.stderr
        return
    _overlay_v2(forgery, repo)
    _add(home, repo)
    r = _client(home, "update")
    assert r.exit_code == expect["update"], r.output
    assert _client(home, "list").stdout == ""


# ---- reproducibility -------------------------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generate_reproduces_committed_bytes(tmp_path: Path) -> None:
    _generator().generate(tmp_path / "out")
    for sub in ("keys", "golden", "forgeries", "golden-v2", "forgeries-v2"):
        committed, fresh = _tree(VECTORS / sub), _tree(tmp_path / "out" / sub)
        assert sorted(committed) == sorted(fresh), sub
        differ = [k for k in committed if committed[k] != fresh[k]]
        assert not differ, f"{sub}: regenerated bytes differ: {differ}"
    assert (VECTORS / "vectors.json").read_bytes() == (tmp_path / "out" / "vectors.json"
                                                       ).read_bytes()
