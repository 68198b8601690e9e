"""The ``repotool`` command line. ``entry.py`` is the executable (fast paths first);
``app.py`` assembles the typer app. Imports nothing: the fast paths must not pay for
typer (SPEC §5)."""
