"""``repotool mirror`` (repotool/mirror.py, mirror_walk.py): a verified, incremental copy.

The origin is a real repository on a real HTTP server on loopback; DEST is then added by
a second home with the publisher's key, updated, and installed from with real pip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import small_repos
from builders import sha256_file, tamper
from conftest import cli
from servers import RepoServer
from venvs import make_venv, pip_freeze

from repotool.format.layout import dist_target_path, hashed_name


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    return small_repos.factory(tmp_path)

WHEEL_10 = "demo_pkg-1.0-py3-none-any.whl"
WHEEL_11 = "demo_pkg-1.1-py3-none-any.whl"


def ok(*args: Any) -> Any:
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return r


def add_origin(home: Path, url: str, pub: Any) -> None:
    ok("--home", home, "source", "add", "demo", url, "--key", pub.key.public)
    ok("--home", home, "update")


def mirror(home: Path, dest: Path, code: int = 0) -> Any:
    r = cli("--home", home, "mirror", "demo", dest, "--json")
    assert r.exit_code == code, r.output
    return json.loads(r.stdout) if code == 0 else r


def client_of(dest: Path, home: Path, pub: Any) -> None:
    """A second machine adds DEST with the publisher's key and updates from it."""
    ok("--home", home, "source", "add", "m", dest, "--key", pub.key.public)
    ok("--home", home, "update")


def test_mirror_is_a_repository_clients_add_with_the_publishers_key(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "dest"
    with RepoServer(pub.root) as server:
        add_origin(home, server.url, pub)
        first = mirror(home, dest)
        # wheel, its .metadata (PEP 658), shard, 4 pages
        assert first["files_fetched"] == first["targets"] == 7
        assert first["files_present"] == 0 and first["versions"]["timestamp"] == 1
        again = mirror(home, dest)  # nothing new: nothing fetched but the timestamp
        assert (again["files_fetched"], again["metadata_written"]) == (0, 0)
        assert again["files_present"] == 7 and again["bytes_fetched"] < 2000
        pub.add_wheel("demo-pkg", "1.1")
        pub.sign()
        server.clear_log()
        refresh = mirror(home, dest)
    # the new wheel, its .metadata, its shard and its two project pages; the unchanged
    # list pages not
    assert refresh["files_fetched"] == 5 and refresh["files_present"] == 4
    fetched = [p for p in server.requests if not p.startswith("/metadata/")]
    assert len(fetched) == 5 and any(p.endswith(WHEEL_11) for p in fetched)
    assert not (dest / ".repotool").exists()
    # DEST is servable as-is: a path, and a static HTTP server; plain pip names exist
    assert (dest / "files" / "demo-pkg" / WHEEL_11).is_file()
    assert (dest / "metadata" / "1.root.json").read_bytes() == \
        (pub.root / "metadata" / "1.root.json").read_bytes()
    client_of(dest, tmp_path / "far", pub)
    ok("--home", tmp_path / "far", "download", "demo-pkg==1.1", "-d", tmp_path / "dl")
    with RepoServer(dest) as far_server:
        ok("--home", tmp_path / "far2", "source", "add", "m", far_server.url, "--key",
           pub.key.public)
        ok("--home", tmp_path / "far2", "update")
    assert ok("repo", "check", dest).stdout.endswith("0 problem(s)\n")


def test_mirror_follows_a_root_rotation_and_copies_every_root(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    from conftest import make_key

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_origin(home, str(pub.root), pub)
    new = make_key(tmp_path / "k2", "new")
    from datetime import UTC, datetime

    pub.repo.rotate("root", add=[new.public_key()], remove=[pub.key.fingerprint],
                    threshold=None, signers=[pub.key.signer(), new.signer()],
                    now=datetime.now(UTC))
    pub.sign()
    # the keyring at root 1 (python-tuf walks to 2), then at root 2 (1 checked as a chain)
    for dest in (tmp_path / "dest-a", tmp_path / "dest-b"):
        got = mirror(home, dest)
        assert got["versions"]["root"] == 2
        for n in ("1.root.json", "2.root.json"):
            assert (dest / "metadata" / n).read_bytes() == \
                (pub.root / "metadata" / n).read_bytes()
        assert (dest / "metadata" / "root.json").read_bytes() == \
            (pub.root / "metadata" / "2.root.json").read_bytes()
        ok("--home", home, "update")
    client_of(dest, tmp_path / "far", pub)  # the original key still adds it


def test_arbitrary_content_tampered_origin_file_stops_mirror_and_keeps_dest(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "dest"
    add_origin(home, str(pub.root), pub)
    mirror(home, dest)
    before = (dest / "metadata" / "timestamp.json").read_bytes()
    whl = pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    tamper(pub.root / hashed_name(dist_target_path("demo-pkg", WHEEL_11), sha256_file(whl)))
    r = mirror(home, dest, code=3)
    assert f"files/demo-pkg/{WHEEL_11}" in r.stderr and "Traceback" not in r.output
    assert "previous state" in r.stderr
    assert (dest / "metadata" / "timestamp.json").read_bytes() == before
    assert not (dest / "files" / "demo-pkg" / WHEEL_11).exists()
    assert not any(p.name.endswith(WHEEL_11) for p in (dest / "files" / "demo-pkg").iterdir())
    client_of(dest, tmp_path / "far", pub)  # DEST's old state is still consistent
    r = cli("--home", tmp_path / "far", "show", "demo-pkg", "--json")
    assert [v["version"] for v in json.loads(r.stdout)["sources"][0]["versions"]] == ["1.0"]


def test_mix_and_match_forged_delegated_role_refused(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    """A bin validly signed by the targets key, but not the one the snapshot names."""
    from tuf.api.metadata import Metadata, TargetFile
    from tuf.api.serialization.json import JSONSerializer

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_origin(home, str(pub.root), pub)
    victim = sorted((pub.root / "metadata").glob("1.bins-*.json"))[0]
    md = Metadata.from_bytes(victim.read_bytes())
    md.signed.targets["files/evil/evil-1.0-py3-none-any.whl"] = TargetFile(
        1, {"sha256": "0" * 64}, "files/evil/evil-1.0-py3-none-any.whl")
    md.sign(pub.key.signer())
    victim.write_bytes(md.to_bytes(JSONSerializer(compact=True)))
    dest = tmp_path / "dest"
    r = mirror(home, dest, code=3)
    assert victim.name in r.stderr
    assert "snapshot" in r.stderr or "more bytes than the signed" in r.stderr
    assert not (dest / "metadata" / "timestamp.json").exists()
    assert not (dest / "files" / "evil").exists()


def test_arbitrary_content_forged_old_root_refused(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    """With the keyring at root 2, the origin's 1.root.json is replaced by a forgery."""
    from datetime import UTC, datetime

    from conftest import make_key

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_origin(home, str(pub.root), pub)
    new = make_key(tmp_path / "k2", "new")
    pub.repo.rotate("root", add=[new.public_key()], remove=[], threshold=None,
                    signers=[pub.key.signer(), new.signer()], now=datetime.now(UTC))
    pub.sign()
    ok("--home", home, "update")
    evil = make_published(name="demo", projects={"demo-pkg": ["6.6"]})
    (pub.root / "metadata" / "1.root.json").write_bytes(
        (evil.root / "metadata" / "1.root.json").read_bytes())
    dest = tmp_path / "dest"
    r = mirror(home, dest, code=3)
    assert "root" in r.stderr
    assert not (dest / "metadata" / "1.root.json").exists()


def test_rollback_mirror_never_moves_dest_back(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    import shutil

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    old = tmp_path / "old-origin"
    shutil.copytree(pub.root, old)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    dest = tmp_path / "dest"
    add_origin(home, str(pub.root), pub)
    mirror(home, dest)
    before = (dest / "metadata" / "timestamp.json").read_bytes()
    # another home, whose keyring never saw version 2, mirrors a stale origin into DEST
    other = tmp_path / "other"
    add_origin(other, str(old), pub)
    r = mirror(other, dest, code=3)
    assert "timestamp" in r.stderr.lower() or "rollback" in r.stderr.lower()
    assert (dest / "metadata" / "timestamp.json").read_bytes() == before


def test_unknown_source_and_publisher_dir_are_refused(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    r = cli("--home", home, "mirror", "nope", tmp_path / "d")
    assert r.exit_code == 1 and "no source named" in r.stderr
    add_origin(home, str(pub.root), pub)
    r = cli("--home", home, "mirror", "demo", pub.root)
    assert r.exit_code == 1 and "publisher's repository" in r.stderr


def test_kill_9_during_mirror_then_resume_and_install_with_pip(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    dest = tmp_path / "dest"
    with RepoServer(pub.root) as server:
        add_origin(home, server.url, pub)
        mirror(home, dest)
        before = (dest / "metadata" / "timestamp.json").read_bytes()
        for i in range(8):
            pub.add_wheel(f"extra-{i}", "1.0")
        pub.add_wheel("demo-pkg", "1.1")
        pub.sign()
        import re

        server.delay[re.compile(r"\.whl$")] = 0.3  # slow files: kill lands mid-copy
        env = {**os.environ, "REPOTOOL_HOME": str(home)}
        proc = subprocess.Popen([sys.executable, "-m", "repotool", "mirror", "demo",
                                 str(dest)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = [p for p in (dest / "files").rglob("*.whl") if "extra" in p.name]
            if len(got) >= 2:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # killed mid-way: DEST still holds its previous, consistent state
        assert (dest / "metadata" / "timestamp.json").read_bytes() == before
        far = tmp_path / "far"
        client_of(dest, far, pub)
        server.delay.clear()
        resumed = mirror(home, dest)  # re-run: completes, fetching only what is missing
        assert resumed["files_present"] >= 1 + 2  # the old wheel and the two copied
        assert resumed["files_fetched"] == resumed["targets"] - resumed["files_present"]
    ok("--home", far, "update")
    py = make_venv(tmp_path / "venv")
    r = ok("--home", far, "install", "--python", py, "demo-pkg==1.1", "extra-3")
    assert "installed demo-pkg 1.1 from m" in r.stdout
    assert pip_freeze(py) == {"demo-pkg": "1.1", "extra-3": "1.0"}


def test_malicious_mirror_file_taken_from_the_sources_next_location(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    import shutil

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    good = tmp_path / "good-copy"
    shutil.copytree(pub.root, good)
    whl = pub.dist / WHEEL_10
    tamper(pub.root / hashed_name(dist_target_path("demo-pkg", WHEEL_10), sha256_file(whl)))
    ok("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
       "--mirror", good.as_uri())
    dest = tmp_path / "dest"
    got = mirror(home, dest)
    assert got["files_fetched"] == got["targets"]
    [failed] = got["failures"]  # the lying location is reported
    assert pub.root.as_uri() in failed and WHEEL_10 in failed
    copied = dest / hashed_name(dist_target_path("demo-pkg", WHEEL_10), sha256_file(whl))
    assert copied.read_bytes() == whl.read_bytes()
