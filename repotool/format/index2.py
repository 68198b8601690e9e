"""Index format version 2: shard and bin counts that follow the repository's size.

Version 1 (``repotool.format.index``) has 256 shards named by the first two hex digits of
``sha256(project)``. Version 2 keeps the file entries and validation rules and changes
three things (docs/format.md, "Format version 2"):

* the number of shards is ``2**bits`` (0 ≤ bits ≤ 16), recorded in the signed
  ``targets`` metadata (``x-repotool``: ``{"format": 2, "index_bits": S, "files": F,
  "projects": P}``); a project's shard is the top ``bits`` bits of its name's sha256,
  written in lowercase hex with ``max(1, ceil(bits / 4))`` digits (as TUF's succinct
  hash bins name theirs);
* a shard is line-oriented so a reader can use one project without decoding the rest:
  a header line, then per project ``HEAD <TAB> FILES`` where HEAD is the project's
  name, summary, latest version and file count, and FILES its file entries;
* the counts are chosen by :func:`choose_bits` (grow-only, with hysteresis).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from repotool.errors import FormatError
from repotool.format.index import (
    FileEntry,
    Project,
    Shard,
    bounded_str,
    parse_file_entry,
    shard_of,
    summary_max_length,
)

__all__ = [
    "BIN_TARGETS",
    "FIELD",
    "MAX_BITS",
    "SHARD_ENTRIES",
    "IndexLayout",
    "LazyProjects",
    "choose_bits",
    "latest_version",
    "layout_field",
    "layout_of",
]

FIELD = "x-repotool"  # the unrecognized field of the signed targets metadata
MAX_BITS = 16
SHARD_ENTRIES = 1024  # files per shard aimed at when (re)balancing
BIN_TARGETS = 1024  # targets per hash bin aimed at when (re)balancing
_V1 = 1
_V2 = 2
_HEAD_KEYS = {"name", "summary", "latest", "files"}
_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # exactly the PEP 503 normalized names


def choose_bits(current: int | None, count: int, per: int, minimum: int = 0) -> int:
    """The bit count for ``count`` items at about ``per`` items per bucket.

    Grow-only, with hysteresis: a layout is kept while its buckets hold on average at
    most ``2 * per`` items; past that, it grows to the smallest bit count whose average
    is at most ``per`` — so every re-balance (which rewrites every bucket) is followed by
    at least a doubling of the repository before the next one. A repository that shrinks
    keeps its layout (smaller buckets cost nothing but their count).
    """
    if current is not None and count <= 2 * per * (1 << current):
        return current
    bits = minimum
    while bits < MAX_BITS and count > per * (1 << bits):
        bits += 1
    return max(bits, current or 0, minimum)


def _digits(bits: int) -> int:
    return max(1, (bits + 3) // 4)


@dataclass(frozen=True)
class IndexLayout:
    """How a repository's index is sharded: format 1 (256 JSON shards) or 2."""

    format: int = _V2
    bits: int = 8
    files: int = 0  # v2: the number of file entries (signed; drives re-balancing)
    projects: int = 0

    def shard_of(self, project: str) -> str:
        if self.format == _V1:
            return shard_of(project)
        if self.bits == 0:
            return "0"
        if self.bits % 4 == 0:  # the same number, fewer steps
            return hashlib.sha256(project.encode()).hexdigest()[:self.bits // 4]
        n = int.from_bytes(hashlib.sha256(project.encode()).digest()[:4], "big")
        return format(n >> (32 - self.bits), f"0{_digits(self.bits)}x")

    def path(self, sid: str) -> str:
        return f"index/{sid}.json"

    def shard_id(self, path: str) -> str | None:
        """The shard id of a target path ``index/ID.json``, or None when the path is not
        a valid shard of this layout (wrong digits, out of range)."""
        if not (path.startswith("index/") and path.endswith(".json")):
            return None
        sid = path[len("index/"):-len(".json")]
        width = 2 if self.format == _V1 else _digits(self.bits)
        if len(sid) != width or not re.fullmatch(r"[0-9a-f]+", sid):
            return None
        if self.format == _V2 and int(sid, 16) >= (1 << self.bits):
            return None
        return sid

    def encode(self, shard: Shard) -> bytes:
        if self.format == _V1:
            return shard.to_bytes()
        head = {"repotool-index": _V2, "shard": shard.shard, "bits": self.bits}
        lines = [_dumps(head)]
        for name, p in sorted(shard.projects.items()):
            files = sorted(p.files, key=lambda f: f.filename)
            latest = latest_version(files)
            meta = {"name": name, "summary": p.summary, "latest": latest, "files": len(files)}
            lines.append(_dumps(meta) + b"\t" + _dumps([f.to_dict() for f in files]))
        return b"\n".join(lines) + b"\n"

    def decode(self, data: bytes, sid: str) -> Shard:
        """Every project of a verified shard, fully validated (``Shard.from_bytes``)."""
        if self.format == _V1:
            return Shard.from_bytes(data, sid)
        out = Shard(sid)
        problems: list[str] = []
        for name, meta, files in self._lines(data, sid):
            try:
                out.projects[name] = self._project(name, meta, files)
            except (FormatError, KeyError, TypeError, ValueError) as e:
                problems.append(f"{name!r}: {e}")
        if problems:
            raise FormatError(
                f"index shard {sid!r} is malformed: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return out

    def headers(self, data: bytes, sid: str) -> dict[str, dict[str, Any]]:
        """Per project of a verified v2 shard: shard, summary, latest, file count —
        decoding only each project's head, not its file entries."""
        return {name: {"shard": sid, "summary": meta["summary"], "latest": meta["latest"],
                       "files": meta["files"]}
                for name, meta, _files in self._lines(data, sid, with_files=False)}

    def check_head(self, line: bytes, sid: str) -> None:
        """The first line of a v2 shard: format, shard id and bits as signed."""
        try:
            head = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise FormatError(f"index shard {sid!r} has no valid header line") from None
        if not isinstance(head, dict) or set(head) != {"repotool-index", "shard", "bits"}:
            raise FormatError(f"index shard {sid!r} has unexpected header fields")
        fv = head["repotool-index"]
        if type(fv) is not int or fv != _V2:
            raise FormatError(f"index shard {sid!r} has format {fv!r}, expected {_V2}",
                              "upgrade repotool")
        if head["shard"] != sid or head["bits"] != self.bits or type(head["bits"]) is not int:
            raise FormatError(f"index shard {sid!r} says it is shard {head['shard']!r} of "
                              f"{head['bits']!r} bits, signed as {sid!r} of {self.bits}")

    def _lines(self, data: bytes, sid: str, with_files: bool = True
               ) -> Iterator[tuple[str, dict[str, Any], bytes]]:
        """Each project line's name, validated HEAD and (``with_files``) FILES bytes;
        scans for the separators without copying the FILES parts it does not need."""
        if not data.endswith(b"\n"):
            raise FormatError(f"index shard {sid!r} does not end with a newline")
        if not data.isascii():
            raise FormatError(f"index shard {sid!r} is not ASCII")
        first = data.index(b"\n")
        self.check_head(data[:first], sid)
        previous = ""
        loads = json.loads
        pos, end = first + 1, len(data)
        while pos < end:
            nl = data.index(b"\n", pos)
            tab = data.find(b"\t", pos, nl)
            try:
                meta = loads(data[pos:tab].decode()) if tab != -1 else None
            except (ValueError, RecursionError):
                meta = None
            files = data[tab + 1:nl] if with_files and tab != -1 else b""
            pos = nl + 1
            if not isinstance(meta, dict) or meta.keys() != _HEAD_KEYS:
                raise FormatError(f"index shard {sid!r}: a project line is malformed")
            name = meta["name"]
            # a normalized name (canonicalize_name(n) == n), as is_project_name checks
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise FormatError(f"index shard {sid!r}: {name!r} is not a normalized name")
            if self.shard_of(name) != sid:
                raise FormatError(f"index shard {sid!r}: {name!r} belongs to shard "
                                  f"{self.shard_of(name)}")
            if name <= previous:
                raise FormatError(f"index shard {sid!r}: projects not sorted or repeated")
            previous = name
            bounded_str(meta["summary"], "summary", summary_max_length)
            bounded_str(meta["latest"], "latest", 128)
            if type(meta["files"]) is not int or meta["files"] < 0:
                raise FormatError(f"index shard {sid!r}: {name!r}: bad file count")
            yield name, meta, files

    @staticmethod
    def _project(name: str, meta: dict[str, Any], files_json: bytes) -> Project:
        try:
            docs = json.loads(files_json)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise FormatError("file list is not JSON") from None
        if not isinstance(docs, list):
            raise FormatError("file list is not a list")
        files: list[FileEntry] = []
        seen: set[str] = set()
        for fdoc in docs:
            entry = parse_file_entry(name, fdoc)
            if entry.filename in seen:
                raise FormatError(f"file {entry.filename!r} listed twice")
            seen.add(entry.filename)
            files.append(entry)
        if meta["files"] != len(files) or meta["latest"] != latest_version(files):
            raise FormatError("head (latest version, file count) disagrees with its files")
        return Project(name, meta["summary"], files)


def latest_version(files: list[FileEntry]) -> str:
    """The version an installer picks without a pin: the highest not yanked, a final
    release before any pre-release; if every file is yanked, the highest yanked one."""
    best: tuple[bool, bool, Version] | None = None
    for f in files:
        try:
            v = Version(f.version)
        except InvalidVersion:
            raise FormatError(f"bad version {f.version!r}") from None
        key = (f.yanked is False, not v.is_prerelease, v)
        if best is None or key > best:
            best = key
    return str(best[2]) if best is not None else ""


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def layout_field(layout: IndexLayout) -> dict[str, int]:
    """The value of the targets role's ``x-repotool`` field for ``layout``."""
    return {"format": layout.format, "index_bits": layout.bits, "files": layout.files,
            "projects": layout.projects}


def layout_of(unrecognized: Mapping[str, Any]) -> IndexLayout:
    """The index layout the signed targets metadata declares (its unrecognized fields):
    none means format 1.

    Raises:
        FormatError: the field is present but not exactly a known layout.
    """
    doc = unrecognized.get(FIELD)
    if doc is None:
        return IndexLayout(_V1, 8)
    keys = {"format", "index_bits", "files", "projects"}
    if not isinstance(doc, dict) or set(doc) != keys or any(
            type(doc[k]) is not int or doc[k] < 0 for k in keys):
        raise FormatError(f"targets metadata: malformed {FIELD} field")
    if doc["format"] != _V2:
        raise FormatError(f"targets metadata declares index format {doc['format']}, this "
                          f"repotool reads 1 and 2", "upgrade repotool")
    if doc["index_bits"] > MAX_BITS:
        raise FormatError(f"targets metadata: index_bits {doc['index_bits']} > {MAX_BITS}")
    return IndexLayout(_V2, doc["index_bits"], doc["files"], doc["projects"])


class LazyProjects(Mapping[str, dict[str, Any]]):
    """A v2 source's project list, read from the verified shards only when used: a
    lookup decodes the heads of one shard, iteration those of every shard."""

    def __init__(self, layout: IndexLayout, count: int, load: Any) -> None:
        self._layout = layout
        self._count = count
        self._load = load  # sid -> verified shard bytes, or None when the shard is absent
        self._heads: dict[str, dict[str, dict[str, Any]]] = {}
        self._sids: list[str] | None = None

    def set_shards(self, sids: list[str]) -> None:
        self._sids = sorted(sids)

    def _shard(self, sid: str) -> dict[str, dict[str, Any]]:
        if sid not in self._heads:
            data = self._load(sid)
            self._heads[sid] = {} if data is None else self._layout.headers(data, sid)
        return self._heads[sid]

    def __getitem__(self, name: str) -> dict[str, Any]:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._shard(self._layout.shard_of(name))[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._shard(self._layout.shard_of(name))

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._all())

    def _all(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for sid in self._sids or []:
            out.extend(self._shard(sid).items())
        out.sort(key=lambda kv: kv[0])
        return out

    def items(self) -> Any:  # every shard's heads once, without a lookup per name
        return self._all()

    def values(self) -> Any:
        return [v for _, v in self._all()]

    def __len__(self) -> int:
        return self._count
