"""Sources: add one (its first root fetched and verified at one of its locations, then
its keyring saved), remove one, clean its cache.

Mirrors: ``source add`` fetches the first root *and* verifies it at one location, else
tries the next.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.client import history
from repotool.client.home import Home, SourceConfig
from repotool.errors import DownloadError, RepotoolError, UserError, VerificationError
from repotool.storage import atomic_write, fsync_dir
from repotool.transport.limits import Limits
from repotool.trust.root import (
    check_root,
    download_root,
    read_root_file,
    repo_name,
)

if TYPE_CHECKING:
    from repotool.transport.fetcher import Fetcher

__all__ = ["add_source", "clean", "remove_source"]


def _first_root(
    cfg: SourceConfig, fetcher: Fetcher, key_ids: list[str],
    report: Callable[[str], None] | None,
) -> tuple[bytes, Any, str]:
    """``metadata/1.root.json`` fetched and verified (:func:`check_root`) at the first
    location that serves a good one: a location that fails or lies is recorded as
    ``URL: why`` and the next is tried; the failures are passed to ``report`` when a
    later location served the root.

    Raises:
        VerificationError: every location failed and at least one lied (exit 3).
        DownloadError: every location was unreachable or answered with an error.
    """

    failures: list[tuple[str, RepotoolError]] = []
    for url in cfg.urls:
        full = f"{url}metadata/1.root.json"
        try:
            data = download_root(fetcher, full)
            md = check_root(data, full, key_ids)
        except RepotoolError as e:
            failures.append((full, e))
            continue
        if report is not None:
            for u, err in failures:
                report(f"location failed, next one used: {_where(u, err)}")
        return data, md, full
    if len(failures) == 1:
        only = failures[0][1]
        hint = only.hint or "check the URL; it must be the repository directory holding metadata/"
        raise type(only)(_where(*failures[0]), hint)
    lied = any(isinstance(e, VerificationError) for _, e in failures)
    raise (VerificationError if lied else DownloadError)(
        "could not get the repository's first root from any location: "
        + "; ".join(_where(u, e) for u, e in failures),
        "check the URLs; each must be the repository directory holding metadata/",
    )


def _where(url: str, e: RepotoolError) -> str:
    """``URL: message``, without repeating a URL the message already names."""
    return e.message if e.message.startswith(url) else f"{url}: {e.message}"


def add_source(
    home: Home,
    cfg: SourceConfig,
    *,
    key_ids: list[str],
    root_file: Path | None,
    ca_cert: Path | None,
    limits: Limits,
    report: Callable[[str], None] | None = None,
    how: str | None = None,
) -> Any:
    """Bootstrap a source's keyring and save it; returns the trusted root (``Root``).
    ``how`` is what the keyring's history says of it (by key, fingerprint, root file).

    With ``key_ids``: the repository's first root must list every one of them as a
    root key and carry a valid signature by each, and meet its own threshold.
    With ``root_file``: that root is the anchor (it must meet its own threshold).

    Raises:
        UserError: the name exists, a file is unreadable.
        VerificationError: the root is not what the user's keys vouch for.
        DownloadError: no location served the root.
    """
    sdir = home.source_dir(cfg.name)
    ca_bytes = None
    if ca_cert is not None:
        try:
            ca_bytes = ca_cert.read_bytes()
        except OSError as e:
            raise UserError(f"cannot read CA certificate {str(ca_cert)!r}: {e.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_bytes:
            raise UserError(f"{str(ca_cert)!r} is not a PEM certificate")
    with home.lock():
        if home.exists(cfg.name):
            raise UserError(
                f"a source named {cfg.name!r} already exists",
                f"remove it first ('repotool source remove {cfg.name}') or pick another name",
            )
        others = home.sources()
        if root_file is not None:
            root_bytes, md = read_root_file(root_file, key_ids)
        else:
            from repotool.transport.fetcher import Fetcher

            with tempfile.NamedTemporaryFile(suffix=".pem") as tmp:
                if ca_bytes:
                    tmp.write(ca_bytes)
                    tmp.flush()
                fetcher = Fetcher(limits, tmp.name if ca_bytes else None)
                root_bytes, md, _origin = _first_root(cfg, fetcher, key_ids, report)
        root = md.signed
        cfg.repo_name = repo_name(root)
        cfg.trusted_keys = sorted(root.roles["root"].keyids)
        cfg.order = max([s.order for s in others], default=0) + 1
        cfg.ca_cert = ca_bytes is not None
        tmpdir = Path(tempfile.mkdtemp(dir=home.root if home.root.exists() else None))
        try:
            stage = SourceConfig(**{**cfg.__dict__})
            kr = tmpdir / "keyring"
            if how is None:
                how = (f"added from root file {root_file}" if root_file is not None
                       else "added by key " + ", ".join(key_ids))
            history.append(kr, [history.entry(root, root_bytes, how, datetime.now(UTC))])
            atomic_write(kr / "root.json", root_bytes)
            atomic_write(kr / "state.json", json.dumps({"versions": {}}).encode())
            if ca_bytes:
                atomic_write(kr / "ca.pem", ca_bytes)
            atomic_write(tmpdir / "source.json", stage.to_bytes())
            sdir.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmpdir, sdir)
            fsync_dir(sdir.parent)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return root


def remove_source(home: Home, name: str) -> None:
    sdir = home.source_dir(name)
    with home.lock():
        home.source(name)
        with home.source_lock(name):
            trash = sdir.with_name(f".removing-{name}")
            shutil.rmtree(trash, ignore_errors=True)  # left by a removal killed half-way
            os.replace(sdir, trash)
            shutil.rmtree(trash, ignore_errors=True)


def clean(home: Home, name: str) -> None:
    home.source(name)
    with home.source_lock(name):
        cache = home.cache(name)
        if cache.exists():
            trash = cache.with_name(".cache-cleaning")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(cache, trash)
            shutil.rmtree(trash, ignore_errors=True)
