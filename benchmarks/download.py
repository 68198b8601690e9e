"""Download benchmark: hashing throughput, memory, and the verified file cache.

SPEC §5: hashing streams at >= 80% of ``hashlib.sha256`` throughput, memory does
not grow with file size, and files already verified in the cache are not fetched
again.

1. ``anchors.sha256_throughput`` -- ``hashlib.sha256`` over ``--mb`` MiB in memory,
   1 MiB chunks (the ceiling).
2. ``transport.Fetcher().download_verified(url, dest, length, sha256)`` -- repotool's
   download path (stream, count, hash, write, compare) -- over ``file://`` and over
   ``http://`` (``anchors.serve_dir``, loopback) for a ``--small-mb`` and a ``--mb``
   file, each in a fresh child process through anchors' launcher: the child reports
   the seconds of the download call alone (imports excluded) and the launcher its
   peak RSS.  ``dest`` is a real file (``write``, no fsync) or ``/dev/null``.
   Two references in the same children: ``Fetcher.fetch`` alone (transport, no
   hash) and, over http, ``http.client`` with 1 MiB reads (what the Python server
   and loopback deliver at most).
   Throughput = bytes / seconds; ratio = throughput / hashlib's.  The files are
   read once beforehand, so they come from the page cache (as in 1).
3. Cache: a repository holding one wheel of ``--cli-mb`` MiB is served by a
   request-counting server; ``repotool update``, then ``repotool download`` twice
   into two directories: the second must not GET the file again (the server's log
   is the witness).  Also times the end-to-end first download.

Usage::

    /work/venv/bin/python benchmarks/download.py            # 64 and 256 MiB
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anchors
import common
from common import log, median

BUDGET_RATIO = 0.80

_CHILD = r"""
import http.client, os, sys, time, urllib.parse
import requests  # imported before the clock starts, as the CLI has by then
from repotool.transport.fetcher import Fetcher
mode, url, length, sha, dest = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
f = Fetcher()
with open(dest, "wb") as out:
    t0 = time.perf_counter()
    if mode == "verified":  # repotool's download path
        f.download_verified(url, out, length, sha)
        n = f.bytes_fetched
    elif mode == "fetch":  # the same transport, no hashing, no writing
        n = sum(len(c) for c in f.fetch(url))
    else:  # ceiling of the server + loopback: http.client, 1 MiB reads
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port)
        conn.request("GET", u.path)
        resp = conn.getresponse()
        n = 0
        while b := resp.read(1 << 20):
            n += len(b)
    dt = time.perf_counter() - t0
print(dt, n)
"""

MODES = {
    "verified": "Fetcher.download_verified (stream + sha256 + write)",
    "fetch": "Fetcher.fetch only (no hash, no write)",
    "raw": "http.client 1 MiB reads (server + loopback ceiling)",
}


def _blob(path: Path, mb: int) -> tuple[int, str]:
    """A file of ``mb`` MiB of random bytes (kept between runs); its length and sha256."""
    size = mb << 20
    if not (path.exists() and path.stat().st_size == size):
        with open(path, "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return size, h.hexdigest()


def _download_child(
    mode: str, url: str, length: int, sha: str, dest: str
) -> tuple[float, int]:
    argv = [common.PYTHON, "-c", _CHILD, mode, url, str(length), sha, dest]
    code, st = anchors._run_measured(argv, anchors._clean_env())
    if code != 0:
        raise common.BenchError(f"download child failed:\n{st.stderr}")
    seconds, fetched = st.stdout.split()
    if int(fetched) != length:
        raise common.BenchError(f"fetched {fetched} bytes, expected {length}")
    return float(seconds), st.peak_rss_kib


class _CountingHandler(anchors._QuietHandler):
    counts: dict[str, int]
    bytes_sent: dict[str, int]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.counts[path] = self.counts.get(path, 0) + 1
        super().do_GET()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        n = 0
        while buf := source.read(1 << 16):
            outputfile.write(buf)
            n += len(buf)
        path = self.path.split("?", 1)[0]
        self.bytes_sent[path] = self.bytes_sent.get(path, 0) + n


@contextlib.contextmanager
def _counting_server(root: Path) -> Iterator[tuple[str, dict[str, int], dict[str, int]]]:
    counts: dict[str, int] = {}
    sent: dict[str, int] = {}
    handler_cls = type("H", (_CountingHandler,), {"counts": counts, "bytes_sent": sent})
    handler = functools.partial(handler_cls, directory=str(root))
    server = anchors._Server(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", counts, sent
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=5)


def throughput(workdir: Path, sizes: list[int], repeat: int) -> dict[str, Any]:
    blobs = workdir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    with anchors.serve_dir(blobs) as base:
        for mb in sizes:
            path = blobs / f"blob-{mb}"
            length, sha = _blob(path, mb)
            cases = [("file", path.as_uri(), "verified", "file"),
                     ("file", path.as_uri(), "verified", "devnull"),
                     ("file", path.as_uri(), "fetch", "devnull"),
                     ("http", f"{base}{path.name}", "verified", "file"),
                     ("http", f"{base}{path.name}", "verified", "devnull"),
                     ("http", f"{base}{path.name}", "fetch", "devnull"),
                     ("http", f"{base}{path.name}", "raw", "devnull")]
            for transport, url, mode, dest_kind in cases:
                secs, peaks = [], []
                for _ in range(repeat):
                    dest = os.devnull if dest_kind == "devnull" else str(workdir / "dl.out")
                    s, peak = _download_child(mode, url, length, sha, dest)
                    secs.append(s)
                    peaks.append(peak)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(workdir / "dl.out")
                key = f"{transport}/{mb}MiB/{mode}/dest={dest_kind}"
                out[key] = {"seconds": median(secs), "bytes_per_s": length / median(secs),
                            "peak_rss_kib": max(peaks), "all_s": secs}
                log(f"{key}: {length / median(secs) / 1e9:.2f} GB/s, "
                    f"peak {max(peaks) // 1024} MiB")
    return out


def cache_check(workdir: Path, mb: int) -> dict[str, Any]:
    """One big wheel, served with request counting; download twice."""
    cdir = workdir / "cache-check"
    shutil.rmtree(cdir, ignore_errors=True)
    dist = cdir / "dist"
    dist.mkdir(parents=True)
    whl = dist / common.wheel_filename(0, "1.0")
    whl.write_bytes(common.wheel_bytes(0, "1.0", 1, payload=mb << 20))
    key, pub = common.make_key(cdir)
    repo = cdir / "repo"
    common.repotool("repo", "init", repo, "--name", "dl", "--key", pub)
    common.repotool("repo", "add", repo, dist)
    common.repotool("repo", "sign", repo, "--key", key)
    home = cdir / "home"
    with _counting_server(cdir) as (base, counts, sent):
        common.repotool("source", "add", "dl", f"{base}repo/", "--key", pub, home=home)
        common.repotool("update", home=home)
        req = f"{common.project_name(0)}==1.0"
        before = dict(counts)
        first = common.measured("download", req, "-d", cdir / "out1", "--json", home=home)
        after_first = dict(counts)
        second = common.measured("download", req, "-d", cdir / "out2", "--json", home=home)
        after_second = dict(counts)
    dist_paths = [p for p in after_second if p.endswith(".whl")]
    got = [json.loads(first.stdout)[0], json.loads(second.stdout)[0]]
    size = whl.stat().st_size
    res = {
        "wheel_bytes": size,
        "dist_requests_first": sum(after_first.get(p, 0) - before.get(p, 0) for p in dist_paths),
        "dist_requests_second": sum(after_second.get(p, 0) - after_first.get(p, 0)
                                    for p in dist_paths),
        "bytes_sent_total_for_dist": sum(sent.get(p, 0) for p in dist_paths),
        "first_s": first.seconds, "second_s": second.seconds,
        "first_peak_rss_kib": first.peak_rss_kib, "second_peak_rss_kib": second.peak_rss_kib,
        "same_sha256": got[0]["sha256"] == got[1]["sha256"],
        "first_end_to_end_bytes_per_s": size / first.seconds,
    }
    shutil.rmtree(cdir, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--small-mb", type=int, default=64)
    ap.add_argument("--cli-mb", type=int, default=64, help="wheel size for the cache check")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/repotool-bench/download"))
    args = ap.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    load0 = common.uptime()
    sha = anchors.sha256_throughput(args.mb)
    log(f"hashlib.sha256: {sha / 1e9:.2f} GB/s")
    tp = throughput(workdir, [args.small_mb, args.mb], args.repeat)
    cache = cache_check(workdir, args.cli_mb)
    load1 = common.uptime()
    res = {"hashlib_sha256_bytes_per_s": sha, "throughput": tp, "cache": cache,
           "load": [load0, load1], "peak_rss_floor_kib": anchors.rss_floor_kib()}
    (workdir / "download.json").write_text(json.dumps(res, indent=1))
    w = sys.stdout.write
    w(f"\ndownload: load average {load0} -> {load1} (2 cores, shared machine)\n")
    w(f"hashlib.sha256 (in memory, 1 MiB chunks, median of 3): {sha / 1e9:.2f} GB/s\n\n")
    w("| transport | size | what | dest | seconds | GB/s | / hashlib | budget | "
      "peak RSS MiB |\n")
    w("|---|---|---|---|---|---|---|---|---|\n")
    for key, v in tp.items():
        t, size, mode, dest = key.split("/")
        ratio = v["bytes_per_s"] / sha
        verdict = (
            (">= 80%: met" if ratio >= BUDGET_RATIO else ">= 80%: MISSED")
            if mode == "verified" else "(reference)"
        )
        w(f"| {t} | {size} | {MODES[mode]} | {dest.split('=')[1]} | {v['seconds']:.3f} | "
          f"{v['bytes_per_s'] / 1e9:.2f} | {ratio:.0%} | {verdict} | "
          f"{v['peak_rss_kib'] // 1024} |\n")
    w("\nhashing cost inside the download path = verified (dest /dev/null) - fetch only:\n")
    for t in ("file", "http"):
        for mb in (args.small_mb, args.mb):
            v = tp[f"{t}/{mb}MiB/verified/dest=devnull"]["seconds"]
            f = tp[f"{t}/{mb}MiB/fetch/dest=devnull"]["seconds"]
            rate = (mb << 20) / (v - f) if v > f else float("inf")
            w(f"  {t} {mb} MiB: {v - f:.3f}s -> {rate / 1e9:.2f} GB/s = {rate / sha:.0%} of "
              "hashlib\n")
    for t in ("file", "http"):
        small = tp[f"{t}/{args.small_mb}MiB/verified/dest=file"]["peak_rss_kib"]
        big = tp[f"{t}/{args.mb}MiB/verified/dest=file"]["peak_rss_kib"]
        w(f"\n{t}: peak RSS {small // 1024} MiB at {args.small_mb} MiB, {big // 1024} MiB at "
          f"{args.mb} MiB ({'does not grow' if big - small < 8192 else 'GROWS'})")
    c = cache
    w(f"\n\ncache: wheel {c['wheel_bytes']} bytes; 1st 'repotool download' "
      f"{c['first_s']:.3f}s ({c['first_end_to_end_bytes_per_s'] / 1e9:.2f} GB/s end to end, "
      f"peak {c['first_peak_rss_kib'] // 1024} MiB) made {c['dist_requests_first']} GET of "
      f"the file; 2nd {c['second_s']:.3f}s made {c['dist_requests_second']} GET "
      f"({'not fetched again: met' if c['dist_requests_second'] == 0 else 'FETCHED AGAIN'}); "
      f"server sent {c['bytes_sent_total_for_dist']} bytes of it in total\n")
    log(f"results in {workdir / 'download.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
