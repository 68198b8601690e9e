"""One ``repo sign`` run: compute everything in memory, check it, then write.

Order of work (see also docs/format.md, "Publishing"):

1. root — a pending root (init, rotate) or the published one re-signed on demand;
2. targets and its bins delegation, which follow root's targets role;
3. pending changes applied in the order they were made: shards, simple pages
   (``repotool.publish.changes``);
4. the roles to write: changed bins, targets, snapshot, timestamp;
5. versions, expiries and signatures; every role's threshold checked and the output
   verified with the delegator's keys (nothing is written if anything is missing);
6. writes: hash-named targets and versioned metadata, one ``os.sync()``, then
   ``timestamp.json`` — the file that makes the new state reachable — and last the
   plain-name simple pages for plain pip.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    Targets,
    Timestamp,
)

from repotool.errors import VerificationError
from repotool.format.layout import BINS_PREFIX
from repotool.publish.bins import size_bins
from repotool.publish.changes import Outputs, apply_pending
from repotool.publish.delegation import Plan
from repotool.publish.shortfall import FAST_CANONICAL, Signed, check_missing, short_of
from repotool.publish.tree import (
    DEFAULT_EXPIRY,
    Published,
    RepositoryTree,
    bins_of,
    fresh_metadata,
    metadata_bytes,
)
from repotool.storage import atomic_write, fsync_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from securesystemslib.signer import Signer

__all__ = ["SignSummary", "Signing", "sign"]


@dataclass
class SignSummary:
    files: int = 0
    bytes: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # role -> new version
    projects_changed: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. keys given that sign nothing
    prepared: dict[str, int] = field(default_factory=dict)  # developer role -> version

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "files": self.files,
            "bytes": self.bytes,
            "versions": dict(sorted(self.versions.items())),
            "projects_changed": self.projects_changed,
            "notes": list(self.notes),
        }
        if self.prepared:
            doc["prepared"] = dict(sorted(self.prepared.items()))
        return doc


def sign(
    repo: RepositoryTree,
    signers: list[Signer],
    *,
    now: datetime,
    expires: int | None = None,
    force: frozenset[str] = frozenset(),
    new_root: Metadata[Root] | None = None,
    presigned: bool = False,
    refresh: bool = False,
    before: Callable[[Published | None], None] | None = None,
    fmt: int | None = None,
) -> SignSummary:
    """Publish ``repo``'s pending changes (and ``new_root``, from a rotation), holding the
    repository's lock; ``Repository.sign`` documents the arguments.

    ``presigned``: ``new_root`` comes from a ceremony (``repotool.publish.ceremony``) with
    its version, expiry and signatures fixed; the signers may only add to them.
    ``refresh``: re-sign snapshot and timestamp only; pending changes stay pending.
    ``before``: called under the lock with what is published, before anything else (a
    ceremony checks there that its proposal still applies).
    ``fmt``: 2 converts a format 1 repository (``repo migrate``).
    """
    repo.require()
    with repo.lock():
        run = Signing(repo, signers, now, expires, force, new_root, fmt)
        run.presigned, run.refresh = presigned, refresh
        if refresh:
            run.pending = {"add": [], "remove": [], "yank": []}
            run.pending_root = None
            run.force = frozenset({"snapshot"})
        if before is not None:
            before(run.pub)
        return run.run()


class Signing:
    """One ``sign`` run: compute everything in memory, check, then write."""

    def __init__(
        self,
        repo: RepositoryTree,
        signers: list[Signer],
        now: datetime,
        expires: int | None,
        force: frozenset[str],
        new_root: Metadata[Root] | None,
        fmt: int | None = None,
    ) -> None:
        self.repo = repo
        self.signers = signers
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.expires = expires
        self.force = force
        self.pub = repo.published()
        self.pending = repo.pending()
        self.pending_root = new_root or repo.pending_root()
        # the index format to write: never lower than what is published (a migration
        # killed before its config was saved is finished by the next sign)
        published = repo.layout(self.pub)
        self.fmt = max(fmt or int(repo.config().get("format", 1)),
                       published.format if published else 1)
        self.out = Outputs(repo.root)  # everything to write, once every role is checked
        self.summary = SignSummary()
        self.presigned = False
        self.refresh = False
        self._used: set[str] = set()
        self._prepared_roles: set[str] = set()  # developer roles prepared by their developer
        self._signed: list[Signed] = []

    def _expiry(self, role: str) -> datetime:
        secs = self.expires if self.expires is not None else DEFAULT_EXPIRY[role]
        return self.now + timedelta(seconds=secs)

    def run(self) -> SignSummary:
        repo, pub = self.repo, self.pub
        old_root = pub.root.signed if pub else None
        # (1) root: a pending root (init, rotate), or the published one re-signed on demand
        rootmd: Metadata[Root]
        root_changed = self.pending_root is not None or "root" in self.force
        if self.pending_root is not None:
            rootmd = self.pending_root
            if not self.presigned:
                rootmd.signed.version = old_root.version + 1 if old_root else 1
        else:
            assert pub is not None
            rootmd = copy.deepcopy(pub.root)
            if root_changed:
                rootmd.signed.version += 1
        if root_changed and not self.presigned:
            rootmd.signatures.clear()
            rootmd.signed.expires = self._expiry("root")
        root = rootmd.signed

        # (2) targets and its bins delegation follow root's targets role
        if pub is None:
            bits = int(repo.config().get("bin_bits") or 1)
            targets = fresh_metadata(Targets())
            targets.signed.delegations = Delegations(
                keys={}, roles=None,
                succinct_roles=SuccinctRoles([], 1, bits, BINS_PREFIX),
            )
        else:
            targets = copy.deepcopy(pub.targets)
        tr = root.roles["targets"]
        bins_role = bins_of(targets.signed)
        delegations = targets.signed.delegations
        assert delegations is not None
        delegation_changed = (
            sorted(bins_role.keyids) != sorted(tr.keyids) or bins_role.threshold != tr.threshold
        )
        if delegation_changed:
            bins_role.keyids = list(tr.keyids)
            bins_role.threshold = tr.threshold
            delegations.keys = {k: root.keys[k] for k in tr.keyids}

        # developer keys (repotool.publish.delegation): the delegations wanted
        plan = Plan(repo, pub, use_workspace=not self.refresh)  # a refresh: published only
        if plan.changed:
            plan.apply_to_targets(targets.signed)

        # (3) apply pending changes to shards and pages; a delegated project's go to its role
        changes = apply_pending(repo, pub, self.pending, self.out, self.fmt)
        plan.split(changes, self.out)
        self.summary.projects_changed = changes.projects
        changed_targets, shard_targets = changes.bin_targets, changes.shard_targets
        from repotool.publish.provenance import provenance_target  # what repo import recorded

        shard_targets = {**shard_targets, **provenance_target(repo.root, pub, self.out.writes)}
        field_changed = False
        rebalanced: dict[str, Any] | None = None
        if self.fmt == 2:  # the bins follow the repository's size (repotool.publish.bins)
            bins_role, rebalanced, field_changed = size_bins(
                repo, pub, targets, bins_role, root, changes.layout)
            delegation_changed = delegation_changed or rebalanced is not None

        # (4) roles to write
        bins: dict[str, Metadata[Targets]] = {}
        all_bins = list(bins_role.get_roles())
        if pub is None or delegation_changed or "bins" in self.force:
            for b in all_bins:
                bins[b] = repo.load_bin(pub, b)
                if rebalanced is not None:  # same name, new range: the version goes on
                    bins[b].signed.targets = {}
            for path, tf in (rebalanced or {}).items():
                bins[bins_role.get_role_for_target(path)].signed.targets[path] = tf
        for path, tf in changed_targets.items():
            b = bins_role.get_role_for_target(path)
            if b not in bins:
                bins[b] = repo.load_bin(pub, b)
            if tf is None:
                bins[b].signed.targets.pop(path, None)
            else:
                bins[b].signed.targets[path] = tf
        if plan.changed:  # every bin carries the developer delegations, for TUF clients
            for b in all_bins:
                if b not in bins:
                    bins[b] = repo.load_bin(pub, b)
            for md in bins.values():
                plan.apply_to_bin(md.signed)
        for path, tf in shard_targets.items():
            if tf is None:
                targets.signed.targets.pop(path, None)
            else:
                targets.signed.targets[path] = tf
        targets_changed = (
            pub is None or delegation_changed or bool(shard_targets) or root_changed
            or field_changed or "targets" in self.force or plan.changed
        )
        snapshot_changed = (targets_changed or bool(bins) or bool(plan.roles)
                            or "snapshot" in self.force)

        # (5) versions, expiries, signatures — bins, targets, snapshot, timestamp
        to_sign: list[tuple[str, Metadata[Any], Any]] = []
        if root_changed:
            to_sign.append(("root", rootmd, None))
        for name, md in sorted(bins.items()):
            md.signed.version += 1
            md.signed.expires = self._expiry("bins")
            to_sign.append((name, md, targets.signed))
        for name, md in sorted(plan.roles.items()):
            md.signed.version += 1
            md.signed.expires = self._expiry("bins")
            pre = plan.prepared(name, md)  # signed earlier by the developer, same content
            if pre is not None:
                plan.roles[name] = md = pre
                self._prepared_roles.add(name)
            to_sign.append((name, md, plan.delegator()))
        if targets_changed:
            targets.signed.version += 1
            targets.signed.expires = self._expiry("targets")
            to_sign.append(("targets", targets, root))
        self._sign_all(to_sign, root, old_root)

        if snapshot_changed:
            snapshot = fresh_metadata(Snapshot()) if pub is None else copy.deepcopy(pub.snapshot)
            snapshot.signed.version += 1
            snapshot.signed.expires = self._expiry("snapshot")
            if targets_changed:
                snapshot.signed.meta["targets.json"] = MetaFile.from_data(
                    targets.signed.version, metadata_bytes(targets), ["sha256"]
                )
            for name, md in [*bins.items(), *plan.roles.items()]:
                snapshot.signed.meta[f"{name}.json"] = MetaFile.from_data(
                    md.signed.version, metadata_bytes(md), ["sha256"]
                )
            self._sign_all([("snapshot", snapshot, root)], root, old_root)
        else:
            assert pub is not None
            snapshot = pub.snapshot
        timestamp = fresh_metadata(Timestamp()) if pub is None else copy.deepcopy(pub.timestamp)
        timestamp.signed.version += 1
        timestamp.signed.expires = self._expiry("timestamp")
        timestamp.signed.snapshot_meta = MetaFile.from_data(
            snapshot.signed.version, metadata_bytes(snapshot), ["sha256"]
        )
        self._sign_all([("timestamp", timestamp, root)], root, old_root)
        try:  # (7) every role meets its threshold (publish/shortfall.py)
            self.summary.notes += check_missing(self._signed, self.signers, self._used)
        except VerificationError:
            # a developer without the online key: their role is signed, only snapshot and
            # timestamp are missing -> kept in the workspace for the online signer
            if plan.roles and short_of(self._signed) <= {"snapshot", "timestamp"}:
                plan.save_prepared()
                self.summary.prepared = {n: md.signed.version for n, md in plan.roles.items()}
                return self.summary
            raise

        # (6) write: targets, versioned metadata, root, timestamp last
        meta = repo.meta
        for name, md, _ in to_sign:
            if name != "root":
                self.out.writes.append(
                    (meta / f"{md.signed.version}.{name}.json", metadata_bytes(md)))
        if snapshot_changed:
            self.out.writes.append(
                (meta / f"{snapshot.signed.version}.snapshot.json", metadata_bytes(snapshot))
            )
        if root_changed:
            self.out.writes.append((meta / f"{root.version}.root.json", metadata_bytes(rootmd)))
            self.out.writes.append((meta / "root.json", metadata_bytes(rootmd)))
        self.summary.versions["timestamp"] = timestamp.signed.version
        if snapshot_changed:
            self.summary.versions["snapshot"] = snapshot.signed.version
        for name, md, _ in to_sign:
            self.summary.versions[name] = md.signed.version
        self._write(meta / "timestamp.json", metadata_bytes(timestamp))
        return self.summary

    def _sign_all(
        self, items: list[tuple[str, Metadata[Any], Any]], root: Root, old_root: Root | None
    ) -> None:
        for name, md, delegator in items:
            if name == "root":
                allowed = set(root.roles["root"].keyids)
                if old_root is not None:
                    allowed |= set(old_root.roles["root"].keyids)
            elif delegator is not None and isinstance(delegator, Targets):
                d = delegator.delegations
                allowed = (set(d.roles[name].keyids) if d is not None and d.roles
                           else set(bins_of(delegator).keyids))
            else:
                allowed = set(root.roles[name].keyids)
            if name in self._prepared_roles:
                self._signed.append((name, md, delegator, root, old_root))
                continue
            if name != "root":
                md.signatures.clear()
            for s in self.signers:
                if s.public_key.keyid in allowed and s.public_key.keyid not in md.signatures:
                    md.sign(s, append=True, signed_serializer=FAST_CANONICAL)
                    self._used.add(s.public_key.keyid)
            self._signed.append((name, md, delegator, root, old_root))

    def _write(self, timestamp_path: Path, timestamp_bytes: bytes) -> None:
        dirs: set[Path] = set()
        for hashed, plain in self.out.links:
            if not plain.exists():
                with contextlib.suppress(FileExistsError):
                    try:
                        os.link(hashed, plain)
                    except OSError:
                        shutil.copyfile(hashed, plain)
                dirs.add(plain.parent)
        for path, data in self.out.writes:
            # Skip only identical bytes: hash-named targets are immutable, but a versioned
            # metadata file left by a sign that died before its timestamp is referenced by
            # nothing and must be replaced, and root.json always follows the newest root.
            if not path.exists() or path.read_bytes() != data:
                atomic_write(path, data, sync_dir=False, fsync=False)
                dirs.add(path.parent)
                self.summary.files += 1
                self.summary.bytes += len(data)
        # one sync for every file above (thousands of fsyncs cost half a full build),
        # and it happens before the timestamp that makes them reachable is renamed in
        os.sync()
        for d in dirs:
            fsync_dir(d)
        atomic_write(timestamp_path, timestamp_bytes)
        self.summary.files += 1
        self.summary.bytes += len(timestamp_bytes)
        # plain pages after the TUF view: plain pip sees the new version only now
        for path, data in self.out.plain:
            atomic_write(path, data, sync_dir=False, fsync=False)
            self.summary.files += 1
            self.summary.bytes += len(data)
        for path in self.out.unlink_plain:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if not self.refresh:  # a refresh leaves pending changes (and prepared roles) alone
            shutil.rmtree(self.repo.work / "prepared", ignore_errors=True)
        for name in ([] if self.refresh else ["pending.json", "root.json", "delegations.json"]):
            with contextlib.suppress(FileNotFoundError):
                (self.repo.work / name).unlink()
        fsync_dir(self.repo.work)

