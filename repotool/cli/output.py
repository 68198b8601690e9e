"""How commands talk: ``--quiet``, progress on a terminal, and ``--json`` documents.

One place for what every command group shares (``cli/common.py``'s ``err`` goes
through :func:`note`, so every group module obeys ``--quiet``):

* :func:`setup` is called once per command from the global options: it records
  ``--quiet`` and turns progress on (``repotool.progress``) only when stderr is a
  terminal and ``--quiet`` was not given;
* :func:`note` — a notice or warning on stderr, dropped under ``--quiet``; errors are
  never dropped (:func:`is_error_line`);
* :func:`say` — a human summary line on stdout (``updated …``, ``added …``), dropped
  under ``--quiet``: a quiet command that succeeds prints nothing unless it was asked
  for data (queries, ``--json``, ``lock -o -``);
* :func:`emit_json` — the one JSON document a ``--json`` command writes to stdout.
  Failures the document describes (a source that failed in ``update``, a refusal in
  ``install``) keep the document and set the exit code; an error that leaves no
  document (a usage error, no sources, a malformed file) prints nothing on stdout and
  its usual ``repotool: error:`` line on stderr, with the same exit code;
* :func:`pip_echo` — where pip's own output goes: stderr, or under ``--quiet`` held
  back and shown only if pip fails;
* :func:`install_doc`, :func:`lock_doc` — the ``--json`` shapes of ``install`` and
  ``lock`` (docs/cli.md).
"""

from __future__ import annotations

import sys
from typing import Any

from repotool import progress
from repotool.cli.render import print_json, safe

__all__ = ["OUTPUT", "emit_json", "install_doc", "is_error_line", "lock_doc", "note",
           "pip_echo", "say", "setup"]


class _Output:
    quiet = False


OUTPUT = _Output()


def setup(quiet: bool) -> None:
    OUTPUT.quiet = quiet
    progress.configure(progress.terminal_wanted(quiet))


def is_error_line(text: str) -> bool:
    return text.startswith(("repotool: error", "  hint:", "repotool: interrupted"))


def note(text: str) -> None:
    """A line on stderr; under ``--quiet`` only errors (and their hints) get through."""
    if OUTPUT.quiet and not is_error_line(text):
        return
    sys.stderr.write(text.rstrip("\n") + "\n")


def say(line: str) -> None:
    """A summary line on stdout (control characters escaped); nothing under ``--quiet``."""
    if not OUTPUT.quiet:
        sys.stdout.write(safe(line) + "\n")


def emit_json(doc: Any) -> None:
    """The one document on stdout, printed under ``--quiet`` too (render.print_json)."""
    print_json(doc)


class _PipEcho:
    """pip's output to stderr as it comes, or kept (``--quiet``) for :meth:`failed`."""

    def __init__(self) -> None:
        self.kept: list[str] = []

    def __call__(self, text: str) -> None:
        if OUTPUT.quiet:
            self.kept.append(text)
            return
        sys.stderr.write(text)
        sys.stderr.flush()

    def failed(self) -> None:
        """pip failed: show what it said, even under ``--quiet``."""
        sys.stderr.write("".join(self.kept))
        self.kept.clear()


def pip_echo() -> _PipEcho:
    return _PipEcho()


def _problem_doc(p: Any) -> dict[str, Any]:
    return {"kind": p.kind, "subject": p.subject, "message": p.message,
            "exit_code": p.exit_code, "source": p.source, "hint": p.hint}


def install_doc(outcome: Any) -> dict[str, Any]:
    """``install --json``: what was resolved, served, installed and refused."""
    return {
        "python": outcome.python,
        "dry_run": outcome.dry_run,
        "exit_code": outcome.exit_code,
        "pip_exit": outcome.pip_exit,
        "resolutions": [{"project": n, "source": s, "reason": r}
                        for n, s, r in outcome.resolutions],
        "installed": None if outcome.installed is None
        else [i.to_dict() for i in outcome.installed],
        "served": [s.to_dict() for s in outcome.served],
        "problems": [_problem_doc(p) for p in outcome.problems],
        "problems_dropped": sum(outcome.problems_dropped.values()),
        "unverified": [i.to_dict() for i in outcome.unverified],
        "warnings": list(outcome.warnings),
    }


def lock_doc(out: Any, output: str | None) -> dict[str, Any]:
    """``lock --json``: the pinned set (hashes from the signed indexes)."""
    run = install_doc(out.run)
    return {
        "python": run["python"],
        "exit_code": out.exit_code,
        "pip_exit": run["pip_exit"],
        "output": output,
        "entries": [e.to_dict() for e in out.entries],
        "problems": run["problems"],
        "problems_dropped": run["problems_dropped"],
        "unverified": run["unverified"],
        "warnings": run["warnings"],
    }

