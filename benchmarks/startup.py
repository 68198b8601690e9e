"""Start-up benchmark: what each query command imports, and how long it takes.

SPEC §5: ``list``, ``search``, ``show`` answer from local state for a 100,000-file
source in <= 0.15 s; no command imports network or crypto code it does not use.

Against a home with one updated ``file://`` source built from ``--files`` entries
(``common.build_repository``, cached in ``--workdir``):

* ``python -X importtime -m repotool --home H CMD`` for each command: whether
  ``tuf``, ``securesystemslib``, ``cryptography``, ``requests``, ``urllib3`` (and
  the other heavy packages) are imported, the summed import time and the heaviest
  top-level imports;
* the wall time of each command (median of ``--repeat``, through anchors' launcher,
  no ``-X importtime``), next to ``python -c pass`` and ``python -c "import typer"``.

The queries (list/search/show) should import neither network nor crypto code; the
``update`` of a ``file://`` source needs tuf and crypto (verification) but no HTTP
stack.

Usage::

    /work/venv/bin/python benchmarks/startup.py --files 100000 --projects 10000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anchors
import common
from common import log, median

WATCH = ("tuf", "securesystemslib", "cryptography", "requests", "urllib3", "packaging",
         "typer", "click", "rich", "platformdirs", "http.client", "ssl", "email", "json")
NETWORK = ("requests", "urllib3", "ssl", "http.client")
CRYPTO = ("tuf", "securesystemslib", "cryptography")
QUERY_BUDGET_S = 0.15


def importtime(argv: list[str]) -> dict[str, Any]:
    """Run ``python -X importtime ...``; top-level packages imported and their times."""
    proc = subprocess.run([common.PYTHON, "-X", "importtime", *argv], capture_output=True,
                          text=True, env=common._env(), check=False)
    if proc.returncode != 0:
        raise common.BenchError(f"{argv} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:"):].split("|")
        self_us, cum_us, name = int(parts[0]), int(parts[1]), parts[2]
        rows.append((len(name) - len(name.lstrip()), name.strip(), self_us, cum_us))
    top_indent = min(r[0] for r in rows)
    top = [(n, c) for i, n, _s, c in rows if i == top_indent]
    modules = {n for _i, n, _s, _c in rows}
    packages = {n.split(".")[0] for n in modules} | {m for m in modules if m in WATCH}
    total_us = sum(c for _n, c in top)
    return {
        "modules": len(rows),
        "packages": sorted(packages),
        "watch": {w: w in packages for w in WATCH},
        "import_s": total_us / 1e6,
        "heaviest": sorted(top, key=lambda t: -t[1])[:6],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--projects", type=int, default=None, help="default: files / 10")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/repotool-bench"))
    args = ap.parse_args(argv)
    projects = args.projects or max(1, args.files // 10)
    workdir = args.workdir.resolve()
    built = common.build_repository(workdir / f"repotool-{args.files}", args.files, projects)
    home = workdir / f"startup-home-{args.files}"
    shutil.rmtree(home, ignore_errors=True)
    common.repotool("source", "add", "bench", Path(built.root).as_uri(), "--key", built.pub,
                    home=home)
    common.repotool("update", home=home)
    some = common.project_name(projects // 2)
    whl = next(Path(built.dist).iterdir())
    commands: dict[str, list[str]] = {
        "--version": ["--version"],
        "list": ["list"],
        "search": ["search", "yaml"],
        "show": ["show", some],
        "source list": ["source", "list"],
        "verify": ["verify", str(whl)],
        "update (file://, no change)": ["update"],
    }
    load0 = common.uptime()
    base = {
        "python -c pass": [common.PYTHON, "-c", "pass"],
        "python -c 'import typer'": [common.PYTHON, "-c", "import typer"],
    }
    res: dict[str, Any] = {"files": args.files, "projects": projects, "baseline": {},
                           "commands": {}}
    for label, bargv in base.items():
        secs = [anchors._run_measured(bargv, common._env())[1].seconds
                for _ in range(args.repeat)]
        res["baseline"][label] = median(secs)
    for label, cargs in commands.items():
        imp = importtime(["-m", "repotool", "--home", str(home), *cargs])
        runs = [common.measured(*cargs, home=home) for _ in range(args.repeat)]
        res["commands"][label] = {
            **imp,
            "wall_s": median([r.seconds for r in runs]),
            "peak_rss_kib": max(r.peak_rss_kib for r in runs),
        }
        log(f"{label}: {res['commands'][label]['wall_s']:.3f}s, imports {imp['import_s']:.3f}s")
    res["load"] = [load0, common.uptime()]
    (workdir / f"startup-{args.files}.json").write_text(json.dumps(res, indent=1))

    w = sys.stdout.write
    w(f"\nstart-up: source of {args.files} files / {projects} projects (file://); median of "
      f"{args.repeat}; load average {res['load'][0]} -> {res['load'][1]}\n")
    for label, s in res["baseline"].items():
        w(f"baseline {label}: {s:.3f}s\n")
    cols = ("tuf", "securesystemslib", "cryptography", "requests", "urllib3", "packaging",
            "rich")
    w("\n| command | wall s | budget | import s (-X importtime) | modules | "
      + " | ".join(cols) + " | peak RSS MiB |\n")
    w("|---" * (6 + len(cols)) + "|\n")
    for label, c in res["commands"].items():
        query = label in ("list", "search", "show")
        budget = (("met" if c["wall_s"] <= QUERY_BUDGET_S else "MISSED") + " (<= 0.15)"
                  if query else "-")
        flags = " | ".join("yes" if c["watch"][k] else "no" for k in cols)
        w(f"| repotool {label} | {c['wall_s']:.3f} | {budget} | {c['import_s']:.3f} | "
          f"{c['modules']} | {flags} | {c['peak_rss_kib'] // 1024} |\n")
    w("\nheaviest top-level imports (cumulative ms):\n")
    for label, c in res["commands"].items():
        heavy = ", ".join(f"{n} {us / 1000:.0f}" for n, us in c["heaviest"])
        w(f"  {label}: {heavy}\n")
    w("\nunneeded imports (SPEC: no command imports network or crypto code it does not use):\n")
    for label, c in res["commands"].items():
        net = [k for k in NETWORK if k in c["packages"]]
        cry = [k for k in CRYPTO if k in c["packages"]]
        # a file:// update needs crypto (verification) but no HTTP stack; every other
        # command here answers from verified local state (verify: local hashes)
        bad = net if label.startswith("update") else net + cry
        w(f"  {label}: {'none' if not bad else 'IMPORTS ' + ', '.join(bad)}\n")
    log(f"results in {workdir / f'startup-{args.files}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
