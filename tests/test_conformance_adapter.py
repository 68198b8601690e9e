"""The TUF conformance client-under-test (tests/conformance/client, SPEC §4a), run as the
suite runs it: an executable subprocess, against a repotool-published repository over
file:// and over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from builders import tamper
from servers import RepoServer

ADAPTER = Path(__file__).parent / "conformance" / "client"
WHEEL = "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
TOP_LEVEL = ("root.json", "timestamp.json", "snapshot.json", "targets.json")


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the adapter through its shebang, with this venv's python3 first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(ADAPTER), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


class Client:
    """The suite's ClientRunner in miniature: one metadata dir, one target dir."""

    def __init__(self, tmp: Path, base_url: str) -> None:
        self.meta, self.targets = tmp / "metadata", tmp / "targets"
        self.meta.mkdir()
        self.targets.mkdir()
        self.base_url = base_url

    def init(self, root: Path) -> subprocess.CompletedProcess[str]:
        return run("--metadata-dir", self.meta, "init", root)

    def refresh(self) -> subprocess.CompletedProcess[str]:
        return run("--metadata-url", self.base_url + "metadata/", "--metadata-dir", self.meta,
                   "refresh")

    def download(self, *names: str) -> subprocess.CompletedProcess[str]:
        each = [a for name in names for a in ("--target-name", name)]
        return run("--metadata-url", self.base_url + "metadata/", "--metadata-dir", self.meta,
                   *each, "--target-dir", self.targets,
                   "--target-base-url", self.base_url, "download")

    def downloaded(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.targets.rglob("*") if p.is_file()}


@pytest.fixture(params=["file", "http"])
def setup(request: pytest.FixtureRequest, make_published, tmp_path: Path  # type: ignore[no-untyped-def]
          ) -> Iterator[tuple[object, Client, RepoServer | None]]:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    if request.param == "file":
        yield pub, Client(tmp_path, pub.root.as_uri() + "/"), None
    else:
        with RepoServer(pub.root) as server:
            yield pub, Client(tmp_path, server.url), server
            assert server.errors == []


def test_adapter_is_an_executable_script() -> None:
    assert os.access(ADAPTER, os.X_OK)
    assert ADAPTER.read_text().startswith("#!/usr/bin/env python3\n")


def test_init_refresh_download(setup) -> None:  # type: ignore[no-untyped-def]
    pub, client, server = setup
    assert client.init(pub.root / "metadata" / "1.root.json").returncode == 0
    assert (client.meta / "root.json").read_bytes() == (
        pub.root / "metadata" / "1.root.json").read_bytes()

    r = client.refresh()
    assert r.returncode == 0, r.stderr
    for name in TOP_LEVEL:  # plain (unversioned) names, as the suite inspects them
        assert (client.meta / name).is_file(), name
    assert (client.meta / "timestamp.json").read_bytes() == (
        pub.root / "metadata" / "timestamp.json").read_bytes()
    assert client.downloaded() == {}

    r = client.download(WHEEL)
    assert r.returncode == 0, r.stderr
    wheel = (pub.dist / "demo_pkg-1.0-py3-none-any.whl").read_bytes()
    assert client.downloaded() == {quote(WHEEL, ""): wheel}
    # the delegated bin that describes the wheel is trusted under its own plain name
    assert [p.name for p in client.meta.glob("bins-*.json")] != []

    # already downloaded with the signed hashes: not fetched again
    assert client.download(WHEEL).returncode == 0
    if server is not None:
        assert sum(p.endswith(".demo_pkg-1.0-py3-none-any.whl") for p in server.requests) == 1
    assert client.downloaded() == {quote(WHEEL, ""): wheel}


def test_refresh_refuses_forged_timestamp(setup) -> None:  # type: ignore[no-untyped-def]
    pub, client, _ = setup
    assert client.init(pub.root / "metadata" / "1.root.json").returncode == 0
    assert client.refresh().returncode == 0
    trusted = (client.meta / "timestamp.json").read_bytes()
    # valid JSON, newer version, old signature: only signature verification stops it
    ts = pub.root / "metadata" / "timestamp.json"
    doc = json.loads(ts.read_bytes())
    doc["signed"]["version"] += 1
    ts.write_text(json.dumps(doc))

    r = client.refresh()
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (client.meta / "timestamp.json").read_bytes() == trusted


def test_download_refuses_tampered_wheel(setup) -> None:  # type: ignore[no-untyped-def]
    pub, client, _ = setup
    # the consistent-snapshot name the client fetches (the plain name may be a hard link)
    [hashed] = (pub.root / "files" / "demo-pkg").glob("*.demo_pkg-1.0-py3-none-any.whl")
    tamper(hashed)  # same size: only the hash check stops it

    assert client.init(pub.root / "metadata" / "1.root.json").returncode == 0
    r = client.download(WHEEL)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(client.targets.iterdir()) == []  # nothing stored, not even a temp file


@pytest.mark.parametrize("setup", ["file"], indirect=True)
def test_unknown_target_and_usage_errors_exit_1(setup) -> None:  # type: ignore[no-untyped-def]
    pub, client, _ = setup
    assert client.init(pub.root / "metadata" / "1.root.json").returncode == 0
    assert client.download("files/demo-pkg/nope-1.0-py3-none-any.whl").returncode == 1
    assert run("--metadata-dir", client.meta, "download").returncode == 1
    assert run("--metadata-dir", client.meta, "frobnicate").returncode == 1
    assert client.downloaded() == {}



def test_every_target_name_is_handled_in_order(make_published, tmp_path: Path  # type: ignore[no-untyped-def]
                                               ) -> None:
    """CLIENT-CLI.md: --target-name may repeat; targets are processed in argument order
    with one updater, and the first one that fails stops the command with exit 1."""
    pub = make_published(projects={"demo-pkg": ["1.0", "2.0"]})
    client = Client(tmp_path, pub.root.as_uri() + "/")
    other = "files/demo-pkg/demo_pkg-2.0-py3-none-any.whl"
    assert client.init(pub.root / "metadata" / "1.root.json").returncode == 0
    missing = "files/demo-pkg/nope-1.0-py3-none-any.whl"
    r = client.download(WHEEL, missing, other)
    assert r.returncode == 1 and "nope" in r.stderr
    assert set(client.downloaded()) == {quote(WHEEL, "")}  # first done, third never reached
    r = client.download(WHEEL, other)
    assert r.returncode == 0, r.stderr
    assert set(client.downloaded()) == {quote(WHEEL, ""), quote(other, "")}
