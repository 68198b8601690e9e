"""Local state integrity (SPEC §3.9) and bad input (§3.10): kill -9 at random moments,
concurrent commands, malformed local files and hostile remote bytes — each leaves the
trusted state unchanged and gives one clear error line with the right exit code."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
from attacks import keyring_digest, popen_repotool, run_repotool, tree_digest
from conftest import cli

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _lines(home: Path) -> list[str]:
    r = cli("--home", home, "list")
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def _one_clear_error(r, code: int) -> None:  # type: ignore[no-untyped-def]
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("repotool: error: "), r.stderr


# ---- §3.9 kill -9 and concurrency --------------------------------------------------------------


def test_kill_9_during_update_at_random_moments_leaves_a_usable_state(
    pubs, home: Path, locations
) -> None:
    projects = {f"proj-{i}": ["1.0"] for i in range(6)}
    pub = pubs(projects=projects)
    srv = locations.server(pub.root)
    assert cli("--home", home, "source", "add", "demo", srv.url, "--key",
               pub.key.public).exit_code == 0
    t0 = time.monotonic()
    r = run_repotool("--home", home, "update")
    full = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    rng = random.Random(20261125)
    killed_mid_way = 0
    for i in range(6):
        version = f"1.{i + 1}"
        pub.add_wheel("proj-0", version)
        pub.sign()
        if i % 2:
            assert cli("--home", home, "clean").exit_code == 0  # a cold update: more to kill
        before = _lines(home)
        expected_new = [f"proj-{j}\t{version if j == 0 else '1.0'}\tdemo\t"
                        "A tiny test distribution" for j in range(6)]
        proc = popen_repotool("--home", home, "update")
        time.sleep(rng.uniform(0.2, full * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        killed_mid_way += proc.returncode == -signal.SIGKILL
        after = _lines(home)  # the previous verified state, or the new one, whole
        assert after in (before, expected_new), (i, before, after)
    assert killed_mid_way >= 2, killed_mid_way
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert "proj-0\t1.6\tdemo" in "\n".join(_lines(home))
    assert len(_lines(home)) == 6
    # leftovers of killed runs are collected by the next update that changes something
    gens = [p.name for p in (home / "sources/demo/cache").iterdir() if p.name.startswith("gen-")]
    assert len(gens) <= 2, gens
    r = cli("--home", home, "download", "proj-0", "-d", home.parent / "dl")
    assert r.exit_code == 0, r.output


def test_kill_before_each_state_write_of_update_leaves_old_or_new_state(
    pubs, home: Path, tmp_path: Path
) -> None:
    """Deterministic companion of the random kills: a forked update dies (os._exit, no
    cleanup, like kill -9) just before its k-th state write, for every k."""
    from datetime import UTC, datetime

    import repotool.client.keyring as keyring_mod
    import repotool.client.update as client_mod
    from repotool.client.home import Home
    from repotool.transport.limits import Limits

    writers = (client_mod, keyring_mod)  # the modules an update writes state through

    def patch(fn: object) -> None:
        for mod in writers:
            mod.atomic_write = fn  # type: ignore[assignment]

    pub = pubs(projects={f"proj-{i}": ["1.0"] for i in range(3)})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    old = _lines(home)
    pub.add_wheel("proj-0", "1.1")
    pub.sign(force=frozenset({"root"}))  # the keyring's root advances too
    start = tmp_path / "start"
    shutil.copytree(home, start)
    real = client_mod.atomic_write
    calls: list[Path] = []

    def counting(path: Path, data: bytes, **kw: object) -> None:
        calls.append(path)
        real(path, data, **kw)  # type: ignore[arg-type]

    patch(counting)
    try:
        client_mod.update(Home(home), None, now=datetime.now(UTC), limits=Limits())
    finally:
        patch(real)
    new = _lines(home)
    assert new != old
    names = [p.name for p in calls]
    assert {"projects.json", "root.json", "state.json"} <= set(names), names
    for k in range(len(calls)):
        shutil.rmtree(home)
        shutil.copytree(start, home)
        pid = os.fork()
        if pid == 0:  # the child: die before write k
            def dying(path: Path, data: bytes, *, _n: list[int] = [0], _k: int = k,  # noqa: B006
                      **kw: object) -> None:
                if _n[0] == _k:
                    os._exit(77)
                _n[0] += 1
                real(path, data, **kw)  # type: ignore[arg-type]

            patch(dying)
            try:
                client_mod.update(Home(home), None, now=datetime.now(UTC), limits=Limits())
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 77, (k, names[k])
        assert _lines(home) in (old, new), (k, names[k])
        r = cli("--home", home, "update")
        assert r.exit_code == 0, (k, names[k], r.output)
        assert _lines(home) == new, (k, names[k])
        assert json.loads((home / "sources/demo/keyring/root.json").read_bytes()
                          )["signed"]["version"] == 2


def test_kill_9_during_source_remove_leaves_other_sources_usable(pubs, home: Path) -> None:
    a = pubs(name="alpha", projects={"aa": ["1.0"]})
    assert cli("--home", home, "source", "add", "a", a.root, "--key", a.key.public).exit_code == 0
    assert cli("--home", home, "source", "add", "b", a.root, "--key", a.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    # what a kill between the rename and the rmtree of 'source remove b' leaves behind
    # (its sources.d/b.sources is deleted first)
    (home / "sources.d" / "b.sources").unlink()
    shutil.copytree(home / "sources" / "b", home / "sources" / ".removing-b")
    shutil.rmtree(home / "sources" / "b")
    r = cli("--home", home, "list")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["aa\t1.0\ta\tA tiny test distribution"]
    assert cli("--home", home, "update").exit_code == 0
    assert cli("--home", home, "source", "add", "b", a.root, "--key", a.key.public).exit_code == 0
    assert cli("--home", home, "source", "remove", "b").exit_code == 0


def test_two_concurrent_updates_never_corrupt_state(pubs, home: Path, locations) -> None:
    pub = pubs(projects={f"proj-{i}": ["1.0"] for i in range(4)})
    srv = locations.server(pub.root)
    assert cli("--home", home, "source", "add", "demo", srv.url, "--key",
               pub.key.public).exit_code == 0
    for round_ in range(2):
        pub.add_wheel("proj-0", f"2.{round_}")
        pub.sign()
        procs = [popen_repotool("--home", home, "update") for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert "Traceback" not in err
            assert p.returncode == 0 or (p.returncode == 1 and "in use" in err), err
        assert any(p.returncode == 0 for p in procs)
        assert f"proj-0\t2.{round_}\tdemo" in "\n".join(_lines(home))
    state = json.loads((home / "sources/demo/keyring/state.json").read_bytes())
    assert state["versions"]["timestamp"] == 3
    assert cli("--home", home, "update").exit_code == 0


def test_list_while_updating_always_answers(pubs, home: Path) -> None:
    """Readers take no lock: they must still see one whole generation."""
    pub = pubs(projects={f"proj-{i}": ["1.0"] for i in range(4)})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    for round_ in range(2):
        pub.add_wheel("proj-0", f"2.{round_}")
        pub.sign()
        proc = popen_repotool("--home", home, "update")
        while proc.poll() is None:
            r = cli("--home", home, "list")
            assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4, r.output
            r = cli("--home", home, "show", "proj-0", "--json")
            assert r.exit_code == 0, r.output
        assert proc.returncode == 0, proc.communicate()


def test_reader_holding_a_view_survives_one_concurrent_update(pubs, home: Path) -> None:
    """A reader (show, download, the proxy) that loaded the state just before an update
    committed must still read the generation and shards it started with."""
    from datetime import UTC, datetime

    from repotool.client.home import Home
    from repotool.client.update import load_view, update
    from repotool.transport.limits import Limits

    pub = pubs(projects={"proj-0": ["1.0"], "proj-1": ["1.0"]})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    h = Home(home)
    view = load_view(h, h.source("demo"))  # the reader has read 'current'...
    assert view is not None
    pub.add_wheel("proj-0", "2.0")
    pub.sign()
    [res] = update(h, None, now=datetime.now(UTC), limits=Limits())  # ...an update commits
    assert res.ok and res.changed, res
    assert view.project("proj-0") is not None  # ...and the reader goes on
    assert [f.version for f in view.project("proj-0").files] == ["1.0"]
    again = load_view(h, h.source("demo"))
    assert again is not None and again.gen.exists()
    assert sorted(f.version for f in again.project("proj-0").files) == ["1.0", "2.0"]


# ---- §3.10 bad local input ----------------------------------------------------------------------


@pytest.fixture
def updated(pubs, home: Path):  # type: ignore[no-untyped-def]
    pub = pubs()
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    return pub


@pytest.mark.parametrize("content", [
    b"", b"not json", b"[]", b'{"name": "demo"}', b'{"name": "demo", "url": 5}',
    b'{"name": "other", "url": "file:///x/"}',
    b'{"name": "demo", "url": "file:///x/", "order": "first"}',
    b'{"name": "demo", "url": "file:///x/", "surprise": 1}',
    b'{"name": "demo", "url": "file:///x/", "mirrors": [1]}',
])
def test_bad_input_malformed_source_config(updated, home: Path, content: bytes) -> None:
    # a second, healthy source: ordering compares fields across sources
    assert cli("--home", home, "source", "add", "zz", updated.root, "--key",
               updated.key.public).exit_code == 0
    (home / "sources/demo/source.json").write_bytes(content)
    kr = keyring_digest(home, "demo")
    for args in (["list"], ["update"], ["source", "list"], ["show", "demo-pkg"]):
        r = cli("--home", home, *args)
        _one_clear_error(r, 1)
        assert "source.json" in r.stderr or "source" in r.stderr, r.stderr
    assert keyring_digest(home, "demo") == kr


@pytest.mark.parametrize(("file", "content"), [
    ("root.json", b"garbage"),
    ("root.json", b'{"signed": {}, "signatures": []}'),
    ("state.json", b"garbage"),
    ("state.json", b"[]"),
    ("state.json", b'{"versions": []}'),
    ("state.json", b'{"versions": {"timestamp": "9"}}'),
    ("state.json", None),
])
def test_bad_input_malformed_keyring(updated, home: Path, file: str, content: bytes | None) -> None:
    path = home / "sources/demo/keyring" / file
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    kr = keyring_digest(home, "demo")
    r = cli("--home", home, "update")
    _one_clear_error(r, 1)
    assert "keyring" in r.stderr and "add it again" in r.stderr, r.stderr
    assert keyring_digest(home, "demo") == kr
    # state.json also names the committed generation: without it nothing is believed
    expected = [] if file == "state.json" else ["demo-pkg\t1.0\tdemo\tA tiny test distribution"]
    assert _lines(home) == expected


def test_bad_input_damaged_cache_is_not_trusted(updated, home: Path, tmp_path: Path) -> None:
    cache = home / "sources/demo/cache"
    shard = next((cache / "shards").iterdir())
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    r = cli("--home", home, "show", "demo-pkg")
    _one_clear_error(r, 3)
    assert "clean" in r.stderr
    assert cli("--home", home, "clean").exit_code == 0  # as the hint says
    assert cli("--home", home, "update").exit_code == 0  # re-fetched, by hash
    assert cli("--home", home, "show", "demo-pkg").exit_code == 0
    # a damaged cached file is fetched again, never handed out
    dl = tmp_path / "dl"
    assert cli("--home", home, "download", "demo-pkg", "-d", dl).exit_code == 0
    cached = next((cache / "files").iterdir())
    cached.write_bytes(b"evil" + cached.read_bytes()[4:])
    shutil.rmtree(dl)
    assert cli("--home", home, "download", "demo-pkg", "-d", dl).exit_code == 0
    assert (dl / "demo_pkg-1.0-py3-none-any.whl").read_bytes()[:4] != b"evil"
    # the keyring names the committed generation and its digest: a generation altered in
    # the cache is not believed (the source reads as never updated), and update repairs
    gen = json.loads((home / "sources/demo/keyring/state.json").read_bytes())["index"]["gen"]
    listing = cache / gen / "projects.json"
    listing.write_bytes(listing.read_bytes().replace(b'"1.0"', b'"9.0"'))
    r = cli("--home", home, "download", "demo-pkg", "-d", dl)
    assert r.exit_code == 1, r.output
    assert cli("--home", home, "update").exit_code == 0
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.0")


@pytest.mark.parametrize("req", ["demo-pkg==", "demo pkg", "demo-pkg>>1", "==1.0", ""])
def test_bad_input_malformed_requirement_is_usage_error(updated, home: Path, tmp_path: Path,
                                                        req: str) -> None:
    r = cli("--home", home, "download", req, "-d", tmp_path / "dl")
    _one_clear_error(r, 2)
    assert not (tmp_path / "dl").exists() or list((tmp_path / "dl").iterdir()) == []


def test_bad_input_unknown_project_or_source(updated, home: Path, tmp_path: Path) -> None:
    for args in (["download", "no-such-project", "-d", str(tmp_path / "dl")],
                 ["show", "no-such-project"], ["update", "no-such-source"],
                 ["list", "--source", "no-such-source"], ["source", "show", "nope"],
                 ["clean", "nope"]):
        r = cli("--home", home, *args)
        _one_clear_error(r, 1)
    r = cli("--home", home, "download", "demo-pkg==9.9", "-d", tmp_path / "dl")
    _one_clear_error(r, 1)
    r = cli("--home", home, "verify", tmp_path / "missing.whl")
    _one_clear_error(r, 1)


def test_bad_input_no_sources(home: Path) -> None:
    _one_clear_error(cli("--home", home, "update"), 1)
    r = cli("--home", home, "list")
    assert r.exit_code == 0 and r.stdout == ""


# ---- §3.10 bad remote input ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"<html><body>Welcome to nginx!</body></html>",
    b'{"signed": {}, "signatures": []}',
    b'{"signed": {"_type": "timestamp"}, "signatures": [{"keyid": 1}]}',
    b"\xff\xfe\x00garbage",
    b"",
])
def test_bad_input_garbage_timestamp_refused(pubs, home: Path, locations, body: bytes) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    assert cli("--home", home, "source", "add", "demo", srv.url, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    kr = keyring_digest(home, "demo")
    srv.override["/metadata/timestamp.json"] = body
    r = cli("--home", home, "update")
    _one_clear_error(r, 3)
    assert keyring_digest(home, "demo") == kr
    assert _lines(home) == ["demo-pkg\t1.0\tdemo\tA tiny test distribution"]
    # a fresh client: the same refusal
    fresh = home.parent / "fresh"
    assert cli("--home", fresh, "source", "add", "demo", srv.url, "--key",
               pub.key.public).exit_code == 0
    _one_clear_error(cli("--home", fresh, "update"), 3)


@pytest.mark.parametrize("body", [b"<html>404</html>", b"{}", b"[1, 2]", b"\x00" * 100])
def test_bad_input_garbage_first_root_refused(pubs, home: Path, locations, body: bytes) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    srv.override["/metadata/1.root.json"] = body
    r = cli("--home", home, "source", "add", "demo", srv.url, "--key", pub.key.public)
    _one_clear_error(r, 3)
    assert not (home / "sources").exists() or list((home / "sources").iterdir()) == []


def test_bad_input_everything_404_or_connection_refused(pubs, home: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    assert cli("--home", home, "source", "add", "demo", srv.url, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    kr = keyring_digest(home, "demo")
    srv.status[re.compile(".")] = 404
    r = cli("--home", home, "update")
    _one_clear_error(r, 1)
    assert "404" in r.stderr
    srv.stop()
    r = cli("--home", home, "update")
    _one_clear_error(r, 1)
    assert "refused" in r.stderr or "cannot reach" in r.stderr, r.stderr
    assert keyring_digest(home, "demo") == kr
    r = cli("--home", home, "source", "add", "x", _closed_port_url(), "--key", pub.key.public)
    _one_clear_error(r, 1)
    # status says the last update failed; list still answers from the verified state
    assert _lines(home) == ["demo-pkg\t1.0\tdemo\tA tiny test distribution"]
    doc = json.loads(cli("--home", home, "source", "show", "demo", "--json").stdout)
    assert doc["last_update"]["ok"] is False


def test_bad_input_hostile_redirect_is_just_transport(pubs, home: Path, locations) -> None:
    """A redirect to another server is followed, and what it serves is verified."""
    pub = pubs()
    evil = pubs(name="evil", keyname="evil")
    good_srv = locations.server(pub.root)
    evil_srv = locations.server(evil.root)
    assert cli("--home", home, "source", "add", "demo", good_srv.url, "--key",
               pub.key.public).exit_code == 0
    good_srv.redirect["/metadata/timestamp.json"] = evil_srv.url + "metadata/timestamp.json"
    kr = tree_digest(home / "sources/demo/keyring")
    r = cli("--home", home, "update")
    _one_clear_error(r, 3)
    assert tree_digest(home / "sources/demo/keyring") == kr
