"""The updater factory: python-tuf's ``Updater`` as repotool drives it (client update,
``repo check``, the conformance adapter)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repotool.transport.fetcher import Fetcher

__all__ = ["make_updater"]


def make_updater(
    meta_dir: Path,
    metadata_url: str,
    target_url: str | None,
    root_bytes: bytes,
    fetcher: Fetcher,
    reference_time: datetime | None = None,
) -> Any:
    """python-tuf's ``Updater`` as repotool drives it: bootstrapped from the given trusted
    root (never from the cache), on repotool's fetcher and its length caps, and — with
    ``reference_time`` — judging expiry against one time per run, not python-tuf's own
    clock reading. Shared by ``update``, ``repo check`` and the conformance adapter."""
    from tuf.ngclient import Updater, UpdaterConfig

    cap = fetcher.limits.metadata_max_length
    up = Updater(
        str(meta_dir), metadata_url, None, target_url, fetcher,
        UpdaterConfig(snapshot_max_length=cap, targets_max_length=cap),
        bootstrap=root_bytes,
    )
    if reference_time is not None:
        # (1) one reference time per run; python-tuf 7 has no public way to set it
        up._trusted_set.reference_time = reference_time
    return up
