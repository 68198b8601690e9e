"""Install overhead: `repotool install` vs plain `pip install --index-url` of the same files.

A small project with three dependencies is published once; then, each into a fresh
venv and timed as whole commands:

* plain: ``pip install --isolated --no-cache-dir --index-url URL/simple/ app`` against
  the repository's own static PEP 503/691 pages, served by a static server;
* repotool: ``repotool install app --python VENV/bin/python`` from a source that was
  added and updated beforehand (the update is not timed: apt users run it once).

Both run the same pip; the difference is repotool's verification and its local proxy.
Prints the medians and the ratio.

    python benchmarks/install.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

from anchors import serve_dir  # noqa: E402
from make_wheels import make_wheel  # noqa: E402


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=_env(), **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rt = [sys.executable, "-m", "repotool"]
    with tempfile.TemporaryDirectory(prefix="repotool-bench-install-") as tmp:
        w = Path(tmp)
        dist = w / "dist"
        dist.mkdir()
        make_wheel(dist, "bench-app", "1.0", ["bench-a", "bench-b", "bench-c"])
        for dep in ("bench-a", "bench-b", "bench-c"):
            make_wheel(dist, dep, "1.0", [])
        subprocess.run([*rt, "key", "generate", str(w / "k"), "--no-passphrase"],
                       check=True, capture_output=True)
        repo = str(w / "repo")
        for step in (["repo", "init", repo, "--name", "bench", "--key", str(w / "k.pub")],
                     ["repo", "add", repo, str(dist)],
                     ["repo", "sign", repo, "--key", str(w / "k.key")]):
            subprocess.run([*rt, *step], check=True, capture_output=True)
        home = w / "home"
        subprocess.run([*rt, "--home", str(home), "source", "add", "bench", str(w / "repo"),
                        "--key", str(w / "k.pub")], check=True, capture_output=True)
        subprocess.run([*rt, "--home", str(home), "update"], check=True, capture_output=True)
        plain: list[float] = []
        verified: list[float] = []
        with serve_dir(w / "repo") as url:
            for i in range(args.repeat):
                for kind, times in (("plain", plain), ("repotool", verified)):
                    venv = w / f"venv-{kind}-{i}"
                    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
                    py = str(venv / "bin" / "python")
                    if kind == "plain":
                        times.append(_run([py, "-m", "pip", "install", "--isolated",
                                           "--no-cache-dir", "--index-url", f"{url}simple/",
                                           "bench-app"]))
                    else:
                        times.append(_run([*rt, "--home", str(home), "install", "bench-app",
                                           "--python", py]))
        result = {
            "plain_pip_s": statistics.median(plain),
            "repotool_install_s": statistics.median(verified),
            "ratio": statistics.median(verified) / statistics.median(plain),
            "runs": {"plain": plain, "repotool": verified},
        }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
