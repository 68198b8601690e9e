"""Pending changes applied to the index: the shards, simple pages and targets they change.

Part of one ``sign`` run (``repotool.publish.signing``): ``add``, ``remove`` and ``yank``
apply in the order they were made ("seq") to the shards of the projects they touch; each
touched project gets new simple pages, the root pages follow the set of projects, and
every new or unlisted file becomes a changed target of the bins. Nothing is written
here: the files go to ``Outputs``, which the sign writes once every role is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import TargetFile

from repotool.format import simple
from repotool.format.index import FileEntry, Project, Shard
from repotool.format.index2 import SHARD_ENTRIES, IndexLayout, choose_bits
from repotool.format.layout import (
    ROOT_PAGES,
    dist_target_path,
    plain_target_path,
    project_page_paths,
    target_disk_path,
)
from repotool.publish.tree import (
    Pending,
    Published,
    RepositoryTree,
    entry_from_pending,
    index_format,
)

__all__ = ["Changes", "Outputs", "apply_pending"]


class Outputs:
    """The files one sign writes, gathered in memory before anything is written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes: list[tuple[Path, bytes]] = []  # hash-prefixed targets and metadata
        self.plain: list[tuple[Path, bytes]] = []  # plain-name simple pages
        self.links: list[tuple[Path, Path]] = []  # dist: hashed -> plain
        self.unlink_plain: list[Path] = []  # plain pages of projects no longer listed

    def add_target(self, path: str, data: bytes) -> TargetFile:
        """A simple page: written under its hashed name, and its plain name for pip."""
        tf = TargetFile.from_data(path, data, ["sha256"])
        self.writes.append((target_disk_path(self.root, path, tf.hashes["sha256"]), data))
        self.plain.append((plain_target_path(self.root, path), data))
        return tf


@dataclass
class Changes:
    bin_targets: dict[str, TargetFile | None]  # target path held by a bin -> new, or None
    shard_targets: dict[str, TargetFile | None]  # shard path (a target of targets) -> ...
    projects: int  # projects changed
    layout: IndexLayout  # how the new index is sharded (and its counts, format 2)


def apply_pending(
    tree: RepositoryTree, pub: Published | None, pending: Pending, out: Outputs,
    fmt: int = 1,
) -> Changes:
    """The new shards and pages of ``pending`` on top of ``pub``, gathered in ``out``;
    ``fmt`` is the index format to write (a published format 1 index is converted)."""
    changed: dict[str, TargetFile | None] = {}  # bin-held target path -> new/None
    shard_targets: dict[str, TargetFile | None] = {}
    shards: dict[str, Shard] = {}
    old = tree.layout(pub)
    # changes apply in the published layout; a first publication works in one shard
    work = old or (IndexLayout(1, 8) if fmt == 1 else IndexLayout(2, 0))
    before: dict[str, tuple[int, int]] = {}  # shard -> (files, projects) as published

    def shard_for(project: str) -> Shard:
        sh = work.shard_of(project)
        if sh not in shards:
            shards[sh] = tree.load_shard(pub, sh, work)
            before[sh] = _counts(shards[sh])
        return shards[sh]

    touched: set[str] = set()
    from dataclasses import replace

    from packaging.version import Version

    newest: dict[str, Version] = {}  # project -> its newest version, as files are added
    keyed = index_format(pub) >= 2  # metadata keys in entries: format 2 readers only

    # in the order the changes were made ("seq"; older pending files: adds, removes, yanks)
    events = [(kind, e) for kind in ("add", "remove", "yank") for e in pending.get(kind, [])]
    events.sort(key=lambda ke: int(ke[1].get("seq", 0)))
    for kind, e in events:
        if kind == "add":
            proj = shard_for(e["project"]).projects.setdefault(
                e["project"], Project(e["project"]))
            if any(f.filename == e["filename"] for f in proj.files):
                continue
            entry = entry_from_pending(e)
            msha, msize = entry.metadata_sha256, entry.metadata_size
            if not keyed:
                entry = replace(entry, metadata_sha256=None, metadata_size=None)
            v = Version(entry.version)
            if e["project"] not in newest:  # once per project: a scan per add is quadratic
                newest[e["project"]] = max(proj.versions(), default=v)
            if v >= newest[e["project"]]:
                newest[e["project"]] = v
                proj.summary = e["summary"][:512]
            proj.files.append(entry)
            path = dist_target_path(e["project"], e["filename"])
            changed[path] = TargetFile(e["size"], {"sha256": e["sha256"]}, path)
            if msha is not None:  # FILENAME.metadata (PEP 658): a bin target in any format
                mpath = path + ".metadata"
                changed[mpath] = TargetFile(msize or 0, {"sha256": msha}, mpath)
            touched.add(e["project"])
        elif kind == "remove":
            rproj = shard_for(e["project"]).projects.get(e["project"])
            if rproj is None:
                continue
            keep = []
            for f in rproj.files:
                if e["version"] is None or Version(f.version) == Version(e["version"]):
                    changed[dist_target_path(rproj.name, f.filename)] = None
                    if f.is_wheel:  # its .metadata, listed in the entry or not (format 1)
                        changed[dist_target_path(rproj.name, f.filename) + ".metadata"] = None
                else:
                    keep.append(f)
            rproj.files = keep
            newest.pop(e["project"], None)
            touched.add(e["project"])
        else:
            yproj = shard_for(e["project"]).projects.get(e["project"])
            if yproj is None:
                continue
            yproj.files = [
                FileEntry(**{**f.to_dict(), "requires_dist": f.requires_dist,
                             "yanked": e["reason"] or True})
                if Version(f.version) == Version(e["version"]) else f
                for f in yproj.files
            ]
            touched.add(e["project"])
    for path, tf in changed.items():  # plain names for pip, of the files still listed
        if tf is not None:
            hashed = target_disk_path(tree.root, path, tf.hashes["sha256"])
            out.links.append((hashed, plain_target_path(tree.root, path)))

    projects_before = tree.all_projects(pub) if touched else set()
    projects_after = set(projects_before)
    for name in sorted(touched):
        sh = shard_for(name)
        tproj = sh.projects.get(name)
        html_path, json_path = project_page_paths(name)
        if tproj is None or not tproj.files:
            sh.projects.pop(name, None)
            projects_after.discard(name)
            changed[html_path] = changed[json_path] = None
            out.unlink_plain += [plain_target_path(tree.root, p)
                                 for p in (html_path, json_path)]
            continue
        projects_after.add(name)
        changed[html_path] = out.add_target(html_path, simple.project_html(tproj))
        changed[json_path] = out.add_target(json_path, simple.project_json(tproj))
    if projects_after != projects_before or pub is None:
        for page, render in zip(ROOT_PAGES, (simple.root_html, simple.root_json), strict=True):
            changed[page] = out.add_target(page, render(projects_after))
    new = work
    emit = {work.shard_of(p) for p in touched}
    if fmt == 2:
        if old is None or old.format == 1:  # every shard is loaded: exact counts
            for path in pub.targets.signed.targets if pub is not None else ():
                sid = work.shard_id(path)
                if sid is not None and sid not in shards:
                    shards[sid] = tree.load_shard(pub, sid, work)
                    before[sid] = _counts(shards[sid])
            files, projects = _counts(*shards.values())
        else:
            files, projects = old.files, old.projects
            for sid, sh in shards.items():
                nf, np_ = _counts(sh)
                files += nf - before[sid][0]
                projects += np_ - before[sid][1]
        current = old.bits if old is not None and old.format == 2 else None
        bits = choose_bits(current, files, SHARD_ENTRIES)
        new = IndexLayout(2, bits, files, projects)
        if (work.format, work.bits) != (2, bits):  # re-balance: regroup every shard
            for path in pub.targets.signed.targets if pub is not None else ():
                sid = work.shard_id(path)
                if sid is not None and sid not in shards:
                    shards[sid] = tree.load_shard(pub, sid, work)
            for sid in shards:
                shard_targets[work.path(sid)] = None
            regrouped: dict[str, Shard] = {}
            for sh in shards.values():
                for name, proj in sh.projects.items():
                    nsid = new.shard_of(name)
                    regrouped.setdefault(nsid, Shard(nsid)).projects[name] = proj
            shards, emit = regrouped, set(regrouped)
    for sid, sh in shards.items():
        if sid not in emit:
            continue
        path = new.path(sid)
        if sh.projects:
            tf = TargetFile.from_data(path, data := new.encode(sh), ["sha256"])
            out.writes.append((target_disk_path(tree.root, path, tf.hashes["sha256"]), data))
            shard_targets[path] = tf
        else:
            shard_targets[path] = None
    return Changes(changed, shard_targets, len(touched), new)


def _counts(*shards: Shard) -> tuple[int, int]:
    """(file entries, projects) of ``shards``."""
    return (sum(len(p.files) for sh in shards for p in sh.projects.values()),
            sum(len(sh.projects) for sh in shards))
