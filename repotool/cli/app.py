"""The ``repotool`` typer app, assembled: the global options, the command groups
(keys.py, repo.py, source.py) and the top-level commands (source.py: update, clean;
query.py: list, search, show, download, verify; pip.py: install, lock, proxy).

Each command parses its options, calls one library function, prints, and maps errors
(common.handled). Exit codes (SPEC §2): 0 success, 1 operational error, 2 usage error,
3 verification refused. Heavy modules (tuf, cryptography, requests) are imported inside
the commands that need them, so queries start fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from repotool import __version__
from repotool.cli import (
    ceremony,
    common,
    keys,
    migrate,
    mirror,
    pip,
    publish,
    query,
    repo,
    source,
    trust,
)
from repotool.cli.common import STATE
from repotool.cli.output import setup as setup_output
from repotool.cli.render import print_json

app = typer.Typer(
    name="repotool",
    help="Signed Python package repositories: apt's user model, TUF's protections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=True,  # --install-completion / --show-completion (docs/cli.md)
    rich_markup_mode=None,
)
app.add_typer(keys.key_app, name="key")
app.add_typer(repo.repo_app, name="repo")
publish.register(repo.repo_app)  # repo publish
mirror.register(app, repo.repo_app)  # mirror, repo import, repo list
migrate.register(repo.repo_app)  # repo migrate
ceremony.register(  # repo rotate, proposal show|sign
    app, repo.repo_app, handled=common.handled, signers=common.load_signers,
    candidates=common.repo_candidates, pubkeys=common.pubkeys, now=common.now,
    duration=common.duration, sign_report=repo.sign_report, err=common.err,
    print_json=print_json)
app.add_typer(source.source_app, name="source")
source.register(app)  # update, clean
trust.register(repo.repo_app, source.source_app)  # repo delegate, source rekey
query.register(app)  # list, search, show, download, verify
pip.register(app)  # install, lock, proxy


def _version_cb(value: bool) -> None:
    if value:
        sys.stdout.write(f"repotool {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global(
    home: Annotated[Path | None, typer.Option(
        "--home", help="Client state directory (default: $REPOTOOL_HOME; as root "
        "/var/lib/repotool with sources in /etc/repotool/sources.d; else the platform's "
        "per-user data directory).", show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.1, help="Seconds any download may take before it must "
        "keep up a minimum rate (and the connect/read timeout cap).",
        show_default=False)] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version_cb, is_eager=True, help="Show the version.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only errors: no progress, notices, warnings or summaries "
        "(data asked for, e.g. --json or a query's answer, is still printed).")] = False,
) -> None:
    STATE.home = home
    STATE.timeout = timeout
    setup_output(quiet)


def main() -> None:
    try:
        app(prog_name="repotool")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away before our last write
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
