"""The update workflow: refresh each source through python-tuf, keep verified state.

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

Step 0, before all of these, is the no-change fast path (``keyring.unchanged``). The
checks of step 3 and 4 are pure functions in repotool/trust/checks.py.

Mirrors: steps 1–4 run against the primary URL, then each mirror in turn, each from
the trusted state; a failing one is reported by URL and the next is tried. ``source add``
does the same for the first root: fetched *and* verified at one location, else the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.client.cache import META_FILES, Verified, collect_garbage, fetch_shards, index_of
from repotool.client.history import add_events, broken_chain, marks_after_rotation
from repotool.client.home import Home, SourceConfig
from repotool.client.keyring import commit_keyring, committed_gen, read_keyring, unchanged
from repotool.client.state import SourceView, keyring_state, load_view
from repotool.errors import FormatError, RepotoolError, VerificationError
from repotool.storage import atomic_write, fsync_dir
from repotool.transport.limits import Limits
from repotool.trust.checks import HEX64, check_name, check_rollback, index_layout, index_shard
from repotool.trust.root import parse_root, repo_name, short_error
from repotool.trust.updater import make_updater

if TYPE_CHECKING:
    from repotool.transport.fetcher import Fetcher

__all__ = [
    "SourceView",
    "UpdateResult",
    "load_view",
    "update",
]


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
    notices: list[str] = field(default_factory=list)  # e.g. the root keys changed

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
    root_bytes, marks = read_keyring(keyring, cfg.name)
    view = load_view(home, cfg)
    ref = now - timedelta(seconds=cfg.clock_skew)
    if view is not None:
        from repotool.transport.probe import Probe

        probe = Probe(limits, home.ca_cert(cfg))
        if unchanged(cfg, keyring_state(home, cfg.name), probe, ref):
            res.changed = False
            res.versions = {k: v for k, v in marks.items() if k != "format"}
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


def _expired_message(up: Any, e: Exception, ref: datetime) -> str:
    """Which role expired and since when. The expired file is not persisted, so its date
    is only in python-tuf's private trusted set; without it, python-tuf's own words."""
    trusted = getattr(up, "_trusted_set", None)
    if trusted is None:
        return f"metadata expired ({short_error(e)})"
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
            for name in META_FILES:
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
            if (fetcher.last_url or "").endswith(".root.json"):  # TUF §5.3.3, §5.3.4
                raise broken_chain(cfg.name, fetcher.last_url, short_error(e)) from None
            # python-tuf verifies each file right after fetching it: name that file
            where = f" {fetcher.last_url}" if fetcher.last_url else ""
            raise VerificationError(f"{cfg.name}: metadata refused:{where}: {short_error(e)}") \
                from None
        except tuf_exc.DownloadError as e:
            raise translate_download_error(e) from None
        except (ValueError, TypeError, KeyError) as e:  # python-tuf: bad bootstrap etc.
            raise VerificationError(f"{cfg.name}: metadata refused: {short_error(e)}") from None
        trusted = Verified(meta_dir)
        # (3) rollback across cache loss (marks of rotated online roles dropped, TUF
        # §5.3.10), and apt's release-info change
        marks = marks_after_rotation(parse_root(root_bytes, "root.json").signed,
                                     trusted.root, marks)
        new_versions = {r: trusted[r].version for r in ("root", "timestamp", "snapshot", "targets")}
        check_rollback(cfg.name, new_versions, marks)
        new_name = repo_name(trusted.root)
        check_name(cfg.name, cfg.repo_name, new_name, allow_name_change)
        layout = index_layout(cfg.name, trusted.targets.unrecognized_fields, marks)
        res.versions = dict(new_versions)
        new_versions["format"] = layout.format  # kept with the rollback marks
        # (4) shards: fetch the ones whose signed hash is not cached, a few at a time
        shard_dir = cache / "shards"
        shard_dir.mkdir(exist_ok=True)
        shards: dict[str, dict[str, Any]] = {}
        todo: list[tuple[str, str, Any, Path]] = []
        for path, tf in trusted.targets.targets.items():
            sha = tf.hashes.get("sha256")
            sid = index_shard(cfg.name, path, sha, tf.length, fetcher.limits.shard_max_length,
                              layout)
            if sid is None:
                continue
            meta = {"sha256": sha, "length": tf.length}
            shards[sid] = meta
            if view is not None and view.shards.get(sid) == meta \
                    and (view.index_layout().format, view.index_layout().bits) \
                    == (layout.format, layout.bits):
                continue  # unchanged since the last verified update: not re-read
            todo.append((sid, path, tf, shard_dir / f"{sha}.json"))
        # developer keys (client/delegated.py): delegated roles and their project indexes
        from repotool.client import delegated as dlg  # tuf's metadata: not on the fast path

        deleg, dev_versions, dev_items, dev_roles = dlg.delegated_docs(
            cfg.name, url, meta_dir, view.gen / "metadata" if view is not None else None,
            trusted, fetcher, ref, marks)
        for sid, path, tf in dev_items:
            sha = tf.hashes.get("sha256")
            if not (isinstance(sha, str) and HEX64.fullmatch(sha)) \
                    or tf.length > fetcher.limits.shard_max_length:
                raise FormatError(f"{cfg.name}: delegated index entry {path!r} is malformed")
            shards[sid] = {"sha256": sha, "length": tf.length}
            todo.append((sid, path, tf, shard_dir / f"{sha}.json"))  # always re-checked
        new_versions.update(dev_versions)
        dev_notices = dlg.delegation_notices(
            cfg.name, view.gen / "metadata" / "targets.json" if view is not None else None,
            deleg)
        res.notices += dev_notices

        def check_dev(sid: str, data: bytes) -> None:
            dlg.check_project_doc(cfg.name, sid, data, dev_roles[sid[1:]])

        summaries = fetch_shards(cfg.name, url, todo, fetcher, layout, check_dev)
        from repotool.client.imported import fetch_provenance  # files from 'repo import'

        imported = fetch_provenance(cfg.name, url, trusted.targets, fetcher,
                                    view.gen if view is not None else None, work)
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
            res.notices += commit_keyring(home, cfg.name, trusted, root_bytes, marks,
                                          new_versions, meta_dir, index_of(view.gen), now)
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
        # a delegated project listed by a top-level shard (new or kept) is refused
        for listed in [projects, *summaries.values()]:
            dlg.check_shard_projects(cfg.name, deleg, listed)
        for summary in summaries.values():
            projects.update(summary)
        res.projects = len(projects)
        doc = {
            # format 2 too: the heads, so list and search need not read every shard
            "projects": dict(sorted(projects.items())),
            "index": {"format": layout.format, "bits": layout.bits,
                      "projects": layout.projects},
            "shards": shards,
            "updated": now.isoformat(),
            "versions": new_versions,
            "mirror": url,
            **({"provenance": imported} if imported else {}),
        }
        atomic_write(work / "projects.json", json.dumps(doc, sort_keys=True).encode())
        for mpath in meta_dir.rglob("*"):
            if mpath.is_file():
                with open(mpath, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(meta_dir)
        fsync_dir(shard_dir)
        if dev_notices:  # re-delegations join the keyring's history (client/history.py)
            add_events(home.keyring(cfg.name), trusted.root.version, dev_notices, now)
        res.notices += commit_keyring(home, cfg.name, trusted, root_bytes, marks,
                                      new_versions, meta_dir, index_of(work), now)
        if new_name != cfg.repo_name:
            cfg.repo_name = new_name
            home.save_source(cfg)
        # keep the generation this update replaced, and its shards: a reader that loaded
        # the keyring just before the commit (show, download, the proxy) still finds them
        keep_gens = {work.name} | ({view.gen.name} if view is not None else set())
        keep_shards = {m["sha256"] for m in shards.values()}
        if view is not None:
            keep_shards |= {m["sha256"] for m in view.shards.values()}
        collect_garbage(cache, keep_gens, keep_shards)
    except BaseException:
        if work.exists() and committed_gen(home, cfg.name) != work.name:
            shutil.rmtree(work, ignore_errors=True)
        raise


