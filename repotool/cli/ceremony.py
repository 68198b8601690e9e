"""``repo rotate`` and ``proposal show|sign``: root changes in one run or across machines.

Registered by ``repotool.cli.app`` through ``register``, which hands over the CLI's
shared helpers (error mapping, key opening, printing).
Each command parses options, calls one library function (``repotool.publish.rotation``
or ``repotool.publish.ceremony``) and prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.errors import UsageError, VerificationError

__all__ = ["register"]

PassEnv = Annotated[str | None, typer.Option(
    "--passphrase-env", metavar="VAR", help="Read the passphrase from this environment variable.")]
PassFile = Annotated[Path | None, typer.Option(
    "--passphrase-file", metavar="FILE", help="Read the passphrase from this file.")]
Keys = Annotated[list[str] | None, typer.Option(
    "--key", help="A private key: a file, env:VAR or a signer URI (repeatable).")]


def _print_status(st: dict[str, Any], out: Any) -> None:
    w = out.write
    what = (f"root v{st['base_version']} -> v{st['version']}" if st["base_version"]
            else "first root v1")
    w(f"proposal {st['file']}: repository {st['repository']!r}, {what}, "
      f"expires {st['expires']}"
      + (" (EXPIRED: make a new proposal)" if st["expired"] else "") + "\n")
    for c in st["changes"]:
        o, n = c["threshold"]
        w(f"  {c['role']}: threshold {o} -> {n}\n" if o != n else f"  {c['role']}:\n")
        for k in c["add"]:
            w(f"    + {k}\n")
        for k in c["remove"]:
            w(f"    - {k}\n")
    if not st["base_version"]:
        w("  the first root, as 'repo init' made it:\n")
        for name, r in sorted(st["roles"].items()):
            w(f"  {name}: threshold {r['threshold']} of {len(r['keys'])}\n")
            for k in r["keys"]:
                w(f"    {k}\n")
    elif not st["changes"]:
        w("  no key or threshold changes (a renewal of the root)\n")
    w(f"signed by ({len(st['signed_by'])}):\n")
    for k in st["signed_by"]:
        w(f"  {k}\n")
    for k in st["invalid_signatures"]:
        w(f"  {k} INVALID signature (ignored)\n")
    pairs = [("old", f"old root v{st['base_version']}"), ("new", f"new root v{st['version']}")]
    for which, label in pairs if st["base_version"] else [("new", "first root v1")]:
        s = st[which]
        if s["missing"]:
            w(f"{label}: {len(s['signed'])} of {s['threshold']} signatures, {s['missing']} "
              f"missing; can sign:\n")
            for k in s["can_sign"]:
                w(f"  {k}\n")
        else:
            w(f"{label}: threshold {s['threshold']} met\n")
    w("complete: ready for 'repotool repo rotate DIR --apply FILE'\n" if st["complete"]
      else "incomplete: 'repotool proposal sign FILE --key PRIV' adds signatures\n")


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def register(app: typer.Typer, repo_app: typer.Typer, *, handled: Decorator, signers: Any,
             candidates: Any, pubkeys: Any, now: Any, duration: Any, sign_report: Any,
             err: Any, print_json: Any) -> None:
    """Add ``repo rotate`` and the ``proposal`` commands to the CLI."""
    proposal_app = typer.Typer(
        help="Root changes signed on several machines: show and sign a proposal.",
        no_args_is_help=True)
    app.add_typer(proposal_app, name="proposal")

    @repo_app.command("rotate")
    @handled
    def repo_rotate(
        directory: Annotated[Path, typer.Argument()],
        role: Annotated[list[str] | None, typer.Option(
            "--role", help="root, targets (with its bins), online (snapshot and timestamp) "
            "or all; repeatable: one new root changes them all.")] = None,
        key: Keys = None,
        add: Annotated[list[Path] | None, typer.Option("--add", help="Public key to add.")
                       ] = None,
        remove: Annotated[list[str] | None, typer.Option(
            "--remove", help="Fingerprint to remove.")] = None,
        threshold: Annotated[int | None, typer.Option("--threshold", min=1)] = None,
        expires: Annotated[str | None, typer.Option(
            "--expires", help="Lifetime of the new root, e.g. 52w (at most 3650d).")] = None,
        propose: Annotated[Path | None, typer.Option(
            "--propose", metavar="FILE", help="Write the proposed root to FILE for holders "
            "on other machines to sign; the repository does not change.")] = None,
        apply_: Annotated[list[Path] | None, typer.Option(
            "--apply", metavar="FILE", help="Publish a signed proposal (repeatable: copies "
            "signed in parallel are merged); --key gives the targets and online keys.")
        ] = None,
        passphrase_env: PassEnv = None,
        passphrase_file: PassFile = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Publish a new root version, signed by the old and the new root thresholds.

        '--role targets --threshold N' also raises the bins to N (they are re-signed).
        With --propose FILE the new root goes to FILE instead ('proposal sign' gathers
        signatures on other machines), and '--apply FILE' publishes it.
        """
        from repotool import keys as keymod
        from repotool.publish import ceremony
        from repotool.publish.workspace import Repository

        secs = duration(expires, "--expires")
        for fpr in remove or []:
            if not keymod.is_fingerprint(fpr):
                raise UsageError(f"--remove takes a fingerprint (64 hex digits), got {fpr!r}")
        repo = Repository(directory)
        if apply_:
            if role or add or remove or threshold is not None or propose is not None:
                raise UsageError("--apply publishes a proposal as it was signed; --role, "
                                 "--add, --remove, --threshold and --propose do not apply")
            proposals = [ceremony.load(p) for p in apply_]
            ks = [k for p in proposals for k in p.root_keys()]
            sig = signers(list(key or []), passphrase_env, passphrase_file,
                          lambda: [*ks, *candidates(directory)()])
            sign_report(ceremony.apply(repo, proposals, sig, now=now(), expires=secs),
                        as_json)
            return
        if propose is not None:
            p = ceremony.propose(repo, propose, list(role or []), pubkeys(add),
                                 list(remove or []),
                                 threshold, now=now(), expires=secs)
            notes: list[str] = []
            if key:
                sig = signers(list(key), passphrase_env, passphrase_file, p.root_keys)
                notes = ceremony.sign_proposal(p, sig)
            for n in notes:
                err(f"note: {n}")
            st = ceremony.status(p)
            if as_json:
                print_json(st)
            else:
                _print_status(st, sys.stdout)
            err(f"wrote {propose}; the repository is unchanged until "
                f"'repotool repo rotate {directory} --apply {propose}'")
            return
        if not role:
            raise UsageError("give --role ROLE (root, targets, online or all)")
        if not key:
            raise UsageError("give --key PRIV (the root keys, old and new), or --propose FILE")
        sig = signers(list(key), passphrase_env, passphrase_file, candidates(directory))
        summary = repo.rotate(role, pubkeys(add), list(remove or []), threshold, sig,
                              now=now(), expires=secs)
        sign_report(summary, as_json)

    @proposal_app.command("show")
    @handled
    def proposal_show(
        file: Annotated[Path, typer.Argument(help="A proposal written by 'repo rotate "
                                             "--propose'.")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """What a proposal changes, who has signed, which signatures are still missing."""
        from repotool.publish import ceremony

        st = ceremony.status(ceremony.load(file), now=now())
        if as_json:
            print_json(st)
        else:
            _print_status(st, sys.stdout)

    @proposal_app.command("sign")
    @handled
    def proposal_sign(
        file: Annotated[Path, typer.Argument()],
        key: Keys = None,
        passphrase_env: PassEnv = None,
        passphrase_file: PassFile = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Add signatures to a proposal: needs only FILE and the key, on any machine."""
        from repotool.publish import ceremony

        if not key:
            raise UsageError("give --key PRIV (repeatable)")
        p = ceremony.load(file)
        st = ceremony.status(p, now=now())
        if st["expired"]:
            raise VerificationError(f"the proposed root expired at {st['expires']}; "
                                    "nothing was signed", "make a new proposal")
        sig = signers(list(key), passphrase_env, passphrase_file, p.root_keys)
        before = set(st["signed_by"])
        what = f"root v{st['version']}" if st["base_version"] else "first root v1"
        err(f"signing {what} of {st['repository']!r}: " + ("; ".join(
                f"{c['role']} +{len(c['add'])} -{len(c['remove'])} key(s), threshold "
                f"{c['threshold'][0]}->{c['threshold'][1]}" for c in st["changes"])
                or "no key changes") + " ('proposal show' details it)")
        for n in ceremony.sign_proposal(p, sig):
            err(f"note: {n}")
        st = ceremony.status(p, now=now())
        for k in sorted(set(st["signed_by"]) - before):
            err(f"signed by {k}")
        if as_json:
            print_json(st)
        elif st["complete"]:
            sys.stdout.write("complete: both thresholds met; publish with "
                             f"'repotool repo rotate DIR --apply {file}'\n")
        else:
            sys.stdout.write(f"still missing: {ceremony.missing_line(st)}\n")
