"""Root changes signed on several machines: propose, sign, show, apply (SPEC §6.1).

A *proposal* is one JSON file holding everything a root key holder needs and nothing
secret: the root it changes (``base``, as published) and the proposed next root with
the signatures gathered so far. ``propose`` writes it and changes nothing in the
repository; ``sign_proposal`` adds signatures and needs only the file and a key;
``apply`` publishes it, in one ``sign`` run, only once the old *and* the new root
thresholds are met, and only if the repository's root is still the proposal's base —
until then clients see nothing of it.

File format (``"repotool_proposal": 1``)::

    {"repotool_proposal": 1, "repository": NAME, "created": TIME,
     "base": ROOT_METADATA,       # the published root the change is made against
     "root": ROOT_METADATA}       # the proposed root, version base+1, with signatures

A repository that was never signed proposes its first root (``base`` is null, the root
is version 1 as ``repo init`` wrote it): an offline m-of-n root is signed for the first
time the same way, its holders never in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Key, Metadata, Root

from repotool.errors import UserError, VerificationError
from repotool.format.layout import REPO_FIELD
from repotool.publish.rotation import proposed_root
from repotool.publish.tree import DEFAULT_EXPIRY, Published, RepositoryTree, utc_seconds
from repotool.storage import atomic_write

if TYPE_CHECKING:
    from collections.abc import Sequence

    from securesystemslib.signer import Signer

    from repotool.publish.signing import SignSummary

__all__ = ["Proposal", "apply", "candidate_keys", "load", "propose", "sign_proposal", "status"]

FORMAT = 1
max_proposal_bytes = 1024 * 1024


@dataclass
class Proposal:
    path: Path
    repository: str | None
    created: str
    base: Metadata[Root] | None  # None: the first root of a never-signed repository
    root: Metadata[Root]

    @property
    def base_root(self) -> Root | None:
        return self.base.signed if self.base is not None else None

    def to_bytes(self) -> bytes:
        doc = {"repotool_proposal": FORMAT, "repository": self.repository,
               "created": self.created,
               "base": self.base.to_dict() if self.base is not None else None,
               "root": self.root.to_dict()}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    def save(self) -> None:
        atomic_write(self.path, self.to_bytes())

    def root_keyids(self) -> set[str]:
        old = self.base_root.roles["root"].keyids if self.base_root else []
        return set(old) | set(self.root.signed.roles["root"].keyids)

    def all_keys(self) -> dict[str, Key]:
        return {**(self.base_root.keys if self.base_root else {}), **self.root.signed.keys}

    def root_keys(self) -> list[Key]:
        keys = self.all_keys()
        return [keys[k] for k in sorted(self.root_keyids())]


def _name(root: Root) -> str | None:
    name = root.unrecognized_fields.get(REPO_FIELD, {}).get("name")
    return name if isinstance(name, str) else None


def load(path: Path) -> Proposal:
    """Read a proposal file; any malformed content is a one-line ``UserError``."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_proposal_bytes + 1)
    except FileNotFoundError:
        raise UserError(f"proposal {str(path)!r} not found") from None
    except OSError as e:
        raise UserError(f"cannot read proposal {str(path)!r}: {e.strerror}") from None
    bad = UserError(f"{str(path)!r} is not a repotool proposal",
                    "make one with 'repotool repo rotate DIR --role ROLE ... --propose FILE'")
    if len(data) > max_proposal_bytes:
        raise bad
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("repotool_proposal") != FORMAT:
            raise bad
        base: Metadata[Any] | None = (
            None if doc["base"] is None else Metadata.from_dict(doc["base"]))
        root: Metadata[Any] = Metadata.from_dict(doc["root"])
    except UserError:
        raise
    except Exception:  # json, KeyError, TypeError, ValueError from python-tuf's parser
        raise bad from None
    if (base is not None and not isinstance(base.signed, Root)) or (
            not isinstance(root.signed, Root)):
        raise bad
    base_version = base.signed.version if base is not None else 0
    if root.signed.version != base_version + 1:
        raise UserError(f"{str(path)!r}: proposes root version {root.signed.version} on top "
                        f"of version {base_version}; a proposal is the very next one")
    return Proposal(path, doc.get("repository"), str(doc.get("created", "")), base, root)


def propose(
    repo: RepositoryTree, path: Path, role: str | Sequence[str], add: list[Key],
    remove: list[str], threshold: int | None, *, now: datetime, expires: int | None = None,
) -> Proposal:
    """Write the proposed next root to ``path`` (a never-signed repository: its first
    root, with no ``role`` changes); nothing in ``repo`` changes."""
    repo.require()
    pub = repo.published()
    if path.exists():
        raise UserError(f"{str(path)!r} already exists", "choose another proposal file")
    base: Metadata[Root] | None = None
    if pub is None:
        pending = repo.pending_root()
        if pending is None or role or add or remove or threshold is not None:
            raise UserError("the repository was never signed: propose its first root as "
                            "'repo init' made it (no --role, --add, --remove, --threshold)",
                            "'repotool repo rotate DIR --propose FILE'")
        new = pending.signed
        new.version = 1
    else:
        if not role:
            raise UserError("give --role ROLE (root, targets, online or all)")
        new = proposed_root(pub.root.signed, role, add, remove, threshold)
        base = Metadata.from_dict(pub.root.to_dict())
    now = now.astimezone(UTC).replace(microsecond=0)
    new.expires = now + timedelta(seconds=expires or DEFAULT_EXPIRY["root"])
    p = Proposal(path, _name(new), utc_seconds(now), base, Metadata(new))
    p.save()
    return p


def candidate_keys(repo: RepositoryTree) -> list[Key]:
    """Every key a signer of ``repo`` may stand for: the published and pending roots'
    keys and the bins' (for matching a signer URI to its public key)."""
    out: dict[str, Key] = {}
    pub = repo.published() if (repo.meta / "timestamp.json").exists() else None
    if pub is not None:
        out.update(pub.root.signed.keys)
        delegations = pub.targets.signed.delegations
        if delegations is not None and delegations.keys:
            out.update(delegations.keys)
    pending = repo.pending_root() if repo.work.is_dir() else None
    if pending is not None:
        out.update(pending.signed.keys)
    return [out[k] for k in sorted(out)]


def _verified_signers(p: Proposal) -> tuple[list[str], list[str]]:
    """(keyids whose signature on the proposed root verifies, keyids whose does not)."""
    keys = p.all_keys()
    good, bad = [], []
    payload = p.root.signed_bytes
    for keyid, sig in sorted(p.root.signatures.items()):
        key = keys.get(keyid)
        try:
            if key is None:
                raise ValueError
            key.verify_signature(sig, payload)
            good.append(keyid)
        except Exception:
            bad.append(keyid)
    return good, bad


def _role_changes(old: Root, new: Root) -> list[dict[str, Any]]:
    out = []
    for name in ("root", "targets", "snapshot", "timestamp"):
        o, n = old.roles[name], new.roles[name]
        added = sorted(set(n.keyids) - set(o.keyids))
        removed = sorted(set(o.keyids) - set(n.keyids))
        if added or removed or o.threshold != n.threshold:
            out.append({"role": name, "add": added, "remove": removed,
                        "threshold": [o.threshold, n.threshold]})
    return out


def status(p: Proposal, *, now: datetime | None = None) -> dict[str, Any]:
    """What the proposal changes, who signed, what is missing (``proposal show``)."""
    good, bad = _verified_signers(p)
    res = p.root.signed.get_root_verification_result(
        p.base_root, p.root.signed_bytes, p.root.signatures)

    def part(r: Any, root: Root) -> dict[str, Any]:
        return {"threshold": r.threshold, "signed": sorted(r.signed),
                "missing": max(0, r.threshold - len(r.signed)),
                "can_sign": sorted(set(root.roles["root"].keyids) - set(r.signed))}

    expired = now is not None and p.root.signed.expires <= now
    return {
        "file": str(p.path),
        "repository": p.repository,
        "created": p.created,
        "base_version": p.base_root.version if p.base_root else 0,
        "version": p.root.signed.version,
        "expires": utc_seconds(p.root.signed.expires),
        "expired": expired,
        "changes": _role_changes(p.base_root, p.root.signed) if p.base_root else [],
        "roles": {name: {"keys": sorted(r.keyids), "threshold": r.threshold}
                  for name, r in p.root.signed.roles.items()},
        "signed_by": good,
        "invalid_signatures": bad,
        "old": part(res.first, p.base_root or p.root.signed),
        "new": part(res.second, p.root.signed),
        "complete": res.verified and not expired,
    }


def missing_line(st: dict[str, Any]) -> str:
    """One line naming the signatures still missing (empty when none is)."""
    parts = []
    pairs = [("old", f"old root v{st['base_version']}"), ("new", f"new root v{st['version']}")]
    for which, label in pairs if st["base_version"] else [("new", "first root v1")]:
        s = st[which]
        if s["missing"]:
            parts.append(f"{label} needs {s['missing']} more of {s['threshold']} "
                         f"(by any of {', '.join(s['can_sign'])})")
    return "; ".join(parts)


def sign_proposal(p: Proposal, signers: list[Signer]) -> list[str]:
    """Add the signatures of ``signers`` that hold the old or the new root role; returns
    notes for the ones ignored. Writes the file only if a signature was added."""
    allowed = p.root_keyids()
    good, _bad = _verified_signers(p)
    notes: list[str] = []
    added = False
    payload = p.root.signed_bytes
    for s in signers:
        keyid = s.public_key.keyid
        if keyid not in allowed:
            notes.append(f"key {keyid} holds the root role in neither the old nor the new "
                         "root: ignored")
            continue
        if keyid in good:
            notes.append(f"key {keyid} has already signed")
            continue
        sig = s.sign(payload)
        p.root.signatures[sig.keyid] = sig
        good.append(keyid)
        added = True
    if added:
        p.save()
    return notes


def _check_applies(repo: RepositoryTree, p: Proposal, pub: Published | None,
                   now: datetime) -> None:
    hint = "make a new proposal against the current root: 'repotool repo rotate DIR ... --propose'"
    if p.base is None:  # the first root: only as 'repo init' made it, only if unpublished
        pending = repo.pending_root()
        if pub is not None:
            raise VerificationError("the proposal is a first root, and the repository was "
                                    "signed already; nothing was written", hint)
        mine = pending.signed.to_dict() if pending is not None else None
        theirs = p.root.signed.to_dict()
        if mine is not None:
            mine["expires"], mine["version"] = theirs["expires"], theirs["version"]
        if mine != theirs:
            raise VerificationError("the proposal's first root is not the one 'repo init' "
                                    "wrote in this repository; nothing was written", hint)
        if p.root.signed.expires <= now:
            raise VerificationError(f"the proposed root expired at "
                                    f"{utc_seconds(p.root.signed.expires)}; nothing was "
                                    "written", hint)
        return
    if pub is None:
        raise UserError("the repository was never signed", "run 'repotool repo sign' first")
    current = pub.root.signed
    if _name(current) != _name(p.base.signed):
        raise VerificationError(
            f"the proposal is for repository {_name(p.base.signed)!r}, {str(repo.root)!r} "
            f"holds {_name(current)!r}; nothing was written")
    if current.version != p.base.signed.version or (
            current.to_dict() != p.base.signed.to_dict()):
        raise VerificationError(
            f"the proposal was made against root version {p.base.signed.version}, the "
            f"repository's root is version {current.version}; nothing was written", hint)
    if p.root.signed.expires <= now:
        raise VerificationError(
            f"the proposed root expired at {utc_seconds(p.root.signed.expires)}; nothing was "
            "written", hint)


def _base_bytes(p: Proposal) -> bytes | None:
    return p.base.signed_bytes if p.base is not None else None


def apply(
    repo: RepositoryTree, proposals: list[Proposal], signers: list[Signer], *, now: datetime,
    expires: int | None = None,
) -> SignSummary:
    """Publish the proposed root (signatures of several copies of one proposal merged),
    with targets, snapshot and timestamp re-signed by ``signers``; exit-3 errors name
    what is missing, and nothing is written unless every threshold is met."""
    from repotool.publish.signing import sign

    first = proposals[0]
    for other in proposals[1:]:
        if (other.root.signed_bytes != first.root.signed_bytes
                or _base_bytes(other) != _base_bytes(first)):
            raise UserError(f"{str(other.path)!r} proposes another root than "
                            f"{str(first.path)!r}", "give copies of one proposal only")
        for keyid, sig in other.root.signatures.items():
            first.root.signatures.setdefault(keyid, sig)
    # signatures that do not verify are dropped here: the sign run re-checks the rest
    _good, bad = _verified_signers(first)
    for keyid in bad:
        del first.root.signatures[keyid]
    root = Metadata.from_dict(first.root.to_dict())
    return sign(repo, signers, now=now, expires=expires, new_root=root, presigned=True,
                before=lambda pub: _check_applies(repo, first, pub, now))
