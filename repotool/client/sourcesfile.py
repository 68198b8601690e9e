"""Sources as deb822 files, one per repository, as apt's ``sources.list.d/*.sources``.

``HOME/sources.d/NAME.sources`` (system mode: ``/etc/repotool/sources.d``)::

    # corp's internal packages
    Name: corp
    URIs: https://pkgs.corp.example/
     https://mirror.corp.example/
    Signed-By: 3c59a1e0...64 hex digits (the root key fingerprints)
    Only: corp-* internal-*
    Priority: 10

``Signed-By`` holds fingerprints, or public keys embedded as PEM blocks in the
multi-line field (continuation lines start with a space), or both; ``URIs`` lists the
primary location first, then the mirrors; ``Only``, ``Priority`` and ``Clock-Skew`` are
optional. Field names are case-insensitive; ``#`` lines are comments.

The parser is strict: an unknown or repeated field, a second stanza, a control
character, a malformed value, or a name that is not the file's own is refused with one
line naming the file and the line. There is no trust on first use: the key material
must be in the file, and bootstrapping checks it against the repository's first root
exactly as ``source add --fingerprint`` does.

What ``source add``, ``update`` and ``source remove`` do with these files is in
``client/dropins.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from repotool.client.home import SourceConfig, clock_skew_max, normalize_pattern
from repotool.errors import RepotoolError, UserError
from repotool.storage import safe_name

__all__ = ["SourcesEntry", "file_max_length", "parse", "read", "render"]

file_max_length = 64 * 1024  # bytes: a handful of keys and mirrors, not a data file
_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*):(.*)")
_FIELDS = {"name": "Name", "uris": "URIs", "signed-by": "Signed-By", "only": "Only",
           "priority": "Priority", "clock-skew": "Clock-Skew"}
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_FPR = re.compile(r"[0-9a-fA-F]{64}")
_PRIORITY = re.compile(r"-?[0-9]{1,9}")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_HINT = "see examples/corp.sources and 'repotool source add --help'"


@dataclass(frozen=True)
class SourcesEntry:
    name: str
    uris: tuple[str, ...]  # normalized; primary first
    fingerprints: tuple[str, ...]  # key ids given as fingerprints (lowercase)
    keys_pem: tuple[str, ...] = ()  # embedded public keys, as PEM text
    only: tuple[str, ...] = ()
    priority: int = 0
    clock_skew: int = 0  # seconds

    def key_ids(self) -> list[str]:
        """Every key the file names: its fingerprints, then its embedded keys' ids."""
        from repotool import keys

        return [*self.fingerprints, *(keys.load_public(p.encode(), f"{self.name}.sources "
                                                       "Signed-By").keyid
                                      for p in self.keys_pem)]

    def config(self) -> SourceConfig:
        return SourceConfig(name=self.name, url=self.uris[0], mirrors=list(self.uris[1:]),
                            only=list(self.only), priority=self.priority,
                            clock_skew=self.clock_skew)


def _fail(origin: str, line: int, what: str) -> UserError:
    return UserError(f"{origin}:{line}: {what}", _HINT)


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _fields(text: str, origin: str) -> dict[str, tuple[int, list[str]]]:
    """``{field: (line, [value lines])}`` of the file's one stanza."""
    fields: dict[str, tuple[int, list[str]]] = {}
    current: str | None = None
    ended = False
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if m := _CONTROL.search(line):
            raise _fail(origin, n, f"control character U+{ord(m.group()):04X}")
        if line.startswith("#"):
            continue
        if not line.strip():
            ended = ended or bool(fields)
            current = None
            continue
        if line[0] in " \t":
            if current is None:
                raise _fail(origin, n, "a continuation line (starting with a space) "
                            "follows no field")
            piece = line.strip()
            fields[current][1].append("" if piece == "." else piece)
            continue
        if ended:
            raise _fail(origin, n, "a second stanza: one source per file")
        m = _FIELD.fullmatch(line)
        if not m:
            raise _fail(origin, n, f"expected 'Field: value', got {_short(line)}")
        key = m.group(1).lower()
        if key not in _FIELDS:
            raise _fail(origin, n, f"unknown field {m.group(1)!r} (known: "
                        f"{', '.join(_FIELDS.values())})")
        if key in fields:
            raise _fail(origin, n, f"field {_FIELDS[key]} given twice (first on line "
                        f"{fields[key][0]})")
        fields[key] = (n, [m.group(2).strip()])
        current = key
    return fields


def parse(data: bytes | str, origin: str, *, expect_name: str | None = None) -> SourcesEntry:
    """A ``.sources`` file's one source, validated; ``origin`` names it in errors.

    Raises:
        UserError: anything malformed (exit 1), as ``ORIGIN:LINE: what``.
    """
    from repotool.errors import UsageError
    from repotool.storage import parse_duration
    from repotool.transport.urls import normalize_url

    if len(data) > file_max_length:
        raise _fail(origin, 1, f"larger than {file_max_length} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail(origin, data[:e.start].count(b"\n") + 1, "not UTF-8 text") from None
    else:
        text = data
    if "\ufeff" in text[:1]:
        text = text[1:]
    fields = _fields(text, origin)
    for key in ("name", "uris", "signed-by"):
        if key not in fields:
            raise _fail(origin, max([n for n, _ in fields.values()], default=1),
                        f"field {_FIELDS[key]} is missing")

    def tokens(key: str) -> tuple[int, list[str]]:
        n, values = fields[key]
        return n, " ".join(values).split()

    n, name = tokens("name")
    if len(name) != 1 or not safe_name(name[0]):
        raise _fail(origin, n, f"invalid Name {_short(' '.join(name))}: letters, digits, "
                    "'.', '_' and '-' (64 at most), starting with a letter or digit")
    if expect_name is not None and name[0] != expect_name:
        raise _fail(origin, n, f"Name {name[0]!r} is not the file's name "
                    f"({expect_name}.sources)")
    n, raw_uris = tokens("uris")
    uris: list[str] = []
    for u in raw_uris:
        try:
            norm = normalize_url(u)
        except RepotoolError as e:
            raise _fail(origin, n, f"URIs: {e.message}") from None
        if norm in uris:
            raise _fail(origin, n, f"URIs: {_short(u)} is given twice")
        uris.append(norm)
    if not uris:
        raise _fail(origin, n, "URIs is empty: give the repository's location")
    fprs, pems = _signed_by(origin, *fields["signed-by"])
    only: list[str] = []
    if "only" in fields:
        n, pats = tokens("only")
        try:
            only = [normalize_pattern(p) for p in pats]
        except UsageError as e:
            raise _fail(origin, n, f"Only: {e.message}") from None
    priority = 0
    if "priority" in fields:
        n, p = tokens("priority")
        if len(p) != 1 or not _PRIORITY.fullmatch(p[0]):
            raise _fail(origin, n, f"Priority {_short(' '.join(p))} is not an integer")
        priority = int(p[0])
    skew = 0
    if "clock-skew" in fields:
        n, s = tokens("clock-skew")
        try:
            skew = parse_duration(" ".join(s), option="Clock-Skew", maximum=clock_skew_max)
        except RepotoolError as e:
            raise _fail(origin, n, e.message) from None
    return SourcesEntry(name[0], tuple(uris), tuple(fprs), tuple(pems), tuple(only),
                        priority, skew)


def _signed_by(origin: str, n: int, values: list[str]) -> tuple[list[str], list[str]]:
    text = "\n".join(values)
    pems: list[str] = []
    for m in _PEM.finditer(text):
        if m.group(1) != "PUBLIC KEY":
            raise _fail(origin, n, f"Signed-By holds a {m.group(1)} block; give public keys "
                        "(.pub) or fingerprints")
        pems.append(m.group(0))
    rest = _PEM.sub(" ", text).split()
    fprs: list[str] = []
    for t in rest:
        if not _FPR.fullmatch(t):
            what = "an unterminated PEM block" if "-----" in t else f"{_short(t)}"
            raise _fail(origin, n, f"Signed-By: {what} is neither a fingerprint (64 hex "
                        "digits) nor a PEM public key")
        fprs.append(t.lower())
    if not fprs and not pems:
        raise _fail(origin, n, "Signed-By is empty: the file must name the root key(s) "
                    "(there is no trust on first use)")
    if len(set(fprs)) != len(fprs) or len(set(pems)) != len(pems):
        raise _fail(origin, n, "Signed-By names the same key twice")
    for p in pems:  # a bad key is this file's error, with its line, not a later one
        from repotool import keys

        try:
            kid = keys.load_public(p.encode(), "key").keyid
        except RepotoolError as e:
            raise _fail(origin, n, f"Signed-By: {e.message}") from None
        if kid in fprs:
            raise _fail(origin, n, "Signed-By names the same key twice")
    return fprs, pems


def render(entry: SourcesEntry) -> str:
    """The file text for ``entry`` (:func:`parse` reads it back equal)."""
    def field(name: str, values: list[str]) -> list[str]:
        return [f"{name}: {values[0]}" if values else f"{name}:",
                *(f" {v}" for v in values[1:])]

    keys = [*entry.fingerprints, *(line for p in entry.keys_pem for line in p.split("\n"))]
    out = ["# A repotool source (deb822); see 'repotool source add --help'.",
           *field("Name", [entry.name]), *field("URIs", list(entry.uris)),
           *(field("Signed-By", keys) if entry.fingerprints else ["Signed-By:",
                                                                   *(f" {k}" for k in keys)])]
    if entry.only:
        out += field("Only", [" ".join(entry.only)])
    out.append(f"Priority: {entry.priority}")
    if entry.clock_skew:
        out.append(f"Clock-Skew: {entry.clock_skew}s")
    return "\n".join(out) + "\n"


def read(path: Path, *, expect_name: str | None = None) -> SourcesEntry:
    try:
        with open(path, "rb") as f:
            data = f.read(file_max_length + 1)
    except OSError as e:
        raise UserError(f"cannot read {str(path)!r}: {e.strerror}") from None
    return parse(data, str(path), expect_name=expect_name)
