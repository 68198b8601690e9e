"""PEP 658/714 core metadata: published as TUF targets, served and advertised by the proxy.

A wheel's METADATA is written next to it as ``FILENAME.metadata`` (signed, hash and size in
the index entry); the proxy serves only verified metadata and refuses a wheel whose own
METADATA is not the signed metadata installers resolved with. Real pip and real uv resolve
against the real proxy without downloading the wheels they do not install.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import build_wheel, metadata_text, tamper
from conftest import cli
from test_proxy import JSON, add_source, get, update
from venvs import make_venv, pip_env, run_pip

from repotool.client.home import Home
from repotool.format.index import Shard, shard_of
from repotool.format.layout import hashed_name
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.publish.tree import RepositoryTree
from repotool.transport.limits import Limits

WHL = "demo_pkg-1.0-py3-none-any.whl"


@pytest.fixture(autouse=True)
def format2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Index entries name their ``.metadata`` only in repositories of format 2 or later
    (docs/format.md §Core metadata files). The format 2 publisher is not on this tree yet,
    so these tests publish with the targets declaring format 2 as far as the entries are
    concerned; ``test_format_1_...`` below undoes it."""
    from repotool.publish import changes

    monkeypatch.setattr(changes, "index_format", lambda pub: 2)


def _meta_of(whl: Path) -> bytes:
    with zipfile.ZipFile(whl) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")))


def _entry(root: Path, project: str, filename: str) -> Any:
    tree = RepositoryTree(root)
    shard = tree.load_shard(tree.published(), shard_of(project))
    return next(f for f in shard.projects[project].files if f.filename == filename)


def _strip_pending_metadata(root: Path) -> None:
    """What an older repotool's ``repo add`` recorded: no metadata file."""
    p = root / ".repotool" / "pending.json"
    doc = json.loads(p.read_text())
    for a in doc["add"]:
        a.pop("metadata_sha256", None)
        a.pop("metadata_size", None)
    p.write_text(json.dumps(doc))


def _proxy(home: Path, log: list[str]) -> RunningProxy:
    return RunningProxy(VerifiedIndex(Home(home), Limits(), log=log.append)).start()


def _wheel_gets(log: list[str]) -> list[str]:
    return sorted(m.group(1) for line in log
                  if (m := re.match(r"served (\S+\.whl) sha256:", line)))


def test_publisher_writes_metadata_as_signed_targets(make_published) -> None:  # type: ignore[no-untyped-def]
    pub = make_published()
    whl = pub.dist / WHL
    meta = _meta_of(whl)
    sha = hashlib.sha256(meta).hexdigest()
    e = _entry(pub.root, "demo-pkg", WHL)
    assert (e.metadata_sha256, e.metadata_size) == (sha, len(meta))
    path = f"files/demo-pkg/{WHL}.metadata"
    tree = RepositoryTree(pub.root)
    published = tree.published()
    from repotool.publish.tree import bins_of
    b = tree.load_bin(published, bins_of(published.targets.signed).get_role_for_target(path))
    tf = b.signed.targets[path]  # a TUF target: signed hash and length
    assert (tf.length, tf.hashes) == (len(meta), {"sha256": sha})
    assert (pub.root / hashed_name(path, sha)).read_bytes() == meta
    assert (pub.root / path).read_bytes() == meta  # plain name, for plain pip
    page = (pub.root / "simple" / "demo-pkg" / "index.html").read_text()
    assert f'data-core-metadata="sha256={sha}"' in page
    assert f'data-dist-info-metadata="sha256={sha}"' in page
    doc = json.loads((pub.root / "simple" / "demo-pkg" / "index.json").read_bytes())
    assert doc["files"][0]["core-metadata"] == {"sha256": sha}
    r = cli("repo", "check", pub.root)
    assert r.exit_code == 0, r.output
    # removal drops the metadata target with its wheel
    pub.repo.remove("demo-pkg", "1.0")
    pub.add_wheel("demo-pkg", "2.0")
    pub.sign()
    published = tree.published()
    b = tree.load_bin(published, bins_of(published.targets.signed).get_role_for_target(path))
    assert path not in b.signed.targets


def test_shard_without_metadata_fields_still_reads(make_published) -> None:  # type: ignore[no-untyped-def]
    pub = make_published()
    e = _entry(pub.root, "demo-pkg", WHL)
    d = e.to_dict()
    assert {"metadata_sha256", "metadata_size"} <= set(d)
    for k in ("metadata_sha256", "metadata_size"):
        d.pop(k)
    doc = {"repotool-index": 1, "shard": shard_of("demo-pkg"), "projects": {"demo-pkg": {
        "name": "demo-pkg", "summary": "", "files": [d]}}}
    back = Shard.from_bytes(json.dumps(doc).encode(), shard_of("demo-pkg"))
    assert back.projects["demo-pkg"].files[0].metadata_sha256 is None
    d["metadata_sha256"] = "0" * 64  # one without the other is malformed
    from repotool.errors import FormatError
    with pytest.raises(FormatError):
        Shard.from_bytes(json.dumps(doc).encode(), shard_of("demo-pkg"))


def test_proxy_serves_and_advertises_verified_metadata(make_published, home: Path) -> None:  # type: ignore[no-untyped-def]
    pub = make_published()
    meta = _meta_of(pub.dist / WHL)
    sha = hashlib.sha256(meta).hexdigest()
    add_source(home, "demo", pub)
    update(home)
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        status, _, body = get(proxy, "/simple/demo-pkg/", JSON)
        f = json.loads(body)["files"][0]
        assert f["core-metadata"] == f["data-dist-info-metadata"] == {"sha256": sha}
        _, _, body = get(proxy, "/simple/demo-pkg/", "text/html")
        assert f'data-core-metadata="sha256={sha}"' in body.decode()
        status, _, body = get(proxy, f"/files/demo-pkg/{WHL}.metadata")
        assert status == 200 and body == meta
        assert _wheel_gets(log) == []  # the wheel itself was not fetched
        assert get(proxy, "/files/demo-pkg/nothing-1.0-py3-none-any.whl.metadata")[0] == 404
        status, _, body = get(proxy, f"/files/demo-pkg/{WHL}")
        assert status == 200 and _wheel_gets(log) == [WHL]
    finally:
        proxy.stop()


def test_tampered_metadata_file_is_refused(make_published, home: Path) -> None:  # type: ignore[no-untyped-def]
    pub = make_published()
    e = _entry(pub.root, "demo-pkg", WHL)
    add_source(home, "demo", pub)
    update(home)
    tamper(pub.root / hashed_name(f"files/demo-pkg/{WHL}.metadata", e.metadata_sha256))
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        status, _, body = get(proxy, f"/files/demo-pkg/{WHL}.metadata")
        assert status == 502 and b"Metadata-Version" not in body
        fail = proxy.index.failures()
        assert [p.subject for p in fail] == [f"{WHL}.metadata"] and fail[0].exit_code == 3
    finally:
        proxy.stop()


def test_metadata_confusion_wheel_differs_from_signed_metadata_is_refused(  # type: ignore[no-untyped-def]
        make_published, home: Path) -> None:
    """The signed .metadata says no dependencies, the wheel's own METADATA says otherwise:
    pip would resolve with one and install the other. The wheel is refused."""
    pub = make_published(projects={"other": ["1.0"]})
    whl = pub.add_wheel("demo-pkg", "1.0", requires_dist=["evil"])
    forged = metadata_text("demo-pkg", "1.0").encode()  # no Requires-Dist
    fsha = hashlib.sha256(forged).hexdigest()
    path = f"files/demo-pkg/{whl.name}.metadata"
    (pub.root / hashed_name(path, fsha)).write_bytes(forged)
    p = pub.root / ".repotool" / "pending.json"
    doc = json.loads(p.read_text())
    doc["add"][0].update(metadata_sha256=fsha, metadata_size=len(forged))
    p.write_text(json.dumps(doc))
    pub.sign()
    add_source(home, "demo", pub)
    update(home)
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        status, _, body = get(proxy, f"/files/demo-pkg/{whl.name}.metadata")
        assert status == 200 and body == forged  # signed: served until the wheel shows
        status, _, body = get(proxy, f"/files/demo-pkg/{whl.name}")
        assert status == 502 and body.startswith(b"refused")
        assert any("METADATA differs" in f.message and f.exit_code == 3
                   for f in proxy.index.failures())
        assert _wheel_gets(log) == []
        # the wheel now sits verified in the cache: its metadata is refused too
        assert get(proxy, f"/files/demo-pkg/{whl.name}.metadata")[0] == 502
    finally:
        proxy.stop()


def test_repository_without_metadata_files_gets_metadata_from_verified_wheel(  # type: ignore[no-untyped-def]
        make_published, home: Path) -> None:
    pub = make_published(projects={"other": ["1.0"]})
    whl = pub.add_wheel("demo-pkg", "1.0")
    _strip_pending_metadata(pub.root)
    pub.sign()
    assert _entry(pub.root, "demo-pkg", WHL).metadata_sha256 is None
    assert not (pub.root / f"files/demo-pkg/{WHL}.metadata").exists()
    add_source(home, "demo", pub)
    update(home)
    meta = _meta_of(whl)
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        _, _, body = get(proxy, "/simple/demo-pkg/", JSON)
        assert "core-metadata" not in json.loads(body)["files"][0]  # not known yet
        status, _, body = get(proxy, f"/files/demo-pkg/{WHL}.metadata")
        assert status == 200 and body == meta
        _, _, body = get(proxy, "/simple/demo-pkg/", JSON)
        assert json.loads(body)["files"][0]["core-metadata"] == {
            "sha256": hashlib.sha256(meta).hexdigest()}
    finally:
        proxy.stop()


# ---- format 1: entries as older clients read them --------------------------------------------

V1_ENTRY_KEYS = {"filename", "version", "sha256", "size", "requires_python", "requires_dist",
                 "upload_time", "yanked"}  # exactly what a format 1 reader accepts


def test_format_1_repository_keeps_eight_key_entries_and_signs_metadata_files(  # type: ignore[no-untyped-def]
        make_published, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older clients refuse unknown keys in file entries: a format 1 repository's index
    does not name the ``.metadata`` files, which are still signed bin targets that
    ``repo check`` audits; the proxy serves them from the verified wheel."""
    from repotool.publish import changes, tree

    monkeypatch.setattr(changes, "index_format", tree.index_format)  # the real rule
    pub = make_published()
    published = RepositoryTree(pub.root).published()
    assert tree.index_format(published) == 1
    path = f"files/demo-pkg/{WHL}.metadata"
    shard_file = next((pub.root / "index").glob(f"*.{shard_of('demo-pkg')}.json"))
    raw = json.loads(shard_file.read_bytes())
    assert set(raw["projects"]["demo-pkg"]["files"][0]) == V1_ENTRY_KEYS
    meta = _meta_of(pub.dist / WHL)
    assert (pub.root / path).read_bytes() == meta  # the plain copy for pip
    from repotool.publish.tree import bins_of
    rt = RepositoryTree(pub.root)
    b = rt.load_bin(published, bins_of(published.targets.signed).get_role_for_target(path))
    assert b.signed.targets[path].hashes["sha256"] == hashlib.sha256(meta).hexdigest()
    r = cli("repo", "check", pub.root)
    assert r.exit_code == 0, r.output
    tamper(pub.root / hashed_name(path, hashlib.sha256(meta).hexdigest()))
    r = cli("repo", "check", pub.root)
    assert r.exit_code == 3 and ".metadata" in r.output, r.output
    add_source(home, "demo", pub)
    update(home)  # a format 1 reader of this tree reads it too
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        status, _, body = get(proxy, f"/files/demo-pkg/{WHL}.metadata")
        assert status == 200 and body == meta  # from the verified wheel
    finally:
        proxy.stop()
    pub.repo.remove("demo-pkg", None)
    pub.sign()
    published = RepositoryTree(pub.root).published()
    b = rt.load_bin(published, bins_of(published.targets.signed).get_role_for_target(path))
    assert path not in b.signed.targets  # dropped with its wheel


def test_index_format_is_the_format_2_layout_field() -> None:
    from types import SimpleNamespace

    from repotool.publish.tree import index_format

    def pub(fields: dict[str, Any]) -> Any:
        return SimpleNamespace(targets=SimpleNamespace(signed=SimpleNamespace(
            unrecognized_fields=fields)))

    assert index_format(None) == 1
    assert index_format(pub({})) == 1
    assert index_format(pub({"x-repotool": {"format": 2, "index_bits": 0, "files": 1,
                                            "projects": 1}})) == 2
    assert index_format(pub({"x-repotool": {"format": True}})) == 1
    assert index_format(pub({"x-repotool": "2"})) == 1


# ---- real pip and real uv ------------------------------------------------------------------


def _tree(make_published: Any, *, metadata: bool) -> Any:
    """app 2.0 needs a lib that does not exist: resolvers try it, then settle on app 1.0
    (lib 1.x); lib 2.0 is excluded by app 1.0's specifier."""
    pub = make_published(projects={"zzz": ["1.0"]})
    for name, version, deps in [
        ("app", "1.0", ["lib<2"]), ("app", "2.0", ["lib>=9"]),
        ("lib", "1.0", []), ("lib", "1.5", ["leaf"]), ("lib", "2.0", []), ("leaf", "1.0", []),
    ]:
        pub.repo.add([build_wheel(pub.dist, name, version, requires_dist=deps)],
                     now=datetime.now(UTC))
    if not metadata:
        _strip_pending_metadata(pub.root)
    pub.sign()
    return pub


INSTALLED = ["app-1.0-py3-none-any.whl", "leaf-1.0-py3-none-any.whl",
             "lib-1.5-py3-none-any.whl"]


@pytest.mark.parametrize("metadata", [True, False])
def test_real_pip_resolves_without_downloading_wheels_it_does_not_install(  # type: ignore[no-untyped-def]
        make_published, home: Path, tmp_path: Path, metadata: bool) -> None:
    pub = _tree(make_published, metadata=metadata)
    add_source(home, "demo", pub)
    update(home)
    py = make_venv(tmp_path / "venv")
    log: list[str] = []
    proxy = _proxy(home, log)
    try:
        run_pip(py, "install", "--index-url", proxy.index_url, "app")
    finally:
        proxy.stop()
    wheels = _wheel_gets(log)
    if metadata:
        assert wheels == INSTALLED, log
        assert any("app-2.0-py3-none-any.whl.metadata" in line for line in log)
    else:  # the control: without metadata files pip fetches app 2.0 to read it
        assert "app-2.0-py3-none-any.whl" in wheels


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    return uv


def _uv_env(tmp_path: Path) -> dict[str, str]:
    return pip_env({"UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
                    "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"})


def test_real_uv_compiles_and_installs_without_downloading_unused_wheels(  # type: ignore[no-untyped-def]
        make_published, home: Path, tmp_path: Path) -> None:
    uv = _uv()
    pub = _tree(make_published, metadata=True)
    add_source(home, "demo", pub)
    update(home)
    (tmp_path / "req.in").write_text("app\n")
    py = make_venv(tmp_path / "venv")
    log: list[str] = []
    proxy = _proxy(home, log)
    env = _uv_env(tmp_path)
    try:
        r = subprocess.run([uv, "pip", "compile", "--index-url", proxy.index_url, "--no-cache",
                            str(tmp_path / "req.in")], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert "app==1.0" in r.stdout and "lib==1.5" in r.stdout and "leaf==1.0" in r.stdout
        assert _wheel_gets(log) == [], log  # resolved from metadata alone
        r = subprocess.run([uv, "pip", "install", "--index-url", proxy.index_url,
                            "--python", str(py), "app"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
    finally:
        proxy.stop()
    assert _wheel_gets(log) == INSTALLED, log
    assert os.path.exists(py)


def test_metadata_confusion_caught_by_repo_check(make_published) -> None:  # type: ignore[no-untyped-def]
    """The publisher's self-audit finds a signed .metadata that is not the wheel's own."""
    pub = make_published()
    e = _entry(pub.root, "demo-pkg", WHL)
    path = f"files/demo-pkg/{WHL}.metadata"
    forged = metadata_text("demo-pkg", "1.0", requires_dist=["evil"]).encode()
    fsha = hashlib.sha256(forged).hexdigest()
    pub.repo.remove("demo-pkg", "1.0")
    pub.sign()
    pub.add_wheel("demo-pkg", "1.0")  # same bytes; the pending add now names a forgery
    (pub.root / hashed_name(path, fsha)).write_bytes(forged)
    (pub.root / path).unlink()
    p = pub.root / ".repotool" / "pending.json"
    doc = json.loads(p.read_text())
    doc["add"][0].update(metadata_sha256=fsha, metadata_size=len(forged))
    p.write_text(json.dumps(doc))
    pub.sign()
    assert _entry(pub.root, "demo-pkg", WHL).metadata_sha256 == fsha != e.metadata_sha256
    r = cli("repo", "check", pub.root)
    assert r.exit_code == 3 and "differs from the METADATA inside the wheel" in r.stdout, r.output
