"""A repository directory as its publisher reads it (docs/format.md §Layout, §Publishing).

The workspace (``DIR/.repotool/``: config, lock, pending changes, a pending root) and
what is published (``DIR/metadata/``, shards, simple pages): ``RepositoryTree`` reads
both and writes only the pending changes. The commands that change a repository build
on it: ``workspace`` (init, add, remove, yank), ``signing`` (one sign run), ``rotation``
(new root keys and thresholds).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuf.api.metadata import (
    Metadata,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from repotool.errors import UserError
from repotool.format.delegations import FIELD, PROJECT_INDEX_DIR
from repotool.format.index import FileEntry, Shard, shard_of
from repotool.format.index2 import IndexLayout, layout_of
from repotool.format.layout import METADATA_DIR, ROOT_PAGES, WORK_DIR, target_disk_path
from repotool.storage import atomic_write, locked

__all__ = [
    "DEFAULT_EXPIRY",
    "Pending",
    "Published",
    "RepositoryTree",
    "bins_of",
    "entry_from_pending",
    "fresh_metadata",
    "index_format",
    "load_metadata",
    "load_role",
    "merge_published",
    "metadata_bytes",
    "published_delegations",
    "utc_seconds",
]

DEFAULT_EXPIRY = {  # seconds
    "root": 365 * 86400,
    "targets": 90 * 86400,
    "bins": 90 * 86400,
    "snapshot": 7 * 86400,
    "timestamp": 86400,
}
_SERIALIZER = JSONSerializer(compact=True)

Pending = dict[str, list[dict[str, Any]]]  # "add" / "remove" / "yank" -> changes


def _json_chunks(pending: Pending) -> Iterator[bytes]:
    """``pending`` as compact JSON, an entry at a time (C-encoded; never all in memory)."""
    enc = json.JSONEncoder(separators=(",", ":")).encode
    yield b"{"
    for i, (kind, entries) in enumerate(pending.items()):
        yield (b"," if i else b"") + enc(kind).encode() + b":["
        for j, e in enumerate(entries):
            yield (b"," if j else b"") + enc(e).encode()
        yield b"]"
    yield b"}"


def metadata_bytes(md: Metadata[Any]) -> bytes:
    """The bytes a role is published as (compact JSON, as every sign writes it)."""
    return bytes(md.to_bytes(_SERIALIZER))


def load_metadata(path: Path) -> Metadata[Any]:
    try:
        return Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"repository metadata {str(path)!r} is missing") from None
    except Exception as e:
        raise UserError(f"repository metadata {str(path)!r} is unreadable: {e}") from None


def fresh_metadata(signed: Any) -> Metadata[Any]:
    """New metadata at version 0: the write path bumps every role it writes by one."""
    signed.version = 0  # python-tuf validates only in __init__; 0 means "never published"
    return Metadata(signed)


def utc_seconds(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bins_of(targets: Targets) -> SuccinctRoles:
    """The hash-bin delegation every repotool ``targets`` role holds."""
    assert targets.delegations is not None and targets.delegations.succinct_roles
    sr: SuccinctRoles = targets.delegations.succinct_roles
    return sr


def index_format(pub: Published | None) -> int:
    """The repository's index format: ``x-repotool.format`` of the signed targets (format
    version 2, docs/format.md §Format version 2), 1 when absent (every format 1 repository).

    Entries carry ``metadata_sha256``/``metadata_size`` only from format 2 on: a format 1
    reader accepts exactly eight keys per file entry (docs/format.md §Core metadata)."""
    field = pub.targets.signed.unrecognized_fields.get("x-repotool") if pub else None
    fmt = field.get("format") if isinstance(field, dict) else None
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else 1


def entry_from_pending(a: dict[str, Any]) -> FileEntry:
    """The index entry of a pending ``add``."""
    return FileEntry(
        filename=a["filename"],
        version=a["version"],
        sha256=a["sha256"],
        size=a["size"],
        requires_python=a["requires_python"],
        requires_dist=tuple(a["requires_dist"]),
        upload_time=a["upload_time"],
        yanked=False,
        metadata_sha256=a.get("metadata_sha256"),  # absent in pending files of older adds
        metadata_size=a.get("metadata_size"),
    )


@dataclass
class Published:
    root: Metadata[Root]
    timestamp: Metadata[Timestamp]
    snapshot: Metadata[Snapshot]
    targets: Metadata[Targets]


class RepositoryTree:
    """A repository directory: its workspace and what is published."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta = root / METADATA_DIR
        self.work = root / WORK_DIR

    # ---- workspace -------------------------------------------------------------------

    def require(self) -> None:
        if not (self.work / "config.json").is_file():
            raise UserError(
                f"{str(self.root)!r} is not a repotool repository",
                "create one with 'repotool repo init DIR --name NAME --key PUB'",
            )

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.work / "lock", f"repository {str(self.root)!r}")

    def config(self) -> dict[str, Any]:
        self.require()
        cfg: dict[str, Any] = json.loads((self.work / "config.json").read_text())
        return cfg

    def pending(self) -> Pending:
        try:
            doc: Pending = json.loads((self.work / "pending.json").read_bytes())
        except FileNotFoundError:
            return {"add": [], "remove": [], "yank": []}
        return doc

    def save_pending(self, pending: Pending) -> None:
        atomic_write(self.work / "pending.json", _json_chunks(pending))

    @staticmethod
    def next_seq(pending: Pending) -> int:
        """Pending changes apply at ``sign`` in the order they were made ("seq")."""
        return 1 + max((int(e.get("seq", 0)) for es in pending.values() for e in es), default=0)

    def pending_root(self) -> Metadata[Root] | None:
        p = self.work / "root.json"
        return load_metadata(p) if p.exists() else None

    # ---- reading what is published -----------------------------------------------------

    def published(self) -> Published | None:
        ts_path = self.meta / "timestamp.json"
        if not ts_path.exists():
            return None
        ts: Metadata[Timestamp] = load_metadata(ts_path)
        snap: Metadata[Snapshot] = load_metadata(
            self.meta / f"{ts.signed.snapshot_meta.version}.snapshot.json"
        )
        tmeta = snap.signed.meta["targets.json"]
        targets: Metadata[Targets] = load_metadata(self.meta / f"{tmeta.version}.targets.json")
        # the newest N.root.json, not the root.json copy (which a sign killed between the
        # two writes, or an older repotool that never updated it, can leave behind)
        versions = [int(p.name.split(".")[0]) for p in self.meta.glob("*.root.json")
                    if p.name.split(".")[0].isdigit()]
        newest = f"{max(versions)}.root.json" if versions else "root.json"
        root: Metadata[Root] = load_metadata(self.meta / newest)
        return Published(root, ts, snap, targets)

    def load_bin(self, pub: Published | None, name: str) -> Metadata[Targets]:
        if pub is None or f"{name}.json" not in pub.snapshot.signed.meta:
            return fresh_metadata(Targets())
        version = pub.snapshot.signed.meta[f"{name}.json"].version
        return load_metadata(self.meta / f"{version}.{name}.json")

    def read_target(self, tf: TargetFile) -> bytes:
        path = target_disk_path(self.root, tf.path, tf.hashes["sha256"])
        data = path.read_bytes()
        tf.verify_length_and_hashes(data)
        return data

    @staticmethod
    def layout(pub: Published | None) -> IndexLayout | None:
        """How the published index is sharded (None before the first publication)."""
        return layout_of(pub.targets.signed.unrecognized_fields) if pub is not None else None

    def load_shard(self, pub: Published | None, shard: str,
                   layout: IndexLayout | None = None) -> Shard:
        layout = layout or self.layout(pub)
        if pub is None or layout is None:
            return Shard(shard)
        tf = pub.targets.signed.targets.get(layout.path(shard))
        sh = Shard(shard) if tf is None else layout.decode(self.read_target(tf), shard)
        return merge_published(self, pub, sh)  # with the delegated projects of that shard

    def shard_of(self, pub: Published | None, project: str) -> str:
        """The published shard ``project`` is in (or would be)."""
        return (self.layout(pub) or IndexLayout()).shard_of(project)

    def all_projects(self, pub: Published | None) -> set[str]:
        if pub is None:
            return set()
        bins = bins_of(pub.targets.signed)
        page = ROOT_PAGES[1]
        b = self.load_bin(pub, bins.get_role_for_target(page))
        tf = b.signed.targets.get(page)
        if tf is None:
            return set()
        doc = json.loads(self.read_target(tf))
        return {p["name"] for p in doc["projects"]}


# developer roles (repotool.publish.delegation): what is published of them
def published_delegations(targets: Targets) -> dict[str, Any]:
    doc = targets.unrecognized_fields.get(FIELD)
    return doc if isinstance(doc, dict) else {"keys": {}, "roles": []}


def load_role(tree: RepositoryTree, pub: Published | None, name: str) -> Metadata[Targets]:
    if pub is None or f"{name}.json" not in pub.snapshot.signed.meta:
        return fresh_metadata(Targets())
    v = pub.snapshot.signed.meta[f"{name}.json"].version
    md: Metadata[Targets] = load_metadata(tree.meta / f"{v}.{name}.json")
    return md


def merge_published(tree: RepositoryTree, pub: Published | None, shard: Shard) -> Shard:
    """The shard as the publisher builds on it: its own projects plus the delegated
    projects of that shard, read from their roles' project indexes."""
    if pub is None:
        return shard
    doc = published_delegations(pub.targets.signed)
    for r in doc["roles"]:
        md = load_role(tree, pub, r["name"])
        for path, tf in md.signed.targets.items():
            if not path.startswith(PROJECT_INDEX_DIR + "/"):
                continue
            project = path[len(PROJECT_INDEX_DIR) + 1:-len(".json")]
            if tree.shard_of(pub, project) != shard.shard:  # the published layout's shard
                continue
            # a project index is a format 1 shard of one project, whatever the layout
            one = Shard.from_bytes(tree.read_target(tf), shard_of(project))
            shard.projects.update(one.projects)
    return shard
