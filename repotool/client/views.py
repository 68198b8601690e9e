"""Which source provides a project: the verified view of every source, and one rule.

Which source provides a project — one rule, for direct and transitive requirements:

1. A source fenced with ``--only`` provides only the projects its patterns match, and
   a project matched by a fence comes from the fenced source(s) alone (highest
   priority first); if they lack it, nothing else may fill in.
2. Otherwise the project comes entirely from the highest-priority unfenced source
   that has it (ties: the source added first). Versions from different sources are
   never mixed: a higher version elsewhere does not win.
3. A candidate source that was never updated, whose last update failed, or whose
   verified metadata has expired since (judged at one reference time per run, minus
   that source's clock skew) is an error — never a reason to fall through to the next
   source.

``resolve`` is that rule, and the only copy of it: ``download``, ``verify``, the proxy
(hence ``install``) and ``lock`` all ask it which source provides a name. ``verify``
accepts a file only when the source ``resolve`` picks lists it with that sha256 and
size — a source fenced away from the name, or outranked, never vouches for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from packaging.utils import canonicalize_name

from repotool.client.home import Home, SourceConfig
from repotool.client.state import SourceView, load_view
from repotool.errors import UserError, VerificationError

__all__ = ["Resolution", "Views", "resolve"]


@dataclass
class Resolution:
    project: str
    source: SourceView
    reason: str


class Views:
    """Lazily loaded views of every source, in resolution order.

    ``now`` is the run's one reference time for expiry (default: when the views are
    created). ``warn``, when given, receives one line per source whose verified state
    has expired — for the informational queries, which still answer; ``resolve``
    refuses such a source whatever ``warn`` is.
    """

    def __init__(self, home: Home, only_source: str | None = None, *,
                 now: datetime | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.home = home
        cfgs = [home.source(only_source)] if only_source else home.sources()
        self.cfgs = cfgs
        self.now = now or datetime.now(UTC)
        self._warn = warn
        self._views: dict[str, SourceView | None] = {}
        self._expired: dict[str, str | None] = {}

    def view(self, cfg: SourceConfig) -> SourceView | None:
        if cfg.name not in self._views:
            view = self._views[cfg.name] = load_view(self.home, cfg)
            why = view.expired(self.now) if view is not None else None
            if why and self._warn is not None:
                self._warn(f"source {cfg.name!r}: {why}; answering from that last verified "
                           f"state (run 'repotool update {cfg.name}')")
        return self._views[cfg.name]

    def expired(self, cfg: SourceConfig) -> str | None:
        """Why the source's verified state may not be handed out at this run's reference
        time, or None (judged once per source: the proxy's root page asks per name)."""
        if cfg.name not in self._expired:
            view = self.view(cfg)
            self._expired[cfg.name] = view.expired(self.now) if view is not None else None
        return self._expired[cfg.name]

    def outlived(self, now: datetime) -> bool:
        """True when a loaded source that was fresh at this run's reference time has
        expired by ``now``: a long-running reader (the proxy) must load new views."""
        return any(v is not None and v.expired(self.now) is None and v.expired(now) is not None
                   for v in self._views.values())

    def status_ok(self, cfg: SourceConfig) -> tuple[bool, str]:
        try:
            doc = json.loads((self.home.source_dir(cfg.name) / "status.json").read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("status.json is not an object")
        except (OSError, ValueError, RecursionError):
            return self.view(cfg) is not None, "never updated"
        if doc.get("ok"):
            return True, ""
        return False, str(doc.get("error") or "its last update failed")


def _last_exit_code(home: Home, cfg: SourceConfig) -> int:
    try:
        code = json.loads((home.source_dir(cfg.name) / "status.json").read_bytes())["exit_code"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return 1
    return code if type(code) is int else 1


def resolve(views: Views, project: str) -> Resolution:
    """Apply the rule in the module docstring.

    Raises:
        VerificationError: the project is fenced to sources that lack it, or a candidate
            source's verified metadata expired, or its last update was refused.
        UserError: no source has it, or a candidate source is not usable.
    """
    project = canonicalize_name(project)
    fenced = [c for c in views.cfgs if c.provides(project)]
    candidates = fenced or [c for c in views.cfgs if c.provides(project) is None]
    why = (
        f"pinned by --only to {', '.join(c.name for c in fenced)}"
        if fenced else "highest-priority source that has it"
    )
    for cfg in candidates:
        ok, reason = views.status_ok(cfg)
        view = views.view(cfg)
        if not ok or view is None:
            # a source refused for verification stays a refusal (exit 3), not a mere error
            refused = not ok and _last_exit_code(views.home, cfg) == VerificationError.exit_code
            state = (f"could not be updated ({reason})" if not ok
                     else "has no verified index (cleaned, or never updated)")
            raise (VerificationError if refused else UserError)(
                f"source {cfg.name!r} {state}; refusing to look for "
                f"{project} in lower-priority sources",
                f"fix and run 'repotool update {cfg.name}'",
            )
        expired = views.expired(cfg)
        if expired:  # a freeze: refused until 'update' brings fresh metadata (SPEC §3.3)
            raise VerificationError(
                f"source {cfg.name!r}: {expired}; its verified index may no longer be used "
                f"(refusing to look for {project} in it or in lower-priority sources)",
                f"run 'repotool update {cfg.name}'",
            )
        if project in view.projects:
            return Resolution(project, view, f"{why} (priority {cfg.priority})")
    if fenced:
        raise VerificationError(
            f"{project} is pinned to source(s) {', '.join(c.name for c in fenced)} "
            "(--only), which do not provide it; no other source may",
        )
    others = [c.name for c in views.cfgs if c.provides(project) is False]
    hint = f"sources {', '.join(others)} are fenced (--only) away from it" if others else None
    raise UserError(f"no source provides {project}", hint or "run 'repotool update' first?")
