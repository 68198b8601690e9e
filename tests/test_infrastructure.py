"""Tests proving the test infrastructure (builders, servers, venvs) works."""

from __future__ import annotations

import base64
import csv
import hashlib
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from builders import (
    build_sdist,
    build_wheel,
    normalize_dist_name,
    record_hash,
    sdist_filename,
    sha256_file,
    tamper,
    wheel_filename,
)
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version
from servers import PEP691_JSON, RepoServer, tls_ca, write_ca_bundle
from venvs import make_venv, pip_freeze, run_pip, run_python

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def check_record(wheel: Path) -> dict[str, bytes]:
    """Assert RECORD lists every member with a correct hash/size; return members."""
    with zipfile.ZipFile(wheel) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    records = [n for n in members if n.endswith(".dist-info/RECORD")]
    assert len(records) == 1, records
    rows = list(csv.reader(io.StringIO(members[records[0]].decode())))
    listed = {row[0] for row in rows}
    assert listed == set(members)
    for path, digest, size in rows:
        if path == records[0]:
            assert (digest, size) == ("", "")
            continue
        data = members[path]
        algo, _, b64 = digest.partition("=")
        assert algo == "sha256"
        assert "=" not in b64  # no padding
        expected = hashlib.sha256(data).digest()
        assert base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)) == expected
        assert int(size) == len(data)
    return members


def get_raw(url: str, path: str, headers: dict[str, str] | None = None) -> int:
    """GET a path verbatim (requests would normalize '..'); return the status."""
    match = re.match(r"http://([^:/]+):(\d+)/", url)
    assert match
    conn = http.client.HTTPConnection(match[1], int(match[2]), timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv") / "venv")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RepoServer]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    with RepoServer(root) as server:
        yield server


# ---------------------------------------------------------------------------
# builders: wheels
# ---------------------------------------------------------------------------


def test_wheel_filename_and_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "Demo.Pkg-Thing",
        "1.0.0",
        requires_dist=["requests>=2", 'tomli; python_version < "3.11"'],
        requires_python=">=3.8",
        summary="Demo summary",
    )
    assert wheel.name == "demo_pkg_thing-1.0.0-py3-none-any.whl"
    assert wheel.name == wheel_filename("Demo.Pkg-Thing", "1.0.0")
    name, version, build, tags = parse_wheel_filename(wheel.name)
    assert (name, version, build) == ("demo-pkg-thing", Version("1.0.0"), ())
    assert tags == frozenset({Tag("py3", "none", "any")})

    members = check_record(wheel)
    dist_info = "demo_pkg_thing-1.0.0.dist-info"
    meta = Metadata.from_email(members[f"{dist_info}/METADATA"], validate=True)
    assert meta.name == "Demo.Pkg-Thing"
    assert meta.version == Version("1.0.0")
    assert meta.summary == "Demo summary"
    assert meta.metadata_version == "2.1"
    assert [str(r) for r in meta.requires_dist or []] == [
        str(Requirement("requests>=2")),
        str(Requirement('tomli; python_version < "3.11"')),
    ]
    assert str(meta.requires_python) == ">=3.8"

    wheel_file = members[f"{dist_info}/WHEEL"].decode()
    assert "Wheel-Version: 1.0\n" in wheel_file
    assert "Root-Is-Purelib: true\n" in wheel_file
    assert "Tag: py3-none-any\n" in wheel_file
    module = members["demo_pkg_thing/__init__.py"].decode()
    assert "__version__ = '1.0.0'" in module


def test_wheel_version_normalized_in_filename(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "a_b", "1.0-rc1")
    assert wheel.name == "a_b-1.0rc1-py3-none-any.whl"
    parse_wheel_filename(wheel.name)


def test_wheel_compound_tag_and_extra_files(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "tagged",
        "2.0",
        tag="py2.py3-none-any",
        files={"tagged/data.txt": b"payload", "tagged/__init__.py": b"X = 1\n"},
    )
    assert wheel.name == "tagged-2.0-py2.py3-none-any.whl"
    _, _, _, tags = parse_wheel_filename(wheel.name)
    assert len(tags) == 2
    members = check_record(wheel)
    wheel_file = members["tagged-2.0.dist-info/WHEEL"].decode()
    assert "Tag: py2-none-any\n" in wheel_file
    assert "Tag: py3-none-any\n" in wheel_file
    assert members["tagged/data.txt"] == b"payload"
    assert members["tagged/__init__.py"] == b"X = 1\n"  # files win


def test_wheel_metadata_can_disagree_with_filename(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "honest", "1.0", metadata_name="evil", metadata_version="6.6.6")
    assert wheel.name == "honest-1.0-py3-none-any.whl"
    members = check_record(wheel)
    meta = Metadata.from_email(members["honest-1.0.dist-info/METADATA"])
    assert (meta.name, str(meta.version)) == ("evil", "6.6.6")


def test_wheel_bytes_are_deterministic(tmp_path: Path) -> None:
    first = build_wheel(tmp_path / "a", "same", "1.0", requires_dist=["x"])
    second = build_wheel(tmp_path / "b", "same", "1.0", requires_dist=["x"])
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:  # no clock leaks into the archive
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    sdist = build_sdist(tmp_path / "a", "same", "1.0")
    assert sdist.read_bytes()[4:8] == (315532800).to_bytes(4, "little")  # gzip mtime
    with tarfile.open(sdist) as tf:
        assert {m.mtime for m in tf.getmembers()} == {315532800}
    assert sha256_file(first) == hashlib.sha256(second.read_bytes()).hexdigest()
    other = build_wheel(tmp_path / "c", "same", "1.1", requires_dist=["x"])
    assert sha256_file(other) != sha256_file(first)
    assert record_hash(b"") == "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def test_tamper_flips_one_byte(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "victim", "1.0")
    original = wheel.read_bytes()
    tamper(wheel)
    changed = wheel.read_bytes()
    assert len(changed) == len(original)
    diffs = [i for i, (a, b) in enumerate(zip(original, changed, strict=True)) if a != b]
    assert diffs == [len(original) - 1]
    tamper(wheel, offset=10)
    tamper(wheel, offset=10)
    assert wheel.read_bytes() == changed
    tamper(wheel)
    assert wheel.read_bytes() == original


# ---------------------------------------------------------------------------
# builders: sdists
# ---------------------------------------------------------------------------


def test_sdist_layout_and_metadata(tmp_path: Path) -> None:
    sdist = build_sdist(
        tmp_path,
        "My.Project",
        "0.3",
        requires_dist=["dep>=1"],
        requires_python=">=3.9",
        summary="An sdist",
    )
    assert sdist.name == "my_project-0.3.tar.gz" == sdist_filename("My.Project", "0.3")
    name, version = parse_sdist_filename(sdist.name)
    assert (name, version) == ("my-project", Version("0.3"))
    with tarfile.open(sdist) as tf:
        names = sorted(tf.getnames())
        assert names == [
            "my_project-0.3/PKG-INFO",
            "my_project-0.3/backend.py",
            "my_project-0.3/my_project/__init__.py",
            "my_project-0.3/pyproject.toml",
        ]
        pkg_info = tf.extractfile("my_project-0.3/PKG-INFO")
        pyproject = tf.extractfile("my_project-0.3/pyproject.toml")
        assert pkg_info is not None and pyproject is not None
        meta = Metadata.from_email(pkg_info.read(), validate=True)
        toml_text = pyproject.read().decode()
    assert meta.metadata_version == "2.2"
    assert (meta.name, meta.version) == ("My.Project", Version("0.3"))
    assert [str(r) for r in meta.requires_dist or []] == ["dep>=1"]
    assert str(meta.requires_python) == ">=3.9"
    import tomllib

    build_system = tomllib.loads(toml_text)["build-system"]
    assert build_system == {
        "requires": [],
        "build-backend": "backend",
        "backend-path": ["."],
    }

    again = build_sdist(
        tmp_path / "again",
        "My.Project",
        "0.3",
        requires_dist=["dep>=1"],
        requires_python=">=3.9",
        summary="An sdist",
    )
    assert again.read_bytes() == sdist.read_bytes()


def test_in_tree_backend_builds_valid_wheel(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "back-end-demo", "1.5", requires_dist=["x"])
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp_path / "src", filter="data")
    src = tmp_path / "src" / "back_end_demo-1.5"
    out = tmp_path / "out"
    code = (
        "import backend, sys;"
        "print(backend.get_requires_for_build_wheel());"
        "print(backend.prepare_metadata_for_build_wheel(sys.argv[1]));"
        "print(backend.build_wheel(sys.argv[1]));"
        "print(backend.build_sdist(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=src,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.split()
    assert lines == [
        "[]",
        "back_end_demo-1.5.dist-info",
        "back_end_demo-1.5-py3-none-any.whl",
        "back_end_demo-1.5.tar.gz",
    ]
    members = check_record(out / lines[2])
    built = Metadata.from_email(members["back_end_demo-1.5.dist-info/METADATA"])
    reference = build_wheel(tmp_path / "ref", "back-end-demo", "1.5", requires_dist=["x"])
    ref_members = check_record(reference)
    assert set(members) == set(ref_members)
    assert built.name == "back-end-demo"
    assert [str(r) for r in built.requires_dist or []] == ["x"]
    assert (out / "back_end_demo-1.5.dist-info" / "METADATA").is_file()


def test_sdist_and_wheel_install_offline_into_venv(tmp_path: Path, venv_python: Path) -> None:
    dist = tmp_path / "dist"
    build_sdist(dist, "sdist-app", "2.1", requires_dist=["wheel-lib>=1"])
    build_wheel(dist, "wheel-lib", "1.3")
    build_wheel(dist, "wheel-lib", "0.9")
    start = time.monotonic()
    run_pip(venv_python, "install", "--no-index", "--find-links", str(dist), "sdist-app")
    elapsed = time.monotonic() - start
    assert elapsed < 60
    assert pip_freeze(venv_python) == {"sdist-app": "2.1", "wheel-lib": "1.3"}
    assert "pip" in pip_freeze(venv_python, all=True)
    proc = run_python(
        venv_python,
        "import sdist_app, wheel_lib; print(sdist_app.__version__, wheel_lib.__version__)",
    )
    assert proc.stdout.split() == ["2.1", "1.3"]
    run_pip(venv_python, "uninstall", "-y", "sdist-app", "wheel-lib")
    assert pip_freeze(venv_python) == {}


def test_cloned_venv_is_independent(tmp_path: Path) -> None:
    one = make_venv(tmp_path / "one")
    two = make_venv(tmp_path / "two")
    prefix = run_python(two, "import sys; print(sys.prefix)").stdout.strip()
    assert Path(prefix) == tmp_path / "two"
    assert str(tmp_path / "two") in (tmp_path / "two" / "bin" / "pip").read_text()
    assert "pip" in pip_freeze(one, all=True)
    dist = tmp_path / "dist"
    build_wheel(dist, "only-in-two", "1.0")
    run_pip(two, "install", "--no-index", "--find-links", str(dist), "only-in-two")
    assert pip_freeze(two) == {"only-in-two": "1.0"}
    assert pip_freeze(one) == {}


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------


def test_server_serves_fresh_bytes_and_logs(served: RepoServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", served.url)
    resp = requests.get(served.url_for("hello.txt"), timeout=5)
    assert resp.status_code == 200
    assert resp.content == b"hello world\n"
    assert resp.headers["Content-Length"] == "12"
    assert resp.headers["Cache-Control"] == "no-store"
    (served.root / "hello.txt").write_bytes(b"changed")
    assert requests.get(served.url_for("hello.txt"), timeout=5).content == b"changed"
    head = requests.head(served.url_for("data.bin"), timeout=5)
    assert head.headers["Content-Length"] == "1024" and head.content == b""
    assert requests.get(served.url_for("missing"), timeout=5).status_code == 404
    # a handler records its request after the response is sent: the client may read
    # the response first, so give the last handler thread a moment
    deadline = time.monotonic() + 5
    while len(served.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.requests == ["/hello.txt", "/hello.txt", "/data.bin", "/missing"]
    assert served.count("hello.txt") == 2
    assert [r.status for r in served.log] == [200, 200, 200, 404]
    assert served.log[2].method == "HEAD"
    served.clear_log()
    assert served.requests == []


def test_server_log_is_thread_safe(served: RepoServer) -> None:
    def fetch(i: int) -> int:
        url = served.url_for(f"hello.txt?i={i}")
        return requests.get(url, timeout=5).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(fetch, range(40))) == {200}
    assert served.requests == ["/hello.txt"] * 40
    assert sorted(r.raw_path for r in served.log) == sorted(f"/hello.txt?i={i}" for i in range(40))


def test_server_refuses_traversal_and_dotfiles(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    (root / ".hidden").write_text("hidden")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("cfg")
    (root / "sub" / "ok.txt").write_text("ok")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    with RepoServer(root) as server:
        assert get_raw(server.url, "/sub/ok.txt") == 200
        for path in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub/../../secret.txt",
            "/sub/%2E%2E/%2E%2E/secret.txt",
            "/sub/..%2f..%2fsecret.txt",
            "/.hidden",
            "/.git/config",
            "/sub/./ok.txt",
            "/link.txt",
            "//etc/passwd",
        ]:
            assert get_raw(server.url, path) == 404, path


def test_server_directory_index_and_pep691(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = root / "simple" / "demo"
    project.mkdir(parents=True)
    (project / "index.html").write_text("<html>demo</html>")
    (project / "index.json").write_text('{"name": "demo"}')
    (root / "simple" / "index.html").write_text("<html>root</html>")
    with RepoServer(root) as server:
        url = server.url_for("simple/demo/")

        resp = requests.get(url, timeout=5)  # Accept: */*
        assert resp.text == "<html>demo</html>"
        assert resp.headers["Content-Type"].startswith("text/html")

        resp = requests.get(url, headers={"Accept": PIP_ACCEPT}, timeout=5)
        assert resp.json() == {"name": "demo"}
        assert resp.headers["Content-Type"] == PEP691_JSON

        html_first = f"text/html, {PEP691_JSON}; q=0.5"
        resp = requests.get(url, headers={"Accept": html_first}, timeout=5)
        assert resp.text == "<html>demo</html>"

        html_only = "application/vnd.pypi.simple.v1+html"
        resp = requests.get(url, headers={"Accept": html_only}, timeout=5)
        assert resp.headers["Content-Type"] == html_only

        resp = requests.get(server.url_for("simple/demo"), timeout=5)
        assert resp.history[0].status_code == 301
        assert resp.url == url

        (project / "index.json").unlink()
        resp = requests.get(url, headers={"Accept": PIP_ACCEPT}, timeout=5)
        assert resp.text == "<html>demo</html>"

        assert requests.get(server.url, timeout=5).status_code == 404  # no index
    with RepoServer(root, listings=True) as server:
        assert 'href="simple/"' in requests.get(server.url, timeout=5).text


def test_hooks_override_status_redirect_delay(served: RepoServer) -> None:
    url = served.url_for("hello.txt")
    served.override["hello.txt"] = b"evil bytes"
    assert requests.get(url, timeout=5).content == b"evil bytes"
    served.override["/nowhere/new.json"] = b"{}"
    assert requests.get(served.url_for("nowhere/new.json"), timeout=5).content == b"{}"

    served.status[re.compile(r"\.txt$")] = 503
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 503 and resp.content == b"evil bytes"
    served.reset()
    assert requests.get(url, timeout=5).content == b"hello world\n"

    served.status["/hello.txt"] = 404
    assert requests.get(url, timeout=5).status_code == 404
    served.reset()

    # suffix keys match on a "/" boundary only
    served.status["o.txt"] = 500
    assert requests.get(url, timeout=5).status_code == 200
    served.reset()

    served.redirect["data.bin"] = served.url_for("hello.txt")
    resp = requests.get(served.url_for("data.bin"), timeout=5)
    assert resp.content == b"hello world\n"
    assert resp.history[0].status_code == 302
    served.reset()

    served.delay["hello.txt"] = 0.5
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=(2, 0.1))
    served.delay["hello.txt"] = 0.05
    assert requests.get(url, timeout=5).status_code == 200


def test_hook_lying_content_length(served: RepoServer) -> None:
    served.content_length["hello.txt"] = 10_000
    start = time.monotonic()
    with pytest.raises(requests.exceptions.RequestException):
        _ = requests.get(served.url_for("hello.txt"), timeout=2).content
    assert time.monotonic() - start < 2


def test_hook_endless(served: RepoServer) -> None:
    served.endless.add("data.bin")
    served.endless.add("no/such/file")
    start = time.monotonic()
    for path in ("data.bin", "no/such/file"):
        with requests.get(served.url_for(path), stream=True, timeout=2) as resp:
            assert resp.status_code == 200
            assert "Content-Length" not in resp.headers
            received = 0
            for chunk in resp.iter_content(64 * 1024):
                received += len(chunk)
                if received > 8 * 1024 * 1024:
                    break
            assert received > 8 * 1024 * 1024
    served.content_length["data.bin"] = 10**12
    with requests.get(served.url_for("data.bin"), stream=True, timeout=2) as resp:
        assert resp.headers["Content-Length"] == str(10**12)
        assert len(next(resp.iter_content(1024))) == 1024
    assert time.monotonic() - start < 5


def test_hook_slow(served: RepoServer) -> None:
    served.slow.add("hello.txt")
    start = time.monotonic()
    with requests.get(served.url_for("hello.txt"), stream=True, timeout=(2, 0.3)) as r:
        assert r.status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):  # read timeout
            for _ in r.iter_content(1):
                pass
    assert time.monotonic() - start < 2

    served.slow_interval = 0.05
    start = time.monotonic()
    got = b""
    with requests.get(served.url_for("hello.txt"), stream=True, timeout=2) as r:
        for chunk in r.iter_content(1):
            got += chunk
            if time.monotonic() - start > 0.5:
                break
    assert got.startswith(b"hello")  # the real bytes, dripped
    assert 3 <= len(got) <= 20


def test_hook_drop(served: RepoServer) -> None:
    served.drop.add("data.bin")
    start = time.monotonic()
    with pytest.raises(requests.exceptions.RequestException):
        _ = requests.get(served.url_for("data.bin"), timeout=2).content
    assert time.monotonic() - start < 2
    assert served.count("data.bin") == 1


def _handler_threads(port: int) -> list[threading.Thread]:
    name = f"RepoServer-handler-{port}"
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_stop_ends_stuck_handlers_and_is_idempotent(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    server = RepoServer(tmp_path).start()
    server.endless.add("endless")
    server.slow.add("slow")
    port = server.port
    clients = []
    for path in ("/endless", "/slow", "/f"):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        clients.append(sock)
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # no request
    clients.append(idle)
    session = requests.Session()  # a kept-alive connection
    assert session.get(server.url_for("f"), timeout=5).content == b"x"
    time.sleep(0.3)  # let the endless stream fill the socket buffers
    assert len(_handler_threads(port)) >= 4

    start = time.monotonic()
    server.stop()
    server.stop()
    assert time.monotonic() - start < 2
    assert _handler_threads(port) == []
    assert server.errors == []
    for sock in clients:
        sock.close()
    session.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url, timeout=1)


def test_tls_with_trustme(tmp_path: Path) -> None:
    ca = tls_ca()
    ca_file = write_ca_bundle(ca, tmp_path / "ca.pem")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "hello.txt").write_text("over tls")
    with RepoServer(tmp_path / "root", ca=ca) as server:
        assert server.url.startswith("https://127.0.0.1:")
        resp = requests.get(server.url_for("hello.txt"), verify=str(ca_file), timeout=5)
        assert resp.text == "over tls"
        by_name = f"https://localhost:{server.port}/hello.txt"
        assert requests.get(by_name, verify=str(ca_file), timeout=5).ok
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url_for("hello.txt"), timeout=5)  # system CAs
        other_ca = write_ca_bundle(tls_ca(), tmp_path / "other.pem")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url_for("hello.txt"), verify=str(other_ca), timeout=5)
        server.slow.add("hello.txt")
        start = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(server.url_for("hello.txt"), verify=str(ca_file), timeout=0.3)
        assert time.monotonic() - start < 2
    assert server.errors == []


def test_pip_installs_from_server_over_tls(tmp_path: Path, venv_python: Path) -> None:
    """End to end: a PEP 503 index served over HTTPS, consumed by real pip."""
    root = tmp_path / "root"
    files = root / "files"
    wheel = build_wheel(files, "Served.Pkg", "3.1")
    digest = sha256_file(wheel)
    project = root / "simple" / "served-pkg"
    project.mkdir(parents=True)
    (project / "index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n'
    )
    # PEP 691 JSON for a second project, which pip (23.2+) prefers
    sdist = build_sdist(files, "json-pkg", "0.5")
    project_json = root / "simple" / "json-pkg"
    project_json.mkdir()
    (project_json / "index.json").write_text(
        json.dumps(
            {
                "meta": {"api-version": "1.0"},
                "name": "json-pkg",
                "files": [
                    {
                        "filename": sdist.name,
                        "url": f"../../files/{sdist.name}",
                        "hashes": {"sha256": sha256_file(sdist)},
                    }
                ],
            }
        )
    )
    ca = tls_ca()
    ca_file = write_ca_bundle(ca, tmp_path / "ca.pem")
    with RepoServer(root, ca=ca) as server:
        run_pip(
            venv_python,
            "install",
            "--index-url",
            server.url_for("simple/"),
            "--cert",
            str(ca_file),
            "served-pkg",
            "json-pkg",
        )
        assert server.count(wheel.name) == 1
        assert server.count(sdist.name) == 1
        accept = [r.headers.get("Accept", "") for r in server.log if r.path.endswith("/")]
        assert accept and all(PEP691_JSON in a for a in accept)
    assert pip_freeze(venv_python)["served-pkg"] == "3.1"
    assert pip_freeze(venv_python)["json-pkg"] == "0.5"
    run_pip(venv_python, "uninstall", "-y", "served-pkg", "json-pkg")


def test_normalize_dist_name() -> None:
    assert normalize_dist_name("Foo.Bar--baz_qux") == "foo_bar_baz_qux"
