"""The Python index: one JSON shard per hash bucket of project names.

A shard's target path is ``index/XX.json`` where ``XX`` is the first two hex digits
of ``sha256(normalized project name)``. The shard is a TUF target of the top-level
``targets`` role, so its sha256 and length are signed before a client parses it;
every distribution it lists is named by sha256 and size, which is how a client
verifies a download (the hash chain timestamp → snapshot → targets → shard → file).

Example::

    {"projects": {"demo-pkg": {"files": [{"filename": "demo_pkg-1.0-py3-none-any.whl",
      "requires_dist": [], "requires_python": null, "sha256": "…", "size": 1234,
      "upload_time": "2026-11-25T12:00:00Z", "version": "1.0", "yanked": false}],
      "name": "demo-pkg", "summary": "A demo"}}, "repotool-index": 1, "shard": "3f"}

A wheel's entry may also carry ``metadata_sha256`` and ``metadata_size`` (both or
neither): the signed hash and size of its core metadata file ``FILENAME.metadata``
(PEP 658/714), a target next to the wheel.

Bytes are canonical: ``json.dumps(sort_keys=True, separators=(",", ":"))``, UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from repotool.errors import FormatError
from repotool.format.names import InvalidName, filename_max_length, is_project_name, parse_filename

__all__ = [
    "FORMAT_VERSION",
    "FileEntry",
    "Project",
    "Shard",
    "shard_of",
    "shard_path",
    "summarize",
]

FORMAT_VERSION = 1
_SHA = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
summary_max_length = 512  # characters
field_max_length = 4096  # characters of any other string field


def shard_of(project: str) -> str:
    """The shard (two hex digits) of a normalized project name."""
    return hashlib.sha256(project.encode()).hexdigest()[:2]


def shard_path(shard: str) -> str:
    return f"index/{shard}.json"


@dataclass(frozen=True)
class FileEntry:
    filename: str
    version: str
    sha256: str
    size: int
    requires_python: str | None
    requires_dist: tuple[str, ...]
    upload_time: str
    yanked: bool | str  # False, True, or the reason (PEP 592)
    metadata_sha256: str | None = None  # of FILENAME.metadata (PEP 658), when published
    metadata_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "filename": self.filename,
            "version": self.version,
            "sha256": self.sha256,
            "size": self.size,
            "requires_python": self.requires_python,
            "requires_dist": list(self.requires_dist),
            "upload_time": self.upload_time,
            "yanked": self.yanked,
        }
        if self.metadata_sha256 is not None:  # optional: entries without it stay as before
            d["metadata_sha256"] = self.metadata_sha256
            d["metadata_size"] = self.metadata_size
        return d

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass
class Project:
    name: str  # normalized
    summary: str = ""
    files: list[FileEntry] = field(default_factory=list)

    def versions(self) -> list[Version]:
        return sorted({Version(f.version) for f in self.files})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "files": [f.to_dict() for f in sorted(self.files, key=lambda f: f.filename)],
        }


@dataclass
class Shard:
    shard: str
    projects: dict[str, Project] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "repotool-index": FORMAT_VERSION,
            "shard": self.shard,
            "projects": {n: p.to_dict() for n, p in sorted(self.projects.items())},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, shard: str) -> Shard:
        """Parse and validate a shard whose hash was already verified.

        Raises:
            FormatError: anything that is not exactly a valid shard ``shard``.
        """
        problems: list[str] = []
        out = cls(shard)
        projects = _load_projects(data, shard)
        for name, pdoc in projects.items():
            try:
                out.projects[name] = _parse_project(name, pdoc, shard)
            except (FormatError, KeyError, TypeError, ValueError) as e:
                problems.append(f"{name!r}: {e}")
        if problems:
            raise FormatError(
                f"index shard {shard!r} is malformed: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        return out


def _load_projects(data: bytes, shard: str) -> dict[str, Any]:
    """JSON and the top level of a shard; the ``projects`` object, unvalidated."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"index shard {shard!r} is not JSON: {e}") from None
    except RecursionError:  # absurdly deep nesting
        raise FormatError(f"index shard {shard!r} is nested too deeply") from None
    if not isinstance(doc, dict) or set(doc) != {"repotool-index", "shard", "projects"}:
        raise FormatError(f"index shard {shard!r} has unexpected top-level fields")
    fv = doc["repotool-index"]
    if type(fv) is not int or fv != FORMAT_VERSION:  # not True, 1.0 or "1"
        raise FormatError(
            f"index shard {shard!r} has format {doc['repotool-index']!r}, "
            f"this repotool reads {FORMAT_VERSION}",
            "upgrade repotool",
        )
    if doc["shard"] != shard:
        raise FormatError(f"index shard {shard!r} says it is shard {doc['shard']!r}")
    projects = doc["projects"]
    if not isinstance(projects, dict):
        raise FormatError(f"index shard {shard!r}: 'projects' is not an object")
    return projects


def summarize(data: bytes, shard: str) -> dict[str, dict[str, Any]]:
    """What ``update`` keeps of a verified shard: per project its summary, latest
    version and file count — validating the shard's structure and project names, not
    each file entry.

    The latest version is the one an installer would pick without a pin: the highest
    not yanked (PEP 592), a final release before any pre-release unless there are only
    pre-releases (as pip); only when every file is yanked, the highest yanked one.

    The per-file checks of :meth:`Shard.from_bytes` (filenames, hashes, sizes) cost
    ~30 µs per file — seconds at 100,000 files — and run instead when a project is
    used (``show``, ``download``, ``install``), which refuses it the same way (exit 3).

    Raises:
        FormatError: the shard or a project in it is malformed.
    """
    versions: dict[str, Version] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, pdoc in _load_projects(data, shard).items():
        try:
            pdoc = _project_header(name, pdoc, shard)
            files = pdoc["files"]
            best: tuple[bool, bool, Version] | None = None
            for f in files:
                v = f["version"] if isinstance(f, dict) else None
                if not isinstance(v, str) or len(v) > 128:
                    raise FormatError("a file has no version")
                if v not in versions:
                    versions[v] = Version(v)
                key = (f.get("yanked") is False, not versions[v].is_prerelease, versions[v])
                if best is None or key > best:
                    best = key
            out[name] = {
                "shard": shard,
                "summary": _str(pdoc["summary"], "summary", summary_max_length),
                "latest": str(best[2]) if best is not None else "",
                "files": len(files),
            }
        except (FormatError, InvalidVersion) as e:
            raise FormatError(f"index shard {shard!r} is malformed: {name!r}: {e}") from None
    return out


def _str(v: object, what: str, limit: int = field_max_length) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise FormatError(f"{what} must be a string of at most {limit} characters")
    return v


def _project_header(name: str, pdoc: object, shard: str) -> dict[str, Any]:
    """The checks every reader of a project entry makes: name, shard, fields."""
    if not is_project_name(name):
        raise FormatError("project name is not a normalized project name")
    if shard_of(name) != shard:
        raise FormatError(f"belongs to shard {shard_of(name)}")
    if not isinstance(pdoc, dict) or set(pdoc) != {"name", "summary", "files"}:
        raise FormatError("unexpected project fields")
    if pdoc["name"] != name:
        raise FormatError("name field differs from its key")
    if not isinstance(pdoc["files"], list):
        raise FormatError("'files' is not a list")
    return pdoc


def _parse_project(name: str, pdoc: object, shard: str) -> Project:
    pdoc = _project_header(name, pdoc, shard)
    summary = _str(pdoc["summary"], "summary", summary_max_length)
    files_doc = pdoc["files"]
    files: list[FileEntry] = []
    seen: set[str] = set()
    for fdoc in files_doc:
        entry = _parse_file(name, fdoc)
        if entry.filename in seen:
            raise FormatError(f"file {entry.filename!r} listed twice")
        seen.add(entry.filename)
        files.append(entry)
    return Project(name, summary, files)


_FILE_KEYS = {
    "filename", "version", "sha256", "size", "requires_python",
    "requires_dist", "upload_time", "yanked",
}
_METADATA_KEYS = {"metadata_sha256", "metadata_size"}  # optional, together (PEP 658)


def _parse_file(project: str, fdoc: object) -> FileEntry:
    if not isinstance(fdoc, dict) or set(fdoc) not in (_FILE_KEYS, _FILE_KEYS | _METADATA_KEYS):
        raise FormatError("unexpected file fields")
    filename = _str(fdoc["filename"], "filename", filename_max_length)
    try:  # the publisher's own rule: printable, URL- and path-safe, parseable
        fname, fversion, _kind = parse_filename(filename)
        version = Version(_str(fdoc["version"], "version", 128))
    except InvalidName as e:
        raise FormatError(f"unsafe or invalid filename: {e.message}") from None
    except InvalidVersion as e:
        raise FormatError(f"bad version: {e}") from None
    if fname != project or fversion != version:
        raise FormatError(f"file {filename!r} does not belong to {project} {version}")
    sha = fdoc["sha256"]
    if not isinstance(sha, str) or not _SHA.match(sha):
        raise FormatError(f"file {filename!r}: sha256 is not 64 lowercase hex digits")
    size = fdoc["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FormatError(f"file {filename!r}: size is not a non-negative integer")
    rp = fdoc["requires_python"]
    if rp is not None:
        rp = _str(rp, "requires_python", 256)
    rd = fdoc["requires_dist"]
    if not isinstance(rd, list):
        raise FormatError("requires_dist is not a list")
    deps = tuple(_str(r, "requires_dist entry") for r in rd)
    ut = _str(fdoc["upload_time"], "upload_time", 32)
    if not _TIME.match(ut):
        raise FormatError(f"upload_time {ut!r} is not YYYY-MM-DDTHH:MM:SSZ")
    yanked = fdoc["yanked"]
    if not isinstance(yanked, bool):
        yanked = _str(yanked, "yanked reason", 1024)
        if not yanked:  # PEP 691: a reason is a non-empty string
            raise FormatError(f"file {filename!r}: yanked reason is empty")
    msha, msize = fdoc.get("metadata_sha256"), fdoc.get("metadata_size")
    if "metadata_sha256" in fdoc:
        if not isinstance(msha, str) or not _SHA.match(msha):
            raise FormatError(f"file {filename!r}: metadata_sha256 is not 64 lowercase hex digits")
        if type(msize) is not int or msize < 0:
            raise FormatError(f"file {filename!r}: metadata_size is not a non-negative integer")
    return FileEntry(filename, str(version), sha, size, rp, deps, ut, yanked, msha, msize)


# shared with index format 2 (repotool.format.index2), which keeps these entry rules
parse_file_entry = _parse_file
bounded_str = _str
