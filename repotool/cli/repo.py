"""``repotool repo``: the publisher's commands (init, add, remove, yank, sign, check, keys,
rotate, serve); each calls one function of repotool/publish/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.cli.common import (
    PassEnv,
    PassFile,
    duration,
    err,
    handled,
    load_signers,
    now,
    out,
    pubkeys,
    repo_candidates,
    say,
)
from repotool.cli.render import print_json
from repotool.errors import UsageError

__all__ = ["repo_app"]

repo_app = typer.Typer(help="Publish: build, sign, check and serve a repository.",
                       no_args_is_help=True)


@repo_app.command("init")
@handled
def repo_init(
    directory: Annotated[Path, typer.Argument(help="Repository directory (created).")],
    name: Annotated[str, typer.Option("--name", help="The repository's name.")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="A public key holding every role (repeatable).")] = None,
    threshold: Annotated[int | None, typer.Option(
        "--threshold", help="Signatures required: with --key, for every role (root, targets, "
        "bins, snapshot, timestamp); otherwise for root. Default 1.")] = None,
    root_key: Annotated[list[Path] | None, typer.Option("--root-key")] = None,
    targets_key: Annotated[list[Path] | None, typer.Option("--targets-key")] = None,
    targets_threshold: Annotated[int | None, typer.Option(
        "--targets-threshold", help="Signatures required for targets and its bins, with "
        "--targets-key. Default 1.")] = None,
    online_key: Annotated[list[Path] | None, typer.Option(
        "--online-key", help="Signs snapshot and timestamp.")] = None,
    format_: Annotated[int, typer.Option(
        "--format", help="Repository format: 2 (shards and bins sized to the repository) "
        "or 1 (256 of each, for clients older than format 2).")] = 2,
) -> None:
    """Create a repository; 'repo sign' publishes it."""
    from repotool.publish.workspace import Repository, RoleKeys

    separated = root_key or targets_key or online_key
    if key and separated:
        raise UsageError("--key gives every role; do not combine it with --root-key/"
                         "--targets-key/--online-key")
    if not key and not (root_key and targets_key and online_key):
        raise UsageError("give --key PUB, or all of --root-key, --targets-key and --online-key")
    if key:
        # The same keys hold every role, so every role takes --threshold: a lower one on
        # targets/bins would let one of them publish files, on snapshot/timestamp keep
        # clients on the current state forever, whatever root requires.
        n = 1 if threshold is None else threshold
        _check_threshold(n, len(key), "--threshold", "--key")
        if targets_threshold is not None and targets_threshold != n:
            raise UsageError(
                "with --key, --threshold applies to every role; --targets-threshold is for "
                "role-separated repositories (--targets-key)")
        every = pubkeys(key)
        keys = RoleKeys(every, n, every, n, every, n)
    else:
        assert root_key and targets_key and online_key
        rt = 1 if threshold is None else threshold
        tt = 1 if targets_threshold is None else targets_threshold
        _check_threshold(rt, len(root_key), "--threshold", "--root-key")
        _check_threshold(tt, len(targets_key), "--targets-threshold", "--targets-key")
        keys = RoleKeys(pubkeys(root_key), rt, pubkeys(targets_key), tt, pubkeys(online_key))
    if format_ not in (1, 2):
        raise UsageError("--format is 1 or 2")
    Repository.init(directory, name, keys, now=now(), format=format_)
    err(f"initialised repository {name!r} in {directory}; add files with 'repotool repo add' "
         "and publish with 'repotool repo sign'")


def _check_threshold(n: int, keys: int, option: str, key_option: str) -> None:
    if not 1 <= n <= keys:
        raise UsageError(f"{option} {n} is not between 1 and {keys}, the number of "
                         f"{key_option} keys given")


@repo_app.command("add")
@handled
def repo_add(
    directory: Annotated[Path, typer.Argument(help="Repository directory.")],
    paths: Annotated[list[Path], typer.Argument(help="Wheels, sdists, or folders of them.")],
) -> None:
    """Add wheels and sdists (published at the next 'repo sign')."""
    from repotool.publish.workspace import Repository

    added = Repository(directory).add(paths, now=now())
    for info in added:
        say(f"added {info.project} {info.version}: {info.filename}")
    err(f"{len(added)} file(s) added; run 'repotool repo sign' to publish")


@repo_app.command("remove")
@handled
def repo_remove(
    directory: Annotated[Path, typer.Argument()],
    project: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Argument()] = None,
) -> None:
    """Unlist a project, or one version of it (at the next 'repo sign')."""
    from repotool.publish.workspace import Repository

    _check_version(version)
    n = Repository(directory).remove(project, version)
    err(f"{n} file(s) will be unlisted at the next 'repotool repo sign'")


def _check_version(version: str | None) -> None:
    if version is None:
        return
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        raise UsageError(f"invalid version {version!r}") from None


@repo_app.command("yank")
@handled
def repo_yank(
    directory: Annotated[Path, typer.Argument()],
    project: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
) -> None:
    """Yank a version (PEP 592): installers skip it unless pinned with ==."""
    from repotool.publish.workspace import Repository

    _check_version(version)
    n = Repository(directory).yank(project, version, reason)
    err(f"{n} file(s) will be yanked at the next 'repotool repo sign'")


@repo_app.command("sign")
@handled
def repo_sign(
    directory: Annotated[Path, typer.Argument()],
    key: Annotated[list[str], typer.Option(
        "--key", help="A private key: a file, env:VAR or a signer URI (repeatable).")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Lifetime of every role written, e.g. 12h, 7d, 2w (at most "
        "3650d).")] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="Re-sign this role even if unchanged (root, targets, bins, snapshot).")
    ] = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Only re-sign snapshot and timestamp (the online key's cron job); "
        "pending changes stay pending.")] = False,
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish pending changes: sign and write the metadata atomically."""
    from repotool.publish.workspace import Repository

    secs = duration(expires, "--expires")
    bad = set(role or []) - {"root", "targets", "bins", "snapshot", "timestamp"}
    if bad:
        raise UsageError(f"unknown role(s) {', '.join(sorted(bad))}")
    if refresh and role:
        raise UsageError("--refresh re-signs snapshot and timestamp; do not combine it with "
                         "--role")
    signers = load_signers(key, passphrase_env, passphrase_file, repo_candidates(directory))
    summary = Repository(directory).sign(
        signers, now=now(), expires=secs, force=frozenset(role or []), refresh=refresh)
    sign_report(summary, as_json)


def sign_report(summary: Any, as_json: bool) -> None:
    """Print a sign run's summary: notes on stderr, one line or JSON on stdout."""
    for note in summary.notes:
        err(f"note: {note}")
    if as_json:
        print_json(summary.to_dict())
        return
    if summary.prepared:  # a developer without the online key (repo delegate)
        roles = ", ".join(f"{k} v{n}" for k, n in sorted(summary.prepared.items()))
        sys.stdout.write(f"prepared: {roles}, signed by its developer key(s) and kept in the "
                         "workspace; nothing is published until the online key signs "
                         "('repotool repo sign DIR --key ONLINE')\n")
        return
    v = summary.versions
    bins = {k: n for k, n in v.items() if k.startswith("bins-")}
    parts = [f"{r} v{v[r]}" for r in ("root", "targets", "snapshot", "timestamp") if r in v]
    if bins:
        parts.append(f"{len(bins)} bin(s)")
    parts += [f"{k} v{n}" for k, n in sorted(v.items()) if k.startswith("dev-")]
    say(f"signed: {', '.join(parts)}; {summary.projects_changed} project(s) changed; "
        f"{summary.files} file(s), {summary.bytes} bytes written")


@repo_app.command("check")
@handled
def repo_check(
    directory: Annotated[Path, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the whole tree as a client would; exit 3 on any problem."""
    from repotool.publish.check import check_repository

    report = check_repository(directory, now=now())
    if as_json:
        print_json(report.to_dict())
    else:
        for w in report.warnings:
            err(f"warning: {w}")
        for p in report.problems:
            out(f"problem: {p}")
        sys.stdout.write(
            f"checked {report.targets} target(s), {report.files} distribution file(s): "
            f"{len(report.problems)} problem(s)\n"
        )
    if report.problems:
        raise typer.Exit(3)


@repo_app.command("keys")
@handled
def repo_keys(
    directory: Annotated[Path, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Roles, keys (fingerprints), thresholds and expiries."""
    from repotool.publish.delegation import describe
    from repotool.publish.tree import RepositoryTree
    from repotool.publish.workspace import Repository

    doc = Repository(directory).describe_keys()
    doc["delegations"] = describe(RepositoryTree(directory))
    if as_json:
        print_json(doc)
        return
    sys.stdout.write(f"repository {doc['name']!r}, root version {doc['root_version']}"
                     + ("" if doc["published"] else " (not yet signed)") + "\n")
    for role, r in doc["roles"].items():
        sys.stdout.write(f"{role}: threshold {r['threshold']} of {len(r['keys'])}"
                         + (f", expires {r['expires']}" if r["expires"] else "") + "\n")
        for k in r["keys"]:
            sys.stdout.write(f"  {k}\n")
    b = doc["bins"]
    sys.stdout.write(f"bins ({b['count']}, delegated by targets): threshold {b['threshold']} "
                     f"of {len(b['keys'])}\n")
    for d in doc["delegations"]:  # developer keys (repo delegate)
        state = "" if d["published"] else " (not yet signed)"
        sys.stdout.write(f"delegation {d['pattern']} -> {d['role']} (terminating): threshold "
                         f"{d['threshold']} of {len(d['keys'])}{state}\n")
        for k in d["keys"]:
            sys.stdout.write(f"  {k}\n")
    for w in doc["warnings"]:
        err(f"warning: {w}")


@repo_app.command("serve")
@handled
def repo_serve(
    directory: Annotated[Path, typer.Argument()],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
) -> None:
    """Serve the repository over HTTP for local use (port 0 picks a free port)."""
    from repotool.publish.serve import serve_directory

    serve_directory(directory, host, port, announce=lambda url: (
        sys.stdout.write(f"serving {directory} at {url}\n"
                         f"pip: --index-url {url}simple/\n"), sys.stdout.flush()))
