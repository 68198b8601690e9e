"""examples/ are runnable, and run here (the README's first command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("REPOTOOL_HOME", None)
    r = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart.sh"), str(tmp_path / "work")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "installed acme_app 1.0 acme_lib 1.1" in r.stdout
    assert "acme-lib: resolves to acme" in r.stdout
    assert "Traceback" not in r.stderr
    # the demo wrote its client state only inside its own work directory
    assert (tmp_path / "work" / "home" / "sources" / "acme" / "keyring" / "root.json").is_file()
