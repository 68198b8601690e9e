"""What every command group shares: the global options' state, output on stdout and
stderr (control characters escaped), the mapping of errors to one or two lines and the
SPEC's exit codes (``handled``), the reference time, the home, the limits, durations,
passphrases and keys given on the command line.

Exit codes (SPEC §2): 0 success, 1 operational error, 2 usage error, 3 verification
refused. Data (and ``--json``) goes to stdout, diagnostics to stderr; no traceback is
ever printed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from repotool.cli.output import OUTPUT, note, say
from repotool.cli.render import safe, safe_lines
from repotool.errors import RepotoolError, UserError, debug_enabled, internal_error_line

__all__ = [
    "OUTPUT",
    "STATE",
    "PassEnv",
    "PassFile",
    "duration",
    "echo",
    "err",
    "get_home",
    "get_limits",
    "handled",
    "load_signers",
    "now",
    "out",
    "passphrase_source",
    "pubkeys",
    "repo_candidates",
    "report_error",
    "say",
    "warn",
]

F = TypeVar("F", bound=Callable[..., Any])


class State:
    home: Path | None = None
    timeout: float | None = None


STATE = State()


def err(msg: str) -> None:
    # messages may quote a source's text: no control character reaches the terminal;
    # under --quiet only errors pass (cli/output.py)
    note(safe_lines(msg.rstrip()))


def out(line: str) -> None:
    """One line of data on stdout, control characters escaped; printed under --quiet
    too (a summary line is ``say``)."""
    sys.stdout.write(safe(line) + "\n")


def warn(message: str) -> None:
    err(f"repotool: warning: {safe(message)}")


def report_error(e: RepotoolError) -> None:
    err(f"repotool: error: {safe(e.message)}")
    if e.hint:
        err(f"  hint: {safe(e.hint)}")


def handled(fn: F) -> F:
    """Map repotool's errors to one or two lines and the SPEC's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RepotoolError as e:
            report_error(e)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err("repotool: interrupted")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (`repotool list | head`): not an error of ours
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as e:
            err(f"repotool: error: {e.strerror or e}"
                 + (f": {e.filename!r}" if getattr(e, "filename", None) else ""))
            raise typer.Exit(1) from None
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer's own exits and usage errors
        except Exception as e:
            # a bug: one line and exit 1, never a traceback (SPEC §2) unless asked for
            if debug_enabled():
                raise
            err(internal_error_line(e))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def now() -> datetime:
    return datetime.now(UTC)


def get_home() -> Any:
    from repotool.client.locations import home_for

    return home_for(STATE.home)


def get_limits() -> Any:
    from repotool.transport.limits import Limits

    if STATE.timeout is None:
        return Limits().started()  # one time bound for the whole command
    t = STATE.timeout
    # the allowance every download gets before the rate floor applies (repotool/transport/limits.py)
    return Limits(connect_timeout=min(10.0, t), read_timeout=min(15.0, t),
                  allowance=t).started()


def duration(text: str | None, option: str, maximum: int | None = None,
              hint: str | None = None) -> int | None:
    """An option's duration in seconds (None when not given); exit 2 when malformed or
    beyond ``maximum`` (default: the 10-year cap on any lifetime)."""
    if text is None:
        return None
    from repotool.storage import duration_max, parse_duration

    return parse_duration(text, option=option, maximum=maximum or duration_max, hint=hint)


def passphrase_source(env: str | None, file: Path | None, *, confirm: bool) -> Callable[[], bytes]:
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


def pubkeys(paths: list[Path] | None) -> list[Any]:
    from repotool import keys

    return [keys.public_from_file(p) for p in paths or []]


def load_signers(specs: list[str], env: str | None, file: Path | None,
                 candidates: Callable[[], list[Any]] = list) -> list[Any]:
    """Open each private ``--key``: a file, ``env:VAR`` or a signer URI (repotool.signers);
    ``candidates`` gives the public keys a signer URI may stand for."""
    from repotool import signers

    secret = passphrase_source(env, file, confirm=False)
    return signers.open_signers(specs, secret, candidates)


def repo_candidates(directory: Path) -> Callable[[], list[Any]]:
    """The public keys of repository DIR's metadata, for matching a signer URI."""
    def get() -> list[Any]:
        from repotool.publish.ceremony import candidate_keys
        from repotool.publish.workspace import Repository

        return candidate_keys(Repository(directory))

    return get


def echo(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
