"""What the client does with what a source says: which source may vouch for a name
(SPEC §3.8), names and text from a hostile index (§3.10), local state that expired since
the last update (§3.3), and which version ``list`` calls the latest (PEP 592, as pip).

Hostile indexes are real: a shard is rewritten and the repository re-signed with the
publisher's own key (a compromised or malicious source can sign anything), so the
client sees validly signed metadata and only its read-side checks stand in the way.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attacks import forge_targets, run_repotool, shard_files
from conftest import cli
from tuf.api.metadata import TargetFile

from repotool.cli.render import safe
from repotool.client.home import Home
from repotool.format.index import shard_of, summarize
from repotool.format.layout import hashed_name
from repotool.format.names import InvalidName, is_project_name, parse_filename
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy
from repotool.transport.limits import Limits

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def _add_update(home: Path, pub: Any, name: str, *extra: str) -> None:
    r = cli("--home", home, "source", "add", name, pub.root, "--key", pub.key.public, *extra)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update", name)
    assert r.exit_code == 0, r.output


def _published_file(pub: Any, project: str, filename: str, dest: Path) -> Path:
    """A copy of a file exactly as the repository publishes it (same bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(pub.root / "files" / project / filename, dest / filename))


def forge_shard(pub: Any, project: str, mutate: Any) -> None:
    """Rewrite ``project``'s entry in its shard with ``mutate(project_doc)`` and publish
    a new targets/snapshot/timestamp naming the new shard, signed by the publisher."""
    sid = shard_of(project)
    doc = json.loads(shard_files(pub.root)[sid].read_bytes())
    mutate(doc["projects"][project])
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    path = f"index/{sid}.json"
    (pub.root / hashed_name(path, hashlib.sha256(data).hexdigest())).write_bytes(data)

    def plant(t: Any) -> None:
        t.targets[path] = TargetFile.from_data(path, data, ["sha256"])

    forge_targets(pub.root, plant, pub.key.signer())


def _get(proxy: RunningProxy, path: str) -> tuple[int, bytes]:
    split = urllib.parse.urlsplit(proxy.url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- §3.8 one source may vouch for a name ------------------------------------------------------


def test_dependency_confusion_verify_respects_fence_and_priority(
    pubs, home: Path, tmp_path: Path
) -> None:
    """``verify`` applies the rule ``download`` applies: a source fenced (--only) away
    from a name, or outranked by a higher-priority source, does not vouch for it."""
    corp = pubs(name="corp", projects={"requests": ["2.0"]})
    tools = pubs(name="tools", projects={"tools-cli": ["1.0"], "requests": ["99.0"]})
    _add_update(home, corp, "corp", "--priority", "10")
    _add_update(home, tools, "tools", "--only", "tools-*")
    planted = _published_file(tools, "requests", "requests-99.0-py3-none-any.whl",
                              tmp_path / "planted")
    r = cli("--home", home, "download", "requests", "-d", tmp_path / "dl", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["source"] == "corp", r.output
    r = cli("--home", home, "verify", planted)
    assert r.exit_code == 3, r.output
    assert "corp, the source that provides requests" in r.stdout, r.stdout
    assert "tools lists it but may not provide requests (fenced by --only tools-*)" \
        in r.stdout, r.stdout
    doc = json.loads(cli("--home", home, "verify", planted, "--json").stdout)
    assert doc[0]["vouched_by"] == [] and "fenced by --only" in doc[0]["reason"]
    # the legitimate files: each vouched for by the one source that provides it
    tool = _published_file(tools, "tools-cli", "tools_cli-1.0-py3-none-any.whl", tmp_path / "t")
    r = cli("--home", home, "verify", tmp_path / "dl" / "requests-2.0-py3-none-any.whl", tool)
    assert r.exit_code == 0, r.output
    assert "vouched for by corp (requests==2.0)" in r.stdout
    assert "vouched for by tools (tools-cli==1.0)" in r.stdout
    # priority: an unfenced lower-priority source lists the same name, higher version
    public = pubs(name="public", projects={"requests": ["99.0"]})
    _add_update(home, public, "public")
    other = _published_file(public, "requests", "requests-99.0-py3-none-any.whl",
                            tmp_path / "public")
    r = cli("--home", home, "verify", other)
    assert r.exit_code == 3, r.output
    assert "public lists it but may not provide requests (corp comes first)" in r.stdout
    # a name no source has
    stray = _published_file(public, "requests", "requests-99.0-py3-none-any.whl",
                            tmp_path / "stray")
    stray = stray.rename(stray.with_name("nobody_has-1.0-py3-none-any.whl"))
    r = cli("--home", home, "verify", stray)
    assert r.exit_code == 3 and "vouched for by no trusted source" in r.stdout, r.output


# ---- §3.10 names and text from a hostile index ------------------------------------------------

_ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"


def test_terminal_escape_injection_in_summary_is_neutralized(
    pubs, home: Path, tmp_path: Path
) -> None:
    pub = pubs()
    summary = f"nice{_ESC}\r\nevil-pkg\t6.6\tdemo\tforged line\x9b\u202e"

    def poison(p: dict[str, Any]) -> None:
        p["summary"] = summary
        p["files"][0]["requires_dist"] = [f"dep-a{_ESC}"]
        p["files"][0]["yanked"] = f"bad{_ESC}"

    forge_shard(pub, "demo-pkg", poison)
    _add_update(home, pub, "demo")
    outputs = [cli("--home", home, *args).output
               for args in (["list"], ["search", "nice"], ["show", "demo-pkg"])]
    fast = run_repotool("--home", home, "list")  # the start-up fast path (entry.py)
    assert fast.returncode == 0, fast.stderr
    outputs.append(fast.stdout + fast.stderr)
    for out in outputs:
        assert not any(c in out for c in "\x1b\x07\r\x9b\u202e"), repr(out)
    for out in outputs[:2] + outputs[3:]:
        assert len(out.splitlines()) == 1 and "evil-pkg" not in out.split("\t")[0], repr(out)
        assert "nice\\x1b]0;pwned\\x07" in out and "\\x0d\\x0a" in out, repr(out)
    assert "depends: dep-a\\x1b" in outputs[2] and "YANKED bad\\x1b" in outputs[2]
    # JSON stays exact (json.dumps escapes control characters itself)
    raw = cli("--home", home, "list", "--json").stdout
    assert "\x1b" not in raw and json.loads(raw)[0]["summary"] == summary
    doc = json.loads(cli("--home", home, "show", "demo-pkg", "--json").stdout)
    assert doc["sources"][0]["summary"] == summary
    # an error quoting remote text is escaped too: the dependency is malformed
    r = cli("--home", home, "download", "demo-pkg==1.0", "--deps", "-d", tmp_path / "dl")
    assert r.exit_code == 3 and "\x1b" not in r.output and "\\x1b" in r.stderr, r.output


def test_safe_escapes_controls_and_keeps_printable_unicode() -> None:
    assert safe("Zürich ✓ 日本 — ok") == "Zürich ✓ 日本 — ok"
    assert safe("a\x00b\x1bc\x7fd\x85e\tf\ng") == "a\\x00b\\x1bc\\x7fd\\x85e\\x09f\\x0ag"
    assert safe("\u202egnp.exe") == "\\u202egnp.exe"


BAD_FILENAMES = [
    "../demo_pkg-1.0-py3-none-any.whl",
    'demo_pkg-1.0-py3-none-any"><script>alert(1)<.whl',
    "demo_pkg-1.0-py3-none-any#x.whl",
    "demo_pkg-1.0-py3-none-any?x=.whl",
    "demo_pkg-1.0-py3-none-a\x00y.whl",
    "demo_pkg-1.0-py3-none-any\n.whl",
    "demo_pkg-1.0-py3-none-\x1b[31many.whl",
    "demo_pkg-1.0-py3-none-any whl.whl",
]


@pytest.mark.parametrize("bad", BAD_FILENAMES)
def test_malicious_filename_in_index_refused(pubs, home: Path, tmp_path: Path, bad: str) -> None:
    """The publisher refuses these names on ``repo add``; the client refuses a signed
    index listing them (exit 3 where the entry is used), and nothing is served."""
    pub = pubs()
    forge_shard(pub, "demo-pkg", lambda p: p["files"][0].update(filename=bad))
    _add_update(home, pub, "demo")  # shard entries are validated when used
    for args in (["show", "demo-pkg"], ["download", "demo-pkg", "-d", tmp_path / "dl"]):
        r = cli("--home", home, *args)
        assert r.exit_code == 3, r.output
        assert "unsafe or invalid filename" in r.stderr, r.stderr
        assert "\x1b" not in r.output and "\x00" not in r.output
    assert not (tmp_path / "dl").exists()
    with RunningProxy(VerifiedIndex(Home(home), Limits())) as proxy:
        status, body = _get(proxy, "/simple/demo-pkg/")
        assert status == 404 and b"script" not in body
        assert [p.exit_code for p in proxy.index.problems()] == [3]
    with pytest.raises(InvalidName):
        parse_filename(bad)  # the publisher's rule (repo add): the same function


def test_malicious_project_name_in_index_refused_at_update(pubs, home: Path) -> None:
    pub = pubs()
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public)
    assert r.exit_code == 0, r.output

    def rename(p: dict[str, Any]) -> None:
        p["name"] = 'demo-pkg"><x'

    forge_shard(pub, "demo-pkg", rename)
    shard = json.loads(shard_files(pub.root)[shard_of("demo-pkg")].read_bytes())
    assert shard["projects"]["demo-pkg"]["name"] == 'demo-pkg"><x'
    r = cli("--home", home, "update")
    assert r.exit_code == 3 and "malformed" in r.stderr, r.output
    for name in ("demo-pkg", "a", "a1-b2"):
        assert is_project_name(name)
    for name in ("Demo-Pkg", "demo_pkg", "-a", "a-", "a--b", 'a"><s', "a\x1b", "", "é"):
        assert not is_project_name(name)


def test_malformed_requires_dist_is_refusal_exit_3(pubs, home: Path, tmp_path: Path) -> None:
    pub = pubs(projects={"demo-pkg": ["1.0"], "dep-a": ["1.0"]})
    forge_shard(pub, "demo-pkg",
                lambda p: p["files"][0].update(requires_dist=["dep-a", "dep-b>=>2"]))
    _add_update(home, pub, "demo")
    r = cli("--home", home, "download", "demo-pkg", "--deps", "-d", tmp_path / "dl")
    assert r.exit_code == 3, r.output
    assert "malformed dependency 'dep-b>=>2'" in r.stderr and "'demo'" in r.stderr, r.stderr
    # the user's own malformed requirement is still a usage error (exit 2)
    assert cli("--home", home, "download", "dep-b>=>2", "-d", tmp_path / "x").exit_code == 2


# ---- §3.3 expired local state --------------------------------------------------------------------


def _wait_until_expired(home: Path, name: str) -> None:
    state = json.loads((home / "sources" / name / "keyring" / "state.json").read_bytes())
    first = min(datetime.fromisoformat(v) for v in state["expires"].values())
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds()) + 0.3)


def test_freeze_attack_expired_local_state_refused_for_download_install_proxy(
    pubs, home: Path, tmp_path: Path
) -> None:
    """Nobody runs ``update``: the last verified metadata expires on disk, and from then
    on nothing is handed out from it — as apt refuses a Release file past Valid-Until."""
    from venvs import make_venv

    py = make_venv(tmp_path / "venv")  # before the clock starts
    pub = pubs()
    pub.add_wheel("demo-pkg", "1.1")
    pub.sign(expires=8)  # timestamp, snapshot and targets: 8 s
    _add_update(home, pub, "demo")
    live = RunningProxy(VerifiedIndex(Home(home), Limits(), live=True)).start()
    try:
        assert _get(live, "/simple/demo-pkg/")[0] == 200
        r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "before")
        assert r.exit_code == 0, r.output
        _wait_until_expired(home, "demo")
        # download
        r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl")
        assert r.exit_code == 3, r.output
        assert "metadata expired on" in r.stderr and "repotool update demo" in r.stderr
        assert not (tmp_path / "dl").exists()
        # verify
        r = cli("--home", home, "verify", tmp_path / "before" / "demo_pkg-1.1-py3-none-any.whl")
        assert r.exit_code == 3 and "expired" in r.stdout, r.output
        # the proxy: a new one, and one that was running when the state expired
        with RunningProxy(VerifiedIndex(Home(home), Limits())) as proxy:
            assert _get(proxy, "/simple/demo-pkg/")[0] == 404
            assert _get(proxy, "/simple/")[1].count(b"demo-pkg") == 0
            [problem] = proxy.index.problems()
            assert problem.exit_code == 3 and "expired" in problem.message
        assert _get(live, "/simple/demo-pkg/")[0] == 404
        # install (pip through the proxy)
        r = cli("--home", home, "install", "--python", py, "demo-pkg")
        assert r.exit_code == 3, r.output
        assert "expired" in r.stderr
        # list, search, show still answer, with a warning that an update is due
        for args in (["list"], ["search", "demo"], ["show", "demo-pkg"]):
            r = cli("--home", home, *args)
            assert r.exit_code == 0 and "demo-pkg" in r.stdout, r.output
            assert "warning: source 'demo': " in r.stderr and "expired" in r.stderr, r.stderr
        fast = run_repotool("--home", home, "list")
        assert fast.returncode == 0 and "expired" in fast.stderr, fast
        # clock skew is per source: within a skew of 1 h the same state is usable
        _add_update(home, pub, "skewed", "--clock-skew", "1h", "--priority", "5")
        r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "skewed", "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)[0]["source"] == "skewed", r.output
        # the publisher re-signs, the user updates: usable again
        assert cli("--home", home, "source", "remove", "skewed").exit_code == 0
        pub.sign(force=frozenset({"targets"}))  # targets, snapshot, timestamp: fresh
        assert cli("--home", home, "update").exit_code == 0
        r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "after")
        assert r.exit_code == 0, r.output
        assert _get(live, "/simple/demo-pkg/")[0] == 200
    finally:
        live.stop()


# ---- PEP 592: the latest version -------------------------------------------------------------


def test_list_latest_is_highest_non_yanked_final_release(pubs, home: Path) -> None:
    pub = pubs(projects={"demo-pkg": ["1.0", "1.1", "1.2", "2.0b1"],
                         "pre-only": ["1.0a1", "1.0b2"], "all-yanked": ["1.0", "2.0"]})
    pub.repo.yank("demo-pkg", "1.2", "broken")
    pub.repo.yank("all-yanked", "1.0", "x")
    pub.repo.yank("all-yanked", "2.0", "x")
    pub.sign()
    _add_update(home, pub, "demo")
    rows = {r["project"]: r["version"]
            for r in json.loads(cli("--home", home, "list", "--json").stdout)}
    assert rows == {"demo-pkg": "1.1", "pre-only": "1.0b2", "all-yanked": "2.0"}


def test_summarize_latest_table() -> None:
    def latest(files: list[tuple[str, bool | str]]) -> str:
        doc = {"repotool-index": 1, "shard": shard_of("p"), "projects": {"p": {
            "name": "p", "summary": "", "files": [{"version": v, "yanked": y}
                                                  for v, y in files]}}}
        return str(summarize(json.dumps(doc).encode(), shard_of("p"))["p"]["latest"])

    assert latest([("1.0", False), ("2.0", "bad")]) == "1.0"
    assert latest([("1.0", False), ("2.0rc1", False)]) == "1.0"
    assert latest([("1.0rc1", False), ("1.0a1", False)]) == "1.0rc1"
    assert latest([("1.0", True), ("2.0.dev1", False)]) == "2.0.dev1"
    assert latest([("1.0", True), ("3.0", True)]) == "3.0"
    assert latest([("1.0", False), ("1!0.1", False)]) == "1!0.1"
