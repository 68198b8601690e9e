"""The publisher: init, add, remove, yank, sign, rotate (SPEC §2 publisher, §4; docs/format.md).

Every security property here is checked with real keys and the real metadata; the
"nothing written" checks compare the whole tree, bytes included, before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from builders import build_sdist, build_wheel
from conftest import KeyPair, cli, make_key
from servers import RepoServer
from tuf.api.metadata import Metadata, SuccinctRoles

from repotool.errors import UserError, VerificationError
from repotool.format.index import Shard, shard_of
from repotool.format.layout import hashed_name
from repotool.publish import signing
from repotool.publish.tree import DEFAULT_EXPIRY
from repotool.publish.workspace import Repository, RoleKeys

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


# ---- helpers ---------------------------------------------------------------------------


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (workspace included, but not its empty lock file)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"
    }


def s_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md(root: Path, name: str) -> Metadata[Any]:
    return Metadata.from_file(str(root / "metadata" / name))


def published_md(root: Path) -> dict[str, Metadata[Any]]:
    """The current metadata as a client would find it (timestamp → snapshot → targets)."""
    ts = md(root, "timestamp.json")
    snap = md(root, f"{ts.signed.snapshot_meta.version}.snapshot.json")
    targets = md(root, f"{snap.signed.meta['targets.json'].version}.targets.json")
    out = {"timestamp": ts, "snapshot": snap, "targets": targets, "root": md(root, "root.json")}
    for name, mf in snap.signed.meta.items():
        if name.startswith("bins-"):
            out[name[:-5]] = md(root, f"{mf.version}.{name}")
    return out


def shard(root: Path, project: str) -> Shard:
    ms = published_md(root)
    sid = shard_of(project)
    tf = ms["targets"].signed.targets[f"index/{sid}.json"]
    data = (root / hashed_name(f"index/{sid}.json", tf.hashes["sha256"])).read_bytes()
    return Shard.from_bytes(data, sid)


@dataclass
class Keys:
    r1: KeyPair
    r2: KeyPair
    r3: KeyPair
    targets: KeyPair
    online: KeyPair
    stranger: KeyPair


@pytest.fixture
def ks(tmp_path: Path) -> Keys:
    d = tmp_path / "keys"
    return Keys(*(make_key(d, n) for n in ("r1", "r2", "r3", "targets", "online", "stranger")))


def signers(*kps: KeyPair) -> list[Any]:
    return [k.signer() for k in kps]


def separated_repo(tmp_path: Path, ks: Keys, *, root_threshold: int = 1,
                   root_keys: tuple[KeyPair, ...] | None = None, bin_bits: int = 2) -> Repository:
    rk = [k.public_key() for k in (root_keys or (ks.r1,))]
    return Repository.init(
        tmp_path / "repo", "sep",
        RoleKeys(rk, root_threshold, [ks.targets.public_key()], 1, [ks.online.public_key()]),
        now=NOW, bin_bits=bin_bits)


def solo_repo(tmp_path: Path, key: KeyPair, name: str = "repo", bin_bits: int = 2) -> Repository:
    """A one-key repository; 4 bins (bit_length 2) keep tests fast, the default is 256."""
    pk = key.public_key()
    return Repository.init(tmp_path / name, "solo", RoleKeys([pk], 1, [pk], 1, [pk]), now=NOW,
                           bin_bits=bin_bits)


# ---- init ------------------------------------------------------------------------------


def test_init_one_key_holds_every_role(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    assert not (repo.root / "metadata").exists()  # nothing visible before the first sign
    d = repo.describe_keys()
    assert d["published"] is False and d["pending_root"] is True and d["name"] == "solo"
    for role in ("root", "targets", "snapshot", "timestamp"):
        assert d["roles"][role]["keys"] == [ks.r1.fingerprint]
        assert d["roles"][role]["threshold"] == 1
    repo.sign(signers(ks.r1), now=NOW)
    root = md(repo.root, "1.root.json")
    assert root.signed.consistent_snapshot is True
    assert root.signed.unrecognized_fields["x-repotool"] == {"name": "solo", "format": 1}
    assert md(repo.root, "root.json").to_bytes() == root.to_bytes()
    assert repo.describe_keys()["published"] is True
    with pytest.raises(UserError, match="already holds a repository"):
        solo_repo(tmp_path, ks.r1)


def test_init_refuses_bad_role_keys(tmp_path: Path, ks: Keys) -> None:
    pk = ks.r1.public_key()
    with pytest.raises(UserError, match="twice"):
        Repository.init(tmp_path / "a", "x", RoleKeys([pk, pk], 1, [pk], 1, [pk]), now=NOW)
    with pytest.raises(UserError, match="threshold"):
        Repository.init(tmp_path / "b", "x", RoleKeys([pk], 2, [pk], 1, [pk]), now=NOW)
    with pytest.raises(UserError, match="no online key"):
        Repository.init(tmp_path / "c", "x", RoleKeys([pk], 1, [pk], 1, []), now=NOW)
    with pytest.raises(UserError, match="name"):
        Repository.init(tmp_path / "d", "", RoleKeys([pk], 1, [pk], 1, [pk]), now=NOW)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_m_of_n_root_threshold_not_met_writes_nothing(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks, root_threshold=2, root_keys=(ks.r1, ks.r2, ks.r3))
    before = tree(repo.root)
    with pytest.raises(VerificationError) as ei:
        repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    msg = ei.value.message
    assert "nothing was written" in msg
    assert "root: 1 more signature(s) needed" in msg
    assert ks.r2.fingerprint in msg and ks.r3.fingerprint in msg
    assert ei.value.exit_code == 3
    assert tree(repo.root) == before
    s = repo.sign(signers(ks.r1, ks.r3, ks.targets, ks.online), now=NOW)
    assert s.versions["root"] == 1
    root = md(repo.root, "1.root.json")
    assert set(root.signatures) == {ks.r1.fingerprint, ks.r3.fingerprint}
    assert root.signed.roles["root"].threshold == 2


def test_role_separated_init(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks, bin_bits=8)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    ms = published_md(repo.root)
    roles = ms["root"].signed.roles
    assert roles["root"].keyids == [ks.r1.fingerprint]
    assert roles["targets"].keyids == [ks.targets.fingerprint]
    assert roles["snapshot"].keyids == roles["timestamp"].keyids == [ks.online.fingerprint]
    assert set(ms["targets"].signatures) == {ks.targets.fingerprint}
    assert set(ms["snapshot"].signatures) == {ks.online.fingerprint}
    assert set(ms["timestamp"].signatures) == {ks.online.fingerprint}
    sr = ms["targets"].signed.delegations.succinct_roles
    assert (sr.bit_length, sr.name_prefix, sr.keyids, sr.threshold) == (
        8, "bins", [ks.targets.fingerprint], 1)
    assert set(ms["bins-00"].signatures) == {ks.targets.fingerprint}
    # the root key is not online: it signs only root
    assert ks.r1.fingerprint not in ms["targets"].signatures


@pytest.mark.parametrize("missing", ["r1", "targets", "online"])
def test_first_sign_needs_every_role(tmp_path: Path, ks: Keys, missing: str) -> None:
    repo = separated_repo(tmp_path, ks)
    before = tree(repo.root)
    given = [k for n, k in (("r1", ks.r1), ("targets", ks.targets), ("online", ks.online))
             if n != missing]
    with pytest.raises(VerificationError) as ei:
        repo.sign(signers(*given), now=NOW)
    assert getattr(ks, missing).fingerprint in ei.value.message
    assert tree(repo.root) == before


# ---- add -------------------------------------------------------------------------------


def test_add_folder_of_wheels_and_sdists(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    dist = tmp_path / "dist"
    build_wheel(dist, "demo-pkg", "1.0", requires_python=">=3.8", requires_dist=["dep-a"])
    build_sdist(dist, "demo-pkg", "1.0")
    build_wheel(dist, "dep-a", "2.0", summary="Dep A")
    (dist / "README.txt").write_text("not a distribution")
    (dist / "sub").mkdir()
    build_wheel(dist / "sub", "ignored", "1.0")  # folders are not searched recursively
    added = repo.add([dist], now=NOW)
    assert sorted(i.filename for i in added) == [
        "demo_pkg-1.0-py3-none-any.whl", "demo_pkg-1.0.tar.gz", "dep_a-2.0-py3-none-any.whl"]
    s = repo.sign(signers(ks.r1), now=NOW)
    assert s.projects_changed == 2
    sh = shard(repo.root, "demo-pkg")
    files = {f.filename: f for f in sh.projects["demo-pkg"].files}
    assert set(files) == {"demo_pkg-1.0-py3-none-any.whl", "demo_pkg-1.0.tar.gz"}
    whl = files["demo_pkg-1.0-py3-none-any.whl"]
    assert whl.requires_python == ">=3.8" and whl.requires_dist == ("dep-a",)
    assert whl.upload_time == "2030-01-01T12:00:00Z"  # from the `now` given to add()
    assert shard(repo.root, "dep-a").projects["dep-a"].summary == "Dep A"
    # both names of every distribution exist, with the same bytes
    for info in added:
        plain = repo.root / "files" / info.project / info.filename
        hashed = repo.root / hashed_name(f"files/{info.project}/{info.filename}", info.sha256)
        assert plain.read_bytes() == hashed.read_bytes() == (dist / info.filename).read_bytes()


def test_add_100_files_in_one_call(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    dist = tmp_path / "dist"
    for i in range(50):
        build_wheel(dist, f"proj-{i}", "1.0")
        build_wheel(dist, f"proj-{i}", "1.1")
    r = cli("repo", "add", repo.root, dist)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("added ") == 100
    s = repo.sign(signers(ks.r1), now=NOW)
    assert s.projects_changed == 50
    index = json.loads((repo.root / "simple" / "index.json").read_bytes())
    assert len(index["projects"]) == 50
    assert [str(v) for v in shard(repo.root, "proj-7").projects["proj-7"].versions()] == [
        "1.0", "1.1"]


def test_add_same_bytes_is_idempotent(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    whl = build_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    assert len(repo.add([whl], now=NOW)) == 1
    assert repo.add([whl, whl], now=NOW) == []  # pending already
    pending = (repo.work / "pending.json").read_bytes()
    repo.sign(signers(ks.r1), now=NOW)
    assert repo.add([whl], now=NOW) == []  # published already
    assert not (repo.work / "pending.json").exists() or json.loads(
        (repo.work / "pending.json").read_bytes())["add"] == []
    assert json.loads(pending)["add"][0]["filename"] == whl.name


def test_filename_collision_with_different_bytes_refused(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    whl = build_wheel(tmp_path / "a", "demo-pkg", "1.0")
    other = build_wheel(tmp_path / "b", "demo-pkg", "1.0", summary="different bytes")
    assert whl.name == other.name and whl.read_bytes() != other.read_bytes()
    repo.add([whl], now=NOW)
    with pytest.raises(UserError, match="different content"):
        repo.add([other], now=NOW)  # while pending
    repo.sign(signers(ks.r1), now=NOW)
    before = tree(repo.root)
    r = cli("repo", "add", repo.root, other)  # once published
    assert r.exit_code == 1 and "never reused" in r.stderr
    assert tree(repo.root) == before


def test_filename_reuse_after_remove_refused(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    whl = build_wheel(tmp_path / "a", "demo-pkg", "1.0")
    build_wheel(tmp_path / "a", "demo-pkg", "1.1")
    repo.add([tmp_path / "a"], now=NOW)
    repo.sign(signers(ks.r1), now=NOW)
    assert repo.remove("demo-pkg", "1.0") == 1
    repo.sign(signers(ks.r1), now=NOW)
    other = build_wheel(tmp_path / "b", "demo-pkg", "1.0", summary="new bytes, old name")
    with pytest.raises(UserError, match="published before with different content") as ei:
        repo.add([other], now=NOW)
    assert "even after removal" in str(ei.value.hint)
    assert whl.name == other.name


def test_add_refuses_a_bad_file_among_good_ones(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    good = build_wheel(tmp_path / "d", "demo-pkg", "1.0")
    bad = build_wheel(tmp_path / "d", "evil", "1.0", metadata_name="demo-pkg")
    with pytest.raises(UserError):
        repo.add([good, bad], now=NOW)
    assert not (repo.work / "pending.json").exists()


def test_add_refuses_metadata_the_index_cannot_hold(tmp_path: Path, ks: Keys) -> None:
    """A Requires-Python longer than the shard format allows would make the whole shard,
    and so every update of the source, fail for clients: refused at 'add'."""
    repo = solo_repo(tmp_path, ks.r1)
    rp = ">=3.8," + ",".join(f"!=3.{i}.*" for i in range(9, 100))
    whl = build_wheel(tmp_path / "d", "demo-pkg", "1.0", requires_python=rp)
    with pytest.raises(UserError, match="cannot be indexed"):
        repo.add([whl], now=NOW)
    assert not (repo.work / "pending.json").exists()


def test_add_empty_folder_refused(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no distributions here")
    r = cli("repo", "add", repo.root, tmp_path / "empty")
    assert r.exit_code == 1 and "holds no wheels or sdists" in r.stderr


def test_add_requires_a_repository(tmp_path: Path) -> None:
    whl = build_wheel(tmp_path / "d", "demo-pkg", "1.0")
    with pytest.raises(UserError, match="not a repotool repository"):
        Repository(tmp_path / "nothing").add([whl], now=NOW)


# ---- remove / yank ---------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path, ks: Keys) -> Repository:
    repo = solo_repo(tmp_path, ks.r1)
    d = tmp_path / "dist"
    build_wheel(d, "demo-pkg", "1.0", requires_python=">=3.8")
    build_sdist(d, "demo-pkg", "1.0")
    build_wheel(d, "demo-pkg", "2.0")
    build_wheel(d, "other", "1.0")
    repo.add([d], now=NOW)
    repo.sign(signers(ks.r1), now=NOW)
    return repo


def test_remove_version(demo: Repository, ks: Keys) -> None:
    assert demo.remove("Demo_Pkg", "1.0") == 2
    demo.sign(signers(ks.r1), now=NOW)
    p = shard(demo.root, "demo-pkg").projects["demo-pkg"]
    assert [f.filename for f in p.files] == ["demo_pkg-2.0-py3-none-any.whl"]
    page = json.loads((demo.root / "simple" / "demo-pkg" / "index.json").read_bytes())
    assert [f["filename"] for f in page["files"]] == ["demo_pkg-2.0-py3-none-any.whl"]
    assert "demo_pkg-1.0" not in (demo.root / "simple" / "demo-pkg" / "index.html").read_text()
    ms = published_md(demo.root)
    bins = [m for n, m in ms.items() if n.startswith("bins-")]
    listed = {p for b in bins for p in b.signed.targets}
    assert "files/demo-pkg/demo_pkg-1.0.tar.gz" not in listed
    assert "files/demo-pkg/demo_pkg-2.0-py3-none-any.whl" in listed


def test_remove_project(demo: Repository, ks: Keys) -> None:
    assert demo.remove("demo-pkg", None) == 3
    demo.sign(signers(ks.r1), now=NOW)
    assert "demo-pkg" not in shard(demo.root, "other").projects
    ms = published_md(demo.root)
    if f"index/{shard_of('demo-pkg')}.json" in ms["targets"].signed.targets:
        assert "demo-pkg" not in shard(demo.root, "demo-pkg").projects
    listed = {p for n, m in ms.items() if n.startswith("bins-") for p in m.signed.targets}
    assert not any("demo-pkg" in p for p in listed)
    root_page = json.loads((demo.root / "simple" / "index.json").read_bytes())
    assert root_page["projects"] == [{"name": "other"}]
    # plain pip must not find the removed project through its old plain page
    assert not (demo.root / "simple" / "demo-pkg" / "index.html").exists()
    assert not (demo.root / "simple" / "demo-pkg" / "index.json").exists()


def test_remove_unknown_refused(demo: Repository) -> None:
    with pytest.raises(UserError, match="not in the repository"):
        demo.remove("nope", None)
    with pytest.raises(UserError, match="not in the repository"):
        demo.remove("demo-pkg", "9.9")


def test_remove_then_add_in_one_batch_keeps_the_new_file(demo: Repository, ks: Keys,
                                                         tmp_path: Path) -> None:
    """Pending changes apply in the order they were made."""
    demo.remove("demo-pkg", None)
    demo.add([build_wheel(tmp_path / "new", "demo-pkg", "3.0")], now=NOW)
    demo.sign(signers(ks.r1), now=NOW)
    p = shard(demo.root, "demo-pkg").projects["demo-pkg"]
    assert [f.filename for f in p.files] == ["demo_pkg-3.0-py3-none-any.whl"]


def test_add_then_remove_in_one_batch(demo: Repository, ks: Keys, tmp_path: Path) -> None:
    demo.add([build_wheel(tmp_path / "new", "demo-pkg", "3.0")], now=NOW)
    demo.remove("demo-pkg", "3.0")
    demo.sign(signers(ks.r1), now=NOW)
    p = shard(demo.root, "demo-pkg").projects["demo-pkg"]
    assert "3.0" not in {f.version for f in p.files}


@pytest.mark.parametrize("reason", ["security hole <CVE-1>", None])
def test_yank_shows_in_index_and_pages(demo: Repository, ks: Keys, reason: str | None) -> None:
    assert demo.yank("demo-pkg", "1.0", reason) == 2
    demo.sign(signers(ks.r1), now=NOW)
    expected: bool | str = reason if reason else True
    p = shard(demo.root, "demo-pkg").projects["demo-pkg"]
    assert {f.filename: f.yanked for f in p.files} == {
        "demo_pkg-1.0-py3-none-any.whl": expected,
        "demo_pkg-1.0.tar.gz": expected,
        "demo_pkg-2.0-py3-none-any.whl": False,
    }
    page = json.loads((demo.root / "simple" / "demo-pkg" / "index.json").read_bytes())
    assert {f["filename"]: f["yanked"] for f in page["files"]}["demo_pkg-1.0.tar.gz"] == expected
    html = (demo.root / "simple" / "demo-pkg" / "index.html").read_text()
    line = next(x for x in html.splitlines() if "demo_pkg-1.0.tar.gz" in x)
    assert 'data-yanked="' + ("security hole &lt;CVE-1&gt;" if reason else "") + '"' in line
    assert "data-yanked" not in next(x for x in html.splitlines() if "2.0-py3" in x)


def test_yank_unknown_version_refused(demo: Repository) -> None:
    with pytest.raises(UserError):
        demo.yank("demo-pkg", "7.0", None)


# ---- sign: what is rewritten -----------------------------------------------------------


def test_sign_rewrites_only_changed_bins_and_shards(tmp_path: Path, ks: Keys) -> None:
    demo = solo_repo(tmp_path, ks.r1, bin_bits=8)  # the default: 256 bins
    demo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0"),
              build_wheel(tmp_path / "d", "other", "1.0")], now=NOW)
    demo.sign(signers(ks.r1), now=NOW)
    before = tree(demo.root)
    whl = build_wheel(tmp_path / "new", "demo-pkg", "3.0")
    demo.add([whl], now=NOW)
    s = demo.sign(signers(ks.r1), now=NOW)
    after = tree(demo.root)
    sr = SuccinctRoles([], 1, 8, "bins")
    meta = "files/demo-pkg/" + whl.name + ".metadata"  # its core metadata (PEP 658)
    changed_targets = ["files/demo-pkg/" + whl.name, meta, "simple/demo-pkg/index.html",
                       "simple/demo-pkg/index.json"]  # the project list did not change
    bins = {sr.get_role_for_target(t) for t in changed_targets}
    assert s.versions == {"timestamp": 2, "snapshot": 2, "targets": 2, **dict.fromkeys(bins, 2)}
    assert s.projects_changed == 1
    new = sorted(set(after) - set(before))
    changed = sorted(p for p in set(after) & set(before) if after[p] != before[p])
    sid = shard_of("demo-pkg")
    with zipfile.ZipFile(whl) as z:
        meta_sha = hashlib.sha256(z.read("demo_pkg-3.0.dist-info/METADATA")).hexdigest()
    by_add = {"files/demo-pkg/" + whl.name, meta,  # the plain copies, linked by sign
              hashed_name("files/demo-pkg/" + whl.name, s_sha(whl)),  # copied in by add
              hashed_name(meta, meta_sha)}  # written by add
    expect_new = {
        *by_add,
        *(f"metadata/2.{b}.json" for b in bins),
        "metadata/2.targets.json", "metadata/2.snapshot.json",
    }
    assert expect_new <= set(new)
    rest = set(new) - expect_new
    assert {p.split("/")[0] for p in rest} <= {"index", "simple", ".repotool"}
    assert sum(p.startswith("index/") and p.endswith(f".{sid}.json") for p in rest) == 1
    assert sum(p.startswith("simple/demo-pkg/") for p in rest) == 2  # hashed html + json
    assert set(changed) == {
        "metadata/timestamp.json", "simple/demo-pkg/index.html", "simple/demo-pkg/index.json"}
    # files written by sign: everything new but the two names of the wheel and of its
    # metadata, plus the three
    # rewritten in place (timestamp, two plain pages)
    assert s.files == len(set(new) - by_add) + 3
    assert s.bytes > 0
    # the other project's shard and pages, and the other 25x bins, are untouched
    other_sid = shard_of("other")
    if other_sid != sid:
        assert not any(p.endswith(f".{other_sid}.json") for p in new)


def test_sign_without_changes_writes_only_timestamp(demo: Repository, ks: Keys) -> None:
    before = tree(demo.root)
    s = demo.sign(signers(ks.r1), now=NOW + timedelta(hours=1))
    assert s.versions == {"timestamp": 2}
    assert s.files == 1
    after = tree(demo.root)
    assert set(after) == set(before)
    assert {p for p in after if after[p] != before[p]} == {
        "metadata/timestamp.json"}


def test_force_roles_resigns_them(demo: Repository, ks: Keys) -> None:
    s = demo.sign(signers(ks.r1), now=NOW, force=frozenset({"root", "snapshot"}))
    assert s.versions["root"] == 2 and s.versions["snapshot"] == 2 and s.versions["targets"] == 2
    assert (demo.root / "metadata" / "2.root.json").read_bytes() == (
        demo.root / "metadata" / "root.json").read_bytes()


def test_timestamp_written_last(demo: Repository, ks: Keys, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A client reading mid-publish sees the old timestamp until every file it names exists."""
    order: list[str] = []
    real_write, real_link = signing.atomic_write, os.link

    def rec_write(path: Path, data: bytes, **kw: Any) -> None:
        order.append("write " + path.relative_to(demo.root).as_posix())
        real_write(path, data, **kw)

    def rec_link(src: Any, dst: Any, *a: Any, **kw: Any) -> None:
        order.append("link " + Path(dst).relative_to(demo.root).as_posix())
        real_link(src, dst, *a, **kw)

    monkeypatch.setattr(signing, "atomic_write", rec_write)
    monkeypatch.setattr(os, "link", rec_link)
    demo.add([build_wheel(tmp_path / "n", "brand-new", "1.0")], now=NOW)
    order.clear()
    demo.sign(signers(ks.r1), now=NOW, force=frozenset({"root"}))
    ts = order.index("write metadata/timestamp.json")
    before, after = order[:ts], order[ts + 1:]
    assert any(o.startswith("write metadata/2.snapshot.json") for o in before)
    assert "write metadata/2.root.json" in before and "write metadata/root.json" in before
    assert any(o.startswith("write index/") for o in before)
    assert "link files/brand-new/brand_new-1.0-py3-none-any.whl" in before
    # after the timestamp: only the plain simple pages (plain pip sees the release now)
    assert after and all(o.startswith("write simple/") and o.endswith(("/index.html",
                                                                     "/index.json"))
                         for o in after), after
    assert {o.rsplit("/", 1)[0] for o in after} == {"write simple", "write simple/brand-new"}


def test_sign_that_died_before_timestamp_is_repaired_by_next_sign(
        demo: Repository, ks: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign killed before its timestamp leaves the old repository visible; the next sign
    (at another time, so other expiries and bytes) must replace the orphaned metadata."""
    from repotool.publish.check import check_repository

    real = signing.atomic_write

    def die_at_timestamp(path: Path, data: bytes, **kw: Any) -> None:
        if path.name == "timestamp.json":
            raise OSError("killed")
        real(path, data, **kw)

    demo.add([build_wheel(tmp_path / "n", "demo-pkg", "3.0")], now=NOW)
    monkeypatch.setattr(signing, "atomic_write", die_at_timestamp)
    with pytest.raises(OSError):
        demo.sign(signers(ks.r1), now=NOW)
    monkeypatch.setattr(signing, "atomic_write", real)
    assert (demo.root / "metadata" / "2.targets.json").exists()  # orphaned, unreferenced
    assert md(demo.root, "timestamp.json").signed.version == 1
    assert check_repository(demo.root, now=NOW).problems == []  # clients see the old state
    assert json.loads((demo.work / "pending.json").read_bytes())["add"]  # still pending
    later = NOW + timedelta(hours=3)
    s = demo.sign(signers(ks.r1), now=later)
    assert s.versions["targets"] == 2
    assert md(demo.root, "2.targets.json").signed.expires == later + timedelta(days=90)
    assert check_repository(demo.root, now=later).problems == []
    assert "3.0" in {f.version for f in shard(demo.root, "demo-pkg").projects["demo-pkg"].files}


# ---- sign: thresholds, unauthorized keys -----------------------------------------------


def test_threshold_not_met_cli_exit_3_names_missing(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks, root_threshold=2, root_keys=(ks.r1, ks.r2))
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=NOW)
    before = tree(repo.root)
    r = cli("repo", "sign", repo.root, "--key", ks.r1.private, "--key", ks.targets.private,
            "--key", ks.online.private)
    assert r.exit_code == 3, r.output
    assert ks.r2.fingerprint in r.stderr and "nothing was written" in r.stderr
    assert len([x for x in r.stderr.splitlines() if x.strip()]) <= 2
    assert tree(repo.root) == before


def test_unauthorized_key_counts_for_nothing_and_is_ignored_with_a_note(
        demo: Repository, ks: Keys, tmp_path: Path) -> None:
    demo.add([build_wheel(tmp_path / "d", "demo-pkg", "5.0")], now=NOW)
    before = tree(demo.root)
    r = cli("repo", "sign", demo.root, "--key", ks.stranger.private)
    assert r.exit_code == 3, r.output
    assert "nothing was written" in r.stderr and ks.r1.fingerprint in r.stderr
    assert f"ignored, holding no role written: {ks.stranger.fingerprint}" in r.stderr
    assert tree(demo.root) == before
    # SPEC §6.1: an extra key beside the needed ones is ignored with a note, not an error
    r = cli("repo", "sign", demo.root, "--key", ks.r1.private, "--key", ks.stranger.private,
            "--json")
    assert r.exit_code == 0, r.output
    note = f"key {ks.stranger.fingerprint} holds no role this sign writes: ignored"
    assert f"note: {note}" in r.stderr
    assert json.loads(r.stdout)["notes"] == [note]
    for f in (demo.meta).glob("*.json"):
        assert ks.stranger.fingerprint not in f.read_text()


def test_online_key_alone_refreshes_timestamp_and_snapshot(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=NOW)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    s = repo.sign(signers(ks.online), now=NOW + timedelta(hours=20))
    assert s.versions == {"timestamp": 2}
    s = repo.sign(signers(ks.online), now=NOW + timedelta(days=5), force=frozenset({"snapshot"}))
    assert s.versions == {"timestamp": 3, "snapshot": 2}
    assert set(md(repo.root, "2.snapshot.json").signatures) == {ks.online.fingerprint}


def test_online_key_alone_cannot_publish_files(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    repo.add([build_wheel(tmp_path / "d", "evil-pkg", "1.0")], now=NOW)
    before = tree(repo.root)
    with pytest.raises(VerificationError) as ei:
        repo.sign(signers(ks.online), now=NOW)
    assert "targets" in ei.value.message and ks.targets.fingerprint in ei.value.message
    assert tree(repo.root) == before
    # and the targets key alone cannot publish either: snapshot and timestamp need the online key
    with pytest.raises(VerificationError, match=ks.online.fingerprint):
        repo.sign(signers(ks.targets), now=NOW)
    assert tree(repo.root) == before
    s = repo.sign(signers(ks.targets, ks.online), now=NOW)
    assert "targets" in s.versions


def test_online_key_cannot_resign_root(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    before = tree(repo.root)
    with pytest.raises(VerificationError, match="root"):
        repo.sign(signers(ks.targets, ks.online), now=NOW, force=frozenset({"root"}))
    assert tree(repo.root) == before


# ---- expiry ----------------------------------------------------------------------------


def _expiries(root: Path) -> dict[str, datetime]:
    return {n: m.signed.expires for n, m in published_md(root).items()}


def test_default_expiry_per_role(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=NOW)
    repo.sign(signers(ks.r1), now=NOW)
    exp = _expiries(repo.root)
    for name, when in exp.items():
        role = "bins" if name.startswith("bins-") else name
        assert when == NOW + timedelta(seconds=DEFAULT_EXPIRY[role]), name
    assert DEFAULT_EXPIRY == {"root": 365 * 86400, "targets": 90 * 86400, "bins": 90 * 86400,
                              "snapshot": 7 * 86400, "timestamp": 86400}


def test_expires_applies_to_every_role_written(tmp_path: Path, ks: Keys) -> None:
    repo = solo_repo(tmp_path, ks.r1)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=NOW)
    r = cli("repo", "sign", repo.root, "--key", ks.r1.private, "--expires", "3h", "--json")
    assert r.exit_code == 0, r.output
    exp = _expiries(repo.root)
    written = json.loads(r.stdout)["versions"]
    assert set(written) == set(exp)
    first = exp["timestamp"]
    assert all(e == first for e in exp.values()), exp  # one `now`, one lifetime
    assert timedelta(hours=2, minutes=55) < first - datetime.now(UTC) <= timedelta(hours=3)
    # a later sign with --expires touches only what it writes
    later = NOW + timedelta(days=1)
    repo.sign(signers(ks.r1), now=later, expires=600)
    exp2 = _expiries(repo.root)
    assert exp2["timestamp"] == later + timedelta(seconds=600)
    assert exp2["targets"] == exp["targets"] and exp2["root"] == exp["root"]


# ---- rotate ----------------------------------------------------------------------------


def _tuf_refresh(repo_root: Path, work: Path) -> Any:
    """python-tuf's own client (its own fetcher, over loopback HTTP), bootstrapped from
    1.root.json; returns the Updater after refresh() and a bins lookup of one target."""
    from tuf.ngclient import Updater

    work.mkdir(parents=True, exist_ok=True)
    with RepoServer(repo_root) as srv:
        up = Updater(str(work), srv.url + "metadata/", str(work), srv.url,
                     bootstrap=(repo_root / "metadata" / "1.root.json").read_bytes())
        up.refresh()
        up.get_targetinfo("simple/index.json")  # walks into the bins delegation
    return up


def test_rotate_root_key_followed_by_tuf_client(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=datetime.now(UTC))
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=datetime.now(UTC))
    # rotation needs the old threshold (r1) and the new one (r2): each alone is refused
    for only in (ks.r1, ks.r2):
        before = tree(repo.root)
        with pytest.raises(VerificationError, match="root"):
            repo.rotate("root", [ks.r2.public_key()], [ks.r1.fingerprint], None,
                        signers(only, ks.targets, ks.online), now=datetime.now(UTC))
        assert tree(repo.root) == before
    r = cli("repo", "rotate", repo.root, "--role", "root", "--add", ks.r2.public,
            "--remove", ks.r1.fingerprint, "--key", ks.r1.private, "--key", ks.r2.private,
            "--key", ks.targets.private, "--key", ks.online.private, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["versions"]["root"] == 2
    root2 = md(repo.root, "2.root.json")
    assert set(root2.signatures) == {ks.r1.fingerprint, ks.r2.fingerprint}
    assert root2.signed.roles["root"].keyids == [ks.r2.fingerprint]
    assert ks.r1.fingerprint not in root2.signed.keys  # revoked keys leave the root
    up = _tuf_refresh(repo.root, tmp_path / "client")
    assert up._trusted_set.root.version == 2
    # the old root key alone no longer counts
    with pytest.raises(VerificationError):
        repo.sign(signers(ks.r1, ks.targets, ks.online), now=datetime.now(UTC),
                  force=frozenset({"root"}))
    repo.sign(signers(ks.r2, ks.targets, ks.online), now=datetime.now(UTC),
              force=frozenset({"root"}))
    assert _tuf_refresh(repo.root, tmp_path / "client2")._trusted_set.root.version == 3


def test_stale_root_json_does_not_roll_back_the_publisher(tmp_path: Path, ks: Keys) -> None:
    """The publisher works from the newest N.root.json; a stale root.json copy (a sign
    killed between the two writes) neither brings back revoked keys nor makes the next
    root reuse a published version number."""
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    repo.rotate("online", [ks.r3.public_key()], [ks.online.fingerprint], None,
                signers(ks.r1, ks.targets, ks.r3), now=NOW)
    meta = repo.root / "metadata"
    published_root2 = (meta / "2.root.json").read_bytes()
    (meta / "root.json").write_bytes((meta / "1.root.json").read_bytes())
    with pytest.raises(VerificationError):
        repo.sign(signers(ks.online), now=NOW)  # revoked in root 2
    s = repo.sign(signers(ks.r1, ks.targets, ks.r3), now=NOW, force=frozenset({"root"}))
    assert s.versions["root"] == 3
    assert (meta / "2.root.json").read_bytes() == published_root2
    assert (meta / "root.json").read_bytes() == (meta / "3.root.json").read_bytes()


def test_attacker_with_signing_keys_cannot_publish_new_root(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    before = tree(repo.root)
    # the attacker adds its own key as a root key and signs with everything it holds
    r = cli("repo", "rotate", repo.root, "--role", "root", "--add", ks.stranger.public,
            "--key", ks.stranger.private, "--key", ks.targets.private,
            "--key", ks.online.private)
    assert r.exit_code == 3, r.output
    assert ks.r1.fingerprint in r.stderr
    assert tree(repo.root) == before
    r = cli("repo", "rotate", repo.root, "--role", "targets", "--add", ks.stranger.public,
            "--key", ks.targets.private, "--key", ks.online.private)
    assert r.exit_code == 3, r.output
    assert tree(repo.root) == before


def test_rotate_targets_key_resigns_bins(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=datetime.now(UTC))
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=datetime.now(UTC))
    s = repo.rotate("targets", [ks.r2.public_key()], [ks.targets.fingerprint], None,
                    signers(ks.r1, ks.r2, ks.online), now=datetime.now(UTC))
    assert {k for k in s.versions if k.startswith("bins-")} == {f"bins-{i}" for i in range(4)}
    ms = published_md(repo.root)
    assert set(ms["targets"].signatures) == {ks.r2.fingerprint}
    assert ms["targets"].signed.delegations.succinct_roles.keyids == [ks.r2.fingerprint]
    assert all(set(m.signatures) == {ks.r2.fingerprint}
               for n, m in ms.items() if n.startswith("bins-"))
    up = _tuf_refresh(repo.root, tmp_path / "client")
    assert up._trusted_set["bins-0"].version == 2
    # the removed targets key can no longer publish
    repo.add([build_wheel(tmp_path / "d2", "demo-pkg", "2.0")], now=datetime.now(UTC))
    with pytest.raises(VerificationError):
        repo.sign(signers(ks.targets, ks.online), now=datetime.now(UTC))


def test_rotate_online_key(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=datetime.now(UTC))
    repo.rotate("online", [ks.r3.public_key()], [ks.online.fingerprint], None,
                signers(ks.r1, ks.targets, ks.r3), now=datetime.now(UTC))
    with pytest.raises(VerificationError):
        repo.sign(signers(ks.online), now=datetime.now(UTC))
    assert repo.sign(signers(ks.r3), now=datetime.now(UTC)).versions == {"timestamp": 3}
    _tuf_refresh(repo.root, tmp_path / "client")


def test_rotate_refuses_nonsense(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    with pytest.raises(UserError, match="never signed"):
        repo.rotate("root", [], [], 1, signers(ks.r1), now=NOW)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    with pytest.raises(UserError, match="unknown role"):
        repo.rotate("bins", [], [], 1, signers(ks.r1), now=NOW)
    with pytest.raises(UserError, match="holds no root role"):
        repo.rotate("root", [], [ks.r2.fingerprint], None, signers(ks.r1), now=NOW)
    with pytest.raises(UserError, match="0 key"):
        repo.rotate("root", [], [ks.r1.fingerprint], None, signers(ks.r1), now=NOW)
    with pytest.raises(UserError, match="threshold 2"):
        repo.rotate("root", [], [], 2, signers(ks.r1), now=NOW)
    with pytest.raises(UserError, match="already holds"):
        repo.rotate("root", [ks.r1.public_key()], [], None, signers(ks.r1), now=NOW)


def test_describe_keys_after_publish(tmp_path: Path, ks: Keys) -> None:
    repo = separated_repo(tmp_path, ks)
    repo.sign(signers(ks.r1, ks.targets, ks.online), now=NOW)
    d = repo.describe_keys()
    assert d["published"] is True and d["pending_root"] is False and d["root_version"] == 1
    assert d["roles"]["timestamp"]["expires"] == "2030-01-02T12:00:00Z"
    assert d["roles"]["targets"]["keys"] == [ks.targets.fingerprint]


def test_copy_of_repository_is_a_repository(demo: Repository, ks: Keys, tmp_path: Path) -> None:
    """The tree is plain files: a copy (USB stick, rsync) keeps working for the publisher."""
    dest = tmp_path / "copy"
    shutil.copytree(demo.root, dest)
    repo = Repository(dest)
    repo.add([build_wheel(tmp_path / "n", "demo-pkg", "4.0")], now=NOW)
    assert "targets" in repo.sign(signers(ks.r1), now=NOW).versions


# ---- m-of-n: every role of a `--key` repository at its threshold -------------------------


def _legacy_2_of_3(tmp_path: Path, ks: Keys) -> Repository:
    """What an older repotool made of `init --key r1 --key r2 --key r3 --threshold 2`."""
    pks = [k.public_key() for k in (ks.r1, ks.r2, ks.r3)]
    repo = Repository.init(tmp_path / "old", "old", RoleKeys(pks, 2, pks, 1, pks, 1),
                           now=datetime.now(UTC), bin_bits=2)
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.0")], now=datetime.now(UTC))
    repo.sign(signers(ks.r1, ks.r2), now=datetime.now(UTC))
    return repo


def test_rotate_targets_threshold_raises_bins_threshold(tmp_path: Path, ks: Keys) -> None:
    repo = _legacy_2_of_3(tmp_path, ks)
    # the weakness being fixed: one key publishes a release on its own
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.1")], now=datetime.now(UTC))
    assert "targets" in repo.sign(signers(ks.r3), now=datetime.now(UTC)).versions
    # one key cannot raise the threshold (root needs 2), two can
    before = tree(repo.root)
    with pytest.raises(VerificationError, match="root, targets, 4 bins: 1 more signature"):
        repo.rotate("targets", [], [], 2, signers(ks.r1), now=datetime.now(UTC))
    assert tree(repo.root) == before
    r = cli("repo", "rotate", repo.root, "--role", "targets", "--threshold", "2",
            "--key", ks.r1.private, "--key", ks.r2.private, "--json")
    assert r.exit_code == 0, r.output
    written = json.loads(r.stdout)["versions"]
    assert {n for n in written if n.startswith("bins-")} == {f"bins-{i}" for i in range(4)}
    ms = published_md(repo.root)
    assert ms["root"].signed.roles["targets"].threshold == 2
    sr = ms["targets"].signed.delegations.succinct_roles
    assert sr.threshold == 2 and sorted(sr.keyids) == sorted(ms["root"].signed.roles["targets"]
                                                             .keyids)
    for name, m in ms.items():
        if name.startswith("bins-") or name == "targets":
            assert set(m.signatures) == {ks.r1.fingerprint, ks.r2.fingerprint}, name
    up = _tuf_refresh(repo.root, tmp_path / "client")  # a TUF client follows the new root
    assert up._trusted_set.root.version == 2
    assert up._trusted_set["bins-0"].version == written["bins-0"]
    # from now on one key cannot publish: targets and the bins it changes are short
    repo.add([build_wheel(tmp_path / "d", "demo-pkg", "1.2")], now=datetime.now(UTC))
    before = tree(repo.root)
    with pytest.raises(VerificationError) as ei:
        repo.sign(signers(ks.r3), now=datetime.now(UTC))
    assert ei.value.message.split("nothing was written: ")[1].startswith("targets, bins-")
    assert tree(repo.root) == before
    assert "targets" in repo.sign(signers(ks.r3, ks.r1), now=datetime.now(UTC)).versions


def test_rotate_several_roles_in_one_root(tmp_path: Path, ks: Keys) -> None:
    repo = _legacy_2_of_3(tmp_path, ks)
    s = repo.rotate(["targets", "online"], [], [], 2, signers(ks.r2, ks.r3),
                    now=datetime.now(UTC))
    assert s.versions["root"] == 2
    roles = md(repo.root, "root.json").signed.roles
    assert {n: r.threshold for n, r in roles.items()} == {
        "root": 2, "targets": 2, "snapshot": 2, "timestamp": 2}
    with pytest.raises(VerificationError, match="timestamp: 1 more signature"):
        repo.sign(signers(ks.r1), now=datetime.now(UTC))
    r = cli("repo", "rotate", repo.root, "--role", "targets", "--threshold", "4",
            "--key", ks.r1.private, "--key", ks.r2.private)
    assert r.exit_code == 2 and "threshold 4" in r.stderr, r.output
