"""Pure checks on what python-tuf verified: values in, the accepted value or an exception
out; no I/O, no clock (the caller passes what it read and its reference time).

* rollback across cache loss: no role may go below the version the keyring recorded
  as the highest ever accepted (SPEC §3.4);
* a changed repository name is refused unless asked for (apt's release-info change);
* an index shard entry in the signed targets must be named by exactly hex names valid in
  the signed index layout and declare no more than a shard may have (endless data,
  SPEC §3.6);
* the index layout the targets declares is well formed and its format not lower than one
  accepted before (docs/format.md, "Format version 2"): a rollback like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from repotool.errors import FormatError, VerificationError
from repotool.format.index2 import IndexLayout, layout_of

__all__ = ["HEX64", "check_head", "check_name", "check_rollback", "heads", "index_layout",
           "index_shard"]

HEX64 = re.compile(r"[0-9a-f]{64}")


def check_rollback(source: str, new_versions: dict[str, int], marks: dict[str, int]) -> None:
    """Refuse any role whose version is older than the one accepted before."""
    for role, v in new_versions.items():
        if v < marks.get(role, 0):
            raise VerificationError(
                f"{source}: rollback: {role} version {v} is older than version "
                f"{marks[role]} accepted before"
            )


def check_name(source: str, old: str, new: str, allow_change: bool) -> None:
    """Refuse a repository that changed its name, unless ``allow_change``."""
    if new != old and not allow_change:
        raise VerificationError(
            f"{source}: the repository's name changed from {old!r} to {new!r}",
            "if you expected this, run 'repotool update --allow-name-change'",
        )


def index_layout(source: str, unrecognized: Mapping[str, Any],
                 marks: Mapping[str, int]) -> IndexLayout:
    """The index layout the verified targets declares (its unrecognized fields); a format
    lower than one accepted before (``marks["format"]``) is refused, like any rollback.

    Raises:
        FormatError: the layout field is malformed or names an unknown format.
        VerificationError: the format is lower than one accepted before.
    """
    try:
        layout = layout_of(unrecognized)
    except FormatError as e:
        raise FormatError(f"{source}: {e.message}", e.hint) from None
    if layout.format < marks.get("format", 1):
        raise VerificationError(
            f"{source}: rollback: the index is format {layout.format}, but format "
            f"{marks['format']} was accepted before")
    return layout


def check_head(source: str, layout: IndexLayout, line: bytes, sid: str) -> None:
    """Format 2: a shard's first line (format, id, bits as signed); its projects are
    decoded when used."""
    try:
        layout.check_head(line.rstrip(b"\n"), sid)
    except FormatError as e:
        raise FormatError(f"{source}: {e.message}", e.hint) from None


def heads(source: str, layout: IndexLayout, data: bytes, sid: str
          ) -> dict[str, dict[str, Any]]:
    """Format 2: what ``update`` keeps of a verified shard, its projects' heads (summary,
    latest version, file count), without decoding their file entries."""
    try:
        return layout.headers(data, sid)
    except FormatError as e:
        raise FormatError(f"{source}: {e.message}", e.hint) from None


def index_shard(source: str, path: str, sha: object, length: int, cap: int,
                layout: IndexLayout) -> str | None:
    """The shard id a signed targets entry names in ``layout`` (None when ``path`` is
    not under ``index/``).

    Raises:
        FormatError: the id is not one of ``layout``'s or the sha256 is not exactly hex
            (both become file names).
        VerificationError: the entry declares more than ``cap`` bytes (endless data).
    """
    if not path.startswith("index/"):
        return None
    sid = layout.shard_id(path)
    # both become file and URL names: exactly hex, nothing a path could climb with
    if not (isinstance(sha, str) and HEX64.fullmatch(sha) and sid is not None):
        raise FormatError(f"{source}: index entry {path!r} is malformed")
    if length > cap:  # endless data, signed
        raise VerificationError(
            f"{source}: index shard {path} declares {length} bytes, more than "
            f"the {cap} a shard may have (endless data)",
            "a shard this large is refused before it is fetched; ask the publisher",
        )
    return sid
