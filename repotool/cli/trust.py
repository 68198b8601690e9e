"""Trust lifecycle commands: ``source rekey``, ``source show --history`` (SPEC §6.3) and
``repo delegate`` (developer keys, SPEC §6.2).

Registered on the ``source`` and ``repo`` groups by repotool/cli/app.py through
:func:`register`; each command parses its options, calls one library function and prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.cli.common import (
    PassEnv,
    PassFile,
    err,
    get_home,
    get_limits,
    handled,
    load_signers,
    now,
    pubkeys,
    repo_candidates,
)
from repotool.cli.render import safe
from repotool.cli.repo import sign_report
from repotool.errors import UsageError

__all__ = ["register", "show_history"]


def show_history(home: Any, name: str, as_json: bool) -> None:
    """Every root version the source's keyring accepted, oldest first."""
    from repotool.client import history

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
        if e.get("kind") == "delegation":
            sys.stdout.write(safe(f"delegation  {e['at']}  {e['how']}") + "\n")
            continue
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
    from repotool.client.rekey import rekey

    if sum(bool(x) for x in (key, fingerprint, root)) != 1:
        raise UsageError("give exactly one of --key, --fingerprint or --root")
    ids = [k.keyid for k in pubkeys(key)]
    for f in fingerprint or []:
        if not keymod.is_fingerprint(f.lower()):
            raise UsageError(f"invalid fingerprint {f!r}: expected 64 hex digits")
        ids.append(f.lower())
    if root is not None:
        how = f"re-established from root file {root} (source rekey)"
    else:
        how = (f"re-established by {'key' if key else 'fingerprint'} " + ", ".join(ids)
               + " (source rekey)")
    trusted = rekey(get_home(), name, key_ids=ids, how=how, root_file=root,
                    limits=get_limits(), now=now())
    sys.stdout.write(f"source {name!r} now trusts root version {trusted.version}, root keys "
                     f"(threshold {trusted.roles['root'].threshold}):\n")
    for k in sorted(trusted.roles["root"].keyids):
        sys.stdout.write(f"  {k}\n")
    err("run 'repotool update' to verify its index from this root")


def repo_delegate(
    directory: Annotated[Path, typer.Argument(help="The repository directory.")],
    pattern: Annotated[str, typer.Argument(
        help="Projects to delegate: a glob on normalized names, e.g. 'demo-*'.")],
    to: Annotated[list[Path], typer.Option(
        "--to", help="A developer's public key (repeatable).")],
    threshold: Annotated[int, typer.Option(
        "--threshold", help="Developer signatures needed.")] = 1,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="The targets key, and the online key to publish now: a file, env:VAR "
        "or a signer URI (repeatable).")] = None,
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
) -> None:
    """Hand the projects matching PATTERN to developer keys alone (a terminating
    delegation): from then on only a threshold of those keys vouches for their files."""
    from repotool.publish.delegation import delegate
    from repotool.publish.tree import RepositoryTree
    from repotool.publish.workspace import Repository

    pubs = pubkeys(to)
    if len({k.keyid for k in pubs}) != len(pubs):
        raise UsageError("the same key is given twice with --to")
    if not key:
        raise UsageError("give the targets key with --key (and the online key to publish)")
    signers = load_signers(key, passphrase_env, passphrase_file, repo_candidates(directory))
    tree = RepositoryTree(directory)
    tree.require()
    wanted = tree.work / "delegations.json"
    before = wanted.read_bytes() if wanted.exists() else None
    name = delegate(tree, pattern, pubs, threshold)
    try:
        summary = Repository(directory).sign(signers, now=now())
    except BaseException:  # nothing was published: nothing stays pending either
        if before is None:
            wanted.unlink(missing_ok=True)
        else:
            wanted.write_bytes(before)
        raise
    sys.stdout.write(f"delegated {pattern!r} to role {name}: threshold {threshold} of "
                     f"{len(pubs)}\n")
    for k in sorted(p.keyid for p in pubs):
        sys.stdout.write(f"  {k}\n")
    sign_report(summary, False)


def register(repo_app: typer.Typer, source_app: typer.Typer) -> None:
    source_app.command("rekey")(handled(source_rekey))
    repo_app.command("delegate")(handled(repo_delegate))
