"""The exception hierarchy and the exit codes the CLI maps it to (SPEC §2).

    RepotoolError              base: a message plus a one-line hint
    ├── VerificationError      exit 3: signatures, thresholds, hashes, rollback, expiry, scope
    │   └── FormatError        malformed remote bytes are a refusal too
    ├── DownloadError          exit 1: unreachable, HTTP status, timeout (after all mirrors)
    └── UserError              exit 1: bad local input, unknown source, bad key file
        └── UsageError         exit 2: malformed option values (durations, requirements)
"""

from __future__ import annotations

__all__ = [
    "DownloadError",
    "FormatError",
    "RepotoolError",
    "UsageError",
    "UserError",
    "VerificationError",
    "debug_enabled",
    "internal_error_line",
]


class RepotoolError(Exception):
    """Base of every error repotool reports to its user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class VerificationError(RepotoolError):
    """Bytes or metadata were refused: exit 3."""

    exit_code = 3


class FormatError(VerificationError):
    """Remote bytes that do not parse as what they claim to be."""


class DownloadError(RepotoolError):
    """Transport failed (after trying every mirror)."""

    exit_code = 1


class UserError(RepotoolError):
    """Bad local input: a missing or malformed file, an unknown source, a wrong passphrase."""

    exit_code = 1


class UsageError(UserError):
    """A malformed option value: a duration, a requirement string, a URL scheme."""

    exit_code = 2


def debug_enabled() -> bool:
    """``REPOTOOL_DEBUG=1``: let an unexpected exception show its traceback."""
    import os

    return os.environ.get("REPOTOOL_DEBUG", "") not in ("", "0")


def internal_error_line(e: BaseException) -> str:
    """One line for an exception that is a bug of repotool's, not an error it reports:
    no traceback (SPEC §2), but nothing hidden either — it says it is a bug."""
    first = (str(e).splitlines() or [""])[0][:200]
    return (f"repotool: internal error: {type(e).__name__}: {first}; please report it "
            "(REPOTOOL_DEBUG=1 shows the traceback)")
