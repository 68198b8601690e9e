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
    HOME/sources.d/NAME.sources            the source as a deb822 file (in system mode:
                                           /etc/repotool/sources.d; client/locations.py)

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

__all__ = ["Home", "SourceConfig", "clock_skew_max", "default_home", "normalize_pattern"]

# seconds; the most expiry tolerance a source may have. A skew absorbs a client clock
# that is minutes off; a larger one would accept metadata a freeze attack keeps serving
# long after it expired, so it is refused at 'source add' and in a source.json.
clock_skew_max = 3600


def default_home() -> Path:
    env = os.environ.get("REPOTOOL_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("repotool", appauthor=False))


_PATTERN = re.compile(r"[a-z0-9*?\[\]!-]+")
# a location as normalize_url writes it (repotool/transport/urls.py)
_URL = re.compile(r"(?:https?|file)://[^\x00-\x20\x7f]*/", re.IGNORECASE)


def normalize_pattern(text: str) -> str:
    """Normalize an ``--only`` glob like a project name (PEP 503), keeping glob syntax."""
    p = re.sub(r"[-_.]+", "-", text.strip().lower())
    if not _PATTERN.fullmatch(p):
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
        """Parse and validate a ``source.json``: every field must be what ``source add``
        writes (a hand-edited ``clock_skew`` beyond :data:`clock_skew_max` included).

        Raises:
            UserError: the file is malformed (exit 1); nothing of it is honoured.
        """
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise TypeError("not a JSON object")
            cfg = cls(**doc)
            problem = cfg._problem()
        except (ValueError, TypeError, RecursionError) as e:
            problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        if problem:
            raise UserError(
                f"source configuration {origin!r} is malformed: {problem}",
                "remove the source and add it again",
            )
        return cfg

    def _problem(self) -> str | None:
        """What is wrong with the fields, or None."""
        checks: list[tuple[str, object, type]] = [
            ("name", self.name, str), ("url", self.url, str), ("priority", self.priority, int),
            ("clock_skew", self.clock_skew, int), ("order", self.order, int),
            ("ca_cert", self.ca_cert, bool), ("repo_name", self.repo_name, str),
            ("mirrors", self.mirrors, list), ("only", self.only, list),
            ("trusted_keys", self.trusted_keys, list),
        ]
        for what, value, typ in checks:
            if type(value) is not typ:  # not isinstance: true is no priority
                return f"{what} is not of type {typ.__name__}"
        if not all(type(x) is str for x in [*self.mirrors, *self.only, *self.trusted_keys]):
            return "mirrors, only and trusted_keys must be lists of strings"
        if not safe_name(self.name):
            return f"invalid source name {self.name!r}"
        for u in self.urls:
            if not _URL.fullmatch(u):
                return f"invalid location {u!r}"
        if not 0 <= self.clock_skew <= clock_skew_max:
            return (f"clock_skew {self.clock_skew} s is outside 0 to {clock_skew_max} s (a "
                    "larger skew would accept expired metadata)")
        for p in self.only:
            if not _PATTERN.fullmatch(p) or re.sub(r"[-_.]+", "-", p.lower()) != p:
                return f"invalid --only pattern {p!r}"
        return None


class Home:
    def __init__(self, root: Path, sources_d: Path | None = None) -> None:
        self.root = root
        self.sources_dir = root / "sources"
        # drop-in NAME.sources files (client/sourcesfile.py); see client/locations.py
        self.sources_d = sources_d or root / "sources.d"

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
