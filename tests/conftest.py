"""Shared fixtures: real Ed25519 keys, real wheels, a published repository, a client home.

``Published`` wraps a repository directory with its (throwaway, unencrypted) key and
helpers to add files and re-sign; ``cli()`` runs the real typer app in-process and
returns exit code, stdout and stderr separately.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from builders import build_wheel
from hypothesis import HealthCheck, settings

from repotool import keys
from repotool.publish.workspace import Repository, RoleKeys

# Property tests run the same examples on every machine (reproducible CI), with no
# per-example deadline (2 shared cores) and no example database left in the tree.
settings.register_profile(
    "repotool", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repotool"))
# An unexpected exception is a bug: under test it escapes (cli() below turns it into a
# failure) instead of becoming the CLI's one-line "internal error" for users.
os.environ.setdefault("REPOTOOL_DEBUG", "1")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(
    *args: str | Path, env: dict[str, str] | None = None, input: str | None = None
) -> CliResult:
    """Run ``repotool ARGS`` in-process; never lets an exception escape unnoticed."""
    from repotool.cli.app import app
    from repotool.cli.common import STATE

    STATE.home = None
    STATE.timeout = None
    runner = CliRunner()
    r = runner.invoke(app, [str(a) for a in args], env=env, input=input, catch_exceptions=True)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"repotool {args} raised {r.exception!r}") from r.exception
    assert "Traceback" not in r.stdout + r.stderr
    return CliResult(r.exit_code, r.stdout, r.stderr)


@dataclass
class KeyPair:
    private: Path
    public: Path
    fingerprint: str

    def signer(self) -> Any:
        return keys.load_signer(self.private, lambda: None)

    def public_key(self) -> Any:
        return keys.public_from_file(self.public)


def make_key(directory: Path, name: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    g = keys.generate(directory / name, None)
    return KeyPair(g.private_path, g.public_path, g.fingerprint)


@dataclass
class Published:
    """A repository directory signed by one key holding every role."""

    root: Path
    key: KeyPair
    dist: Path
    repo: Repository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = Repository(self.root)

    def add_wheel(self, name: str, version: str, **kw: Any) -> Path:
        whl = build_wheel(self.dist, name, version, **kw)
        self.repo.add([whl], now=datetime.now(UTC))
        return whl

    def sign(self, **kw: Any) -> Any:
        kw.setdefault("now", datetime.now(UTC))
        return self.repo.sign([self.key.signer()], **kw)


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", "publisher")


@pytest.fixture
def make_published(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: ``make_published(name="demo", projects={"demo-pkg": ["1.0"]})``."""
    counter = iter(range(1000))

    def factory(name: str = "demo", projects: dict[str, list[str]] | None = None,
                key: KeyPair | None = None) -> Published:
        n = next(counter)
        base = tmp_path / f"pub{n}"
        key = key or make_key(base / "keys", "k")
        pk = key.public_key()
        Repository.init(base / "repo", name, RoleKeys([pk], 1, [pk], 1, [pk]),
                        now=datetime.now(UTC))
        pub = Published(base / "repo", key, base / "dist")
        for project, versions in (projects or {"demo-pkg": ["1.0"]}).items():
            for v in versions:
                pub.add_wheel(project, v)
        pub.sign()
        return pub

    return factory


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h
