"""``download``: resolve, then fetch, verify and place each chosen file; and the
verified file cache every consumer (download, the proxy, build checks) reads through.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repotool.client.home import Home
from repotool.client.state import SourceView
from repotool.client.views import Views
from repotool.errors import DownloadError, RepotoolError, VerificationError
from repotool.storage import fsync_dir, hash_file

__all__ = ["cached_file", "download"]


def cached_file(
    home: Home, view: SourceView, project: str, entry: Any, limits: Any,
    *, report: Callable[[str], None] | None = None,
) -> Path:
    """A verified copy of ``entry`` in the source's file cache, fetched if needed.

    A cached copy is re-hashed before use (the cache is not trusted); mirrors are tried
    in order and each failure is reported: to ``report`` when a later location served
    the file (SPEC §3.6 "reports which one failed"), in the error when none did.

    Raises:
        VerificationError: every location served wrong bytes (or any did, and the rest
            were unreachable).
        DownloadError: no location could be reached.
    """
    from repotool import progress
    from repotool.format.layout import dist_target_path, hashed_name
    from repotool.transport.fetcher import Fetcher

    files = view.cache / "files"
    dest = files / entry.sha256
    if dest.exists():
        if hash_file(dest) == (entry.sha256, entry.size):
            return Path(dest)
        dest.unlink()
    cap = limits.file_max_length
    if entry.size > cap:  # endless data, signed: refused unfetched
        raise VerificationError(
            f"{entry.filename} from source {view.cfg.name!r}: the signed index declares "
            f"{entry.size} bytes, more than the {cap} a file may have")
    files.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(limits, home.ca_cert(view.cfg))
    path = hashed_name(dist_target_path(project, entry.filename), entry.sha256)
    failures: list[tuple[str, RepotoolError]] = []
    for url in view.cfg.urls:
        fd, tmp = tempfile.mkstemp(dir=files, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, \
                    progress.task(entry.filename, total=entry.size, unit="bytes") as bar:
                fetcher.download_verified(url + path, bar.writer(out), entry.size,
                                          entry.sha256)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
            if report is not None:
                for u, e in failures:
                    report(f"{entry.filename}: location failed, next one used: {_where(u, e)}")
            return Path(dest)
        except RepotoolError as e:
            failures.append((url, e))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    msg = "; ".join(_where(u, e) for u, e in failures)
    if any(isinstance(e, VerificationError) for _, e in failures):
        raise VerificationError(f"{entry.filename} from source {view.cfg.name!r} refused: {msg}")
    raise DownloadError(f"{entry.filename} from source {view.cfg.name!r}: {msg}")


def _where(url: str, e: RepotoolError) -> str:
    """``URL: message``, without repeating a URL the message already names."""
    return e.message if url in e.message else f"{url}: {e.message}"


def download(
    home: Home, requirements: list[str], dest_dir: Path, *, deps: bool, limits: Any,
    report: Callable[[str], None] | None = None, target: Any = None, pre: bool = False,
) -> list[dict[str, Any]]:
    """Resolve the requirements for ``target`` (a ``targets.Target``; default: this
    interpreter) as ``resolver.resolve_requirements`` documents, then fetch, verify and
    place each chosen file into ``dest_dir``; never leaves a partial or unverified file
    there, and fetches nothing unless the whole set resolves. Locations that failed
    before another served a file, and named requirements whose markers exclude the
    target, are passed to ``report``.

    Raises:
        UsageError: a malformed or direct-URL requirement (before anything is read).
        UserError: the requirements cannot be satisfied (the conflict is named).
    """
    from repotool import progress
    from repotool.client.resolver import Requirement, resolve_requirements
    from repotool.client.targets import Target

    parsed = [Requirement.parse(r) for r in requirements]
    target = target or Target.current()
    roots = []
    for req in parsed:
        if req.marker is not None and not target.marker_ok(req.marker):
            if report is not None:
                report(f"ignoring {req.text!r}: its markers exclude {target.label}")
            continue
        roots.append(req)
    chosen = resolve_requirements(Views(home), roots, target, deps=deps, pre=pre)
    done = []
    with progress.task("download", total=len(chosen), unit="files") as bar:
        for cand in chosen:
            entry, view = cand.entry, cand.view
            cached = cached_file(home, view, cand.name, entry, limits, report=report)
            target_path = dest_dir / entry.filename
            dest_dir.mkdir(parents=True, exist_ok=True)  # only once a verified file is at hand
            _place(cached, target_path, entry)
            done.append({"project": cand.name, "version": entry.version,
                         "filename": entry.filename, "sha256": entry.sha256, "size": entry.size,
                         "source": view.cfg.name, "path": str(target_path)})
            bar.advance()
    return done


def _place(cached: Path, target: Path, entry: Any) -> None:
    """Copy a verified cached file to ``target`` atomically, re-checking its hash."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, open(cached, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        if hash_file(Path(tmp)) != (entry.sha256, entry.size):
            raise VerificationError(f"{entry.filename} changed while it was copied")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(target.parent)
