"""Shell completion (typer/click): documented in docs/cli.md, served by the real
executable through the full CLI (the fast path steps aside)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def complete(words: str) -> list[str]:
    env = {**os.environ, "_REPOTOOL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    r = subprocess.run([sys.executable, "-m", "repotool"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_commands_options_and_subcommands_complete() -> None:
    assert complete("repotool sou") == ["source"]
    assert complete("repotool source a") == ["add"]
    assert "--json" in complete("repotool update --")
    assert {"--quiet", "--home"} <= set(complete("repotool --"))
    # 'list' and 'update' have a fast path; completing them still works
    assert complete("repotool upd") == ["update"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_completion_prints_the_bash_script() -> None:
    # the shell named: typer's detection reads the parent processes, which differ by runner
    r = subprocess.run(["bash", "-c", f"'{sys.executable}' -m repotool --show-completion bash"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "_REPOTOOL_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _repotool_completion repotool" in r.stdout
