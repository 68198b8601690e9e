"""``repotool key``: generate key pairs and show fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repotool.cli.common import PassEnv, PassFile, err, handled, passphrase_source
from repotool.errors import UsageError, UserError

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
    spec: Annotated[str, typer.Argument(
        metavar="KEY", help="A .pub or .key file, env:VAR, or a signer URI (with --pub).")],
    pub: Annotated[Path | None, typer.Option(
        "--pub", help="With a signer URI: the public key it should hold; checked by a test "
        "signature.")] = None,
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
) -> None:
    """Print the fingerprint (TUF key id) of a key file, env:VAR key or signer URI."""
    from repotool import keys, signers

    if signers.is_uri(spec) or pub is not None:
        candidates = [keys.public_from_file(pub)] if pub is not None else []
        if not spec.startswith("env:") and pub is None:
            raise UsageError(f"{spec!r} is a signer URI: give its public key with --pub PUB")
        signer = signers.open_signer(
            spec, passphrase_source(passphrase_env, passphrase_file, confirm=False),
            lambda: candidates)
        if pub is not None and signer.public_key.keyid != candidates[0].keyid:
            raise UserError(f"{spec!r} does not hold the key in {str(pub)!r}")
        sys.stdout.write(signer.public_key.keyid + "\n")
        return
    file = Path(spec)
    secret = None
    if file.is_file() and keys.is_encrypted(file):
        secret = passphrase_source(passphrase_env, passphrase_file, confirm=False)()
    sys.stdout.write(keys.fingerprint_of_file(file, secret) + "\n")
