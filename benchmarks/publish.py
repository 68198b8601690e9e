"""Publish benchmark: full build vs one incremental ``repo add`` + ``repo sign``.

SPEC §5: ``repo add`` of 1 file + ``repo sign`` on a 100,000-file repository costs
<= 5% of building it from scratch and does not grow with the repository (report the
bytes rewritten).

For each size (``--files N --projects P``, repeatable, paired in order):

1. ``N`` real tiny wheels in ``P`` projects (see ``common.write_dists``; their
   generation is timed separately and is not part of any figure);
2. full build: ``repotool repo add REPO dist/`` (one command for every file) and
   ``repotool repo sign REPO --key K --json``, each a child process through
   anchors' launcher (wall seconds, peak RSS);
3. incremental: on a hard-link clone of the built repository (so the built one stays
   pristine for ``update.py``; every repotool write is a rename, never an in-place
   edit), ``--repeat`` times: write ONE new wheel, ``repo add`` it, ``repo sign``;
   the bytes and files ``sign --json`` reports as written are the bytes rewritten.
   Two kinds of new file: ``version`` -- a new version of an existing project (the
   common case) and ``project`` -- a new project (the root simple pages, which
   list every project, are rewritten too).

Prints a table; ``--json`` also writes everything to ``WORKDIR/publish.json``.

Usage::

    /work/venv/bin/python benchmarks/publish.py --files 10000 --projects 1000
    /work/venv/bin/python benchmarks/publish.py --files 10000 --projects 1000 \\
        --files 100000 --projects 10000 --workdir /tmp/repotool-bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import common
from common import log, median

BUDGET_RATIO = 0.05


def _incremental(built: common.Built, workdir: Path, kind: str, repeat: int) -> dict[str, Any]:
    clone = workdir / f"incr-{kind}"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["cp", "-al", built.root, str(clone)], check=True)
    runs = []
    for r in range(repeat):
        new = workdir / f"new-{kind}-{r}"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
        if kind == "version":  # an existing project, a version nobody has
            p, ver = (r * 7919) % built.projects, f"2.{r}"
        else:  # a project nobody has
            p, ver = built.projects + r, "1.0"
        whl = new / common.wheel_filename(p, ver)
        whl.write_bytes(common.wheel_bytes(p, ver, built.projects))
        add = common.measured("repo", "add", clone, whl)
        sign = common.measured("repo", "sign", clone, "--key", built.key, "--json")
        summary = json.loads(sign.stdout)
        runs.append({
            "add_s": add.seconds, "sign_s": sign.seconds, "total_s": add.seconds + sign.seconds,
            "bytes": summary["bytes"], "files": summary["files"],
            "roles": len(summary["versions"]), "peak_rss_kib": max(add.peak_rss_kib,
                                                                   sign.peak_rss_kib),
        })
        log(f"{built.files} files, new {kind} #{r}: add {add.seconds:.3f}s + sign "
            f"{sign.seconds:.3f}s, {summary['files']} files / {summary['bytes']} bytes written")
        shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(clone, ignore_errors=True)
    return {
        "runs": runs,
        "add_s": median([x["add_s"] for x in runs]),
        "sign_s": median([x["sign_s"] for x in runs]),
        "total_s": median([x["total_s"] for x in runs]),
        "bytes": int(median([x["bytes"] for x in runs])),
        "files": int(median([x["files"] for x in runs])),
        "peak_rss_kib": max(x["peak_rss_kib"] for x in runs),
    }


def run_size(workdir: Path, files: int, projects: int, repeat: int, reuse: bool) -> dict[str, Any]:
    sdir = workdir / f"repotool-{files}"
    built = common.build_repository(sdir, files, projects, reuse=reuse)
    res: dict[str, Any] = {
        "files": files,
        "projects": projects,
        "generate_s": built.gen_seconds,
        "full": {
            "add_s": built.add["seconds"],
            "sign_s": built.sign["seconds"],
            "total_s": built.full_seconds,
            "files_written": built.sign["summary"]["files"],
            "bytes_written": built.sign["summary"]["bytes"],
            "peak_rss_kib": max(built.add["peak_rss_kib"], built.sign["peak_rss_kib"]),
        },
    }
    for kind in ("version", "project"):
        inc = _incremental(built, sdir, kind, repeat)
        inc["ratio"] = inc["total_s"] / built.full_seconds
        res[f"incremental_{kind}"] = inc
    return res


def _print(results: list[dict[str, Any]], load: tuple[str, str]) -> None:
    w = sys.stdout.write
    w(f"\nload average before/after: {load[0]} / {load[1]} (2 cores, shared machine)\n")
    w("\n| files / projects | step | add s | sign s | total s | files written | "
      "bytes written | peak RSS MiB | ratio to full (add + sign) | ratio to full sign |\n")
    w("|---|---|---|---|---|---|---|---|---|---|\n")
    for r in results:
        f = r["full"]
        size = f"{r['files']} / {r['projects']}"
        w(f"| {size} | full build | {f['add_s']:.2f} | {f['sign_s']:.2f} | {f['total_s']:.2f} | "
          f"{f['files_written']} | {f['bytes_written']} | {f['peak_rss_kib'] // 1024} | 1 | |\n")
        for kind, label in (("version", "+1 file, existing project"),
                            ("project", "+1 file, new project")):
            i = r[f"incremental_{kind}"]
            ok = "ok" if i["ratio"] <= BUDGET_RATIO else "OVER"
            w(f"| {size} | {label} (median of {len(i['runs'])}) | {i['add_s']:.3f} | "
              f"{i['sign_s']:.3f} | {i['total_s']:.3f} | {i['files']} | {i['bytes']} | "
              f"{i['peak_rss_kib'] // 1024} | {i['ratio']:.2%} (budget 5%: {ok}) | "
              f"{i['total_s'] / f['sign_s']:.2%} |\n")
        w(f"| {size} | (wheel generation, not counted) | | | {r['generate_s']:.2f} | | | | | |\n")
    if len(results) > 1:
        a, b = results[0], results[-1]
        w(f"\ngrowth {a['files']} -> {b['files']} files "
          f"(x{b['files'] / a['files']:g} repository):\n")
        for kind in ("version", "project"):
            ia, ib = a[f"incremental_{kind}"], b[f"incremental_{kind}"]
            w(f"  new {kind}: time x{ib['total_s'] / ia['total_s']:.2f} "
              f"({ia['total_s']:.3f}s -> {ib['total_s']:.3f}s), bytes rewritten "
              f"x{ib['bytes'] / ia['bytes']:.2f} ({ia['bytes']} -> {ib['bytes']})\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, action="append", help="repeatable (default 10000)")
    ap.add_argument("--projects", type=int, action="append", help="one per --files")
    ap.add_argument("--repeat", type=int, default=5, help="incremental repeats per kind")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/repotool-bench"))
    ap.add_argument("--rebuild", action="store_true", help="do not reuse a cached build")
    ap.add_argument("--report", action="store_true",
                    help="only print the table of WORKDIR/publish.json")
    args = ap.parse_args(argv)
    if args.report:
        doc = json.loads((args.workdir / "publish.json").read_text())
        _print(sorted(doc.values(), key=lambda r: r["files"]), ("?", "?"))
        return 0
    files = args.files or [10000]
    projects = args.projects or [max(1, n // 10) for n in files]
    if len(projects) != len(files):
        ap.error("give one --projects per --files")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    load0 = common.uptime()
    results = [run_size(workdir, n, p, args.repeat, not args.rebuild)
               for n, p in zip(files, projects, strict=True)]
    load1 = common.uptime()
    out = workdir / "publish.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update({str(r["files"]): r for r in results})
    out.write_text(json.dumps(previous, indent=1))
    _print(sorted(previous.values(), key=lambda r: r["files"]), (load0, load1))
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
