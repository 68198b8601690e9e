"""CLI command ``repo migrate`` (issue 11, repository format 2): registered on the
``repo`` group by repotool/cli/app.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repotool.cli.common import PassEnv, PassFile, handled, load_signers, now, repo_candidates
from repotool.cli.repo import sign_report

__all__ = ["register"]


def register(repo_app: typer.Typer) -> None:
    @repo_app.command("migrate")
    @handled
    def repo_migrate(
        directory: Annotated[Path, typer.Argument()],
        key: Annotated[list[str], typer.Option(
            "--key", help="A private key: a file, env:VAR or a signer URI (repeatable).")],
        passphrase_env: PassEnv = None,
        passphrase_file: PassFile = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Convert a format 1 repository to format 2 (targets and online keys sign; root
        is not re-signed)."""
        from repotool.publish.workspace import Repository

        signers = load_signers(key, passphrase_env, passphrase_file,
                               repo_candidates(directory))
        summary = Repository(directory).migrate(signers, now=now())
        sign_report(summary, as_json)
