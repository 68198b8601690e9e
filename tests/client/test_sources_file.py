"""deb822 ``.sources`` files and system mode (SPEC §6.6, issue 12).

* ``source add`` writes ``sources.d/NAME.sources``; ``source add --from FILE`` reads one;
  ``source remove`` deletes it;
* a file dropped into ``sources.d`` is set up by the next ``update``, only if its
  Signed-By keys are the repository's (no trust on first use); a malformed file is
  refused with one line naming file and line, and nothing changes;
* the parser, property-tested: any input gives an entry or that one-line error, and
  what ``render`` writes ``parse`` reads back equal;
* as root with no ``--home``: configuration under ``/etc/repotool``, state under
  ``/var/lib/repotool`` (``$REPOTOOL_SYSTEM_ROOT`` prefixes both in tests).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from attacks import tree_digest
from conftest import KeyPair, cli, make_key
from hypothesis import given, settings
from hypothesis import strategies as st

from repotool.client import locations
from repotool.client.sourcesfile import SourcesEntry, parse, render
from repotool.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
ONE_LINE = re.compile(r"^(?P<file>[^\n]+):(?P<line>[0-9]+): [^\n]+$")


def drop(home: Path, name: str, text: str) -> Path:
    d = home / "sources.d"
    d.mkdir(exist_ok=True)
    path = d / f"{name}.sources"
    path.write_text(text)
    return path


def entry_text(name: str, uri: object, signed_by: str, extra: str = "") -> str:
    return f"Name: {name}\nURIs: {uri}\nSigned-By: {signed_by}\n{extra}"


def pem(key: KeyPair) -> str:
    return "\n".join(" " + line for line in key.public.read_text().strip().splitlines())


def test_example_file_parses() -> None:
    text = (ROOT / "examples" / "corp.sources").read_bytes()
    e = parse(text, "corp.sources", expect_name="corp")
    assert e.name == "corp" and e.priority == 10 and e.only == ("corp-*", "internal-*")
    assert e.uris == ("https://pkgs.corp.example/", "https://mirror.corp.example/pkgs/")
    assert len(e.key_ids()) == 2  # one fingerprint, one embedded key
    assert parse(render(e), "again") == e


def test_source_add_writes_the_file_and_remove_deletes_it(make_published,
                                                          home: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
            "--only", "demo-*", "--priority", "5")
    assert r.exit_code == 0, r.output
    path = home / "sources.d" / "demo.sources"
    e = parse(path.read_bytes(), str(path), expect_name="demo")
    assert e.fingerprints == (pub.key.fingerprint,)
    assert (e.uris, e.only, e.priority) == ((pub.root.as_uri() + "/",), ("demo-*",), 5)
    # another home set up from that file alone: the same source
    other = home.parent / "other-home"
    r = cli("--home", other, "source", "add", "--from", path)
    assert r.exit_code == 0, r.output
    assert cli("--home", other, "update").exit_code == 0
    assert cli("--home", other, "list").stdout.startswith("demo-pkg\t1.0\tdemo")
    assert (other / "sources.d" / "demo.sources").read_text() == path.read_text()
    assert cli("--home", home, "source", "remove", "demo").exit_code == 0
    assert not path.exists() and not (home / "sources" / "demo").exists()
    # --from with NAME or options is a usage error
    assert cli("--home", other, "source", "add", "x", "--from", path).exit_code == 2


def test_interrupted_source_remove_does_not_bring_the_source_back(
        make_published, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'source remove' killed after the state is gone must not leave the file that the
    next update would set up again."""
    from repotool.client import sources

    pub = make_published()
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    real = sources.remove_source

    def killed_after(h: object, name: str) -> None:
        real(h, name)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "remove_source", killed_after)
    assert cli("--home", home, "source", "remove", "demo").exit_code == 130
    monkeypatch.undo()
    r = cli("--home", home, "update")
    assert r.exit_code == 1 and "no sources" in r.stderr
    assert not (home / "sources" / "demo").exists()


def test_dropped_file_is_set_up_by_the_next_update(make_published, home: Path) -> None:
    a = make_published("a", projects={"alpha": ["1.0"]})
    b = make_published("b", projects={"beta": ["2.0"]})
    drop(home, "a", entry_text("a", a.root.as_uri(), a.key.fingerprint, "Priority: 3\n"))
    drop(home, "b", f"# embedded key\nName: b\nURIs: {b.root.as_uri()}\nSigned-By:\n"
                    f"{pem(b.key)}\nOnly: beta\n")
    r = cli("--home", home, "source", "list")
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr.count("is not set up yet; 'repotool update' sets it up") == 2
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert "a: updated" in r.stdout and "b: updated" in r.stdout
    assert cli("--home", home, "source", "list").stderr == ""
    rows = cli("--home", home, "list").stdout.splitlines()
    assert [line.split("\t")[:3] for line in rows] == [["alpha", "1.0", "a"],
                                                       ["beta", "2.0", "b"]]
    shown = cli("--home", home, "source", "show", "b", "--json").stdout
    assert '"only": [\n    "beta"\n  ]' in shown
    assert (home / "sources" / "a" / "keyring" / "root.json").is_file()
    # set up once: the next update only updates
    r = cli("--home", home, "update")
    assert r.exit_code == 0 and r.stdout.count("unchanged") == 2


def test_edited_file_applies_settings_never_keys(make_published, home: Path,
                                               tmp_path: Path) -> None:
    """An edited file's URIs, Only, Priority are taken in at the next update; its
    Signed-By is not (the keyring is the trust anchor once set up); a malformed edit is
    refused and changes nothing."""
    from attacks import keyring_digest, source_config

    pub = make_published(projects={"demo-pkg": ["1.0"]})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    r = cli("--home", home, "update")
    assert r.exit_code == 0 and "applied" not in r.stderr
    path = home / "sources.d" / "demo.sources"
    stranger = make_key(tmp_path / "k", "stranger")
    path.write_text(entry_text("demo", f"{pub.root.as_uri()}/ {pub.root.as_uri()}/x/",
                               stranger.fingerprint, "Only: demo-*\nPriority: 7\n"))
    keyring = keyring_digest(home, "demo")
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert "demo: settings from" in r.stderr and "applied" in r.stderr
    cfg = source_config(home, "demo")
    assert (cfg["only"], cfg["priority"]) == (["demo-*"], 7)
    assert cfg["mirrors"] == [pub.root.as_uri() + "/x/"]
    assert pub.key.fingerprint in cfg["trusted_keys"]
    assert keyring_digest(home, "demo") == keyring  # the stranger's key is not trusted
    assert cli("--home", home, "update").stderr == ""  # taken in once
    path.write_text(entry_text("demo", pub.root.as_uri(), pub.key.fingerprint,
                               "Priority: x\n"))
    r = cli("--home", home, "update")
    assert r.exit_code == 1 and "demo.sources:4: Priority 'x' is not an integer" in r.stderr
    assert source_config(home, "demo") == cfg


def test_trust_on_first_use_refused_for_dropped_file(make_published, home: Path,
                                                     tmp_path: Path) -> None:
    """The file's keys must be the repository's: another key is refused (exit 3) and no
    keyring is made; the other sources are updated all the same."""
    good = make_published("good")
    evil = make_published("evil")
    stranger = make_key(tmp_path / "k", "stranger")
    drop(home, "good", entry_text("good", good.root.as_uri(), good.key.fingerprint))
    drop(home, "evil", entry_text("evil", evil.root.as_uri(), stranger.fingerprint))
    r = cli("--home", home, "update")
    assert r.exit_code == 3, r.output
    assert "good: updated" in r.stdout
    err = [line for line in r.stderr.splitlines() if line.startswith("repotool: error")]
    assert len(err) == 1 and "evil.sources" in err[0] and stranger.fingerprint[:16] in err[0]
    assert not (home / "sources" / "evil").exists()
    # an empty Signed-By is no way around it
    (home / "sources.d" / "evil.sources").write_text(
        entry_text("evil", evil.root.as_uri(), ""))
    r = cli("--home", home, "update")
    assert r.exit_code == 1
    assert "evil.sources:3: Signed-By is empty" in r.stderr
    assert not (home / "sources" / "evil").exists()


@pytest.mark.parametrize(("text", "line", "what"), [
    ("Name: x\nURIs: file:///r/\n", 2, "field Signed-By is missing"),
    ("Name: x\nURIs: file:///r/\nSigned-By: {f}\nSigned-by: {f}\n", 4, "given twice"),
    ("Name: x\nURIs: file:///r/\nSigned-By: {f}\nSuites: main\n", 4, "unknown field"),
    ("Name: x\nURIs: file:///r/\nSigned-By: {f}\n\nName: y\n", 5, "a second stanza"),
    ("Name: y\nURIs: file:///r/\nSigned-By: {f}\n", 1, "is not the file's name"),
    ("Name: x\nURIs: ftp://r/\nSigned-By: {f}\n", 2, "URIs:"),
    ("Name: x\nURIs: file:///r/\nSigned-By: {f}\nPriority: high\n", 4, "not an integer"),
    ("Name: x\nURIs: file:///r/\nSigned-By: {f}\nOnly: a/b\n", 4, "invalid --only"),
    ("Name: x\nURIs: file:///r/\nSigned-By: abc\n", 3, "neither a fingerprint"),
    ("Name: x\n continued\n", 1, "field URIs is missing"),
    (" lead\n", 1, "follows no field"),
    ("Name x\n", 1, "expected 'Field: value'"),
    ("Name: x\x1b[2J\n", 1, "control character"),
    ("Name: x\nURIs: file:///r/\nSigned-By:\n -----BEGIN PRIVATE KEY-----\n AAAA\n"
     " -----END PRIVATE KEY-----\n", 3, "PRIVATE KEY block"),
])
def test_malformed_file_one_line_and_nothing_changes(
        make_published, home: Path, text: str, line: int, what: str) -> None:
    pub = make_published()
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    drop(home, "ok", entry_text("ok", pub.root.as_uri(), pub.key.fingerprint))
    drop(home, "x", text.replace("{f}", pub.key.fingerprint))
    before = tree_digest(home / "sources")
    r = cli("--home", home, "update")
    assert r.exit_code == 1 and r.stdout == ""
    first = r.stderr.splitlines()[0]
    assert first.startswith("repotool: error: ") and len(r.stderr.splitlines()) <= 2
    m = ONE_LINE.match(first[len("repotool: error: "):])
    assert m, first
    assert m["file"].endswith("x.sources") and int(m["line"]) == line and what in first
    assert tree_digest(home / "sources") == before  # not even 'ok' was set up


def test_system_mode_as_root(make_published, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """euid 0, no --home, no $REPOTOOL_HOME: /etc/repotool and /var/lib/repotool (under
    $REPOTOOL_SYSTEM_ROOT); another user: the platform's per-user directories."""
    system = tmp_path / "sysroot"
    monkeypatch.delenv("REPOTOOL_HOME", raising=False)
    monkeypatch.setenv("REPOTOOL_SYSTEM_ROOT", str(system))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    h = locations.home_for(None)
    assert h.root == system / "var/lib/repotool"
    assert h.sources_d == system / "etc/repotool/sources.d"
    assert locations.home_for(tmp_path / "explicit").root == tmp_path / "explicit"
    monkeypatch.setenv("REPOTOOL_HOME", str(tmp_path / "env"))
    assert locations.home_for(None).root == tmp_path / "env"
    monkeypatch.delenv("REPOTOOL_HOME")

    pub = make_published()
    r = cli("source", "add", "demo", pub.root, "--key", pub.key.public)
    assert r.exit_code == 0, r.output
    assert (system / "etc/repotool/sources.d/demo.sources").is_file()
    assert (system / "var/lib/repotool/sources/demo/keyring/root.json").is_file()
    assert sorted(p.name for p in system.iterdir()) == ["etc", "var"]

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    user = locations.home_for(None)
    assert user.root == tmp_path / "data" / "repotool"
    assert user.sources_d == tmp_path / "config" / "repotool" / "sources.d"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_system_mode_real_root_picks_up_a_dropped_file(make_published,
                                                       tmp_path: Path) -> None:
    """The real executable as root: a file dropped into /etc/repotool/sources.d is set
    up by 'repotool update' under /var/lib/repotool (prefixed for the test)."""
    system = tmp_path / "sysroot"
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    etc = system / "etc/repotool/sources.d"
    etc.mkdir(parents=True)
    (etc / "corp.sources").write_text(
        entry_text("corp", pub.root.as_uri(), pub.key.fingerprint))
    env = {k: v for k, v in os.environ.items() if k != "REPOTOOL_HOME"}
    env["REPOTOOL_SYSTEM_ROOT"] = str(system)
    for args in (["update"], ["list"]):
        r = subprocess.run([sys.executable, "-m", "repotool", *args], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("demo-pkg\t1.0\tcorp")
    assert (system / "var/lib/repotool/sources/corp/keyring/root.json").is_file()


# ---- the parser, property-tested ---------------------------------------------------------

FPR = st.text("0123456789abcdef", min_size=64, max_size=64)
NAME = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
URI = st.from_regex(r"\Ahttps://[a-z]{1,10}\.example(:[1-9][0-9]{0,3})?/([a-z0-9-]{1,8}/){0,2}\Z")
ENTRIES = st.builds(
    SourcesEntry, NAME, st.lists(URI, min_size=1, max_size=4, unique=True).map(tuple),
    st.lists(FPR, min_size=1, max_size=3, unique=True).map(tuple), st.just(()),
    st.lists(st.from_regex(r"\A[a-z0-9*?-]{1,10}\Z"), max_size=3).map(tuple),
    st.integers(-10**8, 10**8), st.integers(0, 3600))
LINES = st.sampled_from([
    "Name: x", "URIs: https://a.example/", "Signed-By: " + "a" * 64, " " + "b" * 64, " .",
    "Only: a*", "Priority: 1", "Clock-Skew: 5m", "# c", "", " ", "\t-----BEGIN PUBLIC KEY-----",
    " -----END PUBLIC KEY-----", "X: y", "Name:", "URIs:", "\r", "Priority: 1e3", "né: x",
])
TEXT = st.one_of(
    st.lists(LINES, max_size=12).map("\n".join),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.lists(st.one_of(LINES, st.text(max_size=12)), max_size=8).map("\n".join),
)


def _one_line_error(e: UserError, origin: str) -> None:
    assert "\n" not in e.message and e.exit_code == 1
    m = ONE_LINE.match(e.message)
    assert m and m["file"] == origin and int(m["line"]) >= 1, e.message


@settings(max_examples=300)
@given(TEXT)
def test_parse_any_input_gives_an_entry_or_one_line_naming_file_and_line(
        data: str | bytes) -> None:
    try:
        e = parse(data, "/etc/repotool/sources.d/x.sources", expect_name="x")
    except UserError as err:
        _one_line_error(err, "/etc/repotool/sources.d/x.sources")
        return
    assert e.name == "x" and e.uris and (e.fingerprints or e.keys_pem)


@settings(max_examples=150)
@given(ENTRIES)
def test_render_then_parse_is_the_identity(entry: SourcesEntry) -> None:
    assert parse(render(entry), "f", expect_name=entry.name) == entry
    assert parse(render(entry).encode(), "f") == entry


@settings(max_examples=150)
@given(ENTRIES, st.integers(0, 10**6), st.sampled_from(["\x00", "\n", ":", " ", "#", "\n\n",
                                                        "x", "\udc80", "\u202e", "-"]))
def test_a_damaged_file_is_refused_or_still_valid(entry: SourcesEntry, at: int,
                                                  junk: str) -> None:
    text = render(entry)
    i = at % (len(text) + 1)
    damaged = text[:i] + junk + text[i:]
    try:
        got = parse(damaged.encode("utf-8", "surrogateescape"), "f")
    except UserError as err:
        _one_line_error(err, "f")
        return
    assert got.uris and got.fingerprints  # still a complete, valid source


@settings(max_examples=20)
@given(TEXT)
def test_update_with_any_dropped_file_changes_no_trusted_state(
        tmp_path_factory: pytest.TempPathFactory, data: str | bytes) -> None:
    home = tmp_path_factory.mktemp("home")
    d = home / "sources.d"
    d.mkdir()
    (d / "x.sources").write_bytes(data if isinstance(data, bytes)
                                  else data.encode("utf-8", "surrogateescape"))
    r = cli("--home", home, "update")
    assert r.exit_code in (1, 3), r.output
    assert len(r.stderr.splitlines()) <= 2 and "internal error" not in r.stderr
    assert tree_digest(home / "sources") == {}
