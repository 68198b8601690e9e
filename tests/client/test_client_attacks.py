"""One test per attack on the client (SPEC §3.1–§3.4, §3.7), over every transport.

Each test starts from a client holding verified state, lets the "attacker" change what
the repository serves, and checks: the right exit code, a message naming the problem,
the keyring byte-for-byte unchanged, and the previous verified state still answering.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from attacks import (
    TRANSPORTS,
    Location,
    current_files,
    flip_signed_byte,
    forge_targets,
    keyring_digest,
    load_md,
    resign,
    role_separated_repo,
    shard_files,
    source_config,
    strip_signatures,
    wheel_path,
    write_md,
)
from builders import tamper
from conftest import cli, make_key
from tuf.api.metadata import Metadata, MetaFile, TargetFile

from repotool.format.index import shard_of

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def add_and_update(home: Path, loc: Any, key: Path, name: str = "demo",
                   *extra: str) -> None:
    r = cli("--home", home, "source", "add", name, loc.url, "--key", key, *loc.add_args, *extra)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update", name)
    assert r.exit_code == 0, r.output


def listing(home: Path) -> list[str]:
    r = cli("--home", home, "list")
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def refused(home: Path, *args: str, code: int = 3, name: str = "demo") -> str:
    """Run ``update`` (or ARGS), expect ``code``, the keyring untouched; return stderr."""
    before = keyring_digest(home, name)
    r = cli("--home", home, *(args or ("update",)))
    assert r.exit_code == code, r.output
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert keyring_digest(home, name) == before
    return r.stderr


# ---- §3.1 arbitrary content ----------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_arbitrary_content_tampered_wheel_same_size_refused(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    whl = wheel_path(pub.root, "demo-pkg", "demo_pkg-1.0-py3-none-any.whl")
    size = whl.stat().st_size
    tamper(whl, offset=size // 2)
    assert whl.stat().st_size == size
    dl = tmp_path / "dl"
    err = refused(home, "download", "demo-pkg==1.0", "-d", str(dl))
    assert "sha256" in err
    assert not dl.exists() or list(dl.iterdir()) == []
    files = home / "sources" / "demo" / "cache" / "files"
    assert not files.exists() or list(files.iterdir()) == []  # no partial download kept
    tamper(whl, offset=size // 2)  # restored: now it downloads
    r = cli("--home", home, "download", "demo-pkg==1.0", "-d", dl)
    assert r.exit_code == 0, r.output
    assert [p.name for p in dl.iterdir()] == ["demo_pkg-1.0-py3-none-any.whl"]


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_arbitrary_content_each_metadata_file_corrupted_refused(
    pubs, home: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    old = listing(home)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    targets = dict(current_files(pub.root))
    targets["shard"] = shard_files(pub.root)[shard_of("demo-pkg")]
    for role, path in targets.items():
        pristine = path.read_bytes()
        corruptions = [flip_signed_byte, lambda p: p.write_bytes(b"{" + p.read_bytes()[:-8])]
        if role == "shard":
            corruptions = [lambda p: tamper(p, offset=p.stat().st_size // 2)]
        for corrupt in corruptions:
            corrupt(path)
            err = refused(home)
            assert "demo" in err, err
            assert listing(home) == old, role  # previous verified state still answers
            path.write_bytes(pristine)
    assert cli("--home", home, "update").exit_code == 0
    assert listing(home) == ["demo-pkg\t1.1\tdemo\tA tiny test distribution"]


@pytest.mark.parametrize("kind", ["file", "http"])
def test_arbitrary_content_unsigned_metadata_refused(
    pubs, home: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    old = listing(home)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign(force=frozenset({"root"}))  # a new root too
    meta = pub.root / "metadata"
    for path in (meta / "timestamp.json", meta / "2.root.json"):
        pristine = path.read_bytes()
        strip_signatures(path)
        err = refused(home)
        assert "signed by 0/1 keys" in err or "signature" in err, err
        assert listing(home) == old
        path.write_bytes(pristine)
    assert cli("--home", home, "update").exit_code == 0


@pytest.mark.parametrize("kind", ["path", "https"])
def test_arbitrary_content_metadata_signed_by_key_of_another_source_refused(
    pubs, home: Path, locations, kind: str
) -> None:
    """Both sources are trusted in this home; A's key still means nothing for B."""
    a = pubs(name="alpha", projects={"aa": ["1.0"]})
    b = pubs(name="beta", projects={"bb": ["1.0"]})
    for _ in range(3):  # a's timestamp version ahead of b's: no rollback excuse
        a.sign(force=frozenset({"snapshot"}))
    add_and_update(home, locations.serve(a.root, kind), a.key.public, "a")
    add_and_update(home, locations.serve(b.root, kind), b.key.public, "b")
    old = listing(home)
    b_meta = b.root / "metadata"
    pristine = {p.name: p.read_bytes() for p in b_meta.iterdir()}
    # A's whole metadata tree over B's: every file validly signed, by the wrong key
    for p in (a.root / "metadata").iterdir():
        shutil.copyfile(p, b_meta / p.name)
    shutil.copyfile(a.root / "metadata" / "timestamp.json", b_meta / "timestamp.json")
    err = refused(home, "update", "b", name="b")
    assert "b:" in err
    assert listing(home) == old
    # a fresh client of B is refused too (no cached timestamp to lean on)
    fresh = home.parent / "fresh"
    r = cli("--home", fresh, "source", "add", "b", b.root, "--key", b.key.public)
    assert r.exit_code == 3, r.output  # A's 1.root.json is not signed by B's key
    for name, data in pristine.items():
        (b_meta / name).write_bytes(data)
    for p in b_meta.iterdir():
        if p.name not in pristine:
            p.unlink()
    assert cli("--home", home, "update").exit_code == 0


# ---- §3.2 rollback -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_rollback_to_older_validly_signed_metadata_refused_even_after_clean(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    meta = pub.root / "metadata"
    saved = tmp_path / "saved-metadata"
    shutil.copytree(meta, saved)  # the repository as it was at version 1
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    new = listing(home)
    assert new == ["demo-pkg\t1.1\tdemo\tA tiny test distribution"]
    new_ts = (meta / "timestamp.json").read_bytes()
    shutil.copyfile(saved / "timestamp.json", meta / "timestamp.json")  # replay v1
    refused(home)
    assert listing(home) == new
    # the cache is gone: the keyring's marks still refuse the replay
    assert cli("--home", home, "clean").exit_code == 0
    assert listing(home) == []
    err = refused(home)
    assert "rollback" in err and "timestamp" in err, err
    assert listing(home) == []
    (meta / "timestamp.json").write_bytes(new_ts)
    assert cli("--home", home, "update").exit_code == 0
    assert listing(home) == new


@pytest.mark.parametrize("kind", ["path", "http"])
def test_rollback_of_snapshot_under_a_fresh_timestamp_refused_even_after_clean(
    pubs, home: Path, locations, kind: str
) -> None:
    """The attacker holds the online key: a new timestamp naming the old snapshot."""
    pub = pubs()
    meta = pub.root / "metadata"
    old_snapshot = current_files(pub.root)["snapshot"]
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    new = listing(home)
    good = (meta / "timestamp.json").read_bytes()
    ts = load_md(meta / "timestamp.json")
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(
        load_md(old_snapshot).signed.version, old_snapshot.read_bytes(), ["sha256"])
    write_md(meta / "timestamp.json", resign(ts, pub.key.signer()))
    err = refused(home)
    assert "snapshot" in err, err
    assert listing(home) == new
    assert cli("--home", home, "clean").exit_code == 0
    err = refused(home)
    assert "rollback" in err and "snapshot" in err, err
    (meta / "timestamp.json").write_bytes(good)
    assert cli("--home", home, "update").exit_code == 0


# ---- §3.3 freeze -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_freeze_expired_timestamp_refused_and_says_since_when(
    pubs, home: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    old = listing(home)
    pub.add_wheel("demo-pkg", "1.1")
    signed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    pub.sign(now=signed_at)  # default lifetimes: the timestamp (1 day) expired yesterday
    err = refused(home)
    since = signed_at + timedelta(days=1)
    assert f"timestamp metadata expired on {since:%Y-%m-%d %H:%M:%S}" in err, err
    assert listing(home) == old
    # a fresh client is refused the same way
    fresh = home.parent / f"fresh-{kind}"
    r = cli("--home", fresh, "source", "add", "demo", loc.url, "--key", pub.key.public,
            *loc.add_args)
    assert r.exit_code == 0
    err = refused(fresh)
    assert "expired" in err


def test_freeze_replayed_current_metadata_refused_once_expired(pubs, home: Path) -> None:
    """The attacker keeps serving what the client already has; time passes (the
    library takes ``now``, so no sleeping)."""
    from repotool.client.home import Home
    from repotool.client.update import update
    from repotool.transport.limits import Limits

    pub = pubs()
    add_and_update(home, Location("path", str(pub.root)), pub.key.public)
    old = listing(home)
    kr = keyring_digest(home, "demo")
    ts_expires = load_md(pub.root / "metadata" / "timestamp.json").signed.expires
    later = datetime.now(UTC) + timedelta(days=2)
    [res] = update(Home(home), None, now=later, limits=Limits())
    assert res.exit_code == 3 and not res.ok, res
    assert f"timestamp metadata expired on {ts_expires:%Y-%m-%d %H:%M:%S}" in (res.error or "")
    assert keyring_digest(home, "demo") == kr
    assert listing(home) == old  # queries still answer from the last verified state...
    r = cli("--home", home, "download", "demo-pkg", "-d", home.parent / "dl")
    # ...not downloads or installs; the refusal stays a refusal (exit 3)
    assert r.exit_code == 3 and "could not be updated" in r.stderr, r.output
    [res] = update(Home(home), None, now=datetime.now(UTC), limits=Limits())
    assert res.ok, res


def test_freeze_short_expiry_and_expired_root_refused(pubs, home: Path) -> None:
    pub = pubs()
    add_and_update(home, Location("path", str(pub.root)), pub.key.public)
    signed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    pub.sign(now=signed_at, expires=90, force=frozenset({"root"}))  # --expires 90s, 1 h ago
    err = refused(home)
    assert f"root metadata expired on {signed_at + timedelta(seconds=90):%Y-%m-%d %H:%M:%S}" \
        in err, err
    assert "2.root.json" not in json.dumps(keyring_digest(home, "demo"))


def test_freeze_clock_skew_tolerated_only_for_that_source(pubs, home: Path) -> None:
    pub = pubs()
    signed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign(now=signed_at, expires=3600 - 20)  # every role expired 20 s ago
    for name, extra in (("skewed", ["--clock-skew", "5m"]), ("strict", [])):
        r = cli("--home", home, "source", "add", name, pub.root, "--key", pub.key.public, *extra)
        assert r.exit_code == 0, r.output
    assert source_config(home, "skewed")["clock_skew"] == 300
    r = cli("--home", home, "update", "--json")
    assert r.exit_code == 3, r.output
    doc = {d["source"]: d for d in json.loads(r.stdout)}
    assert doc["skewed"]["ok"] and doc["skewed"]["exit_code"] == 0
    assert not doc["strict"]["ok"] and doc["strict"]["exit_code"] == 3
    assert "expired" in doc["strict"]["error"]
    assert cli("--home", home, "list", "--source", "skewed").stdout.startswith("demo-pkg\t1.1")
    # a skew is not a global switch: far beyond it, refused
    pub.sign(now=signed_at - timedelta(hours=1), expires=60)
    r = cli("--home", home, "update", "skewed")
    assert r.exit_code == 3, r.output
    assert cli("--home", home, "source", "add", "x", pub.root, "--key", pub.key.public,
               "--clock-skew", "5 minutes").exit_code == 2


# ---- §3.4 mix-and-match --------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_mix_and_match_old_shard_under_new_targets_refused(
    pubs, home: Path, locations, kind: str
) -> None:
    pub = pubs()
    sid = shard_of("demo-pkg")
    old_shard = shard_files(pub.root)[sid].read_bytes()
    old_targets = current_files(pub.root)["targets"].read_bytes()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    old = listing(home)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    new_shard = shard_files(pub.root)[sid]
    good = new_shard.read_bytes()
    new_shard.write_bytes(old_shard)  # a validly listed older index part, under new names
    err = refused(home)
    assert "index shard" in err and "does not match its signed hash" in err, err
    assert listing(home) == old
    # a cold client too
    assert cli("--home", home, "clean").exit_code == 0
    refused(home)
    new_shard.write_bytes(good)
    # the old top-level targets under the new snapshot
    new_targets = current_files(pub.root)["targets"]
    good_targets = new_targets.read_bytes()
    new_targets.write_bytes(old_targets)
    refused(home)
    new_targets.write_bytes(good_targets)
    assert cli("--home", home, "update").exit_code == 0
    assert listing(home) == ["demo-pkg\t1.1\tdemo\tA tiny test distribution"]


# ---- repository name change (apt's release-info change) ----------------------------------


def _rename(pub: Any, new_name: str) -> None:
    root = copy.deepcopy(load_md(pub.root / "metadata" / "root.json").signed)
    root.unrecognized_fields["x-repotool"]["name"] = new_name
    pub.repo.sign([pub.key.signer()], now=datetime.now(UTC), new_root=Metadata(root))


@pytest.mark.parametrize("kind", ["file", "https"])
def test_repository_name_change_refused_unless_allowed(
    pubs, home: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    old = listing(home)
    _rename(pub, "someone-else")
    err = refused(home)
    assert "'demo'" in err and "'someone-else'" in err and "--allow-name-change" in err, err
    assert listing(home) == old
    assert source_config(home, "demo")["repo_name"] == "demo"
    r = cli("--home", home, "update", "--allow-name-change")
    assert r.exit_code == 0, r.output
    assert source_config(home, "demo")["repo_name"] == "someone-else"
    assert load_md(home / "sources/demo/keyring/root.json").signed.version == 2
    assert cli("--home", home, "update").exit_code == 0
    shown = json.loads(cli("--home", home, "source", "show", "demo", "--json").stdout)
    assert shown["repository"] == "someone-else"


# ---- §3.7 key compromise and rotation ---------------------------------------------------


@pytest.mark.parametrize("kind", ["path", "http"])
def test_key_rotation_followed_without_re_adding_keys(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.key.public)
    k2 = make_key(tmp_path / "k2", "k")
    k3 = make_key(tmp_path / "k3", "k")
    now = datetime.now(UTC)
    # two root rotations before the client looks again: it walks the chain 1 -> 2 -> 3
    pub.repo.rotate("root", [k2.public_key()], [pub.key.fingerprint], None,
                    [pub.key.signer(), k2.signer()], now=now)
    pub.repo.rotate("root", [k3.public_key()], [k2.fingerprint], None,
                    [k2.signer(), k3.signer(), pub.key.signer()], now=now)
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()  # the old key still holds the other roles
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    kr_root = load_md(home / "sources/demo/keyring/root.json")
    assert kr_root.signed.version == 3
    assert kr_root.signed.roles["root"].keyids == [k3.fingerprint]
    assert listing(home) == ["demo-pkg\t1.1\tdemo\tA tiny test distribution"]
    # the revoked root keys stop counting: a root v4 signed by them alone is refused
    forged = copy.deepcopy(kr_root)
    forged.signed.version = 4
    forged.signed.roles["root"].keyids = [pub.key.fingerprint]
    forged.signed.keys[pub.key.fingerprint] = pub.key.public_key()
    resign(forged, pub.key.signer(), k2.signer())
    write_md(pub.root / "metadata" / "4.root.json", forged)
    err = refused(home)
    assert "root" in err
    # the chain survives a cold cache, and a fresh client bootstraps from root 1
    (pub.root / "metadata" / "4.root.json").unlink()
    assert cli("--home", home, "clean").exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    fresh = tmp_path / "fresh"
    add_and_update(fresh, loc, pub.key.public)
    assert load_md(fresh / "sources/demo/keyring/root.json").signed.version == 3


@pytest.mark.parametrize("kind", ["file", "http"])
def test_key_compromise_online_key_alone_cannot_change_root(
    home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = role_separated_repo(tmp_path / "sep")
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.root_key.public)
    old = listing(home)
    meta = pub.root / "metadata"
    attacker = make_key(tmp_path / "attacker", "k")
    rootmd = load_md(meta / "root.json")
    for variant in ("online-only", "online-plus-new"):
        forged = copy.deepcopy(rootmd)
        forged.signed.version = 2
        keyids = [pub.online_key.fingerprint]
        if variant == "online-plus-new":
            forged.signed.keys[attacker.fingerprint] = attacker.public_key()
            keyids = [attacker.fingerprint]  # the new root meets its own threshold
        forged.signed.roles["root"].keyids = keyids
        resign(forged, pub.online_key.signer(),
               *([attacker.signer()] if variant == "online-plus-new" else []))
        write_md(meta / "2.root.json", forged)
        write_md(meta / "root.json", forged)
        err = refused(home)
        assert "root" in err, err
        assert listing(home) == old
        assert load_md(home / "sources/demo/keyring/root.json").signed.version == 1
    (meta / "2.root.json").unlink()
    write_md(meta / "root.json", rootmd)
    # the online key also cannot sign targets (role separation)
    saved = {p.name: p.read_bytes() for p in meta.iterdir()}
    forge_targets(pub.root, lambda t: None, pub.online_key.signer())
    err = refused(home)
    assert "targets" in err, err
    for p in meta.iterdir():
        if p.name not in saved:
            p.unlink()
    (meta / "timestamp.json").write_bytes(saved["timestamp.json"])
    # the legitimate rotation of the online key (root-signed) is followed
    new_online = make_key(tmp_path / "online2", "k")
    pub.repo.rotate("online", [new_online.public_key()], [pub.online_key.fingerprint], None,
                    [pub.root_key.signer(), pub.targets_key.signer(), new_online.signer()],
                    now=datetime.now(UTC))
    assert cli("--home", home, "update").exit_code == 0
    # and the old online key is revoked: a timestamp it signs is refused
    ts = load_md(meta / "timestamp.json")
    ts.signed.version += 1
    write_md(meta / "timestamp.json", resign(ts, pub.online_key.signer()))
    err = refused(home)
    assert "timestamp" in err, err


@pytest.mark.parametrize("bad", ["../../../../escape", "ABCDEF" * 10 + "ABCD", "short"])
def test_arbitrary_content_signed_index_entry_with_unsafe_hash_refused(
    pubs, home: Path, tmp_path: Path, bad: str
) -> None:
    """Even a publisher's key cannot make a name from metadata climb out of the cache."""
    pub = pubs()
    add_and_update(home, Location("path", str(pub.root)), pub.key.public)

    def plant(t: Any) -> None:
        t.targets["index/00.json"] = TargetFile(10, {"sha256": bad}, "index/00.json")

    forge_targets(pub.root, plant, pub.key.signer())
    err = refused(home)
    assert "index/00.json" in err and "malformed" in err, err
    # "../../../../escape" from the shard cache is tmp_path: nothing may land there
    assert not any(p.name.endswith(".json") for p in tmp_path.iterdir())
    assert sorted(p.name for p in home.iterdir()) == ["lock", "sources", "sources.d"]


# ---- §3.6 a lying primary at `source add`: the first root goes through the mirror loop --------


def _lie_first_root(primary_dir: Path, lie: str, other_root: Path) -> None:
    """Make the primary's ``1.root.json`` lie: malformed, a signature that no longer
    holds (one signed byte changed), or a valid root of another repository (its own
    keys, not the one the user gives)."""
    first = primary_dir / "metadata" / "1.root.json"
    if lie == "malformed":
        first.write_bytes(b'{"signed": {"_type": "root"')
    elif lie == "tampered-signature":
        flip_signed_byte(first)
    else:
        shutil.copyfile(other_root / "metadata" / "1.root.json", first)


@pytest.mark.parametrize("lie", ["malformed", "tampered-signature", "wrong-key"])
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_malicious_primary_first_root_mirror_used(
    pubs, home: Path, tmp_path: Path, locations, kind: str, lie: str
) -> None:
    from repotool.transport.urls import normalize_url

    pub = pubs()
    primary_dir = tmp_path / "primary"
    shutil.copytree(pub.root, primary_dir)
    _lie_first_root(primary_dir, lie, pubs(name="other").root)
    primary = locations.serve(primary_dir, kind)
    mirror = locations.serve(pub.root, kind)
    r = cli("--home", home, "source", "add", "demo", primary.url, "--key", pub.key.public,
            "--mirror", mirror.url, *primary.add_args)
    assert r.exit_code == 0, r.output
    primary_url = normalize_url(primary.url)
    assert f"location failed, next one used: {primary_url}metadata/1.root.json" in r.stderr, \
        r.stderr
    trusted = (home / "sources/demo/keyring/root.json").read_bytes()
    assert trusted == (pub.root / "metadata" / "1.root.json").read_bytes()
    r = cli("--home", home, "update")  # the trusted root now checks the primary's metadata
    assert r.exit_code == 0, r.output
    assert listing(home)[0].startswith("demo-pkg\t1.0\tdemo")


@pytest.mark.parametrize("case", ["both-lie", "lie-and-unreachable", "both-unreachable"])
def test_malicious_primary_first_root_every_location_bad_refused(
    pubs, home: Path, tmp_path: Path, locations, case: str
) -> None:
    pub = pubs()
    dirs = []
    for n, lie in enumerate(["tampered-signature", "malformed"]):
        d = tmp_path / f"loc{n}"
        shutil.copytree(pub.root, d)
        _lie_first_root(d, lie, pub.root)
        dirs.append(d)
    a, b = locations.server(dirs[0]), locations.server(dirs[1])
    urls = [a.url, b.url]
    if case != "both-lie":
        b.stop()
    if case == "both-unreachable":
        a.stop()
    r = cli("--home", home, "source", "add", "demo", a.url, "--key", pub.key.public,
            "--mirror", b.url)
    assert r.exit_code == (1 if case == "both-unreachable" else 3), r.output
    assert all(f"{u}metadata/1.root.json" in r.stderr for u in urls), r.stderr
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert not (home / "sources").exists() or list((home / "sources").iterdir()) == []
