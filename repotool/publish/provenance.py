"""Where imported files came from, recorded by ``repo import`` and published at ``sign``.

``DIR/.repotool/provenance.json`` (workspace, never served) maps a file name to its
record: source, origin repository name, origin root key fingerprints, the sha256 the
origin signed, project and version. ``repo sign`` publishes the records as one target of
the top-level targets role, ``provenance.json`` (stored as ``SHA256.provenance.json``,
bytes: ``{"files": {FILENAME: RECORD}, "repotool-provenance": 1}``, canonical JSON), so
a client of the repository can show "imported from …" for a file, verified like the
index. Only written when the records changed; absent while nothing was imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repotool.errors import UserError
from repotool.format.layout import target_disk_path

__all__ = ["PROVENANCE_TARGET", "provenance", "provenance_target"]

PROVENANCE = "provenance.json"  # in DIR/.repotool/
PROVENANCE_TARGET = "provenance.json"  # the published target's path


def provenance(directory: Path) -> dict[str, dict[str, Any]]:
    """filename → provenance record of every file imported into ``directory``."""
    try:
        doc = json.loads((directory / ".repotool" / PROVENANCE).read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UserError(f"{str(directory)!r}: provenance record unreadable: {e}") from None
    return doc if isinstance(doc, dict) else {}


def provenance_target(root: Path, published: Any, writes: list[tuple[Path, bytes]]
                      ) -> dict[str, Any]:
    """``{PROVENANCE_TARGET: TargetFile}`` when the records differ from the published
    ones (the bytes appended to ``writes``), else ``{}``."""
    from tuf.api.metadata import TargetFile

    record = provenance(root)
    if not record:
        return {}
    data = json.dumps({"files": record, "repotool-provenance": 1}, sort_keys=True,
                      separators=(",", ":")).encode()
    tf = TargetFile.from_data(PROVENANCE_TARGET, data, ["sha256"])
    if published is not None:
        old = published.targets.signed.targets.get(PROVENANCE_TARGET)
        if old is not None and old.hashes == tf.hashes:
            return {}
    writes.append((target_disk_path(root, PROVENANCE_TARGET, tf.hashes["sha256"]), data))
    return {PROVENANCE_TARGET: tf}
