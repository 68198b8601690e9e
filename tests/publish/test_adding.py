"""repo add on large batches: the parallel inspection gives what a sequential one gives,
refuses what it refuses, and a copy that does not hash to what was inspected is refused."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from builders import build_wheel
from conftest import make_key

from repotool.errors import UserError
from repotool.publish import adding, dists
from repotool.publish.workspace import Repository, RoleKeys

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def repo_at(tmp_path: Path, name: str) -> Repository:
    pk = make_key(tmp_path / f"keys-{name}", "k").public_key()
    return Repository.init(tmp_path / name, "solo", RoleKeys([pk], 1, [pk], 1, [pk]), now=NOW)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of two or more files goes through the process pool, two per task."""
    monkeypatch.setattr(adding, "parallel_min_files", 2)
    monkeypatch.setattr(adding, "chunk_files", 2)
    monkeypatch.setattr(adding, "_workers", lambda: 2)
    monkeypatch.setattr(adding, "_fork_safe", lambda: True)  # test servers run threads


def dist_of(tmp_path: Path, n: int) -> Path:
    d = tmp_path / "dist"
    for i in range(n):
        build_wheel(d, f"proj-{i % 3}", f"1.{i}", requires_python=">=3.8")
    return d


def pending(repo: Repository) -> list[dict[str, object]]:
    return list(json.loads((repo.work / "pending.json").read_bytes())["add"])


def test_parallel_add_records_what_a_sequential_add_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = dist_of(tmp_path, 9)
    seq = repo_at(tmp_path, "seq")
    seq.add([d], now=NOW)
    monkeypatch.setattr(adding, "parallel_min_files", 2)
    monkeypatch.setattr(adding, "chunk_files", 2)
    monkeypatch.setattr(adding, "_workers", lambda: 2)
    monkeypatch.setattr(adding, "_fork_safe", lambda: True)  # test servers run threads
    pids = tmp_path / "pids"
    real = dists.inspect

    def inspect(path: Path) -> dists.DistInfo:
        with pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(path)

    monkeypatch.setattr(dists, "inspect", inspect)
    par = repo_at(tmp_path, "par")
    par.add([d], now=NOW)
    ran = pids.read_text().split()
    assert len(ran) == 9 and str(os.getpid()) not in ran  # the pool inspected every file
    assert pending(par) == pending(seq)
    assert tree(par.root) - {".repotool/lock"} == tree(seq.root) - {".repotool/lock"}


@pytest.mark.parametrize("bad_at", [0, 4, 8])
def test_parallel_add_refuses_a_bad_file_anywhere_and_adds_nothing(
        tmp_path: Path, parallel: None, bad_at: int) -> None:
    d = dist_of(tmp_path, 9)
    files = sorted(d.iterdir())
    bad = build_wheel(tmp_path / "bad", "evil", "1.0", metadata_name="proj-0")
    files.insert(bad_at, bad)
    repo = repo_at(tmp_path, "r")
    before = tree(repo.root)
    with pytest.raises(UserError, match="evil"):
        repo.add(files, now=NOW)
    assert tree(repo.root) == before


def test_parallel_add_refuses_metadata_the_index_cannot_hold(
        tmp_path: Path, parallel: None) -> None:
    d = dist_of(tmp_path, 5)
    rp = ">=3.8," + ",".join(f"!=3.{i}.*" for i in range(9, 100))
    long = build_wheel(tmp_path / "long", "demo-pkg", "1.0", requires_python=rp)
    repo = repo_at(tmp_path, "r")
    with pytest.raises(UserError, match=r"demo_pkg-1\.0-py3-none-any\.whl' cannot be indexed"):
        repo.add([*sorted(d.iterdir()), long], now=NOW)
    assert not (repo.work / "pending.json").exists()


def test_batch_index_check_names_the_file_at_fault(tmp_path: Path) -> None:
    """Checked together first; on failure each alone, so the error names the culprit."""
    good = [dists.inspect(p) for p in sorted(dist_of(tmp_path, 4).iterdir())]
    rp = ">=3.8," + ",".join(f"!=3.{i}.*" for i in range(9, 100))
    bad = dists.inspect(build_wheel(tmp_path / "long", "demo-pkg", "1.0", requires_python=rp))
    adding.check_indexable(good, "2030-01-01T12:00:00Z")
    with pytest.raises(UserError, match=r"'demo_pkg-1\.0-py3-none-any\.whl' cannot be indexed"):
        adding.check_indexable([*good, bad, *good], "2030-01-01T12:00:00Z")


def test_copy_that_changed_after_inspection_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is hashed as it is written: a file swapped between inspection and copy
    (a time-of-check/time-of-use race) is refused, and no copy is left behind."""
    whl = build_wheel(tmp_path / "d", "demo-pkg", "1.0")
    other = build_wheel(tmp_path / "o", "demo-pkg", "1.0", summary="other bytes")
    real = adding.inspect_all

    def inspect_then_swap(files: list[Path], upload_time: str) -> object:
        infos = real(files, upload_time)
        whl.write_bytes(other.read_bytes())
        return infos

    monkeypatch.setattr(adding, "inspect_all", inspect_then_swap)
    repo = repo_at(tmp_path, "r")
    with pytest.raises(UserError, match="changed while it was being added"):
        repo.add([whl], now=NOW)
    assert not (repo.work / "pending.json").exists()
    assert not [p for p in (repo.root / "files").rglob("*") if p.is_file()]


def test_copies_are_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    whl = build_wheel(tmp_path / "d", "demo-pkg", "1.0")
    repo = repo_at(tmp_path, "r")
    old = os.umask(0o077)
    try:
        repo.add([whl], now=NOW)
    finally:
        os.umask(old)
    files = [p for p in (repo.root / "files").rglob("*") if p.is_file()]
    assert len(files) == 2  # the wheel and its .metadata
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in files)


def test_summary_follows_the_newest_version_across_adds_and_removes(tmp_path: Path) -> None:
    from repotool.format.index import Shard

    kp = make_key(tmp_path / "sk", "k")
    pk = kp.public_key()
    repo = Repository.init(tmp_path / "r", "solo", RoleKeys([pk], 1, [pk], 1, [pk]), now=NOW)
    d = tmp_path / "d"
    build_wheel(d / "a", "demo-pkg", "2.0", summary="two")
    build_wheel(d / "b", "demo-pkg", "1.0", summary="one")
    repo.add([d / "a", d / "b"], now=NOW)  # the older one last: the newer's summary stays

    def summary() -> str:
        pub = repo.published()
        sh: Shard = repo.load_shard(pub, repo.shard_of(pub, "demo-pkg"))
        return sh.projects["demo-pkg"].summary

    repo.sign([kp.signer()], now=NOW)
    assert summary() == "two"
    build_wheel(d / "c", "demo-pkg", "3.0", summary="three")
    build_wheel(d / "e", "demo-pkg", "1.5", summary="one and a half")
    repo.add([d / "c"], now=NOW)
    repo.remove("demo-pkg", "3.0")
    repo.remove("demo-pkg", "2.0")
    repo.add([d / "e"], now=NOW)  # newest of what remains, after the removals
    repo.sign([kp.signer()], now=NOW)
    assert summary() == "one and a half"


def test_pending_list_round_trips_through_its_streamed_encoding(tmp_path: Path) -> None:
    repo = repo_at(tmp_path, "r")
    doc = {"add": [{"filename": "a\\\"b\u00e9", "seq": 1, "requires_dist": ["x>=1"]},
                   {"filename": "c", "seq": 2, "size": 10**12, "summary": None}],
           "remove": [], "yank": [{"project": "p", "version": "1.0", "reason": "\n"}]}
    repo.save_pending(doc)  # type: ignore[arg-type]
    assert repo.pending() == doc
    repo.save_pending({"add": [], "remove": [], "yank": []})
    assert repo.pending() == {"add": [], "remove": [], "yank": []}
