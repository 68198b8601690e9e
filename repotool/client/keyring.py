"""A source's keyring: the trust anchor (``root.json``) and ``state.json`` — the rollback
marks, the committed generation and what the no-change fast path compares against.

The keyring, not the cache, is what update trusts: a deleted cache never reopens
rollback, and writing ``state.json`` is the commit point of an update.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repotool.client import history
from repotool.client.home import Home, SourceConfig
from repotool.client.state import keyring_state
from repotool.errors import FormatError, UserError
from repotool.storage import atomic_write
from repotool.trust.checks import HEX64
from repotool.trust.root import parse_root, root_max_length

if TYPE_CHECKING:
    from repotool.transport.probe import Probe

__all__ = ["commit_keyring", "committed_gen", "read_keyring", "root_version", "unchanged"]


timestamp_max_length = 16 * 1024  # bytes, as python-tuf's default


def unchanged(cfg: SourceConfig, state: dict[str, Any], probe: Probe, ref: datetime) -> bool:
    """(0) The no-change fast path: two small requests, nothing re-parsed (SPEC §5).

    True only when the primary location serves, byte for byte, the timestamp the keyring
    records as the last one verified, and none of the top-level roles the keyring
    records as verified has expired at ``ref``. Identical signed bytes mean the same
    snapshot, targets and shards, which were verified when first accepted.

    TUF's order is kept: first the probe for root N+1 (normally a 404, answered without
    parsing anything); if a new root exists, or the timestamp bytes differ, or anything
    fails or expires, the full path runs, which verifies and reports it.
    """
    from tuf.api import exceptions as tuf_exc

    digest, expires = state.get("timestamp_sha256"), state.get("expires")
    versions = state.get("versions")
    if not (isinstance(digest, str) and HEX64.fullmatch(digest)) \
            or not isinstance(expires, dict) or len(expires) < 4 \
            or not isinstance(versions, dict) or type(versions.get("root")) is not int:
        return False
    try:
        if any(datetime.fromisoformat(str(v)) <= ref for v in expires.values()):
            return False
        try:
            probe.get(f"{cfg.url}metadata/{versions['root'] + 1}.root.json", root_max_length)
            return False  # a new root: the full path verifies the chain
        except tuf_exc.DownloadHTTPError as e:
            if e.status_code not in (403, 404):
                return False
        data = probe.get(f"{cfg.url}metadata/timestamp.json", timestamp_max_length)
    except Exception:  # the full path fetches again and reports it
        return False
    return hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest)


def read_keyring(keyring: Path, name: str) -> tuple[bytes, dict[str, int]]:
    """The trust anchor and the rollback marks. A local file that is missing or
    malformed is a local error (exit 1), never a reason to trust less or more."""
    try:
        root_bytes = (keyring / "root.json").read_bytes()
        state = json.loads((keyring / "state.json").read_bytes())
        marks = state["versions"]
        if not isinstance(marks, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in marks.items()
        ):
            raise TypeError("state.json: 'versions' is not a map of role to version")
        # a root the keyring itself recorded by digest need not be parsed again here (it
        # is verified by python-tuf whenever the full path runs); any other is checked
        known = state.get("root_sha256")
        if not (isinstance(known, str)
                and hmac.compare_digest(hashlib.sha256(root_bytes).hexdigest(), known)):
            parse_root(root_bytes, "root.json")
    except (OSError, ValueError, KeyError, TypeError, RecursionError, FormatError) as e:
        raise UserError(
            f"keyring of source {name!r} is unreadable: {e}",
            "remove the source and add it again with its key",
        ) from None
    return root_bytes, marks


def committed_gen(home: Home, name: str) -> str | None:
    index = keyring_state(home, name).get("index")
    return index.get("gen") if isinstance(index, dict) else None


def commit_keyring(
    home: Home,
    name: str,
    trusted: Any,
    root_bytes: bytes,
    marks: dict[str, int],
    new_versions: dict[str, int],
    meta_dir: Path,
    index: dict[str, Any],
    now: datetime,
) -> list[str]:
    """Move the keyring to the newest verified root, the highest versions accepted, the
    committed generation, and what the no-change fast path compares against.

    Idempotent and cheap when there is nothing to do, so it also runs on an update that
    found nothing new: one killed after writing its generation but before this step is
    completed by the next update, not left with a stale anchor and rollback marks.

    Each root version walked gets its entry in the keyring's history (client/history.py)
    before root.json moves; returns the notice of a key change (announced once: only the
    commit that moves the root announces it).
    """
    kr = home.keyring(name)
    root_now = trusted.root
    notices: list[str] = []
    if root_now.version != root_version(root_bytes):
        old_root = parse_root(root_bytes, "root.json").signed
        entries = []
        for v in range(old_root.version + 1, root_now.version + 1):
            data = (meta_dir / "root_history" / f"{v}.root.json").read_bytes()
            entries.append(history.entry(parse_root(data, f"{v}.root.json").signed, data,
                                         f"followed a rotation from version {v - 1}", now))
        history.append(kr, entries)  # the history first: every trusted root has its entry
        root_bytes = (meta_dir / "root_history" / f"{root_now.version}.root.json").read_bytes()
        atomic_write(kr / "root.json", root_bytes)
        notice = history.change_notice(name, old_root, root_now)
        if notice:
            notices.append(notice)
    state = {
        "root_sha256": hashlib.sha256(root_bytes).hexdigest(),
        "versions": {r: max(v, marks.get(r, 0)) for r, v in new_versions.items()},
        "index": index,
        "timestamp_sha256": hashlib.sha256((meta_dir / "timestamp.json").read_bytes())
        .hexdigest(),
        "expires": {**{r: trusted[r].expires.isoformat()
                       for r in ("root", "timestamp", "snapshot", "targets")},
                    **trusted.extra_expires},  # + developer roles (client/delegated.py)
    }
    if keyring_state(home, name) != state:
        atomic_write(kr / "state.json", json.dumps(state, sort_keys=True).encode())
    return notices


def root_version(data: bytes) -> int:
    return int(json.loads(data)["signed"]["version"])
