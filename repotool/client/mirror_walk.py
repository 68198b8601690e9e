"""The verification half of ``repotool mirror``: walk a repository's signed TUF metadata.

Pure of any format beyond TUF itself (no shard is parsed), so a mirror keeps working
whatever repotool format version the publisher writes:

* :func:`verify_root_chain` — every root version from 1 up to the one the source's
  keyring trusts, each signed by its own threshold and by the previous root's, the last
  one byte-identical to the keyring's root;
* :func:`verify_delegated` — one delegated targets role, checked as TUF's client does
  (length and sha256 from the snapshot, version as the snapshot says, signed by a
  threshold of the keys its delegator names, not expired);
* :func:`winning_targets` — for every target path, the entry TUF's pre-order,
  terminating-aware delegation search resolves it to (so a role's entry for a path it was
  not delegated is never mirrored).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from repotool.errors import FormatError, VerificationError

__all__ = ["max_delegations", "safe_target_path", "verify_delegated", "verify_root_chain",
           "walk_delegations", "winning_targets"]

max_delegations = 100_000  # delegated roles one repository may have (bins: 2**bit_length)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}")


def safe_target_path(path: str) -> bool:
    """A target path that is safe as a relative path on disk and in a URL: ``/``-separated
    components of letters, digits and ``._+!-``, none starting with a dot."""
    parts = path.split("/")
    return 0 < len(parts) <= 8 and all(_COMPONENT.fullmatch(p) for p in parts)


def _parse(data: bytes, origin: str) -> Any:
    from tuf.api.metadata import Metadata

    try:
        return Metadata.from_bytes(data)
    except Exception as e:
        raise FormatError(f"{origin} is not valid TUF metadata: {str(e)[:200]}") from None


def verify_root_chain(roots: list[bytes], trusted: bytes, origin: str) -> None:
    """``roots[i]`` is version ``i + 1``; the last must be ``trusted`` byte for byte.

    Raises:
        VerificationError: a link is not signed by its own and its predecessor's
            threshold, a version is out of order, or the chain ends elsewhere.
    """
    if not roots or roots[-1] != trusted:
        raise VerificationError(f"{origin}: the root chain does not end in the trusted root")
    prev: Any = None
    for i, data in enumerate(roots, 1):
        where = f"{origin}{i}.root.json"
        md = _parse(data, where)
        if md.signed.type != "root" or md.signed.version != i:
            raise VerificationError(f"{where}: not root version {i}")
        try:
            md.signed.verify_delegate("root", md.signed_bytes, md.signatures)
            if prev is not None:
                prev.verify_delegate("root", md.signed_bytes, md.signatures)
        except Exception as e:
            raise VerificationError(f"{where}: root chain broken: {str(e)[:200]}") from None
        prev = md.signed


def verify_delegated(
    role: str, data: bytes, parent: Any, meta: Any, ref: datetime, origin: str
) -> Any:
    """The verified ``Targets`` of delegated role ``role`` (bytes ``data``), delegated by
    ``parent`` (a verified ``Targets``) and listed in the snapshot as ``meta``.

    Raises:
        VerificationError: length, hash, version, signatures or expiry do not hold.
    """
    try:
        meta.verify_length_and_hashes(data)
    except Exception:
        raise VerificationError(
            f"{origin}: does not match the length and sha256 the snapshot signs") from None
    md = _parse(data, origin)
    if md.signed.type != "targets":
        raise VerificationError(f"{origin}: is {md.signed.type!r} metadata, not targets")
    try:
        parent.verify_delegate(role, md.signed_bytes, md.signatures)
    except Exception as e:
        raise VerificationError(f"{origin}: signatures refused: {str(e)[:200]}") from None
    if md.signed.version != meta.version:
        raise VerificationError(
            f"{origin}: version {md.signed.version}, the snapshot says {meta.version}")
    if md.signed.is_expired(ref):
        raise VerificationError(
            f"{origin}: expired on {md.signed.expires:%Y-%m-%d %H:%M:%S} UTC",
            "ask the publisher to re-sign")
    return md.signed


def _children(targets: Any) -> list[str]:
    d = targets.delegations
    if d is None:
        return []
    if d.roles is not None:
        return list(d.roles)
    if d.succinct_roles is not None:
        return list(d.succinct_roles.get_roles())
    return []


def walk_delegations(
    top: Any, snapshot: Any, load: Callable[[str, Any, Any], Any]
) -> dict[str, Any]:
    """Every delegated role reachable from ``top`` (the verified top-level ``Targets``),
    verified by ``load(role, parent, snapshot_meta)``, breadth first.

    Raises:
        VerificationError: a delegated role the snapshot does not list, too many roles.
    """
    verified: dict[str, Any] = {"targets": top}
    queue = [("targets", top)]
    while queue:
        parent_name, parent = queue.pop(0)
        for child in _children(parent):
            if child in verified:
                continue
            if len(verified) > max_delegations:
                raise VerificationError(f"more than {max_delegations} delegated roles")
            meta = snapshot.meta.get(f"{child}.json")
            if meta is None:
                raise VerificationError(
                    f"role {child!r} (delegated by {parent_name}) is not in the snapshot")
            verified[child] = load(child, parent, meta)
            queue.append((child, verified[child]))
    return verified


def winning_targets(roles: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Target path → (role, ``TargetFile``) as TUF's delegation search resolves it: the
    top-level role first, then the roles delegated for that path in order, depth first,
    a terminating delegation ending the search.

    Raises:
        FormatError: a target path or hash that is unsafe as a file name.
    """
    candidates: set[str] = set()
    for name, t in roles.items():
        for path, tf in t.targets.items():
            sha = tf.hashes.get("sha256")
            if not (safe_target_path(path) and isinstance(sha, str) and _HEX64.fullmatch(sha)):
                raise FormatError(f"role {name!r} lists a malformed target {path!r}")
            candidates.add(path)
    out: dict[str, tuple[str, Any]] = {}
    for path in sorted(candidates):
        found = _search(roles, path)
        if found is not None:
            out[path] = found
    return out


def _search(roles: dict[str, Any], path: str) -> tuple[str, Any] | None:
    stack: list[str] = ["targets"]
    visited: set[str] = set()
    while stack:
        name = stack.pop()
        if name in visited or name not in roles:
            continue
        visited.add(name)
        t = roles[name]
        if path in t.targets:
            return name, t.targets[path]
        if t.delegations is None:
            continue
        children: list[str] = []
        for child, terminating in t.delegations.get_roles_for_target(path):
            children.append(child)
            if terminating:
                stack.clear()  # nothing after a terminating delegation is searched
                break
        stack.extend(reversed(children))
    return None
