"""Queries from local verified state (SPEC §2 list/search/show/download/verify/clean),
their JSON shapes (docs/cli.md), and the verified file cache (SPEC §5 downloads)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attacks import keyring_digest, wheel_url_path
from builders import build_sdist, build_wheel
from conftest import cli

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


@pytest.fixture
def rich(pubs):  # type: ignore[no-untyped-def]
    """demo-pkg 1.0/1.1 (wheel + sdist, 1.1 depends on dep-a), dep-a 2.0, native-only
    (a wheel for another platform + an sdist), alien (only a wheel for another platform)."""
    pub = pubs(projects={"dep-a": ["2.0"]})
    now = datetime.now(UTC)
    d = pub.dist
    files = [
        build_wheel(d, "demo-pkg", "1.0", summary="The Demo package"),
        build_sdist(d, "demo-pkg", "1.0", summary="The Demo package"),
        build_wheel(d, "demo-pkg", "1.1", summary="The Demo package",
                    requires_dist=["dep-a>=2", 'never-needed; python_version < "3"']),
        build_sdist(d, "demo-pkg", "1.1", summary="The Demo package",
                    requires_dist=["dep-a>=2", 'never-needed; python_version < "3"']),
        build_wheel(d, "native-only", "3.0", tag="cp27-cp27m-win32"),
        build_sdist(d, "native-only", "3.0"),
        build_wheel(d, "alien", "1.0", tag="cp27-cp27m-win32"),
    ]
    pub.repo.add(files, now=now)
    pub.sign()
    return pub


def _add_update(home: Path, url: str, key: Path, name: str = "demo", *extra: str) -> None:
    r = cli("--home", home, "source", "add", name, url, "--key", key, *extra)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update", name)
    assert r.exit_code == 0, r.output


def test_queries_list_search_show_json_shapes(rich, home: Path) -> None:
    _add_update(home, str(rich.root), rich.key.public)
    rows = json.loads(cli("--home", home, "list", "--json").stdout)
    assert [r["project"] for r in rows] == ["alien", "demo-pkg", "dep-a", "native-only"]
    demo = next(r for r in rows if r["project"] == "demo-pkg")
    assert demo == {"project": "demo-pkg", "version": "1.1", "source": "demo",
                    "summary": "The Demo package", "files": 4}
    r = cli("--home", home, "list")
    assert "demo-pkg\t1.1\tdemo\tThe Demo package" in r.stdout.splitlines()
    # search: names and summaries, case-insensitively
    found = json.loads(cli("--home", home, "search", "DEMO", "--json").stdout)
    assert [f["project"] for f in found] == ["demo-pkg"]
    found = json.loads(cli("--home", home, "search", "tiny TEST", "--json").stdout)
    assert {f["project"] for f in found} == {"alien", "dep-a", "native-only"}
    assert cli("--home", home, "search", "zzz").stdout == ""
    doc = json.loads(cli("--home", home, "show", "Demo_Pkg", "--json").stdout)
    assert set(doc) == {"project", "resolved", "sources"}
    assert doc["project"] == "demo-pkg"
    assert doc["resolved"]["source"] == "demo"
    [src] = doc["sources"]
    assert src["source"] == "demo" and src["summary"] == "The Demo package"
    assert [v["version"] for v in src["versions"]] == ["1.1", "1.0"]
    f = src["versions"][0]["files"][0]
    assert set(f) == {"filename", "version", "sha256", "size", "requires_python",
                      "requires_dist", "upload_time", "yanked"}
    assert f["filename"] == "demo_pkg-1.1-py3-none-any.whl"
    assert f["requires_dist"] == ["dep-a>=2", 'never-needed; python_version < "3"']
    assert f["yanked"] is False and len(f["sha256"]) == 64
    text = cli("--home", home, "show", "demo-pkg").stdout
    assert text.startswith("demo-pkg: resolves to demo (")
    assert "depends: dep-a>=2" in text
    u = json.loads(cli("--home", home, "update", "--json").stdout)
    assert set(u[0]) >= {"source", "ok", "changed", "exit_code", "error", "hint", "mirror",
                         "failures", "versions", "files_fetched", "bytes_fetched", "projects"}
    assert u[0]["ok"] and not u[0]["changed"] and u[0]["projects"] == 4
    s = json.loads(cli("--home", home, "source", "show", "demo", "--json").stdout)
    assert set(s) >= {"name", "url", "mirrors", "only", "priority", "clock_skew",
                      "repository", "root_keys", "updated", "projects", "last_update"}
    assert s["root_keys"] == [rich.key.fingerprint] and s["projects"] == 4


def test_queries_show_says_which_source_a_project_resolves_to(pubs, home: Path) -> None:
    low = pubs(name="low", projects={"demo-pkg": ["9.0"], "only-low": ["1.0"]})
    high = pubs(name="high", projects={"demo-pkg": ["1.0"]})
    _add_update(home, str(low.root), low.key.public, "low")
    _add_update(home, str(high.root), high.key.public, "high", "--priority", "10")
    doc = json.loads(cli("--home", home, "show", "demo-pkg", "--json").stdout)
    assert doc["resolved"]["source"] == "high"
    assert "priority 10" in doc["resolved"]["reason"]
    assert {s["source"] for s in doc["sources"]} == {"low", "high"}
    # versions are never mixed across sources: a higher version elsewhere does not win
    r = cli("--home", home, "download", "demo-pkg", "-d", home.parent / "dl", "--json")
    assert r.exit_code == 0, r.output
    [got] = json.loads(r.stdout)
    assert (got["version"], got["source"]) == ("1.0", "high")
    assert set(got) == {"project", "version", "filename", "sha256", "size", "source", "path"}
    r = cli("--home", home, "download", "demo-pkg==9.0", "-d", home.parent / "dl")
    assert r.exit_code == 1, r.output
    doc = json.loads(cli("--home", home, "show", "only-low", "--json").stdout)
    assert doc["resolved"]["source"] == "low"
    # a fence (--only) pins the name to its source, whatever the priorities
    fenced = pubs(name="fenced", projects={"demo-pkg": ["0.5"]})
    _add_update(home, str(fenced.root), fenced.key.public, "fenced", "--only", "Demo_Pkg")
    doc = json.loads(cli("--home", home, "show", "demo-pkg", "--json").stdout)
    assert doc["resolved"]["source"] == "fenced" and "--only" in doc["resolved"]["reason"]
    assert "resolves to fenced" in cli("--home", home, "show", "demo-pkg").stdout


def test_download_picks_compatible_wheel_over_sdist(rich, home: Path, tmp_path: Path) -> None:
    _add_update(home, str(rich.root), rich.key.public)
    dl = tmp_path / "dl"
    r = cli("--home", home, "download", "demo-pkg==1.0", "native-only", "-d", dl, "--json")
    assert r.exit_code == 0, r.output
    got = {d["project"]: d["filename"] for d in json.loads(r.stdout)}
    assert got == {"demo-pkg": "demo_pkg-1.0-py3-none-any.whl",
                   "native-only": "native_only-3.0.tar.gz"}
    assert sorted(p.name for p in dl.iterdir()) == sorted(got.values())
    r = cli("--home", home, "download", "alien", "-d", tmp_path / "dl2")
    assert r.exit_code == 1, r.output
    assert "no file of alien" in r.stderr


def test_download_respects_yanked_unless_pinned(rich, home: Path, tmp_path: Path) -> None:
    rich.repo.yank("demo-pkg", "1.1", "broken")
    rich.sign()
    _add_update(home, str(rich.root), rich.key.public)
    dl = tmp_path / "dl"
    r = cli("--home", home, "download", "demo-pkg", "-d", dl, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["version"] == "1.0"
    r = cli("--home", home, "download", "demo-pkg>=1.1", "-d", dl)
    assert r.exit_code == 1, r.output
    r = cli("--home", home, "download", "demo-pkg==1.1", "-d", dl, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["filename"] == "demo_pkg-1.1-py3-none-any.whl"
    assert "YANKED broken" in cli("--home", home, "show", "demo-pkg").stdout
    doc = json.loads(cli("--home", home, "verify", dl / "demo_pkg-1.1-py3-none-any.whl",
                         "--json").stdout)
    assert doc[0]["vouched_by"][0]["yanked"] == "broken"


def test_download_deps(rich, home: Path, tmp_path: Path) -> None:
    _add_update(home, str(rich.root), rich.key.public)
    r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "one")
    assert r.exit_code == 0, r.output
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["demo_pkg-1.1-py3-none-any.whl"]
    r = cli("--home", home, "download", "demo-pkg", "--deps", "-d", tmp_path / "all")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "demo_pkg-1.1-py3-none-any.whl", "dep_a-2.0-py3-none-any.whl"]  # marker false: skipped


def test_verify_says_which_source_vouches(pubs, home: Path, tmp_path: Path) -> None:
    pub = pubs()
    _add_update(home, str(pub.root), pub.key.public, "one")
    _add_update(home, str(pub.root), pub.key.public, "two")
    dl = tmp_path / "dl"
    assert cli("--home", home, "download", "demo-pkg", "-d", dl).exit_code == 0
    good = dl / "demo_pkg-1.0-py3-none-any.whl"
    r = cli("--home", home, "verify", good)
    assert r.exit_code == 0, r.output
    # the ONE source that provides demo-pkg (first added at equal priority) vouches
    assert "vouched for by one (demo-pkg==1.0)\n" in r.stdout
    doc = json.loads(cli("--home", home, "verify", good, "--json").stdout)
    assert [v["source"] for v in doc[0]["vouched_by"]] == ["one"]
    assert set(doc[0]) == {"file", "sha256", "size", "vouched_by", "reason"}
    assert doc[0]["reason"] is None
    # same name, other bytes; a file no index lists; a non-distribution: exit 3
    bad = tmp_path / "bad" / good.name
    bad.parent.mkdir()
    data = bytearray(good.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    other = build_wheel(tmp_path / "other", "demo-pkg", "1.0", summary="Other bytes")
    for f in (bad, other, pub.key.public):
        r = cli("--home", home, "verify", good, f)
        assert r.exit_code == 3, r.output
        assert f"BAD {f}" in r.stdout and f"OK  {good}" in r.stdout
    assert cli("--home", home, "source", "remove", "one").exit_code == 0
    r = cli("--home", home, "verify", good, "--json")
    assert [v["source"] for v in json.loads(r.stdout)[0]["vouched_by"]] == ["two"]


def test_verify_respects_only_fences(pubs, home: Path, tmp_path: Path) -> None:
    """A public source listing 'internal-pkg' must not vouch for it once the name is
    pinned (--only) to the corporate source; nor does a fenced source vouch outside."""
    corp = pubs(name="corp", projects={"internal-pkg": ["1.0"]})
    public = pubs(name="public", projects={"internal-pkg": ["99.0"], "demo-pkg": ["1.0"]})
    _add_update(home, str(public.root), public.key.public, "public")
    dl = tmp_path / "dl"
    assert cli("--home", home, "download", "internal-pkg", "demo-pkg", "-d", dl).exit_code == 0
    planted = dl / "internal_pkg-99.0-py3-none-any.whl"
    assert cli("--home", home, "verify", planted).exit_code == 0  # no fence yet
    _add_update(home, str(corp.root), corp.key.public, "corp", "--only", "internal-*")
    r = cli("--home", home, "verify", planted, dl / "demo_pkg-1.0-py3-none-any.whl")
    assert r.exit_code == 3, r.output
    assert f"BAD {planted}" in r.stdout
    assert "vouched for by public" in r.stdout  # demo-pkg is not fenced
    r = cli("--home", home, "download", "internal-pkg", "-d", tmp_path / "dl2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["source"] == "corp"
    r = cli("--home", home, "verify", tmp_path / "dl2" / "internal_pkg-1.0-py3-none-any.whl")
    assert r.exit_code == 0 and "vouched for by corp" in r.stdout, r.output


def test_download_verified_file_in_cache_not_fetched_again(
    pubs, home: Path, tmp_path: Path, locations
) -> None:
    pub = pubs()
    srv = locations.server(pub.root)
    _add_update(home, srv.url, pub.key.public)
    path = wheel_url_path(pub.root, "demo-pkg", "demo_pkg-1.0-py3-none-any.whl")
    for i in range(3):
        r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / f"dl{i}")
        assert r.exit_code == 0, r.output
    assert srv.count(path) == 1
    # the cache is re-hashed, not trusted: a damaged copy is fetched again
    cached = next((home / "sources/demo/cache/files").iterdir())
    cached.write_bytes(b"x" + cached.read_bytes()[1:])
    r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl9")
    assert r.exit_code == 0, r.output
    assert srv.count(path) == 2
    assert (tmp_path / "dl9" / "demo_pkg-1.0-py3-none-any.whl").read_bytes()[:1] == b"P"
    # an unchanged update fetches only the timestamp
    srv.clear_log()
    assert cli("--home", home, "update").exit_code == 0
    # (sorted: the server's handler threads may log two back-to-back requests either way)
    assert sorted(srv.requests) == ["/metadata/2.root.json", "/metadata/timestamp.json"]


def test_clean_empties_caches_keeps_keyrings(pubs, home: Path, tmp_path: Path) -> None:
    pub = pubs()
    _add_update(home, str(pub.root), pub.key.public)
    assert cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl").exit_code == 0
    cache = home / "sources/demo/cache"
    assert any((cache / "files").iterdir())
    kr = keyring_digest(home, "demo")
    cfg = (home / "sources/demo/source.json").read_bytes()
    r = cli("--home", home, "clean")
    assert r.exit_code == 0, r.output
    assert not cache.exists() or list(cache.rglob("*")) == []
    assert keyring_digest(home, "demo") == kr
    assert (home / "sources/demo/source.json").read_bytes() == cfg
    assert cli("--home", home, "list").stdout == ""
    r = cli("--home", home, "download", "demo-pkg", "-d", tmp_path / "dl2")
    assert r.exit_code == 1
    assert "source 'demo' has no verified index (cleaned, or never updated)" in r.stderr
    assert "repotool update demo" in r.stderr
    r = cli("--home", home, "update", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["changed"]
    assert cli("--home", home, "list").stdout.startswith("demo-pkg\t1.0\tdemo")
    shutil.rmtree(tmp_path / "dl")
    assert cli("--home", home, "clean", "demo").exit_code == 0
    assert cli("--home", home, "clean", "nope").exit_code == 1
