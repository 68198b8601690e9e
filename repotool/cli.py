"""The ``repotool`` command line: parse, call one library function, print, map errors.

Exit codes (SPEC §2): 0 success, 1 operational error, 2 usage error, 3 verification
refused. Data (and ``--json``) goes to stdout, diagnostics to stderr; no traceback is
ever printed. Heavy modules (tuf, cryptography, requests) are imported inside the
commands that need them, so queries start fast.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from repotool import __version__
from repotool.errors import (
    RepotoolError,
    UsageError,
    UserError,
    debug_enabled,
    internal_error_line,
)
from repotool.render import print_rows, print_show, print_update, safe, safe_lines

app = typer.Typer(
    name="repotool",
    help="Signed Python package repositories: apt's user model, TUF's protections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
key_app = typer.Typer(help="Generate keys and show fingerprints.", no_args_is_help=True)
repo_app = typer.Typer(help="Publish: build, sign, check and serve a repository.",
                       no_args_is_help=True)
source_app = typer.Typer(help="Add, list, show and remove sources (like apt sources).",
                         no_args_is_help=True)
app.add_typer(key_app, name="key")
app.add_typer(repo_app, name="repo")
app.add_typer(source_app, name="source")

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    home: Path | None = None
    timeout: float | None = None


STATE = _State()


def _err(msg: str) -> None:
    # messages may quote a source's text: no control character reaches the terminal
    sys.stderr.write(safe_lines(msg.rstrip()) + "\n")


def _out(line: str) -> None:
    """One line of text output on stdout, control characters escaped."""
    sys.stdout.write(safe(line) + "\n")


def _warn(message: str) -> None:
    _err(f"repotool: warning: {safe(message)}")


def _report(e: RepotoolError) -> None:
    _err(f"repotool: error: {safe(e.message)}")
    if e.hint:
        _err(f"  hint: {safe(e.hint)}")


def handled(fn: F) -> F:
    """Map repotool's errors to one or two lines and the SPEC's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RepotoolError as e:
            _report(e)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _err("repotool: interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (`repotool list | head`): not an error of ours
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as e:
            _err(f"repotool: error: {e.strerror or e}"
                 + (f": {e.filename!r}" if getattr(e, "filename", None) else ""))
            raise typer.Exit(1) from None
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer's own exits and usage errors
        except Exception as e:
            # a bug: one line and exit 1, never a traceback (SPEC §2) unless asked for
            if debug_enabled():
                raise
            _err(internal_error_line(e))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _now() -> datetime:
    return datetime.now(UTC)


def _home() -> Any:
    from repotool.home import Home, default_home

    return Home(STATE.home or default_home())


def _limits() -> Any:
    from repotool.transport import Limits

    if STATE.timeout is None:
        return Limits().started()  # one time bound for the whole command
    t = STATE.timeout
    # the allowance every download gets before the rate floor applies (repotool/limits.py)
    return Limits(connect_timeout=min(10.0, t), read_timeout=min(15.0, t),
                  allowance=t).started()


def _duration(text: str | None, option: str, maximum: int | None = None,
              hint: str | None = None) -> int | None:
    """An option's duration in seconds (None when not given); exit 2 when malformed or
    beyond ``maximum`` (default: the 10-year cap on any lifetime)."""
    if text is None:
        return None
    from repotool.storage import duration_max, parse_duration

    return parse_duration(text, option=option, maximum=maximum or duration_max, hint=hint)


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _version_cb(value: bool) -> None:
    if value:
        sys.stdout.write(f"repotool {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global(
    home: Annotated[Path | None, typer.Option(
        "--home", help="Client state directory (default: $REPOTOOL_HOME, else the "
        "platform's per-user data directory).", show_default=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0.1, help="Seconds any download may take before it must "
        "keep up a minimum rate (and the connect/read timeout cap).",
        show_default=False)] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version_cb, is_eager=True, help="Show the version.")] = False,
) -> None:
    STATE.home = home
    STATE.timeout = timeout


# ---- passphrases ------------------------------------------------------------------------


def _passphrase_source(env: str | None, file: Path | None, *, confirm: bool) -> Callable[[], bytes]:
    def get() -> bytes:
        if env is not None:
            val = os.environ.get(env)
            if val is None:
                raise UserError(f"environment variable {env!r} is not set")
            return val.encode()
        if file is not None:
            try:
                data = file.read_bytes()
            except OSError as e:
                raise UserError(f"cannot read passphrase file {str(file)!r}: {e.strerror}") \
                    from None
            return data.rstrip(b"\r\n")
        if not sys.stdin.isatty():
            raise UserError(
                "a passphrase is needed and there is no terminal to ask",
                "give --passphrase-env VAR or --passphrase-file F",
            )
        import getpass

        first = getpass.getpass("Passphrase: ").encode()
        if confirm and getpass.getpass("Passphrase again: ").encode() != first:
            raise UserError("the passphrases differ")
        return first

    return functools.cache(get)


PassEnv = Annotated[str | None, typer.Option(
    "--passphrase-env", metavar="VAR", help="Read the passphrase from this environment variable.")]
PassFile = Annotated[Path | None, typer.Option(
    "--passphrase-file", metavar="FILE", help="Read the passphrase from this file.")]


# ---- key ----------------------------------------------------------------------------------


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
    secret = None if no_passphrase else _passphrase_source(
        passphrase_env, passphrase_file, confirm=True)()
    g = keys.generate(prefix, secret)
    _err(f"wrote {g.private_path} (private, keep it secret) and {g.public_path}")
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
        secret = _passphrase_source(passphrase_env, passphrase_file, confirm=False)()
    sys.stdout.write(keys.fingerprint_of_file(file, secret) + "\n")


# ---- repo ---------------------------------------------------------------------------------


def _pubkeys(paths: list[Path] | None) -> list[Any]:
    from repotool import keys

    return [keys.public_from_file(p) for p in paths or []]


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
        every = _pubkeys(key)
        keys = RoleKeys(every, n, every, n, every, n)
    else:
        assert root_key and targets_key and online_key
        rt = 1 if threshold is None else threshold
        tt = 1 if targets_threshold is None else targets_threshold
        _check_threshold(rt, len(root_key), "--threshold", "--root-key")
        _check_threshold(tt, len(targets_key), "--targets-threshold", "--targets-key")
        keys = RoleKeys(_pubkeys(root_key), rt, _pubkeys(targets_key), tt, _pubkeys(online_key))
    Repository.init(directory, name, keys, now=_now())
    _err(f"initialised repository {name!r} in {directory}; add files with 'repotool repo add' "
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

    added = Repository(directory).add(paths, now=_now())
    for info in added:
        sys.stdout.write(f"added {info.project} {info.version}: {info.filename}\n")
    _err(f"{len(added)} file(s) added; run 'repotool repo sign' to publish")


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
    _err(f"{n} file(s) will be unlisted at the next 'repotool repo sign'")


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
    _err(f"{n} file(s) will be yanked at the next 'repotool repo sign'")


def _signers(paths: list[Path], env: str | None, file: Path | None) -> list[Any]:
    from repotool import keys

    secret = _passphrase_source(env, file, confirm=False)
    return [keys.load_signer(p, secret) for p in paths]


@repo_app.command("sign")
@handled
def repo_sign(
    directory: Annotated[Path, typer.Argument()],
    key: Annotated[list[Path], typer.Option("--key", help="A private key (repeatable).")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Lifetime of every role written, e.g. 12h, 7d, 2w (at most "
        "3650d).")] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="Re-sign this role even if unchanged (root, targets, bins, snapshot).")
    ] = None,
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish pending changes: sign and write the metadata atomically."""
    from repotool.publish.workspace import Repository

    secs = _duration(expires, "--expires")
    bad = set(role or []) - {"root", "targets", "bins", "snapshot", "timestamp"}
    if bad:
        raise UsageError(f"unknown role(s) {', '.join(sorted(bad))}")
    signers = _signers(key, passphrase_env, passphrase_file)
    summary = Repository(directory).sign(
        signers, now=_now(), expires=secs, force=frozenset(role or []))
    _sign_report(summary, as_json)


def _sign_report(summary: Any, as_json: bool) -> None:
    if as_json:
        _print_json(summary.to_dict())
        return
    v = summary.versions
    bins = {k: n for k, n in v.items() if k.startswith("bins-")}
    parts = [f"{r} v{v[r]}" for r in ("root", "targets", "snapshot", "timestamp") if r in v]
    if bins:
        parts.append(f"{len(bins)} bin(s)")
    sys.stdout.write(
        f"signed: {', '.join(parts)}; {summary.projects_changed} project(s) changed; "
        f"{summary.files} file(s), {summary.bytes} bytes written\n"
    )


@repo_app.command("check")
@handled
def repo_check(
    directory: Annotated[Path, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the whole tree as a client would; exit 3 on any problem."""
    from repotool.publish.check import check_repository

    report = check_repository(directory, now=_now())
    if as_json:
        _print_json(report.to_dict())
    else:
        for w in report.warnings:
            _err(f"warning: {w}")
        for p in report.problems:
            _out(f"problem: {p}")
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
    from repotool.publish.workspace import Repository

    doc = Repository(directory).describe_keys()
    if as_json:
        _print_json(doc)
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
    for w in doc["warnings"]:
        _err(f"warning: {w}")


@repo_app.command("rotate")
@handled
def repo_rotate(
    directory: Annotated[Path, typer.Argument()],
    role: Annotated[list[str], typer.Option(
        "--role", help="root, targets (with its bins) or online (snapshot and timestamp); "
        "repeatable: one new root changes them all.")],
    key: Annotated[list[Path], typer.Option("--key", help="Private keys signing the new root.")],
    add: Annotated[list[Path] | None, typer.Option("--add", help="Public key to add.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Fingerprint to remove.")
                      ] = None,
    threshold: Annotated[int | None, typer.Option("--threshold", min=1)] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Lifetime of the new root, e.g. 52w (at most 3650d).")] = None,
    passphrase_env: PassEnv = None,
    passphrase_file: PassFile = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish a new root version, signed by the old and the new root thresholds.

    '--role targets --threshold N' also raises the bins to N (they are re-signed).
    """
    from repotool import keys as keymod
    from repotool.publish.workspace import Repository

    secs = _duration(expires, "--expires")
    for fpr in remove or []:
        if not keymod.is_fingerprint(fpr):
            raise UsageError(f"--remove takes a fingerprint (64 hex digits), got {fpr!r}")
    signers = _signers(key, passphrase_env, passphrase_file)
    summary = Repository(directory).rotate(
        role, _pubkeys(add), list(remove or []), threshold, signers, now=_now(), expires=secs)
    _sign_report(summary, as_json)


@repo_app.command("serve")
@handled
def repo_serve(
    directory: Annotated[Path, typer.Argument()],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
) -> None:
    """Serve the repository over HTTP for local use (port 0 picks a free port)."""
    from repotool.publish.serve import serve_directory

    if not (directory / "metadata").is_dir():
        raise UserError(f"{str(directory)!r} holds no published repository",
                        "run 'repotool repo sign' first")
    serve_directory(directory, host, port, announce=lambda url: (
        sys.stdout.write(f"serving {directory} at {url}\n"
                         f"pip: --index-url {url}simple/\n"), sys.stdout.flush()))


# ---- sources ------------------------------------------------------------------------------


@source_app.command("add")
@handled
def source_add(
    name: Annotated[str, typer.Argument(help="A name for the source.")],
    url: Annotated[str, typer.Argument(help="Path, file://, http:// or https:// location.")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="The repository's root public key (repeatable).")] = None,
    fingerprint: Annotated[list[str] | None, typer.Option(
        "--fingerprint", help="A root key fingerprint (64 hex digits).")] = None,
    root: Annotated[Path | None, typer.Option("--root", help="A trusted root.json.")] = None,
    mirror: Annotated[list[str] | None, typer.Option("--mirror")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="This source provides only these projects, and they come only "
        "from it (glob, repeatable).")] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher wins.")] = 0,
    ca_cert: Annotated[Path | None, typer.Option("--ca-cert")] = None,
    clock_skew: Annotated[str | None, typer.Option(
        "--clock-skew", help="Tolerance when judging expiry, e.g. 5m (at most 1h).")] = None,
) -> None:
    """Add a repository and trust its root key(s) for it alone."""
    from repotool import keys as keymod
    from repotool.client import add_source
    from repotool.home import SourceConfig, normalize_pattern
    from repotool.transport import normalize_url

    given = sum(bool(x) for x in (key, fingerprint, root))
    if given != 1:
        raise UsageError("give exactly one of --key, --fingerprint or --root")
    from repotool.home import clock_skew_max

    skew = _duration(clock_skew, "--clock-skew", clock_skew_max,
                     "a skew tolerates a client clock that is off, not expired metadata; "
                     "fix the clock, or ask the publisher to re-sign") or 0
    ids = [k.keyid for k in _pubkeys(key)]
    for f in fingerprint or []:
        if not keymod.is_fingerprint(f.lower()):
            raise UsageError(f"invalid fingerprint {f!r}: expected 64 hex digits")
        ids.append(f.lower())
    if len(set(ids)) != len(ids):
        raise UsageError("the same key is given twice")
    home = _home()
    home.source_dir(name)  # validates the name
    cfg = SourceConfig(
        name=name,
        url=normalize_url(url),
        mirrors=[normalize_url(m) for m in mirror or []],
        only=[normalize_pattern(p) for p in only or []],
        priority=priority,
        clock_skew=skew,
    )
    trusted = add_source(home, cfg, key_ids=ids, root_file=root, ca_cert=ca_cert,
                         limits=_limits(), report=lambda m: _err(f"warning: {m}"))
    sys.stdout.write(f"added source {name!r}: repository {cfg.repo_name!r} at {cfg.url}\n")
    sys.stdout.write(f"trusted root keys (threshold {trusted.roles['root'].threshold}):\n")
    for k in sorted(trusted.roles["root"].keyids):
        sys.stdout.write(f"  {k}\n")
    _err("run 'repotool update' to fetch its index")


def _source_doc(home: Any, cfg: Any) -> dict[str, Any]:
    from repotool.state import load_view

    view = load_view(home, cfg)
    try:
        status = json.loads((home.source_dir(cfg.name) / "status.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        status = None
    return {
        "name": cfg.name,
        "url": cfg.url,
        "mirrors": cfg.mirrors,
        "only": cfg.only,
        "priority": cfg.priority,
        "clock_skew": cfg.clock_skew,
        "repository": cfg.repo_name,
        "root_keys": cfg.trusted_keys,
        "updated": view.updated if view else None,
        "projects": len(view.projects) if view else 0,
        "last_update": status,
    }


@source_app.command("list")
@handled
def source_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List sources in resolution order."""
    home = _home()
    docs = [_source_doc(home, c) for c in home.sources()]
    if as_json:
        _print_json(docs)
        return
    for d in docs:
        fence = f" only={','.join(d['only'])}" if d["only"] else ""
        _out(f"{d['name']}\t{d['url']}\tpriority={d['priority']}{fence}\t"
             f"{d['projects']} project(s)")


@source_app.command("show")
@handled
def source_show(
    name: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a source's settings, trusted keys and state."""
    home = _home()
    d = _source_doc(home, home.source(name))
    if as_json:
        _print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, list):
            v = ", ".join(map(str, v)) or "-"
        _out(f"{k}: {v}")


@source_app.command("remove")
@handled
def source_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove a source with its keyring, caches and state."""
    from repotool.client import remove_source

    remove_source(_home(), name)
    _err(f"removed source {name!r}")


# ---- update, clean, queries ------------------------------------------------------------


@app.command("update")
@handled
def update(
    names: Annotated[list[str] | None, typer.Argument(help="Sources (default: all).")] = None,
    allow_name_change: Annotated[bool, typer.Option(
        "--allow-name-change", help="Accept a repository that changed its name.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fetch and verify the signed index of every source (or those named)."""
    from repotool.client import update as do_update

    home = _home()
    if not names and not home.sources():
        raise UserError("no sources", "add one with 'repotool source add NAME URL --key PUB'")
    results = do_update(home, names, now=_now(), limits=_limits(),
                        allow_name_change=allow_name_change)
    code = print_update(results, as_json)
    if code:
        raise typer.Exit(code)


@app.command("clean")
@handled
def clean(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Empty the metadata and file caches (keyrings stay)."""
    from repotool.client import clean as do_clean

    home = _home()
    for n in names or [c.name for c in home.sources()]:
        do_clean(home, n)
        _err(f"cleaned {n}")


@app.command("list")
@handled
def list_(
    source: Annotated[str | None, typer.Option("--source")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List projects from local verified state."""
    from repotool.queries import Views, list_projects

    rows = list_projects(Views(_home(), source, now=_now(), warn=_warn))
    print_rows(rows, as_json)


@app.command("search")
@handled
def search(
    text: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search project names and summaries (case-insensitive)."""
    from repotool.queries import Views
    from repotool.queries import search as do_search

    print_rows(do_search(Views(_home(), now=_now(), warn=_warn), text), as_json)


@app.command("show")
@handled
def show(
    project: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Versions, files, dependencies and the source a project resolves to."""
    from repotool.queries import Views
    from repotool.queries import show as do_show

    print_show(do_show(Views(_home(), now=_now(), warn=_warn), project), as_json)


@app.command("download")
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
    from repotool.queries import download as do_download
    from repotool.targets import target

    chosen_for = target(python, platforms=platforms or [], python_version=python_version)
    done = do_download(_home(), requirements, dest, deps=deps, limits=_limits(),
                       report=lambda msg: _err(f"warning: {msg}"), target=chosen_for,
                       pre=pre)
    if as_json:
        _print_json(done)
        return
    for d in done:
        _out(f"{d['path']}  sha256:{d['sha256']}  from {d['source']}")


@app.command("verify")
@handled
def verify(
    files: Annotated[list[Path], typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Say which trusted source vouches for each file; exit 3 if any is unvouched."""
    from repotool.queries import verify_files

    items = verify_files(_home(), files, now=_now())
    if as_json:
        _print_json(items)
    else:
        for it in items:
            if it["vouched_by"]:
                by = ", ".join(f"{v['source']} ({v['project']}=={v['version']})"
                               for v in it["vouched_by"])
                _out(f"OK  {it['file']}: vouched for by {by}")
            else:
                _out(f"BAD {it['file']}: {it['reason']}")
    if any(not it["vouched_by"] for it in items):
        raise typer.Exit(3)


# ---- install, lock, proxy (pip through the verified index) -----------------------------


def _echo(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


Requirements = Annotated[list[str] | None, typer.Argument(
    help="Requirements, e.g. demo-pkg==1.0 or 'demo-pkg[extra]>=1'.", show_default=False)]
RequirementFiles = Annotated[list[Path] | None, typer.Option(
    "-r", "--requirement", help="Read requirements from this file (repeatable); options "
    "other than -r and --hash are refused.", show_default=False)]
PythonOpt = Annotated[Path | None, typer.Option(
    "--python", help="Interpreter whose environment pip installs into (default: the one "
    "running repotool).", show_default=False)]


def _install_problems(outcome: Any) -> None:
    """Report what the proxy refused and what pip did on its own, on stderr."""
    failed = outcome.pip_exit != 0
    for w in outcome.warnings:
        _err(f"warning: {w}")
    for p in outcome.problems:
        if p.kind == "file":
            _err(f"repotool: error: refused {p.subject} from source {p.source!r}: {p.message}")
            _err("  hint: pip received none of its bytes; run 'repotool update' or tell the "
                 "source's publisher")
        elif failed or p.exit_code == 3:
            _err(f"repotool: {'error' if failed else 'warning'}: {p.message}")
            if p.hint and failed:
                _err(f"  hint: {p.hint}")
    if dropped := sum(outcome.problems_dropped.values()):
        _err(f"repotool: {'error' if failed else 'warning'}: {dropped} more refusal(s) of "
             "the proxy not shown")
    for i in outcome.unverified:
        _err(f"repotool: error: pip took {i.project} {i.version} from {i.url!r}, which is "
             "not a file the verified proxy served")
    if failed and not outcome.problems and not outcome.unverified:
        _err(f"repotool: error: pip failed (exit status {outcome.pip_exit}); see its output "
             "above")


def _install_summary(outcome: Any) -> None:
    def w(text: str) -> None:
        sys.stdout.write(safe_lines(text))

    for name, source, reason in outcome.resolutions:
        w(f"{name}: resolves to {source or 'nothing'} ({reason})\n")
    verb = "would install" if outcome.dry_run else "installed"
    if outcome.installed is None:  # pip failed, or is too old for --report
        label = "served" if outcome.pip_exit == 0 else "verified, not installed:"
        for s in outcome.served:
            w(f"{label} {s.project} {s.version} from {s.source}: {s.filename} "
              f"sha256:{s.sha256}\n")
        return
    used = set()
    for i in outcome.installed:
        if i.served is not None:
            s = i.served
            used.add((s.project, s.filename))
            w(f"{verb} {s.project} {s.version} from {s.source}: {s.filename} "
              f"sha256:{s.sha256}\n")
    for s in outcome.served:
        if (s.project, s.filename) not in used:
            w(f"verified, not installed: {s.project} {s.version} from {s.source}: "
              f"{s.filename} sha256:{s.sha256}\n")
    if not outcome.installed and outcome.pip_exit == 0:
        w("nothing to install: the requirements are already satisfied\n")


@app.command("install")
@handled
def install(
    requirements: Requirements = None,
    requirement_file: RequirementFiles = None,
    python: PythonOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Resolve and say what would be installed, from which source and "
        "why; install nothing.")] = False,
    constraint: Annotated[list[Path] | None, typer.Option(
        "-c", "--constraint", help="Constrain versions with this file (repeatable; re-read "
        "like -r files: names, specifiers, markers, --hash).", show_default=False)] = None,
    only_binary: Annotated[list[str] | None, typer.Option(
        "--only-binary", help="Wheels only: :all:, :none: or NAME,NAME (passed to pip).",
        show_default=False)] = None,
    no_deps: Annotated[bool, typer.Option("--no-deps", help="Install no dependencies.")
                       ] = False,
    upgrade: Annotated[bool, typer.Option("-U", "--upgrade", help="Upgrade what is "
                                          "already installed.")] = False,
    pre: Annotated[bool, typer.Option("--pre", help="Allow pre-releases.")] = False,
) -> None:
    """Install with pip through the verified index: pip never receives unverified bytes."""
    from repotool.install import PipOptions
    from repotool.install import install as do_install

    opts = PipOptions(tuple(constraint or ()), tuple(only_binary or ()), no_deps, upgrade, pre)
    outcome = do_install(_home(), list(requirements or []), list(requirement_file or []),
                         python=python, limits=_limits(), dry_run=dry_run, echo=_echo,
                         options=opts)
    _install_summary(outcome)
    _install_problems(outcome)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command("lock")
@handled
def lock(
    requirements: Requirements = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="File to write ('-' for stdout; default: stdout, or "
        "pylock.toml with --format pylock).", show_default=False)] = None,
    requirement_file: RequirementFiles = None,
    python: PythonOpt = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="requirements (name==version --hash lines) or pylock (PEP 751 "
        "pylock.toml).")] = "requirements",
) -> None:
    """Resolve with pip through the verified index and write name==version --hash lines."""
    from repotool.lock import lock as do_lock
    from repotool.lock import render
    from repotool.pylock import is_pylock_name, render_pylock
    from repotool.storage import atomic_write

    if fmt not in ("requirements", "pylock"):
        raise UsageError(f"unknown --format {fmt!r}", "use requirements or pylock")
    if output is None:
        output = Path("pylock.toml" if fmt == "pylock" else "-")
    if fmt == "pylock" and str(output) != "-" and not is_pylock_name(output.name):
        raise UsageError(f"{str(output)!r}: a PEP 751 lock file is named pylock.toml or "
                         "pylock.NAME.toml", "installers find it by that name")
    out = do_lock(_home(), list(requirements or []), list(requirement_file or []),
                  python=python, limits=_limits(), echo=_echo)
    _install_problems(out.run)
    if out.exit_code:
        raise typer.Exit(out.exit_code)
    text = (render_pylock(out.entries, out.run.python) if fmt == "pylock"
            else render(out.entries, out.run.python))
    if str(output) == "-":
        sys.stdout.write(text)
        return
    atomic_write(output, text.encode())
    for e in out.entries:
        sys.stdout.write(f"{e.project}=={e.version} from {e.source} "
                         f"({len(e.hashes)} hash(es))\n")
    how = (f"uv pip install -r {output}" if fmt == "pylock"
           else f"repotool install -r {output}")
    _err(f"wrote {output}; install with '{how}'")


@app.command("proxy")
@handled
def proxy(
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="0 picks a free port.")] = 8141,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; beyond loopback (e.g. 0.0.0.0) only when "
        "asked: it serves the verified view to the network.")] = "127.0.0.1",
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", help="Also answer requests for this Host name (repeatable), e.g. "
        "a LAN DNS name; others are refused against DNS rebinding.",
        show_default=False)] = None,
) -> None:
    """Serve the verified view of all sources as a PEP 503/691 index for pip, uv, poetry."""
    import signal
    import threading

    from repotool.proxy import RunningProxy, VerifiedIndex, is_loopback

    home = _home()
    if not home.sources():
        raise UserError("no sources", "add one with 'repotool source add NAME URL --key PUB'")
    index = VerifiedIndex(home, _limits(), live=True, log=lambda m: _echo(safe(m) + "\n"))
    try:
        server = RunningProxy(index, host, port, tuple(allow_host or ()))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if not is_loopback(host):
        _err(f"warning: listening on {host}, beyond loopback: anyone who can reach "
             f"{server.url} can list and download every project of your sources")
        _err(f"warning: answering Host names: {server.hosts.describe()} "
             "(add a DNS name with --allow-host NAME)")

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if main_thread else None
    try:  # SIGINT or SIGTERM from here on is a clean stop (exit 0)
        sys.stdout.write(f"serving the verified index of {len(home.sources())} source(s) "
                         f"at {server.url}\npip: --index-url {server.index_url}\n")
        sys.stdout.flush()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    _err("repotool proxy stopped")


def main() -> None:
    try:
        app(prog_name="repotool")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away before our last write
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
