"""A source's verified local state, as the query commands read it — no network, no crypto.

``update`` commits a source in two steps: it writes a generation directory
(``cache/gen-*/``: python-tuf's metadata and ``projects.json``, the project list derived
from the verified shards), then records that generation's name and the sha256 of its
``projects.json`` in the keyring (``keyring/state.json``, atomically). Readers load the
generation the keyring names and check that digest, so the cache never acts as a trust
anchor: a ``projects.json`` or shard altered in the cache is detected, not believed.
Shards and files read back from the cache are re-hashed against the signed sha256.
The keyring also records when the verified root, timestamp, snapshot and targets
expire; ``SourceView.expired`` judges that record, so verified state that has expired
since the last update is not handed out (``queries.resolve`` refuses it).

Importing this module must stay cheap: ``list``, ``search`` and ``show`` answer from it
within the start-up budget (SPEC §5).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from repotool.client.home import Home, SourceConfig
from repotool.errors import VerificationError

__all__ = ["SourceView", "describe_source", "keyring_state", "load_view", "read_cached"]

_GEN = re.compile(r"^gen-[A-Za-z0-9_]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ROLES = ("root", "timestamp", "snapshot", "targets")


def keyring_state(home: Home, name: str) -> dict[str, Any]:
    """``keyring/state.json`` as stored, or ``{}`` when missing or unreadable (the update
    path validates it strictly; readers only look up the committed generation)."""
    try:
        doc = json.loads((home.keyring(name) / "state.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_cached(path: Path, meta: dict[str, Any]) -> bytes | None:
    """The bytes at ``path`` if they have the signed length and sha256, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) != meta["length"] or not hmac.compare_digest(
        hashlib.sha256(data).hexdigest(), meta["sha256"]
    ):
        return None
    return data


@dataclass
class SourceView:
    """A source's verified state as read from disk (cheap: the derived project list)."""

    cfg: SourceConfig
    gen: Path
    cache: Path
    projects: dict[str, dict[str, Any]]
    shards: dict[str, dict[str, Any]]
    updated: str
    versions: dict[str, int] = field(default_factory=dict)
    expires: object = None  # the keyring's record: role -> ISO 8601 expiry of what was verified
    _shard_cache: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # filename -> 'repo import' record
    layout: Any = None  # repotool.format.index2.IndexLayout (format 1 when None)

    def __post_init__(self) -> None:
        if self.layout is not None and self.layout.format == 2 and not self.projects \
                and self.layout.projects:
            from repotool.format.index2 import LazyProjects

            # a generation written without the heads (before they were kept): the
            # project list is read from the verified shards when used
            lazy = LazyProjects(self.layout, self.layout.projects, self._shard_bytes)
            lazy.set_shards(list(self.shards))
            self.projects = lazy  # type: ignore[assignment]

    def _shard_bytes(self, sid: str) -> bytes | None:
        meta = self.shards.get(sid)
        if meta is None:
            return None
        data = read_cached(self.cache / "shards" / f"{meta['sha256']}.json", meta)
        if data is None:
            raise VerificationError(
                f"cached index of source {self.cfg.name!r} is damaged",
                f"run 'repotool clean {self.cfg.name}' and 'repotool update'",
            )
        return data

    def shard(self, sid: str) -> Any:
        """A shard read back from the cache, re-hashed against the signed sha256 and
        fully validated (every file entry) before use."""
        from repotool.format.index import Shard

        if sid not in self._shard_cache:
            data = self._shard_bytes(sid)
            if data is None:
                self._shard_cache[sid] = Shard(sid)
            elif sid.startswith("~"):  # delegated project P's own index (client/delegated.py)
                from repotool.format.index import shard_of

                self._shard_cache[sid] = Shard.from_bytes(data, shard_of(sid[1:]))
            else:
                self._shard_cache[sid] = self.index_layout().decode(data, sid)
        return self._shard_cache[sid]

    def expiry(self) -> tuple[str, datetime] | None:
        """The top-level role that expires first and when, as the keyring recorded it at
        the last verified update; None when that record is missing or malformed (which
        counts as expired: fail closed, 'update' writes it again)."""
        if not isinstance(self.expires, dict) or not set(_ROLES) <= set(self.expires):
            return None
        first: tuple[str, datetime] | None = None
        for role in [*_ROLES, *sorted(set(self.expires) - set(_ROLES))]:  # + delegated roles
            try:
                t = datetime.fromisoformat(self.expires[role])
            except (TypeError, ValueError):
                return None
            if t.tzinfo is None:
                return None
            if first is None or t < first[1]:
                first = (role, t)
        return first

    def expired(self, now: datetime) -> str | None:
        """Why this verified state may no longer be used at ``now`` (judged, as by
        ``update``, at ``now`` minus the source's clock skew), or None while it is fresh.

        The keyring records the expiry of the root, timestamp, snapshot and targets that
        ``update`` verified; once one has passed, the state is frozen (SPEC §3.3) until an
        update brings fresh metadata, as apt refuses a Release file past Valid-Until.
        """
        first = self.expiry()
        if first is None:
            return "its recorded metadata expiry is missing"
        role, t = first
        if now - timedelta(seconds=self.cfg.clock_skew) >= t:  # as TUF: expired at ==
            return f"{role} metadata expired on {t:%Y-%m-%d %H:%M:%S} UTC"
        return None

    def index_layout(self) -> Any:
        """How this source's index is sharded (``repotool.format.index2.IndexLayout``)."""
        if self.layout is None:
            from repotool.format.index2 import IndexLayout

            self.layout = IndexLayout(1, 8)
        return self.layout

    def project(self, name: str) -> Any:
        if name not in self.projects:
            return None
        sid = self.projects[name].get("shard")
        if isinstance(sid, str) and sid.startswith("~"):
            return self.shard(sid).projects.get(name)
        return self.shard(self.index_layout().shard_of(name)).projects.get(name)


def load_view(home: Home, cfg: SourceConfig) -> SourceView | None:
    """The source's committed verified state, or None before its first update (or when
    the cache no longer matches what the keyring committed: 'update' rebuilds it)."""
    state = keyring_state(home, cfg.name)
    index = state.get("index")
    if not isinstance(index, dict):
        return None
    gen, digest, length = index.get("gen"), index.get("sha256"), index.get("length")
    if not (isinstance(gen, str) and _GEN.match(gen) and isinstance(digest, str)
            and _HEX64.match(digest) and type(length) is int):
        return None
    cache = home.cache(cfg.name)
    data = read_cached(cache / gen / "projects.json", {"sha256": digest, "length": length})
    if data is None:
        return None
    try:
        doc = json.loads(data)
        if not (isinstance(doc, dict) and isinstance(doc.get("projects"), dict)
                and isinstance(doc.get("shards"), dict) and isinstance(doc.get("updated"), str)):
            return None  # not what 'update' writes: it rebuilds the generation
        layout = None
        index = doc.get("index")
        if isinstance(index, dict) and index.get("format") == 2:
            from repotool.format.index2 import IndexLayout

            layout = IndexLayout(2, int(index["bits"]), 0, int(index["projects"]))
        return SourceView(cfg, cache / gen, cache, doc["projects"], doc["shards"],
                          doc["updated"], dict(doc.get("versions", {})), state.get("expires"),
                          provenance=dict(doc.get("provenance", {})), layout=layout)
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def describe_source(home: Home, cfg: SourceConfig) -> dict[str, Any]:
    """A source's settings, trusted keys and verified state, as ``source list/show``
    print them; ``last_update`` is the recorded outcome of its last update (None when
    there is none or it is unreadable)."""
    view = load_view(home, cfg)
    try:
        status = json.loads((home.source_dir(cfg.name) / "status.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        status = None
    return {
        "name": cfg.name,
        "url": cfg.url,
        "mirrors": cfg.mirrors,
        "only": cfg.only,
        "priority": cfg.priority,
        "clock_skew": cfg.clock_skew,
        "repository": cfg.repo_name,
        "root_keys": cfg.trusted_keys,
        "updated": view.updated if view else None,
        "projects": len(view.projects) if view else 0,
        "last_update": status,
    }
