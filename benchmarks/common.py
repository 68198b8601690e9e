"""Shared helpers of repotool's benchmarks (publish, update, download, startup).

* :func:`write_dists` -- real, tiny, deterministic wheels (stdlib ``zipfile``; one
  ``__init__.py``, ``METADATA`` with Summary and Requires-Dist, ``WHEEL``,
  ``RECORD``), built in parallel.  Entry ``i`` of ``files`` belongs to project
  ``proj-{i % projects:05d}`` at version ``1.{i // projects}``, the numbering
  ``anchors.py`` uses for its apt stanzas and TUF targets, so all three
  repositories hold the same entries in the same projects.
* :func:`repotool` / :func:`measured` -- run ``python -m repotool ...`` as a child
  process; :func:`measured` goes through ``anchors``' launcher (wall time and
  peak RSS taken the same way as for apt and python-tuf).
* :func:`build_repository` -- key, ``repo init``, ``repo add DIR dist/`` (one
  command for all files), ``repo sign``; cached in the work directory so
  ``update.py`` can reuse what ``publish.py`` built.

Run the scripts with the project's interpreter (``/work/venv/bin/python``); the
child processes use that same interpreter.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anchors

__all__ = [
    "BenchError",
    "Built",
    "build_repository",
    "fmt_s",
    "log",
    "measured",
    "median",
    "project_name",
    "repotool",
    "serve_dir_nodelay",
    "uptime",
    "wheel_filename",
    "write_dists",
]

PYTHON = sys.executable
KEY_NAME = "publisher"


class BenchError(RuntimeError):
    """A measured repotool command failed; the figure is invalid."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def fmt_s(x: float) -> str:
    return f"{x:.3f}"


def uptime() -> str:
    """``uptime``'s load averages (the machine is shared: say how busy it was)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---- wheels ---------------------------------------------------------------------------


def project_name(p: int) -> str:
    return f"proj-{p:05d}"


def entry(i: int, projects: int) -> tuple[int, str]:
    """Entry ``i`` -> (project number, version), as ``anchors._project``."""
    return i % projects, f"1.{i // projects}"


def wheel_filename(p: int, version: str) -> str:
    return f"proj_{p:05d}-{version}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_EPOCH = (1980, 1, 1, 0, 0, 0)
_WHEEL = (
    b"Wheel-Version: 1.0\nGenerator: repotool-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)


def wheel_bytes(p: int, version: str, projects: int, *, payload: int | None = None) -> bytes:
    """A real wheel of project ``p`` (deterministic in its arguments).

    ``payload`` adds that many random bytes as a data file (default: 32-1056
    bytes, like anchors' synthetic contents).
    """
    rnd = random.Random(f"{p}/{version}")
    name = project_name(p)
    dist = f"proj_{p:05d}"
    info = f"{dist}-{version}.dist-info"
    words = rnd.sample(anchors._WORDS, 6)
    dep = rnd.randrange(projects)
    requires = f"Requires-Dist: {project_name(dep)}>=1.0\n" if dep != p else ""
    size = rnd.randint(32, 1056) if payload is None else payload
    files: dict[str, bytes] = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist}/data.bin": rnd.randbytes(size),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: {' '.join(words[:4])} for Python 3\n"
            f"Requires-Python: >=3.8\n{requires}"
        ).encode(),
        f"{info}/WHEEL": _WHEEL,
    }
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n, d in files.items():
            zi = zipfile.ZipInfo(n, _EPOCH)
            zi.external_attr = 0o644 << 16
            z.writestr(zi, d)
    return buf.getvalue()


def _write_range(args: tuple[str, int, int, int]) -> int:
    out, start, stop, projects = args
    d = Path(out)
    for i in range(start, stop):
        p, ver = entry(i, projects)
        (d / wheel_filename(p, ver)).write_bytes(wheel_bytes(p, ver, projects))
    return stop - start


def write_dists(out: Path, files: int, projects: int, *, start: int = 0) -> float:
    """Write wheels ``start .. files-1`` into ``out``; returns the wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    workers = max(1, os.cpu_count() or 1)
    step = 2000
    jobs = [(str(out), a, min(a + step, files), projects) for a in range(start, files, step)]
    if len(jobs) <= 1 or workers == 1:
        for j in jobs:
            _write_range(j)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            sum(pool.imap_unordered(_write_range, jobs))
    return time.perf_counter() - t0


# ---- running repotool -----------------------------------------------------------------


def repotool_argv(*args: str | Path, home: Path | None = None) -> list[str]:
    argv = [PYTHON, "-m", "repotool"]
    if home is not None:
        argv += ["--home", str(home)]
    return argv + [str(a) for a in args]


def _env() -> dict[str, str]:
    env = anchors._clean_env()
    env.pop("REPOTOOL_HOME", None)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def repotool(*args: str | Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m repotool ARGS`` (not measured); raises on a non-zero exit."""
    argv = repotool_argv(*args, home=home)
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def measured(*args: str | Path, home: Path | None = None) -> anchors.RunStats:
    """Run ``python -m repotool ARGS`` through anchors' launcher (wall s, peak RSS)."""
    argv = repotool_argv(*args, home=home)
    code, stats = anchors._run_measured(argv, _env())
    if code != 0:
        raise BenchError(
            f"{' '.join(argv)} exited {code}:\n{stats.stderr}\n{stats.stdout[-2000:]}"
        )
    return stats


# ---- a published repository ------------------------------------------------------------


@dataclass
class Built:
    """A repotool repository built by :func:`build_repository`."""

    root: str
    key: str
    pub: str
    dist: str
    files: int
    projects: int
    gen_seconds: float
    add: dict[str, Any]
    sign: dict[str, Any]

    @property
    def full_seconds(self) -> float:
        return float(self.add["seconds"] + self.sign["seconds"])


def make_key(workdir: Path) -> tuple[Path, Path]:
    key = workdir / f"{KEY_NAME}.key"
    if not key.exists():
        repotool("key", "generate", workdir / KEY_NAME, "--no-passphrase")
    return key, workdir / f"{KEY_NAME}.pub"


def build_repository(workdir: Path, files: int, projects: int, *, reuse: bool = True) -> Built:
    """``workdir/dist`` (wheels) and ``workdir/repo`` (published), timed; cached.

    The cache marker ``workdir/built.json`` is written only after a complete
    build, so an interrupted one is rebuilt.
    """
    workdir = workdir.resolve()
    marker = workdir / "built.json"
    if reuse and marker.exists():
        doc = json.loads(marker.read_text())
        if doc["files"] == files and doc["projects"] == projects:
            log(f"reusing the repository built in {workdir}")
            return Built(**doc)
    marker.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    dist = workdir / "dist"
    repo = workdir / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    if not (dist.is_dir() and sum(1 for _ in dist.iterdir()) == files):
        shutil.rmtree(dist, ignore_errors=True)
        gen = write_dists(dist, files, projects)
    else:
        gen = 0.0
    log(f"{files} wheels in {projects} projects generated in {gen:.1f}s")
    key, pub = make_key(workdir)
    repotool("repo", "init", repo, "--name", "bench", "--key", pub)
    add = measured("repo", "add", repo, dist)
    log(f"repo add (all {files} files): {add.seconds:.1f}s, peak {add.peak_rss_kib // 1024} MiB")
    sign = measured("repo", "sign", repo, "--key", key, "--json")
    summary = json.loads(sign.stdout)
    log(f"repo sign (full build): {sign.seconds:.1f}s, peak {sign.peak_rss_kib // 1024} MiB, "
        f"{summary['files']} files / {summary['bytes']} bytes written")
    built = Built(
        root=str(repo), key=str(key), pub=str(pub), dist=str(dist), files=files,
        projects=projects, gen_seconds=round(gen, 3),
        add={"seconds": round(add.seconds, 3), "peak_rss_kib": add.peak_rss_kib},
        sign={"seconds": round(sign.seconds, 3), "peak_rss_kib": sign.peak_rss_kib,
              "summary": summary},
    )
    marker.write_text(json.dumps(asdict(built), indent=1))
    return built


@contextlib.contextmanager
def serve_dir_nodelay(path: Path) -> Iterator[str]:
    """:func:`anchors.serve_dir` with TCP_NODELAY on accepted sockets.

    ``http.server`` writes a response's headers and body in two ``send`` calls;
    on a kept-alive connection Nagle's algorithm holds the body until the client
    ACKs the headers, which Linux delays by up to 40 ms: every request after the
    first on a connection then costs ~40 ms.  Few-request clients (apt, python-tuf)
    barely notice; a client fetching hundreds of small files does.
    """
    with anchors.serve_dir(path, nodelay=True) as url:
        yield url
