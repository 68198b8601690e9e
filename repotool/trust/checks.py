"""Pure checks on what python-tuf verified: values in, the accepted value or an exception
out; no I/O, no clock (the caller passes what it read and its reference time).

* rollback across cache loss: no role may go below the version the keyring recorded
  as the highest ever accepted (SPEC §3.4);
* a changed repository name is refused unless asked for (apt's release-info change);
* an index shard entry in the signed targets must be named by exactly hex names and
  declare no more than a shard may have (endless data, SPEC §3.6).
"""

from __future__ import annotations

import re

from repotool.errors import FormatError, VerificationError

__all__ = ["HEX64", "check_name", "check_rollback", "index_shard"]

HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX2 = re.compile(r"[0-9a-f]{2}")


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


def index_shard(source: str, path: str, sha: object, length: int, cap: int) -> str | None:
    """The shard id a signed targets entry names (None when ``path`` is no index shard).

    Raises:
        FormatError: the id or the sha256 is not exactly hex (both become file names).
        VerificationError: the entry declares more than ``cap`` bytes (endless data).
    """
    if not (path.startswith("index/") and path.endswith(".json")):
        return None
    sid = path[len("index/"):-len(".json")]
    # both become file and URL names: exactly hex, nothing a path could climb with
    if not (isinstance(sha, str) and HEX64.fullmatch(sha) and _HEX2.fullmatch(sid)):
        raise FormatError(f"{source}: index entry {path!r} is malformed")
    if length > cap:  # endless data, signed
        raise VerificationError(
            f"{source}: index shard {path} declares {length} bytes, more than "
            f"the {cap} a shard may have (endless data)",
            "a shard this large is refused before it is fetched; ask the publisher",
        )
    return sid
