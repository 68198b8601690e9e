"""The proxy for a build farm (SPEC §6.4): every file it verified stays in the client
cache, so a second machine's install never reaches the origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import small_repos
from conftest import cli
from servers import RepoServer
from venvs import make_venv, pip_freeze, run_pip

from repotool.client.home import Home
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.transport.limits import Limits


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    return small_repos.factory(tmp_path)


def test_second_install_through_proxy_with_origin_stopped(
        make_published: Any, home: Path, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    with RepoServer(pub.root) as server:
        r = cli("--home", home, "source", "add", "demo", server.url, "--key", pub.key.public)
        assert r.exit_code == 0, r.output
        assert cli("--home", home, "update").exit_code == 0
        proxy = RunningProxy(VerifiedIndex(Home(home), Limits(), live=True)).start()
        try:
            first = make_venv(tmp_path / "machine1")
            run_pip(first, "install", "--no-cache-dir", "--index-url", proxy.index_url,
                    "demo-pkg==1.0")
            assert any(p.endswith("demo_pkg-1.0-py3-none-any.whl") for p in server.requests)
            server.stop()  # the origin is gone: the second machine is served from cache
            second = make_venv(tmp_path / "machine2")
            run_pip(second, "install", "--no-cache-dir", "--index-url", proxy.index_url,
                    "demo-pkg==1.0")
        finally:
            proxy.stop()
    assert pip_freeze(first) == pip_freeze(second) == {"demo-pkg": "1.0"}
