"""The publisher: init, add, remove, yank, sign, rotate (SPEC §2, docs/format.md).

Changes made by ``add``/``remove``/``yank`` are recorded in ``DIR/.repotool/pending.json``
and become visible to clients only when ``sign`` publishes them. ``sign`` computes the
new shards, simple pages and TUF metadata, checks every role it writes meets its
threshold with the given keys, verifies its own output, and only then writes: new
target files first, then versioned metadata, then ``timestamp.json`` — each by atomic
rename, so a client (or a mirror mid-sync) sees either the old or the new repository,
never half of one. Only the plain-name simple pages for pip follow the timestamp (the
files they link to already exist). Pending changes apply in the order they were made.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import (
    Key,
    Metadata,
    Role,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from repotool.errors import UsageError, UserError
from repotool.format.index import FileEntry, Project, Shard, shard_of, shard_path
from repotool.format.layout import (
    METADATA_DIR,
    REPO_FIELD,
    ROOT_PAGES,
    WORK_DIR,
    dist_target_path,
    plain_target_path,
    target_disk_path,
)
from repotool.publish import dists
from repotool.storage import atomic_write, locked

if TYPE_CHECKING:
    from collections.abc import Sequence

    from securesystemslib.signer import Signer

__all__ = ["DEFAULT_EXPIRY", "Repository", "RoleKeys", "SignSummary"]

DEFAULT_EXPIRY = {  # seconds
    "root": 365 * 86400,
    "targets": 90 * 86400,
    "bins": 90 * 86400,
    "snapshot": 7 * 86400,
    "timestamp": 86400,
}
DEFAULT_BIN_BITS = 8  # 256 hash bins for distribution files and simple pages
_SERIALIZER = JSONSerializer(compact=True)


def _md_bytes(md: Metadata[Any]) -> bytes:
    return bytes(md.to_bytes(_SERIALIZER))


@dataclass
class RoleKeys:
    """Public keys and thresholds of a new repository's roles.

    ``targets_threshold`` also binds the bins (they always follow the targets role);
    ``online_threshold`` binds snapshot and timestamp. A repository whose keys all hold
    every role (``repo init --key``) gives every role the same threshold: otherwise one
    of its keys alone could publish files (targets, bins) or keep re-signing the current
    state forever (snapshot, timestamp), whatever root requires.
    """

    root: list[Key]
    root_threshold: int
    targets: list[Key]
    targets_threshold: int
    online: list[Key]
    online_threshold: int = 1


@dataclass
class SignSummary:
    files: int = 0
    bytes: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # role -> new version
    projects_changed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "versions": dict(sorted(self.versions.items())),
            "projects_changed": self.projects_changed,
        }


@dataclass
class _Published:
    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]


def _load_md(path: Path) -> Metadata[Any]:
    try:
        return Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"repository metadata {str(path)!r} is missing") from None
    except Exception as e:
        raise UserError(f"repository metadata {str(path)!r} is unreadable: {e}") from None


def _fresh(signed: Any) -> Metadata[Any]:
    """New metadata at version 0: the write path bumps every role it writes by one."""
    signed.version = 0  # python-tuf validates only in __init__; 0 means "never published"
    return Metadata(signed)


def _utc_seconds(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Repository:
    """A repository directory, as its publisher sees it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / METADATA_DIR
        self.work = root / WORK_DIR

    # ---- workspace -------------------------------------------------------------------

    def _require(self) -> None:
        if not (self.work / "config.json").is_file():
            raise UserError(
                f"{str(self.root)!r} is not a repotool repository",
                "create one with 'repotool repo init DIR --name NAME --key PUB'",
            )

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.work / "lock", f"repository {str(self.root)!r}")

    def config(self) -> dict[str, Any]:
        self._require()
        cfg: dict[str, Any] = json.loads((self.work / "config.json").read_text())
        return cfg

    def _pending(self) -> dict[str, list[dict[str, Any]]]:
        try:
            doc: dict[str, list[dict[str, Any]]] = json.loads(
                (self.work / "pending.json").read_bytes()
            )
        except FileNotFoundError:
            return {"add": [], "remove": [], "yank": []}
        return doc

    def _save_pending(self, pending: dict[str, list[dict[str, Any]]]) -> None:
        atomic_write(self.work / "pending.json", json.dumps(pending, indent=1).encode())

    @staticmethod
    def _next_seq(pending: dict[str, list[dict[str, Any]]]) -> int:
        """Pending changes apply at ``sign`` in the order they were made ("seq")."""
        return 1 + max((int(e.get("seq", 0)) for es in pending.values() for e in es), default=0)

    def _pending_root(self) -> Metadata[Root] | None:
        p = self.work / "root.json"
        return _load_md(p) if p.exists() else None

    # ---- reading what is published -----------------------------------------------------

    def published(self) -> _Published | None:
        ts_path = self.meta / "timestamp.json"
        if not ts_path.exists():
            return None
        ts: Metadata[Timestamp] = _load_md(ts_path)
        snap: Metadata[Snapshot] = _load_md(
            self.meta / f"{ts.signed.snapshot_meta.version}.snapshot.json"
        )
        tmeta = snap.signed.meta["targets.json"]
        targets: Metadata[Targets] = _load_md(self.meta / f"{tmeta.version}.targets.json")
        # the newest N.root.json, not the root.json copy (which a sign killed between the
        # two writes, or an older repotool that never updated it, can leave behind)
        versions = [int(p.name.split(".")[0]) for p in self.meta.glob("*.root.json")
                    if p.name.split(".")[0].isdigit()]
        newest = f"{max(versions)}.root.json" if versions else "root.json"
        root: Metadata[Root] = _load_md(self.meta / newest)
        return _Published(root, ts, snap, targets)

    def _load_bin(self, pub: _Published | None, name: str) -> Metadata[Targets]:
        if pub is None or f"{name}.json" not in pub.snapshot.signed.meta:
            return _fresh(Targets())
        version = pub.snapshot.signed.meta[f"{name}.json"].version
        return _load_md(self.meta / f"{version}.{name}.json")

    def _read_target(self, tf: TargetFile) -> bytes:
        path = target_disk_path(self.root, tf.path, tf.hashes["sha256"])
        data = path.read_bytes()
        tf.verify_length_and_hashes(data)
        return data

    def load_shard(self, pub: _Published | None, shard: str) -> Shard:
        if pub is None:
            return Shard(shard)
        tf = pub.targets.signed.targets.get(shard_path(shard))
        if tf is None:
            return Shard(shard)
        return Shard.from_bytes(self._read_target(tf), shard)

    def _all_projects(self, pub: _Published | None) -> set[str]:
        if pub is None:
            return set()
        bins = self._bins_of(pub.targets.signed)
        page = ROOT_PAGES[1]
        b = self._load_bin(pub, bins.get_role_for_target(page))
        tf = b.signed.targets.get(page)
        if tf is None:
            return set()
        doc = json.loads(self._read_target(tf))
        return {p["name"] for p in doc["projects"]}

    @staticmethod
    def _bins_of(targets: Targets) -> SuccinctRoles:
        assert targets.delegations is not None and targets.delegations.succinct_roles
        sr: SuccinctRoles = targets.delegations.succinct_roles
        return sr

    # ---- init --------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        name: str,
        keys: RoleKeys,
        *,
        now: datetime,
        bin_bits: int = DEFAULT_BIN_BITS,
    ) -> Repository:
        """Create the workspace and the unsigned first root; ``sign`` publishes it."""
        repo = cls(root)
        if repo.work.exists() or repo.meta.exists():
            raise UserError(f"{str(root)!r} already holds a repository")
        if not name or len(name) > 200 or not name.isprintable():
            raise UserError(f"invalid repository name {name!r}")
        for label, ks, thr in (
            ("root", keys.root, keys.root_threshold),
            ("targets", keys.targets, keys.targets_threshold),
            ("online", keys.online, keys.online_threshold),
        ):
            ids = [k.keyid for k in ks]
            if not ks:
                raise UserError(f"no {label} key given")
            if len(set(ids)) != len(ids):
                raise UserError(f"the same {label} key is given twice")
            if not 1 <= thr <= len(ks):
                raise UserError(f"{label} threshold {thr} is not between 1 and {len(ks)}")
        all_keys = {k.keyid: k for k in [*keys.root, *keys.targets, *keys.online]}
        rootmd = Root(
            version=1,
            expires=now + timedelta(seconds=DEFAULT_EXPIRY["root"]),
            keys=all_keys,
            roles={
                "root": Role([k.keyid for k in keys.root], keys.root_threshold),
                "targets": Role([k.keyid for k in keys.targets], keys.targets_threshold),
                "snapshot": Role([k.keyid for k in keys.online], keys.online_threshold),
                "timestamp": Role([k.keyid for k in keys.online], keys.online_threshold),
            },
            consistent_snapshot=True,
            unrecognized_fields={REPO_FIELD: {"name": name, "format": 1}},
        )
        root.mkdir(parents=True, exist_ok=True)
        repo.work.mkdir()
        atomic_write(repo.work / "root.json", _md_bytes(Metadata(rootmd)))
        atomic_write(
            repo.work / "config.json",
            json.dumps({"name": name, "bin_bits": bin_bits, "format": 1}).encode(),
        )
        return repo

    # ---- add / remove / yank -----------------------------------------------------------

    def add(self, paths: list[Path], *, now: datetime) -> list[dists.DistInfo]:
        """Record distributions to publish at the next ``sign``; copy them into the tree.

        Every file is inspected before anything is recorded: one bad file adds nothing.
        """
        self._require()
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                found = sorted(
                    q for q in p.iterdir() if q.is_file() and dists.is_distribution_name(q.name)
                )
                if not found:
                    raise UserError(
                        f"{str(p)!r} holds no wheels or sdists (*.whl, *.tar.gz, *.zip)")
                files.extend(found)
            else:
                files.append(p)
        infos = [dists.inspect(p) for p in files]
        for info in infos:
            _check_indexable(info, _utc_seconds(now))
        with self._lock():
            pending = self._pending()
            pub = self.published()
            known: dict[str, str] = {a["filename"]: a["sha256"] for a in pending["add"]}
            shards: dict[str, Shard] = {}
            added: list[dists.DistInfo] = []
            next_seq = self._next_seq(pending)  # once: a scan per file is quadratic
            for info, path in zip(infos, files, strict=True):
                if info.filename in known:
                    if known[info.filename] != info.sha256:
                        raise UserError(
                            f"{info.filename!r} is already added with different content",
                            "a filename is never reused: publish a new version",
                        )
                    continue
                plain = plain_target_path(self.root, dist_target_path(info.project, info.filename))
                if plain.exists() and dists.sha256_file(plain)[0] != info.sha256:
                    raise UserError(
                        f"{info.filename!r} was published before with different content",
                        "a filename is never reused, even after removal: publish a new version",
                    )
                sh = shard_of(info.project)
                if sh not in shards:
                    shards[sh] = self.load_shard(pub, sh)
                proj = shards[sh].projects.get(info.project)
                if proj and any(f.filename == info.filename for f in proj.files):
                    continue  # already published with these very bytes
                known[info.filename] = info.sha256
                seq = next_seq
                next_seq += 1
                dest = target_disk_path(
                    self.root, dist_target_path(info.project, info.filename), info.sha256
                )
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dest.with_name(".tmp-" + dest.name)
                    shutil.copyfile(path, tmp)
                    if dists.sha256_file(tmp)[0] != info.sha256:
                        tmp.unlink()
                        raise UserError(f"{str(path)!r} changed while it was being added")
                    os.replace(tmp, dest)
                pending["add"].append(
                    {
                        "filename": info.filename,
                        "project": info.project,
                        "version": info.version,
                        "sha256": info.sha256,
                        "size": info.size,
                        "requires_python": info.requires_python,
                        "requires_dist": list(info.requires_dist),
                        "summary": info.summary,
                        "upload_time": _utc_seconds(now),
                        "seq": seq,
                    }
                )
                added.append(info)
            self._save_pending(pending)
        return added

    def _find_versions(self, project: str, version: str | None) -> list[FileEntry]:
        from packaging.version import Version

        pub = self.published()
        shard = self.load_shard(pub, shard_of(project))
        proj = shard.projects.get(project)
        entries = list(proj.files) if proj else []
        for a in self._pending()["add"]:
            if a["project"] == project:
                entries.append(_entry_from_pending(a))
        if version is not None:
            entries = [e for e in entries if Version(e.version) == Version(version)]
        return entries

    def remove(self, project: str, version: str | None) -> int:
        """Unlist a project (or one version); returns the number of files unlisted."""
        from packaging.utils import canonicalize_name

        self._require()
        project = canonicalize_name(project)
        with self._lock():
            found = self._find_versions(project, version)
            if not found:
                what = f"{project} {version}" if version else project
                raise UserError(f"{what} is not in the repository")
            pending = self._pending()
            pending["remove"].append(
                {"project": project, "version": version, "seq": self._next_seq(pending)})
            self._save_pending(pending)
        return len(found)

    def yank(self, project: str, version: str, reason: str | None) -> int:
        from packaging.utils import canonicalize_name

        self._require()
        project = canonicalize_name(project)
        with self._lock():
            found = self._find_versions(project, version)
            if not found:
                raise UserError(f"{project} {version} is not in the repository")
            pending = self._pending()
            pending["yank"].append({"project": project, "version": version, "reason": reason,
                                    "seq": self._next_seq(pending)})
            self._save_pending(pending)
        return len(found)

    # ---- keys / rotate -----------------------------------------------------------------

    def describe_keys(self) -> dict[str, Any]:
        self._require()
        pub = self.published()
        rootmd = pub.root if pub else self._pending_root()
        assert rootmd is not None
        r = rootmd.signed
        expiries: dict[str, str | None] = {"root": _utc_seconds(r.expires)}
        if pub:
            expiries["timestamp"] = _utc_seconds(pub.timestamp.signed.expires)
            expiries["snapshot"] = _utc_seconds(pub.snapshot.signed.expires)
            expiries["targets"] = _utc_seconds(pub.targets.signed.expires)
        roles = {}
        for name, role in r.roles.items():
            roles[name] = {
                "keys": sorted(role.keyids),
                "threshold": role.threshold,
                "expires": expiries.get(name),
            }
        # the bins: as published (a sign re-syncs them to targets), else as they will be
        sr = self._bins_of(pub.targets.signed) if pub else None
        tr = r.roles["targets"]
        bins = {
            "keys": sorted(sr.keyids if sr else tr.keyids),
            "threshold": sr.threshold if sr else tr.threshold,
            "count": sr.number_of_bins if sr else 2 ** int(self.config()["bin_bits"]),
        }
        from repotool.publish.check import weak_thresholds

        return {
            "name": r.unrecognized_fields.get(REPO_FIELD, {}).get("name"),
            "root_version": r.version,
            "published": pub is not None,
            "pending_root": (self.work / "root.json").exists(),
            "roles": roles,
            "bins": bins,
            "warnings": weak_thresholds(r, sr, self.root),
        }

    def rotate(
        self,
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
        self._require()
        roles = [role] if isinstance(role, str) else list(role)
        for r_name in roles:
            if r_name not in ("root", "targets", "snapshot", "timestamp", "online"):
                raise UserError(f"unknown role {r_name!r}", "roles: root, targets, online")
        pub = self.published()
        if pub is None:
            raise UserError("the repository was never signed", "run 'repotool repo sign' first")
        new = copy.deepcopy(pub.root.signed)
        names: list[str] = []
        for r_name in roles:
            for name in ["snapshot", "timestamp"] if r_name == "online" else [r_name]:
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
        return self.sign(signers, now=now, expires=expires, new_root=Metadata(new))

    # ---- sign --------------------------------------------------------------------------

    def sign(
        self,
        signers: list[Signer],
        *,
        now: datetime,
        expires: int | None = None,
        force: frozenset[str] = frozenset(),
        new_root: Metadata[Root] | None = None,
    ) -> SignSummary:
        """Publish pending changes. See the module docstring for the order of writes.

        Raises:
            VerificationError: a role to be written lacks its threshold of signatures
                from ``signers``, or a signer holds no role being written (nothing is
                written).
            UserError: the repository is missing or unreadable.
        """
        self._require()
        with self._lock():
            from repotool.publish.signing import Signing  # the other half of the publisher

            return Signing(self, signers, now, expires, force, new_root).run()


def _check_indexable(info: dists.DistInfo, upload_time: str) -> None:
    """Refuse a file whose index entry clients would refuse (e.g. a Requires-Python longer
    than the shard format allows): one such file would make its whole shard unreadable."""
    from repotool.errors import FormatError

    entry = FileEntry(info.filename, info.version, info.sha256, info.size, info.requires_python,
                      info.requires_dist, upload_time, False)
    sid = shard_of(info.project)
    shard = Shard(sid, {info.project: Project(info.project, info.summary[:512], [entry])})
    try:
        Shard.from_bytes(shard.to_bytes(), sid)
    except FormatError as e:
        raise UserError(
            f"{info.filename!r} cannot be indexed: {e.message}",
            "its metadata exceeds what the index format allows (docs/format.md)",
        ) from None


def _entry_from_pending(a: dict[str, Any]) -> FileEntry:
    return FileEntry(
        filename=a["filename"],
        version=a["version"],
        sha256=a["sha256"],
        size=a["size"],
        requires_python=a["requires_python"],
        requires_dist=tuple(a["requires_dist"]),
        upload_time=a["upload_time"],
        yanked=False,
    )
