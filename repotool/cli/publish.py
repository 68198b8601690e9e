"""CLI command ``repo publish`` (issue 11, SPEC §6.5): registered on the ``repo``
group by repotool/cli/app.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repotool.cli.common import err, handled, now, say
from repotool.cli.render import print_json

__all__ = ["register"]


def register(repo_app: typer.Typer) -> None:
    @repo_app.command("publish")
    @handled
    def repo_publish(
        directory: Annotated[Path, typer.Argument(help="The signed repository.")],
        dest: Annotated[str, typer.Argument(
            help="A directory, or s3://BUCKET/PREFIX (needs repotool[s3]).")],
        endpoint_url: Annotated[str | None, typer.Option(
            "--endpoint-url", help="An S3-compatible server, e.g. http://127.0.0.1:9000.")
        ] = None,
        cache_control: Annotated[list[str] | None, typer.Option(
            "--cache-control", help="KIND=VALUE, KIND one of timestamp, mutable, immutable "
            "(defaults: no-cache; max-age=300; public, max-age=31536000, immutable). "
            "Repeatable; KIND= sends none.")] = None,
        jobs: Annotated[int, typer.Option("--jobs", min=1, max=64,
                                          help="Uploads at once.")] = 8,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Say what would be uploaded; upload nothing.")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Copy a signed repository to DEST: only what DEST lacks, timestamp.json last,
        everything read back and verified; nothing is deleted."""
        from repotool.publish.upload import open_destination, parse_cache_control, publish

        policy = parse_cache_control(cache_control or [])
        destination = open_destination(dest, endpoint_url=endpoint_url, source=directory)
        summary = publish(directory, destination, now=now(), cache_control=policy,
                          jobs=jobs, dry_run=dry_run,
                          warn=lambda m: err(f"repotool: warning: {m}"))
        if as_json:
            print_json(summary.to_dict())
            return
        v = summary.versions
        verb = "would upload" if dry_run else "uploaded"
        say(f"{summary.destination}: {verb} {len(summary.uploaded)} file(s), "
              f"{summary.bytes} bytes; {summary.present} already there")
        if not dry_run:
            audit = "; verified as a client would" if summary.audited else ""
            say(f"  timestamp v{v['timestamp']}, snapshot v{v['snapshot']}, root "
                  f"v{v['root']}; {summary.verified} file(s) read back and compared{audit}")
        if summary.orphans:
            err(f"repotool: warning: {len(summary.orphans)} file(s) of an unfinished sign "
                  f"not uploaded (not yet published), e.g. {summary.orphans[0]}")
