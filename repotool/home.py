"""Client state: the home directory, sources and their keyrings (SPEC §2, §4).

    HOME/sources/NAME/source.json          what the user said at 'source add'
    HOME/sources/NAME/keyring/root.json    the trust anchor: the latest verified root
    HOME/sources/NAME/keyring/state.json   highest versions accepted (rollback guard), the
                                           committed generation and its digest, and what
                                           the no-change update compares against
    HOME/sources/NAME/keyring/ca.pem       the source's extra CA (--ca-cert), if any
    HOME/sources/NAME/cache/gen-*/         a generation: python-tuf's metadata and
                                           projects.json (derived project list)
    HOME/sources/NAME/cache/shards/SHA.json, cache/files/SHA   verified, content-addressed
    HOME/sources/NAME/status.json          the last update's outcome
    HOME/sources/NAME/lock                 held while the source's state changes
    HOME/tmp/                              pip's scratch space during 'install'

'clean' empties cache/. The keyring advances only through a verified root chain; the
cache is never a trust anchor (what is read back from it is checked against the keyring,
re-verified or re-hashed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repotool.errors import UserError
from repotool.storage import atomic_write, locked, safe_name

__all__ = ["Home", "SourceConfig", "default_home", "normalize_pattern"]


def default_home() -> Path:
    env = os.environ.get("REPOTOOL_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("repotool", appauthor=False))


_PATTERN = re.compile(r"^[a-z0-9*?\[\]!-]+$")


def normalize_pattern(text: str) -> str:
    """Normalize an ``--only`` glob like a project name (PEP 503), keeping glob syntax."""
    p = re.sub(r"[-_.]+", "-", text.strip().lower())
    if not p or not _PATTERN.match(p):
        from repotool.errors import UsageError

        raise UsageError(
            f"invalid --only pattern {text!r}", "use project names, with * ? [] as wildcards"
        )
    return p


@dataclass
class SourceConfig:
    name: str
    url: str
    mirrors: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    priority: int = 0
    order: int = 0
    clock_skew: int = 0  # seconds of tolerance when judging expiry
    ca_cert: bool = False  # keyring/ca.pem exists
    repo_name: str = ""
    trusted_keys: list[str] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [self.url, *self.mirrors]

    def provides(self, project: str) -> bool | None:
        """True/False when fenced by --only, None when the source is unfenced."""
        if not self.only:
            return None
        return any(fnmatch.fnmatchcase(project, p) for p in self.only)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> SourceConfig:
        try:
            doc = json.loads(data)
            cfg = cls(**doc)
            checks: list[tuple[object, type]] = [
                (cfg.name, str), (cfg.url, str), (cfg.priority, int), (cfg.clock_skew, int),
                (cfg.order, int), (cfg.ca_cert, bool), (cfg.repo_name, str),
                (cfg.mirrors, list), (cfg.only, list), (cfg.trusted_keys, list),
            ]
            if not all(isinstance(v, t) for v, t in checks):
                raise TypeError("a field has the wrong type")
            if not all(isinstance(x, str) for x in [*cfg.mirrors, *cfg.only, *cfg.trusted_keys]):
                raise TypeError("mirrors, only and trusted_keys must be lists of strings")
        except (ValueError, TypeError) as e:
            raise UserError(
                f"source configuration {origin!r} is malformed: {e}",
                "remove the source and add it again",
            ) from None
        return cfg


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sources_dir = root / "sources"

    def lock(self) -> Any:
        return locked(self.root / "lock", f"repotool home {str(self.root)!r}")

    def source_dir(self, name: str) -> Path:
        if not safe_name(name):
            raise UserError(
                f"invalid source name {name!r}",
                "use letters, digits, '.', '_' and '-' (64 at most), starting with a letter "
                "or digit",
            )
        return self.sources_dir / name

    def exists(self, name: str) -> bool:
        return (self.source_dir(name) / "source.json").is_file()

    def source(self, name: str) -> SourceConfig:
        path = self.source_dir(name) / "source.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UserError(
                f"no source named {name!r}", "see 'repotool source list'"
            ) from None
        cfg = SourceConfig.from_bytes(data, str(path))
        if cfg.name != name:  # it would act on another source's keyring and cache
            raise UserError(
                f"source configuration {str(path)!r} is malformed: it names source "
                f"{cfg.name!r}",
                "remove the source and add it again",
            )
        return cfg

    def sources(self) -> list[SourceConfig]:
        """All sources, in resolution order: priority (high first), then order added.

        Directories whose names are not source names (the ``.removing-NAME`` left by a
        'source remove' killed half-way) are skipped."""
        if not self.sources_dir.is_dir():
            return []
        out = [
            self.source(p.name)
            for p in self.sources_dir.iterdir()
            if safe_name(p.name) and (p / "source.json").is_file()
        ]
        return sorted(out, key=lambda s: (-s.priority, s.order, s.name))

    def save_source(self, cfg: SourceConfig) -> None:
        atomic_write(self.source_dir(cfg.name) / "source.json", cfg.to_bytes())

    def keyring(self, name: str) -> Path:
        return self.source_dir(name) / "keyring"

    def cache(self, name: str) -> Path:
        return self.source_dir(name) / "cache"

    def source_lock(self, name: str) -> Any:
        return locked(self.source_dir(name) / "lock", f"source {name!r}")

    def ca_cert(self, cfg: SourceConfig) -> str | None:
        return str(self.keyring(cfg.name) / "ca.pem") if cfg.ca_cert else None
