"""``repo publish``: copy a signed repository to a directory or object storage (SPEC §6.5).

A destination holds a copy of the repository that clients read like any other URL.
``publish`` uploads only what the destination lacks, in stages that keep every client
consistent at every moment — a client (or a CDN) that reads while a publish runs sees
the old state or the new one, never a mix:

    1. hash-named distributions, then their plain names (what plain pages link to)
    2. hash-named shards and pages, then plain project pages, then the project list
    3. versioned metadata: N.root.json, N.bins-XX.json, N.targets.json; then N.snapshot.json
    4. metadata/root.json (the copy of the newest root)
    5. metadata/timestamp.json — the moment the new state becomes visible to TUF clients

Each stage is uploaded, then read back and compared (size and sha256) before the next
one starts; nothing is ever deleted. A directory destination is then audited as a
client would (``repo check`` on it). Publishing refuses a source with unsigned changes
(exit 1) or one that fails ``repo check`` (exit 3), a destination holding another
repository or a newer timestamp (exit 1), and versioned metadata newer than the
source's published state (orphans of an interrupted ``sign``, which the next sign may
overwrite) is never uploaded.

Destinations (``repotool.publish.destinations``): a directory, and S3 through boto3
(``repotool.publish.s3``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from repotool.errors import UsageError, UserError, VerificationError
from repotool.format.layout import METADATA_DIR, WORK_DIR
from repotool.publish.destinations import (
    TOPS,
    Destination,
    DirectoryDestination,
    LocalFile,
    Remote,
)

__all__ = [
    "CACHE_KINDS",
    "DEFAULT_CACHE_CONTROL",
    "PublishSummary",
    "cache_kind",
    "content_type",
    "open_destination",
    "parse_cache_control",
    "publish",
]

CACHE_KINDS = ("timestamp", "mutable", "immutable")
# Cache-Control sent with each kind of file (docs/publishing.md, "CDN fronting"):
DEFAULT_CACHE_CONTROL = {
    "timestamp": "no-cache",  # names the current state: always revalidated
    "mutable": "max-age=300",  # plain pages and root.json: replaced by each publication
    "immutable": "public, max-age=31536000, immutable",  # hash-named files, N.ROLE.json
}
_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".gz": "application/gzip",
}
_HASH_NAMED = re.compile(r"^[0-9a-f]{64}\.")
_VERSIONED = re.compile(r"^([1-9][0-9]{0,18})\.(.+)\.json$")
_LAST = 8  # the stage of timestamp.json
read_limit = 16 * 1024 * 1024  # bytes; the most read of timestamp.json / 1.root.json at DEST


def content_type(name: str) -> str:
    for suffix, ctype in _TYPES.items():
        if name.endswith(suffix):
            return ctype
    return "application/octet-stream"


def cache_kind(name: str) -> str:
    """``timestamp``, ``mutable`` or ``immutable`` for a repository path."""
    base = name.rsplit("/", 1)[-1]
    if name == f"{METADATA_DIR}/timestamp.json":
        return "timestamp"
    if name.startswith(f"{METADATA_DIR}/"):
        return "immutable" if _VERSIONED.match(base) else "mutable"
    if _HASH_NAMED.match(base):
        return "immutable"
    # a plain distribution name never carries other bytes (docs/format.md): immutable too
    return "immutable" if name.startswith("files/") else "mutable"


def parse_cache_control(values: Iterable[str]) -> dict[str, str]:
    """``--cache-control KIND=VALUE`` options over the defaults (``KIND=`` sends none)."""
    policy = dict(DEFAULT_CACHE_CONTROL)
    for v in values:
        kind, sep, value = v.partition("=")
        if not sep or kind not in CACHE_KINDS:
            raise UsageError(f"invalid --cache-control {v!r}: expected KIND=VALUE with KIND "
                             f"one of {', '.join(CACHE_KINDS)} (e.g. timestamp=max-age=60)")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise UsageError(f"invalid --cache-control {v!r}: control characters")
        policy[kind] = value.strip()
    return policy


def open_destination(dest: str, *, endpoint_url: str | None, source: Path) -> Destination:
    """A directory path or ``s3://BUCKET[/PREFIX]``; other URLs are a usage error."""
    if dest.startswith("s3://"):
        from repotool.publish.s3 import S3Destination

        return S3Destination.from_url(dest, endpoint_url=endpoint_url)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", dest):
        raise UsageError(f"unsupported destination {dest!r}",
                         "give a directory or s3://BUCKET/PREFIX")
    if endpoint_url is not None:
        raise UsageError("--endpoint-url applies to s3:// destinations only")
    path = Path(dest)
    src, dst = source.resolve(), path.resolve()
    if dst == src or src in dst.parents:
        raise UsageError(f"destination {dest!r} is inside the repository {str(source)!r}")
    if path.exists() and not path.is_dir():
        raise UserError(f"destination {dest!r} is not a directory")
    return DirectoryDestination(path)


@dataclass
class PublishSummary:
    source: str
    destination: str
    uploaded: list[str] = field(default_factory=list)  # in upload order
    bytes: int = 0
    present: int = 0  # files the destination already held
    replaced: list[str] = field(default_factory=list)  # held other bytes: uploaded again
    orphans: list[str] = field(default_factory=list)  # not yet published: not uploaded
    versions: dict[str, int] = field(default_factory=dict)
    verified: int = 0  # files read back and compared
    audited: bool = False  # the whole destination verified as a client would
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _local_files(root: Path, current: dict[str, int], summary: PublishSummary) -> list[LocalFile]:
    """Every file of the repository with its stage; orphan versioned metadata left out."""
    out: list[LocalFile] = []
    for top in (METADATA_DIR, *TOPS):
        for p in sorted((root / top).rglob("*")):
            rel = p.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not p.is_file():
                continue  # temp files of an interrupted write, the workspace
            name = rel.as_posix()
            base = p.name
            if top == METADATA_DIR:
                if len(rel.parts) != 2:
                    continue
                m = _VERSIONED.match(base)
                if base == "timestamp.json":
                    stage = _LAST
                elif base == "root.json":
                    stage = 7
                elif m is None:
                    continue  # not part of the format
                else:
                    role = m.group(2)
                    if int(m.group(1)) > current.get(role, 0):
                        summary.orphans.append(name)
                        continue
                    stage = 6 if role == "snapshot" else 5
            elif top == "files":
                stage = 0 if _HASH_NAMED.match(base) else 1
            elif _HASH_NAMED.match(base):
                stage = 2
            else:  # plain pages: a project's before the list that links to it
                stage = 3 if len(rel.parts) > 2 else 4
            out.append(LocalFile(name, p, p.stat().st_size, stage))
    return out


def _current_versions(root: Path) -> dict[str, int]:
    """The version of every role the source's timestamp reaches (its published state)."""
    from repotool.publish.tree import RepositoryTree

    pub = RepositoryTree(root).published()
    if pub is None:
        raise UserError(f"{str(root)!r} holds no published repository",
                        "run 'repotool repo sign' first")
    out = {"root": pub.root.signed.version, "snapshot": pub.snapshot.signed.version,
           "timestamp": pub.timestamp.signed.version}
    for meta_name, mf in pub.snapshot.signed.meta.items():
        out[meta_name[: -len(".json")]] = mf.version
    return out


def _refuse_unsigned(root: Path) -> None:
    from repotool.publish.tree import RepositoryTree

    tree = RepositoryTree(root)
    if not (root / WORK_DIR).is_dir():
        return  # a copy without the workspace is a complete repository
    pending = tree.pending()
    n = sum(len(v) for v in pending.values())
    where = str(root)
    if n or (tree.work / "root.json").exists():
        what = f"{n} pending change(s)" if n else "a new root"
        raise UserError(f"{where!r} has {what} not yet signed: publishing would copy a state "
                        "that is not what you meant to release",
                        f"sign them first: 'repotool repo sign {where} --key PRIV'")


def _version_of(data: bytes | None) -> int | None:
    try:
        v = json.loads(data or b"")["signed"]["version"]
        return v if isinstance(v, int) else None
    except (ValueError, KeyError, TypeError):
        return None


def _refuse_destination(dest: Destination, root: Path, versions: dict[str, int]) -> None:
    """A destination holding another repository, or a newer or diverged state, is refused."""
    meta = root / METADATA_DIR
    first = dest.read(f"{METADATA_DIR}/1.root.json", read_limit)
    if first is not None and first != (meta / "1.root.json").read_bytes():
        raise UserError(f"{dest.url} holds another repository (its 1.root.json differs)",
                        "publish each repository to a destination of its own")
    ts = dest.read(f"{METADATA_DIR}/timestamp.json", read_limit)
    theirs = _version_of(ts)
    if ts is None or theirs is None:
        return
    ours = versions["timestamp"]
    if theirs > ours:
        raise UserError(f"{dest.url} is newer than {str(root)!r} (timestamp v{theirs} "
                        f"there, v{ours} here): publishing would roll its clients back",
                        "publish from the copy that signed the newer state")
    if theirs == ours and ts != (meta / "timestamp.json").read_bytes():
        raise UserError(f"{dest.url} and {str(root)!r} diverged: both hold a different "
                        f"timestamp v{ours}", "publish from the copy clients already follow")


def _holds(dest: Destination, f: LocalFile, remote: Remote | None) -> bool | None:
    """True: the destination holds these bytes; None: absent; False: other bytes."""
    if remote is None:
        return None
    if remote.size != f.size:
        return False
    sha, md5 = f.digests()
    if remote.md5 is not None:
        return hmac.compare_digest(remote.md5, md5)
    if _HASH_NAMED.match(f.name.rsplit("/", 1)[-1]):
        return True  # the name pins the bytes; the final audit re-hashes them
    got = dest.digest(f.name, f.size)
    return got is not None and got == (sha, f.size)


def publish(
    root: Path,
    dest: Destination,
    *,
    now: datetime,
    cache_control: dict[str, str] | None = None,
    jobs: int = 8,
    dry_run: bool = False,
    warn: Callable[[str], None] = lambda _m: None,
) -> PublishSummary:
    """Copy the signed repository ``root`` to ``dest`` (see the module docstring).

    Raises:
        UserError: unsigned changes, another or a newer repository at ``dest``, or the
            destination failed (exit 1).
        VerificationError: ``root`` fails ``repo check``, or what was uploaded does not
            read back as the signed bytes (exit 3).
    """
    from repotool.publish.check import check_repository
    from repotool.publish.tree import RepositoryTree

    policy = cache_control or DEFAULT_CACHE_CONTROL
    tree = RepositoryTree(root)
    lock = tree.lock() if (root / WORK_DIR).is_dir() else contextlib.nullcontext()
    summary = PublishSummary(str(root), dest.url, dry_run=dry_run)
    with lock:
        _refuse_unsigned(root)
        report = check_repository(root, now=now)
        if report.problems:
            raise VerificationError(
                f"{str(root)!r} fails its check ({len(report.problems)} problem(s)), first: "
                f"{report.problems[0]}", f"see 'repotool repo check {root}'")
        versions = _current_versions(root)
        summary.versions = {k: versions[k] for k in ("root", "snapshot", "timestamp")}
        files = _local_files(root, versions, summary)
        _refuse_destination(dest, root, versions)
        listing = dest.listing()
        todo: list[LocalFile] = []
        for f in files:
            held = _holds(dest, f, listing.get(f.name))
            if held:
                summary.present += 1
                continue
            if held is False and cache_kind(f.name) == "immutable":  # never changes
                summary.replaced.append(f.name)
                warn(f"{dest.url} held other bytes under {f.name}: uploading the signed ones")
            todo.append(f)
        todo.sort(key=lambda f: f.stage)  # stable: by name within a stage
        if dry_run:
            summary.uploaded = [f.name for f in todo]
            summary.bytes = sum(f.size for f in todo)
            return summary
        from repotool import progress  # a bar on a terminal only (the CLI decides)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
                progress.task("publish", total=len(todo), unit="files") as bar:
            def put(f: Any) -> None:
                _put(dest, f, policy)
                bar.advance()

            for stage in sorted({f.stage for f in todo}):
                batch = [f for f in todo if f.stage == stage]
                list(pool.map(put, batch))
                dest.sync()
                bad = [f.name for f, ok in zip(batch, pool.map(
                    lambda f: dest.digest(f.name, f.size) == (f.digests()[0], f.size), batch),
                    strict=True) if not ok]
                summary.verified += len(batch) - len(bad)
                if bad:
                    kept = "" if stage == _LAST else "; its timestamp was not advanced"
                    raise VerificationError(
                        f"{dest.url}: {len(bad)} uploaded file(s) do not read back as the "
                        f"signed bytes, first: {bad[0]}{kept}",
                        "check the destination (or what stands between) and publish again")
                summary.uploaded += [f.name for f in batch]
                summary.bytes += sum(f.size for f in batch)
    problems = dest.audit(now)
    if problems:
        raise VerificationError(
            f"{dest.url} fails verification as a client would see it ({len(problems)} "
            f"problem(s)), first: {problems[0]}", f"see 'repotool repo check {dest.url}'")
    summary.audited = problems is not None
    return summary


def _put(dest: Destination, f: LocalFile, policy: dict[str, str]) -> None:
    f.digests()  # the sha256 read back is compared with (and an S3 Content-MD5)
    dest.put(f, content_type(f.name), policy[cache_kind(f.name)])
