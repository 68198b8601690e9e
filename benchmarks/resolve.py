"""Resolving through the verified proxy, before and after PEP 658/714 metadata files.

One 30-project dependency tree (``app`` → 29 libraries, each in 3 versions; the newest
version of every third library needs a project that does not exist, so resolvers try
it and fall back — a realistic amount of backtracking) is published twice: once as an
older repotool did (no ``.metadata`` files: the "before" repository) and once as repotool
publishes now (every wheel's METADATA signed as ``FILE.metadata``). Each wheel carries
``--payload`` KiB of incompressible data, like a real wheel's code.

Index entries name the ``.metadata`` files only in format 2 repositories (docs/format.md
§Core metadata files); until the format 2 publisher is on this tree, the "after"
repository's entries are written as format 2 writes them (``index_format`` patched to
2 in this process).

For each repository, a fresh client home is added and updated, the real proxy
(``repotool.pip.proxy.RunningProxy``) started in this process, and timed as whole commands,
each with an empty cache:

* pip: ``pip install --dry-run --ignore-installed --no-cache-dir --index-url PROXY app``
  (fresh venv; pip 23.2 here: it still downloads the wheels it would install);
* uv: ``uv pip compile --no-cache --index-url PROXY`` of ``app``.

Bytes fetched are counted on the proxy's sockets (pages, metadata files and wheels),
wheel GETs from its log. Prints a table (and JSON with ``--json``).

    python benchmarks/resolve.py [--repeat 3] [--payload 200]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repotool import keys
from repotool.client.home import Home
from repotool.pip.index import VerifiedIndex
from repotool.pip.proxy import RunningProxy, _Handler
from repotool.publish.workspace import Repository, RoleKeys
from repotool.transport.limits import Limits

PROJECTS = 30
VERSIONS = ("1.0", "1.1", "2.0")
_sent = [0]  # bytes written by the proxy's handlers


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, data: bytes) -> int:
        _sent[0] += len(data)
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_setup = _Handler.setup


def _counting_setup(self: Any) -> None:
    _setup(self)
    self.wfile = _Counting(self.wfile)


_Handler.setup = _counting_setup  # type: ignore[method-assign]


def _name(i: int) -> str:
    return "app" if i == 0 else f"lib{i:02d}"


def _deps(i: int, version: str) -> list[str]:
    out = [f"{_name(k)}>=1.0" for k in (2 * i + 1, 2 * i + 2) if k < PROJECTS]  # a tree
    if version == "2.0" and i % 3 == 1:
        out.append("does-not-exist>=1")  # resolvers try this version, then fall back
    return out


def _wheel(out: Path, i: int, version: str, payload: int, rng: random.Random) -> Path:
    name = _name(i)
    info = f"{name}-{version}.dist-info"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: bench\n"
            + "".join(f"Requires-Dist: {d}\n" for d in _deps(i, version))).encode()
    files = {f"{name}/__init__.py": b"", f"{name}/blob.bin": rng.randbytes(payload * 1024),
             f"{info}/METADATA": meta,
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}

    def h(d: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(
            b"=").decode()

    rec = "".join(f"{p},{h(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = rec.encode()
    path = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), d)
    return path


def _publish(work: Path, dist: Path, *, metadata: bool) -> tuple[Path, Path]:
    g = keys.generate(work / "key", None)
    pk = keys.public_from_file(g.public_path)
    now = datetime.now(UTC)
    repo = Repository.init(work / "repo", "bench", RoleKeys([pk], 1, [pk], 1, [pk]), now=now)
    repo.add([dist], now=now)
    if not metadata:  # what an older repotool recorded: no FILE.metadata
        p = work / "repo" / ".repotool" / "pending.json"
        doc = json.loads(p.read_text())
        for a in doc["add"]:
            a.pop("metadata_sha256", None)
            a.pop("metadata_size", None)
        p.write_text(json.dumps(doc))
    from repotool.publish import changes

    real = changes.index_format
    changes.index_format = (lambda pub: 2) if metadata else real  # type: ignore[assignment]
    try:
        repo.sign([keys.load_signer(g.private_path, lambda: None)], now=now)
    finally:
        changes.index_format = real  # type: ignore[assignment]
    return work / "repo", g.public_path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "UV_NO_CONFIG": "1", "NO_PROXY": "127.0.0.1", **(extra or {})})
    return env


def _client(work: Path, repo: Path, pub: Path) -> Path:
    home = work / "home"
    rt = [sys.executable, "-m", "repotool", "--home", str(home)]
    subprocess.run([*rt, "source", "add", "bench", str(repo), "--key", str(pub)],
                   check=True, capture_output=True)
    subprocess.run([*rt, "update"], check=True, capture_output=True)
    return home


def _one(tool: str, home: Path, work: Path, uv: str) -> dict[str, Any]:
    log: list[str] = []
    index = VerifiedIndex(Home(home), Limits(), log=log.append)
    shutil.rmtree(Home(home).cache("bench") / "files", ignore_errors=True)  # cold: no wheels
    with RunningProxy(index) as proxy:
        _sent[0] = 0
        if tool == "pip":
            venv = work / "venv"
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run",
                   "--ignore-installed", "--no-cache-dir", "--isolated", "--index-url",
                   proxy.index_url, "app"]
        else:
            req = work / "req.in"
            req.write_text("app\n")
            cmd = [uv, "pip", "compile", "--no-cache", "--index-url", proxy.index_url,
                   str(req)]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
        elapsed = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"{tool} failed:\n{r.stdout}\n{r.stderr}")
    wheels = [line for line in log if re.match(r"served \S+\.whl sha256:", line)]
    metas = [line for line in log if re.match(r"served \S+\.whl\.metadata ", line)]
    return {"seconds": elapsed, "bytes": _sent[0], "wheel_gets": len(wheels),
            "metadata_gets": len(metas)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--payload", type=int, default=200, help="KiB of data per wheel")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("uv not found (pip install uv)")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="repotool-bench-resolve-") as tmp:
        w = Path(tmp)
        dist = w / "dist"
        dist.mkdir()
        rng = random.Random(658)
        for i in range(PROJECTS):
            for v in VERSIONS:
                _wheel(dist, i, v, args.payload, rng)
        for mode in ("before", "after"):
            mw = w / mode
            mw.mkdir()
            repo, pub = _publish(mw, dist, metadata=mode == "after")
            home = _client(mw, repo, pub)
            for tool in ("pip", "uv"):
                runs = [_one(tool, home, mw, uv) for _ in range(args.repeat)]
                results[f"{tool} {mode}"] = {
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "runs": [round(r["seconds"], 3) for r in runs],
                    "bytes": runs[-1]["bytes"], "wheel_gets": runs[-1]["wheel_gets"],
                    "metadata_gets": runs[-1]["metadata_gets"]}
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{PROJECTS} projects x {len(VERSIONS)} versions, {args.payload} KiB per wheel, "
          f"median of {args.repeat}; load {os.getloadavg()[0]:.2f}")
    print("| client | metadata files | wheel GETs | .metadata GETs | bytes fetched | "
          "median s | runs s |")
    print("|---|---|---|---|---|---|---|")
    for key, r in results.items():
        tool, mode = key.split()
        print(f"| {tool} | {'no (before)' if mode == 'before' else 'yes (after)'} | "
              f"{r['wheel_gets']} | {r['metadata_gets']} | {r['bytes']:,} | "
              f"{r['seconds']:.2f} | {', '.join(map(str, r['runs']))} |")


if __name__ == "__main__":
    main()
