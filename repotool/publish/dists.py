"""Reading wheels and sdists: name, version and metadata come from the file, never the user.

The filename is parsed with ``packaging.utils`` and the file's own metadata (wheel
``METADATA``, sdist ``PKG-INFO``) with ``packaging.metadata``; the two must agree.
"""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import Metadata
from packaging.utils import canonicalize_name
from packaging.version import Version

from repotool.errors import UserError
from repotool.format.names import InvalidName, parse_filename
from repotool.storage import hash_file

__all__ = ["DistInfo", "inspect", "is_distribution_name", "sha256_file"]

metadata_max_length = 4 * 1024 * 1024  # bytes of METADATA / PKG-INFO
chunk_size = 1024 * 1024  # bytes per read when hashing


@dataclass(frozen=True, slots=True)
class DistInfo:
    filename: str
    project: str  # normalized (PEP 503)
    display_name: str
    version: str  # normalized (str(Version))
    kind: str  # "wheel" | "sdist"
    sha256: str
    size: int
    requires_python: str | None
    requires_dist: tuple[str, ...]
    summary: str
    metadata: bytes | None = None  # a wheel's METADATA bytes, published as FILE.metadata


def sha256_file(path: Path) -> tuple[str, int]:
    return hash_file(path)


def is_distribution_name(filename: str) -> bool:
    return filename.endswith((".whl", ".tar.gz", ".zip"))


def _parse_name(filename: str) -> tuple[str, Version, str]:
    """The publisher's side of the one name rule (``repotool.format.names``)."""
    try:
        return parse_filename(filename)
    except InvalidName as e:
        raise UserError(e.message, e.hint) from None


def _read_member(path: Path, kind: str, want: str) -> bytes:
    """Read the metadata member of a wheel (``*.dist-info/METADATA``) or an sdist
    (``*/PKG-INFO``), bounded in size."""
    try:
        if kind == "wheel" or path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                names = [
                    n for n in z.namelist() if n.count("/") == 1 and n.endswith("/" + want)
                ]
                if kind == "wheel":
                    names = [n for n in names if n.split("/")[0].endswith(".dist-info")]
                if len(names) != 1:
                    raise UserError(f"{path.name!r} has {len(names)} {want} files, expected 1")
                info = z.getinfo(names[0])
                if info.file_size > metadata_max_length:
                    raise UserError(f"{path.name!r}: {want} is too large")
                return z.read(info)
        with tarfile.open(path, "r:gz") as t:
            members = [
                m for m in t.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
            ]
            if len(members) != 1 or not members[0].isfile():
                raise UserError(f"{path.name!r} has no single top-level PKG-INFO")
            if members[0].size > metadata_max_length:
                raise UserError(f"{path.name!r}: PKG-INFO is too large")
            f = t.extractfile(members[0])
            assert f is not None
            return f.read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise UserError(f"{str(path)!r} not found") from None
        raise UserError(f"{path.name!r} is not a readable archive: {e}") from None


def inspect(path: Path) -> DistInfo:
    """Read a distribution file: filename, metadata, sha256 and size.

    Raises:
        UserError: the file is missing, not a distribution, or its metadata is missing,
            malformed, or disagrees with its filename.
    """
    if not path.is_file():
        raise UserError(f"{str(path)!r} not found or not a file")
    name, version, kind = _parse_name(path.name)
    raw = _read_member(path, kind, "METADATA" if kind == "wheel" else "PKG-INFO")
    try:
        meta = Metadata.from_email(raw, validate=True)
    except Exception as e:  # packaging raises ExceptionGroup / InvalidMetadata / ValueError
        raise UserError(f"{path.name!r}: malformed metadata: {_first_line(e)}") from None
    if canonicalize_name(meta.name) != canonicalize_name(name):
        raise UserError(
            f"{path.name!r}: metadata names project {meta.name!r}, the filename {name!r}"
        )
    if meta.version != version:
        raise UserError(
            f"{path.name!r}: metadata says version {meta.version}, the filename {version}"
        )
    sha, size = sha256_file(path)
    return DistInfo(
        filename=path.name,
        project=canonicalize_name(name),
        display_name=meta.name,
        version=str(version),
        kind=kind,
        sha256=sha,
        size=size,
        requires_python=str(meta.requires_python) if meta.requires_python else None,
        requires_dist=tuple(str(r) for r in (meta.requires_dist or [])),
        summary=(meta.summary or "").strip(),
        metadata=raw if kind == "wheel" else None,
    )


def _first_line(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup) and e.exceptions:
        return _first_line(e.exceptions[0])
    return str(e).splitlines()[0] if str(e) else type(e).__name__
