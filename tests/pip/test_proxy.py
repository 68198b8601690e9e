"""The verified simple index (repotool/pip/proxy.py), spoken to over real HTTP (no pip here).

Only verified bytes leave the proxy: pages come from the signed indexes, one source per
project, and a file is sent only after its length and sha256 were checked.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import sha256_file, tamper
from conftest import cli
from servers import RepoServer

from repotool.client.home import Home
from repotool.format.layout import dist_target_path, hashed_name
from repotool.pip.hosts import HostCheck
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import HTML_V1_TYPE, RunningProxy, choose_format
from repotool.transport.limits import Limits

JSON = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def add_source(home: Path, name: str, pub: Any, *extra: str) -> None:
    r = cli("--home", home, "source", "add", name, pub.root, "--key", pub.key.public, *extra)
    assert r.exit_code == 0, r.output


def update(home: Path, code: int = 0) -> None:
    r = cli("--home", home, "update")
    assert r.exit_code == code, r.output


def get(proxy: RunningProxy, path: str, accept: str | None = None,
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    split = urllib.parse.urlsplit(proxy.url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:
        conn.request(method, path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[RunningProxy] = []

    def start(home: Path, *, live: bool = False) -> RunningProxy:
        p = RunningProxy(VerifiedIndex(Home(home), Limits(), live=live)).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_project_page_lists_only_the_resolved_source(make_published, home: Path,
                                                     serve: Any) -> None:
    high = make_published("high", projects={"demo-pkg": ["1.0"]})
    whl = high.add_wheel("demo-pkg", "1.1", requires_python=">=3.8")
    high.sign()
    low = make_published("low", projects={"demo-pkg": ["9.0"], "other": ["1.0"]})
    add_source(home, "high", high, "--priority", "10")
    add_source(home, "low", low)
    update(home)
    proxy = serve(home)

    status, headers, body = get(proxy, "/simple/demo-pkg/", PIP_ACCEPT)
    assert status == 200 and headers["content-type"] == JSON
    assert headers["x-repotool-source"] == "high"
    doc = json.loads(body)
    assert doc["versions"] == ["1.0", "1.1"]  # never low's 9.0: no mixing
    f = next(f for f in doc["files"] if f["filename"] == whl.name)
    assert f["hashes"] == {"sha256": sha256_file(whl)}
    assert f["requires-python"] == ">=3.8" and f["yanked"] is False
    assert f["url"] == f"/files/demo-pkg/{whl.name}"

    status, headers, body = get(proxy, "/simple/demo-pkg/", "text/html")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert f'href="/files/demo-pkg/{whl.name}#sha256={sha256_file(whl)}"' in page
    assert 'data-requires-python="&gt;=3.8"' in page
    assert "9.0" not in page

    status, headers, body = get(proxy, "/simple/", JSON)
    assert [p["name"] for p in json.loads(body)["projects"]] == ["demo-pkg", "other"]
    status, _, body = get(proxy, "/simple/", None)
    assert status == 200 and b'href="other/"' in body

    status, headers, _ = get(proxy, "/simple/Demo_Pkg/", JSON)
    assert status == 301 and headers["location"] == "/simple/demo-pkg/"
    status, headers, _ = get(proxy, "/simple/demo-pkg", JSON)
    assert status == 301 and headers["location"] == "/simple/demo-pkg/"
    assert get(proxy, "/simple/demo-pkg/", "image/png")[0] == 406
    status, headers, _ = get(proxy, f"/simple/demo-pkg/?format={JSON}", "text/html")
    assert status == 200 and headers["content-type"] == JSON

    status, headers, body = get(proxy, f"/files/demo-pkg/{whl.name}")
    assert status == 200 and body == whl.read_bytes()
    assert headers["x-repotool-source"] == "high"
    status, headers, body = get(proxy, f"/files/demo-pkg/{whl.name}", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(whl.stat().st_size)
    served = proxy.index.served()
    assert [(s.filename, s.source, s.sha256) for s in served] == \
        [(whl.name, "high", sha256_file(whl))]
    # low's 9.0 file is not a file of the resolved source: not served at all
    assert get(proxy, "/files/demo-pkg/demo_pkg-9.0-py3-none-any.whl")[0] == 404


def test_unknown_project_is_404_and_recorded(make_published, home: Path, serve: Any) -> None:
    pub = make_published()
    add_source(home, "demo", pub)
    update(home)
    proxy = serve(home)
    assert get(proxy, "/simple/nope/", JSON)[0] == 404
    assert get(proxy, "/files/nope/nope-1.0-py3-none-any.whl")[0] == 404
    assert get(proxy, "/elsewhere")[0] == 404
    [p] = proxy.index.problems()
    assert (p.kind, p.subject, p.exit_code) == ("project", "nope", 1)
    assert "no source provides nope" in p.message


def test_tampered_file_on_server_never_leaves_proxy(make_published, home: Path,
                                                    serve: Any) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_source(home, "demo", pub)
    update(home)
    name = "demo_pkg-1.0-py3-none-any.whl"
    original = (pub.dist / name).read_bytes()
    on_disk = pub.root / hashed_name(dist_target_path("demo-pkg", name), sha256_file(
        pub.dist / name))
    tamper(on_disk)
    proxy = serve(home)
    status, _, body = get(proxy, f"/files/demo-pkg/{name}")
    assert status == 502
    assert len(body) < 100 and original[:50] not in body
    assert proxy.index.served() == []
    [f] = proxy.index.failures()
    assert (f.kind, f.subject, f.source, f.exit_code) == ("file", name, "demo", 3)
    assert f.locations == (pub.root.as_uri() + "/",)
    assert "sha256" in f.message or "hash" in f.message


def test_tampered_cache_copy_is_fetched_again(make_published, home: Path,
                                              serve: Any) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_source(home, "demo", pub)
    update(home)
    name = "demo_pkg-1.0-py3-none-any.whl"
    proxy = serve(home)
    assert get(proxy, f"/files/demo-pkg/{name}")[0] == 200
    [cached] = (home / "sources" / "demo" / "cache" / "files").iterdir()
    tamper(cached)  # the cache is not a trust anchor
    status, _, body = get(proxy, f"/files/demo-pkg/{name}")
    assert status == 200 and body == (pub.dist / name).read_bytes()


def test_dependency_confusion_fenced_name_never_served_from_other_source(
        make_published, home: Path, serve: Any) -> None:
    internal = make_published("internal", projects={"corp-lib": ["1.0"]})
    public = make_published("public", projects={"corp-lib": ["99.0"], "corp-extra": ["99.0"]})
    add_source(home, "internal", internal, "--only", "corp-*")
    add_source(home, "public", public, "--priority", "100")
    update(home)
    proxy = serve(home)
    doc = json.loads(get(proxy, "/simple/corp-lib/", JSON)[2])
    assert doc["versions"] == ["1.0"]
    assert get(proxy, "/simple/corp-extra/", JSON)[0] == 404
    assert get(proxy, "/files/corp-extra/corp_extra-99.0-py3-none-any.whl")[0] == 404
    [p] = proxy.index.problems()
    assert (p.subject, p.exit_code) == ("corp-extra", 3) and "--only" in p.message
    assert [n["name"] for n in json.loads(get(proxy, "/simple/", JSON)[2])["projects"]] \
        == ["corp-lib"]


def test_failed_higher_priority_source_no_fall_through(make_published, home: Path,
                                                       serve: Any) -> None:
    high = make_published("high", projects={"demo-pkg": ["1.0"]})
    low = make_published("low", projects={"demo-pkg": ["2.0"]})
    add_source(home, "high", high, "--priority", "10")
    add_source(home, "low", low)
    update(home)
    (high.root / "metadata" / "timestamp.json").unlink()  # its next update fails
    update(home, code=1)
    proxy = serve(home)
    assert get(proxy, "/simple/demo-pkg/", JSON)[0] == 404
    [p] = proxy.index.problems()
    assert "refusing to look for demo-pkg in lower-priority sources" in p.message


def test_yanked_file_marked_in_both_formats(make_published, home: Path, serve: Any) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0", "2.0"]})
    pub.repo.yank("demo-pkg", "2.0", "broken")
    pub.sign()
    add_source(home, "demo", pub)
    update(home)
    proxy = serve(home)
    files = {f["filename"]: f for f in json.loads(get(proxy, "/simple/demo-pkg/", JSON)[2])[
        "files"]}
    assert files["demo_pkg-2.0-py3-none-any.whl"]["yanked"] == "broken"
    assert files["demo_pkg-1.0-py3-none-any.whl"]["yanked"] is False
    page = get(proxy, "/simple/demo-pkg/", "text/html")[2].decode()
    assert 'data-yanked="broken">demo_pkg-2.0' in page


def test_live_proxy_follows_update(make_published, home: Path, serve: Any) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    add_source(home, "demo", pub)
    update(home)
    proxy = serve(home, live=True)
    assert json.loads(get(proxy, "/simple/demo-pkg/", JSON)[2])["versions"] == ["1.0"]
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign()
    update(home)
    assert json.loads(get(proxy, "/simple/demo-pkg/", JSON)[2])["versions"] == ["1.0", "1.1"]


@pytest.mark.parametrize(("accept", "query", "expected"), [
    (None, None, "text/html; charset=utf-8"),
    (PIP_ACCEPT, None, "json"),
    ("application/vnd.pypi.simple.latest+json", None, "json"),
    ("text/html", None, "text/html; charset=utf-8"),
    ("*/*", None, "text/html; charset=utf-8"),
    ("application/vnd.pypi.simple.v1+html", None, HTML_V1_TYPE),
    ("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.5", None,
     "text/html; charset=utf-8"),
    ("application/vnd.pypi.simple.v1+json;q=0, text/html", None, "text/html; charset=utf-8"),
    ("image/png", None, None),
    ("application/vnd.pypi.simple.v2+json", None, None),
    ("text/html", "application/vnd.pypi.simple.v1+json", "json"),
    ("text/html;q=bogus", None, None),
])
def test_content_negotiation(accept: str | None, query: str | None,
                             expected: str | None) -> None:
    assert choose_format(accept, query) == expected


def test_pinned_source_never_updated_no_fall_through(make_published, home: Path,
                                                     serve: Any) -> None:
    pinned = make_published("pinned", projects={"corp-lib": ["1.0"]})
    public = make_published("public", projects={"corp-lib": ["99.0"], "other": ["1.0"]})
    add_source(home, "public", public, "--priority", "10")
    assert cli("--home", home, "update", "public").exit_code == 0
    add_source(home, "pinned", pinned, "--only", "corp-lib")  # added, never updated
    proxy = serve(home)
    assert get(proxy, "/simple/corp-lib/", JSON)[0] == 404
    assert get(proxy, "/files/corp-lib/corp_lib-99.0-py3-none-any.whl")[0] == 404
    assert get(proxy, "/simple/other/", JSON)[0] == 200
    [p] = proxy.index.problems()
    assert p.subject == "corp-lib" and "never updated" in p.message


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_proxy_command_stops_cleanly(make_published, home: Path, sig: int) -> None:
    pub = make_published()
    add_source(home, "demo", pub)
    update(home)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repotool", "--home", str(home), "proxy", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("serving the verified index of 1 source(s)")
        url = proc.stdout.readline().split("--index-url ", 1)[1].strip()
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                url + "demo-pkg/", timeout=30) as resp:
            assert b"demo_pkg-1.0-py3-none-any.whl" in resp.read()
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err == "repotool proxy stopped\n"


def test_lying_mirror_is_reported_and_next_one_serves(make_published, home: Path,
                                                      serve: Any) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    name = "demo_pkg-1.0-py3-none-any.whl"
    good = (pub.dist / name).read_bytes()
    target = hashed_name(dist_target_path("demo-pkg", name), sha256_file(pub.dist / name))
    with RepoServer(pub.root) as server:
        r = cli("--home", home, "source", "add", "demo", server.url, "--key", pub.key.public,
                "--mirror", pub.root)
        assert r.exit_code == 0, r.output
        update(home)
        server.override[target] = bytes(len(good))  # the primary lies about the file
        proxy = serve(home)
        status, _, body = get(proxy, f"/files/demo-pkg/{name}")
        assert server.count(target) == 1
    assert status == 200 and body == good
    [w] = proxy.index.warnings()
    assert server.url in w and "sha256" in w
    assert proxy.index.failures() == []


def _get_with_host(proxy: RunningProxy, path: str, host: str | None,
                   accept: str | None = None) -> tuple[int, bytes]:
    split = urllib.parse.urlsplit(proxy.url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        if accept:
            conn.putheader("Accept", accept)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_dns_rebinding_foreign_host_header_refused(make_published, home: Path,
                                                   serve: Any) -> None:
    pub = make_published(projects={"secret-project": ["1.0"]})
    add_source(home, "internal", pub)
    update(home)
    proxy = serve(home)
    port = proxy.server.server_address[1]
    name = "secret_project-1.0-py3-none-any.whl"
    # A web page on attacker.example re-pointed its DNS name at 127.0.0.1: the browser
    # connects to the proxy but names the attacker's host.
    for host in ["attacker.example", f"attacker.example:{port}", f"localhost.attacker:{port}",
                 f"127.0.0.1.nip.io:{port}", None, f"127.0.0.1:{port + 1}", "[::1"]:
        for path in ["/simple/", "/simple/secret-project/", f"/files/secret-project/{name}"]:
            status, body = _get_with_host(proxy, path, host)
            assert status == 421, (host, path, status)
            assert b"secret" not in body and len(body) < 100
    assert proxy.index.served() == []
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}",
                 f"[::1]:{port}"]:
        status, body = _get_with_host(proxy, "/simple/", host)
        assert status == 200 and b"secret-project" in body, host
    status, body = _get_with_host(proxy, f"/files/secret-project/{name}", f"localhost:{port}")
    assert status == 200 and body == (pub.dist / name).read_bytes()


class _LoopbackBound(RunningProxy):
    """Answers as if listening on ``host`` but binds 127.0.0.1: tests stay on loopback."""

    def __init__(self, index: VerifiedIndex, host: str = "127.0.0.1", port: int = 0,
                 allow_hosts: tuple[str, ...] = ()) -> None:
        super().__init__(index, "127.0.0.1", 0, allow_hosts)
        self.server.hosts = HostCheck.for_address(host, self.server.server_address[1],
                                                  allow_hosts)


def test_dns_rebinding_beyond_loopback_accepts_addresses_and_allowed_names(
        make_published, home: Path) -> None:
    pub = make_published(projects={"secret-project": ["1.0"]})
    add_source(home, "internal", pub)
    update(home)
    index = VerifiedIndex(Home(home), Limits())
    with _LoopbackBound(index, "0.0.0.0", 0, ("build.lan",)) as proxy:
        port = proxy.server.server_address[1]
        for host, code in [(f"127.0.0.1:{port}", 200), (f"10.1.2.3:{port}", 200),
                           (f"[fe80::1]:{port}", 200), (f"build.lan:{port}", 200),
                           ("BUILD.lan", 200),  # a reverse proxy in front: no port
                           (f"attacker.example:{port}", 421), (f"10.1.2.3:{port + 1}", 421),
                           ("10.1.2.3", 421)]:
            assert _get_with_host(proxy, "/simple/", host)[0] == code, host
        assert proxy.hosts.describe().startswith("any IP address, ")


def test_proxy_command_beyond_loopback_warns(make_published, home: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import repotool.pip.proxy

    pub = make_published()
    add_source(home, "demo", pub)
    update(home)
    answers: list[int] = []

    class Once(_LoopbackBound):
        def serve_forever(self) -> None:
            self.start()
            port = self.server.server_address[1]
            answers.extend(_get_with_host(self, "/simple/", h)[0]
                           for h in (f"build.lan:{port}", f"attacker.example:{port}"))

    monkeypatch.setattr(repotool.pip.proxy, "RunningProxy", Once)
    r = cli("--home", home, "proxy", "--port", "0", "--host", "0.0.0.0",
            "--allow-host", "build.lan")
    assert r.exit_code == 0, r.output
    first, second, refused, last = r.stderr.splitlines()
    assert refused.startswith("refused a request for Host 'attacker.example:")
    assert first.startswith("warning: listening on 0.0.0.0, beyond loopback: anyone who")
    assert "any IP address" in second and "build.lan" in second and "--allow-host" in second
    assert last == "repotool proxy stopped"
    assert answers == [200, 421]
    r = cli("--home", home, "proxy", "--port", "0")  # loopback: no warning, no LAN name
    assert r.exit_code == 0 and "warning" not in r.stderr
    assert answers == [200, 421, 421, 421]


def test_endless_bad_requests_keep_problem_lists_bounded(make_published, home: Path,
                                                         serve: Any) -> None:
    from repotool.pip import index as proxy_module

    pub = make_published()
    add_source(home, "demo", pub)
    update(home)
    proxy = serve(home, live=True)
    split = urllib.parse.urlsplit(proxy.url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:  # one keep-alive connection, 2,000 requests for names no source has
        for i in range(1000):
            for path in (f"/simple/nope-{i}/", f"/files/gone-{i}/gone_{i}-1.0.tar.gz"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 404
    finally:
        conn.close()
    problems = proxy.index.problems()
    assert len(problems) == proxy_module.problems_max
    assert proxy.index.problems_dropped() == {("project", 1): 2000 - proxy_module.problems_max}
    for i in range(2000):
        proxy.index._warn(f"f-{i}.whl: location failed, next one used: x")
    assert len(proxy.index.warnings()) == proxy_module.warnings_max
    assert proxy.index.warnings_dropped() == 2000 - proxy_module.warnings_max


def test_live_view_reused_until_generation_changes(make_published, home: Path, serve: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import repotool.client.views
    import repotool.pip.index

    pub = make_published(projects={"demo-pkg": ["1.0"], "other": ["1.0"]})
    add_source(home, "demo", pub)
    update(home)
    calls = {"load_view": 0, "resolve": 0}
    real_load, real_resolve = repotool.client.views.load_view, repotool.pip.index.resolve

    def counting_load(*a: Any) -> Any:
        calls["load_view"] += 1
        return real_load(*a)

    def counting_resolve(*a: Any) -> Any:
        calls["resolve"] += 1
        return real_resolve(*a)

    monkeypatch.setattr(repotool.client.views, "load_view", counting_load)
    monkeypatch.setattr(repotool.pip.index, "resolve", counting_resolve)
    proxy = serve(home, live=True)
    names = lambda: [p["name"] for p in json.loads(get(proxy, "/simple/", JSON)[2])["projects"]]  # noqa: E731
    assert names() == ["demo-pkg", "other"]
    first = dict(calls)
    assert first["load_view"] == 1
    for _ in range(5):  # unchanged generation: the same view, the same page
        assert names() == ["demo-pkg", "other"]
        assert get(proxy, "/simple/", "text/html")[0] == 200
    assert get(proxy, "/simple/", "text/html")[0] == 200
    assert calls["load_view"] == first["load_view"]
    # only the HTML page, built once, resolved the two projects again
    assert calls["resolve"] == first["resolve"] + 2 and proxy.index.loads == 1
    pub.add_wheel("new-pkg", "1.0")
    pub.sign()
    update(home)  # a new generation committed in the keyring
    assert names() == ["demo-pkg", "new-pkg", "other"]
    assert proxy.index.loads == 2 and calls["load_view"] == first["load_view"] + 1
