"""Where the client keeps its configuration and state: per user, or system-wide as apt.

In order:

1. ``--home DIR`` or ``$REPOTOOL_HOME``: everything under DIR (drop-in source files in
   ``DIR/sources.d/``);
2. run as root (effective uid 0): **system mode** — configuration in
   ``/etc/repotool/sources.d/NAME.sources``, keyrings, state and caches in
   ``/var/lib/repotool``;
3. otherwise the platform's per-user directories (platformdirs): state in the user data
   directory (``~/.local/share/repotool`` on Linux), drop-in source files in the user
   config directory (``~/.config/repotool/sources.d``).

``$REPOTOOL_SYSTEM_ROOT`` (default ``/``) prefixes the system paths: a hook for tests
and for building packages or images (``REPOTOOL_SYSTEM_ROOT=$DESTDIR``), never needed
on a running system.
"""

from __future__ import annotations

import os
from pathlib import Path

from repotool.client.home import Home

__all__ = ["SYSTEM_CONFIG", "SYSTEM_STATE", "home_for", "system_mode", "system_root"]

SYSTEM_CONFIG = "etc/repotool"
SYSTEM_STATE = "var/lib/repotool"


def system_mode() -> bool:
    """Root, as apt: the machine's sources, not a user's."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def system_root() -> Path:
    return Path(os.environ.get("REPOTOOL_SYSTEM_ROOT") or "/")


def home_for(explicit: Path | None) -> Home:
    """The client's home for this command (``explicit``: the ``--home`` option)."""
    if explicit is not None:
        return Home(explicit)
    env = os.environ.get("REPOTOOL_HOME")
    if env:
        return Home(Path(env))
    if system_mode():
        prefix = system_root()
        return Home(prefix / SYSTEM_STATE, sources_d=prefix / SYSTEM_CONFIG / "sources.d")
    import platformdirs

    return Home(Path(platformdirs.user_data_dir("repotool", appauthor=False)),
                sources_d=Path(platformdirs.user_config_dir("repotool", appauthor=False))
                / "sources.d")
