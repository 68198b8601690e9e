"""Delegation graphs through repotool's updater factory (``trust.updater.make_updater``), the one
that ``update``, ``repo check`` and the conformance adapter share.

The diamond: two delegators authorize the same role name for disjoint paths with
different keys. The role's metadata is signed only by the key delegator A trusts. A
lookup through A may use it; a later lookup through B, in the same updater, must verify
it again against B's keys and refuse — a cached role inherits no authority from an
earlier search path (tuf-conformance ``test_cached_role_is_verified_against_current_delegator``;
python-tuf fixed this in 7.0.1, which pyproject.toml therefore requires).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)

from repotool.transport.fetcher import Fetcher
from repotool.transport.limits import Limits
from repotool.trust.updater import make_updater


def _signer() -> CryptoSigner:
    return CryptoSigner(Ed25519PrivateKey.generate())


def _diamond(repo: Path) -> bytes:
    """Write the diamond repository (plain names, no consistent snapshot); return root."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    top = {r: _signer() for r in ("root", "timestamp", "snapshot", "targets")}
    parent = {p: _signer() for p in ("parent-a", "parent-b")}
    release_key = {p: _signer() for p in ("parent-a", "parent-b")}  # one per delegator
    root = Root(expires=expires, consistent_snapshot=False)
    for role, s in top.items():
        root.add_key(s.public_key, role)
    targets = Targets(expires=expires)
    targets.delegations = Delegations(
        keys={s.public_key.keyid: s.public_key for s in parent.values()},
        roles={p: DelegatedRole(p, [parent[p].public_key.keyid], 1, False, [path])
               for p, path in (("parent-a", "team-a/*"), ("parent-b", "team-b/*"))},
    )
    mds: dict[str, Metadata[Any]] = {"root": Metadata(root), "targets": Metadata(targets)}
    for p, path in (("parent-a", "team-a/*"), ("parent-b", "team-b/*")):
        t = Targets(expires=expires)
        t.delegations = Delegations(
            keys={release_key[p].public_key.keyid: release_key[p].public_key},
            roles={"release": DelegatedRole("release", [release_key[p].public_key.keyid], 1,
                                            False, [path])},
        )
        mds[p] = Metadata(t)
    release = Targets(expires=expires)
    artifacts = {"team-a/file.txt": b"trusted A", "team-b/file.txt": b"malicious B"}
    for path, data in artifacts.items():
        release.targets[path] = TargetFile.from_data(path, data)
        (repo / "targets" / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / "targets" / path).write_bytes(data)
    mds["release"] = Metadata(release)
    signers = {**top, **parent, "release": release_key["parent-a"]}  # A's key only
    snapshot = Snapshot(expires=expires)
    for name in ("targets", "parent-a", "parent-b", "release"):
        snapshot.meta[f"{name}.json"] = MetaFile(1)
    mds["snapshot"] = Metadata(snapshot)
    mds["timestamp"] = Metadata(Timestamp(expires=expires, snapshot_meta=MetaFile(1)))
    (repo / "metadata").mkdir(parents=True)
    for name, md in mds.items():
        md.sign(signers[name])
        data = md.to_bytes()
        (repo / "metadata" / (f"1.{name}.json" if name == "root" else f"{name}.json")
         ).write_bytes(data)
    return (repo / "metadata" / "1.root.json").read_bytes()


def test_mix_and_match_cached_delegated_role_not_reused_under_another_delegator(
        tmp_path: Path) -> None:
    root = _diamond(tmp_path / "repo")
    meta = tmp_path / "client"
    meta.mkdir()
    base = (tmp_path / "repo").as_uri() + "/"
    up = make_updater(meta, base + "metadata/", base + "targets/", root, Fetcher(Limits()))
    up.refresh()
    good = up.get_targetinfo("team-a/file.txt")
    assert good is not None and good.length == len(b"trusted A")
    # the same role, reached through parent-b whose key did not sign it: refused, never
    # answered from the copy parent-a vouched for
    with pytest.raises(tuf_exc.UnsignedMetadataError):
        up.get_targetinfo("team-b/file.txt")
