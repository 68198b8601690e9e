"""Text and JSON output of the query commands, shared by the CLI and its fast path."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["print_json", "print_rows", "print_show", "print_update"]


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    out = [f"{r['project']}\t{r['version']}\t{r['source']}\t{r['summary']}" for r in rows]
    sys.stdout.write("".join(line + "\n" for line in out))


def print_show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(doc)
        return
    res = doc["resolved"]
    w = sys.stdout.write
    w(f"{doc['project']}: resolves to {res['source'] or 'nothing'} ({res['reason']})\n")
    for s in doc["sources"]:
        w(f"source {s['source']}: {s['summary']}\n")
        for v in s["versions"]:
            w(f"  {v['version']}\n")
            for f in v["files"]:
                y = "" if f["yanked"] is False else f"  YANKED {f['yanked'] or ''}".rstrip()
                rp = f"  requires-python {f['requires_python']}" if f["requires_python"] else ""
                w(f"    {f['filename']}  {f['size']} bytes  sha256:{f['sha256']}{rp}{y}\n")
                for d in f["requires_dist"]:
                    w(f"      depends: {d}\n")


def print_update(results: list[Any], as_json: bool) -> int:
    """One line per source (stdout), warnings and errors (stderr); returns the exit code."""
    err = sys.stderr.write
    if as_json:
        print_json([r.to_dict() for r in results])
    for r in results:
        if r.ok and not as_json:
            for f in r.failures:
                err(f"warning: {r.source}: location failed, next one used: {f}\n")
            state = "updated" if r.changed else "unchanged"
            sys.stdout.write(
                f"{r.source}: {state}, timestamp v{r.versions.get('timestamp')}, "
                f"{r.projects} project(s); fetched {r.files_fetched} file(s), "
                f"{r.bytes_fetched} bytes from {r.mirror}\n")
        elif not r.ok:
            err(f"repotool: error: {r.error}\n")
            if r.hint:
                err(f"  hint: {r.hint}\n")
    return max((r.exit_code for r in results), default=0)
