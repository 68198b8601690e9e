"""Developer delegations as the format states them (pure: no I/O; SPEC §6.2).

The top-level ``targets`` role carries ``x-repotool-delegations`` (docs/format.md,
"Developer delegations"): the keys, and per delegated role its name, the project
pattern, key ids, threshold and paths. A role's name and paths follow from its pattern,
so a reader recomputes and compares them rather than trusting what is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from typing import Any

from tuf.api.metadata import DelegatedRole, Delegations, Key, Targets

from repotool.errors import FormatError

__all__ = [
    "FIELD",
    "PROJECT_INDEX_DIR",
    "delegator",
    "matching_role",
    "normalize_pattern",
    "parse",
    "paths_for",
    "project_index_path",
    "role_name",
]

FIELD = "x-repotool-delegations"
PROJECT_INDEX_DIR = "index/projects"
_PATTERN = re.compile(r"[a-z0-9*?\[\]!-]{1,200}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def normalize_pattern(text: str) -> str | None:
    """A project glob normalized like a project name (PEP 503), keeping glob syntax;
    None when it is not one (the publisher's side; the client has ``--only``'s own)."""
    p = re.sub(r"[-_.]+", "-", text.strip().lower())
    return p if _PATTERN.fullmatch(p) else None


def role_name(pattern: str) -> str:
    """``dev-`` and the first 8 hex digits of the pattern's sha256: safe in file names."""
    return "dev-" + hashlib.sha256(pattern.encode()).hexdigest()[:8]


def paths_for(pattern: str) -> list[str]:
    """What a delegated role may vouch for: the projects' distributions, simple pages
    and project indexes."""
    return [f"files/{pattern}/*", f"simple/{pattern}/*", f"{PROJECT_INDEX_DIR}/{pattern}.json"]


def project_index_path(project: str) -> str:
    return f"{PROJECT_INDEX_DIR}/{project}.json"


def matching_role(doc: dict[str, Any], project: str) -> dict[str, Any] | None:
    """The delegated role whose pattern matches ``project`` (patterns are disjoint)."""
    for r in doc["roles"]:
        if fnmatch.fnmatchcase(project, r["pattern"]):
            found: dict[str, Any] = r
            return found
    return None


def delegator(doc: dict[str, Any]) -> Targets:
    """A targets object holding ``doc``'s delegations as TUF ones, to sign and verify
    a delegated role with (``verify_delegate``, ``get_verification_result``)."""
    t = Targets()
    t.delegations = Delegations(
        keys={k: Key.from_dict(k, dict(v)) for k, v in doc["keys"].items()},
        roles={r["name"]: DelegatedRole(r["name"], list(r["keyids"]), r["threshold"], True,
                                        list(r["paths"])) for r in doc["roles"]},
    )
    return t


def parse(targets: Targets) -> dict[str, Any]:
    """The delegations of a verified top-level ``targets``, validated strictly.

    Raises:
        FormatError: the field is malformed (refused: exit 3).
    """
    doc = targets.unrecognized_fields.get(FIELD)
    if doc is None:
        return {"keys": {}, "roles": []}
    try:
        if not isinstance(doc, dict) or set(doc) != {"keys", "roles"}:
            raise ValueError("expected exactly 'keys' and 'roles'")
        keys, roles = doc["keys"], doc["roles"]
        if not isinstance(keys, dict) or not isinstance(roles, list):
            raise ValueError("'keys' must be an object and 'roles' a list")
        for kid, kd in keys.items():
            if not (isinstance(kid, str) and _HEX64.fullmatch(kid) and isinstance(kd, dict)):
                raise ValueError(f"bad key {kid!r}")
            if Key.from_dict(kid, dict(kd)).keyid != kid:
                raise ValueError(f"key {kid} does not match its id")
        for r in roles:
            if not isinstance(r, dict) or set(r) != {"name", "pattern", "keyids", "threshold",
                                                    "terminating", "paths"}:
                raise ValueError("a role has missing or unknown fields")
            p = r["pattern"]
            if not (isinstance(p, str) and _PATTERN.fullmatch(p)):
                raise ValueError(f"bad pattern {p!r}")
            if r["name"] != role_name(p) or r["paths"] != paths_for(p) or r["terminating"] \
                    is not True:
                raise ValueError(f"role of {p!r} does not have its name, paths or terminating")
            ids, t = r["keyids"], r["threshold"]
            if not (isinstance(ids, list) and ids and all(i in keys for i in ids)
                    and len(set(ids)) == len(ids)):
                raise ValueError(f"role of {p!r} names keys not listed")
            if not (type(t) is int and 1 <= t <= len(ids)):
                raise ValueError(f"role of {p!r} has a bad threshold")
        delegator(doc)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise FormatError(f"targets: malformed {FIELD}: {e}") from None
    return doc
