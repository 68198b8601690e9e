"""The client's shell: add sources, update them through python-tuf, keep verified state.

``update`` of one source, in order (each step refuses with VerificationError):

1. Bootstrap python-tuf's ``Updater`` from the source's keyring root, never from the
   cache, and judge expiry against one reference time (now − the source's clock skew).
2. ``refresh()``: root chain, timestamp, snapshot, targets — TUF's client workflow.
3. Refuse versions lower than the highest ever accepted (kept in the keyring, so a
   deleted cache does not reopen rollback) and a changed repository name.
4. Fetch each index shard the new targets names whose sha256 is not cached, bounded
   by its signed length, verify length and sha256, and parse it.
5. Commit: a new generation directory (metadata + derived project list) is written,
   then the keyring's ``state.json`` — naming that generation and its digest — is
   replaced atomically: that write is the commit. A kill at any point leaves the
   previous generation committed and usable.

Step 0, before all of these, is the no-change fast path (see ``_unchanged``).

Mirrors: steps 1–4 run against the primary URL, then each mirror in turn, each from
the trusted state; a failing one is reported by URL and the next is tried. ``source add``
does the same for the first root: fetched *and* verified at one location, else the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.client.home import Home, SourceConfig
from repotool.client.state import SourceView, keyring_state, load_view, read_cached
from repotool.errors import (
    FormatError,
    RepotoolError,
    UserError,
    VerificationError,
)
from repotool.storage import atomic_write, fsync_dir
from repotool.transport.limits import Limits
from repotool.trust.root import _parse_root, _repo_name, _short, root_max_length
from repotool.trust.updater import make_updater

if TYPE_CHECKING:
    from repotool.transport.fetcher import Fetcher
    from repotool.transport.probe import Probe

__all__ = [
    "SourceView",
    "UpdateResult",
    "load_view",
    "update",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")
_META_FILES = ("timestamp.json", "snapshot.json", "targets.json")


@dataclass
class UpdateResult:
    source: str
    ok: bool = False
    changed: bool = False
    exit_code: int = 0
    error: str | None = None
    hint: str | None = None
    mirror: str | None = None
    failures: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    files_fetched: int = 0
    bytes_fetched: int = 0
    projects: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def update(
    home: Home,
    names: list[str] | None,
    *,
    now: datetime,
    limits: Limits,
    allow_name_change: bool = False,
) -> list[UpdateResult]:
    """Update the named sources (all when None); one result per source, never raising
    for one source's failure."""
    from repotool import progress

    cfgs = [home.source(n) for n in names] if names else home.sources()
    results = []
    with progress.task("update", total=len(cfgs), unit="sources") as bar:
        for cfg in cfgs:
            bar.describe(f"update {cfg.name}")
            res = UpdateResult(cfg.name)
            try:
                with home.source_lock(cfg.name):
                    _update_source(home, cfg, now, limits, allow_name_change, res)
                res.ok = True
            except RepotoolError as e:
                res.error, res.hint, res.exit_code = e.message, e.hint, e.exit_code
            _record_status(home, cfg.name, res, now)
            results.append(res)
            bar.advance()
    return results


def _record_status(home: Home, name: str, res: UpdateResult, now: datetime) -> None:
    """The last update's outcome: 'install' refuses to fall through a failed source."""
    doc = {"ok": res.ok, "error": res.error, "exit_code": res.exit_code, "at": now.isoformat()}
    with contextlib.suppress(OSError):
        atomic_write(home.source_dir(name) / "status.json", json.dumps(doc).encode())


def _update_source(
    home: Home,
    cfg: SourceConfig,
    now: datetime,
    limits: Limits,
    allow_name_change: bool,
    res: UpdateResult,
) -> None:
    keyring = home.keyring(cfg.name)
    cache = home.cache(cfg.name)
    cache.mkdir(parents=True, exist_ok=True)
    root_bytes, marks = _read_keyring(keyring, cfg.name)
    view = load_view(home, cfg)
    ref = now - timedelta(seconds=cfg.clock_skew)
    if view is not None:
        from repotool.transport.probe import Probe

        probe = Probe(limits, home.ca_cert(cfg))
        if _unchanged(cfg, keyring_state(home, cfg.name), probe, ref):
            res.changed = False
            res.versions = dict(marks)
            res.projects = len(view.projects)
            res.mirror = cfg.url
            res.files_fetched = probe.files_fetched
            res.bytes_fetched = probe.bytes_fetched
            return
    from repotool.transport.fetcher import Fetcher

    fetcher = Fetcher(limits, home.ca_cert(cfg))
    worst: RepotoolError | None = None
    for url in cfg.urls:
        try:
            _update_from(home, cfg, url, root_bytes, marks, view, fetcher, now,
                         allow_name_change, res)
            res.mirror = url
            res.files_fetched = fetcher.files_fetched
            res.bytes_fetched = fetcher.bytes_fetched
            return
        except RepotoolError as e:
            res.failures.append(f"{url}: {e.message}")
            if worst is None or e.exit_code > worst.exit_code:
                worst = e
    assert worst is not None
    if len(cfg.urls) > 1:
        raise type(worst)(
            f"every location failed: {'; '.join(res.failures)}", worst.hint
        )
    raise worst


timestamp_max_length = 16 * 1024  # bytes, as python-tuf's default


def _unchanged(cfg: SourceConfig, state: dict[str, Any], probe: Probe, ref: datetime) -> bool:
    """(0) The no-change fast path: two small requests, nothing re-parsed (SPEC §5).

    True only when the primary location serves, byte for byte, the timestamp the keyring
    records as the last one verified, and none of the top-level roles the keyring
    records as verified has expired at ``ref``. Identical signed bytes mean the same
    snapshot, targets and shards, which were verified when first accepted.

    TUF's order is kept: first the probe for root N+1 (normally a 404, answered without
    parsing anything); if a new root exists, or the timestamp bytes differ, or anything
    fails or expires, the full path runs, which verifies and reports it.
    """
    from tuf.api import exceptions as tuf_exc

    digest, expires = state.get("timestamp_sha256"), state.get("expires")
    versions = state.get("versions")
    if not (isinstance(digest, str) and _HEX64.fullmatch(digest)) \
            or not isinstance(expires, dict) or len(expires) != 4 \
            or not isinstance(versions, dict) or type(versions.get("root")) is not int:
        return False
    try:
        if any(datetime.fromisoformat(str(v)) <= ref for v in expires.values()):
            return False
        try:
            probe.get(f"{cfg.url}metadata/{versions['root'] + 1}.root.json", root_max_length)
            return False  # a new root: the full path verifies the chain
        except tuf_exc.DownloadHTTPError as e:
            if e.status_code not in (403, 404):
                return False
        data = probe.get(f"{cfg.url}metadata/timestamp.json", timestamp_max_length)
    except Exception:  # the full path fetches again and reports it
        return False
    return hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest)


def _read_keyring(keyring: Path, name: str) -> tuple[bytes, dict[str, int]]:
    """The trust anchor and the rollback marks. A local file that is missing or
    malformed is a local error (exit 1), never a reason to trust less or more."""
    try:
        root_bytes = (keyring / "root.json").read_bytes()
        state = json.loads((keyring / "state.json").read_bytes())
        marks = state["versions"]
        if not isinstance(marks, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in marks.items()
        ):
            raise TypeError("state.json: 'versions' is not a map of role to version")
        # a root the keyring itself recorded by digest need not be parsed again here (it
        # is verified by python-tuf whenever the full path runs); any other is checked
        known = state.get("root_sha256")
        if not (isinstance(known, str)
                and hmac.compare_digest(hashlib.sha256(root_bytes).hexdigest(), known)):
            _parse_root(root_bytes, "root.json")
    except (OSError, ValueError, KeyError, TypeError, RecursionError, FormatError) as e:
        raise UserError(
            f"keyring of source {name!r} is unreadable: {e}",
            "remove the source and add it again with its key",
        ) from None
    return root_bytes, marks


class _Verified:
    """The top-level metadata python-tuf verified, read back from the files its
    ``Updater`` persisted in ``meta_dir`` after verifying each (the Updater's public
    output) rather than from its private trusted set."""

    def __init__(self, meta_dir: Path) -> None:
        from tuf.api.metadata import Metadata

        self._roles = {role: Metadata.from_bytes((meta_dir / f"{role}.json").read_bytes()).signed
                       for role in ("root", "timestamp", "snapshot", "targets")}

    def __getitem__(self, role: str) -> Any:
        return self._roles[role]

    @property
    def root(self) -> Any:
        return self._roles["root"]

    @property
    def targets(self) -> Any:
        return self._roles["targets"]


def _expired_message(up: Any, e: Exception, ref: datetime) -> str:
    """Which role expired and since when. The expired file is not persisted, so its date
    is only in python-tuf's private trusted set; without it, python-tuf's own words."""
    trusted = getattr(up, "_trusted_set", None)
    if trusted is None:
        return f"metadata expired ({_short(e)})"
    for role in ("root", "timestamp", "snapshot", "targets"):
        try:
            md = trusted[role]
        except (KeyError, RuntimeError):
            continue
        if md.is_expired(ref):
            return f"{role} metadata expired on {md.expires:%Y-%m-%d %H:%M:%S} UTC"
    return "metadata expired"


def _update_from(
    home: Home,
    cfg: SourceConfig,
    url: str,
    root_bytes: bytes,
    marks: dict[str, int],
    view: SourceView | None,
    fetcher: Fetcher,
    now: datetime,
    allow_name_change: bool,
    res: UpdateResult,
) -> None:
    from tuf.api import exceptions as tuf_exc

    from repotool.transport.fetcher import translate_download_error

    cache = home.cache(cfg.name)
    work = Path(tempfile.mkdtemp(prefix="gen-", dir=cache))
    try:
        meta_dir = work / "metadata"
        meta_dir.mkdir()
        if view is not None:  # cached metadata: python-tuf re-verifies it before use
            for name in _META_FILES:
                with contextlib.suppress(OSError):
                    shutil.copyfile(view.gen / "metadata" / name, meta_dir / name)
        ref = now - timedelta(seconds=cfg.clock_skew)
        try:
            up = make_updater(meta_dir, f"{url}metadata/", url, root_bytes, fetcher, ref)
            up.refresh()  # (2)
        except tuf_exc.ExpiredMetadataError as e:
            raise VerificationError(
                f"{cfg.name}: {_expired_message(up, e, ref)} (freeze attack or a "
                "publisher who stopped signing)",
                "ask the publisher to re-sign; --clock-skew tolerates small clock differences",
            ) from None
        except tuf_exc.RepositoryError as e:
            # python-tuf verifies each file right after fetching it: name that file
            where = f" {fetcher.last_url}" if fetcher.last_url else ""
            raise VerificationError(f"{cfg.name}: metadata refused:{where}: {_short(e)}") \
                from None
        except tuf_exc.DownloadError as e:
            raise translate_download_error(e) from None
        except (ValueError, TypeError, KeyError) as e:  # python-tuf: bad bootstrap etc.
            raise VerificationError(f"{cfg.name}: metadata refused: {_short(e)}") from None
        trusted = _Verified(meta_dir)
        # (3) rollback across cache loss, and apt's release-info change
        new_versions = {r: trusted[r].version for r in ("root", "timestamp", "snapshot", "targets")}
        for role, v in new_versions.items():
            if v < marks.get(role, 0):
                raise VerificationError(
                    f"{cfg.name}: rollback: {role} version {v} is older than version "
                    f"{marks[role]} accepted before"
                )
        new_name = _repo_name(trusted.root)
        if new_name != cfg.repo_name and not allow_name_change:
            raise VerificationError(
                f"{cfg.name}: the repository's name changed from {cfg.repo_name!r} to "
                f"{new_name!r}",
                "if you expected this, run 'repotool update --allow-name-change'",
            )
        res.versions = new_versions
        # (4) shards: fetch the ones whose signed hash is not cached, a few at a time
        shard_dir = cache / "shards"
        shard_dir.mkdir(exist_ok=True)
        shards: dict[str, dict[str, Any]] = {}
        todo: list[tuple[str, str, Any, Path]] = []
        for path, tf in trusted.targets.targets.items():
            if not (path.startswith("index/") and path.endswith(".json")):
                continue
            sid = path[len("index/"):-len(".json")]
            sha = tf.hashes.get("sha256")
            # both become file and URL names: exactly hex, nothing a path could climb with
            if not (isinstance(sha, str) and _HEX64.fullmatch(sha) and _HEX2.fullmatch(sid)):
                raise FormatError(f"{cfg.name}: index entry {path!r} is malformed")
            if tf.length > fetcher.limits.shard_max_length:  # endless data, signed
                raise VerificationError(
                    f"{cfg.name}: index shard {path} declares {tf.length} bytes, more than "
                    f"the {fetcher.limits.shard_max_length} a shard may have (endless data)",
                    "a shard this large is refused before it is fetched; ask the publisher",
                )
            meta = {"sha256": sha, "length": tf.length}
            shards[sid] = meta
            if view is not None and view.shards.get(sid) == meta:
                continue  # unchanged since the last verified update: not re-read
            todo.append((sid, path, tf, shard_dir / f"{sha}.json"))
        summaries = _fetch_shards(cfg.name, url, todo, fetcher)
        changed = (
            view is None
            or view.shards != shards
            or new_versions != view.versions
            or new_name != cfg.repo_name
        )
        res.changed = changed
        if not changed:
            assert view is not None
            res.projects = len(view.projects)
            # also completes a run killed between its generation and the keyring
            _commit_keyring(home, cfg.name, trusted, root_bytes, marks, new_versions,
                            meta_dir, _index_of(view.gen))
            shutil.rmtree(work, ignore_errors=True)
            return
        # (5) derived list and generation, then the keyring (the commit point)
        projects: dict[str, dict[str, Any]] = {}
        if view is not None:
            projects = {
                n: p for n, p in view.projects.items()
                if p["shard"] in shards and p["shard"] not in summaries
                and view.shards.get(p["shard"]) == shards[p["shard"]]
            }
        for summary in summaries.values():
            projects.update(summary)
        res.projects = len(projects)
        doc = {
            "projects": dict(sorted(projects.items())),
            "shards": shards,
            "updated": now.isoformat(),
            "versions": new_versions,
            "mirror": url,
        }
        atomic_write(work / "projects.json", json.dumps(doc, sort_keys=True).encode())
        for mpath in meta_dir.rglob("*"):
            if mpath.is_file():
                with open(mpath, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(meta_dir)
        fsync_dir(shard_dir)
        _commit_keyring(home, cfg.name, trusted, root_bytes, marks, new_versions, meta_dir,
                        _index_of(work))
        if new_name != cfg.repo_name:
            cfg.repo_name = new_name
            home.save_source(cfg)
        # keep the generation this update replaced, and its shards: a reader that loaded
        # the keyring just before the commit (show, download, the proxy) still finds them
        keep_gens = {work.name} | ({view.gen.name} if view is not None else set())
        keep_shards = {m["sha256"] for m in shards.values()}
        if view is not None:
            keep_shards |= {m["sha256"] for m in view.shards.values()}
        _collect_garbage(cache, keep_gens, keep_shards)
    except BaseException:
        if work.exists() and _committed_gen(home, cfg.name) != work.name:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _fetch_shards(
    source: str, url: str, todo: list[tuple[str, str, Any, Path]], fetcher: Fetcher
) -> dict[str, dict[str, dict[str, Any]]]:
    """Verify (length, sha256) and summarize each shard in ``todo``, from the cache when
    a copy with the signed hash is there, else from ``url``: streamed into a temporary
    file in the shard cache while hashed (never more than its signed length, which the
    caller capped), then moved into place.

    Raises:
        VerificationError: a shard does not match its signed hash, or is malformed.
        DownloadError: a shard could not be fetched.
    """
    from concurrent.futures import ThreadPoolExecutor

    from repotool.format.index import summarize
    from repotool.format.layout import hashed_name

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
        return sid, summarize(data, sid)

    if len(todo) <= 1:
        return dict(one(item) for item in todo)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="shards") as pool:
        return dict(pool.map(one, todo))


def _index_of(gen: Path) -> dict[str, Any]:
    data = (gen / "projects.json").read_bytes()
    return {"gen": gen.name, "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}


def _committed_gen(home: Home, name: str) -> str | None:
    index = keyring_state(home, name).get("index")
    return index.get("gen") if isinstance(index, dict) else None


def _commit_keyring(
    home: Home,
    name: str,
    trusted: Any,
    root_bytes: bytes,
    marks: dict[str, int],
    new_versions: dict[str, int],
    meta_dir: Path,
    index: dict[str, Any],
) -> None:
    """Move the keyring to the newest verified root, the highest versions accepted, the
    committed generation, and what the no-change fast path compares against.

    Idempotent and cheap when there is nothing to do, so it also runs on an update that
    found nothing new: one killed after writing its generation but before this step is
    completed by the next update, not left with a stale anchor and rollback marks.
    """
    kr = home.keyring(name)
    root_now = trusted.root
    if root_now.version != _root_version(root_bytes):
        root_bytes = (meta_dir / "root_history" / f"{root_now.version}.root.json").read_bytes()
        atomic_write(kr / "root.json", root_bytes)
    state = {
        "root_sha256": hashlib.sha256(root_bytes).hexdigest(),
        "versions": {r: max(v, marks.get(r, 0)) for r, v in new_versions.items()},
        "index": index,
        "timestamp_sha256": hashlib.sha256((meta_dir / "timestamp.json").read_bytes())
        .hexdigest(),
        "expires": {r: trusted[r].expires.isoformat()
                    for r in ("root", "timestamp", "snapshot", "targets")},
    }
    if keyring_state(home, name) != state:
        atomic_write(kr / "state.json", json.dumps(state, sort_keys=True).encode())


def _root_version(data: bytes) -> int:
    return int(json.loads(data)["signed"]["version"])


def _collect_garbage(cache: Path, keep_gens: set[str], keep_shards: set[str]) -> None:
    for p in cache.iterdir():
        if p.is_dir() and p.name.startswith("gen-") and p.name not in keep_gens:
            shutil.rmtree(p, ignore_errors=True)
    shard_dir = cache / "shards"
    for p in shard_dir.iterdir():
        if p.name.endswith(".json") and p.name[:-5] not in keep_shards:
            with contextlib.suppress(OSError):
                p.unlink()
