"""Who signs what, and changing it: ``repo keys`` and ``repo rotate`` (SPEC §3.7).

A rotation publishes root N+1 with a role's keys or threshold changed, signed by the old
and the new root thresholds (one ``sign`` run); clients follow the chain of roots
without re-adding keys.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Key, Metadata, Root

from repotool.errors import UsageError, UserError
from repotool.format.layout import REPO_FIELD
from repotool.publish.check import weak_thresholds
from repotool.publish.tree import RepositoryTree, bins_of, utc_seconds

if TYPE_CHECKING:
    from collections.abc import Sequence

    from securesystemslib.signer import Signer

    from repotool.publish.signing import SignSummary

__all__ = ["ROLE_GROUPS", "describe_keys", "proposed_root", "rotate"]


def describe_keys(repo: RepositoryTree) -> dict[str, Any]:
    """Who signs what: every role's keys, threshold and expiry (``repo keys``), as
    published or, before the first sign, as the pending root has them; and warnings for
    weak thresholds."""
    repo.require()
    pub = repo.published()
    rootmd = pub.root if pub else repo.pending_root()
    assert rootmd is not None
    r = rootmd.signed
    expiries: dict[str, str | None] = {"root": utc_seconds(r.expires)}
    if pub:
        expiries["timestamp"] = utc_seconds(pub.timestamp.signed.expires)
        expiries["snapshot"] = utc_seconds(pub.snapshot.signed.expires)
        expiries["targets"] = utc_seconds(pub.targets.signed.expires)
    roles = {}
    for name, role in r.roles.items():
        roles[name] = {
            "keys": sorted(role.keyids),
            "threshold": role.threshold,
            "expires": expiries.get(name),
        }
    # the bins: as published (a sign re-syncs them to targets), else as they will be
    sr = bins_of(pub.targets.signed) if pub else None
    tr = r.roles["targets"]
    bins = {
        "keys": sorted(sr.keyids if sr else tr.keyids),
        "threshold": sr.threshold if sr else tr.threshold,
        "count": sr.number_of_bins if sr else 2 ** int(repo.config().get("bin_bits") or 1),
    }
    return {
        "name": r.unrecognized_fields.get(REPO_FIELD, {}).get("name"),
        "root_version": r.version,
        "published": pub is not None,
        "pending_root": (repo.work / "root.json").exists(),
        "roles": roles,
        "bins": bins,
        "warnings": weak_thresholds(r, sr, repo.root),
    }


def rotate(
    repo: RepositoryTree,
    role: str | Sequence[str],
    add: list[Key],
    remove: list[str],
    threshold: int | None,
    signers: list[Signer],
    *,
    now: datetime,
    expires: int | None = None,
) -> SignSummary:
    """Publish a new root version with the keys or threshold of ``role`` (one role or
    several: ``["targets", "online"]``) changed, signed by the old and the new root
    thresholds. A new targets threshold binds the bins too: the sign re-signs every bin
    to it, so ``rotate("targets", [], [], 2, ...)`` migrates a repository whose targets
    (and bins) one key could sign.

    Raises:
        UsageError: a role would have a threshold outside 1..its number of keys.
        UserError: unknown role, key not holding / already holding the role, or the
            repository was never signed.
        VerificationError: the signers do not meet a threshold (nothing is written).
    """
    repo.require()
    pub = repo.published()
    if pub is None:
        raise UserError("the repository was never signed", "run 'repotool repo sign' first")
    new = proposed_root(pub.root.signed, role, add, remove, threshold)
    from repotool.publish.signing import sign  # tuf's signing half: only when rotating

    return sign(repo, signers, now=now, expires=expires, new_root=Metadata(new))


ROLE_GROUPS = {"online": ["snapshot", "timestamp"],
               "all": ["root", "targets", "snapshot", "timestamp"]}


def proposed_root(
    old: Root, role: str | Sequence[str], add: list[Key], remove: list[str],
    threshold: int | None,
) -> Root:
    """``old`` with the keys or threshold of ``role`` changed, at the next version (pure).
    ``online`` names snapshot and timestamp, ``all`` every top-level role."""
    roles = [role] if isinstance(role, str) else list(role)
    for r_name in roles:
        if r_name not in ("root", "targets", "snapshot", "timestamp", "online", "all"):
            raise UserError(f"unknown role {r_name!r}", "roles: root, targets, online, all")
    new = copy.deepcopy(old)
    names: list[str] = []
    for r_name in roles:
        for name in ROLE_GROUPS.get(r_name, [r_name]):
            if name not in names:
                names.append(name)
    for name in names:
        r = new.roles[name]
        for fpr in remove:
            if fpr not in r.keyids:
                raise UserError(f"key {fpr} holds no {name} role")
            r.keyids.remove(fpr)
        for k in add:
            if k.keyid in r.keyids:
                raise UserError(f"key {k.keyid} already holds the {name} role")
            new.keys[k.keyid] = k
            r.keyids.append(k.keyid)
        if threshold is not None:
            r.threshold = threshold
        if not r.keyids:
            raise UserError(f"{name} would have 0 keys", "add one with --add PUB")
        if not 1 <= r.threshold <= len(r.keyids):
            raise UsageError(
                f"{name} would have {len(r.keyids)} key(s) and threshold {r.threshold}; "
                f"a threshold is between 1 and the number of keys",
                "pass --threshold N (1..keys) with --remove, or --add more keys",
            )
    used = {k for r in new.roles.values() for k in r.keyids}
    for keyid in list(new.keys):
        if keyid not in used:
            del new.keys[keyid]
    new.version += 1
    return new
