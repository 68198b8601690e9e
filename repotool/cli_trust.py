"""Trust lifecycle commands: ``source rekey``, ``source show --history`` (SPEC §6.3).

Plain functions registered on cli.py's typer apps by :func:`register`; each parses its
options, calls one library function and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.errors import UsageError
from repotool.render import safe

__all__ = ["register", "show_history"]


def _cli() -> Any:
    from repotool import cli

    return cli


def show_history(home: Any, name: str, as_json: bool) -> None:
    """Every root version the source's keyring accepted, oldest first."""
    from repotool import history

    home.source(name)
    kr = home.keyring(name)
    try:
        version = int(json.loads((kr / "root.json").read_bytes())["signed"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        version = None
    entries = history.read(kr, version)
    if as_json:
        sys.stdout.write(json.dumps(entries, indent=2, sort_keys=True) + "\n")
        return
    if not entries:
        sys.stdout.write(f"{name}: no history recorded (source added before repotool kept "
                         "one)\n")
    for e in entries:
        sys.stdout.write(safe(f"root v{e['version']}  {e['at']}  {e['how']}") + "\n")
        for role, r in e.get("roles", {}).items():
            sys.stdout.write(f"  {role}: threshold {r['threshold']} of {len(r['keys'])}: "
                             + ", ".join(r["keys"]) + "\n")


def source_rekey(
    name: Annotated[str, typer.Argument(help="The source.")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="A new root public key, checked with the publisher (repeatable).")] = None,
    fingerprint: Annotated[list[str] | None, typer.Option(
        "--fingerprint", help="A new root key fingerprint (64 hex digits).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="A trusted root.json.")] = None,
) -> None:
    """Re-establish trust after a root change the keyring cannot follow (a broken chain)."""
    from repotool import keys as keymod
    from repotool.rekey import rekey

    c = _cli()
    if sum(bool(x) for x in (key, fingerprint, root)) != 1:
        raise UsageError("give exactly one of --key, --fingerprint or --root")
    ids = [k.keyid for k in c._pubkeys(key)]
    for f in fingerprint or []:
        if not keymod.is_fingerprint(f.lower()):
            raise UsageError(f"invalid fingerprint {f!r}: expected 64 hex digits")
        ids.append(f.lower())
    if root is not None:
        how = f"re-established from root file {root} (source rekey)"
    else:
        how = (f"re-established by {'key' if key else 'fingerprint'} " + ", ".join(ids)
               + " (source rekey)")
    trusted = rekey(c._home(), name, key_ids=ids, how=how, root_file=root,
                    limits=c._limits(), now=c._now())
    sys.stdout.write(f"source {name!r} now trusts root version {trusted.version}, root keys "
                     f"(threshold {trusted.roles['root'].threshold}):\n")
    for k in sorted(trusted.roles["root"].keyids):
        sys.stdout.write(f"  {k}\n")
    c._err("run 'repotool update' to verify its index from this root")


def register(app: typer.Typer, repo_app: typer.Typer, source_app: typer.Typer) -> None:
    from repotool.cli import handled

    source_app.command("rekey")(handled(source_rekey))
