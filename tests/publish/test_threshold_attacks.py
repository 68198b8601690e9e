"""m-of-n means m-of-n (SPEC §2 `repo init --threshold`, §3.1, §3.7): in a repository whose
three keys hold every role at threshold 2, one stolen key can change nothing a client
accepts — not targets, not a bin, not snapshot, not timestamp.

Each forgery below starts from a client holding verified state. The "every role" variant
is what an attacker with one key can really make: every role signed by that key alone.
The other variants leave exactly one role short of its threshold and sign the rest with
two keys (as if the attacker held those too), so each role's threshold is exercised on
its own; in a role-separated repository that is the real attack of someone holding the
online key (it lives on the server) and one of two targets keys.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from attacks import TRANSPORTS, keyring_digest, load_md
from builders import build_wheel
from conftest import cli, make_key
from thresholds import MofN, bin_of, inject_into_bin, m_of_n_repo, short_sign
from tuf.api import exceptions as tuf_exc

pytest_plugins = ["attacks"]  # fixtures: ca, locations

INJECTED = "files/demo-pkg/demo_pkg-6.6-py3-none-any.whl"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MofN:
    """`repo init --key A --key B --key C --threshold 2` (the CLI: the code under test),
    256 bins, demo-pkg 1.0, published with A and B. Built once; tests take copies."""
    return m_of_n_repo(tmp_path_factory.mktemp("mofn"), via="cli")


@pytest.fixture
def pub(template: MofN, tmp_path: Path) -> MofN:
    base = tmp_path / "pub"
    shutil.copytree(template.root.parent, base, symlinks=True)
    return MofN(base / "repo", template.keys, base / "dist")


def add_and_update(home: Path, loc: Any, key: Path) -> None:
    r = cli("--home", home, "source", "add", "demo", loc.url, "--key", key, *loc.add_args)
    assert r.exit_code == 0, r.output
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output


def listing(home: Path) -> list[str]:
    r = cli("--home", home, "list")
    assert r.exit_code == 0, r.output
    return r.stdout.splitlines()


def assert_refused(home: Path, role: str) -> None:
    before = keyring_digest(home, "demo")
    r = cli("--home", home, "update")
    assert r.exit_code == 3, r.output
    assert role in r.stderr and "1/2" in r.stderr, r.stderr
    assert 1 <= len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert keyring_digest(home, "demo") == before


def assert_injected_file_refused(home: Path, wheel: Path, *, download_code: int = 3) -> None:
    dl = home.parent / "dl"
    r = cli("--home", home, "download", "demo-pkg==6.6", "-d", dl)
    assert r.exit_code == download_code, r.output
    assert not dl.exists() or list(dl.iterdir()) == []
    r = cli("--home", home, "verify", wheel)
    assert r.exit_code == 3, r.output


# the transport changes nothing in what is verified: every transport for the real attack,
# one for each single-role variant
VARIANTS = [("every-role", k) for k in TRANSPORTS] + [
    ("targets", "http"), ("snapshot", "file"), ("timestamp", "https")]


@pytest.mark.parametrize(("forged", "kind"), VARIANTS)
def test_threshold_one_key_cannot_publish_in_2_of_3_repository(
    pub: MofN, home: Path, locations: Any, forged: str, kind: str
) -> None:
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.keys["A"].public)
    old = listing(home)
    assert old == ["demo-pkg\t1.0\tdemo\tA tiny test distribution"]
    # the attacker's release: demo-pkg 6.6 in a new shard and its bin, under new targets,
    # snapshot and timestamp; then every forged role is signed by key A alone
    wheel = pub.add_wheel("demo-pkg", "6.6")
    written = pub.repo.sign(pub.signers("A", "B"), now=datetime.now(UTC)).versions
    roles = ({n for n in written if n != "root"} if forged == "every-role" else {forged})
    short_sign(pub.root, roles, pub.signers("A"), pub.signers("A", "B"))
    # timestamp is verified first: with every role forged, that is where it stops
    assert_refused(home, "timestamp" if forged == "every-role" else forged)
    assert listing(home) == old
    assert_injected_file_refused(home, wheel)
    # a fresh client that never saw the genuine state is refused the same way
    fresh = home.parent / "fresh"
    r = cli("--home", fresh, "source", "add", "demo", loc.url, "--key", pub.keys["A"].public,
            *loc.add_args)
    assert r.exit_code == 0, r.output
    assert_refused(fresh, "timestamp" if forged == "every-role" else forged)
    # the same bytes signed by two keys are accepted: the refusal was the threshold
    short_sign(pub.root, roles, pub.signers("B", "C"), pub.signers("B", "C"))
    r = cli("--home", home, "update")
    assert r.exit_code == 0, r.output
    assert listing(home) == ["demo-pkg\t6.6\tdemo\tA tiny test distribution"]


def _tuf_client(root: Path, loc: Any, work: Path) -> Any:
    """A TUF client on repotool's own fetcher (as the conformance adapter runs it),
    bootstrapped from the genuine 1.root.json and refreshed."""
    from repotool.transport.fetcher import Fetcher
    from repotool.transport.limits import Limits
    from repotool.trust.updater import make_updater

    url = loc.url if loc.kind != "path" else root.resolve().as_uri()
    url = url.rstrip("/") + "/"
    ca = loc.add_args[1] if loc.add_args else None
    work.mkdir(parents=True)
    up = make_updater(work, url + "metadata/", url, (root / "metadata" / "1.root.json")
                      .read_bytes(), Fetcher(Limits(), ca_cert=ca), datetime.now(UTC))
    up.refresh()
    return up


@pytest.mark.parametrize("kind", ["file", "https"])
def test_threshold_one_key_cannot_publish_in_2_of_3_repository_bin(
    pub: MofN, home: Path, tmp_path: Path, locations: Any, kind: str
) -> None:
    """Bins list the files TUF clients fetch by path; one key cannot add one to a bin."""
    loc = locations.serve(pub.root, kind)
    add_and_update(home, loc, pub.keys["A"].public)
    old = listing(home)
    evil = build_wheel(tmp_path / "evil", "demo-pkg", "6.6")
    name = inject_into_bin(pub.root, INJECTED, evil.read_bytes(), pub.keys["A"].signer(),
                           pub.signers("A", "B"))
    up = _tuf_client(pub.root, loc, tmp_path / "tuf")
    with pytest.raises(tuf_exc.UnsignedMetadataError, match=rf"{name} was signed by 1/2"):
        up.get_targetinfo(INJECTED)
    assert not (tmp_path / "tuf" / f"{name}.json").exists()  # never persisted as trusted
    # repotool's client reaches files through targets → its shards, never through a bin:
    # the forged bin can make it vouch for nothing (it may take the new snapshot, whose
    # own threshold is met, or refuse it: either way demo-pkg 6.6 does not exist for it)
    r = cli("--home", home, "update")
    assert r.exit_code in (0, 3), r.output
    assert listing(home) == old
    assert_injected_file_refused(home, evil, download_code=1 if r.exit_code == 0 else 3)
    rep = cli("repo", "check", pub.root)
    assert rep.exit_code == 3 and name in rep.stdout, rep.output


@pytest.mark.parametrize("kind", ["http"])
def test_threshold_online_key_and_one_targets_key_cannot_publish(
    home: Path, tmp_path: Path, locations: Any, kind: str
) -> None:
    """Role-separated, `--targets-key T1 --targets-key T2 --targets-threshold 2`: the
    attacker holds the online key (snapshot, timestamp) and T1."""
    ks = {n: make_key(tmp_path / "keys", n) for n in ("root", "t1", "t2", "online")}
    d = tmp_path / "sep"
    r = cli("repo", "init", d, "--name", "sep", "--root-key", ks["root"].public,
            "--targets-key", ks["t1"].public, "--targets-key", ks["t2"].public,
            "--targets-threshold", "2", "--online-key", ks["online"].public)
    assert r.exit_code == 0, r.output
    build_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    assert cli("repo", "add", d, tmp_path / "dist").exit_code == 0
    everyone = [x for k in ks.values() for x in ("--key", str(k.private))]
    assert cli("repo", "sign", d, *everyone).exit_code == 0
    loc = locations.serve(d, kind)
    add_and_update(home, loc, ks["root"].public)
    old = listing(home)
    # T1 alone cannot publish, even with the online key: the publisher refuses first...
    wheel = build_wheel(tmp_path / "dist2", "demo-pkg", "6.6")
    assert cli("repo", "add", d, wheel).exit_code == 0
    r = cli("repo", "sign", d, "--key", ks["t1"].private, "--key", ks["online"].private)
    assert r.exit_code == 3 and ks["t2"].fingerprint in r.stderr, r.output
    # ...and the client refuses what the attacker signs by hand
    from repotool.publish.workspace import Repository

    Repository(d).sign([ks["t1"].signer(), ks["t2"].signer(), ks["online"].signer()],
                       now=datetime.now(UTC))
    short_sign(d, {"targets"}, [ks["t1"].signer()], [ks["online"].signer()])
    assert_refused(home, "targets")
    assert listing(home) == old
    assert_injected_file_refused(home, wheel)
    assert load_md(home / "sources/demo/keyring/root.json").signed.version == 1
    short_sign(d, {"targets"}, [ks["t1"].signer(), ks["t2"].signer()], [ks["online"].signer()])
    assert cli("--home", home, "update").exit_code == 0  # T1 and T2: the release is accepted
    # a bin signed by T1 alone: refused by a TUF client
    evil = build_wheel(tmp_path / "evil", "evil-pkg", "1.0")
    path = "files/evil-pkg/evil_pkg-1.0-py3-none-any.whl"
    name = inject_into_bin(d, path, evil.read_bytes(), ks["t1"].signer(), [ks["online"].signer()])
    assert name == bin_of(d, path)
    up = _tuf_client(d, loc, tmp_path / "tuf")
    with pytest.raises(tuf_exc.UnsignedMetadataError, match=rf"{name} was signed by 1/2"):
        up.get_targetinfo(path)
