"""`source add/remove`: the keyring is bootstrapped only from what the user's keys vouch
for (SPEC §2 source add, §3.1 "a key trusted for source A means nothing for source B")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from attacks import TRANSPORTS, keyring_digest, source_config
from conftest import cli, make_key

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def _home_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*")}


def _nothing_written(home: Path) -> None:
    # the home lock file may exist (apt has one too); no source, no keyring, no temp dir
    assert _home_files(home) <= {"lock"}, _home_files(home)


@pytest.mark.parametrize(("how", "kind"), [
    *[("key", k) for k in TRANSPORTS],
    ("fingerprint", "path"), ("fingerprint", "https"), ("root", "file"), ("root", "http"),
])
def test_source_add_with_key_fingerprint_or_root(
    pubs, home: Path, locations, kind: str, how: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    anchor = {
        "key": ["--key", str(pub.key.public)],
        "fingerprint": ["--fingerprint", pub.key.fingerprint.upper()],
        "root": ["--root", str(pub.root / "metadata" / "1.root.json")],
    }[how]
    r = cli("--home", home, "source", "add", "demo", loc.url, *anchor, *loc.add_args)
    assert r.exit_code == 0, r.output
    assert pub.key.fingerprint in r.stdout
    cfg = source_config(home, "demo")
    assert cfg["trusted_keys"] == [pub.key.fingerprint]
    assert cfg["repo_name"] == "demo"
    kr = home / "sources" / "demo" / "keyring"
    assert (kr / "root.json").read_bytes() == (pub.root / "metadata" / "1.root.json").read_bytes()
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert "demo-pkg\t1.0\tdemo" in cli("--home", home, "list").stdout


@pytest.mark.parametrize("kind", ["path", "http"])
def test_source_add_wrong_key_refused_and_nothing_written(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    loc = locations.serve(pub.root, kind)
    stranger = make_key(tmp_path / "stranger", "k")
    r = cli("--home", home, "source", "add", "demo", loc.url, "--key", stranger.public)
    assert r.exit_code == 3, r.output
    assert stranger.fingerprint in r.stderr and "not a root key" in r.stderr
    _nothing_written(home)
    r = cli("--home", home, "source", "add", "demo", loc.url,
            "--fingerprint", stranger.fingerprint)
    assert r.exit_code == 3, r.output
    _nothing_written(home)
    # the right key and a wrong one together: every key given must be a root key
    r = cli("--home", home, "source", "add", "demo", loc.url,
            "--key", pub.key.public, "--key", stranger.public)
    assert r.exit_code == 3, r.output
    _nothing_written(home)


def test_source_add_key_of_another_source_refused(pubs, home: Path) -> None:
    a = pubs(name="alpha")
    b = pubs(name="beta")  # its own key
    assert cli("--home", home, "source", "add", "a", a.root, "--key", a.key.public).exit_code == 0
    before = keyring_digest(home, "a")
    r = cli("--home", home, "source", "add", "b", b.root, "--key", a.key.public)
    assert r.exit_code == 3, r.output
    assert a.key.fingerprint in r.stderr
    assert not (home / "sources" / "b").exists()
    assert keyring_digest(home, "a") == before


def test_source_add_root_signed_without_the_given_key_refused(
    pubs, home: Path, tmp_path: Path
) -> None:
    """The key is listed in the root but did not sign it: listing is not vouching."""
    from attacks import load_md, resign, write_md

    pub = pubs()
    other = make_key(tmp_path / "other", "k")
    md = load_md(pub.root / "metadata" / "1.root.json")
    md.signed.add_key(other.public_key(), "root")  # listed, root threshold stays 1
    resign(md, pub.key.signer())  # ... but only the original key signs
    write_md(pub.root / "metadata" / "1.root.json", md)
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", other.public)
    assert r.exit_code == 3, r.output
    assert "no valid signature" in r.stderr
    _nothing_written(home)


def test_source_add_root_of_another_repository_refused_at_update(
    pubs, home: Path
) -> None:
    a = pubs(name="alpha")
    b = pubs(name="beta")
    r = cli("--home", home, "source", "add", "a", a.root,
            "--root", b.root / "metadata" / "1.root.json")
    assert r.exit_code == 0, r.output
    before = keyring_digest(home, "a")
    r = cli("--home", home, "update")
    assert r.exit_code == 3, r.output
    assert keyring_digest(home, "a") == before
    assert cli("--home", home, "list").stdout == ""


@pytest.mark.parametrize("content", [b"", b"garbage", b"{}", b'{"signed": {"_type": "timestamp"}}'])
def test_source_add_malformed_root_file_is_a_local_error(
    pubs, home: Path, tmp_path: Path, content: bytes
) -> None:
    pub = pubs()
    bad = tmp_path / "root.json"
    bad.write_bytes(content)
    for root in (bad, tmp_path / "missing.json"):
        r = cli("--home", home, "source", "add", "demo", pub.root, "--root", root)
        assert r.exit_code == 1, r.output
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    # a timestamp where a root belongs, validly signed, is refused too
    r = cli("--home", home, "source", "add", "demo", pub.root, "--root",
            pub.root / "metadata" / "timestamp.json")
    assert r.exit_code in (1, 3), r.output
    _nothing_written(home)


def test_source_add_unsigned_first_root_refused(pubs, home: Path) -> None:
    from attacks import strip_signatures

    pub = pubs()
    strip_signatures(pub.root / "metadata" / "1.root.json")
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public)
    assert r.exit_code == 3, r.output
    _nothing_written(home)


@pytest.mark.parametrize("url", [
    "ftp://example.org/repo/",
    "http://",
    "http://user:secret@127.0.0.1/repo/",
    "http://127.0.0.1:99999/",
    "https://127.0.0.1/repo/?x=1",
    "file://otherhost/repo/",
    "",
])
def test_source_add_malformed_url_is_usage_error(pubs, home: Path, url: str) -> None:
    pub = pubs()
    r = cli("--home", home, "source", "add", "demo", url, "--key", pub.key.public)
    assert r.exit_code == 2, r.output
    assert "secret" not in r.output or "credentials" in r.output
    _nothing_written(home)


def test_source_add_malformed_mirror_is_usage_error(pubs, home: Path) -> None:
    pub = pubs()
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
            "--mirror", "gopher://mirror/")
    assert r.exit_code == 2, r.output
    _nothing_written(home)


def test_source_add_unreadable_key_file(pubs, home: Path, tmp_path: Path) -> None:
    pub = pubs()
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")
    unreadable = tmp_path / "unreadable.pub"
    unreadable.write_bytes(pub.key.public.read_bytes())
    unreadable.chmod(0)
    cases = [tmp_path / "missing.pub", tmp_path, garbage]
    if os.geteuid() != 0:  # root reads anything
        cases.append(unreadable)
    for bad in cases:
        r = cli("--home", home, "source", "add", "demo", pub.root, "--key", bad)
        assert r.exit_code == 1, (bad, r.output)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
        _nothing_written(home)


@pytest.mark.parametrize("fpr", ["abc", "g" * 64, "0" * 63])
def test_source_add_malformed_fingerprint_is_usage_error(
    pubs, home: Path, fpr: str
) -> None:
    pub = pubs()
    r = cli("--home", home, "source", "add", "demo", pub.root, "--fingerprint", fpr)
    assert r.exit_code == 2, r.output
    _nothing_written(home)


def test_source_add_needs_exactly_one_anchor(pubs, home: Path) -> None:
    pub = pubs()
    assert cli("--home", home, "source", "add", "demo", pub.root).exit_code == 2
    r = cli("--home", home, "source", "add", "demo", pub.root, "--key", pub.key.public,
            "--fingerprint", pub.key.fingerprint)
    assert r.exit_code == 2
    _nothing_written(home)


def test_source_add_existing_name(pubs, home: Path) -> None:
    a = pubs(name="alpha")
    b = pubs(name="beta")
    assert cli("--home", home, "source", "add", "x", a.root, "--key", a.key.public).exit_code == 0
    before = keyring_digest(home, "x")
    cfg_before = source_config(home, "x")
    r = cli("--home", home, "source", "add", "x", b.root, "--key", b.key.public)
    assert r.exit_code == 1, r.output
    assert "already exists" in r.stderr
    assert keyring_digest(home, "x") == before
    assert source_config(home, "x") == cfg_before


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "..", "", "x" * 65, "a b"])
def test_source_add_invalid_name(pubs, home: Path, tmp_path: Path, name: str) -> None:
    pub = pubs()
    r = cli("--home", home, "source", "add", name, pub.root, "--key", pub.key.public)
    assert r.exit_code in (1, 2), r.output
    assert not (tmp_path / "x").exists()
    _nothing_written(home)


def test_source_add_unreachable_repository(home: Path, keypair, tmp_path: Path) -> None:
    r = cli("--home", home, "source", "add", "demo", tmp_path / "nowhere", "--key", keypair.public)
    assert r.exit_code == 1, r.output
    _nothing_written(home)


def test_source_remove_deletes_only_that_source(pubs, home: Path) -> None:
    a = pubs(name="alpha", projects={"aa": ["1.0"]})
    b = pubs(name="beta", projects={"bb": ["1.0"]})
    assert cli("--home", home, "source", "add", "a", a.root, "--key", a.key.public).exit_code == 0
    assert cli("--home", home, "source", "add", "b", b.root, "--key", b.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    b_before = {p: d for p, d in _digest_all(home / "sources" / "b").items()
                if not p.startswith("status")}
    r = cli("--home", home, "source", "remove", "a")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (home / "sources").iterdir()) == ["b"]
    b_after = {p: d for p, d in _digest_all(home / "sources" / "b").items()
               if not p.startswith("status")}
    assert b_after == b_before
    listed = cli("--home", home, "list").stdout.splitlines()
    assert listed == ["bb\t1.0\tb\tA tiny test distribution"]
    assert cli("--home", home, "source", "remove", "a").exit_code == 1
    assert cli("--home", home, "source", "remove", "../b").exit_code in (1, 2)
    assert (home / "sources" / "b" / "source.json").exists()
    docs = json.loads(cli("--home", home, "source", "list", "--json").stdout)
    assert [d["name"] for d in docs] == ["b"]


def _digest_all(path: Path) -> dict[str, str]:
    from attacks import tree_digest

    return tree_digest(path)
