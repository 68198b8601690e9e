"""Requirements for pip, re-parsed: only ``NAME[extras] SPEC ; marker`` lines with
``--hash`` options pass; options in requirement files (``--index-url``,
``--find-links``, ``-e``, …) and direct URLs are refused, so nothing can add a location
behind the verified proxy. Nested ``-r`` files are followed, up to a bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repotool.client.queries import parse_requirement
from repotool.errors import UsageError, UserError

__all__ = ["PipOptions", "requirement_lines"]

_HASH = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")


_COMMENT = re.compile(r"(^|\s+)#.*$")


_requirement_files_max = 100  # nested -r files followed, against include loops


def requirement_lines(args: list[str], files: list[Path]) -> list[str]:
    """Requirements from arguments and requirement files, re-rendered safely.

    Raises:
        UsageError: a malformed requirement, a direct URL or path, or an option other
            than ``-r FILE`` / ``--hash`` in a requirements file.
        UserError: a requirements file cannot be read.
    """
    out = [_render(a, None, []) for a in args]
    seen: set[Path] = set()
    for f in files:
        out.extend(_file_lines(f, seen))
    if not out:
        raise UsageError("nothing to install", "name requirements or give -r FILE")
    return out


def _render(text: str, where: str | None, hashes: list[str]) -> str:
    prefix = f"{where}: " if where else ""
    try:
        req = parse_requirement(text)
    except UsageError as e:
        raise UsageError(prefix + e.message, e.hint) from None
    if req.url:
        raise UsageError(
            f"{prefix}direct URL requirement {text!r} bypasses the signed indexes",
            "publish the file in a repository and name the project instead",
        )
    return " ".join([str(req), *(f"--hash={h}" for h in hashes)])


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = _COMMENT.sub("", raw)
        if not buf:
            start = n
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(x.strip() for x in buf).strip()
        buf = []
        if joined:
            yield start, joined
    if buf and (joined := " ".join(x.strip() for x in buf).strip()):
        yield start, joined


def _file_lines(path: Path, seen: set[Path]) -> list[str]:
    if len(seen) >= _requirement_files_max:
        raise UsageError(f"more than {_requirement_files_max} nested requirements files")
    key = path.resolve()
    if key in seen:
        return []
    seen.add(key)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UserError(f"cannot read requirements file {str(path)!r}: {reason}") from None
    out: list[str] = []
    for n, line in _logical_lines(text):
        where = f"{path}:{n}"
        tokens = line.split()
        if tokens[0] in ("-r", "--requirement") or tokens[0].startswith(
                ("-r", "--requirement=")):
            target = _option_value(tokens, where)
            nested = Path(target)
            out.extend(_file_lines(nested if nested.is_absolute() else path.parent / nested,
                                   seen))
            continue
        if tokens[0].startswith("-"):
            raise UsageError(
                f"{where}: option {tokens[0]!r} is not allowed in requirements for "
                "'repotool install'",
                "repotool chooses the index (only verified files); keep NAME SPEC, "
                "markers, --hash and -r FILE",
            )
        # As pip does: the requirement runs up to the first token that is an option.
        first_opt = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        spec, opts = " ".join(tokens[:first_opt]), tokens[first_opt:]
        hashes: list[str] = []
        i = 0
        while i < len(opts):
            opt = opts[i]
            if opt == "--hash" and i + 1 < len(opts):
                value, i = opts[i + 1], i + 2
            elif opt.startswith("--hash="):
                value, i = opt.split("=", 1)[1], i + 1
            else:
                raise UsageError(f"{where}: option {opt!r} is not allowed here",
                                 "only --hash=ALGORITHM:DIGEST may follow a requirement")
            if not _HASH.match(value):
                raise UsageError(f"{where}: malformed hash {value!r}")
            hashes.append(value.lower())
        out.append(_render(spec, where, hashes))
    return out


def _option_value(tokens: list[str], where: str) -> str:
    first = tokens[0]
    if first in ("-r", "--requirement"):
        if len(tokens) != 2:
            raise UsageError(f"{where}: {first} takes one file name")
        return tokens[1]
    value = first.split("=", 1)[1] if first.startswith("--") else first[2:]
    if not value or len(tokens) != 1:
        raise UsageError(f"{where}: {first!r} takes one file name")
    return value


@dataclass(frozen=True)
class PipOptions:
    """The pip options ``install`` passes through (SPEC §6.6). Constraints files are
    re-parsed like requirements files (names, specifiers, markers, hashes; no extras,
    as pip's resolver requires) and handed to pip sanitized."""

    constraint_files: tuple[Path, ...] = ()
    only_binary: tuple[str, ...] = ()  # ":all:", ":none:" or comma-separated names
    no_deps: bool = False
    upgrade: bool = False
    pre: bool = False

    def constraint_lines(self) -> list[str]:
        """Raises: UsageError, UserError: as ``requirement_lines``; extras refused."""
        seen: set[Path] = set()
        out: list[str] = []
        for f in self.constraint_files:
            for line in _file_lines(f, seen):
                if parse_requirement(line.split(" --hash=")[0]).extras:
                    raise UsageError(f"{f}: constraint {line!r} names extras",
                                     "constraints take a name, a specifier and markers")
                out.append(line)
        return out

    def args(self, constraints: Path | None) -> list[str]:
        """pip's options; ``constraints`` is the sanitized constraints file."""
        out = ["-c", str(constraints)] if constraints is not None else []
        for value in self.only_binary:
            names = value.split(",")
            if value not in (":all:", ":none:") and not all(
                    re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) for n in names):
                raise UsageError(f"--only-binary {value!r}: give :all:, :none: or project "
                                 "names separated by commas")
            out += ["--only-binary", value]
        return out + [flag for on, flag in ((self.no_deps, "--no-deps"),
                                            (self.upgrade, "--upgrade"),
                                            (self.pre, "--pre")) if on]
