"""pip through the verified index: ``install``, ``lock`` and ``proxy`` (repotool/pip/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repotool.cli.common import OUTPUT, echo, err, get_home, get_limits, handled, say
from repotool.cli.output import emit_json, install_doc, lock_doc, pip_echo
from repotool.cli.render import safe, safe_lines
from repotool.errors import UsageError, UserError

__all__ = ["register"]


Requirements = Annotated[list[str] | None, typer.Argument(
    help="Requirements, e.g. demo-pkg==1.0 or 'demo-pkg[extra]>=1'.", show_default=False)]


RequirementFiles = Annotated[list[Path] | None, typer.Option(
    "-r", "--requirement", help="Read requirements from this file (repeatable); options "
    "other than -r and --hash are refused.", show_default=False)]


PythonOpt = Annotated[Path | None, typer.Option(
    "--python", help="Interpreter whose environment pip installs into (default: the one "
    "running repotool).", show_default=False)]


JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (pip's "
                                       "output: stderr; lock -o -: instead of the text).")]


def _install_problems(outcome: Any, shown: Any = None) -> None:
    """Report what the proxy refused and what pip did on its own, on stderr (first pip's
    output if it failed: under --quiet ``shown``, the pip_echo, held it back)."""
    failed = outcome.pip_exit != 0
    if failed and shown is not None:
        shown.failed()
    for w in outcome.warnings:
        err(f"warning: {w}")
    for p in outcome.problems:
        if p.kind == "file":
            err(f"repotool: error: refused {p.subject} from source {p.source!r}: {p.message}")
            err("  hint: pip received none of its bytes; run 'repotool update' or tell the "
                 "source's publisher")
        elif failed or p.exit_code == 3:
            err(f"repotool: {'error' if failed else 'warning'}: {p.message}")
            if p.hint and failed:
                err(f"  hint: {p.hint}")
    if dropped := sum(outcome.problems_dropped.values()):
        err(f"repotool: {'error' if failed else 'warning'}: {dropped} more refusal(s) of "
             "the proxy not shown")
    for i in outcome.unverified:
        err(f"repotool: error: pip took {i.project} {i.version} from {i.url!r}, which is "
             "not a file the verified proxy served")
    if failed and not outcome.problems and not outcome.unverified:
        err(f"repotool: error: pip failed (exit status {outcome.pip_exit}); see its output "
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
    as_json: JsonOpt = False,
) -> None:
    """Install with pip through the verified index: pip never receives unverified bytes."""
    from repotool.pip.install import install as do_install
    from repotool.pip.requirements import PipOptions

    opts = PipOptions(tuple(constraint or ()), tuple(only_binary or ()), no_deps, upgrade, pre)
    shown = pip_echo()
    outcome = do_install(get_home(), list(requirements or []), list(requirement_file or []),
                         python=python, limits=get_limits(), dry_run=dry_run, echo=shown,
                         options=opts)
    if as_json:
        emit_json(install_doc(outcome))
    elif not OUTPUT.quiet:
        _install_summary(outcome)
    _install_problems(outcome, shown)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


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
    as_json: JsonOpt = False,
) -> None:
    """Resolve with pip through the verified index and write name==version --hash lines."""
    from repotool.pip.lock import lock as do_lock
    from repotool.pip.lock import render
    from repotool.pip.pylock import is_pylock_name, render_pylock
    from repotool.storage import atomic_write

    if fmt not in ("requirements", "pylock"):
        raise UsageError(f"unknown --format {fmt!r}", "use requirements or pylock")
    if output is None:
        output = Path("pylock.toml" if fmt == "pylock" else "-")
    if fmt == "pylock" and str(output) != "-" and not is_pylock_name(output.name):
        raise UsageError(f"{str(output)!r}: a PEP 751 lock file is named pylock.toml or "
                         "pylock.NAME.toml", "installers find it by that name")
    shown = pip_echo()
    locked = do_lock(get_home(), list(requirements or []), list(requirement_file or []),
                  python=python, limits=get_limits(), echo=shown)
    if as_json and locked.exit_code:
        emit_json(lock_doc(locked, None))
    _install_problems(locked.run, shown)
    if locked.exit_code:
        raise typer.Exit(locked.exit_code)
    text = (render_pylock(locked.entries, locked.run.python) if fmt == "pylock"
            else render(locked.entries, locked.run.python))
    if as_json:  # the file (unless -o -), then the document naming it
        if str(output) != "-":
            atomic_write(output, text.encode())
        emit_json(lock_doc(locked, None if str(output) == "-" else str(output)))
        return
    if str(output) == "-":
        sys.stdout.write(text)
        return
    atomic_write(output, text.encode())
    for e in locked.entries:
        say(f"{e.project}=={e.version} from {e.source} ({len(e.hashes)} hash(es))")
    how = (f"uv pip install -r {output}" if fmt == "pylock"
           else f"repotool install -r {output}")
    err(f"wrote {output}; install with '{how}'")


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

    from repotool.pip.hosts import is_loopback
    from repotool.pip.index import VerifiedIndex
    from repotool.pip.proxy import RunningProxy

    home = get_home()
    if not home.sources():
        raise UserError("no sources", "add one with 'repotool source add NAME URL --key PUB'")
    index = VerifiedIndex(home, get_limits(), live=True, log=lambda m: echo(safe(m) + "\n"))
    try:
        server = RunningProxy(index, host, port, tuple(allow_host or ()))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if not is_loopback(host):
        err(f"warning: listening on {host}, beyond loopback: anyone who can reach "
             f"{server.url} can list and download every project of your sources")
        err(f"warning: answering Host names: {server.hosts.describe()} "
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
    err("repotool proxy stopped")


def register(app: typer.Typer) -> None:
    """Add this module's top-level commands to ``app``."""
    app.command("install")(install)
    app.command("lock")(lock)
    app.command("proxy")(proxy)
