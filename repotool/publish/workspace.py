"""The publisher's repository: init, add, remove, yank; sign and rotate (SPEC §2).

Changes made by ``add``/``remove``/``yank`` are recorded in ``DIR/.repotool/pending.json``
and become visible to clients only when ``sign`` publishes them. ``sign`` computes the
new shards, simple pages and TUF metadata, checks every role it writes meets its
threshold with the given keys, verifies its own output, and only then writes: new
target files first, then versioned metadata, then ``timestamp.json`` — each by atomic
rename, so a client (or a mirror mid-sync) sees either the old or the new repository,
never half of one. Only the plain-name simple pages for pip follow the timestamp (the
files they link to already exist). Pending changes apply in the order they were made.

``Repository`` is the publisher's entry point; the work lives in ``tree`` (reading the
directory), ``signing`` (one sign run, ``changes`` for the index it rebuilds) and
``rotation`` (new root keys and thresholds).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Key, Metadata, Role, Root

from repotool.errors import UserError
from repotool.format.index import FileEntry, Shard
from repotool.format.index2 import IndexLayout
from repotool.format.layout import REPO_FIELD, dist_target_path, plain_target_path, target_disk_path
from repotool.publish import adding, dists
from repotool.publish.tree import (
    DEFAULT_EXPIRY,
    RepositoryTree,
    entry_from_pending,
    metadata_bytes,
    utc_seconds,
)
from repotool.storage import atomic_write

if TYPE_CHECKING:
    from collections.abc import Sequence

    from securesystemslib.signer import Signer

    from repotool.publish.signing import SignSummary

__all__ = ["DEFAULT_BIN_BITS", "Repository", "RoleKeys"]

DEFAULT_BIN_BITS = 8  # 256 hash bins for distribution files and simple pages


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


class Repository(RepositoryTree):
    """A repository directory, as its publisher sees it."""

    # ---- init --------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        name: str,
        keys: RoleKeys,
        *,
        now: datetime,
        bin_bits: int | None = None,
        format: int = 1,
    ) -> Repository:
        """Create the workspace and the unsigned first root; ``sign`` publishes it.

        ``format`` 2 (docs/format.md; ``repo init``'s default) sizes shards and bins from
        the repository (from ``bin_bits`` bits up, when given); format 1 has 256 shards
        and ``bin_bits`` (8) bits of bins, readable by older clients."""
        if format not in (1, 2):
            raise UserError(f"unknown repository format {format}")
        if format == 1 and bin_bits is None:
            bin_bits = DEFAULT_BIN_BITS
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
            unrecognized_fields={REPO_FIELD: {"name": name, "format": 1}},  # trust layout: 1
        )
        root.mkdir(parents=True, exist_ok=True)
        repo.work.mkdir()
        atomic_write(repo.work / "root.json", metadata_bytes(Metadata(rootmd)))
        atomic_write(
            repo.work / "config.json",
            json.dumps({"name": name, "bin_bits": bin_bits, "format": format}).encode(),
        )
        return repo

    # ---- add / remove / yank -----------------------------------------------------------

    def add(self, paths: list[Path], *, now: datetime) -> list[dists.DistInfo]:
        """Record distributions to publish at the next ``sign``; copy them into the tree.

        Every file is inspected before anything is recorded: one bad file adds nothing.
        """
        self.require()
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
        upload_time = utc_seconds(now)
        infos = adding.inspect_all(files, upload_time)
        made: set[Path] = set()  # directories known to exist
        with self.lock():
            pending = self.pending()
            pub = self.published()
            layout = self.layout(pub) or IndexLayout()
            known: dict[str, str] = {a["filename"]: a["sha256"] for a in pending["add"]}
            shards: dict[str, Shard] = {}
            added: list[dists.DistInfo] = []
            next_seq = self.next_seq(pending)  # once: a scan per file is quadratic
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
                sh = layout.shard_of(info.project)
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
                    if dest.parent not in made:
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        made.add(dest.parent)
                    tmp = dest.with_name(".tmp-" + dest.name)
                    if adding.copy_hashed(path, tmp) != info.sha256:
                        tmp.unlink()
                        raise UserError(f"{str(path)!r} changed while it was being added")
                    os.replace(tmp, dest)
                meta = adding.write_metadata(self.root, info, made)
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
                        "upload_time": upload_time,
                        "seq": seq,
                        **meta,
                    }
                )
                added.append(info)
            self.save_pending(pending)
        return added

    def _find_versions(self, project: str, version: str | None) -> list[FileEntry]:
        from packaging.version import Version

        pub = self.published()
        shard = self.load_shard(pub, self.shard_of(pub, project))
        proj = shard.projects.get(project)
        entries = list(proj.files) if proj else []
        for a in self.pending()["add"]:
            if a["project"] == project:
                entries.append(entry_from_pending(a))
        if version is not None:
            entries = [e for e in entries if Version(e.version) == Version(version)]
        return entries

    def remove(self, project: str, version: str | None) -> int:
        """Unlist a project (or one version); returns the number of files unlisted."""
        from packaging.utils import canonicalize_name

        self.require()
        project = canonicalize_name(project)
        with self.lock():
            found = self._find_versions(project, version)
            if not found:
                what = f"{project} {version}" if version else project
                raise UserError(f"{what} is not in the repository")
            pending = self.pending()
            pending["remove"].append(
                {"project": project, "version": version, "seq": self.next_seq(pending)})
            self.save_pending(pending)
        return len(found)

    def yank(self, project: str, version: str, reason: str | None) -> int:
        from packaging.utils import canonicalize_name

        self.require()
        project = canonicalize_name(project)
        with self.lock():
            found = self._find_versions(project, version)
            if not found:
                raise UserError(f"{project} {version} is not in the repository")
            pending = self.pending()
            pending["yank"].append({"project": project, "version": version, "reason": reason,
                                    "seq": self.next_seq(pending)})
            self.save_pending(pending)
        return len(found)

    # ---- keys / rotate (repotool.publish.rotation) -------------------------------------

    def describe_keys(self) -> dict[str, Any]:
        """Who signs what: every role's keys, threshold and expiry, and weak thresholds."""
        from repotool.publish.rotation import describe_keys

        return describe_keys(self)

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
        """Publish a new root with the keys or threshold of ``role`` changed; see
        ``repotool.publish.rotation.rotate``."""
        from repotool.publish.rotation import rotate

        return rotate(self, role, add, remove, threshold, signers, now=now, expires=expires)

    # ---- sign --------------------------------------------------------------------------

    def sign(
        self,
        signers: list[Signer],
        *,
        now: datetime,
        expires: int | None = None,
        force: frozenset[str] = frozenset(),
        new_root: Metadata[Root] | None = None,
        refresh: bool = False,
    ) -> SignSummary:
        """Publish pending changes. See the module docstring for the order of writes.
        ``refresh``: only re-sign snapshot and timestamp, leaving pending changes pending.

        Raises:
            VerificationError: a role to be written lacks its threshold of signatures
                from ``signers`` (nothing is written); signers holding no role
                written are ignored with a note in the summary.
            UserError: the repository is missing or unreadable.
        """
        from repotool.publish.signing import sign  # the other half of the publisher

        return sign(self, signers, now=now, expires=expires, force=force, new_root=new_root,
                    refresh=refresh)

    def migrate(
        self, signers: list[Signer], *, now: datetime, expires: int | None = None
    ) -> SignSummary:
        """Convert a format 1 repository to format 2 (docs/format.md, "Migration"): one
        sign by the targets and online keys (root is not re-signed, so clients follow
        with the keys they have) that re-shards the index and records the layout in the
        signed targets metadata; pending changes are published with it. Later signs keep
        format 2.

        Raises:
            UserError: nothing is published yet, or it is already format 2.
            VerificationError: as ``sign`` (nothing is written).
        """
        from repotool.publish.signing import sign

        self.require()
        layout = self.layout(self.published())
        if layout is None:
            raise UserError("nothing is published yet: 'repo sign' publishes format "
                            f"{self.config().get('format', 1)} as configured")
        if layout.format >= 2:
            raise UserError(f"{str(self.root)!r} is already format {layout.format}")
        summary = sign(self, signers, now=now, expires=expires, fmt=2)
        with self.lock():
            cfg = self.config()
            cfg["format"] = 2
            atomic_write(self.work / "config.json", json.dumps(cfg).encode())
        return summary
