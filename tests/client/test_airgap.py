"""docs/airgap.md, run: mirror to a "USB" directory online, carry it, add it offline with
the original key, update, install with real pip (two homes; offline uses the path only)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import small_repos
from conftest import cli
from servers import RepoServer
from venvs import make_venv, pip_freeze


@pytest.fixture
def make_published(tmp_path: Path) -> Any:
    return small_repos.factory(tmp_path)

DOC = Path(__file__).resolve().parents[2] / "docs" / "airgap.md"


def commands(section: str) -> list[list[str]]:
    text = DOC.read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", part, re.S)
    assert block is not None
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def test_airgap_walkthrough_commands(make_published: Any, tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    usb = tmp_path / "media" / "usb"
    py = make_venv(tmp_path / "venv")
    subst = {"~/online": str(tmp_path / "online"), "~/offline": str(tmp_path / "offline"),
             "acme.pub": str(pub.key.public), "/media/usb/acme": str(usb / "acme")}
    with RepoServer(pub.root) as server:
        subst["https://pkgs.acme.example/"] = server.url
        for argv in commands("On the online machine"):
            assert argv[0] == "repotool"
            r = cli(*[subst.get(a, a) for a in argv[1:]])
            assert r.exit_code == 0, (argv, r.output)
    carried = tmp_path / "carried"  # carry it: the offline side sees only this copy
    shutil.copytree(usb, carried)
    shutil.rmtree(usb)
    subst["/media/usb/acme"] = str(carried / "acme")
    for argv in commands("On the offline machine"):
        args = [subst.get(a, a) for a in argv[1:]]
        if args[2] == "install":
            args += ["--python", str(py)]
        r = cli(*args)
        assert r.exit_code == 0, (argv, r.output)
    assert pip_freeze(py) == {"demo-pkg": "1.0"}
    src = (tmp_path / "offline" / "sources" / "acme" / "source.json").read_text()
    assert "http" not in src  # the offline machine knows the path only
