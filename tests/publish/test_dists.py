"""Reading wheels and sdists: names and versions come from the files (SPEC §2 'repo add')."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from builders import build_sdist, build_wheel, metadata_text

from repotool.errors import UserError
from repotool.publish import dists


def test_wheel_parsed(tmp_path: Path) -> None:
    whl = build_wheel(tmp_path, "Demo.Pkg", "1.0.0",
                      requires_dist=["dep-a>=1", "dep-b; extra == 'x'"],
                      requires_python=">=3.8", summary="  A demo  ")
    info = dists.inspect(whl)
    assert info.filename == "demo_pkg-1.0.0-py3-none-any.whl"
    assert info.project == "demo-pkg"
    assert info.display_name == "Demo.Pkg"
    assert info.version == "1.0.0"
    assert info.kind == "wheel"
    assert info.sha256 == hashlib.sha256(whl.read_bytes()).hexdigest()
    assert info.size == whl.stat().st_size
    assert info.requires_python == ">=3.8"
    assert info.requires_dist == ("dep-a>=1", 'dep-b; extra == "x"')
    assert info.summary == "A demo"


def test_sdist_parsed(tmp_path: Path) -> None:
    sd = build_sdist(tmp_path, "demo_pkg", "2.0rc1", requires_dist=["dep-a"])
    info = dists.inspect(sd)
    assert (info.project, info.version, info.kind) == ("demo-pkg", "2.0rc1", "sdist")
    assert info.requires_dist == ("dep-a",)
    assert info.requires_python is None


def test_zip_sdist_parsed(tmp_path: Path) -> None:
    p = tmp_path / "demo_pkg-1.0.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("demo_pkg-1.0/PKG-INFO", metadata_text("demo-pkg", "1.0"))
    info = dists.inspect(p)
    assert (info.project, info.version, info.kind) == ("demo-pkg", "1.0", "sdist")


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"metadata_name": "other-pkg"}, "names project"),
        ({"metadata_version": "2.0"}, "version"),
    ],
)
def test_wheel_metadata_disagrees_with_filename(tmp_path: Path, kw: dict[str, str], what: str
                                                ) -> None:
    whl = build_wheel(tmp_path, "demo-pkg", "1.0", **kw)
    with pytest.raises(UserError, match=what):
        dists.inspect(whl)


def test_equivalent_versions_agree(tmp_path: Path) -> None:
    """``1.0`` in METADATA and ``1.0.0`` in the filename are the same version (PEP 440)."""
    whl = build_wheel(tmp_path, "demo-pkg", "1.0.0", metadata_version="1.0")
    assert dists.inspect(whl).version == "1.0.0"


def _sdist_with(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for arc, data in members.items():
            ti = tarfile.TarInfo(arc)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    p = tmp_path / name
    p.write_bytes(buf.getvalue())
    return p


def _wheel_with(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w") as z:
        for arc, data in members.items():
            z.writestr(arc, data)
    return p


GOOD_META = metadata_text("demo-pkg", "1.0").encode()
WHEEL = "demo_pkg-1.0-py3-none-any.whl"


def _bad_input(tmp_path: Path, kind: str) -> Path:
    if kind == "not_a_zip":
        p = tmp_path / WHEEL
        p.write_bytes(b"PK\x03\x04 this is not really a zip")
        return p
    if kind == "empty_file":
        p = tmp_path / WHEEL
        p.write_bytes(b"")
        return p
    if kind == "no_metadata":
        return _wheel_with(tmp_path, WHEEL, {"demo_pkg/__init__.py": b""})
    if kind == "two_dist_infos":
        return _wheel_with(tmp_path, WHEEL, {
            "demo_pkg-1.0.dist-info/METADATA": GOOD_META,
            "other-1.0.dist-info/METADATA": GOOD_META,
        })
    if kind == "metadata_not_in_dist_info":
        return _wheel_with(tmp_path, WHEEL, {"demo_pkg/METADATA": GOOD_META})
    if kind == "malformed_metadata":
        return _wheel_with(tmp_path, WHEEL, {
            "demo_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\n\n"})
    if kind == "invalid_version_in_metadata":
        return _wheel_with(tmp_path, WHEEL, {
            "demo_pkg-1.0.dist-info/METADATA":
                b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: not a version!\n\n"})
    if kind == "bad_requirement_in_metadata":
        return _wheel_with(tmp_path, WHEEL, {
            "demo_pkg-1.0.dist-info/METADATA":
                metadata_text("demo-pkg", "1.0", requires_dist=["!!bad req"]).encode()})
    if kind == "binary_metadata":
        return _wheel_with(tmp_path, WHEEL, {"demo_pkg-1.0.dist-info/METADATA": b"\xff\xfe\x00"})
    if kind == "huge_metadata":
        return _wheel_with(tmp_path, WHEEL, {
            "demo_pkg-1.0.dist-info/METADATA":
                GOOD_META + b"X" * (dists.metadata_max_length + 1)})
    if kind == "bad_wheel_filename":
        return build_wheel(tmp_path, "demo-pkg", "1.0").rename(tmp_path / "demo_pkg.whl")
    if kind == "bad_version_in_filename":
        return build_wheel(tmp_path, "demo-pkg", "1.0").rename(
            tmp_path / "demo_pkg-1.0$-py3-none-any.whl")
    if kind == "bad_sdist_filename":
        return build_sdist(tmp_path, "demo-pkg", "1.0").rename(tmp_path / "demo-pkg.tar.gz")
    if kind in ("fragment_in_filename", "space_in_filename"):
        name = {"fragment_in_filename": "demo_pkg-1.0-py3-none-any#x.whl",
                "space_in_filename": "demo pkg-1.0.tar.gz"}[kind]
        return build_wheel(tmp_path, "demo-pkg", "1.0").rename(tmp_path / name)
    if kind == "not_a_distribution":
        p = tmp_path / "README.txt"
        p.write_text("hi")
        return p
    if kind == "sdist_not_gzip":
        p = tmp_path / "demo_pkg-1.0.tar.gz"
        p.write_bytes(b"plain text")
        return p
    if kind == "sdist_without_pkg_info":
        return _sdist_with(tmp_path, "demo_pkg-1.0.tar.gz", {"demo_pkg-1.0/setup.py": b""})
    if kind == "sdist_pkg_info_not_top_level":
        return _sdist_with(tmp_path, "demo_pkg-1.0.tar.gz",
                           {"demo_pkg-1.0/sub/PKG-INFO": GOOD_META})
    if kind == "sdist_name_disagrees":
        return _sdist_with(tmp_path, "demo_pkg-1.0.tar.gz", {
            "demo_pkg-1.0/PKG-INFO": metadata_text("evil", "1.0").encode()})
    if kind == "sdist_version_disagrees":
        return _sdist_with(tmp_path, "demo_pkg-1.0.tar.gz", {
            "demo_pkg-1.0/PKG-INFO": metadata_text("demo-pkg", "6.6.6").encode()})
    if kind == "missing":
        return tmp_path / WHEEL
    if kind == "directory":
        (tmp_path / WHEEL).mkdir()
        return tmp_path / WHEEL
    raise AssertionError(kind)


BAD_KINDS = [
    "not_a_zip", "empty_file", "no_metadata", "two_dist_infos", "metadata_not_in_dist_info",
    "malformed_metadata", "invalid_version_in_metadata", "bad_requirement_in_metadata",
    "binary_metadata", "huge_metadata", "bad_wheel_filename", "bad_version_in_filename",
    "bad_sdist_filename", "fragment_in_filename", "space_in_filename", "not_a_distribution",
    "sdist_not_gzip", "sdist_without_pkg_info", "sdist_pkg_info_not_top_level",
    "sdist_name_disagrees", "sdist_version_disagrees", "missing", "directory",
]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_distribution_refused(tmp_path: Path, kind: str) -> None:
    path = _bad_input(tmp_path, kind)
    with pytest.raises(UserError) as ei:
        dists.inspect(path)
    assert ei.value.exit_code == 1
    assert "\n" not in ei.value.message


@pytest.mark.parametrize("kind", [k for k in BAD_KINDS if k != "directory"])  # a folder to add
def test_bad_distribution_refused_by_repo_add(tmp_path: Path, kind: str) -> None:
    """One bad file among good ones: exit 1, nothing is recorded (SPEC §3.10)."""
    from conftest import cli, make_key

    key = make_key(tmp_path / "keys", "k")
    repo = tmp_path / "repo"
    assert cli("repo", "init", repo, "--name", "demo", "--key", key.public).exit_code == 0
    good = build_wheel(tmp_path / "good", "good-pkg", "1.0")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _bad_input(bad_dir, kind)
    pending = repo / ".repotool" / "pending.json"
    r = cli("repo", "add", repo, good, bad)
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("repotool: error:")
    assert not pending.exists()


def test_is_distribution_name() -> None:
    assert dists.is_distribution_name("a-1.0-py3-none-any.whl")
    assert dists.is_distribution_name("a-1.0.tar.gz")
    assert dists.is_distribution_name("a-1.0.zip")
    assert not dists.is_distribution_name("a-1.0.egg")
    assert not dists.is_distribution_name("README")
