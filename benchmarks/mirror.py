"""Mirror benchmark: ``repotool mirror`` of a large repository, then a refresh after one
new file (issue 10: the refresh fetches only that file and the changed metadata).

The origin is ``common.build_repository`` (real wheels, ``repo add`` + ``repo sign``;
shared with the other benchmarks through ``--workdir``), copied with hardlinks so the
new file does not disturb the cached build, and served over http on loopback by
``common.serve_dir_nodelay`` (or read over ``file:`` with ``--transport file``). Runs,
each a child process through anchors' launcher (wall seconds, peak RSS):

* cold: ``mirror`` into an empty DEST;
* no-change: ``mirror`` again (nothing new at the origin);
* refresh: one new wheel is added to the origin and signed, then ``mirror`` again.

For each run it prints the mirror's own counts (``--json``): target files, fetched,
already present, metadata files written, bytes fetched (metadata included). The
refresh's expected figures: the new wheel, its project's shard and two project pages
(and the two project-list pages when the project is new) — 3 to 6 files — plus the
changed bins, targets, snapshot and timestamp.

Usage::

    /work/venv/bin/python benchmarks/mirror.py --files 10000 --projects 1000
    /work/venv/bin/python benchmarks/mirror.py --files 100000 --projects 10000 \\
        --workdir /tmp/repotool-bench
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common
from common import log


@contextlib.contextmanager
def _origin_url(origin: Path, transport: str) -> Iterator[str]:
    if transport == "file":
        yield origin.as_uri() + "/"
    else:
        with common.serve_dir_nodelay(origin) as url:
            yield url


def _run(home: Path, dest: Path, label: str) -> dict[str, Any]:
    stats = common.measured("mirror", "bench", dest, "--json", home=home)
    doc = json.loads(stats.stdout)
    row = {"run": label, "seconds": round(stats.seconds, 2),
           "peak_mib": stats.peak_rss_kib // 1024,
           **{k: doc.get(k) for k in ("targets", "files_fetched", "files_present", "files_hashed",
                                  "metadata_written", "bytes_fetched")}}
    log(json.dumps(row))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--projects", type=int, default=10000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/repotool-bench-mirror"))
    ap.add_argument("--transport", choices=("http", "file"), default="http")
    args = ap.parse_args()
    workdir = args.workdir.resolve()
    built = common.build_repository(workdir, args.files, args.projects)
    origin, home, dest = workdir / "mirror-origin", workdir / "mirror-home", \
        workdir / "mirror-dest"
    for d in (origin, home, dest):
        shutil.rmtree(d, ignore_errors=True)
    # publishing replaces files atomically, so hardlinked copies never change the build
    shutil.copytree(built.root, origin, copy_function=os.link)
    rows = []
    with _origin_url(origin, args.transport) as url:
        common.repotool("source", "add", "bench", url, "--key", built.pub, home=home)
        common.repotool("update", home=home)
        rows.append(_run(home, dest, "cold"))
        rows.append(_run(home, dest, "no-change"))
        new = workdir / "mirror-new"
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir()
        p, version = 0, f"9.{args.files}"  # a new version of an existing project
        whl = new / common.wheel_filename(p, version)
        whl.write_bytes(common.wheel_bytes(p, version, args.projects))
        common.repotool("repo", "add", origin, whl)
        common.repotool("repo", "sign", origin, "--key", built.key)
        rows.append(_run(home, dest, "refresh after one new file"))
    print(json.dumps({"files": args.files, "projects": args.projects,
                      "transport": args.transport, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
