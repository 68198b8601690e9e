"""Developer keys (SPEC §6.2, PEP 480): terminating delegations of projects to their keys.

``repo delegate DIR PATTERN --to PUB ... [--threshold N]`` hands the projects whose
normalized names match PATTERN to those keys alone. The delegation is published in the
top-level ``targets`` role (signed by the targets keys) as the field
``x-repotool-delegations``::

    {"keys": {KEYID: KEY, ...},
     "roles": [{"name": "dev-1a2b3c4d", "pattern": "demo-*", "keyids": [...],
                "threshold": 1, "terminating": true,
                "paths": ["files/demo-*/*", "simple/demo-*/*", "index/projects/demo-*.json"]}]}

and the delegated role is TUF targets metadata ``N.dev-XXXXXXXX.json`` (listed in every
snapshot, signed by the developer keys), whose targets are everything that names the
project's files: the distributions ``files/P/F``, the project's simple pages
``simple/P/index.html|json`` and the project's index ``index/projects/P.json`` — a
shard document (docs/format.md, "Index shards") holding that one project. The top-level
index shards never list a delegated project: so the targets and online keys cannot
vouch for its files, and the developer (with the online key for snapshot and timestamp)
publishes without the targets key.

Workspace: ``.repotool/delegations.json`` holds the delegations wanted; the next sign
publishes them (re-signing targets).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Key, Metadata, TargetFile, Targets

from repotool.errors import UsageError, UserError
from repotool.format.delegations import (
    FIELD,
    PROJECT_INDEX_DIR,
    delegator,
    matching_role,
    paths_for,
    project_index_path,
    role_name,
)
from repotool.format.index import Shard
from repotool.publish.tree import load_role, merge_published, published_delegations
from repotool.storage import atomic_write

if TYPE_CHECKING:
    from repotool.publish.changes import Changes, Outputs
    from repotool.publish.tree import Published, RepositoryTree

__all__ = ["Plan", "delegate", "describe", "merge_published", "published_delegations"]

_WORKSPACE = "delegations.json"


def _wanted(tree: RepositoryTree, pub: Published | None,
            use_workspace: bool = True) -> dict[str, Any]:
    p = tree.work / _WORKSPACE
    if use_workspace and p.exists():
        doc: dict[str, Any] = json.loads(p.read_bytes())
        return doc
    return published_delegations(pub.targets.signed) if pub else {"keys": {}, "roles": []}


def delegate(tree: RepositoryTree, pattern: str, keys: list[Key], threshold: int) -> str:
    """Record the delegation of ``pattern`` to ``keys`` (replacing one of the same
    pattern); the next sign publishes it. Returns the role name."""
    from repotool.format.delegations import normalize_pattern

    tree.require()
    norm = normalize_pattern(pattern)
    if norm is None:
        raise UsageError(f"invalid project pattern {pattern!r}",
                         "use a normalized project name, with * ? [] as wildcards")
    pattern = norm
    if not keys:
        raise UsageError("give the developer's public key(s) with --to")
    if not 1 <= threshold <= len(keys):
        raise UsageError(f"--threshold {threshold} needs between 1 and {len(keys)}")
    with tree.lock():
        pub = tree.published()
        doc = _wanted(tree, pub)
        name = role_name(pattern)
        for r in doc["roles"]:
            if r["pattern"] != pattern and _overlap(r["pattern"], pattern):
                raise UserError(f"pattern {pattern!r} overlaps the delegation of "
                                f"{r['pattern']!r}", "delegate disjoint sets of projects")
        roles = [r for r in doc["roles"] if r["name"] != name]
        roles.append({"name": name, "pattern": pattern, "keyids": sorted(k.keyid for k in keys),
                      "threshold": threshold, "terminating": True, "paths": paths_for(pattern)})
        used = {k for r in roles for k in r["keyids"]}
        all_keys = {**doc["keys"], **{k.keyid: k.to_dict() for k in keys}}
        new = {"keys": {k: v for k, v in sorted(all_keys.items()) if k in used},
               "roles": sorted(roles, key=lambda r: r["name"])}
        atomic_write(tree.work / _WORKSPACE, json.dumps(new, indent=1, sort_keys=True).encode())
    return name


def _overlap(a: str, b: str) -> bool:
    return fnmatch.fnmatchcase(a.replace("*", "x").replace("?", "x"), b) or \
        fnmatch.fnmatchcase(b.replace("*", "x").replace("?", "x"), a) or a == b


def describe(tree: RepositoryTree) -> list[dict[str, Any]]:
    """The delegations (published, or wanted and not yet signed) for ``repo keys``."""
    pub = tree.published()
    published = published_delegations(pub.targets.signed) if pub else {"keys": {}, "roles": []}
    wanted = _wanted(tree, pub)
    out = []
    for r in wanted["roles"]:
        out.append({"role": r["name"], "pattern": r["pattern"], "keys": r["keyids"],
                    "threshold": r["threshold"], "paths": r["paths"],
                    "published": r in published["roles"]})
    return out


@dataclass
class Plan:
    """What one sign does to the delegations and the delegated roles."""

    tree: RepositoryTree
    pub: Published | None
    use_workspace: bool = True  # False (repo sign --refresh): the published ones only
    wanted: dict[str, Any] = field(init=False)
    changed: bool = field(init=False)
    roles: dict[str, Metadata[Targets]] = field(default_factory=dict)  # to write

    def __post_init__(self) -> None:
        published = (published_delegations(self.pub.targets.signed) if self.pub
                     else {"keys": {}, "roles": []})
        self.wanted = _wanted(self.tree, self.pub, self.use_workspace)
        self.changed = self.wanted != published
        # a role whose keys or threshold changed is re-signed by its new keys
        old = {r["name"]: (r["keyids"], r["threshold"]) for r in published["roles"]}
        for r in self.wanted["roles"]:
            name = r["name"]
            if name in old and old[name] != (r["keyids"], r["threshold"]) and self.pub \
                    and f"{name}.json" in self.pub.snapshot.signed.meta:
                self._role(name)

    def apply_to_targets(self, targets: Targets) -> None:
        if self.wanted["roles"]:
            targets.unrecognized_fields[FIELD] = self.wanted
        else:
            targets.unrecognized_fields.pop(FIELD, None)

    def prepared(self, name: str, md: Metadata[Targets]) -> Metadata[Targets] | None:
        """The role a developer signed earlier without the online key
        (``.repotool/prepared/NAME.json``), if it is exactly what this sign computed
        (version, targets) and meets the delegation's threshold; else None."""
        p = self.tree.work / "prepared" / f"{name}.json"
        try:
            pre: Metadata[Any] = Metadata.from_bytes(p.read_bytes())
        except (OSError, ValueError):
            return None
        s: Any = pre.signed
        new = md.signed
        if not (isinstance(s, Targets) and s.version == new.version
                and s.targets == new.targets and s.delegations == new.delegations):
            return None
        if not delegator(self.wanted).get_verification_result(
                name, pre.signed_bytes, pre.signatures).verified:
            return None
        return pre

    def save_prepared(self) -> None:
        from repotool.publish.tree import metadata_bytes

        for name, md in self.roles.items():
            atomic_write(self.tree.work / "prepared" / f"{name}.json", metadata_bytes(md))

    def apply_to_bin(self, bin_role: Targets) -> None:
        """A bin delegates the delegated projects' paths on (terminating), so a TUF
        client's walk targets → bin → developer role finds their files; the files and
        pages of a project published before its delegation move from the bin to the
        role (so its first delegated sign needs the developer keys too)."""
        bin_role.delegations = delegator(self.wanted).delegations if self.wanted["roles"] \
            else None
        for path in list(bin_role.targets):
            parts = path.split("/")
            if parts[0] in ("files", "simple") and len(parts) == 3:
                r = matching_role(self.wanted, parts[1])
                if r is not None:
                    self._role(r["name"]).signed.targets[path] = bin_role.targets.pop(path)

    def delegator(self) -> Targets:
        return delegator(self.wanted)

    def _role(self, name: str) -> Metadata[Targets]:
        if name not in self.roles:
            self.roles[name] = load_role(self.tree, self.pub, name)
        return self.roles[name]

    def split(self, changes: Changes, out: Outputs) -> None:
        """Move what names a delegated project's files out of the bins and the top-level
        shards into its role: distributions, pages and the project's own index."""
        from repotool.format.layout import target_disk_path

        if not self.wanted["roles"]:
            return
        for path in list(changes.bin_targets):
            parts = path.split("/")
            if parts[0] in ("files", "simple") and len(parts) == 3:
                r = matching_role(self.wanted, parts[1])
                if r is not None:
                    tf = changes.bin_targets.pop(path)
                    role = self._role(r["name"]).signed
                    if tf is None:
                        role.targets.pop(path, None)
                        if parts[0] == "simple":  # the project is gone: so is its index
                            role.targets.pop(project_index_path(parts[1]), None)
                    else:
                        role.targets[path] = tf
        before = self.pub.targets.signed.targets if self.pub else {}
        # projects published before their delegation: their shard is rewritten without
        # them (below), their index goes to the role
        if self.changed and self.pub is not None:
            from repotool.format.index import shard_path

            for path in list(before):
                if not path.startswith("index/") or path.startswith(PROJECT_INDEX_DIR + "/") \
                        or path in changes.shard_targets:
                    continue
                sid = path[len("index/"):-len(".json")]
                sh = self.tree.load_shard(self.pub, sid)
                if any(matching_role(self.wanted, n) for n in sh.projects):
                    data = sh.to_bytes()
                    tf0 = TargetFile.from_data(shard_path(sid), data, ["sha256"])
                    out.writes.append((target_disk_path(self.tree.root, path,
                                                        tf0.hashes["sha256"]), data))
                    changes.shard_targets[path] = tf0
        for path, tf in list(changes.shard_targets.items()):
            if tf is None:
                continue
            disk = target_disk_path(self.tree.root, path, tf.hashes["sha256"])
            i = next(j for j, (p, _) in enumerate(out.writes) if p == disk)
            sid = path.split("/")[1][:-len(".json")]
            sh = Shard.from_bytes(out.writes[i][1], sid)
            delegated = {n: p for n, p in sh.projects.items()
                         if matching_role(self.wanted, n) is not None}
            if not delegated:
                continue
            for n in delegated:
                del sh.projects[n]
            out.writes.pop(i)
            new_tf: TargetFile | None = None
            if sh.projects:
                data = sh.to_bytes()
                new_tf = TargetFile.from_data(path, data, ["sha256"])
            if new_tf == before.get(path):  # the shard is what it was: targets unchanged
                del changes.shard_targets[path]
            else:
                changes.shard_targets[path] = new_tf
                if new_tf is not None:
                    out.writes.append((target_disk_path(self.tree.root, path,
                                                        new_tf.hashes["sha256"]), data))
            for n, proj in delegated.items():
                one = Shard(sid)
                one.projects[n] = proj
                data = one.to_bytes()
                ipath = project_index_path(n)
                itf = TargetFile.from_data(ipath, data, ["sha256"])
                r = matching_role(self.wanted, n)
                assert r is not None
                role = self._role(r["name"]).signed
                if role.targets.get(ipath) != itf:
                    out.writes.append((target_disk_path(self.tree.root, ipath,
                                                        itf.hashes["sha256"]), data))
                    role.targets[ipath] = itf


def check_delegations(up: Any, ts: Any, report: Any) -> tuple[dict[str, Any], list[Any],
                                                              dict[str, Any]]:
    """``repo check``'s part: the delegations in targets parse, every bin carries them,
    and each published developer role verifies through python-tuf (``up``) as a TUF
    client reaches it, from a bin. Returns the roles' targets, their project indexes
    (path, TargetFile) and the delegations."""
    from tuf.api import exceptions as tuf_exc

    from repotool.errors import RepotoolError
    from repotool.format.delegations import parse

    try:
        doc = parse(ts.targets)
    except RepotoolError as e:
        report.problems.append(e.message)
        return {}, [], {"keys": {}, "roles": []}
    if not doc["roles"]:
        return {}, [], doc
    want = delegator(doc).delegations
    bins = ts.targets.delegations.succinct_roles
    names = list(bins.get_roles())
    wrong = [b for b in names if ts[b].delegations != want]
    if wrong:
        report.problems.append(f"{', '.join(wrong[:3])}{' …' if len(wrong) > 3 else ''}: "
                               "bin delegation differs from the delegations in targets")
    targets: dict[str, Any] = {}
    indexes: list[Any] = []
    for r in doc["roles"]:
        name = r["name"]
        if f"{name}.json" not in ts.snapshot.meta:
            continue  # delegated, nothing published yet
        try:
            up._load_targets(name, names[0])
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError, RepotoolError) as e:
            report.problems.append(f"{name} ({r['pattern']}): {e}")
            continue
        for path, tf in ts[name].targets.items():
            targets[path] = tf
            if path.startswith(PROJECT_INDEX_DIR + "/"):
                indexes.append((path, tf))
    return targets, indexes, doc
