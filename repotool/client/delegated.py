"""The client's side of developer keys (SPEC §6.2): delegated projects in ``update``.

After python-tuf verified root, timestamp, snapshot and targets, for every delegation
the verified targets role lists (``repotool.format.delegations.parse``):

1. the role's metadata ``V.NAME.json`` is fetched (V, length and sha256 from the
   verified snapshot, bounded by that length), checked against them, signed by a
   threshold of the delegation's keys (``verify_delegate``), of version V, not lower
   than the version accepted before, and not expired;
2. every target it lists must lie within the delegation's paths (a developer key
   cannot vouch outside its pattern);
3. each project index it lists (``index/projects/P.json``) is fetched, bounded by its
   signed length, and must be a shard document holding exactly project P, whose every
   file is a target of the same role with the same sha256 and size.

The caller then refuses a top-level shard that lists a delegated project: only the
delegated role vouches for it, never the repository's own targets or online keys.
Delegated projects live in the generation as pseudo-shards ``~P`` (``SourceView``).
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from repotool.errors import FormatError, VerificationError
from repotool.format.delegations import (
    PROJECT_INDEX_DIR,
    delegator,
    matching_role,
    parse,
)

__all__ = ["check_project_doc", "check_shard_projects", "delegated_docs",
           "delegation_notices", "pseudo_shard", "real_shard"]


def pseudo_shard(project: str) -> str:
    return "~" + project


def real_shard(sid: str) -> str:
    """The shard id a (pseudo-)shard's document carries."""
    from repotool.format.index import shard_of

    return shard_of(sid[1:]) if sid.startswith("~") else sid


def delegated_docs(
    source: str, url: str, meta_dir: Path, old_meta: Path | None, trusted: Any,
    fetcher: Any, ref: datetime, marks: dict[str, int],
) -> tuple[dict[str, Any], dict[str, int], list[tuple[str, str, Any]], dict[str, Any]]:
    """Verify every delegated role (steps 1–2); returns the delegations, the roles'
    versions, per delegated project ``(pseudo-shard id, path, TargetFile)`` of its
    project index (for the caller to fetch and check with :func:`check_project_doc`),
    and the verified roles by project.

    Raises:
        VerificationError: a role or its targets are not what the delegation allows.
        FormatError: malformed delegations or role metadata.
    """
    from tuf.api.metadata import Metadata, Targets

    doc = parse(trusted.targets)
    if not doc["roles"]:
        return doc, {}, [], {}
    dl = delegator(doc)
    snapshot_meta = trusted["snapshot"].meta
    versions: dict[str, int] = {}
    items: list[tuple[str, str, Any]] = []
    by_project: dict[str, Any] = {}
    # the keyring records the roles' expiry: verified state is frozen once one passed
    expires: dict[str, str] = trusted.extra_expires
    cap = fetcher.limits.metadata_max_length
    for r in doc["roles"]:
        name = r["name"]
        mf = snapshot_meta.get(f"{name}.json")
        if mf is None:
            continue  # delegated, nothing published by the developer yet
        data = None
        if old_meta is not None:
            try:
                cached = (old_meta / f"{name}.json").read_bytes()
                mf.verify_length_and_hashes(cached)
                data = cached
            except Exception:
                data = None
        if data is None:
            role_url = f"{url}metadata/{mf.version}.{name}.json"
            from tuf.api.exceptions import DownloadLengthMismatchError, LengthOrHashMismatchError

            from repotool.transport.fetcher import translate_download_error

            try:
                data = fetcher.download_bytes(role_url, mf.length or cap)
                mf.verify_length_and_hashes(data)
            except (LengthOrHashMismatchError, DownloadLengthMismatchError) as e:
                raise VerificationError(
                    f"{source}: delegated role {role_url} does not match the snapshot "
                    f"(mix-and-match or tampering): {str(e)[:200]}") from None
            except Exception as e:
                raise translate_download_error(e, role_url) from None
        try:
            md = Metadata.from_bytes(data)
        except Exception as e:
            raise FormatError(f"{source}: delegated role {name} is malformed: "
                              f"{str(e)[:200]}") from None
        if not isinstance(md.signed, Targets):
            raise FormatError(f"{source}: delegated role {name} is not targets metadata")
        try:
            dl.verify_delegate(name, md.signed_bytes, md.signatures)
        except Exception:
            raise VerificationError(
                f"{source}: delegated role {name} (projects {r['pattern']}) is not signed by "
                f"{r['threshold']} of its developer keys",
                "only the developer keys the repository delegated to may vouch for these "
                "projects") from None
        role = md.signed
        if role.version != mf.version:
            raise VerificationError(f"{source}: delegated role {name} is version "
                                    f"{role.version}, the snapshot says {mf.version}")
        if role.version < marks.get(name, 0):
            raise VerificationError(f"{source}: rollback: {name} version {role.version} is "
                                    f"older than version {marks[name]} accepted before")
        if role.is_expired(ref):
            raise VerificationError(
                f"{source}: delegated role {name} expired on "
                f"{role.expires:%Y-%m-%d %H:%M:%S} UTC", "ask the developer to re-sign")
        delegated = dl.delegations.roles[name]
        for path, tf in role.targets.items():
            if not delegated.is_delegated_path(path):
                raise VerificationError(
                    f"{source}: delegated role {name} vouches for {path}, outside its "
                    f"projects {r['pattern']}")
            if path.startswith(PROJECT_INDEX_DIR + "/"):
                project = path[len(PROJECT_INDEX_DIR) + 1:-len(".json")]
                if not _NAME.fullmatch(project):
                    raise FormatError(f"{source}: delegated role {name} lists a malformed "
                                      f"project index {path!r}")
                owner = matching_role(doc, project)
                if owner is None or owner["name"] != name:  # overlapping delegations
                    raise VerificationError(
                        f"{source}: delegated role {name} lists project {project}, which "
                        "another delegation holds")
                items.append((pseudo_shard(project), path, tf))
                by_project[project] = role
        (meta_dir / f"{name}.json").write_bytes(data)
        versions[name] = role.version
        expires[name] = role.expires.isoformat()
    return doc, versions, items, by_project


_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,198}[a-z0-9])?")


def check_project_doc(source: str, sid: str, data: bytes, role: Any) -> None:
    """Step 3: the project index ``data`` of pseudo-shard ``sid`` holds exactly that
    project, and each file is the role's target with the same sha256 and size."""
    from repotool.format.index import Shard
    from repotool.format.layout import dist_target_path

    project = sid[1:]
    sh = Shard.from_bytes(data, real_shard(sid))
    if set(sh.projects) != {project}:
        raise VerificationError(f"{source}: the index of delegated project {project} lists "
                                f"other projects")
    for f in sh.projects[project].files:
        tf = role.targets.get(dist_target_path(project, f.filename))
        if tf is None or tf.length != f.size or not hmac.compare_digest(
                str(tf.hashes.get("sha256")), f.sha256):
            raise VerificationError(
                f"{source}: {f.filename} of delegated project {project} is not vouched for "
                "by its developer role")


def check_shard_projects(source: str, doc: dict[str, Any],
                         projects: dict[str, dict[str, Any]]) -> None:
    """Refuse a delegated project that a top-level shard lists (vouched for by the
    repository's own keys, not the developer's)."""
    for name, p in projects.items():
        if str(p.get("shard", "")).startswith("~"):
            continue
        r = matching_role(doc, name)
        if r is not None:
            raise VerificationError(
                f"{source}: project {name} is delegated to developer role {r['name']}, but "
                f"index shard {p.get('shard')} lists it: only the developer keys may vouch "
                "for its files (a stolen targets key?)",
                "ask the publisher; nothing was accepted")


def delegation_notices(source: str, old_targets: Path | None, new: dict[str, Any]) -> list[str]:
    """One line per delegation that appeared, changed keys or threshold, or went away
    since the last verified targets (``old_targets``, the previous generation's copy):
    a re-delegation by the targets keys is announced, never silent."""
    if old_targets is None:
        return []
    try:
        from tuf.api.metadata import Metadata

        md: Any = Metadata.from_bytes(old_targets.read_bytes())
        old = parse(md.signed)
    except Exception:
        return []
    before = {r["pattern"]: r for r in old["roles"]}
    after = {r["pattern"]: r for r in new["roles"]}
    out = []
    for pattern in sorted(set(before) | set(after)):
        o, n = before.get(pattern), after.get(pattern)
        if o == n:
            continue
        if o is None:
            assert n is not None
            out.append(f"{source}: projects {pattern} delegated to developer key(s) "
                       + ", ".join(n["keyids"]) + f" (threshold {n['threshold']})")
        elif n is None:
            out.append(f"{source}: delegation of projects {pattern} removed: the "
                       "repository's own keys vouch for them again")
        else:
            bits = [f"+ {k}" for k in n["keyids"] if k not in o["keyids"]]
            bits += [f"- {k}" for k in o["keyids"] if k not in n["keyids"]]
            if o["threshold"] != n["threshold"]:
                bits.append(f"threshold {o['threshold']}\u2192{n['threshold']}")
            out.append(f"developer keys of {pattern} in {source} changed: " + ", ".join(bits))
    return out
