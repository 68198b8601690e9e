"""The root chain, one test per step of the TUF client workflow §5.3 ("update the root
role"), and what the keyring trusted when (SPEC §6.3: ``source show --history``, the
announcement on ``update``, a broken chain and ``source rekey``).

Each refusal leaves the keyring byte-for-byte unchanged (``refused``) and its history
without an entry for the refused root.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from attacks import keyring_digest, load_md, resign, role_separated_repo, write_md
from conftest import cli, make_key
from tuf.api.metadata import Metadata

pytest_plugins = ["attacks"]  # fixtures: ca, locations, pubs


def add_and_update(home: Path, loc: Any, key: Path, name: str = "demo") -> None:
    r = cli("--home", home, "source", "add", name, loc.url, "--key", key, *loc.add_args)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update", name)
    assert r.exit_code == 0, r.output


def refused(home: Path, *args: str, name: str = "demo") -> str:
    before = keyring_digest(home, name)
    r = cli("--home", home, *(args or ("update",)))
    assert r.exit_code == 3, r.output
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert keyring_digest(home, name) == before
    return r.stderr


def history(home: Path, name: str = "demo") -> list[dict[str, Any]]:
    r = cli("--home", home, "source", "show", name, "--history", "--json")
    assert r.exit_code == 0, r.output
    doc: list[dict[str, Any]] = json.loads(r.stdout)
    return doc


def forge_root(pub: Any, version: int, root_keys: list[Any], *signers: Any,
               write_as: int | None = None) -> Metadata[Any]:
    """Publish a root ``version`` (as ``write_as``.root.json and root.json) whose root role
    is ``root_keys``, signed by ``signers``; the other roles stay as they are."""
    meta = pub.root / "metadata"
    md = copy.deepcopy(load_md(meta / "root.json"))
    md.signed.version = version
    for k in list(md.signed.roles["root"].keyids):
        md.signed.revoke_key(k, "root")
    for k in root_keys:
        md.signed.add_key(k, "root")
    resign(md, *signers)
    write_md(meta / f"{write_as or version}.root.json", md)
    write_md(meta / "root.json", md)
    return md


# ---- §5.3.3: N+1 signed by the old threshold and by the new one ------------------------


@pytest.mark.parametrize("kind", ["path", "http"])
def test_5_3_3_root_signed_by_old_and_new_threshold_followed_announced_once(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, kind), pub.key.public)
    [first] = history(home)
    assert first["version"] == 1 and first["how"] == f"added by key {pub.key.fingerprint}"
    assert first["roles"]["root"] == {"keys": [pub.key.fingerprint], "threshold": 1}
    k2 = make_key(tmp_path / "k2", "k")
    pub.repo.rotate("root", [k2.public_key()], [pub.key.fingerprint], None,
                    [pub.key.signer(), k2.signer()], now=datetime.now(UTC))
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert (f"root keys of demo changed: + {k2.fingerprint}, - {pub.key.fingerprint}"
            in r.stderr), r.stderr
    again = cli("--home", home, "update")
    assert again.exit_code == 0 and "changed" not in again.stderr, again.output  # once
    entries = history(home)
    assert [e["version"] for e in entries] == [1, 2]
    assert entries[1]["how"] == "followed a rotation from version 1"
    assert entries[1]["roles"]["root"] == {"keys": [k2.fingerprint], "threshold": 1}
    assert entries[1]["roles"]["timestamp"]["keys"] == [pub.key.fingerprint]
    kr_root = (home / "sources/demo/keyring/root.json").read_bytes()
    assert entries[1]["sha256"] == hashlib.sha256(kr_root).hexdigest()
    text = cli("--home", home, "source", "show", "demo", "--history")
    assert text.exit_code == 0 and "root v2" in text.stdout and k2.fingerprint in text.stdout


@pytest.mark.parametrize("kind", ["path", "http"])
def test_5_3_3_root_not_signed_by_old_threshold_broken_chain_then_rekey(
    pubs, home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, kind), pub.key.public)
    k2 = make_key(tmp_path / "k2", "k")
    forge_root(pub, 2, [k2.public_key()], k2.signer())  # meets its own threshold only
    err = refused(home)
    assert "root chain broken" in err and "2.root.json" in err, err
    assert "repotool source rekey demo --key" in err, err
    assert [e["version"] for e in history(home)] == [1]
    # the explicit way back: a key checked with the publisher; a wrong one changes nothing
    wrong = make_key(tmp_path / "wrong", "k")
    before = keyring_digest(home, "demo")
    r = cli("--home", home, "source", "rekey", "demo", "--key", wrong.public)
    assert r.exit_code == 3 and "not a root key" in r.stderr, r.output
    assert keyring_digest(home, "demo") == before
    r = cli("--home", home, "source", "rekey", "demo", "--fingerprint", k2.fingerprint)
    assert r.exit_code == 0, r.output
    assert cli("--home", home, "update").exit_code == 0
    entries = history(home)
    assert [e["version"] for e in entries] == [1, 2]
    assert entries[1]["how"] == f"re-established by fingerprint {k2.fingerprint} (source rekey)"
    assert load_md(home / "sources/demo/keyring/root.json").signed.version == 2


def test_5_3_3_root_not_signed_by_new_threshold_refused(pubs, home: Path, tmp_path: Path,
                                                        locations) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, "path"), pub.key.public)
    k2 = make_key(tmp_path / "k2", "k")
    forge_root(pub, 2, [k2.public_key()], pub.key.signer())  # the old key alone
    err = refused(home)
    assert "root chain broken" in err and "2.root.json" in err, err
    assert [e["version"] for e in history(home)] == [1]


# ---- §5.3.4: exactly N+1 -------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 3])
def test_5_3_4_root_version_not_n_plus_1_refused(pubs, home: Path, locations,
                                                 version: int) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, "path"), pub.key.public)
    forge_root(pub, version, [pub.key.public_key()], pub.key.signer(), write_as=2)
    err = refused(home)
    assert "root chain broken" in err and "version" in err.lower(), err
    assert [e["version"] for e in history(home)] == [1]


# ---- §5.3.5: an intermediate root's expiry does not matter -----------------------------


def test_5_3_5_expired_intermediate_root_is_followed(pubs, home: Path, locations) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, "path"), pub.key.public)
    past = datetime.now(UTC) - timedelta(hours=2)
    pub.sign(now=past, expires=60, force=frozenset({"root"}))  # v2, expired an hour ago
    pub.sign(force=frozenset({"root"}))  # v3, fresh
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert [e["version"] for e in history(home)] == [1, 2, 3]


# ---- §5.3.6–5.3.8: trusted, persisted, repeated -------------------------------------------


def test_5_3_6_to_5_3_8_each_root_of_the_chain_persisted_and_recorded(
    pubs, home: Path, tmp_path: Path, locations
) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, "http"), pub.key.public)
    k2, k3 = make_key(tmp_path / "k2", "k"), make_key(tmp_path / "k3", "k")
    now = datetime.now(UTC)
    pub.repo.rotate("root", [k2.public_key(), k3.public_key()], [], 2,
                    [pub.key.signer(), k2.signer(), k3.signer()], now=now)
    pub.repo.rotate("root", [], [pub.key.fingerprint], None,
                    [k2.signer(), k3.signer(), pub.key.signer()], now=now)
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    notices = [line for line in r.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1, r.stderr  # one announcement for the whole walk 1 -> 3
    assert "threshold 1\u21922" in notices[0] and "root version 1\u21923" in notices[0]
    entries = history(home)
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert entries[1]["roles"]["root"]["threshold"] == 2
    assert entries[2]["roles"]["root"]["keys"] == sorted([k2.fingerprint, k3.fingerprint])
    assert load_md(home / "sources/demo/keyring/root.json").signed.version == 3
    # persisted: a cold cache walks on from version 3, not from 1
    assert cli("--home", home, "clean").exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    assert [e["version"] for e in history(home)] == [1, 2, 3]


# ---- §5.3.9: the final root must not be expired -------------------------------------------


def test_5_3_9_expired_final_root_refused(pubs, home: Path, locations) -> None:
    pub = pubs()
    add_and_update(home, locations.serve(pub.root, "http"), pub.key.public)
    pub.sign(now=datetime.now(UTC) - timedelta(hours=1), expires=90, force=frozenset({"root"}))
    err = refused(home)
    assert "root metadata expired" in err, err
    assert [e["version"] for e in history(home)] == [1]


# ---- §5.3.10: fast-forward attack recovery after the online key's rotation -----------------


@pytest.mark.parametrize("kind", ["path", "http"])
def test_5_3_10_fast_forward_recovery_after_online_key_rotation(
    home: Path, tmp_path: Path, locations, kind: str
) -> None:
    pub = role_separated_repo(tmp_path / "sep")
    add_and_update(home, locations.serve(pub.root, kind), pub.root_key.public)
    meta = pub.root / "metadata"
    # a stolen online key fast-forwards the timestamp; the client accepts (validly signed)
    ts = load_md(meta / "timestamp.json")
    ts.signed.version = 1000
    write_md(meta / "timestamp.json", resign(ts, pub.online_key.signer()))
    assert cli("--home", home, "update").exit_code == 0
    # the publisher rotates the online key; the new timestamp is far below 1000
    new_online = make_key(tmp_path / "online2", "k")
    ts_md = load_md(meta / "timestamp.json")
    ts_md.signed.version = 3
    write_md(meta / "timestamp.json", ts_md)  # the publisher's own last version
    pub.repo.rotate("online", [new_online.public_key()], [pub.online_key.fingerprint], None,
                    [pub.root_key.signer(), pub.targets_key.signer(), new_online.signer()],
                    now=datetime.now(UTC))
    assert load_md(meta / "timestamp.json").signed.version < 1000
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert "timestamp keys of demo changed" in r.stderr, r.stderr
    state = json.loads((home / "sources/demo/keyring/state.json").read_bytes())
    assert state["versions"]["timestamp"] < 1000
    # and rollback protection holds again from there
    before = load_md(meta / "timestamp.json")
    old = copy.deepcopy(before)
    old.signed.version -= 1
    write_md(meta / "timestamp.json", resign(old, new_online.signer()))
    refused(home)
