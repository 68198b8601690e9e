"""The publisher half of ``repo import``: verified files become pending changes of the
user's own repository, with a record of where each came from.

Each file is added exactly as ``repo add`` adds it (inspected, copied in under its
hash-prefixed name, published at the next ``repo sign`` with this repository's keys);
once published it stays until the owner removes it, whatever its origin deletes later.
Its provenance — source, origin repository name, origin root key fingerprints, the
sha256 the origin signed — is recorded in ``DIR/.repotool/provenance.json`` (filename →
record), which ``repo list`` shows.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from repotool.errors import UserError
from repotool.publish.provenance import PROVENANCE, provenance
from repotool.storage import atomic_write, hash_file

__all__ = ["Importable", "import_files", "list_files", "provenance", "require_repository"]

class Importable(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    def provenance(self) -> dict[str, Any]: ...


def require_repository(directory: Path) -> None:
    """Raises UserError unless ``directory`` is a repository (checked before fetching)."""
    from repotool.publish.workspace import Repository

    Repository(directory).require()


def import_files(directory: Path, files: Sequence[Importable], *, now: datetime
                 ) -> list[dict[str, Any]]:
    """Add ``files`` to the repository at ``directory`` as pending changes; one dict per
    file with its provenance and whether it was new (``added``).

    Raises:
        UserError: not a repository, a file name already published with other bytes,
            a file that changed since it was verified.
    """
    from repotool.publish.workspace import Repository

    repo = Repository(directory)
    repo.require()
    with tempfile.TemporaryDirectory(prefix="import-", dir=directory / ".repotool") as tmp:
        staged = []
        for f in files:
            p = Path(tmp) / f.filename
            try:
                os.link(f.path, p)
            except OSError:
                shutil.copyfile(f.path, p)
            if hash_file(p) != (f.sha256, f.size):  # the cache is not trusted
                raise UserError(f"{f.filename} changed after it was verified; import again")
            staged.append(p)
        added = {i.filename for i in repo.add(staged, now=now)} if staged else set()
    with repo.lock():
        record = provenance(directory)
        for f in files:
            if f.filename in added or f.filename not in record:
                record[f.filename] = f.provenance()
        atomic_write(directory / ".repotool" / PROVENANCE,
                     json.dumps(record, indent=1, sort_keys=True).encode())
    return [{"filename": f.filename, "added": f.filename in added, **f.provenance()}
            for f in files]


def list_files(directory: Path) -> list[dict[str, Any]]:
    """Every distribution of the repository — published, and pending additions — with
    its provenance when it was imported (``imported_from``: the record, else None)."""
    from repotool.publish.workspace import Repository

    repo = Repository(directory)
    repo.require()
    record = provenance(directory)
    pub = repo.published()
    rows: list[dict[str, Any]] = []
    shards: dict[str, Any] = {}
    for project in sorted(repo.all_projects(pub)):
        sid = repo.shard_of(pub, project)  # in the published layout (format 1 or 2)
        if sid not in shards:
            shards[sid] = repo.load_shard(pub, sid)
        proj = shards[sid].projects.get(project)
        for f in proj.files if proj is not None else []:
            rows.append({"project": project, "version": f.version, "filename": f.filename,
                         "sha256": f.sha256, "state": "published",
                         "imported_from": record.get(f.filename)})
    for a in repo.pending()["add"]:
        rows.append({"project": a["project"], "version": a["version"],
                     "filename": a["filename"], "sha256": a["sha256"], "state": "pending",
                     "imported_from": record.get(a["filename"])})
    return rows
