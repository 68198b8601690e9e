"""Hostile servers and mirrors (SPEC §3.5, §3.6) and TLS that adds privacy, not trust.

Lying servers are real HTTP(S) servers on 127.0.0.1 (tests/servers.py attack hooks).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from attacks import forge_targets, keyring_digest, run_repotool, shard_files, wheel_url_path
from conftest import cli

from repotool.format.index import shard_of

WHEEL = "demo_pkg-1.0-py3-none-any.whl"

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def add(home: Path, url: str, key: Path, *extra: str, name: str = "demo") -> None:
    r = cli("--home", home, "source", "add", name, url, "--key", key, *extra)
    assert r.exit_code == 0, r.output


# ---- §3.5 endless data ---------------------------------------------------------------------


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_endless_data_for_timestamp_refused_with_bounded_memory(
    pubs, home: Path, locations, https: bool
) -> None:
    pub = pubs()
    srv = locations.server(pub.root, https=https)
    extra = ["--ca-cert", str(locations.ca_file)] if https else []
    add(home, srv.url, pub.key.public, *extra)
    assert cli("--home", home, "update").exit_code == 0  # warm: imports, cached state
    before = keyring_digest(home, "demo")
    srv.endless.add("/metadata/timestamp.json")  # no length known: the fixed cap applies
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        r = cli("--home", home, "--timeout", "8", "update")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.exit_code == 3, r.output
    assert "more bytes" in r.stderr or "length" in r.stderr.lower(), r.stderr
    assert time.monotonic() - t0 < 6
    assert peak < 8 * 1024 * 1024, peak
    assert keyring_digest(home, "demo") == before


def test_endless_data_for_next_root_refused(pubs, home: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    srv.endless.add("/metadata/2.root.json")  # a 404 would end the root walk
    t0 = time.monotonic()
    r = cli("--home", home, "--timeout", "8", "update")
    assert r.exit_code == 3, r.output
    assert time.monotonic() - t0 < 6


def test_endless_data_for_a_shard_refused(pubs, home: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    srv.endless.add(re.compile(r"^/index/"))  # the real bytes, then zeros forever
    t0 = time.monotonic()
    r = cli("--home", home, "--timeout", "8", "update")
    assert r.exit_code == 3, r.output
    assert "more bytes" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 6
    assert cli("--home", home, "list").stdout == ""


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_endless_data_for_a_wheel_refused(
    pubs, home: Path, tmp_path: Path, locations, https: bool
) -> None:
    pub = pubs()
    srv = locations.server(pub.root, https=https)
    add(home, srv.url, pub.key.public,
        *(["--ca-cert", str(locations.ca_file)] if https else []))
    assert cli("--home", home, "update").exit_code == 0
    srv.endless.add(wheel_url_path(pub.root, "demo-pkg", WHEEL))
    t0 = time.monotonic()
    dl = tmp_path / "dl"
    r = cli("--home", home, "--timeout", "8", "download", "demo-pkg", "-d", dl)
    assert r.exit_code == 3, r.output
    assert "more bytes than the" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 6
    assert not dl.exists()  # nothing is created until a verified file is at hand
    assert list((home / "sources/demo/cache/files").iterdir()) == []


@pytest.mark.parametrize("lie", ["drop-half", "length-too-long", "length-too-short"])
def test_truncated_or_lying_length_wheel_never_handed_out(
    pubs, home: Path, tmp_path: Path, locations, lie: str
) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    assert cli("--home", home, "update").exit_code == 0
    path = wheel_url_path(pub.root, "demo-pkg", WHEEL)
    size = (pub.root / path.lstrip("/")).stat().st_size
    if lie == "drop-half":
        srv.drop.add(path)  # full headers, half the body, then the connection closes
    else:
        srv.content_length[path] = size * 2 if lie == "length-too-long" else size // 2
    dl = tmp_path / "dl"
    r = cli("--home", home, "--timeout", "8", "download", "demo-pkg", "-d", dl)
    assert r.exit_code in (1, 3), r.output
    assert not dl.exists()  # nothing is created until a verified file is at hand
    assert list((home / "sources/demo/cache/files").iterdir()) == []
    srv.reset()
    assert cli("--home", home, "download", "demo-pkg", "-d", dl).exit_code == 0


# ---- §3.5 slow retrieval ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["timestamp", "wheel", "stalled-headers"])
def test_slow_retrieval_cut_off_by_timeout(
    pubs, home: Path, tmp_path: Path, locations, target: str
) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    assert cli("--home", home, "update").exit_code == 0
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    before = keyring_digest(home, "demo")
    dl = tmp_path / "dl"
    if target == "timestamp":
        srv.slow.add("/metadata/timestamp.json")  # a byte every 0.5 s, forever
        args = ["update"]
    elif target == "wheel":
        srv.slow.add(wheel_url_path(pub.root, "demo-pkg", WHEEL))
        args = ["download", "demo-pkg==1.0", "-d", str(dl)]
    else:
        srv.delay["/metadata/timestamp.json"] = 60  # headers never come
        args = ["update"]
    t0 = time.monotonic()
    # a subprocess: a hang would be caught by TimeoutExpired rather than hang the suite
    timeout = "1" if target == "stalled-headers" else "2"
    r = run_repotool("--home", home, "--timeout", timeout, *args, timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert "too slow" in r.stderr or "timed out" in r.stderr or "exceeded" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 15
    assert keyring_digest(home, "demo") == before
    assert not dl.exists() or list(dl.iterdir()) == []


# ---- §3.6 malicious or stale mirrors ------------------------------------------------------------


@pytest.mark.parametrize("lie", ["tampered-shard", "http-500", "unreachable"])
def test_malicious_mirror_primary_fails_good_mirror_used_and_failure_reported(
    pubs, home: Path, tmp_path: Path, locations, lie: str
) -> None:
    pub = pubs()
    primary = locations.server(pub.root)
    mirror = locations.server(pub.root)
    primary_url = primary.url
    add(home, primary.url, pub.key.public, "--mirror", mirror.url)
    shard = shard_files(pub.root)[shard_of("demo-pkg")]
    if lie == "tampered-shard":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 1
        primary.override[re.compile(r"^/index/")] = bytes(data)
    elif lie == "http-500":
        primary.status[re.compile(".")] = 500
    else:
        primary.stop()
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert f"location failed, next one used: {primary_url}" in r.stderr, r.stderr
    assert mirror.url in r.stdout
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.0\tdemo")
    if lie == "unreachable":
        return
    pub.add_wheel("demo-pkg", "1.1")  # something new to fetch from the lying primary
    pub.sign()
    r = cli("--home", home, "update", "--json")
    doc = json.loads(r.stdout)[0]
    assert doc["mirror"] == mirror.url and doc["failures"][0].startswith(primary_url)


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_malicious_mirror_tampered_wheel_on_primary_good_mirror_used(
    pubs, home: Path, tmp_path: Path, locations, https: bool
) -> None:
    pub = pubs()
    primary = locations.server(pub.root, https=https)
    mirror = locations.server(pub.root, https=https)
    extra = ["--ca-cert", str(locations.ca_file)] if https else []
    add(home, primary.url, pub.key.public, "--mirror", mirror.url, *extra)
    assert cli("--home", home, "update").exit_code == 0
    path = wheel_url_path(pub.root, "demo-pkg", WHEEL)
    good = (pub.root / path.lstrip("/")).read_bytes()
    primary.override[path] = good[:-1] + bytes([good[-1] ^ 0xFF])  # same size
    dl = tmp_path / "dl"
    r = cli("--home", home, "download", "demo-pkg==1.0", "-d", dl)
    assert r.exit_code == 0, r.output
    assert primary.url in r.stderr and "sha256" in r.stderr, r.stderr
    assert (dl / WHEEL).read_bytes() == good
    assert primary.count(path) == 1 and mirror.count(path) == 1


@pytest.mark.parametrize("case", ["both-lie", "lie-and-unreachable", "both-unreachable"])
def test_malicious_mirror_every_location_bad_fails_the_source(
    pubs, home: Path, tmp_path: Path, locations, case: str
) -> None:
    pub = pubs()
    a = locations.server(pub.root)
    b = locations.server(pub.root)
    add(home, a.url, pub.key.public, "--mirror", b.url)
    assert cli("--home", home, "update").exit_code == 0
    path = wheel_url_path(pub.root, "demo-pkg", WHEEL)
    size = (pub.root / path.lstrip("/")).stat().st_size
    shard_re = re.compile(r"^/index/")
    if case == "both-lie":
        for s in (a, b):
            s.override[shard_re] = b"{}"
            s.override[path] = b"x" * size
        expected = 3
    elif case == "lie-and-unreachable":
        a.override[shard_re] = b"{}"
        a.override[path] = b"evil"
        b.stop()
        expected = 3
    else:
        a.stop()
        b.stop()
        expected = 1
    r = cli("--home", home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == expected, r.output
    assert a.url in r.stderr and b.url in r.stderr, r.stderr
    assert not (tmp_path / "dl").exists()
    assert list((home / "sources/demo/cache/files").iterdir()) == []
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    before = keyring_digest(home, "demo")
    r = cli("--home", home, "update")
    assert r.exit_code == expected, r.output
    assert "every location failed" in r.stderr
    assert a.url in r.stderr and b.url in r.stderr, r.stderr
    assert keyring_digest(home, "demo") == before
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.0\t")


def test_stale_mirror_mid_sync_never_yields_a_hash_mismatch(
    pubs, home: Path, tmp_path: Path, locations
) -> None:
    """A mirror copying a consistent-snapshot repository in any order serves the old
    state, the new one, or a missing file — never a mismatch (SPEC §3.6)."""
    pub = pubs()
    mirror_dir = tmp_path / "mirror"
    shutil.copytree(pub.root, mirror_dir)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    srv = locations.server(mirror_dir)
    add(home, srv.url, pub.key.public)
    new_files = sorted(
        p.relative_to(pub.root) for p in pub.root.rglob("*")
        if p.is_file() and ".repotool" not in p.parts
        and (not (mirror_dir / p.relative_to(pub.root)).exists()
             or (mirror_dir / p.relative_to(pub.root)).read_bytes() != p.read_bytes())
    )
    ts = Path("metadata/timestamp.json")
    assert ts in new_files
    # (a) sync without timestamp.json yet: the old state, consistent
    for rel in new_files:
        if rel != ts:
            (mirror_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pub.root / rel, mirror_dir / rel)
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.0\t")
    # (b) timestamp.json first, the rest not yet: files missing (exit 1), not a mismatch
    shutil.rmtree(mirror_dir)
    shutil.copytree(pub.root, mirror_dir)
    for rel in new_files:
        if rel != ts and rel.parts[0] in ("metadata", "index"):
            (mirror_dir / rel).unlink()
    r = cli("--home", home, "update")
    assert r.exit_code == 1, r.output
    assert "404" in r.stderr
    shutil.rmtree(mirror_dir)
    shutil.copytree(pub.root, mirror_dir)
    assert cli("--home", home, "update").exit_code == 0
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.1\t")


# ---- TLS adds privacy, not trust ----------------------------------------------------------------


def test_https_trusts_requests_ca_bundle(pubs, home: Path, tmp_path: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root, https=True)
    env = {"REQUESTS_CA_BUNDLE": str(locations.ca_file)}
    r = cli("--home", home, "source", "add", "demo", srv.url, "--key", pub.key.public, env=env)
    assert r.exit_code == 0, r.output
    assert cli("--home", home, "update", env=env).exit_code == 0
    r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl", env=env)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "dl" / WHEEL).exists()
    assert not (home / "sources/demo/keyring/ca.pem").exists()


def test_https_unknown_ca_is_a_transport_failure(
    pubs, home: Path, tmp_path: Path, locations
) -> None:
    pub = pubs()
    srv = locations.server(pub.root, https=True)
    r = cli("--home", home, "source", "add", "demo", srv.url, "--key", pub.key.public)
    assert r.exit_code == 1, r.output
    assert "TLS" in r.stderr or "certificate" in r.stderr, r.stderr
    assert not (home / "sources").exists() or list((home / "sources").iterdir()) == []
    # a source CA given per source is used for that source only; the environment's
    # CA bundle does not replace it
    add(home, srv.url, pub.key.public, "--ca-cert", str(locations.ca_file))
    assert (home / "sources/demo/keyring/ca.pem").read_bytes() == \
        locations.ca_file.read_bytes()
    other = tmp_path / "other-ca.pem"
    other.write_bytes(locations.ca_file.read_bytes().replace(b"MII", b"MIJ", 1))
    r = cli("--home", home, "update", env={"REQUESTS_CA_BUNDLE": str(other)})
    assert r.exit_code == 0, r.output
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    r = cli("--home", home, "source", "add", "x", srv.url, "--key", pub.key.public,
            "--ca-cert", bad)
    assert r.exit_code == 1, r.output
    r = cli("--home", home, "source", "add", "x", srv.url, "--key", pub.key.public,
            "--ca-cert", tmp_path / "missing.pem")
    assert r.exit_code == 1, r.output
    assert not (home / "sources" / "x").exists()


def test_unreachable_and_404_are_operational_errors(
    pubs, home: Path, tmp_path: Path, locations
) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    before = keyring_digest(home, "demo")
    srv.status[re.compile(".")] = 404
    r = cli("--home", home, "update")
    assert r.exit_code == 1, r.output
    assert "404" in r.stderr
    r = cli("--home", home, "source", "add", "gone", closed_port_url(), "--key", pub.key.public)
    assert r.exit_code == 1, r.output
    assert keyring_digest(home, "demo") == before


def test_endless_data_for_first_root_at_source_add_refused(pubs, home: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    srv.endless.add("/metadata/1.root.json")
    t0 = time.monotonic()
    r = cli("--home", home, "--timeout", "8", "source", "add", "demo", srv.url,
            "--key", pub.key.public)
    assert r.exit_code == 3, r.output
    assert "more bytes" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 6
    assert not (home / "sources").exists() or list((home / "sources").iterdir()) == []


@pytest.mark.parametrize("special", ["fifo", "directory", "dev-zero"])
def test_slow_retrieval_special_file_in_a_path_repository(
    pubs, home: Path, special: str
) -> None:
    """A copied tree (USB stick, shared folder) is as hostile as a server: a FIFO must
    not block forever, a device not stream forever."""
    import os

    pub = pubs()
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    before = keyring_digest(home, "demo")
    ts = pub.root / "metadata" / "timestamp.json"
    ts.unlink()
    if special == "fifo":
        os.mkfifo(ts)
    elif special == "directory":
        ts.mkdir()
    else:
        ts.symlink_to("/dev/zero")
    r = run_repotool("--home", home, "--timeout", "2", "update", timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not a regular file" in r.stderr, r.stderr
    assert keyring_digest(home, "demo") == before


# ---- §3.5 slow retrieval: the pure decision ------------------------------------------------------


def test_slow_retrieval_default_limits_abandon_a_one_byte_a_second_drip_within_60_s() -> None:
    from repotool.transport.limits import Limits

    lim = Limits()
    for declared in (16 * 1024, 100 * 1024 * 1024, 8 * 1024**3):  # timestamp … big wheel
        # a byte a second: at t seconds, t bytes received
        cut = next((t for t in range(1, 3600) if lim.too_slow(t, float(t), declared)), None)
        assert cut is not None and cut < 60, (declared, cut)
        assert cut > lim.allowance  # the allowance is given in full
    # a download keeping up the minimum rate is never cut off before its deadline
    size = 10 * 1024 * 1024
    for t in range(1, int(lim.download_deadline(size))):
        got = min(size, int(max(0.0, t - lim.allowance) * lim.min_rate) + 1)
        assert not lim.too_slow(got, float(t), size), t
    # nothing at all arriving is too slow only after the allowance
    assert not lim.too_slow(0, lim.allowance, size)
    assert lim.too_slow(0, lim.allowance + 1, size)


def test_slow_retrieval_deadline_grows_with_the_declared_size() -> None:
    from repotool.transport.limits import Limits

    lim = Limits(allowance=20.0, min_rate=1000.0)
    assert lim.download_deadline(0) == 20.0
    assert lim.download_deadline(10_000) == 30.0
    assert not lim.too_slow(10_000, 29.9, 10_000)
    assert lim.too_slow(10_000, 30.1, 10_000)  # complete, but past its deadline


def test_slow_retrieval_command_bound_shared_by_every_fetcher_of_a_command(
    tmp_path: Path,
) -> None:
    from tuf.api import exceptions as tuf_exc

    from repotool.transport.fetcher import Fetcher
    from repotool.transport.limits import Limits

    (tmp_path / "f").write_bytes(b"x")
    url = (tmp_path / "f").as_uri()
    lim = Limits(command_deadline=0.5).started()
    assert Fetcher(lim).download_bytes(url, 10) == b"x"
    time.sleep(0.6)
    for _ in range(2):  # a new fetcher of the same command gets no new bound
        with pytest.raises(tuf_exc.SlowRetrievalError, match="time bound"):
            Fetcher(lim).download_bytes(url, 10)
    assert Fetcher(Limits(command_deadline=0.5)).download_bytes(url, 10) == b"x"


@pytest.mark.parametrize("how", ["fetcher", "probe"])
def test_slow_retrieval_drip_abandoned_after_the_allowance(
    pubs, locations, how: str
) -> None:
    """The full fetcher and the no-change probe (http.client) apply the same floor."""
    from tuf.api import exceptions as tuf_exc

    from repotool.transport.fetcher import Fetcher
    from repotool.transport.limits import Limits
    from repotool.transport.probe import Probe

    pub = pubs()
    srv = locations.server(pub.root)
    srv.slow.add("/metadata/timestamp.json")  # a byte every 0.5 s
    lim = Limits(allowance=1.0, read_timeout=5.0)
    url = srv.url_for("metadata/timestamp.json")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            if how == "probe":
                Probe(lim).get(url, 16 * 1024)
            else:
                Fetcher(lim).download_bytes(url, 16 * 1024)
        except BaseException as e:  # examined below
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)  # a hang fails, not blocks, the test
    worker.start()
    worker.join(8)
    assert not worker.is_alive(), "the drip was not abandoned"
    assert isinstance(outcome[0], tuf_exc.SlowRetrievalError), outcome
    assert "slow retrieval" in str(outcome[0]) and url in str(outcome[0])


@pytest.mark.parametrize("command", ["update", "download"])
def test_slow_retrieval_primary_abandoned_mirror_used_and_reported(
    pubs, home: Path, tmp_path: Path, locations, command: str
) -> None:
    pub = pubs()
    primary = locations.server(pub.root)
    mirror = locations.server(pub.root)
    add(home, primary.url, pub.key.public, "--mirror", mirror.url)
    assert cli("--home", home, "update").exit_code == 0
    if command == "update":
        pub.add_wheel("demo-pkg", "1.1")
        pub.sign()
        primary.slow.add("/metadata/timestamp.json")  # the no-change probe, then the full path
        args = ["update"]
    else:
        primary.slow.add(wheel_url_path(pub.root, "demo-pkg", WHEEL))
        args = ["download", "demo-pkg==1.0", "-d", str(tmp_path / "dl")]
    t0 = time.monotonic()
    r = cli("--home", home, "--timeout", "1", *args)  # allowance 1 s, default rate floor
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 10
    failed = [line for line in r.stderr.splitlines() if "next one used" in line]
    assert failed and primary.url in failed[0] and "slow retrieval" in failed[0], r.stderr
    if command == "update":
        assert mirror.url in r.stdout
        assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.1\tdemo")
    else:
        assert (tmp_path / "dl" / WHEEL).exists()


# ---- HTTP retries --------------------------------------------------------------------------------


def test_http_503_retried_then_served(pubs, home: Path, locations) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    srv.flaky["/metadata/1.root.json"] = 2  # an overloaded server, twice
    add(home, srv.url, pub.key.public)
    assert srv.count("/metadata/1.root.json") == 3
    srv.flaky["/metadata/timestamp.json"] = 3  # one more than the retries
    r = cli("--home", home, "update")
    assert r.exit_code == 1, r.output
    assert "503" in r.stderr
    assert srv.count("/metadata/timestamp.json") == 3


def test_endless_data_in_a_503_answer_not_drained_by_retries(
    pubs, home: Path, locations
) -> None:
    """A retried 503 is closed, not read to its end: urllib3's own status retries would
    drain a body that never ends."""
    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    srv.status["/metadata/timestamp.json"] = 503
    srv.endless.add("/metadata/timestamp.json")
    r = run_repotool("--home", home, "--timeout", "5", "update", timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "503" in r.stderr, r.stderr
    assert srv.count("/metadata/timestamp.json") == 3


# ---- §3.5 endless data with a valid signature: the configured cap -------------------------------


def test_endless_data_huge_signed_shard_length_refused(pubs, home: Path, locations) -> None:
    """A source whose (validly signed) targets declares a shard larger than the cap is
    refused before one byte of that shard is fetched: a compromised or hostile
    publisher cannot make ``update`` fill memory or disk."""
    from repotool.transport.limits import Limits

    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    assert cli("--home", home, "update").exit_code == 0
    before = keyring_digest(home, "demo")
    cap = Limits().shard_max_length

    def huge(targets) -> None:  # type: ignore[no-untyped-def]
        for path, tf in targets.targets.items():
            if path.startswith("index/"):
                tf.length = cap + 1

    forge_targets(pub.root, huge, pub.key.signer())  # signed by the source's own key
    shards = re.compile(r"^/index/")
    srv.endless.add(shards)
    srv.clear_log()
    r = cli("--home", home, "update")
    assert r.exit_code == 3, r.output
    assert f"declares {cap + 1} bytes, more than the {cap}" in r.stderr, r.stderr
    assert srv.count(shards) == 0
    assert keyring_digest(home, "demo") == before


def test_endless_data_signed_file_size_above_the_cap_refused_unfetched(
    pubs, home: Path, locations
) -> None:
    from repotool.client.download import cached_file
    from repotool.client.home import Home
    from repotool.client.queries import choose_file, parse_requirement
    from repotool.client.views import Views, resolve
    from repotool.errors import VerificationError
    from repotool.transport.limits import Limits

    pub = pubs()
    srv = locations.server(pub.root)
    add(home, srv.url, pub.key.public)
    assert cli("--home", home, "update").exit_code == 0
    res = resolve(Views(Home(home)), "demo-pkg")
    entry = choose_file(res.source, parse_requirement("demo-pkg"))
    with pytest.raises(VerificationError, match=f"{entry.size} bytes, more than the 100 "):
        cached_file(Home(home), res.source, "demo-pkg", entry, Limits(file_max_length=100))
    assert srv.count(wheel_url_path(pub.root, "demo-pkg", WHEEL)) == 0
    assert cached_file(Home(home), res.source, "demo-pkg", entry, Limits()).exists()
