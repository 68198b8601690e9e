"""Progress on a terminal, silence elsewhere, ``--quiet`` (SPEC §6.6).

The real executable (``python -m repotool``, fast path and full CLI) runs with its
stderr and/or stdout on pseudo-terminals (``pty.openpty``): progress is drawn on the
stderr terminal only, never on a pipe, never on stdout; ``-q`` leaves only errors.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import cli

from repotool import progress

ESC = "\x1b["


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def _pty() -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return master, slave


def _drain(fds: dict[int, list[bytes]], proc: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + 120
    while fds and time.monotonic() < end:
        ready, _, _ = select.select(list(fds), [], [], 0.2)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                data = b""
            if data:
                fds[fd].append(data)
            else:
                del fds[fd]
        if not ready and proc.poll() is not None:
            break


def run(*args: str | Path, stderr_tty: bool = True, stdout_tty: bool = False) -> Run:
    """``python -m repotool ARGS`` with stderr/stdout on a terminal or a pipe."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REPOTOOL_HOME", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    ends: dict[str, tuple[int, int]] = {}
    if stderr_tty:
        ends["err"] = _pty()
    if stdout_tty:
        ends["out"] = _pty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repotool", *map(str, args)], stdin=subprocess.DEVNULL,
        stdout=ends["out"][1] if stdout_tty else subprocess.PIPE,
        stderr=ends["err"][1] if stderr_tty else subprocess.PIPE, env=env)
    chunks: dict[int, list[bytes]] = {}
    for _name, (master, slave) in ends.items():
        os.close(slave)
        chunks[master] = []
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            chunks[pipe.fileno()] = []
    got = dict(chunks)
    _drain(chunks, proc)
    code = proc.wait(timeout=60)

    def text(which: str, pipe: object) -> str:
        fd = ends[which][0] if which in ends else pipe.fileno()  # type: ignore[attr-defined]
        return b"".join(got[fd]).decode("utf-8", "replace")

    out, err = text("out", proc.stdout), text("err", proc.stderr)
    for master, _ in ends.values():
        os.close(master)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return Run(code, out, err)


@pytest.fixture
def three_sources(make_published, home: Path) -> Path:
    for i in range(3):
        pub = make_published(name=f"r{i}", projects={f"pkg{i}": ["1.0"]})
        assert cli("--home", home, "source", "add", f"src{i}", pub.root, "--key",
                   pub.key.public).exit_code == 0
    return home


def test_update_progress_on_the_terminal_only(three_sources: Path) -> None:
    home = three_sources
    # the fast path (plain 'update') and the full CLI ('update NAME...') both draw it
    for args in (["update"], ["update", "src0", "src1", "src2"]):
        r = run("--home", home, *args)
        assert r.code == 0, r
        assert "update src" in r.stderr and ESC in r.stderr, r.stderr
        assert ESC not in r.stdout and "update src" not in r.stdout
        assert r.stdout.count(": updated") + r.stdout.count(": unchanged") == 3


def test_no_progress_on_a_pipe_nor_on_stdout(three_sources: Path) -> None:
    piped = run("--home", three_sources, "update", "src0", "src1", "src2", stderr_tty=False)
    assert piped.code == 0 and ESC not in piped.stderr and "update src" not in piped.stderr
    # ... and the display is not even loaded (no rich import on a pipe)
    imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "repotool", "--home",
                          str(three_sources), "update", "src0", "src1"],
                         capture_output=True, text=True, timeout=120)
    assert imp.returncode == 0
    assert not [line for line in imp.stderr.splitlines() if line.endswith(("| rich",
                                                                           "| rich.progress"))]
    # stdout a terminal, stderr a pipe: nothing is drawn anywhere
    out_tty = run("--home", three_sources, "update", stderr_tty=False, stdout_tty=True)
    assert out_tty.code == 0
    assert ESC not in out_tty.stdout + out_tty.stderr
    assert "unchanged" in out_tty.stdout or "updated" in out_tty.stdout
    # both on terminals: the bars go to stderr's, the summary to stdout's
    both = run("--home", three_sources, "update", "src0", "src1", "src2", stdout_tty=True)
    assert ESC in both.stderr and ESC not in both.stdout and "update src" not in both.stdout


def test_download_shows_bytes_on_the_terminal(make_published, home: Path,
                                              tmp_path: Path) -> None:
    pub = make_published(projects={"demo-pkg": ["1.0"]})
    assert cli("--home", home, "source", "add", "demo", pub.root, "--key",
               pub.key.public).exit_code == 0
    assert cli("--home", home, "update").exit_code == 0
    r = run("--home", home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl")
    assert r.code == 0, r
    assert "demo_pkg-1.0-py3-none-any.whl" in r.stderr and ESC in r.stderr
    assert " bytes" in r.stderr or "/s" in r.stderr or "kB" in r.stderr  # a size column
    assert ESC not in r.stdout and r.stdout.startswith(str(tmp_path / "dl"))
    # cached now: the JSON document is all stdout holds, the terminal may show progress
    j = run("--home", home, "download", "demo-pkg==1.0", "-d", tmp_path / "dl2", "--json")
    assert j.code == 0 and ESC not in j.stdout and j.stdout.lstrip().startswith("[")


def test_quiet_leaves_only_errors(three_sources: Path) -> None:
    r = run("--home", three_sources, "-q", "update")
    assert (r.code, r.stdout, r.stderr) == (0, "", "")
    bad = run("--home", three_sources, "--quiet", "update", "nope")
    assert bad.code == 1 and bad.stdout == ""
    assert bad.stderr.splitlines()[0].startswith("repotool: error: no source named 'nope'")
    assert ESC not in bad.stderr
    # --json still prints the data asked for
    j = run("--home", three_sources, "-q", "update", "--json", stderr_tty=False)
    assert j.code == 0 and j.stderr == "" and j.stdout.lstrip().startswith("[")


def test_progress_is_a_no_op_unless_configured() -> None:
    """Library callers (and a piped CLI) get no display and no rich import."""
    assert not progress.enabled()
    with progress.task("x", total=3) as t:
        t.advance()
        t.describe("y")
        assert t.writer(sys.stdout.buffer) is sys.stdout.buffer
    r = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "import repotool.progress, repotool.cli.entry"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and " rich" not in r.stderr
