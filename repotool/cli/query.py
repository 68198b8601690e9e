"""The queries on verified local state: ``list``, ``search``, ``show``, ``download`` and
``verify`` (repotool/client/queries.py and download.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repotool.cli.common import err, get_home, get_limits, handled, now, out, say, warn
from repotool.cli.render import print_json, print_rows, print_show

__all__ = ["register"]


@handled
def list_(
    source: Annotated[str | None, typer.Option("--source")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List projects from local verified state."""
    from repotool.client.queries import list_projects
    from repotool.client.views import Views

    rows = list_projects(Views(get_home(), source, now=now(), warn=warn))
    print_rows(rows, as_json)


@handled
def search(
    text: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search project names and summaries (case-insensitive)."""
    from repotool.client.queries import search as do_search
    from repotool.client.views import Views

    print_rows(do_search(Views(get_home(), now=now(), warn=warn), text), as_json)


@handled
def show(
    project: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Versions, files, dependencies and the source a project resolves to."""
    from repotool.client.queries import show as do_show
    from repotool.client.views import Views

    print_show(do_show(Views(get_home(), now=now(), warn=warn), project), as_json)


@handled
def download(
    requirements: Annotated[list[str], typer.Argument(help="e.g. demo-pkg==1.0")],
    dest: Annotated[Path, typer.Option("-d", "--dest", help="Directory.")] = Path("."),
    deps: Annotated[bool, typer.Option("--deps", help="Also download dependencies.")] = False,
    python: Annotated[Path | None, typer.Option(
        "--python", help="Choose files for this interpreter (tags, version, markers).",
        show_default=False)] = None,
    platforms: Annotated[list[str] | None, typer.Option(
        "--platform", help="Choose wheels for this platform tag (repeatable), e.g. "
        "manylinux_2_17_x86_64 or win_amd64.", show_default=False)] = None,
    python_version: Annotated[str | None, typer.Option(
        "--python-version", help="Choose files for this Python version, e.g. 3.12.",
        show_default=False)] = None,
    pre: Annotated[bool, typer.Option("--pre", help="Allow pre-release versions.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Download verified files into a directory."""
    from repotool.client.download import download as do_download
    from repotool.client.targets import target

    chosen_for = target(python, platforms=platforms or [], python_version=python_version)
    done = do_download(get_home(), requirements, dest, deps=deps, limits=get_limits(),
                       report=lambda msg: err(f"warning: {msg}"), target=chosen_for,
                       pre=pre)
    if as_json:
        print_json(done)
        return
    for d in done:
        say(f"{d['path']}  sha256:{d['sha256']}  from {d['source']}")


@handled
def verify(
    files: Annotated[list[Path], typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Say which trusted source vouches for each file; exit 3 if any is unvouched."""
    from repotool.client.queries import verify_files

    items = verify_files(get_home(), files, now=now())
    if as_json:
        print_json(items)
    else:
        for it in items:
            if it["vouched_by"]:
                by = ", ".join(f"{v['source']} ({v['project']}=={v['version']})"
                               for v in it["vouched_by"])
                out(f"OK  {it['file']}: vouched for by {by}")
            else:
                out(f"BAD {it['file']}: {it['reason']}")
    if any(not it["vouched_by"] for it in items):
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add this module's top-level commands to ``app``."""
    app.command("list")(list_)
    app.command("search")(search)
    app.command("show")(show)
    app.command("download")(download)
    app.command("verify")(verify)
