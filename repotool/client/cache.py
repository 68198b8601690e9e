"""A source's cache: generation directories (the metadata python-tuf verified and the
derived project list) and the content-addressed index shards, fetched and verified
against their signed length and sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.client.state import read_cached
from repotool.errors import VerificationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from repotool.format.index2 import IndexLayout
    from repotool.transport.fetcher import Fetcher

__all__ = ["META_FILES", "Verified", "collect_garbage", "fetch_shards", "index_of"]

META_FILES = ("timestamp.json", "snapshot.json", "targets.json")


class Verified:
    """The top-level metadata python-tuf verified, read back from the files its
    ``Updater`` persisted in ``meta_dir`` after verifying each (the Updater's public
    output) rather than from its private trusted set."""

    def __init__(self, meta_dir: Path) -> None:
        from tuf.api.metadata import Metadata

        self._roles = {role: Metadata.from_bytes((meta_dir / f"{role}.json").read_bytes()).signed
                       for role in ("root", "timestamp", "snapshot", "targets")}
        self.extra_expires: dict[str, str] = {}  # delegated roles (client/delegated.py)

    def __getitem__(self, role: str) -> Any:
        return self._roles[role]

    @property
    def root(self) -> Any:
        return self._roles["root"]

    @property
    def targets(self) -> Any:
        return self._roles["targets"]


def fetch_shards(
    source: str, url: str, todo: list[tuple[str, str, Any, Path]], fetcher: Fetcher,
    layout: IndexLayout,
    check_dev: Callable[[str, bytes], None] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Verify (length, sha256) and summarize each shard in ``todo`` (format 2: its
    projects' heads; file entries are decoded when used), from the cache when
    a copy with the signed hash is there, else from ``url``: streamed into a temporary
    file in the shard cache while hashed (never more than its signed length, which the
    caller capped), then moved into place. A pseudo-shard ``~P`` is delegated project
    P's own index, checked by ``check_dev`` (client/delegated.py) and always re-checked.

    Raises:
        VerificationError: a shard does not match its signed hash, or is malformed.
        DownloadError: a shard could not be fetched.
    """
    from concurrent.futures import ThreadPoolExecutor

    from repotool.format.index import summarize
    from repotool.format.layout import hashed_name
    from repotool.trust.checks import check_head, heads

    def one(item: tuple[str, str, Any, Path]) -> tuple[str, dict[str, dict[str, Any]]]:
        sid, path, tf, target = item
        meta = {"sha256": tf.hashes["sha256"], "length": tf.length}
        data = read_cached(target, meta)
        if data is None:
            furl = url + hashed_name(path, meta["sha256"])
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            try:
                # no fsync: the file is content-addressed and re-hashed on every read
                with os.fdopen(fd, "wb") as out:
                    fetcher.download_verified(furl, out, tf.length, meta["sha256"])
                os.replace(tmp, target)
            except VerificationError as e:
                raise VerificationError(
                    f"{source}: index shard {path} does not match its signed hash or length "
                    f"(mix-and-match or tampering): {e.message}"
                ) from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            data = read_cached(target, meta)
            if data is None:
                raise VerificationError(
                    f"{source}: index shard {path} changed in the cache once verified")
        if sid.startswith("~") and check_dev is not None:  # a delegated project's index
            from repotool.client.delegated import real_shard

            summary = summarize(data, real_shard(sid))
            check_dev(sid, data)
            return sid, {n: {**p, "shard": sid} for n, p in summary.items()}
        if layout.format == 2:  # the heads only: file entries are decoded when used
            check_head(source, layout, data.split(b"\n", 1)[0], sid)
            return sid, heads(source, layout, data, sid)
        return sid, summarize(data, sid)

    if len(todo) <= 1:
        return dict(one(item) for item in todo)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="shards") as pool:
        return dict(pool.map(one, todo))


def index_of(gen: Path) -> dict[str, Any]:
    data = (gen / "projects.json").read_bytes()
    return {"gen": gen.name, "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}


def collect_garbage(cache: Path, keep_gens: set[str], keep_shards: set[str]) -> None:
    for p in cache.iterdir():
        if p.is_dir() and p.name.startswith("gen-") and p.name not in keep_gens:
            shutil.rmtree(p, ignore_errors=True)
    shard_dir = cache / "shards"
    for p in shard_dir.iterdir():
        if p.name.endswith(".json") and p.name[:-5] not in keep_shards:
            with contextlib.suppress(OSError):
                p.unlink()
