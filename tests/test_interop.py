"""Interoperability (SPEC §4a): other people's clients read a repotool repository.

(a) python-tuf's own ``ngclient.Updater`` — its default fetcher, real loopback HTTP —
    bootstrapped from ``1.root.json`` verifies and downloads a wheel, a simple page and
    an index shard, and refuses a tampered wheel.
(b) plain pip (``--isolated --no-cache-dir`` so the machine's pip config is ignored)
    installs from the repository's simple index served by ``repo serve``'s server.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import tamper
from servers import RepoServer
from tuf.api import exceptions as tuf_exc
from tuf.ngclient import Updater
from venvs import make_venv, run_pip, run_python

from repotool.format.index import Shard, shard_of
from repotool.publish.serve import make_server

WHEEL = "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"


def _updater(root: Path, srv: RepoServer, work: Path) -> Updater:
    (work / "meta").mkdir(parents=True)
    (work / "dl").mkdir()
    return Updater(
        str(work / "meta"), srv.url + "metadata/", str(work / "dl"), srv.url,
        bootstrap=(root / "metadata" / "1.root.json").read_bytes(),
    )


def test_python_tuf_updater_downloads_and_verifies_wheel(make_published, tmp_path: Path
                                                         ) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"], "other": ["2.0"]})
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()  # a second version: the updater walks timestamp 2 → snapshot 2 → targets 2
    with RepoServer(pub.root) as srv:
        up = _updater(pub.root, srv, tmp_path / "c1")
        up.refresh()
        info = up.get_targetinfo(WHEEL)
        assert info is not None
        path = up.download_target(info)
        assert Path(path).read_bytes() == (pub.dist / "demo_pkg-1.0-py3-none-any.whl").read_bytes()
        # it fetched the hash-prefixed name (consistent snapshots), never the plain one
        sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert f"/files/demo-pkg/{sha}.demo_pkg-1.0-py3-none-any.whl" in srv.requests
        assert "/" + WHEEL not in srv.requests
        assert any(re.match(r"^/metadata/\d+\.bins-[0-9a-f]{2}\.json$", r)
                   for r in srv.requests), srv.requests  # found through the bins delegation
        # the index shard (a target of the top-level role) and a simple page
        sid = shard_of("demo-pkg")
        sinfo = up.get_targetinfo(f"index/{sid}.json")
        assert sinfo is not None
        shard = Shard.from_bytes(Path(up.download_target(sinfo)).read_bytes(), sid)
        assert [f.version for f in shard.projects["demo-pkg"].files] == ["1.0", "1.1"]
        pinfo = up.get_targetinfo("simple/demo-pkg/index.json")
        assert pinfo is not None
        page = json.loads(Path(up.download_target(pinfo)).read_bytes())
        assert {f["filename"] for f in page["files"]} == {
            "demo_pkg-1.0-py3-none-any.whl", "demo_pkg-1.1-py3-none-any.whl"}
        assert up.get_targetinfo("files/demo-pkg/not-there-1.0-py3-none-any.whl") is None


def test_python_tuf_updater_refuses_tampered_wheel(make_published, tmp_path: Path) -> None:
    pub = make_published()
    # same size, one byte flipped (the plain name is a hardlink: it flips too)
    tamper(next((pub.root / "files" / "demo-pkg").glob("*.demo_pkg-1.0-py3-none-any.whl")))
    with RepoServer(pub.root) as srv:
        up = _updater(pub.root, srv, tmp_path / "c")
        up.refresh()
        info = up.get_targetinfo(WHEEL)
        assert info is not None
        with pytest.raises(tuf_exc.LengthOrHashMismatchError):
            up.download_target(info)
    assert not any((tmp_path / "c" / "dl").iterdir())


@pytest.fixture
def served(make_published) -> Iterator[tuple[str, Path]]:
    """A repository (demo-pkg 1.0, 2.0 yanked, 3.0 for Python < 3) behind ``repo serve``'s
    own HTTP server."""
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    pub.add_wheel("demo-pkg", "2.0")
    pub.add_wheel("demo-pkg", "3.0", requires_python="<3")
    pub.repo.yank("demo-pkg", "2.0", "broken")
    pub.sign()
    server = make_server(pub.root, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", pub.root
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def test_pip_installs_from_served_repository(served: tuple[str, Path], tmp_path: Path) -> None:
    url, _root = served
    python = make_venv(tmp_path / "venv")
    pip = ("install", "--isolated", "--no-cache-dir", "--index-url", url + "simple/")
    run_pip(python, *pip, "demo-pkg")
    # 2.0 is yanked (PEP 592) and 3.0 requires Python < 3: pip takes 1.0
    out = run_python(python, "import demo_pkg; print(demo_pkg.__version__)").stdout.strip()
    assert out == "1.0"
    # a pin still gets the yanked release (PEP 592), from the same pages
    run_pip(python, *pip, "demo-pkg==2.0")
    assert run_python(python, "import demo_pkg; print(demo_pkg.__version__)").stdout.strip() == (
        "2.0")


def test_pip_refuses_file_not_matching_page_hash(served: tuple[str, Path], tmp_path: Path
                                                 ) -> None:
    """The sha256 fragments in the pages are what plain pip checks."""
    url, root = served
    tamper(root / "files" / "demo-pkg" / "demo_pkg-1.0-py3-none-any.whl")
    python = make_venv(tmp_path / "venv")
    r = run_pip(python, "install", "--isolated", "--no-cache-dir", "--index-url",
                url + "simple/", "demo-pkg==1.0", check=False)
    assert r.returncode != 0
    assert "HASH" in (r.stdout + r.stderr).upper()
