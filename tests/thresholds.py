"""m-of-n repositories and below-threshold forgeries, for the threshold tests.

(PYTEST_DONT_REWRITE: plain helpers, imported by test modules.)

Public API::

    MofN                                  root, keys (A, B, C ...), dist; .signers(*names)
    m_of_n_repo(base, m=2, n=3, ...)      a published repository, signed by A and B
                                          (via="cli": `repo init --key ... --threshold m`;
                                           legacy=True: the shape an older repotool made,
                                           m for root only, 1 for every other role)
    short_sign(root, roles, short, full)  re-sign ``roles`` with the ``short`` signers (the
                                          attacker's one key), re-chain snapshot and timestamp
                                          (signed by ``full`` unless listed in ``roles``)
    inject_into_bin(root, path, data, attacker, full)   a new file in its bin, that bin
                                          signed by the attacker alone
    bin_of(root, target_path) -> str      the bin a target path belongs to
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attacks import current_files, current_targets, load_md, resign, write_md
from builders import build_wheel
from conftest import KeyPair, cli, make_key
from tuf.api.metadata import MetaFile, TargetFile

from repotool.format.layout import hashed_name
from repotool.publish.workspace import Repository, RoleKeys

NAMES = "ABCDEFG"


@dataclass
class MofN:
    root: Path
    keys: dict[str, KeyPair]  # "A", "B", "C", ...
    dist: Path

    @property
    def repo(self) -> Repository:
        return Repository(self.root)

    def signers(self, *names: str) -> list[Any]:
        return [self.keys[n].signer() for n in names]

    def fpr(self, name: str) -> str:
        return self.keys[name].fingerprint

    def add_wheel(self, name: str, version: str) -> Path:
        whl = build_wheel(self.dist, name, version)
        self.repo.add([whl], now=datetime.now(UTC))
        return whl


def m_of_n_repo(base: Path, *, m: int = 2, n: int = 3, via: str = "library",
                legacy: bool = False, bin_bits: int = 2,
                projects: dict[str, list[str]] | None = None) -> MofN:
    """A repository whose n keys hold every role, published with the first m keys."""
    keys = {name: make_key(base / "keys", name) for name in NAMES[:n]}
    pks = [k.public_key() for k in keys.values()]
    root = base / "repo"
    if via == "cli":
        assert not legacy, "the CLI no longer makes the legacy shape"
        r = cli("repo", "init", root, "--name", "mofn", "--threshold", str(m),
                *[x for k in keys.values() for x in ("--key", str(k.public))])
        assert r.exit_code == 0, r.output
    else:
        other = 1 if legacy else m
        Repository.init(root, "mofn", RoleKeys(pks, m, pks, other, pks, other),
                        now=datetime.now(UTC), bin_bits=bin_bits)
    pub = MofN(root, keys, base / "dist")
    for project, versions in (projects or {"demo-pkg": ["1.0"]}).items():
        for v in versions:
            pub.add_wheel(project, v)
    pub.repo.sign(pub.signers(*NAMES[:m]), now=datetime.now(UTC))
    return pub


def bin_of(root: Path, target_path: str) -> str:
    delegations = current_targets(root).signed.delegations
    name: str = delegations.succinct_roles.get_role_for_target(target_path)
    return name


def _bin_file(root: Path, name: str) -> Path:
    snap = load_md(current_files(root)["snapshot"])
    return root / "metadata" / f"{snap.signed.meta[name + '.json'].version}.{name}.json"


def short_sign(root: Path, roles: set[str], short: list[Any], full: list[Any]) -> None:
    """Leave ``roles`` (targets, bins-XX, snapshot, timestamp) signed by ``short`` alone;
    snapshot and timestamp are re-chained to the new bytes and signed by ``full`` unless
    they are among ``roles``. Versions stay: the client never saw these."""
    files = current_files(root)
    snap = load_md(files["snapshot"])
    for name in sorted(roles - {"snapshot", "timestamp"}):
        path = files["targets"] if name == "targets" else _bin_file(root, name)
        md = resign(load_md(path), *short)
        write_md(path, md)
        snap.signed.meta[f"{name}.json"] = MetaFile.from_data(
            md.signed.version, path.read_bytes(), ["sha256"])
    write_md(files["snapshot"], resign(snap, *(short if "snapshot" in roles else full)))
    ts = load_md(files["timestamp"])
    ts.signed.snapshot_meta = MetaFile.from_data(
        snap.signed.version, files["snapshot"].read_bytes(), ["sha256"])
    write_md(files["timestamp"], resign(ts, *(short if "timestamp" in roles else full)))


def inject_into_bin(root: Path, path: str, data: bytes, attacker: Any, full: list[Any]) -> str:
    """Add ``path`` (hash-named file on disk) to its bin as a new bin version signed by
    ``attacker`` alone; snapshot and timestamp (new versions) signed by ``full``."""
    name = bin_of(root, path)
    sha = hashlib.sha256(data).hexdigest()
    disk = root / hashed_name(path, sha)
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.write_bytes(data)
    meta = root / "metadata"
    files = current_files(root)
    b = load_md(_bin_file(root, name))
    b.signed.targets[path] = TargetFile(len(data), {"sha256": sha}, path)
    b.signed.version += 1
    bpath = meta / f"{b.signed.version}.{name}.json"
    write_md(bpath, resign(b, attacker))
    snap = load_md(files["snapshot"])
    snap.signed.version += 1
    snap.signed.meta[f"{name}.json"] = MetaFile.from_data(
        b.signed.version, bpath.read_bytes(), ["sha256"])
    spath = meta / f"{snap.signed.version}.snapshot.json"
    write_md(spath, resign(snap, *full))
    ts = load_md(files["timestamp"])
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(
        snap.signed.version, spath.read_bytes(), ["sha256"])
    write_md(meta / "timestamp.json", resign(ts, *full))
    return name
