"""The client's view of a repository's signed provenance target (``provenance.json``,
published by ``repo sign`` for files brought in with ``repo import``; see
repotool/publish/provenance.py for its bytes).

``update`` fetches it like an index shard — named by the top-level targets role, bounded
by its signed length, checked against its signed sha256, then validated — and keeps the
records in the committed generation's ``projects.json`` (whose digest the keyring
holds), so ``show`` can say "imported from …" from verified state only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from repotool.client.state import read_cached
from repotool.errors import FormatError, VerificationError

__all__ = ["TARGET", "fetch_provenance", "parse_provenance"]

TARGET = "provenance.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"source": str, "repository": str, "sha256": str, "project": str, "version": str}


def parse_provenance(data: bytes, origin: str) -> dict[str, dict[str, Any]]:
    """filename → record, every field checked.

    Raises:
        FormatError: not the document ``repo sign`` writes.
    """
    try:
        doc = json.loads(data)
        if not (isinstance(doc, dict) and set(doc) == {"files", "repotool-provenance"}
                and doc["repotool-provenance"] == 1 and isinstance(doc["files"], dict)):
            raise ValueError("not a repotool provenance document (version 1)")
        out: dict[str, dict[str, Any]] = {}
        for name, rec in doc["files"].items():
            if not (isinstance(rec, dict) and len(name) <= 255
                    and all(isinstance(rec.get(k), t) for k, t in _FIELDS.items())
                    and isinstance(rec.get("root_keys"), list)
                    and all(isinstance(k, str) for k in rec["root_keys"])):
                raise ValueError(f"malformed record for {name[:80]!r}")
            out[name] = {k: rec[k] for k in [*_FIELDS, "root_keys"]}
        return out
    except (ValueError, TypeError, RecursionError) as e:
        raise FormatError(f"{origin}: {str(e)[:200]}") from None


def fetch_provenance(source: str, url: str, targets: Any, fetcher: Any,
                     old_gen: Path | None, gen: Path) -> dict[str, dict[str, Any]]:
    """The verified records the top-level ``targets`` names (``{}`` when none), taken
    from ``old_gen`` when it holds the signed bytes, else fetched; kept in ``gen``.

    Raises:
        VerificationError: length or sha256 differ, malformed, larger than a shard may be.
        DownloadError: it could not be fetched.
    """
    from repotool.format.layout import hashed_name

    tf = targets.targets.get(TARGET)
    if tf is None:
        return {}
    sha = tf.hashes.get("sha256")
    if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise FormatError(f"{source}: target {TARGET} is malformed")
    if tf.length > fetcher.limits.shard_max_length:
        raise VerificationError(f"{source}: {TARGET} declares {tf.length} bytes, more than "
                                f"the {fetcher.limits.shard_max_length} allowed")
    meta = {"sha256": sha, "length": tf.length}
    data = read_cached(old_gen / TARGET, meta) if old_gen is not None else None
    if data is None:
        part = gen / f".{TARGET}.part"
        try:
            with open(part, "wb") as out:
                fetcher.download_verified(url + hashed_name(TARGET, sha), out, tf.length, sha)
            os.replace(part, gen / TARGET)
        except VerificationError as e:
            raise VerificationError(f"{source}: {TARGET} refused: {e.message}") from None
        finally:
            part.unlink(missing_ok=True)
        data = read_cached(gen / TARGET, meta)
        if data is None:
            raise VerificationError(f"{source}: {TARGET} changed once verified")
    else:
        (gen / TARGET).write_bytes(data)
    return parse_provenance(data, f"{source}: {TARGET}")
