"""What a source's keyring trusted when (SPEC §6.3): the root history and its notices.

``HOME/sources/NAME/keyring/history.json`` lists every root version the keyring accepted,
oldest first::

    {"entries": [{"version": 1, "at": "2026-01-01T00:00:00Z", "how": "added by key …",
                  "sha256": "…", "roles": {"root": {"keys": [FPR, …], "threshold": 1}, …}},
                 …]}

It is append-only: entries are added, never changed, and it is written (atomically)
before the keyring's ``root.json`` in the same commit, so every trusted root has its
entry. An entry for a version above the keyring's root (left by a commit killed between
the two writes) is not shown and is replaced by the next commit that reaches that version.

Also here: the one-line announcement of a root key change on ``update``, the rollback
marks that a rotation of the timestamp or snapshot keys resets (TUF client workflow
§5.3.10, fast-forward attack recovery) and the message of a broken root chain.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repotool.errors import VerificationError
from repotool.storage import atomic_write

__all__ = [
    "HISTORY_FILE",
    "add_events",
    "append",
    "broken_chain",
    "change_notice",
    "entry",
    "marks_after_rotation",
    "read",
    "roles_of",
]

HISTORY_FILE = "history.json"
_ROLES = ("root", "targets", "snapshot", "timestamp")


def roles_of(root: Any) -> dict[str, dict[str, Any]]:
    """Key fingerprints and threshold of every top-level role of a ``Root``."""
    return {r: {"keys": sorted(root.roles[r].keyids), "threshold": root.roles[r].threshold}
            for r in _ROLES if r in root.roles}


def entry(root: Any, root_bytes: bytes, how: str, at: datetime) -> dict[str, Any]:
    return {
        "version": int(root.version),
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "how": how,
        "sha256": hashlib.sha256(root_bytes).hexdigest(),
        "roles": roles_of(root),
    }


def _load(keyring: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads((keyring / HISTORY_FILE).read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError):
        return []  # unreadable: shown as empty, rewritten with what follows
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and type(e.get("version")) is int]


def append(keyring: Path, new: list[dict[str, Any]]) -> None:
    """Add ``new`` (in version order) to the history; entries at or above the first new
    version, which no committed root matches, are replaced."""
    if not new:
        return
    first = min(e["version"] for e in new)
    kept = [e for e in _load(keyring) if e["version"] < first]
    doc = {"entries": [*kept, *new]}
    atomic_write(keyring / HISTORY_FILE, json.dumps(doc, indent=1, sort_keys=True).encode())


def add_events(keyring: Path, root_version: int, notices: list[str], at: datetime) -> None:
    """Record delegation changes (``kind: "delegation"``) under the root version they
    were seen with; appended, never replacing an entry."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = [{"version": root_version, "kind": "delegation", "at": stamp, "how": n}
           for n in notices]
    doc = {"entries": [*_load(keyring), *new]}
    atomic_write(keyring / HISTORY_FILE, json.dumps(doc, indent=1, sort_keys=True).encode())


def read(keyring: Path, trusted_version: int | None = None) -> list[dict[str, Any]]:
    """The history as committed: entries up to the keyring's trusted root version."""
    entries = _load(keyring)
    if trusted_version is None:
        return entries
    return [e for e in entries if e["version"] <= trusted_version]


def change_notice(source: str, old: Any, new: Any) -> str | None:
    """``root keys of NAME changed: + FPR, - FPR, threshold 2→3`` (None if no key or
    threshold of the root role changed); other roles' changes follow after ``;``."""
    parts: list[str] = []
    o, n = roles_of(old), roles_of(new)
    for role in _ROLES:
        if role not in o or role not in n or o[role] == n[role]:
            continue
        bits = [f"+ {k}" for k in n[role]["keys"] if k not in o[role]["keys"]]
        bits += [f"- {k}" for k in o[role]["keys"] if k not in n[role]["keys"]]
        if o[role]["threshold"] != n[role]["threshold"]:
            bits.append(f"threshold {o[role]['threshold']}\u2192{n[role]['threshold']}")
        parts.append(f"{role} keys of {source} changed: " + ", ".join(bits))
    if not parts:
        return None
    return ("; ".join(parts) + f" (root version {old.version}\u2192{new.version}; see "
            f"'repotool source show {source} --history')")


def marks_after_rotation(old: Any, new: Any, marks: dict[str, int]) -> dict[str, int]:
    """The rollback marks to judge ``new``'s metadata by: TUF §5.3.10 — when the timestamp
    or snapshot keys were rotated, the marks of timestamp and snapshot are dropped, so a
    repository recovers from a fast-forward attack made with the old online key."""
    if old is None or old.version == new.version:
        return marks
    o, n = roles_of(old), roles_of(new)
    out = dict(marks)
    if o.get("timestamp") != n.get("timestamp"):
        out.pop("timestamp", None)
        out.pop("snapshot", None)
    if o.get("snapshot") != n.get("snapshot"):
        out.pop("snapshot", None)
    return out


def broken_chain(source: str, url: str | None, reason: str) -> VerificationError:
    """A root the client cannot follow: never silently re-trusted (exit 3)."""
    where = f" {url}" if url else ""
    return VerificationError(
        f"{source}: root chain broken:{where} is not a root the trusted one hands over to "
        f"({reason}); the keyring keeps its root",
        f"if the publisher re-keyed the repository, check the new root key with them and run "
        f"'repotool source rekey {source} --key NEW.pub' (or --fingerprint FPR)",
    )
