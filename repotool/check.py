"""``repo check``: the publisher's self-audit, verifying the tree as a client would.

The metadata is walked with python-tuf's ``Updater`` over a ``file://`` URL,
bootstrapped from ``1.root.json`` (so the whole root chain is verified), then every
target in ``targets`` and in every bin is checked on disk (length, sha256), every
shard is parsed and each distribution it lists must match its bin entry. The plain
names pip reads (``metadata/root.json``, simple pages, distributions) must hold the
signed bytes, and every hash-named file still on disk (older targets a client mid-update
may fetch) must hash to its name. All problems are collected; the report lists each.
"""

from __future__ import annotations

import hmac
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from repotool.errors import RepotoolError, UserError
from repotool.layout import METADATA_DIR, target_disk_path
from repotool.storage import hash_file

__all__ = ["CheckReport", "check_repository"]


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    targets: int = 0
    files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hash(path: Path) -> tuple[str, int] | None:
    try:
        return hash_file(path)
    except OSError:
        return None


def check_repository(directory: Path, *, now: datetime) -> CheckReport:
    from tuf.api import exceptions as tuf_exc

    from repotool.client import make_updater
    from repotool.format.index import Shard
    from repotool.transport import Fetcher, translate_download_error

    report = CheckReport()
    meta = directory / METADATA_DIR
    first = meta / "1.root.json"
    if not first.is_file():
        raise UserError(f"{str(directory)!r} holds no published repository (no {first.name})")
    url = directory.resolve().as_uri() + "/"
    work = Path(tempfile.mkdtemp(prefix="repotool-check-"))
    try:
        try:
            up = make_updater(work, url + "metadata/", url, first.read_bytes(), Fetcher(), now)
        except (tuf_exc.RepositoryError, ValueError, TypeError, KeyError) as e:
            report.problems.append(f"metadata: {first.name} is not a valid root: {e}")
            return report
        try:
            up.refresh()
        except tuf_exc.RepositoryError as e:
            report.problems.append(f"metadata: {e}")
            return report
        except tuf_exc.DownloadError as e:
            report.problems.append(f"metadata: {translate_download_error(e)}")
            return report
        ts = up._trusted_set
        newest = meta / f"{ts.root.version}.root.json"
        if _hash(meta / "root.json") != _hash(newest):
            report.problems.append(f"metadata/root.json: differs from {newest.name}, the newest")
        for role in ("root", "timestamp", "snapshot", "targets"):
            md = ts[role]
            left = md.expires - now
            lifetime = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}[role]
            if left < timedelta(days=lifetime) / 4:
                report.warnings.append(
                    f"{role} expires soon: {md.expires:%Y-%m-%d %H:%M:%S} UTC")
        # every target of targets and of every bin
        bin_targets: dict[str, Any] = {}
        delegations = ts.targets.delegations
        if delegations is None or delegations.succinct_roles is None:
            report.problems.append("targets: no bins delegation")
            return report
        for name in delegations.succinct_roles.get_roles():
            try:
                up._load_targets(name, "targets")
            except (tuf_exc.RepositoryError, tuf_exc.DownloadError, RepotoolError) as e:
                report.problems.append(f"{name}: {e}")
                continue
            for path, tf in ts[name].targets.items():
                bin_targets[path] = tf
                if delegations.succinct_roles.get_role_for_target(path) != name:
                    report.problems.append(f"{name}: lists {path!r}, which belongs elsewhere")
        all_targets = {**ts.targets.targets, **bin_targets}
        checked: set[Path] = set()
        for path, tf in sorted(all_targets.items()):
            report.targets += 1
            sha = tf.hashes.get("sha256", "")
            disk = target_disk_path(directory, path, sha)
            checked.add(disk)
            got = _hash(disk)
            if got is None:
                report.problems.append(f"{path}: missing ({sha[:12]}…)")
            elif got[1] != tf.length or not hmac.compare_digest(got[0], sha):
                report.problems.append(f"{path}: size or sha256 differs from the signed one")
            plain = directory.joinpath(*path.split("/"))
            if path.startswith("simple/") and _hash(plain) != (sha, tf.length):  # pip reads it
                report.problems.append(
                    f"{path}: plain copy for pip missing or differs from the signed one")
        # shards vs files
        for path, tf in sorted(ts.targets.targets.items()):
            if not path.startswith("index/"):
                continue
            sid = path[len("index/"):-len(".json")]
            try:
                data = target_disk_path(directory, path, tf.hashes["sha256"]).read_bytes()
                tf.verify_length_and_hashes(data)
                shard = Shard.from_bytes(data, sid)
            except (OSError, tuf_exc.LengthOrHashMismatchError, RepotoolError) as e:
                report.problems.append(f"{path}: {e}")
                continue
            for p in shard.projects.values():
                for f in p.files:
                    report.files += 1
                    dpath = f"files/{p.name}/{f.filename}"
                    btf = bin_targets.get(dpath)
                    if btf is None:
                        report.problems.append(f"{dpath}: in the index but not a signed target")
                    elif btf.length != f.size or btf.hashes.get("sha256") != f.sha256:
                        report.problems.append(f"{dpath}: index and bin disagree")
                    plain = directory.joinpath(*dpath.split("/"))
                    got = _hash(plain)
                    if got != (f.sha256, f.size):
                        report.problems.append(f"{dpath}: plain copy for pip missing or differs")
        _check_root_page(directory, bin_targets, report)
        _check_hash_named(directory, checked, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _check_root_page(directory: Path, bin_targets: dict[str, Any], report: CheckReport) -> None:
    tf = bin_targets.get("simple/index.json")
    if tf is None:
        report.problems.append("simple/index.json: not a signed target")
        return
    try:
        json.loads(target_disk_path(directory, "simple/index.json", tf.hashes["sha256"])
                   .read_bytes())
    except (OSError, ValueError) as e:
        report.problems.append(f"simple/index.json: {e}")


_HASH_NAMED = re.compile(r"^([0-9a-f]{64})\.")


def _check_hash_named(directory: Path, checked: set[Path], report: CheckReport) -> None:
    """Older targets stay on disk under their hash-prefixed names (consistent snapshots):
    each must still hash to its name."""
    for top in ("index", "simple", "files"):
        for path in sorted((directory / top).rglob("*")):
            m = _HASH_NAMED.match(path.name)
            if m is None or path in checked or not path.is_file():
                continue
            got = _hash(path)
            if got is None or not hmac.compare_digest(got[0], m.group(1)):
                rel = path.relative_to(directory).as_posix()
                report.problems.append(f"{rel}: content does not match the sha256 in its name")
