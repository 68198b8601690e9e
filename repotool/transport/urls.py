"""Repository locations: a path, ``file://``, ``http://`` or ``https://`` text → one
normal URL ending in ``/``, or a usage error. Pure text handling, no network, so the
CLI and the client's configuration check it without importing the fetcher."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from repotool.errors import UsageError

__all__ = ["normalize_url"]


def normalize_url(text: str) -> str:
    """A path, ``file://``, ``http://`` or ``https://`` location → a URL ending in ``/``.

    Whatever the text (it comes from the command line or a hand-edited config), the
    result is a URL that ``normalize_url`` maps to itself, or a ``UsageError``.

    Raises:
        UsageError: whitespace or unprintable characters, any other scheme, a URL that
            does not parse (e.g. ``http://[::1``), a bad host or port, credentials, a
            query or fragment, or a ``file:`` path that is not UTF-8 or holds NUL.
        UserError: a local path that cannot be resolved (e.g. a symlink loop).
    """
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise UsageError(
            f"invalid repository location {text!r}: it is empty or has whitespace or "
            "unprintable characters"
        )
    try:
        parsed = urllib.parse.urlsplit(text)
        if parsed.scheme in ("http", "https"):
            _ = parsed.port
    except ValueError as e:  # "Invalid IPv6 URL", a bad bracketed host, a bad port
        raise UsageError(f"invalid URL {text!r}: {e}") from None
    if parsed.scheme in ("http", "https"):
        host = parsed.hostname
        if not host:
            raise UsageError(f"invalid URL {text!r}: no host")
        if parsed.username is not None or parsed.password is not None:
            raise UsageError(f"URL {text!r} carries credentials; repotool refuses them")
        if parsed.query or parsed.fragment or text.endswith(("?", "#")):
            raise UsageError(f"URL {text!r} has a query or fragment")
        import re

        # urlsplit ignores what follows "]" ("http://[::1]x/") and lets "[]%" into names
        hostport = parsed.netloc.rpartition("@")[2]
        if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:%]+)(:[0-9]*)?", hostport):
            raise UsageError(f"invalid URL {text!r}: bad host {hostport!r}")
        if ":" not in host:  # not an IPv6 literal (urlsplit checked those)
            try:
                host.encode("idna")
            except UnicodeError:
                raise UsageError(f"invalid URL {text!r}: bad host name {host!r}") from None
        url = text
    elif parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"file URL {text!r} names a host")
        if parsed.query or parsed.fragment or text.endswith(("?", "#")):
            raise UsageError(f"file URL {text!r} has a query or fragment",
                             "percent-encode '?' and '#' in a file name")
        try:
            path = urllib.parse.unquote_to_bytes(parsed.path).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"file URL {text!r}: the path is not UTF-8") from None
        if "\x00" in path:
            raise UsageError(f"file URL {text!r}: the path holds a NUL byte")
        if not path.startswith("/"):  # "file:a" is no location; "file://a/" names a host
            raise UsageError(f"file URL {text!r}: the path is not absolute",
                             "write file:///absolute/path, or give the path itself")
        url = "file://" + urllib.parse.quote(path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        try:
            p = Path(text).expanduser()
        except RuntimeError:  # "~nobody/x": no such user
            raise UsageError(f"invalid repository location {text!r}: unknown home "
                             "directory") from None
        try:
            url = p.resolve().as_uri()
        except (OSError, RuntimeError) as e:  # e.g. a symlink loop
            from repotool.errors import UserError

            raise UserError(f"cannot resolve the path {text!r}: {e}") from None
    else:
        raise UsageError(
            f"unsupported URL scheme {parsed.scheme!r} in {text!r}",
            "use a path, file://, http:// or https://",
        )
    return url if url.endswith("/") else url + "/"
