"""``repotool key``: generate key pairs and show fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repotool.cli.common import PassEnv, PassFile, err, handled, passphrase_source
from repotool.errors import UsageError

__all__ = ["key_app"]

key_app = typer.Typer(help="Generate keys and show fingerprints.", no_args_is_help=True)


@key_app.command("generate")
@handled
def key_generate(
    prefix: Annotated[Path, typer.Argument(help="Writes PREFIX.key (private) and PREFIX.pub.")],
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
    no_passphrase: Annotated[bool, typer.Option(
        "--no-passphrase", help="Leave the private key unencrypted (throwaway keys).")] = False,
) -> None:
    """Generate an Ed25519 key pair and print its fingerprint."""
    from repotool import keys

    if no_passphrase and (passphrase_env or passphrase_file):
        raise UsageError("--no-passphrase contradicts --passphrase-env/--passphrase-file")
    secret = None if no_passphrase else passphrase_source(
        passphrase_env, passphrase_file, confirm=True)()
    g = keys.generate(prefix, secret)
    err(f"wrote {g.private_path} (private, keep it secret) and {g.public_path}")
    sys.stdout.write(g.fingerprint + "\n")


@key_app.command("fingerprint")
@handled
def key_fingerprint(
    file: Annotated[Path, typer.Argument(help="A .pub or .key file.")],
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
) -> None:
    """Print the fingerprint (TUF key id) of a public or private key file."""
    from repotool import keys

    secret = None
    if file.is_file() and keys.is_encrypted(file):
        secret = passphrase_source(passphrase_env, passphrase_file, confirm=False)()
    sys.stdout.write(keys.fingerprint_of_file(file, secret) + "\n")
