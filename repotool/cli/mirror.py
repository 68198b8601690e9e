"""CLI commands ``mirror`` and ``repo import`` (issue 10): registered by repotool/cli.py.

Plain functions behind a ``register`` hook, handed the CLI's shared helpers, so the
command group can move into the cli/ package unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.cli.common import err, get_home, get_limits, handled, now, out, say
from repotool.cli.render import print_json

__all__ = ["register"]


def register(app: typer.Typer, repo_app: typer.Typer) -> None:
    @app.command("mirror")
    @handled
    def mirror(
        source: Annotated[str, typer.Argument(help="A configured source.")],
        dest: Annotated[Path, typer.Argument(help="Directory to make or refresh.")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
        verify: Annotated[bool, typer.Option(
            "--verify", help="Hash every file DEST holds (ignore the record of files "
            "verified before).")] = False,
    ) -> None:
        """Make or refresh DEST as a verified copy of SOURCE's repository (servable as
        is, added by others with the publisher's key)."""
        from repotool.client.mirror import mirror as do_mirror

        progress = _progress if sys.stderr.isatty() and not as_json else None
        res = do_mirror(get_home(), source, dest, now=now(), limits=get_limits(),
                        progress=progress, verify=verify)
        if progress is not None:
            sys.stderr.write("\n")
        for f in res.failures:
            err(f"repotool: warning: location failed, next one used: {f}")
        if as_json:
            print_json(res.to_dict())
            return
        v = res.versions
        say(f"{source}: mirrored to {dest} from {res.mirror} (timestamp {v.get('timestamp')}"
              f", snapshot {v.get('snapshot')}, root {v.get('root')})")
        say(f"  {res.targets} files: {res.files_fetched} fetched, {res.files_present} "
              f"already present ({res.files_hashed} hashed now); "
              f"{res.metadata_written} metadata files written; "
              f"{res.bytes_fetched} bytes fetched")

    @repo_app.command("import")
    @handled
    def repo_import(
        directory: Annotated[Path, typer.Argument(help="Your repository.")],
        requirements: Annotated[list[str], typer.Argument(help="e.g. demo-pkg==1.0")],
        source: Annotated[str, typer.Option("--from", help="The configured source to "
                                            "copy from.")],
        deps: Annotated[bool, typer.Option("--deps", help="Also import dependencies.")]
        = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Copy verified files from a source into your repository (published at the next
        'repo sign', kept whatever the origin later removes)."""
        from repotool.client.origin import fetch_for_import
        from repotool.publish.importing import import_files, require_repository

        require_repository(directory)  # before anything is fetched
        fetched = fetch_for_import(get_home(), source, requirements, deps=deps,
                                   limits=get_limits())
        added = import_files(directory, fetched, now=now())
        if as_json:
            print_json(added)
            return
        for a in added:
            state = "imported" if a["added"] else "already in the repository"
            say(f"{state}: {a['filename']} sha256:{a['sha256']} from source "
                  f"{a['source']} (repository {a['repository']!r})")
        err(f"publish with 'repotool repo sign {directory} --key ...'")

    @repo_app.command("list")
    @handled
    def repo_list(
        directory: Annotated[Path, typer.Argument(help="Your repository.")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Distributions of a repository, published and pending, with where imported
        ones came from."""
        from repotool.publish.importing import list_files

        rows = list_files(directory)
        if as_json:
            print_json(rows)
            return
        for row in rows:
            out(_list_line(row))


def _list_line(row: dict[str, Any]) -> str:
    line = f"{row['project']} {row['version']}  {row['filename']}  ({row['state']})"
    src = row["imported_from"]
    if isinstance(src, dict):
        keys = ",".join(k[:16] for k in src.get("root_keys", []))
        line += (f"  imported from {src.get('source')} (repository "
                 f"{src.get('repository')!r}, root key {keys}, sha256:{src.get('sha256')})")
    return line


def _progress(done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        sys.stderr.write(f"\rmirror: {done}/{total} files checked")
        sys.stderr.flush()
