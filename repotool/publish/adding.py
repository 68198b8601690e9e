"""The work of ``repo add`` that does not need the repository's lock.

Reading and checking a distribution (``dists.inspect`` and the index round trip) is
most of what ``repo add`` costs, and it is independent per file: large batches are
spread over the machine's cores (``inspect_all``). Copies into the tree are hashed
while they are written (``copy_hashed``), so a file that changes while it is added is
caught with one read, and ``.metadata`` files are written once, unsynced (``sign``
makes everything it publishes durable before ``timestamp.json`` names it).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from repotool.errors import FormatError, RepotoolError, UserError
from repotool.format.index import FileEntry, Project, Shard, shard_of
from repotool.format.layout import dist_target_path, target_disk_path
from repotool.format.wheelmeta import METADATA_SUFFIX
from repotool.publish import dists

__all__ = ["check_indexable", "copy_hashed", "inspect_all", "write_metadata"]

parallel_min_files = 512  # below this, a process pool costs more than it saves
chunk_files = 256  # files per task sent to a worker
copy_chunk = 1024 * 1024

_Result = dists.DistInfo | tuple[str, str | None]  # an inspected file, or (message, hint)


def _entry(info: dists.DistInfo, upload_time: str) -> FileEntry:
    return FileEntry(info.filename, info.version, info.sha256, info.size, info.requires_python,
                     info.requires_dist, upload_time, False)


def _round_trip(infos: Sequence[dists.DistInfo], upload_time: str) -> None:
    """Encode and decode the files' index entries as clients will; raises FormatError."""
    by_shard: dict[str, dict[str, Project]] = {}
    for info in infos:
        projects = by_shard.setdefault(shard_of(info.project), {})
        proj = projects.get(info.project)
        if proj is None:
            projects[info.project] = Project(info.project, info.summary[:512],
                                             [_entry(info, upload_time)])
        else:
            proj.files.append(_entry(info, upload_time))
    for sid, projects in by_shard.items():
        Shard.from_bytes(Shard(sid, projects).to_bytes(), sid)


def check_indexable(infos: Sequence[dists.DistInfo], upload_time: str) -> None:
    """Refuse a file whose index entry clients would refuse (e.g. a Requires-Python longer
    than the shard format allows): one such file would make its whole shard unreadable.

    The files are checked together; only when that fails is each checked alone, so the
    error names the first file at fault (a batch can also fail for being large, which no
    single file is to blame for)."""
    try:
        _round_trip(infos, upload_time)
        return
    except FormatError:
        pass
    for info in infos:
        try:
            _round_trip([info], upload_time)
        except FormatError as e:
            raise UserError(
                f"{info.filename!r} cannot be indexed: {e.message}",
                "its metadata exceeds what the index format allows (docs/format.md)",
            ) from None


def _inspect_chunk(args: tuple[list[Path], str]) -> list[_Result]:
    """Inspect files up to the first that fails, then check the good ones' index entries
    together."""
    paths, upload_time = args
    infos: list[dists.DistInfo] = []
    failed: tuple[str, str | None] | None = None
    for p in paths:
        try:
            infos.append(dists.inspect(p))
        except RepotoolError as e:
            failed = (e.message, e.hint)
            break
    try:
        check_indexable(infos, upload_time)
    except RepotoolError as e:
        return [(e.message, e.hint)]
    out: list[_Result] = list(infos)
    if failed is not None:
        out.append(failed)
    return out


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _fork_safe() -> bool:
    """A forked child gets one thread: with others running, a lock one held stays held."""
    return threading.active_count() == 1


def inspect_all(files: Sequence[Path], upload_time: str) -> list[dists.DistInfo]:
    """``dists.inspect`` and ``check_indexable`` for every file, in order; raises the error
    of the first file at fault, as a sequential pass would.

    Batches of ``parallel_min_files`` or more run in a pool of forked processes, one per
    core, when forking is safe (this process runs no other thread)."""
    chunks = [list(files[i:i + chunk_files]) for i in range(0, len(files), chunk_files)]
    workers = min(_workers(), len(chunks))
    if len(files) < parallel_min_files or workers < 2 or not _fork_safe():
        results = (r for c in chunks for r in _inspect_chunk((c, upload_time)))
        return _collect(results)
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        done = pool.imap(_inspect_chunk, [(c, upload_time) for c in chunks])
        return _collect(r for chunk in done for r in chunk)


def _collect(results: Iterable[_Result]) -> list[dists.DistInfo]:
    infos: list[dists.DistInfo] = []
    for r in results:
        if isinstance(r, tuple):
            raise UserError(r[0], r[1])
        infos.append(r)
    return infos


def _create(path: Path) -> BinaryIO:
    """A new file, mode 0644 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.fchmod(fd, 0o644)
    return os.fdopen(fd, "wb")


def copy_hashed(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` (unsynced); returns the sha256 of the bytes written."""
    h = hashlib.sha256()
    with open(src, "rb", buffering=0) as f, _create(dest) as out:
        while chunk := f.read(copy_chunk):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def write_metadata(root: Path, info: dists.DistInfo, made: set[Path]) -> dict[str, object]:
    """A wheel's METADATA as its own target ``files/P/FILENAME.metadata`` (PEP 658), under
    its hash-prefixed name; the pending add records its sha256 and size. ``made`` holds
    the directories known to exist (one ``mkdir`` per project, not per file)."""
    if info.metadata is None:
        return {}
    sha = hashlib.sha256(info.metadata).hexdigest()
    dest = target_disk_path(root, dist_target_path(info.project, info.filename + METADATA_SUFFIX),
                            sha)
    if dest.parent not in made:
        dest.parent.mkdir(parents=True, exist_ok=True)
        made.add(dest.parent)
    if not dest.exists():
        tmp = dest.with_name(".tmp-" + dest.name)
        with _create(tmp) as out:
            out.write(info.metadata)
        os.replace(tmp, dest)
    return {"metadata_sha256": sha, "metadata_size": len(info.metadata)}
