"""Repository format 2 (docs/format.md, "Format version 2"): shard and bin counts that
follow the repository's size, signed in targets; lazily decoded shards; migration from
format 1 with clients following on the keys they have; attacks on what format 2 adds."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attacks import current_files, current_targets, forge_targets, keyring_digest, load_md
from conftest import KeyPair, Published, cli, make_key
from servers import RepoServer
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

from repotool.format import index2
from repotool.format.index import FileEntry, Project, Shard
from repotool.format.index2 import IndexLayout, choose_bits, layout_of
from repotool.format.layout import hashed_name
from repotool.publish import bins, changes
from repotool.publish.workspace import Repository, RoleKeys

pytest_plugins = ["attacks"]


def _published(base: Path, fmt: int = 2, projects: dict[str, list[str]] | None = None,
               key: KeyPair | None = None) -> Published:
    key = key or make_key(base / "keys", "k")
    pk = key.public_key()
    Repository.init(base / "repo", "demo", RoleKeys([pk], 1, [pk], 1, [pk]),
                    now=datetime.now(UTC), format=fmt)
    pub = Published(base / "repo", key, base / "dist")
    for project, versions in (projects or {"demo-pkg": ["1.0"], "dep-a": ["2.0"]}).items():
        for v in versions:
            pub.add_wheel(project, v)
    pub.sign()
    return pub


def _update(home: Path, *extra: str) -> dict[str, Any]:
    r = cli("--home", home, "update", "--json", *extra)
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)[0]
    return doc


def _add(home: Path, pub: Published, url: str | None = None) -> None:
    r = cli("--home", home, "source", "add", "demo", url or str(pub.root), "--key",
            pub.key.public)
    assert r.exit_code == 0, r.output


def _listing(home: Path) -> list[str]:
    r = cli("--home", home, "list")
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def _refused(home: Path, *args: str) -> str:
    before = keyring_digest(home, "demo")
    r = cli("--home", home, *(args or ("update",)))
    assert r.exit_code == 3, r.output
    assert keyring_digest(home, "demo") == before
    return r.stderr


# ---- the layout rule ----------------------------------------------------------------------


def test_choose_bits_grows_with_hysteresis_and_never_shrinks() -> None:
    assert choose_bits(None, 0, 1024) == 0
    assert choose_bits(None, 1024, 1024) == 0
    assert choose_bits(None, 1025, 1024) == 1
    assert choose_bits(None, 100_000, 1024) == 7  # ~781 files per shard
    assert choose_bits(None, 1_000_000, 1024) == 10
    assert choose_bits(None, 10, 1024, minimum=1) == 1
    # kept until the average passes twice the target, then sized to the target again
    assert choose_bits(7, 2 * 1024 * 128, 1024) == 7
    assert choose_bits(7, 2 * 1024 * 128 + 1, 1024) == 9
    assert choose_bits(7, 10, 1024) == 7  # a shrinking repository keeps its layout
    assert choose_bits(None, 10**12, 1024) == index2.MAX_BITS


def test_shard_ids_are_succinct_prefixes_of_the_name_hash() -> None:
    import hashlib

    top = int.from_bytes(hashlib.sha256(b"demo-pkg").digest()[:4], "big")
    assert IndexLayout(2, 0).shard_of("demo-pkg") == "0"
    assert IndexLayout(2, 3).shard_of("demo-pkg") == format(top >> 29, "x")
    assert IndexLayout(2, 10).shard_of("demo-pkg") == format(top >> 22, "03x")
    # 8 bits give format 1's ids: a shard splits into its children when bits grow
    assert IndexLayout(2, 8).shard_of("demo-pkg") == IndexLayout(1, 8).shard_of("demo-pkg")
    lay = IndexLayout(2, 5)
    assert lay.shard_id("index/1f.json") == "1f"
    for bad in ("index/20.json", "index/f.json", "index/01f.json", "index/1F.json",
                "index/../1f.json", "simple/1f.json"):
        assert lay.shard_id(bad) is None, bad


def _entry(name: str, version: str, yanked: bool | str = False) -> FileEntry:
    fn = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    return FileEntry(fn, version, "a" * 64, 10, None, ("dep-a>=2",), "2025-01-01T00:00:00Z",
                     yanked)


def test_v2_shard_round_trip_heads_and_validation() -> None:
    lay = IndexLayout(2, 0)
    sh = Shard("0", {"demo-pkg": Project("demo-pkg", "A demo", [
        _entry("demo-pkg", "1.0", "use 1.1"), _entry("demo-pkg", "1.1"),
        _entry("demo-pkg", "2.0rc1")]), "dep-a": Project("dep-a", "", [_entry("dep-a", "2.0")])})
    data = lay.encode(sh)
    assert data.startswith(b'{"bits":0,"repotool-index":2,"shard":"0"}\n')
    assert lay.decode(data, "0") == sh
    assert lay.headers(data, "0")["demo-pkg"] == {
        "shard": "0", "summary": "A demo", "latest": "1.1", "files": 3}
    # a head that disagrees with its files is refused when the project is decoded
    bad = data.replace(b'"files":3,"latest":"1.1"', b'"files":3,"latest":"2.0rc1"')
    assert lay.headers(bad, "0")["demo-pkg"]["latest"] == "2.0rc1"
    with pytest.raises(Exception, match="disagrees"):
        lay.decode(bad, "0")
    for broken in (data[:-1], data.replace(b'"bits":0', b'"bits":1'),
                   data.replace(b'"repotool-index":2', b'"repotool-index":3'),
                   data.replace(b"\t", b" ", 1)):
        with pytest.raises(Exception):  # noqa: B017 - FormatError, whichever rule
            lay.headers(broken, "0")


def test_layout_field_is_strict() -> None:
    assert layout_of({}) == IndexLayout(1, 8)
    good = {"format": 2, "index_bits": 3, "files": 10, "projects": 2}
    assert layout_of({"x-repotool": good}) == IndexLayout(2, 3, 10, 2)
    for bad in ({**good, "format": 3}, {**good, "index_bits": 17}, {**good, "files": -1},
                {**good, "index_bits": True}, {**good, "extra": 1}, [], "2"):
        with pytest.raises(Exception):  # noqa: B017
            layout_of({"x-repotool": bad})


# ---- small repositories stay small ------------------------------------------------------


def test_small_repository_first_sign_and_cold_update_are_a_handful_of_files(
        tmp_path: Path, home: Path) -> None:
    key = make_key(tmp_path / "keys", "k")
    pk = key.public_key()
    repo = Repository.init(tmp_path / "repo", "demo", RoleKeys([pk], 1, [pk], 1, [pk]),
                           now=datetime.now(UTC), format=2)
    pub = Published(repo.root, key, tmp_path / "dist")
    pub.add_wheel("demo-pkg", "1.0")
    pub.add_wheel("dep-a", "2.0")
    summary = pub.sign()
    assert summary.files <= 30, summary.to_dict()  # format 1: 275
    tgt = current_targets(repo.root).signed
    assert tgt.unrecognized_fields["x-repotool"] == {
        "format": 2, "index_bits": 0, "files": 2, "projects": 2}
    assert tgt.delegations.succinct_roles.bit_length == 1
    _add(home, pub)
    cold = _update(home)
    assert cold["changed"] and cold["projects"] == 2
    assert cold["files_fetched"] <= 5, cold  # timestamp, snapshot, targets, 1 shard
    warm = _update(home)
    assert not warm["changed"] and warm["files_fetched"] <= 2
    assert _listing(home) == ["demo-pkg\t1.0\tdemo\tA tiny test distribution",
                              "dep-a\t2.0\tdemo\tA tiny test distribution"]
    r = cli("--home", home, "download", "dep-a", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output
    assert cli("repo", "check", repo.root).exit_code == 0


def test_cold_update_does_not_decode_entries_show_refuses_a_bad_one(
        tmp_path: Path, home: Path) -> None:
    """A shard whose signature and hash are right but whose file entry is malformed: the
    update stores it (decoding is lazy), the first use of that project refuses it."""
    pub = _published(tmp_path)
    tpath = current_files(pub.root)["targets"]
    lay = layout_of(load_md(tpath).signed.unrecognized_fields)
    (sid,) = [lay.shard_id(p) for p in load_md(tpath).signed.targets if p.startswith("index/")]
    tf = load_md(tpath).signed.targets[lay.path(sid)]
    data = (pub.root / hashed_name(lay.path(sid), tf.hashes["sha256"])).read_bytes()
    bad = data.replace(b'"size":', b'"size":-', 1)  # dep-a's or demo-pkg's first file
    new_tf = TargetFile.from_data(lay.path(sid), bad, ["sha256"])
    (pub.root / hashed_name(lay.path(sid), new_tf.hashes["sha256"])).write_bytes(bad)

    def mutate(t: Any) -> None:
        t.targets[lay.path(sid)] = new_tf
    forge_targets(pub.root, mutate, pub.key.signer())  # the publisher's own key
    _add(home, pub)
    assert _update(home)["projects"] == 2  # stored, not decoded
    assert len(_listing(home)) == 2  # heads are fine
    outcomes = [cli("--home", home, "show", p).exit_code for p in ("demo-pkg", "dep-a")]
    assert sorted(outcomes) == [0, 3] or outcomes == [3, 3]


# ---- growth: shards and bins re-balance, every client follows ---------------------------


def test_growth_rebalances_shards_and_bins_clients_and_python_tuf_follow(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "SHARD_ENTRIES", 2)  # tiny targets: re-balance early
    monkeypatch.setattr(bins, "BIN_TARGETS", 2)
    pub = _published(tmp_path, projects={"p0": ["1.0"]})
    _add(home, pub)
    _update(home)
    seen: list[tuple[int, int]] = []
    with RepoServer(pub.root) as srv:
        up_dir = tmp_path / "tuf"
        (up_dir / "meta").mkdir(parents=True)
        (up_dir / "dl").mkdir()
        for n in range(1, 12):
            pub.add_wheel(f"p{n}", "1.0")
            pub.sign()
            t = current_targets(pub.root).signed
            lay = layout_of(t.unrecognized_fields)
            seen.append((lay.bits, t.delegations.succinct_roles.bit_length))
            assert lay.files == n + 1 and lay.projects == n + 1
            res = _update(home)
            assert res["projects"] == n + 1
            if len(seen) > 1 and seen[-1][0] == seen[-2][0]:  # same shards: only what changed
                assert res["files_fetched"] <= 4, (seen, res)  # ts, snapshot, targets, 1 shard
            assert len(_listing(home)) == n + 1
            # python-tuf, whose cached state spans every re-balance, finds each wheel
            up = Updater(str(up_dir / "meta"), srv.url + "metadata/", str(up_dir / "dl"),
                         srv.url, bootstrap=(pub.root / "metadata/1.root.json").read_bytes())
            up.refresh()
            info = up.get_targetinfo(f"files/p{n}/p{n}-1.0-py3-none-any.whl")
            assert info is not None
            up.download_target(info)
    shard_bits = [s for s, _ in seen]
    bin_bits = [b for _, b in seen]
    assert shard_bits == sorted(shard_bits) and shard_bits[-1] >= 2, seen
    assert bin_bits == sorted(bin_bits) and bin_bits[-1] >= 4, seen
    # hysteresis: fewer re-balances than signs
    assert len(set(shard_bits)) < len(shard_bits) / 2, seen
    assert cli("repo", "check", pub.root).exit_code == 0
    r = cli("--home", home, "show", "p7")
    assert r.exit_code == 0 and "p7-1.0-py3-none-any.whl" in r.stdout


# ---- migration from format 1 ------------------------------------------------------------


def test_v1_client_follows_migration_without_new_keys_and_refuses_v1_after(
        tmp_path: Path, home: Path) -> None:
    pub = _published(tmp_path, fmt=1)
    _add(home, pub)
    _update(home)
    before = _listing(home)
    assert "index_bits" not in json.dumps(current_targets(pub.root).signed.to_dict())
    v1_timestamp = (pub.root / "metadata" / "timestamp.json").read_bytes()
    v1_files = current_files(pub.root)
    old_root = (pub.root / "metadata" / "root.json").read_bytes()

    r = cli("repo", "migrate", pub.root, "--key", pub.key.private)
    assert r.exit_code == 0, r.output
    assert (pub.root / "metadata" / "root.json").read_bytes() == old_root  # root untouched
    assert layout_of(current_targets(pub.root).signed.unrecognized_fields).format == 2
    assert json.loads((pub.root / ".repotool" / "config.json").read_text())["format"] == 2
    r = cli("repo", "migrate", pub.root, "--key", pub.key.private)
    assert r.exit_code == 1 and "already format 2" in r.stderr

    res = _update(home)  # the same source, the same keyring: verified as before
    assert res["changed"] and res["projects"] == 2
    assert _listing(home) == before
    r = cli("--home", home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.exit_code == 0, r.output

    # later signs stay format 2
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    assert layout_of(current_targets(pub.root).signed.unrecognized_fields).format == 2
    _update(home)

    # rollback to the format 1 metadata (validly signed, older) is refused
    saved = (pub.root / "metadata" / "timestamp.json").read_bytes()
    (pub.root / "metadata" / "timestamp.json").write_bytes(v1_timestamp)
    err = _refused(home)
    assert "rollback" in err or "older" in err or "version" in err, err
    (pub.root / "metadata" / "timestamp.json").write_bytes(saved)
    assert v1_files["targets"].exists()


def test_format_downgrade_signed_by_the_publisher_is_refused(tmp_path: Path, home: Path) -> None:
    """After a client accepted format 2, a newer targets (valid signatures, higher
    version) that drops the layout field — format 1 again — is refused as a rollback."""
    pub = _published(tmp_path, fmt=1)
    v1_targets = load_md(current_files(pub.root)["targets"]).signed
    r = cli("repo", "migrate", pub.root, "--key", pub.key.private)
    assert r.exit_code == 0, r.output
    _add(home, pub)
    _update(home)

    def downgrade(t: Any) -> None:
        t.unrecognized_fields.pop("x-repotool")
        t.targets = dict(v1_targets.targets)
    forge_targets(pub.root, downgrade, pub.key.signer())
    err = _refused(home)
    assert "rollback" in err and "format 1" in err, err
    # a fresh client accepts it (nothing to compare with): the mark is the guard
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _add(fresh, pub)
    assert _update(fresh)["projects"] == 2


def _forge(root: Path, mutate: Any, targets_signer: Any, online_signer: Any) -> None:
    """A new targets changed by ``mutate``, signed by ``targets_signer``; snapshot and
    timestamp naming it, signed by ``online_signer``."""
    from attacks import resign, write_md
    from tuf.api.metadata import MetaFile

    meta = root / "metadata"
    files = current_files(root)
    tmd = load_md(files["targets"])
    mutate(tmd.signed)
    tmd.signed.version += 1
    tpath = meta / f"{tmd.signed.version}.targets.json"
    write_md(tpath, resign(tmd, targets_signer))
    snap = load_md(files["snapshot"])
    snap.signed.version += 1
    snap.signed.meta["targets.json"] = MetaFile.from_data(
        tmd.signed.version, tpath.read_bytes(), ["sha256"])
    spath = meta / f"{snap.signed.version}.snapshot.json"
    write_md(spath, resign(snap, online_signer))
    ts = load_md(meta / "timestamp.json")
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(
        snap.signed.version, spath.read_bytes(), ["sha256"])
    write_md(meta / "timestamp.json", resign(ts, online_signer))


# ---- attacks on what format 2 adds ------------------------------------------------------


@pytest.mark.parametrize("what", ["index_bits", "bit_length"])
def test_layout_change_not_signed_by_targets_keys_refused(
        tmp_path: Path, home: Path, what: str) -> None:
    pub = _published(tmp_path)
    _add(home, pub)
    _update(home)
    before = _listing(home)
    attacker = make_key(tmp_path / "evil", "attacker")

    def mutate(t: Any) -> None:
        if what == "index_bits":
            t.unrecognized_fields["x-repotool"]["index_bits"] = 1
        else:
            t.delegations.succinct_roles.bit_length = 2
    # the attacker holds the online key (snapshot, timestamp), not the targets key
    _forge(pub.root, mutate, attacker.signer(), pub.key.signer())
    err = _refused(home)
    assert "targets was signed by 0/1 keys" in err, err
    assert _listing(home) == before


@pytest.mark.parametrize(("bits", "says"), [(5, "index entry"), (3, "of 0 bits")])
def test_layout_that_disagrees_with_the_shards_refused(
        tmp_path: Path, home: Path, bits: int, says: str) -> None:
    """Signed by the targets key but inconsistent with the shard ``index/0.json`` (0
    bits): with 5 bits its id is not one (2 digits); with 3 it is, but the shard's own
    first line says 0 bits — refused at update, though entries are decoded lazily."""
    pub = _published(tmp_path)
    _add(home, pub)
    _update(home)
    before = _listing(home)

    def mutate(t: Any) -> None:
        t.unrecognized_fields["x-repotool"]["index_bits"] = bits
    forge_targets(pub.root, mutate, pub.key.signer())
    err = _refused(home)
    assert says in err, err
    assert _listing(home) == before


def test_shard_with_wrong_hash_refused_although_decoding_is_lazy(
        tmp_path: Path, home: Path, locations: Any) -> None:
    pub = _published(tmp_path)
    tpath = current_files(pub.root)["targets"]
    (path, tf), = [(p, t) for p, t in load_md(tpath).signed.targets.items()
                   if p.startswith("index/")]
    disk = pub.root / hashed_name(path, tf.hashes["sha256"])
    data = disk.read_bytes()
    disk.write_bytes(data.replace(b"A tiny", b"A tinY", 1))  # same length, other bytes
    loc = locations.serve(pub.root, "http")
    _add(home, pub, loc.url)
    r = cli("--home", home, "update")
    assert r.exit_code == 3, r.output
    assert "signed hash" in r.stderr, r.stderr
    disk.write_bytes(data)
    assert _update(home)["projects"] == 2


def test_cached_v2_shard_altered_is_detected_on_use(tmp_path: Path, home: Path) -> None:
    pub = _published(tmp_path)
    _add(home, pub)
    _update(home)
    (shard,) = (home / "sources" / "demo" / "cache" / "shards").glob("*.json")
    shard.write_bytes(shard.read_bytes().replace(b"A tiny", b"A tinY", 1))
    # list answers from the generation's heads (pinned by the keyring), as in format 1;
    # the shard itself is re-hashed when a project in it is used
    r = cli("--home", home, "list")
    assert r.exit_code == 0 and "tinY" not in r.stdout, r.output
    r = cli("--home", home, "show", "demo-pkg")
    assert r.exit_code == 3 and "damaged" in r.stderr, r.output


def test_v2_repository_copy_keeps_working_after_workspace_removed(tmp_path: Path,
                                                                  home: Path) -> None:
    pub = _published(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(pub.root, copy, ignore=shutil.ignore_patterns(".repotool"))
    r = cli("--home", home, "source", "add", "demo", copy, "--key", pub.key.public)
    assert r.exit_code == 0, r.output
    assert _update(home)["projects"] == 2


def test_install_from_migrated_repository_with_real_pip(tmp_path: Path, home: Path) -> None:
    """A client added on format 1 installs (real pip, through the verified proxy) from
    the same repository after its migration to format 2."""
    import os

    from venvs import make_venv, pip_freeze

    pub = _published(tmp_path, fmt=1)
    pub.add_wheel("app", "1.0", requires_dist=["dep-a>=2"])
    pub.sign()
    _add(home, pub)
    _update(home)
    assert cli("repo", "migrate", pub.root, "--key", pub.key.private).exit_code == 0
    assert _update(home)["changed"]
    py = make_venv(tmp_path / "venv")
    env = {"RUSTUP_HOME": os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))}
    r = cli("--home", home, "install", "--python", py, "app", env=env)
    assert r.exit_code == 0, r.output
    assert pip_freeze(py) == {"app": "1.0", "dep-a": "2.0"}
