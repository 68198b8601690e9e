"""The ``repotool`` executable: a fast path for the read-only queries, else the full CLI.

``list``, ``search`` and ``show`` answer from local state within 0.15 s, and a no-change
``update`` is a few small requests (SPEC §5); the typer CLI costs ~40-60 ms to import
and build before any work starts. The plain forms

    repotool [--home DIR] update [--json]
    repotool [--home DIR] list [--source NAME] [--json]
    repotool [--home DIR] search TEXT [--json]
    repotool [--home DIR] show PROJECT [--json]

are therefore answered here, by the same library calls and printers the CLI uses; any
other argument (``--help``, an unknown option, another command) goes to the full CLI,
which also owns every usage error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main"]


def _parse(argv: list[str]) -> tuple[Path | None, str, list[str], str | None, bool] | None:
    home: Path | None = None
    if len(argv) >= 2 and argv[0] == "--home":
        home, argv = Path(argv[1]), argv[2:]
    elif argv and argv[0].startswith("--home="):
        home, argv = Path(argv[0][len("--home="):]), argv[1:]
    if not argv or argv[0] not in ("list", "search", "show", "update"):
        return None
    cmd, args = argv[0], argv[1:]
    if cmd == "update":  # only the plain form: all sources, default options
        return (home, cmd, [], None, True) if args == ["--json"] else \
            (home, cmd, [], None, False) if not args else None
    positional: list[str] = []
    source: str | None = None
    as_json = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--json":
            as_json = True
        elif a == "--source" and cmd == "list" and i + 1 < len(args):
            source = args[i + 1]
            i += 1
        elif a.startswith("-") or not a:
            return None
        else:
            positional.append(a)
        i += 1
    if len(positional) != (0 if cmd == "list" else 1):
        return None
    return home, cmd, positional, source, as_json


def _run_fast(parsed: tuple[Path | None, str, list[str], str | None, bool]) -> int:
    from repotool.cli.render import print_rows, print_show, safe
    from repotool.client.locations import home_for
    from repotool.client.queries import list_projects, search, show
    from repotool.client.views import Views
    from repotool.errors import RepotoolError

    def warn(message: str) -> None:
        sys.stderr.write(f"repotool: warning: {safe(message)}\n")

    home_dir, cmd, positional, source, as_json = parsed
    try:
        home = home_for(home_dir)
        if cmd == "update":
            return _update(home, as_json)
        if cmd == "list":
            print_rows(list_projects(Views(home, source, warn=warn)), as_json)
        elif cmd == "search":
            print_rows(search(Views(home, warn=warn), positional[0]), as_json)
        else:
            print_show(show(Views(home, warn=warn), positional[0]), as_json)
        sys.stdout.flush()
    except RepotoolError as e:
        sys.stderr.write(f"repotool: error: {safe(e.message)}\n")
        if e.hint:
            sys.stderr.write(f"  hint: {safe(e.hint)}\n")
        return e.exit_code
    except BrokenPipeError:  # `repotool list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:
        sys.stderr.write(f"repotool: error: {e.strerror or e}\n")
        return 1
    except Exception as e:  # a bug: one line, as the full CLI does (cli.handled)
        from repotool.errors import debug_enabled, internal_error_line

        if debug_enabled():
            raise
        sys.stderr.write(internal_error_line(e) + "\n")
        return 1
    return 0


def _update(home: object, as_json: bool) -> int:
    from datetime import UTC, datetime

    from repotool import progress
    from repotool.cli.render import print_update, safe
    from repotool.client.dropins import update_with_dropins
    from repotool.client.home import Home
    from repotool.transport.limits import Limits

    assert isinstance(home, Home)
    progress.configure(progress.terminal_wanted())  # rich is imported only on a terminal
    limits = Limits().started()  # one time bound for the whole command
    results = update_with_dropins(
        home, None, now=datetime.now(UTC), limits=limits,
        report=lambda m: print(f"warning: {safe(m)}", file=sys.stderr))
    return print_update(results, as_json)


def main() -> None:
    # shell completion (typer's _REPOTOOL_COMPLETE protocol) is the full CLI's
    parsed = None if "_REPOTOOL_COMPLETE" in os.environ else _parse(sys.argv[1:])
    if parsed is not None:
        sys.exit(_run_fast(parsed))
    from repotool.cli.app import main as cli_main

    cli_main()
