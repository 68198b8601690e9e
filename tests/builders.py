"""Builders of REAL Python distributions for tests (wheels and sdists).

Everything here uses only the standard library, so it does not depend on the
package under test.  Output is byte-for-byte deterministic: the same call
produces the same bytes (fixed timestamps, fixed ordering, fixed permissions),
so tests can pin sha256 digests.

Public API::

    build_wheel(out_dir, name, version, *, requires_dist=(), requires_python=None,
                summary=..., tag="py3-none-any", files=None,
                metadata_name=None, metadata_version=None) -> Path
    build_sdist(out_dir, name, version, *, requires_dist=(), requires_python=None,
                summary=...) -> Path
    tamper(path, offset=-1) -> None
    normalize_dist_name(name) -> str      # "Foo.Bar-baz" -> "foo_bar_baz"
    import_name(name) -> str              # module name of the tiny package
    wheel_filename(name, version, tag="py3-none-any") -> str
    sdist_filename(name, version) -> str
    sha256_file(path) -> str              # hex digest
    record_hash(data) -> str              # "sha256=<urlsafe-b64-nopad>"
    metadata_text(name, version, ...) -> str
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import itertools
import json
import re
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_SUMMARY",
    "build_sdist",
    "build_wheel",
    "import_name",
    "metadata_text",
    "normalize_dist_name",
    "record_hash",
    "sdist_filename",
    "sha256_file",
    "tamper",
    "wheel_filename",
]

DEFAULT_SUMMARY = "A tiny test distribution"

# 1980-01-01 00:00:00, the earliest timestamp a zip file can hold.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_TAR_EPOCH = 315532800  # the same instant as a POSIX timestamp (UTC)
_GENERATOR = "repotool-tests-builders (1.0)"


# --------------------------------------------------------------------------
# names and hashes
# --------------------------------------------------------------------------


def normalize_dist_name(name: str) -> str:
    """Escape a project name for use in a wheel/sdist filename.

    Per the binary distribution format spec: runs of ``-_.`` become ``_`` and
    the name is lower-cased ("Foo.Bar-baz" -> "foo_bar_baz").
    """
    return re.sub(r"[-_.]+", "_", name).lower()


def import_name(name: str) -> str:
    """The name of the tiny importable module shipped in built distributions."""
    return normalize_dist_name(name)


def _normalize_version(version: str) -> str:
    """Normalize a version for filenames; leave invalid versions (bad-input
    tests) as they are apart from escaping ``-``."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging is in the test venv
        return version.replace("-", "_")
    try:
        return str(Version(version))
    except InvalidVersion:
        return version.replace("-", "_")


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    return f"{normalize_dist_name(name)}-{_normalize_version(version)}-{tag}.whl"


def sdist_filename(name: str, version: str) -> str:
    return f"{normalize_dist_name(name)}-{_normalize_version(version)}.tar.gz"


def record_hash(data: bytes) -> str:
    """The hash format used in RECORD files: ``sha256=<urlsafe b64, no padding>``."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's contents."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _expand_tags(tag: str) -> list[str]:
    """Expand a compressed tag set ("py2.py3-none-any") into single tags."""
    parts = tag.split("-")
    if len(parts) != 3:
        raise ValueError(f"wheel tag must look like 'py3-none-any', got {tag!r}")
    interpreters, abis, platforms = (p.split(".") for p in parts)
    return ["-".join(t) for t in itertools.product(interpreters, abis, platforms)]


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------


def metadata_text(
    name: str,
    version: str,
    *,
    summary: str = DEFAULT_SUMMARY,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    metadata_version: str = "2.1",
    provides_extra: Sequence[str] = (),
) -> str:
    """Core metadata (METADATA / PKG-INFO) in email-header format."""
    lines = [
        f"Metadata-Version: {metadata_version}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
    ]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Provides-Extra: {e}" for e in provides_extra)
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    return "\n".join(lines) + "\n\n"


def _module_source(name: str, version: str) -> bytes:
    return (
        f'"""Tiny module shipped by the test distribution {name!r}."""\n__version__ = {version!r}\n'
    ).encode()


# --------------------------------------------------------------------------
# wheels
# --------------------------------------------------------------------------


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # unix, on every platform, for determinism
    info.external_attr = 0o100644 << 16
    return info


def _wheel_bytes(contents: Mapping[str, bytes], dist_info: str) -> bytes:
    """Zip ``contents`` plus a RECORD (written last) into wheel bytes."""
    record_path = f"{dist_info}/RECORD"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for arcname, data in contents.items():
        writer.writerow([arcname, record_hash(data), str(len(data))])
    writer.writerow([record_path, "", ""])
    record = out.getvalue().encode()

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in [*contents.items(), (record_path, record)]:
            zf.writestr(_zip_info(arcname), data)
    return buf.getvalue()


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = DEFAULT_SUMMARY,
    tag: str = "py3-none-any",
    files: Mapping[str, bytes] | None = None,
    metadata_name: str | None = None,
    metadata_version: str | None = None,
    provides_extra: Sequence[str] = (),
) -> Path:
    """Write a valid, deterministic wheel into ``out_dir`` and return its path.

    The wheel holds ``{import_name(name)}/__init__.py`` (with
    ``__version__ = version``), ``{dist}-{ver}.dist-info/{METADATA,WHEEL,RECORD}``
    and any extra ``files`` (archive path -> bytes; they win over the defaults).
    ``metadata_name``/``metadata_version`` put different values in METADATA than
    in the filename, for bad-input tests.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = normalize_dist_name(name)
    ver = _normalize_version(version)
    dist_info = f"{dist}-{ver}.dist-info"

    contents: dict[str, bytes] = {
        f"{import_name(name)}/__init__.py": _module_source(name, version),
    }
    for arcname, data in (files or {}).items():
        contents[arcname] = data
    contents[f"{dist_info}/METADATA"] = metadata_text(
        metadata_name if metadata_name is not None else name,
        metadata_version if metadata_version is not None else version,
        summary=summary,
        requires_dist=requires_dist,
        requires_python=requires_python,
        provides_extra=provides_extra,
    ).encode()
    wheel_lines = [
        "Wheel-Version: 1.0",
        f"Generator: {_GENERATOR}",
        "Root-Is-Purelib: true",
        *(f"Tag: {t}" for t in _expand_tags(tag)),
    ]
    contents[f"{dist_info}/WHEEL"] = ("\n".join(wheel_lines) + "\n\n").encode()

    path = out_dir / f"{dist}-{ver}-{tag}.whl"
    path.write_bytes(_wheel_bytes(contents, dist_info))
    return path


# --------------------------------------------------------------------------
# sdists
# --------------------------------------------------------------------------

# The in-tree PEP 517 backend shipped inside every sdist.  Standard library
# only, so ``pip install`` of the sdist works offline (build requires = []).
# The constants at the top are filled in by build_sdist().
_BACKEND_TEMPLATE = '''\
"""In-tree PEP 517 build backend generated by repotool's tests/builders.py.

Standard library only: builds a pure-Python wheel with zipfile.
"""

import base64
import csv
import hashlib
import io
import os
import tarfile
import zipfile

DIST = {dist!r}
VERSION = {version!r}
PACKAGE = {package!r}
METADATA = {metadata!r}
GENERATOR = {generator!r}
HERE = os.path.dirname(os.path.abspath(__file__))
DIST_INFO = DIST + "-" + VERSION + ".dist-info"
WHEEL_NAME = DIST + "-" + VERSION + "-py3-none-any.whl"
SDIST_NAME = DIST + "-" + VERSION + ".tar.gz"
WHEEL = (
    "Wheel-Version: 1.0\\n"
    "Generator: " + GENERATOR + "\\n"
    "Root-Is-Purelib: true\\n"
    "Tag: py3-none-any\\n\\n"
)


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _package_files():
    root = os.path.join(HERE, PACKAGE)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            full = os.path.join(dirpath, filename)
            arcname = os.path.relpath(full, HERE).replace(os.sep, "/")
            with open(full, "rb") as f:
                found.append((arcname, f.read()))
    return found


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    target = os.path.join(metadata_directory, DIST_INFO)
    os.makedirs(target, exist_ok=True)
    for filename, text in (("METADATA", METADATA), ("WHEEL", WHEEL)):
        with open(os.path.join(target, filename), "w", encoding="utf-8") as f:
            f.write(text)
    return DIST_INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    contents = _package_files()
    contents.append((DIST_INFO + "/METADATA", METADATA.encode("utf-8")))
    contents.append((DIST_INFO + "/WHEEL", WHEEL.encode("utf-8")))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\\n")
    for arcname, data in contents:
        writer.writerow([arcname, _record_hash(data), str(len(data))])
    writer.writerow([DIST_INFO + "/RECORD", "", ""])
    contents.append((DIST_INFO + "/RECORD", record.getvalue().encode("utf-8")))
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheel_directory, WHEEL_NAME), "w") as zf:
        for arcname, data in contents:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return WHEEL_NAME


def build_sdist(sdist_directory, config_settings=None):
    top = DIST + "-" + VERSION
    os.makedirs(sdist_directory, exist_ok=True)
    with tarfile.open(os.path.join(sdist_directory, SDIST_NAME), "w:gz") as tf:
        for dirpath, dirnames, filenames in os.walk(HERE):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for filename in sorted(filenames):
                full = os.path.join(dirpath, filename)
                rel = os.path.relpath(full, HERE).replace(os.sep, "/")
                tf.add(full, arcname=top + "/" + rel, recursive=False)
    return SDIST_NAME
'''


def _pyproject(
    name: str,
    version: str,
    summary: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
) -> str:
    # JSON strings are valid TOML basic strings.
    lines = [
        "[build-system]",
        "requires = []",
        'build-backend = "backend"',
        'backend-path = ["."]',
        "",
        "[project]",
        f"name = {json.dumps(name)}",
        f"version = {json.dumps(version)}",
        f"description = {json.dumps(summary)}",
        f"dependencies = [{', '.join(json.dumps(r) for r in requires_dist)}]",
    ]
    if requires_python is not None:
        lines.append(f"requires-python = {json.dumps(requires_python)}")
    return "\n".join(lines) + "\n"


def _tar_info(arcname: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.size = size
    info.mtime = _TAR_EPOCH
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    summary: str = DEFAULT_SUMMARY,
) -> Path:
    """Write a real, deterministic ``{dist}-{ver}.tar.gz`` sdist and return its path.

    Layout (under a ``{dist}-{ver}/`` top directory): ``PKG-INFO`` (Metadata
    2.2), ``pyproject.toml`` pointing at the in-tree backend ``backend.py``
    (``requires = []``, ``backend-path = ["."]``), and the tiny module
    ``{import_name(name)}/__init__.py``.  ``pip install`` builds it offline.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = normalize_dist_name(name)
    ver = _normalize_version(version)
    top = f"{dist}-{ver}"
    package = import_name(name)

    wheel_metadata = metadata_text(
        name,
        version,
        summary=summary,
        requires_dist=requires_dist,
        requires_python=requires_python,
    )
    pkg_info = metadata_text(
        name,
        version,
        summary=summary,
        requires_dist=requires_dist,
        requires_python=requires_python,
        metadata_version="2.2",
    )
    backend = _BACKEND_TEMPLATE.format(
        dist=dist,
        version=ver,
        package=package,
        metadata=wheel_metadata,
        generator=_GENERATOR,
    )
    members: dict[str, bytes] = {
        "PKG-INFO": pkg_info.encode(),
        "pyproject.toml": _pyproject(
            name, version, summary, requires_dist, requires_python
        ).encode(),
        "backend.py": backend.encode(),
        f"{package}/__init__.py": _module_source(name, version),
    }

    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for arcname, data in members.items():
            tf.addfile(_tar_info(f"{top}/{arcname}", len(data)), io.BytesIO(data))
    gz_buf = io.BytesIO()
    # filename="" and a fixed mtime keep the gzip header deterministic.
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, mtime=_TAR_EPOCH) as gz:
        gz.write(tar_buf.getvalue())

    path = out_dir / f"{top}.tar.gz"
    path.write_bytes(gz_buf.getvalue())
    return path


# --------------------------------------------------------------------------
# tampering
# --------------------------------------------------------------------------


def tamper(path: Path, offset: int = -1) -> None:
    """Flip every bit of one byte of ``path`` (default: the last), keeping its size."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if not data:
        raise ValueError(f"cannot tamper with empty file {path}")
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
