"""``source rekey``: re-establish trust in a source whose root chain broke (SPEC §6.3).

A root the client cannot follow (not signed by the trusted root's threshold, or not the
next version) is refused by ``update`` with exit 3 and never re-trusted silently. When
the publisher really did re-key (lost root keys, a rebuilt key ceremony), the user says
so explicitly, with a key or fingerprint checked out of band, like apt's ``signed-by``:

    repotool source rekey NAME (--key NEW.pub ... | --fingerprint FPR ... | --root ROOT.json)

The repository's newest root (``metadata/root.json``, or the given file) must list every
named key as a root key, carry a valid signature by each and meet its own threshold
(the same checks as ``source add``), carry the source's repository name, and be no older
than the root trusted now. It then becomes the keyring's root, with a history entry
"re-established by ..."; the rollback marks stay (those of rotated online roles are
dropped as in TUF §5.3.10), and the next ``update`` verifies everything from it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from repotool.client import history
from repotool.client.home import Home
from repotool.client.state import keyring_state
from repotool.errors import DownloadError, FormatError, RepotoolError, VerificationError
from repotool.storage import atomic_write
from repotool.transport.limits import Limits
from repotool.trust.root import check_root, download_root, read_root_file, repo_name

__all__ = ["rekey"]


def rekey(
    home: Home, name: str, *, key_ids: list[str], how: str, root_file: Path | None,
    limits: Limits, now: datetime,
) -> Any:
    """Replace the source's trusted root with the one the given keys vouch for; returns
    the new trusted ``Root``.

    Raises:
        UserError: no such source, an unreadable file.
        VerificationError: the root is not what the keys vouch for, is older than the one
            trusted, or names another repository.
        DownloadError: no location served the root.
    """
    cfg = home.source(name)
    with home.source_lock(name):
        kr = home.keyring(name)
        current = json.loads((kr / "root.json").read_bytes())["signed"]
        if root_file is not None:
            data, md = read_root_file(root_file, key_ids)
        else:
            data, md = _fetch_newest_root(home, cfg, key_ids, limits)
        root = md.signed
        if root.version < int(current["version"]):
            raise VerificationError(
                f"{name}: the root offered is version {root.version}, older than version "
                f"{current['version']} trusted now (rollback); the keyring keeps its root")
        if repo_name(root) != cfg.repo_name:
            raise VerificationError(
                f"{name}: the root offered is of repository {repo_name(root)!r}, not "
                f"{cfg.repo_name!r}; the keyring keeps its root",
                "to trust another repository, remove the source and add it again")
        from tuf.api.metadata import Metadata

        old = Metadata.from_bytes((kr / "root.json").read_bytes()).signed
        state = keyring_state(home, name)
        raw = state.get("versions")
        marks: dict[str, int] = dict(raw) if isinstance(raw, dict) else {}
        marks = history.marks_after_rotation(old, root, marks)
        marks["root"] = root.version
        history.append(kr, [history.entry(root, data, how, now)])
        atomic_write(kr / "root.json", data)
        # no committed generation, no fast path: the next update verifies from this root
        new_state = {"versions": marks, "root_sha256": hashlib.sha256(data).hexdigest()}
        atomic_write(kr / "state.json", json.dumps(new_state, sort_keys=True).encode())
        cfg.trusted_keys = sorted(root.roles["root"].keyids)
        home.save_source(cfg)
    return root


def _fetch_newest_root(home: Home, cfg: Any, key_ids: list[str], limits: Limits) -> Any:
    from repotool.transport.fetcher import Fetcher

    fetcher = Fetcher(limits, home.ca_cert(cfg))
    failures: list[str] = []
    worst: type[RepotoolError] = DownloadError
    for url in cfg.urls:
        full = f"{url}metadata/root.json"
        try:
            data = download_root(fetcher, full)
            return data, check_root(data, full, key_ids)
        except RepotoolError as e:
            failures.append(e.message if e.message.startswith(full) else f"{full}: {e.message}")
            if isinstance(e, VerificationError | FormatError):
                worst = VerificationError
    raise worst("could not get a root the given keys vouch for: " + "; ".join(failures),
                "check the key or fingerprint with the publisher")

