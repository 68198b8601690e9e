"""Distribution file and project names: ONE rule, applied by the publisher on ``repo add``
and by the client on every index entry it reads.

A name that passes can be printed, put into a URL path segment and an HTML attribute
and used as a file name: it holds only the characters a wheel or sdist name can
legitimately hold (PEP 427/625 names, PEP 440 versions with epochs and local parts,
build and platform tags). ``#``, ``?``, quotes, ``<``, ``/``, spaces, control characters
and non-ASCII are refused, as is a leading ``.`` or ``-``. Pure: no I/O.

Example::

    parse_filename("demo_pkg-1.0-py3-none-any.whl")  # ("demo-pkg", Version("1.0"), "wheel")
    parse_filename("a\\"><script>-1.0.tar.gz")        # raises InvalidName
"""

from __future__ import annotations

import re

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

__all__ = ["InvalidName", "filename_max_length", "is_project_name", "parse_filename"]

filename_max_length = 255  # characters
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")
_PROJECT = re.compile(r"^[a-z0-9]([a-z0-9-]{0,253}[a-z0-9])?$")


class InvalidName(ValueError):
    """A file or project name outside the rule; ``hint`` says what is accepted."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def parse_filename(filename: str) -> tuple[NormalizedName, Version, str]:
    """The normalized project name, version and kind (``"wheel"``/``"sdist"``) of a
    distribution file name.

    Raises:
        InvalidName: unexpected characters or length, not a ``.whl``/``.tar.gz``/``.zip``,
            or a name ``packaging`` cannot parse.
    """
    if not _FILENAME.match(filename):
        raise InvalidName(
            f"{filename!r} is not a valid distribution filename: unexpected characters or "
            "length"
        )
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return canonicalize_name(name), version, "wheel"
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return canonicalize_name(name), version, "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename) as e:
        raise InvalidName(f"{filename!r} is not a valid distribution filename: {e}") from None
    raise InvalidName(
        f"{filename!r} is not a wheel or sdist", "repotool publishes .whl, .tar.gz and .zip files"
    )


def is_project_name(name: object) -> bool:
    """True for a normalized (PEP 503) project name: ``[a-z0-9]`` and inner ``-``."""
    return isinstance(name, str) and bool(_PROJECT.match(name)) \
        and canonicalize_name(name) == name
