"""``repo check``: the publisher's self-audit, verifying the tree as a client would.

The metadata is walked with python-tuf's ``Updater`` over a ``file://`` URL,
bootstrapped from ``1.root.json`` (so the whole root chain is verified), then every
target in ``targets`` and in every bin is checked on disk (length, sha256), every
shard is parsed and each distribution it lists must match its bin entry. The plain
names pip reads (``metadata/root.json``, simple pages, distributions) must hold the
signed bytes, and every hash-named file still on disk (older targets a client mid-update
may fetch) must hash to its name. All problems are collected; the report lists each.

Thresholds: python-tuf refuses (a problem) any role whose signatures do not meet the
threshold its delegator states: root (old and new), timestamp, snapshot, targets and
every bin. ``weak_thresholds`` adds warnings for a configuration that meets its
thresholds but lets fewer keys change a role than root requires of the very same keys
(a repository made by a repotool whose ``--threshold`` reached root only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.errors import FormatError, RepotoolError, UserError
from repotool.format.layout import METADATA_DIR, target_disk_path
from repotool.storage import hash_file

if TYPE_CHECKING:
    from tuf.api.metadata import Root, SuccinctRoles

__all__ = ["CheckReport", "check_repository", "weak_thresholds"]


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

    from repotool.format.index2 import layout_of
    from repotool.transport.fetcher import Fetcher, translate_download_error
    from repotool.trust.updater import make_updater

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
        delegations = ts.targets.delegations
        report.warnings += weak_thresholds(
            ts.root, delegations.succinct_roles if delegations else None, directory)
        newest = meta / f"{ts.root.version}.root.json"
        if _hash(meta / "root.json") != _hash(newest):
            report.problems.append(f"metadata/root.json: differs from {newest.name}, the newest")
        for role in ("root", "timestamp", "snapshot", "targets"):
            md = ts[role]
            name = "timestamp.json" if role == "timestamp" else f"{md.version}.{role}.json"
            if (w := expiry_warning(role, md.expires, _signed_at(meta / name), now,
                                    directory)):
                report.warnings.append(w)
        # every target of targets and of every bin
        bin_targets: dict[str, Any] = {}
        if delegations is None or delegations.succinct_roles is None:
            report.problems.append("targets: no bins delegation")
            return report
        bins_near: list[tuple[datetime, str]] = []
        for name in delegations.succinct_roles.get_roles():
            try:
                up._load_targets(name, "targets")
            except (tuf_exc.RepositoryError, tuf_exc.DownloadError, RepotoolError) as e:
                report.problems.append(f"{name}: {e}")
                continue
            bmd = ts[name]
            if (w := expiry_warning("bins", bmd.expires,
                                    _signed_at(meta / f"{bmd.version}.{name}.json"), now,
                                    directory)):
                bins_near.append((bmd.expires, w))
            for path, tf in bmd.targets.items():
                bin_targets[path] = tf
                if delegations.succinct_roles.get_role_for_target(path) != name:
                    report.problems.append(f"{name}: lists {path!r}, which belongs elsewhere")
        if bins_near:  # one line for all of them: the earliest, and how many
            earliest = min(bins_near)[1]
            report.warnings.append(
                f"{len(bins_near)} bin(s) near expiry, the first: {earliest}")
        # developer roles (repotool.publish.delegation): verified from a bin, their
        # targets checked with the bins' and their project indexes with the shards
        from repotool.format.delegations import PROJECT_INDEX_DIR, matching_role
        from repotool.format.index import Shard, shard_of
        from repotool.publish.delegation import check_delegations

        dev_targets, dev_indexes, deleg = check_delegations(up, ts, report)
        bin_targets.update(dev_targets)
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
        for path, tf in [*sorted(ts.targets.targets.items()), *dev_indexes]:
            if not path.startswith("index/"):
                continue
            delegated = path.startswith(PROJECT_INDEX_DIR + "/")
            sid = (shard_of(path[len(PROJECT_INDEX_DIR) + 1:-len(".json")]) if delegated
                   else path[len("index/"):-len(".json")])
            try:
                layout = layout_of(ts.targets.unrecognized_fields)
                if not delegated and layout.shard_id(path) != sid:
                    raise FormatError(f"not a shard of the signed layout {layout}")
                data = target_disk_path(directory, path, tf.hashes["sha256"]).read_bytes()
                tf.verify_length_and_hashes(data)
                # a delegated project's own index is a format 1 shard of one project
                shard = Shard.from_bytes(data, sid) if delegated else layout.decode(data, sid)
            except (OSError, tuf_exc.LengthOrHashMismatchError, RepotoolError) as e:
                report.problems.append(f"{path}: {e}")
                continue
            for p in shard.projects.values():
                if not delegated and matching_role(deleg, p.name) is not None:
                    report.problems.append(f"{path}: lists {p.name}, a delegated project")
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
                    if f.metadata_sha256 is not None or dpath + ".metadata" in bin_targets:
                        _check_metadata(directory, dpath, f, bin_targets, report)
        _check_root_page(directory, bin_targets, report)
        _check_hash_named(directory, checked, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _signed_at(path: Path) -> datetime | None:
    """When a role was signed: its file's modification time (the sign wrote it)."""
    from datetime import UTC

    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


_RENEW = {
    "timestamp": "repotool repo sign {d} --refresh --key ONLINE_KEY",
    "snapshot": "repotool repo sign {d} --refresh --key ONLINE_KEY",
    "targets": "repotool repo sign {d} --role targets --key TARGETS_KEY --key ONLINE_KEY",
    "bins": "repotool repo sign {d} --role bins --key TARGETS_KEY --key ONLINE_KEY",
    "root": ("repotool repo rotate {d} --role root --propose FILE (then 'proposal sign' and "
             "'repo rotate {d} --apply FILE'), or repotool repo sign {d} --role root --key "
             "ROOT_KEY ... --key TARGETS_KEY --key ONLINE_KEY"),
}


def expiry_warning(role: str, expires: datetime, signed_at: datetime | None, now: datetime,
                   directory: Path | str) -> str | None:
    """A warning when ``role`` is within the last 20% of its lifetime (pure).

    The lifetime runs from when it was signed (``signed_at``: the file's mtime) to
    ``expires``; a role signed for less than its default lifetime (``--expires 1d`` on a
    root) is judged against the default, so a short-lived root warns at once."""
    from repotool.publish.tree import DEFAULT_EXPIRY

    default = timedelta(seconds=DEFAULT_EXPIRY[role])
    lifetime = default
    if signed_at is not None and signed_at < expires and signed_at <= now:
        lifetime = max(expires - signed_at, default)
    left = expires - now
    if left > lifetime / 5:
        return None
    when = f"{expires:%Y-%m-%d %H:%M:%S} UTC"
    state = (f"expired at {when}" if left <= timedelta(0) else
             f"expires at {when}, in {_span(left)}, within the last 20% of "
             f"{'its' if lifetime > default else 'its default'} {_span(lifetime)} lifetime")
    return f"{role} {state}; renew: {_RENEW[role].format(d=shlex.quote(str(directory)))}"


def _span(t: timedelta) -> str:
    s = int(t.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def _check_metadata(directory: Path, dpath: str, f: Any, bin_targets: dict[str, Any],
                    report: CheckReport) -> None:
    """A wheel's ``.metadata`` (PEP 658): signed as the index says, its plain copy the
    same bytes, and exactly the METADATA inside the wheel (installers resolve with one
    and install the other). A format 1 entry does not name it: the bin target alone."""
    from repotool.format.wheelmeta import wheel_metadata

    mpath = dpath + ".metadata"
    btf = bin_targets.get(mpath)
    msha, msize = f.metadata_sha256, f.metadata_size
    if msha is None and btf is not None:
        msha, msize = btf.hashes.get("sha256"), btf.length
    elif btf is None or btf.length != msize or btf.hashes.get("sha256") != msha:
        report.problems.append(f"{mpath}: index and bin disagree")
    if _hash(directory.joinpath(*mpath.split("/"))) != (msha, msize):
        report.problems.append(f"{mpath}: plain copy for pip missing or differs")
    try:
        with open(target_disk_path(directory, dpath, f.sha256), "rb") as w:
            meta = wheel_metadata(w, f.filename)
    except (OSError, RepotoolError):
        return  # reported above as a missing or damaged distribution
    if hashlib.sha256(meta).hexdigest() != msha:
        report.problems.append(f"{mpath}: differs from the METADATA inside the wheel")


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


def _any(n: int) -> str:
    return "any one of them alone" if n == 1 else f"any {n} of them"


def weak_thresholds(root: Root, bins: SuccinctRoles | None, directory: Path | str) -> list[str]:
    """Warnings (each with the command that fixes it) for roles held by exactly the root's
    keys at a lower threshold than root's, and for bins that do not follow targets.

    Pure: no I/O. A role-separated repository (other keys for targets or the online
    roles) is not flagged: there a lower threshold is the publisher's choice.
    """
    out: list[str] = []
    rr = root.roles["root"]

    def weak(name: str) -> bool:
        r = root.roles[name]
        return set(r.keyids) == set(rr.keyids) and r.threshold < rr.threshold

    where = shlex.quote(str(directory))
    t = root.roles["targets"]
    online = [n for n in ("snapshot", "timestamp") if weak(n)]
    flags = (["--role targets"] if weak("targets") else []) + (["--role online"] if online else [])
    fix = (f"fix (one new root): 'repotool repo rotate {where} {' '.join(flags)} "
           f"--threshold {rr.threshold} --key PRIV ...'")
    same = f"the same {len(rr.keyids)} keys that need {rr.threshold} for root"
    if weak("targets"):
        out.append(
            f"targets (and its bins) need only {t.threshold} signature(s) of {same}: "
            f"{_any(t.threshold)} can publish any file; {fix}")
    if online:
        thr = min(root.roles[n].threshold for n in online)
        out.append(
            f"{' and '.join(online)} need only {thr} signature(s) of {same}: {_any(thr)} "
            f"can keep clients on the current state forever, hiding new releases; {fix}")
    if bins is not None and (sorted(bins.keyids) != sorted(t.keyids)
                             or bins.threshold != t.threshold):
        out.append(
            f"the bins need {bins.threshold} signature(s) of {len(bins.keyids)} key(s), "
            f"targets {t.threshold} of {len(t.keyids)}; re-sign them to the targets role with "
            f"'repotool repo sign {where} --role bins --key PRIV ...'")
    return out
