"""Developer keys (SPEC §6.2, PEP 480): a terminating delegation of projects to their
developers' keys, end to end through the CLI and a client over path and http; and the
attacks it stops, through ``update`` and ``download`` (issue 14's repotool-level
delegation attack).
"""

from __future__ import annotations

import copy
import hashlib
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from attacks import (
    RolePub,
    current_files,
    forge_targets,
    keyring_digest,
    load_md,
    resign,
    role_separated_repo,
    write_md,
)
from builders import build_wheel
from conftest import KeyPair, cli, make_key
from tuf.api.metadata import MetaFile, TargetFile

from repotool.client.home import Home
from repotool.format.delegations import role_name
from repotool.format.index import FileEntry, Project, Shard, shard_of, shard_path
from repotool.format.layout import dist_target_path, hashed_name
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.transport.limits import Limits

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs

PATTERN = "team-*"
ROLE = role_name(PATTERN)


@dataclass
class World:
    pub: RolePub
    dev: KeyPair
    home: Path
    dist: Path


def _ok(*args: Any) -> str:
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return r.stdout


def _release(w: World, version: str, *keys: KeyPair) -> Path:
    whl = build_wheel(w.dist, "team-pkg", version)
    _ok("repo", "add", w.pub.root, whl)
    _ok("repo", "sign", w.pub.root, *[x for k in keys for x in ("--key", k.private)])
    return whl


@pytest.fixture(params=["path", "http"])
def world(request: Any, tmp_path: Path, locations: Any) -> World:
    """Over path and http: the attacks and the developer's workflow."""
    return _world(tmp_path, locations, request.param)


@pytest.fixture
def world1(tmp_path: Path, locations: Any) -> World:
    """One transport, for the tests the transport does not change."""
    return _world(tmp_path, locations, "path")


def _world(tmp_path: Path, locations: Any, kind: str) -> World:
    pub = role_separated_repo(tmp_path / "sep")
    dev = make_key(tmp_path / "dev", "dev")
    w = World(pub, dev, tmp_path / "home", tmp_path / "dist")
    out = _ok("repo", "delegate", pub.root, PATTERN, "--to", dev.public,
              "--key", pub.targets_key.private, "--key", pub.online_key.private)
    assert ROLE in out
    # the first release also lists the project (simple/index.*, the targets keys' pages)
    _release(w, "1.0", dev, pub.online_key, pub.targets_key)
    loc = locations.serve(pub.root, kind)
    _ok("--home", w.home, "source", "add", "demo", loc.url, "--key", pub.root_key.public,
        *loc.add_args)
    _ok("--home", w.home, "update")
    return w


def _listing(w: World) -> list[str]:
    return _ok("--home", w.home, "list").splitlines()


def _refused(w: World, *words: str) -> str:
    before = keyring_digest(w.home, "demo")
    r = cli("--home", w.home, "update")
    assert r.exit_code == 3, r.output
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    for word in words:
        assert word in r.stderr, r.stderr
    assert keyring_digest(w.home, "demo") == before
    return r.stderr


def _republish_role(w: World, mutate: Any, *signers: Any) -> None:
    """A new version of the developer role changed by ``mutate``, signed by ``signers``,
    with a snapshot and timestamp naming it signed by the (stolen or honest) online key."""
    meta = w.pub.root / "metadata"
    files = current_files(w.pub.root)
    snap = load_md(files["snapshot"])
    v = snap.signed.meta[f"{ROLE}.json"].version
    role = load_md(meta / f"{v}.{ROLE}.json")
    mutate(role.signed)
    role.signed.version += 1
    rpath = meta / f"{role.signed.version}.{ROLE}.json"
    write_md(rpath, resign(role, *signers))
    snap.signed.version += 1
    snap.signed.meta[f"{ROLE}.json"] = MetaFile.from_data(
        role.signed.version, rpath.read_bytes(), ["sha256"])
    spath = meta / f"{snap.signed.version}.snapshot.json"
    online = w.pub.online_key.signer()
    write_md(spath, resign(snap, online))
    ts = load_md(meta / "timestamp.json")
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(snap.signed.version, spath.read_bytes(),
                                                 ["sha256"])
    write_md(meta / "timestamp.json", resign(ts, online))


def _evil(w: World, project: str, version: str) -> tuple[FileEntry, TargetFile, str]:
    """A malicious wheel placed in the tree under its hash-prefixed name."""
    whl = build_wheel(w.dist / "evil", project, version)
    data = whl.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    path = dist_target_path(project, whl.name)
    dest = w.pub.root / hashed_name(path, sha)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    entry = FileEntry(whl.name, version, sha, len(data), None, (), "2026-01-01T00:00:00Z", False)
    return entry, TargetFile(len(data), {"sha256": sha}, path), path


def _put_target(w: World, path: str, data: bytes) -> TargetFile:
    tf = TargetFile.from_data(path, data, ["sha256"])
    dest = w.pub.root / hashed_name(path, tf.hashes["sha256"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return tf


# ---- the developer's workflow ------------------------------------------------------------


def test_developer_publishes_with_own_key_and_online_key(world: World, tmp_path: Path) -> None:
    w = world
    keys = json.loads(_ok("repo", "keys", w.pub.root, "--json"))
    [d] = keys["delegations"]
    assert d["pattern"] == PATTERN and d["keys"] == [w.dev.fingerprint] and d["published"]
    assert f"delegation {PATTERN} -> {ROLE} (terminating)" in _ok("repo", "keys", w.pub.root)
    # later releases: the developer's key and the online key, no targets key
    whl = _release(w, "1.1", w.dev, w.pub.online_key)
    _ok("--home", w.home, "update")
    assert any(line.startswith("team-pkg\t1.1") for line in _listing(w))
    out = tmp_path / "dl"
    _ok("--home", w.home, "download", "team-pkg==1.1", "-d", out)
    assert (out / whl.name).read_bytes() == whl.read_bytes()
    assert "demo" in _ok("--home", w.home, "verify", out / whl.name)
    with RunningProxy(VerifiedIndex(Home(w.home), Limits())) as proxy:  # pip's view
        with urllib.request.urlopen(f"{proxy.url.rstrip('/')}/simple/team-pkg/") as resp:
            page = resp.read().decode()
        assert whl.name in page and hashlib.sha256(whl.read_bytes()).hexdigest() in page
    # the repository's own keys cannot sign a delegated project's release
    _ok("repo", "add", w.pub.root, build_wheel(w.dist, "team-pkg", "1.2"))
    r = cli("repo", "sign", w.pub.root, "--key", w.pub.targets_key.private,
            "--key", w.pub.online_key.private)
    assert r.exit_code == 3 and ROLE in r.stderr and w.dev.fingerprint in r.stderr, r.output
    # the project index is the developer role's target, not in any top-level shard
    tmd = load_md(current_files(w.pub.root)["targets"])
    assert shard_path(shard_of("team-pkg")) not in tmd.signed.targets
    report = _ok("repo", "check", w.pub.root)
    assert "3 distribution file(s): 0 problem(s)" in report, report  # delegated ones too
    (w.pub.root / "files" / "team-pkg" / whl.name).write_bytes(b"not the wheel")
    r = cli("repo", "check", w.pub.root)
    assert r.exit_code == 3 and f"files/team-pkg/{whl.name}" in r.output, r.output


def test_developer_prepares_online_signer_publishes(world1: World) -> None:
    """The developer signs without the online key; nothing is visible until the online
    signer's own run publishes exactly what the developer signed."""
    w = world1
    whl = build_wheel(w.dist, "team-pkg", "1.1")
    _ok("repo", "add", w.pub.root, whl)
    ts_before = (w.pub.root / "metadata" / "timestamp.json").read_bytes()
    out = _ok("repo", "sign", w.pub.root, "--key", w.dev.private)
    assert f"prepared: {ROLE} v2" in out, out
    assert (w.pub.root / "metadata" / "timestamp.json").read_bytes() == ts_before
    assert not (w.pub.root / "metadata" / f"2.{ROLE}.json").exists()
    _ok("--home", w.home, "update")
    assert not any(line.startswith("team-pkg\t1.1") for line in _listing(w))
    # a prepared role changed after the developer signed it is not published
    prepared = w.pub.root / ".repotool" / "prepared" / f"{ROLE}.json"
    good = prepared.read_bytes()
    md = load_md(prepared)
    md.signed.targets.popitem()
    write_md(prepared, md)  # same signature, other content
    r = cli("repo", "sign", w.pub.root, "--key", w.pub.online_key.private)
    assert r.exit_code == 3 and w.dev.fingerprint in r.stderr, r.output
    prepared.write_bytes(good)
    out = _ok("repo", "sign", w.pub.root, "--key", w.pub.online_key.private)
    assert f"{ROLE} v2" in out, out
    assert not prepared.exists()
    _ok("--home", w.home, "update")
    assert any(line.startswith("team-pkg\t1.1") for line in _listing(w))


def test_refresh_leaves_prepared_role_and_pending_delegation_alone(world1: World,
                                                                   tmp_path: Path) -> None:
    """'repo sign --refresh' (the online key's cron job) re-signs snapshot and timestamp
    only: a role the developer prepared and a delegation not yet signed stay pending."""
    from repotool.keys import public_from_file
    from repotool.publish.delegation import delegate
    from repotool.publish.tree import RepositoryTree

    w = world1
    whl = build_wheel(w.dist, "team-pkg", "1.1")
    _ok("repo", "add", w.pub.root, whl)
    assert f"prepared: {ROLE} v2" in _ok("repo", "sign", w.pub.root, "--key", w.dev.private)
    other = make_key(tmp_path / "other", "other")
    delegate(RepositoryTree(w.pub.root), "other-*", [public_from_file(other.public)], 1)
    targets_before = json.loads(_ok("repo", "keys", w.pub.root, "--json"))["roles"]["targets"]
    out = _ok("repo", "sign", w.pub.root, "--refresh", "--key", w.pub.online_key.private)
    assert "snapshot v" in out and "targets v" not in out and ROLE not in out, out
    work = w.pub.root / ".repotool"
    assert (work / "prepared" / f"{ROLE}.json").exists()
    assert (work / "delegations.json").exists()
    doc = json.loads(_ok("repo", "keys", w.pub.root, "--json"))
    assert doc["roles"]["targets"] == targets_before
    assert {d["pattern"]: d["published"] for d in doc["delegations"]} == {
        PATTERN: True, "other-*": False}
    _ok("--home", w.home, "update")
    assert not any(line.startswith("team-pkg\t1.1") for line in _listing(w))
    # the online signer's ordinary run then publishes the prepared role (the new
    # delegation re-signs targets: that run needs the targets key too)
    out = _ok("repo", "sign", w.pub.root, "--key", w.pub.online_key.private,
              "--key", w.pub.targets_key.private)
    assert f"{ROLE} v2" in out, out
    assert not (work / "prepared").exists() and not (work / "delegations.json").exists()
    _ok("--home", w.home, "update")
    assert any(line.startswith("team-pkg\t1.1") for line in _listing(w))


# ---- attacks -------------------------------------------------------------------------------


def test_stolen_online_key_cannot_change_delegated_project_file(world: World) -> None:
    w = world
    old = _listing(w)
    _entry, tf, _path = _evil(w, "team-pkg", "1.0")

    def swap(role: Any) -> None:  # the 1.0 wheel's entry now names the attacker's bytes
        for p in list(role.targets):
            if p.startswith("files/team-pkg/"):
                role.targets[p] = TargetFile(tf.length, tf.hashes, p)

    _republish_role(w, swap, w.pub.online_key.signer())
    _refused(w, f"delegated role {ROLE}", "not signed by 1 of its developer keys")
    assert _listing(w) == old
    r = cli("--home", w.home, "download", "team-pkg==1.0", "-d", w.home.parent / "dl")
    # the failed update is not fallen through: no attacker's byte, a refusal (exit 3)
    assert r.exit_code == 3 and "could not be updated" in r.stderr, r.output


def test_stolen_targets_key_cannot_add_file_to_delegated_project(world: World) -> None:
    w = world
    old = _listing(w)
    entry, _tf, _path = _evil(w, "team-pkg", "9.0")
    sid = shard_of("team-pkg")

    def add(targets: Any) -> None:  # the project in a top-level shard, signed by targets
        sh = Shard(sid)
        sh.projects["team-pkg"] = Project("team-pkg", "evil", [entry])
        targets.targets[shard_path(sid)] = _put_target(w, shard_path(sid), sh.to_bytes())

    forge_targets(w.pub.root, add, w.pub.targets_key.signer(), w.pub.online_key.signer())
    _refused(w, "project team-pkg is delegated", "only the developer keys")
    assert _listing(w) == old
    r = cli("--home", w.home, "download", "team-pkg==9.0", "-d", w.home.parent / "dl")
    assert r.exit_code == 3 and not (w.home.parent / "dl").exists(), r.output


def test_developer_key_cannot_vouch_outside_its_pattern(world: World) -> None:
    w = world
    old = _listing(w)
    entry, tf, path = _evil(w, "demo-pkg", "9.0")  # the repository's own project

    def outside(role: Any) -> None:
        sh = Shard(shard_of("demo-pkg"))
        sh.projects["demo-pkg"] = Project("demo-pkg", "evil", [entry])
        role.targets[path] = tf
        ipath = "index/projects/demo-pkg.json"
        role.targets[ipath] = _put_target(w, ipath, sh.to_bytes())

    _republish_role(w, outside, w.dev.signer())
    _refused(w, "outside its projects team-*")
    assert _listing(w) == old


def test_developer_role_file_without_index_match_refused(world1: World) -> None:
    """The project index a developer role lists must match its own file targets."""
    w = world1
    entry, _tf, _path = _evil(w, "team-pkg", "9.0")
    role_md = copy.deepcopy(load_md(w.pub.root / "metadata" / f"1.{ROLE}.json"))
    ipath = "index/projects/team-pkg.json"
    itf = role_md.signed.targets[ipath]
    doc = Shard.from_bytes((w.pub.root / hashed_name(ipath, itf.hashes["sha256"])).read_bytes(),
                           shard_of("team-pkg"))
    doc.projects["team-pkg"].files.append(entry)  # listed in the index, not as a target

    def index_only(role: Any) -> None:
        role.targets[ipath] = _put_target(w, ipath, doc.to_bytes())

    _republish_role(w, index_only, w.dev.signer())
    _refused(w, "not vouched for by its developer role")


def test_python_tuf_walks_bin_to_developer_role(world1: World, tmp_path: Path) -> None:
    """A generic TUF client reaches a delegated file by path: targets → its bin → the
    developer role (terminating), verified with the developer's key."""
    from servers import RepoServer
    from tuf.ngclient import Updater

    w = world1
    whl = _release(w, "1.1", w.dev, w.pub.online_key)
    (tmp_path / "meta").mkdir()
    (tmp_path / "dl").mkdir()
    with RepoServer(w.pub.root) as srv:
        up = Updater(str(tmp_path / "meta"), srv.url + "metadata/", str(tmp_path / "dl"),
                     srv.url, bootstrap=(w.pub.root / "metadata/1.root.json").read_bytes())
        up.refresh()
        info = up.get_targetinfo(dist_target_path("team-pkg", whl.name))
        assert info is not None
        assert Path(up.download_target(info)).read_bytes() == whl.read_bytes()
        assert (tmp_path / "meta" / f"{ROLE}.json").exists()  # vouched for by that role


def test_redelegation_by_targets_key_is_announced(world1: World, tmp_path: Path) -> None:
    """What a targets key CAN do: re-delegate (here with the online key and a new
    developer key). It is signed, visible in 'repo keys', and announced on update."""
    w = world1
    new_dev = make_key(tmp_path / "newdev", "dev")
    r = cli("repo", "delegate", w.pub.root, PATTERN, "--to", new_dev.public,
            "--key", w.pub.targets_key.private, "--key", w.pub.online_key.private)
    assert r.exit_code == 3 and new_dev.fingerprint in r.stderr, r.output  # must re-sign
    _ok("repo", "delegate", w.pub.root, PATTERN, "--to", new_dev.public,
        "--key", w.pub.targets_key.private, "--key", w.pub.online_key.private,
        "--key", new_dev.private)
    [d] = json.loads(_ok("repo", "keys", w.pub.root, "--json"))["delegations"]
    assert d["keys"] == [new_dev.fingerprint]
    r = cli("--home", w.home, "update")
    assert r.exit_code == 0, r.output
    assert (f"developer keys of {PATTERN} in demo changed: + {new_dev.fingerprint}, "
            f"- {w.dev.fingerprint}") in r.stderr, r.stderr
    again = cli("--home", w.home, "update")
    assert "changed" not in again.stderr, again.output
    r = cli("--home", w.home, "source", "show", "demo", "--history", "--json")
    events = [e for e in json.loads(r.stdout) if e.get("kind") == "delegation"]
    assert len(events) == 1 and new_dev.fingerprint in events[0]["how"], r.stdout
    assert "delegation  " in _ok("--home", w.home, "source", "show", "demo", "--history")


def test_freeze_expired_developer_role_refused(world1: World) -> None:
    """A developer role past its expiry is refused (the online key keeps re-signing
    snapshot and timestamp, but cannot refresh the developer's role)."""
    from datetime import UTC, datetime, timedelta

    w = world1
    old = _listing(w)
    _ok("repo", "add", w.pub.root, build_wheel(w.dist, "team-pkg", "1.1"))
    past = datetime.now(UTC) - timedelta(hours=1)
    summary = w.pub.repo.sign([w.dev.signer()], now=past, expires=60)  # prepared
    assert summary.prepared == {ROLE: 2}
    _ok("repo", "sign", w.pub.root, "--key", w.pub.online_key.private)
    err = _refused(w, f"delegated role {ROLE} expired on")
    assert (past + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M") in err, err
    assert _listing(w) == old
    state = json.loads((w.home / "sources/demo/keyring/state.json").read_bytes())
    assert ROLE in state["expires"]  # recorded with the top-level roles' expiry


def test_freeze_verified_state_expires_with_developer_role(world1: World) -> None:
    """The keyring records the developer role's expiry: once it passes, the verified
    state is not handed out (download refuses) until an update brings a fresh one."""
    from repotool.client.home import Home as _Home
    from repotool.client.state import load_view

    w = world1
    kr_state = w.home / "sources/demo/keyring/state.json"
    state = json.loads(kr_state.read_bytes())
    assert ROLE in state["expires"]
    state["expires"][ROLE] = "2000-01-01T00:00:00+00:00"  # as if it had run out since
    kr_state.write_text(json.dumps(state))
    home = _Home(w.home)
    view = load_view(home, home.source("demo"))
    assert view is not None
    assert view.expired(datetime_now()) == f"{ROLE} metadata expired on 2000-01-01 00:00:00 UTC"
    r = cli("--home", w.home, "download", "team-pkg", "-d", w.home.parent / "dl")
    assert r.exit_code == 3 and "expired" in r.stderr, r.output


def datetime_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_delegating_a_published_project_moves_it_to_the_developer_role(
    world1: World, tmp_path: Path
) -> None:
    """demo-pkg was published by the repository's own keys; delegating it moves its
    files, pages and index entry into the new role, signed by the developer then."""
    w = world1
    dev2 = make_key(tmp_path / "dev2", "dev")
    base = ("repo", "delegate", w.pub.root, "demo-*", "--to", dev2.public,
            "--key", w.pub.targets_key.private, "--key", w.pub.online_key.private)
    r = cli(*base)
    assert r.exit_code == 3 and dev2.fingerprint in r.stderr, r.output
    _ok(*base, "--key", dev2.private)
    role = role_name("demo-*")
    tmd = load_md(current_files(w.pub.root)["targets"])
    assert shard_path(shard_of("demo-pkg")) not in tmd.signed.targets
    snap = load_md(current_files(w.pub.root)["snapshot"])
    dmd = load_md(w.pub.root / "metadata" / f"{snap.signed.meta[f'{role}.json'].version}."
                  f"{role}.json")
    assert sorted(dmd.signed.targets) == [
        "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl",
        "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl.metadata", "index/projects/demo-pkg.json",
        "simple/demo-pkg/index.html", "simple/demo-pkg/index.json"]
    assert "0 problem(s)" in _ok("repo", "check", w.pub.root)
    _ok("--home", w.home, "update")
    assert any(line.startswith("demo-pkg\t1.0") for line in _listing(w))
    _ok("--home", w.home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    # from now on a release of demo-pkg needs dev2's key
    _ok("repo", "add", w.pub.root, build_wheel(w.dist, "demo-pkg", "1.1"))
    r = cli("repo", "sign", w.pub.root, "--key", w.pub.targets_key.private,
            "--key", w.pub.online_key.private)
    assert r.exit_code == 3 and dev2.fingerprint in r.stderr, r.output
