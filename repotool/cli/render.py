"""Text and JSON output of the query commands, shared by the CLI and its fast path.

Text output never writes a control character that came from a source: names,
summaries, dependencies, yanked reasons and error messages pass through ``safe``,
which shows C0 and C1 controls, ESC, DEL and Unicode bidi overrides as ``\\xNN`` /
``\\uNNNN`` escapes (a hostile summary cannot move the cursor, recolour or rewrite the
terminal, or forge a line). JSON output is exact: ``json.dumps`` escapes them itself.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

__all__ = ["print_json", "print_rows", "print_show", "print_update", "safe", "safe_lines"]

# C0 (incl. TAB, LF, CR, ESC), DEL, C1, and the bidi controls of "Trojan Source"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe(text: object) -> str:
    """``text`` for a terminal: printable Unicode kept, control characters escaped."""
    s = str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


def safe_lines(text: str) -> str:
    """As ``safe``, keeping the line breaks of a multi-line message we wrote."""
    return "\n".join(safe(line) for line in text.split("\n"))


def print_json(doc: Any) -> None:
    """The one JSON document of a ``--json`` command (cli/output.py: emit_json)."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    out = ["\t".join(safe(r[k]) for k in ("project", "version", "source", "summary"))
           for r in rows]
    sys.stdout.write("".join(line + "\n" for line in out))


def print_show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(doc)
        return
    res = doc["resolved"]
    w = sys.stdout.write
    w(f"{safe(doc['project'])}: resolves to {safe(res['source'] or 'nothing')} "
      f"({safe(res['reason'])})\n")
    for s in doc["sources"]:
        w(f"source {safe(s['source'])}: {safe(s['summary'])}\n")
        for v in s["versions"]:
            w(f"  {safe(v['version'])}\n")
            for f in v["files"]:
                y = "" if f["yanked"] is False else f"  YANKED {f['yanked'] or ''}".rstrip()
                rp = f"  requires-python {f['requires_python']}" if f["requires_python"] else ""
                w(safe(f"    {f['filename']}  {f['size']} bytes  sha256:{f['sha256']}{rp}{y}")
                  + "\n")
                for d in f["requires_dist"]:
                    w(f"      depends: {safe(d)}\n")
                if isinstance(f.get("imported_from"), dict):
                    src = f["imported_from"]
                    w(safe(f"      imported from source {src['source']} (repository "
                           f"{src['repository']!r}, root key "
                           f"{','.join(src['root_keys'])}), origin sha256:{src['sha256']}")
                      + "\n")


def print_update(results: list[Any], as_json: bool, quiet: bool = False) -> int:
    """One line per source (stdout), warnings and errors (stderr); returns the exit code.
    ``quiet`` (``--quiet``): the errors only."""
    err = sys.stderr.write
    if as_json:
        print_json([r.to_dict() for r in results])
    for r in results:
        if r.ok and not as_json and not quiet:
            for f in r.failures:
                err(safe(f"warning: {r.source}: location failed, next one used: {f}") + "\n")
            for n in getattr(r, "notices", []):
                err(safe(f"notice: {n}") + "\n")
            state = "updated" if r.changed else "unchanged"
            sys.stdout.write(safe(
                f"{r.source}: {state}, timestamp v{r.versions.get('timestamp')}, "
                f"{r.projects} project(s); fetched {r.files_fetched} file(s), "
                f"{r.bytes_fetched} bytes from {r.mirror}") + "\n")
        elif not r.ok:
            err(f"repotool: error: {safe(r.error)}\n")
            if r.hint:
                err(f"  hint: {safe(r.hint)}\n")
    return max((r.exit_code for r in results), default=0)
