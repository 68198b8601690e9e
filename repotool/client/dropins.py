"""The drop-in ``sources.d/NAME.sources`` files at work (format: ``client/sourcesfile.py``).

* ``source add`` writes the file of the source it adds (:func:`add_checked`), or adds
  the source a file describes (:func:`add_from_file`);
* ``update`` first (:func:`update_with_dropins`) parses every file that has no source
  yet (:func:`pending`) and every file that changed since its source last took it in,
  refusing them all if any is malformed, so bad input changes nothing; then it sets up
  the new ones (:func:`pick_up`, checked against the keys the file names: no trust on
  first use) and applies the edited ones (:func:`apply_edits`: URIs, Only, Priority and
  Clock-Skew; **not** Signed-By — once set up, the keyring follows the repository's own
  root rotations, and an edited file never changes the keys trusted);
* ``source remove`` deletes the file first (:func:`forget`), so a removal killed
  half-way does not bring the source back.

``HOME/sources/NAME/sources-file.sha256`` records the digest of the file the source last
took in: an unchanged file is not parsed again (the no-change ``update`` stays lean).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repotool.client.home import Home, SourceConfig
from repotool.client.sourcesfile import SourcesEntry, file_max_length, parse, read, render
from repotool.errors import RepotoolError, UserError
from repotool.storage import atomic_write, safe_name
from repotool.transport.limits import Limits

__all__ = ["add_checked", "add_from_file", "apply_edits", "forget", "pending", "pick_up",
           "update_with_dropins", "write"]

_DIGEST = "sources-file.sha256"


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"{path}:1: {what}", "see examples/corp.sources")


def _record(home: Home, name: str, data: bytes) -> None:
    atomic_write(home.source_dir(name) / _DIGEST, hashlib.sha256(data).hexdigest().encode())


def _recorded(home: Home, name: str) -> str | None:
    try:
        return (home.source_dir(name) / _DIGEST).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(file_max_length + 1)
    except OSError as e:
        raise UserError(f"cannot read {str(path)!r}: {e.strerror}") from None


def _path(home: Home, name: str) -> Path:
    home.source_dir(name)  # validates the name
    return home.sources_d / f"{name}.sources"


def write(home: Home, entry: SourcesEntry) -> Path:
    """``NAME.sources`` for ``entry``, recorded as taken in by its (existing) source."""
    path = _path(home, entry.name)
    data = render(entry).encode()
    atomic_write(path, data, mode=0o644)
    _record(home, entry.name, data)
    return path


def forget(home: Home, name: str) -> bool:
    """Delete ``NAME.sources``; True if there was one."""
    try:
        _path(home, name).unlink()
    except FileNotFoundError:
        return False
    return True


def pending(home: Home) -> list[Path]:
    """``*.sources`` files with no source set up yet (hidden files ignored)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        files = sorted(p for p in home.sources_d.iterdir()
                       if p.name.endswith(".sources") and not p.name.startswith("."))
        return [p for p in files if not (safe_name(p.name[:-8]) and home.exists(p.name[:-8]))]
    return []


def pick_up(
    home: Home, limits: Limits, report: Callable[[str], None] | None = None,
) -> list[tuple[str, RepotoolError | None]]:
    """Set up the source of every pending file; ``(name, error or None)`` each.

    Raises:
        UserError: a pending file is malformed (nothing is set up then).
    """
    from repotool.client.sources import add_source

    entries = []
    for path in pending(home):
        stem = path.name[:-len(".sources")]
        if not safe_name(stem):
            raise _fail(path, f"{stem!r} is not a source name")
        data = _read_bytes(path)
        entries.append((parse(data, str(path), expect_name=stem), data))
    done: list[tuple[str, RepotoolError | None]] = []
    for e, data in entries:
        try:
            add_source(home, e.config(), key_ids=e.key_ids(), root_file=None, ca_cert=None,
                       limits=limits, report=report)
            _record(home, e.name, data)
            done.append((e.name, None))
        except RepotoolError as err:
            done.append((e.name, err))
    return done


def _edited(home: Home) -> list[tuple[Path, SourcesEntry, bytes]]:
    """Files of existing sources that changed since their source took them in, parsed."""
    out = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for path in sorted(home.sources_d.iterdir()):
            stem = path.name[:-len(".sources")]
            if not path.name.endswith(".sources") or path.name.startswith(".") \
                    or not safe_name(stem) or not home.exists(stem):
                continue
            data = _read_bytes(path)
            if hashlib.sha256(data).hexdigest() != _recorded(home, stem):
                out.append((path, parse(data, str(path), expect_name=stem), data))
    return out


def apply_edits(home: Home, edits: list[tuple[Path, SourcesEntry, bytes]],
                report: Callable[[str], None] | None = None) -> None:
    """Take in edited files: their URIs, Only, Priority and Clock-Skew (never keys)."""
    for path, e, data in edits:
        with home.lock():
            cfg = home.source(e.name)
            new = dataclasses.replace(cfg, url=e.uris[0], mirrors=list(e.uris[1:]),
                                      only=list(e.only), priority=e.priority,
                                      clock_skew=e.clock_skew)
            if new != cfg:
                home.save_source(new)
                if report is not None:
                    report(f"{e.name}: settings from {path} applied (URIs, Only, Priority, "
                           "Clock-Skew; Signed-By is used only to set a source up)")
            _record(home, e.name, data)


def update_with_dropins(
    home: Home, names: list[str] | None, *, now: Any, limits: Limits,
    allow_name_change: bool = False, report: Callable[[str], None] | None = None,
) -> list[Any]:
    """``update``, after setting up the sources of pending drop-in files: a file that
    could not be set up (its root unreachable, or not what its Signed-By names) is one
    failed result, as a failed source is; the other sources are updated all the same.

    Raises:
        UserError: a pending file is malformed (nothing changed), or there is no source.
    """
    from repotool.client.update import UpdateResult, update

    edits = _edited(home)  # parsed before anything changes, as pick_up parses first
    failed = {n: e for n, e in pick_up(home, limits, report) if e is not None}
    apply_edits(home, edits, report)
    if not names and not failed and not home.sources():
        raise UserError("no sources", "add one with 'repotool source add NAME URL --key PUB'")
    results = [
        UpdateResult(n, exit_code=e.exit_code, hint=e.hint,
                     error=f"cannot set up source {n!r} from {_path(home, n)}: {e.message}")
        for n, e in failed.items() if not names or n in names
    ]
    rest = [n for n in names if n not in failed] if names else None
    if rest is None or rest:
        results += update(home, rest, now=now, limits=limits,
                          allow_name_change=allow_name_change)
    return results


def add_checked(home: Home, cfg: SourceConfig, key_ids: list[str],
                add: Callable[[], Any]) -> Any:
    """``add()`` (``sources.add_source`` for ``cfg``), then ``NAME.sources`` written with
    the fingerprints the user gave (none with ``--root``: no file then). Refused before
    anything is fetched when a drop-in file of that name waits to be set up."""
    path = _path(home, cfg.name)
    if path.exists() and not home.exists(cfg.name):
        raise UserError(f"{path} already describes a source {cfg.name!r}",
                        "run 'repotool update' to set it up, or remove the file")
    trusted = add()
    if key_ids:
        write(home, SourcesEntry(cfg.name, tuple(cfg.urls), tuple(key_ids),
                                 only=tuple(cfg.only), priority=cfg.priority,
                                 clock_skew=cfg.clock_skew))
    return trusted


def add_from_file(home: Home, path: Path, *, limits: Limits,
                  report: Callable[[str], None] | None = None) -> tuple[SourceConfig, Any]:
    """``source add --from FILE``: the source FILE describes, checked as at ``update``,
    and FILE's text (normalized) kept as ``sources.d/NAME.sources``."""
    from repotool.client.sources import add_source

    entry = read(path)
    cfg: SourceConfig = entry.config()
    ids = entry.key_ids()
    trusted = add_checked(home, cfg, [], lambda: add_source(
        home, cfg, key_ids=ids, root_file=None, ca_cert=None, limits=limits, report=report))
    write(home, entry)
    return cfg, trusted
