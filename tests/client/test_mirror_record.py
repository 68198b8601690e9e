"""The mirror's record of verified files (repotool/client/mirror_record.py): a refresh
hashes only what changed, and a DEST file changed behind the record is still caught.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import small_repos
from builders import sha256_file, tamper
from hypothesis import given
from hypothesis import strategies as st
from test_mirror import WHEEL_10, add_origin, mirror, ok

from repotool.client import mirror_record
from repotool.format.layout import dist_target_path, hashed_name


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    return small_repos.factory(tmp_path)


def _origin(make_published: Any, home: Path, tmp_path: Path) -> tuple[Any, Path]:
    """A one-wheel origin added as source 'demo', and the (not yet made) DEST."""
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_origin(home, str(pub.root), pub)
    return pub, tmp_path / "dest"


def _wheel_in(dest: Path, pub: Any) -> tuple[Path, bytes]:
    whl = pub.dist / WHEEL_10
    disk = dest / hashed_name(dist_target_path("demo-pkg", WHEEL_10), sha256_file(whl))
    return disk, whl.read_bytes()


def test_refresh_hashes_only_what_changed_and_verify_hashes_everything(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub, dest = _origin(make_published, home, tmp_path)
    cold = mirror(home, dest)
    assert cold["files_fetched"] == cold["targets"] and cold["files_hashed"] == 0
    again = mirror(home, dest)  # every file trusted from the record
    assert again["files_present"] == again["targets"] and again["files_hashed"] == 0
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    refresh = mirror(home, dest)
    assert refresh["files_fetched"] == 5 and refresh["files_hashed"] <= 2
    r = ok("--home", home, "mirror", "demo", dest, "--json", "--verify")
    full = json.loads(r.stdout)
    assert full["files_hashed"] == full["targets"] == full["files_present"]
    assert mirror(home, dest)["files_hashed"] == 0  # --verify wrote the record again
    r = ok("--home", home, "mirror", "demo", dest)
    assert "0 hashed now" in r.stdout


def test_arbitrary_content_dest_file_rewritten_in_place_is_refetched(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    """Same size, other bytes, written as any writer does (mtime and ctime move)."""
    pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    disk, good = _wheel_in(dest, pub)
    tamper(disk)
    assert disk.read_bytes() != good
    got = mirror(home, dest)
    assert got["files_fetched"] == 1 and got["files_hashed"] >= 1
    assert disk.read_bytes() == good
    assert (dest / "files" / "demo-pkg" / WHEEL_10).read_bytes() == good


def test_arbitrary_content_dest_file_renamed_over_with_mtime_restored_is_refetched(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    """Same size, other bytes, renamed over the verified file, mtime set back."""
    pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    disk, good = _wheel_in(dest, pub)
    before = disk.stat()
    forged = disk.with_name("forged")
    forged.write_bytes(bytes(b ^ 0xFF for b in good))
    os.utime(forged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(forged, disk)
    after = disk.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ino != before.st_ino
    got = mirror(home, dest)
    assert got["files_fetched"] == 1
    assert disk.read_bytes() == good


@pytest.mark.parametrize("record", [
    b"\x00\xffgarbage\n" * 100,
    b"repotool-mirror-verified 1 0\n",  # another device: not this DEST's
    b"repotool-mirror-verified 1 {dev}\n1 2 3\n",  # truncated line
    b"",
], ids=["garbage", "foreign", "truncated", "empty"])
def test_corrupt_or_foreign_record_means_everything_is_hashed(
        make_published: Any, home: Path, tmp_path: Path, record: bytes) -> None:
    _pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    path = dest / ".repotool-mirror" / mirror_record.NAME
    path.write_bytes(record.replace(b"{dev}", str(dest.stat().st_dev).encode()))
    got = mirror(home, dest)
    assert got["files_hashed"] == got["targets"] == got["files_present"]
    assert mirror(home, dest)["files_hashed"] == 0  # and the record is whole again


def test_unreadable_record_is_no_cache(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    _pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    path = dest / ".repotool-mirror" / mirror_record.NAME
    path.unlink()
    path.mkdir()  # neither readable nor replaceable: still no error
    got = mirror(home, dest)
    assert got["files_hashed"] == got["targets"]


def test_stale_part_files_and_run_dirs_are_removed(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    _pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    part = dest / "files" / "demo-pkg" / ".part-k9"
    part.write_bytes(b"half a wheel")
    run = dest / ".repotool-mirror" / "run-k9"
    (run / "tuf").mkdir(parents=True)
    (run / "tuf" / "timestamp.json").write_bytes(b"{}")
    keep = dest / "files" / "demo-pkg" / "notes.txt"  # not ours: left alone
    keep.write_bytes(b"x")
    mirror(home, dest)
    assert not part.exists() and not run.exists() and keep.exists()
    assert (dest / ".repotool-mirror" / "lock").exists()


# ---- the parser --------------------------------------------------------------------------

_paths = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
                 min_size=1, max_size=40).filter(
    lambda p: not p.startswith("/") and ".." not in p.split("/"))
_stamps = st.tuples(*[st.integers(0, 2**63)] * 4,
                    st.one_of(st.just("-"), st.text("0123456789abcdef", min_size=64,
                                                    max_size=64)))


@given(st.binary(max_size=300), st.integers(0, 2**64))
def test_record_parser_never_raises(data: bytes, dev: int) -> None:
    got = mirror_record.parse(data, dev)
    assert got is None or isinstance(got, dict)
    header = f"repotool-mirror-verified 1 {dev}\n".encode()
    got = mirror_record.parse(header + data, dev)
    assert got is None or all(isinstance(v, str) for v in got.values())


@given(st.dictionaries(_paths, _stamps, max_size=20), st.integers(0, 2**64))
def test_record_round_trips(entries: dict[str, tuple[Any, ...]], dev: int) -> None:
    values = {p: " ".join(str(x) for x in v) for p, v in entries.items()}
    data = mirror_record.render(values, dev)
    assert mirror_record.parse(data, dev) == values
    assert mirror_record.parse(data, dev + 1) is None


def test_arbitrary_content_plain_name_copy_recorded_then_rewritten_in_place_is_replaced(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    """A plain name that is a copy (not a hardlink) is hashed once, then trusted from
    the record; changed in place, it is replaced from the verified hashed file."""
    import shutil

    pub, dest = _origin(make_published, home, tmp_path)
    mirror(home, dest)
    plain = dest / "files" / "demo-pkg" / WHEEL_10
    good = plain.read_bytes()
    copy = plain.with_name("copy")
    shutil.copyfile(plain, copy)
    os.replace(copy, plain)  # now a copy: another inode than the hashed file
    # the copy, and the hashed file: unlinking the plain name moved its ctime
    assert mirror(home, dest)["files_hashed"] == 2
    assert mirror(home, dest)["files_hashed"] == 0  # the copy recorded with its sha256
    tamper(plain)
    got = mirror(home, dest)
    assert got["files_hashed"] == 1 and plain.read_bytes() == good
    disk, _ = _wheel_in(dest, pub)
    assert plain.stat().st_ino == disk.stat().st_ino  # linked again
    assert mirror(home, dest)["files_hashed"] == 0  # the link's ctime move was recorded
