"""``repotool mirror SOURCE DEST``: a verified, incremental, servable copy of a source.

DEST receives the publisher's own signed bytes — every root version, the delegated
targets roles, targets, snapshot and timestamp — and every target file, so DEST is a
repository any client adds with the publisher's key. Nothing is written to DEST before
it was verified against the source's keyring:

1. python-tuf's ``Updater``, bootstrapped from the keyring's root, refreshes root chain,
   timestamp, snapshot and targets (DEST's own metadata seeds it, so an unchanged
   snapshot or targets is not fetched again; python-tuf re-verifies what it reads and
   refuses a rollback below DEST's timestamp); versions below those the keyring ever
   accepted, and a changed repository name, are refused as ``update`` refuses them.
2. Roots older than the keyring's are verified as a chain ending in it; every delegated
   role reachable from targets is verified as TUF's client does
   (repotool/mirror_walk.py) — from DEST when DEST holds the snapshot's exact bytes,
   else fetched.
3. Every target TUF would resolve is checked in DEST (length and sha256 of its
   hash-prefixed file) and fetched only when missing or wrong: streamed, bounded by its
   signed length, hashed, then renamed into place. Any refusal stops the mirror before
   any metadata is written, naming the file: DEST keeps its old, consistent state.
   A file whose stat (size, mtime, inode, ctime) equals what an earlier run recorded
   after verifying it is not hashed again (repotool/client/mirror_record.py).
4. Plain names (distributions: hardlinks; pages: copies) for plain pip, then the
   versioned metadata, then ``timestamp.json``, each atomically: a kill at any moment
   leaves DEST's previous timestamp naming only files that exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from repotool.client.home import Home
from repotool.client.mirror_plan import Plan
from repotool.client.mirror_record import Record, clean_stale
from repotool.client.state import keyring_state
from repotool.errors import DownloadError, RepotoolError, UserError, VerificationError
from repotool.storage import atomic_write, fsync_dir, hash_file, locked
from repotool.transport.limits import Limits

__all__ = ["MirrorResult", "mirror"]

WORK = ".repotool-mirror"  # DEST's lock and scratch space (a dot directory: not served)


@dataclass
class MirrorResult:
    source: str
    dest: str
    mirror: str | None = None  # the location the metadata came from
    versions: dict[str, int] = field(default_factory=dict)
    targets: int = 0  # target files the repository lists
    files_fetched: int = 0  # of those, fetched now
    files_present: int = 0  # of those, already in DEST with the signed sha256
    files_hashed: int = 0  # DEST files read and hashed now (not trusted from the record)
    metadata_written: int = 0  # metadata files DEST did not have
    bytes_fetched: int = 0  # everything downloaded, metadata included
    changed: bool = False
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def mirror(
    home: Home, source: str, dest: Path, *, now: datetime, limits: Limits,
    progress: Callable[[int, int], None] | None = None, verify: bool = False,
) -> MirrorResult:
    """Make or refresh DEST as a verified copy of ``source``'s repository.

    ``verify``: ignore the record of verified files and hash every file DEST holds.

    Raises:
        UserError: unknown source, DEST is a publisher's workspace or not a directory.
        VerificationError: metadata or a file refused (DEST left as it was).
        DownloadError: no location served what was needed.
    """
    cfg = home.source(source)
    if (dest / ".repotool" / "config.json").exists():
        raise UserError(f"{str(dest)!r} is a publisher's repository, not a mirror",
                        "mirror into an empty or mirror directory")
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{str(dest)!r} is not a directory")
    res = MirrorResult(source, str(dest))
    try:
        root_bytes = (home.keyring(source) / "root.json").read_bytes()
    except OSError as e:
        raise UserError(f"keyring of source {source!r} is unreadable: {e.strerror}",
                        "remove the source and add it again with its key") from None
    marks = keyring_state(home, source).get("versions") or {}
    from repotool.transport.fetcher import Fetcher

    fetcher = Fetcher(limits, home.ca_cert(cfg))
    (dest / WORK).mkdir(parents=True, exist_ok=True)
    with locked(dest / WORK / "lock", f"mirror {str(dest)!r}", wait=False):
        clean_stale(dest, dest / WORK)
        record = Record(dest, dest / WORK, use=not verify)
        worst: RepotoolError | None = None
        for url in cfg.urls:
            work = Path(tempfile.mkdtemp(prefix="run-", dir=dest / WORK))
            try:
                plan = Plan(cfg, url, dest, work, root_bytes, marks, fetcher, now)
                plan.verify_metadata()
                res.mirror, res.versions = url, plan.versions
                _copy(plan, res, progress, record)
                res.bytes_fetched = fetcher.bytes_fetched
                return res
            except _FileRefused:
                raise  # a target refused at every location: stop, DEST unchanged
            except RepotoolError as e:
                res.failures.append(f"{url}: {e.message}")
                if worst is None or e.exit_code > worst.exit_code:
                    worst = e
            finally:
                shutil.rmtree(work, ignore_errors=True)
        assert worst is not None
        if len(cfg.urls) > 1:
            raise type(worst)(f"every location failed: {'; '.join(res.failures)}", worst.hint)
        raise worst


class _FileRefused(VerificationError):
    """A target file no location served with its signed length and sha256."""


def _hashed(path: str, sha: str) -> str:
    head, base = posixpath.split(path)
    return posixpath.join(head, f"{sha}.{base}")


def _copy(plan: Plan, res: MirrorResult, progress: Callable[[int, int], None] | None,
          record: Record) -> None:
    """Steps 3 and 4: files, plain names, versioned metadata, timestamp last."""
    from concurrent.futures import ThreadPoolExecutor

    dest = plan.dest
    base = str(dest)
    items = sorted(plan.targets.items())
    res.targets = len(items)
    done = 0
    # stat every hash-prefixed file here (cheap); only those the record does not vouch
    # for go to the pool, to be hashed or fetched
    trusted: dict[str, os.stat_result] = {}  # relative path -> stat, from the record
    pending: list[tuple[str, Any, os.stat_result | None]] = []
    for path, tf in items:
        rel = _hashed(path, tf.hashes["sha256"])
        try:
            st: os.stat_result | None = os.stat(os.path.join(base, rel))
        except OSError:
            st = None
        if st is not None and record.trusted(rel, st, tf.length, None):
            trusted[rel] = st
            res.files_present += 1
            done += 1
            if progress is not None:
                progress(done, len(items))
        else:
            pending.append((path, tf, st))

    def one(item: tuple[str, Any, os.stat_result | None]) -> tuple[bool, bool,
                                                                    os.stat_result]:
        """(fetched, hashed, the stat it was verified with)."""
        path, tf, st = item
        sha = tf.hashes["sha256"]
        disk = dest / _hashed(path, sha)
        hashed = st is not None and stat.S_ISREG(st.st_mode) and st.st_size == tf.length
        if st is not None and hashed:
            with contextlib.suppress(OSError):
                if hash_file(disk) == (sha, tf.length):
                    return False, True, st
        _fetch_target(plan, path, tf, disk)
        return True, hashed, os.stat(disk)

    refused: list[str] = []
    checked: dict[str, os.stat_result] = {}  # hashed or fetched now -> stat verified with
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="mirror") as pool:
        futures = [pool.submit(one, it) for it in pending]
        for (path, tf, _st), fut in zip(pending, futures, strict=True):
            try:
                fetched, hashed, st = fut.result()
            except _FileRefused as e:
                refused.append(e.message)
                continue
            checked[_hashed(path, tf.hashes["sha256"])] = st
            res.files_fetched += fetched
            res.files_hashed += hashed
            res.files_present += not fetched
            done += 1
            if progress is not None:
                progress(done, len(items))
    if refused:
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        raise _FileRefused(
            f"{plan.cfg.name}: {'; '.join(refused[:3])}{more}; nothing of this state was "
            f"published to {str(dest)!r}, which keeps its previous state",
            "the origin (or a location on the way) serves bytes its own signed metadata "
            "does not vouch for; tell the publisher")
    relinked: set[str] = set()  # hash-prefixed files linked now: their ctime moved
    for path, tf in items:  # plain names for pip: files exist, pages link to them
        if path.startswith(("files/", "simple/")):
            rel = _hashed(path, tf.hashes["sha256"])
            hashed, placed = _plain(dest, path, tf, record,
                                    trusted.get(rel) or checked.get(rel))
            res.files_hashed += hashed
            if placed:
                relinked.add(rel)
    for rel, st in trusted.items():
        if rel in relinked:
            record.keep(rel, st, None)
        else:
            record.carry(rel)
    for rel, st in checked.items():
        record.keep(rel, st, None)
    record.save()
    os.sync()  # every file durable before the metadata that references them
    meta = dest / "metadata"
    names = [n for n in plan.files if n != "timestamp.json"]
    for name in [*names, "timestamp.json"]:
        data = plan.files[name]
        target = meta / name
        with contextlib.suppress(OSError):
            if target.read_bytes() == data:
                continue
        atomic_write(target, data)
        res.metadata_written += 1
        res.changed = True
    res.changed = res.changed or res.files_fetched > 0
    res.failures.extend(plan.reported)


def _fetch_target(plan: Plan, path: str, tf: Any, disk: Path) -> None:
    sha = tf.hashes["sha256"]
    cap = plan.fetcher.limits.file_max_length
    if tf.length > cap:
        raise _FileRefused(f"{path} declares {tf.length} bytes, more than the {cap} allowed")
    disk.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    lied = False
    for url in [plan.url, *[u for u in plan.cfg.urls if u != plan.url]]:
        fd, tmp = tempfile.mkstemp(dir=disk.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                plan.fetcher.download_verified(url + _hashed(path, sha), out, tf.length, sha)
            os.replace(tmp, disk)
            plan.reported.extend(failures)  # a location lied or failed, the next served it
            return
        except VerificationError as e:
            lied = True
            failures.append(e.message)
        except RepotoolError as e:
            failures.append(e.message)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    why = "; ".join(failures)
    if lied:
        raise _FileRefused(f"{path} refused: {why}")
    raise DownloadError(f"{plan.cfg.name}: {path}: {why}")


def _plain(dest: Path, path: str, tf: Any, record: Record,
           hst: os.stat_result | None) -> tuple[bool, bool]:
    """The plain name of a target (hardlink to the hashed name, else copy); ``hst``: the
    hashed file's stat if known. Returns (the existing plain file was hashed, the plain
    name was placed now). A copy is recorded; a hardlink needs no record."""
    sha = tf.hashes["sha256"]
    base = str(dest)
    hashed = os.path.join(base, _hashed(path, sha))
    plain = os.path.join(base, path)
    hashed_now = False
    with contextlib.suppress(OSError):
        st = os.stat(plain)
        if hst is None:
            hst = os.stat(hashed)
        if (st.st_ino, st.st_dev) == (hst.st_ino, hst.st_dev):
            return False, False
        if record.trusted(path, st, tf.length, sha):
            record.carry(path)
            return False, False
        if stat.S_ISREG(st.st_mode) and st.st_size == tf.length:
            hashed_now = True
            if hash_file(Path(plain)) == (sha, tf.length):
                record.keep(path, st, sha)
                return True, False
    _place(path, Path(hashed), Path(plain), record, sha)
    return hashed_now, True


def _place(path: str, hashed: Path, plain: Path, record: Record, sha: str) -> None:
    tmp = plain.with_name(f".tmp-{hashlib.sha256(path.encode()).hexdigest()[:16]}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(hashed, tmp)
        linked = True
    except OSError:
        shutil.copyfile(hashed, tmp)
        linked = False
    os.replace(tmp, plain)
    fsync_dir(plain.parent)
    if not linked:  # copied from the verified hashed file
        record.keep(path, plain.stat(), sha)
