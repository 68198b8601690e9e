"""Anchor benchmarks that repotool's own figures are compared against.

What is measured
----------------
* ``apt-get update`` against a synthetic, gpg-signed apt repository with N
  package stanzas (by default ``lean``, ~360 bytes each: Package, Version,
  Architecture: all, Maintainer, Depends, Filename, Size, SHA256,
  Description; ``--stanza debian`` gives ~700-byte Debian-archive-like ones)
  in one ``Packages`` index (served also as ``Packages.xz``
  and ``Packages.gz``, listed with SHA256 in ``Release``; ``InRelease`` is
  clearsigned, ``Release.gpg`` detached, by a throwaway ed25519 key).  Two
  cases: *cold* (a fresh, empty apt root: InRelease and the compressed index
  are fetched, the signature is verified by gpgv, the hashes are checked, the
  index is decompressed, stored and the binary package cache is built) and
  *no-change* (a second run on the same apt root: only InRelease is fetched
  again, with ``If-Modified-Since`` over http).  Both over ``file:`` and over
  ``http://127.0.0.1:PORT/`` served by :func:`serve_dir`.
* python-tuf's ``ngclient.Updater.refresh()`` (root -> timestamp -> snapshot
  -> targets, all signatures checked) against a consistent-snapshot TUF
  repository with ONE targets role holding N targets.  It runs in a fresh
  interpreter (``sys.executable``) every time, so interpreter start and
  imports count as they do for a CLI.  Cold = empty metadata cache,
  no-change = second run on the same cache.  Over http, and over ``file:``
  through a tiny ``FetcherInterface`` subclass that reads local files.
* ``hashlib.sha256`` throughput of this machine (1 MiB chunks, median of 3),
  to normalise the figures between machines.

Times are wall-clock seconds (``time.perf_counter``) from spawning the child
to reaping it.  Peak memory is ``ru_maxrss`` (KiB) from ``os.wait4()`` on the
child: Linux reports there the maximum of the child's own peak RSS and that
of every descendant it reaped itself (apt's http/file/store/gpgv methods,
gpgv), i.e. the peak RSS of the largest single process in the tree, not a
sum -- the number ``/usr/bin/time -v`` prints as "Maximum resident set size".
Both are taken by a minimal launcher interpreter (``python -S -I``) that
spawns the child and waits for it, because an exec'd child's ``ru_maxrss``
also counts the high-water RSS of the image it was forked from (this big
benchmark process otherwise); the launcher's ~8 MiB is the floor, reported as
``peak_rss_floor_kib``.  No ``getrusage(RUSAGE_CHILDREN)`` deltas: a maximum
cannot be differenced.

How apt is isolated
-------------------
Every apt-get run gets its own root ``state_dir``: ``APT_CONFIG`` points at
``state_dir/etc/apt/apt.conf``, which is read *before* any ``apt.conf.d``,
and sets ``Dir`` to ``state_dir``; so ``Dir::Etc::parts`` (apt.conf.d),
``Dir::Etc::main``, sources.list(.d), trusted.gpg(.d), preferences(.d) and
auth.conf(.d) all resolve inside ``state_dir`` and the machine's own
``/etc/apt`` is never read.  ``Dir::State`` (lists), ``Dir::Cache``
(pkgcache.bin) and ``Dir::Log`` live there too, and ``Dir::State::status``
(normally the absolute ``/var/lib/dpkg/status``) points at an empty file in
``state_dir``.  The same settings are also given with ``-o``.  Only the
system's transport methods (``Dir::Bin::Methods=/usr/lib/apt/methods``) and
the ``gpgv`` binary are used from the machine.  ``APT::Sandbox::User=root``
(no drop to ``_apt``), ``Debug::NoLocking=1``, ``Acquire::Languages=none``
and the Translations target disabled leave ``Packages`` as the only index
target (no host apt.conf.d can add Contents or DEP-11);
``APT::Architectures`` is the native architecture only.  Proxy variables are
removed from the environment and ``LC_ALL=C`` keeps apt's ``W:``/``E:``/
``Err:`` prefixes parseable: any of those, or a non-zero exit, raises
:class:`AnchorError` with apt's output.

Nothing here is ever sent anywhere but 127.0.0.1.

Usage::

    python benchmarks/anchors.py --entries 10000 --projects 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import functools
import gzip
import hashlib
import http.server
import json
import lzma
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

__all__ = [
    "AnchorError",
    "AptRepo",
    "RunStats",
    "apt_update",
    "apt_update_measured",
    "build_apt_repo",
    "build_tuf_repo",
    "native_arch",
    "rss_floor_kib",
    "run_all",
    "serve_dir",
    "sha256_throughput",
    "tuf_update",
    "tuf_update_measured",
]

Layout = Literal["flat", "dists"]
Stanza = Literal["lean", "debian"]

APT_METHODS_DIR = "/usr/lib/apt/methods"
# Generous: the default (5 MB) is far too small for 100,000 targets.
TUF_TARGETS_MAX_LENGTH = 1 << 31
_PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")


class AnchorError(RuntimeError):
    """A measured tool failed or reported a problem; the figure is invalid."""


@dataclass(frozen=True)
class RunStats:
    """One measured child process run."""

    seconds: float
    """Wall-clock seconds from spawn to reaping."""
    peak_rss_kib: int
    """``ru_maxrss`` from ``wait4``: largest single process of the tree."""
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)


@dataclass(frozen=True)
class AptRepo:
    """A synthetic signed apt repository on disk (see :func:`build_apt_repo`)."""

    root: Path
    """Directory to serve / to point a ``file:`` URL at."""
    keyring: Path
    """Binary OpenPGP public keyring for ``signed-by`` (outside ``root``)."""
    fingerprint: str
    layout: Layout
    suite: str
    """``./`` for a flat repository, else the dist name."""
    components: tuple[str, ...]
    arch: str
    entries: int
    sizes: dict[str, int]
    """Byte sizes of the index files, keyed by path relative to ``root``."""

    def sources_line(self, url: str) -> str:
        """The one-line ``sources.list`` entry for this repository at ``url``."""
        return _sources_line(url, self.keyring, self.suite, self.components, self.arch)


# --------------------------------------------------------------------------
# synthetic data shared by the apt and TUF builders
# --------------------------------------------------------------------------

_WORD_TEXT = (
    "async api asyncio backend binding cache client codec command config "
    "core crypto data database date debug decorator dependency deploy docs "
    "engine event extension file format framework graph grpc hash html "
    "http image import index json kernel lazy library lint logging "
    "markdown math metrics mock model network numeric object orm parser "
    "path plugin pool protocol proxy queue regex render request retry "
    "runtime schema scheduler secure serial server shell signal socket sql "
    "stream string sync task template test text thread time token toml "
    "tool trace type unicode url utility validate vector wrapper xml yaml "
    "zip"
)
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


def _project(i: int, projects: int) -> tuple[int, str]:
    """Entry ``i`` -> (project number, version); projects get 1.0, 1.1, ..."""
    p = i % projects
    return p, f"1.{i // projects}"


def _synthetic_content(name: str, rnd: random.Random) -> bytes:
    """Small deterministic file content; its hash/length are what we publish."""
    header = f"synthetic distribution {name}\n".encode()
    return header + rnd.randbytes(rnd.randint(32, 1024))


# --------------------------------------------------------------------------
# apt repository
# --------------------------------------------------------------------------


@functools.cache
def native_arch() -> str:
    """dpkg's native architecture (e.g. ``amd64``)."""
    try:
        out = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out = ""
    return out or "amd64"


def _packages_text(entries: int, projects: int, stanza: Stanza = "lean", seed: int = 0) -> bytes:
    """The ``Packages`` index.

    ``lean`` (~360 bytes/entry): Package, Version, Architecture, Maintainer,
    Depends, Filename, Size, SHA256, Description -- about what a wheel index
    entry carries.  ``debian`` (~700 bytes/entry, like Debian's main archive):
    adds Source, Installed-Size, Recommends, a long Description, Homepage,
    Section, Priority and MD5sum.
    """
    rnd = random.Random(seed)
    out: list[str] = []
    for i in range(entries):
        p, ver = _project(i, projects)
        src = f"proj-{p:05d}"
        pkg = f"python3-{src}"
        debver = f"{ver}-1"
        content = _synthetic_content(f"{pkg}_{debver}_all.deb", rnd)
        words = rnd.sample(_WORDS, 12)
        dep = f"python3-proj-{rnd.randrange(projects):05d}"
        depends = f"python3:any, {dep} (>= 1.0)" if dep != pkg else "python3:any"
        short = f"{' '.join(words[:4])} for Python 3"
        filename = f"pool/main/p/{src}/{pkg}_{debver}_all.deb"
        sha = hashlib.sha256(content).hexdigest()
        if stanza == "lean":
            out.append(
                f"Package: {pkg}\nVersion: {debver}\nArchitecture: all\n"
                "Maintainer: Python Team <py@example.invalid>\n"
                f"Depends: {depends}\nFilename: {filename}\nSize: {len(content)}\n"
                f"SHA256: {sha}\nDescription: {short}\n\n"
            )
            continue
        out.append(
            f"Package: {pkg}\n"
            f"Source: {src}\n"
            f"Version: {debver}\n"
            f"Installed-Size: {rnd.randint(20, 5000)}\n"
            "Maintainer: Synthetic Python Team <python-team@example.invalid>\n"
            "Architecture: all\n"
            f"Depends: {depends}\n"
            f"Recommends: python3-{words[0]}\n"
            f"Description: {short}\n"
            f" This package provides the {words[4]} {words[5]} module of {src},\n"
            f" with {words[6]} {words[7]} and {words[8]} support.\n"
            " .\n"
            f" It also ships {words[9]} {words[10]} {words[11]} helpers.\n"
            f"Homepage: https://{src}.example.invalid/\n"
            "Section: python\n"
            "Priority: optional\n"
            f"Filename: {filename}\n"
            f"Size: {len(content)}\n"
            f"MD5sum: {hashlib.md5(content, usedforsecurity=False).hexdigest()}\n"
            f"SHA256: {sha}\n"
            "\n"
        )
    return "".join(out).encode()


def _gpg(gnupghome: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GNUPGHOME": str(gnupghome),
        "LC_ALL": "C",
    }
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--quiet", *args],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise AnchorError(f"gpg {' '.join(args)} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def build_apt_repo(
    root: Path,
    entries: int,
    projects: int,
    *,
    layout: Layout = "flat",
    stanza: Stanza = "lean",
    suite: str = "stable",
    component: str = "main",
    xz_preset: int = 2,
    seed: int = 0,
) -> AptRepo:
    """Write a signed apt repository with ``entries`` stanzas into ``root``.

    ``layout="flat"`` puts ``Packages{,.xz,.gz}``, ``Release``, ``InRelease``
    and ``Release.gpg`` directly in ``root`` (``deb [...] URL ./``);
    ``layout="dists"`` uses ``dists/<suite>/<component>/binary-<arch>/`` and
    ``dists/<suite>/{Release,InRelease,Release.gpg}``.  The public key goes to
    ``root.parent / (root.name + "-keyring.gpg")`` (beside the repository).
    A throwaway ed25519 key is generated in a temporary ``GNUPGHOME`` (no
    passphrase, batch mode) that is deleted afterwards (agent killed first).
    """
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    arch = native_arch()
    components: tuple[str, ...]
    if layout == "flat":
        release_dir = root
        index_rel = ""
        apt_suite, components = "./", ()
    else:
        release_dir = root / "dists" / suite
        index_rel = f"{component}/binary-{arch}/"
        apt_suite, components = suite, (component,)
    index_dir = release_dir / index_rel
    index_dir.mkdir(parents=True, exist_ok=True)

    raw = _packages_text(entries, projects, stanza, seed)
    files = {
        f"{index_rel}Packages": raw,
        f"{index_rel}Packages.xz": lzma.compress(raw, preset=xz_preset),
        f"{index_rel}Packages.gz": gzip.compress(raw, compresslevel=9, mtime=0),
    }
    for rel, data in files.items():
        (release_dir / rel).write_bytes(data)

    release = [
        "Origin: repotool-bench",
        "Label: repotool-bench",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        f"Architectures: {arch}" if layout == "dists" else "Architectures: all",
    ]
    if layout == "dists":
        release.append(f"Components: {component}")
    release.append("Description: synthetic repository for benchmarks")
    release.append("SHA256:")
    release += [f" {hashlib.sha256(d).hexdigest()} {len(d):>16} {rel}" for rel, d in files.items()]
    (release_dir / "Release").write_text("\n".join(release) + "\n")

    keyring = root.parent / f"{root.name}-keyring.gpg"
    gnupghome = Path(tempfile.mkdtemp(prefix="gpg-"))  # short path: agent socket limit
    try:
        params = (
            "%no-protection\n"
            "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\n"
            "Name-Real: repotool benchmark throwaway key\n"
            "Name-Email: bench@example.invalid\n"
            "Expire-Date: 0\n%commit\n"
        )
        _gpg(gnupghome, "--gen-key", stdin=params.encode())
        listing = _gpg(gnupghome, "--with-colons", "--list-secret-keys").decode()
        fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
        keyring.write_bytes(_gpg(gnupghome, "--export", fpr))
        rel_file = str(release_dir / "Release")
        _gpg(
            gnupghome,
            "--yes",
            "--digest-algo",
            "SHA512",
            "--local-user",
            fpr,
            "--clearsign",
            "--output",
            str(release_dir / "InRelease"),
            rel_file,
        )
        _gpg(
            gnupghome,
            "--yes",
            "--digest-algo",
            "SHA512",
            "--local-user",
            fpr,
            "--armor",
            "--detach-sign",
            "--output",
            str(release_dir / "Release.gpg"),
            rel_file,
        )
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env={**os.environ, "GNUPGHOME": str(gnupghome)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(gnupghome, ignore_errors=True)

    sizes = {str((release_dir / rel).relative_to(root)): len(d) for rel, d in files.items()}
    sizes[str((release_dir / "InRelease").relative_to(root))] = (
        (release_dir / "InRelease").stat().st_size
    )
    return AptRepo(
        root=root,
        keyring=keyring,
        fingerprint=fpr,
        layout=layout,
        suite=apt_suite,
        components=components,
        arch=arch,
        entries=entries,
        sizes=sizes,
    )


def _sources_line(
    url: str, keyring: Path, suite: str, components: Sequence[str], arch: str | None
) -> str:
    opts = f"signed-by={keyring.resolve()}"
    if arch:
        opts += f" arch={arch}"
    tail = " ".join([suite, *components]) if components else suite
    return f"deb [{opts}] {url} {tail}\n"


def _apt_options(state_dir: Path) -> dict[str, str]:
    s = state_dir
    arch = native_arch()
    return {
        "Dir": f"{s}/",
        "Dir::State": f"{s}/var/lib/apt/",
        "Dir::State::lists": f"{s}/var/lib/apt/lists/",
        "Dir::State::status": f"{s}/var/lib/dpkg/status",
        "Dir::Cache": f"{s}/var/cache/apt/",
        "Dir::Etc": f"{s}/etc/apt/",
        "Dir::Etc::main": f"{s}/etc/apt/apt.conf",
        "Dir::Etc::parts": f"{s}/etc/apt/apt.conf.d/",
        "Dir::Etc::sourcelist": f"{s}/etc/apt/sources.list",
        "Dir::Etc::sourceparts": f"{s}/etc/apt/sources.list.d/",
        "Dir::Etc::trusted": f"{s}/etc/apt/trusted.gpg",
        "Dir::Etc::trustedparts": f"{s}/etc/apt/trusted.gpg.d/",
        "Dir::Etc::preferences": f"{s}/etc/apt/preferences",
        "Dir::Etc::preferencesparts": f"{s}/etc/apt/preferences.d/",
        "Dir::Etc::netrc": f"{s}/etc/apt/auth.conf",
        "Dir::Etc::netrcparts": f"{s}/etc/apt/auth.conf.d/",
        "Dir::Log": f"{s}/var/log/apt/",
        "Dir::Bin::Methods": APT_METHODS_DIR,
        "APT::Architecture": arch,
        "APT::Architectures": arch,
        "APT::Sandbox::User": "root",
        "Debug::NoLocking": "1",
        "Acquire::Languages": "none",
        "Acquire::IndexTargets::deb::Translations::DefaultEnabled": "false",
        "Acquire::http::Proxy::127.0.0.1": "DIRECT",
        "Acquire::http::Proxy::localhost": "DIRECT",
        "Acquire::Retries": "0",
    }


def _prepare_apt_root(state_dir: Path, sources: str) -> Path:
    """Create the private apt root; returns the APT_CONFIG file."""
    for d in (
        "etc/apt/apt.conf.d",
        "etc/apt/sources.list.d",
        "etc/apt/trusted.gpg.d",
        "etc/apt/preferences.d",
        "etc/apt/auth.conf.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
        "var/log/apt",
    ):
        (state_dir / d).mkdir(parents=True, exist_ok=True)
    status = state_dir / "var/lib/dpkg/status"
    if not status.exists():
        status.write_bytes(b"")
    (state_dir / "etc/apt/sources.list").write_text(sources)
    conf = state_dir / "etc/apt/apt.conf"
    lines = []
    for key, value in _apt_options(state_dir).items():
        if key == "APT::Architectures":
            lines.append(f'{key} {{ "{value}"; }};')
        else:
            lines.append(f'{key} "{value}";')
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in _PROXY_VARS and not k.startswith("APT_")
    }
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    if extra:
        env.update(extra)
    return env


# Runs inside a minimal interpreter (``-S -I``, ~8 MiB RSS) so that the measured
# child is spawned from a small address space: on Linux ``ru_maxrss`` of an
# exec'd child includes the high-water RSS of the image it was forked from, which
# would be this (large) benchmark process if we spawned the child directly.
_LAUNCHER = r"""
import os, sys, time
fd = int(sys.argv[1])
os.set_inheritable(fd, False)
argv = sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
os.write(fd, f"{seconds!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}".encode())
"""


def _run_measured(
    argv: Sequence[str], env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, RunStats]:
    """Run ``argv``; returns its exit code and :class:`RunStats`.

    Wall time and ``ru_maxrss`` are taken by a minimal launcher process around
    ``posix_spawn`` + ``os.wait4`` of the child (so the launcher's own start-up
    is not counted).  ``ru_maxrss`` from ``wait4`` is the maximum of the child's
    peak RSS and that of every descendant it reaped; its floor is the
    launcher's RSS (see :func:`rss_floor_kib`).
    """
    rfd, wfd = os.pipe()
    try:
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            tempfile.TemporaryFile() as inp,
        ):
            if stdin is not None:
                inp.write(stdin)
                inp.seek(0)
            proc = subprocess.Popen(
                [sys.executable, "-S", "-I", "-c", _LAUNCHER, str(wfd), *argv],
                stdin=inp,
                stdout=out,
                stderr=err,
                env=env,
                pass_fds=(wfd,),
            )
            os.close(wfd)
            wfd = -1
            report = b""
            while chunk := os.read(rfd, 4096):
                report += chunk
            launcher_code = proc.wait()
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    fields = report.decode().split()
    if launcher_code != 0 or len(fields) != 3:
        raise AnchorError(f"could not run {argv[0]} (launcher exit {launcher_code}):\n{stderr}")
    seconds, maxrss, code = float(fields[0]), int(fields[1]), int(fields[2])
    return code, RunStats(seconds=seconds, peak_rss_kib=maxrss, stdout=stdout, stderr=stderr)


def rss_floor_kib() -> int:
    """Peak RSS that :func:`_run_measured` reports for ``true`` (the floor)."""
    return _run_measured(["true"], _clean_env())[1].peak_rss_kib


def apt_update_measured(
    repo_url: str,
    keyring: Path,
    state_dir: Path,
    *,
    suite: str = "./",
    components: Sequence[str] = (),
) -> RunStats:
    """``apt-get update`` in the isolated apt root ``state_dir``.

    A new or empty ``state_dir`` gives a cold run; calling again with the same
    ``state_dir`` (repository unchanged) gives a no-change run.  ``suite`` /
    ``components`` default to a flat repository (``./``); pass
    ``repo.suite, repo.components`` of an :class:`AptRepo` with ``dists``.
    Raises :class:`AnchorError` with apt's output on a non-zero exit, on any
    ``W:``/``E:`` line or on any ``Err:`` line.
    """
    state_dir = state_dir.resolve()
    sources = _sources_line(repo_url, keyring, suite, components, native_arch())
    conf = _prepare_apt_root(state_dir, sources)
    argv = ["apt-get"]
    for key, value in _apt_options(state_dir).items():
        argv += ["-o", f"{key}={value}"]
    argv.append("update")
    code, stats = _run_measured(argv, _clean_env({"APT_CONFIG": str(conf)}))
    bad = [
        ln
        for ln in (stats.stderr + stats.stdout).splitlines()
        if ln.startswith(("W:", "E:", "Err:"))
    ]
    if code != 0 or bad:
        raise AnchorError(
            f"apt-get update of {repo_url} failed (exit {code}):\n"
            f"--- stderr ---\n{stats.stderr}\n--- stdout ---\n{stats.stdout}"
        )
    lists = state_dir / "var/lib/apt/lists"
    if not any(p.name.endswith("Packages") for p in lists.iterdir()):
        raise AnchorError(f"apt-get update of {repo_url} stored no Packages index:\n{stats.stdout}")
    return stats


def apt_update(repo_url: str, keyring: Path, state_dir: Path) -> float:
    """Wall seconds of one isolated ``apt-get update`` of a flat repository.

    See :func:`apt_update_measured` (peak RSS, dists layout).
    """
    return apt_update_measured(repo_url, keyring, state_dir).seconds


# --------------------------------------------------------------------------
# static file server
# --------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + pipelining, as apt expects
    timeout = 60  # idle keep-alive connections do not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _NoDelayHandler(_QuietHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY, as nginx's default tcp_nodelay


@contextlib.contextmanager
def serve_dir(path: Path, *, nodelay: bool = False) -> Iterator[str]:
    """Serve ``path`` read-only on ``127.0.0.1``, random port; yields the base URL.

    ``http.server.ThreadingHTTPServer`` with a quiet ``SimpleHTTPRequestHandler``
    (HTTP/1.1 keep-alive, ``If-Modified-Since`` -> 304) in a daemon thread of
    this process.  Use the same server for repotool to keep comparisons fair.
    ``nodelay`` sets TCP_NODELAY on accepted sockets (see ``common.serve_dir_nodelay``).
    """
    handler = functools.partial(_NoDelayHandler if nodelay else _QuietHandler,
                                directory=str(path))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="serve_dir", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------
# python-tuf repository and client
# --------------------------------------------------------------------------


def build_tuf_repo(
    root: Path,
    targets: int,
    projects: int,
    *,
    write_files: bool = False,
    compact: bool = True,
    seed: int = 0,
) -> Path:
    """Write a python-tuf repository; returns its metadata directory.

    ``root/metadata/`` gets ``1.root.json`` (and ``root.json``),
    ``1.targets.json`` with ``targets`` entries in ONE targets role,
    ``1.snapshot.json`` and ``timestamp.json`` (consistent_snapshot on), each
    role with its own fresh Ed25519 ``CryptoSigner``, expiring in 30 days.
    Target paths look like ``files/proj-00042/proj_00042-1.3-py3-none-any.whl``;
    length and sha256 are those of small synthetic contents, which are written
    under ``root/targets/`` (hash-prefixed names) only if ``write_files``.
    JSON is compact unless ``compact=False``.
    """
    meta_dir = root / "metadata"
    meta_dir.mkdir(parents=True, exist_ok=True)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    rnd = random.Random(seed)
    signers = {
        role: CryptoSigner.generate_ed25519()
        for role in ("root", "timestamp", "snapshot", "targets")
    }

    root_md = Metadata(Root(expires=expires, consistent_snapshot=True))
    for role, signer in signers.items():
        root_md.signed.add_key(signer.public_key, role)

    targets_md = Metadata(Targets(expires=expires))
    tmap = targets_md.signed.targets
    targets_dir = root / "targets"
    for i in range(targets):
        p, ver = _project(i, projects)
        name = f"files/proj-{p:05d}/proj_{p:05d}-{ver}-py3-none-any.whl"
        content = _synthetic_content(name, rnd)
        digest = hashlib.sha256(content).hexdigest()
        tmap[name] = TargetFile(len(content), {"sha256": digest}, name)
        if write_files:
            dest = targets_dir / f"files/proj-{p:05d}/{digest}.{name.rsplit('/', 1)[1]}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)

    snapshot_md = Metadata(Snapshot(expires=expires))
    snapshot_md.signed.meta["targets.json"] = MetaFile(version=1)
    timestamp_md = Metadata(Timestamp(expires=expires))
    timestamp_md.signed.snapshot_meta = MetaFile(version=1)

    ser = JSONSerializer(compact=compact)
    out: dict[str, tuple[Metadata[Any], str]] = {
        "1.root.json": (root_md, "root"),
        "1.targets.json": (targets_md, "targets"),
        "1.snapshot.json": (snapshot_md, "snapshot"),
        "timestamp.json": (timestamp_md, "timestamp"),
    }
    for fname, (md, role) in out.items():
        md.sign(signers[role])
        (meta_dir / fname).write_bytes(md.to_bytes(ser))
    shutil.copyfile(meta_dir / "1.root.json", meta_dir / "root.json")
    return meta_dir


_TUF_CLIENT = r"""
import sys
from urllib.parse import unquote, urlparse

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig


class FileFetcher(FetcherInterface):
    def _fetch(self, url):
        path = unquote(urlparse(url).path)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise exceptions.DownloadHTTPError(f"not found: {url}", 404) from None

        def chunks():
            with f:
                while chunk := f.read(1 << 16):
                    yield chunk

        return chunks()


url, cache_dir, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = UpdaterConfig(targets_max_length=max_len, snapshot_max_length=max_len)
updater = Updater(
    metadata_dir=cache_dir,
    metadata_base_url=url,
    fetcher=FileFetcher() if url.startswith("file:") else None,
    config=config,
    bootstrap=sys.stdin.buffer.read(),
)
updater.refresh()
"""


def tuf_update_measured(metadata_url: str, root_bytes: bytes, cache_dir: Path) -> RunStats:
    """python-tuf ``Updater.refresh()`` in a fresh ``sys.executable`` process.

    ``metadata_url`` is ``http://...`` (default urllib3 fetcher) or
    ``file:///...`` (local-file ``FetcherInterface``).  An empty/new
    ``cache_dir`` gives a cold run, a second call on it a no-change run.
    ``root_bytes`` (the trusted ``1.root.json``) is passed on stdin as the
    ``bootstrap``.  Raises :class:`AnchorError` if the client fails.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-c",
        _TUF_CLIENT,
        metadata_url,
        str(cache_dir.resolve()),
        str(TUF_TARGETS_MAX_LENGTH),
    ]
    code, stats = _run_measured(argv, _clean_env(), stdin=root_bytes)
    if code != 0:
        raise AnchorError(
            f"python-tuf refresh of {metadata_url} failed (exit {code}):\n{stats.stderr}"
        )
    if not (cache_dir / "targets.json").exists():
        raise AnchorError(f"python-tuf refresh of {metadata_url} cached no targets.json")
    return stats


def tuf_update(metadata_url: str, root_bytes: bytes, cache_dir: Path) -> float:
    """Wall seconds of :func:`tuf_update_measured`."""
    return tuf_update_measured(metadata_url, root_bytes, cache_dir).seconds


# --------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------


def sha256_throughput(size_mb: int = 256) -> float:
    """Bytes/s of ``hashlib.sha256`` over ``size_mb`` MiB in 1 MiB chunks (median of 3)."""
    chunk = 1 << 20
    buf = memoryview(os.urandom(size_mb * chunk))
    rates = []
    for _ in range(3):
        h = hashlib.sha256()
        t0 = time.perf_counter()
        for off in range(0, len(buf), chunk):
            h.update(buf[off : off + chunk])
        h.hexdigest()
        rates.append(len(buf) / (time.perf_counter() - t0))
    return statistics.median(rates)


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def _summary(runs: Sequence[RunStats]) -> dict[str, Any]:
    return {
        "seconds_median": round(statistics.median(r.seconds for r in runs), 4),
        "seconds_all": [round(r.seconds, 4) for r in runs],
        "peak_rss_kib_max": max(r.peak_rss_kib for r in runs),
    }


def _measure_pair(
    run: Callable[[Path], RunStats], state_root: Path, repeat: int, label: str
) -> dict[str, Any]:
    """``repeat`` x (cold run in a fresh dir, then a no-change run on that dir)."""
    cold: list[RunStats] = []
    warm: list[RunStats] = []
    for r in range(repeat):
        state = state_root / f"run{r}"
        shutil.rmtree(state, ignore_errors=True)
        cold.append(run(state))
        warm.append(run(state))
        _log(f"{label}: cold {cold[-1].seconds:.3f}s  no-change {warm[-1].seconds:.3f}s")
    return {"cold": _summary(cold), "no_change": _summary(warm)}


def _log(msg: str) -> None:
    print(f"[anchors] {msg}", file=sys.stderr, flush=True)


def run_all(
    workdir: Path,
    entries: int,
    projects: int,
    *,
    repeat: int = 3,
    targets: int | None = None,
    layout: Layout = "flat",
    stanza: Stanza = "lean",
    sha_mb: int = 256,
) -> dict[str, Any]:
    """Build both repositories under ``workdir`` and measure everything.

    Returns the JSON-able result printed by ``__main__``: for apt and
    python-tuf, over ``file`` and ``http``, ``cold`` and ``no_change`` each
    with the median / all wall seconds and the max peak RSS (KiB).
    """
    targets = entries if targets is None else targets
    workdir = workdir.resolve()
    apt_ver = subprocess.run(
        ["apt-get", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    result: dict[str, Any] = {
        "params": {
            "entries": entries,
            "targets": targets,
            "projects": projects,
            "repeat": repeat,
            "layout": layout,
            "stanza": stanza,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "apt": apt_ver[0] if apt_ver else "?",
        },
        "peak_rss_method": (
            "ru_maxrss (KiB) from os.wait4() on the child, in a minimal launcher: "
            "largest single process of the child's tree (as /usr/bin/time -v)"
        ),
        "peak_rss_floor_kib": rss_floor_kib(),
    }

    t0 = time.perf_counter()
    repo = build_apt_repo(workdir / "apt-repo", entries, projects, layout=layout, stanza=stanza)
    t_apt = time.perf_counter() - t0
    _log(f"apt repository: {entries} entries in {t_apt:.1f}s")
    t0 = time.perf_counter()
    meta_dir = build_tuf_repo(workdir / "tuf-repo", targets, projects)
    t_tuf = time.perf_counter() - t0
    _log(f"TUF repository: {targets} targets in {t_tuf:.1f}s")
    root_bytes = (meta_dir / "1.root.json").read_bytes()
    result["build_seconds"] = {"apt": round(t_apt, 3), "tuf": round(t_tuf, 3)}
    result["sizes"] = {
        "apt": repo.sizes,
        "tuf": {p.name: p.stat().st_size for p in sorted(meta_dir.iterdir())},
    }

    def apt_run(url: str) -> Callable[[Path], RunStats]:
        return lambda state: apt_update_measured(
            url, repo.keyring, state, suite=repo.suite, components=repo.components
        )

    def tuf_run(url: str) -> Callable[[Path], RunStats]:
        return lambda state: tuf_update_measured(url, root_bytes, state)

    with serve_dir(workdir) as base:
        result["apt"] = {
            "file": _measure_pair(
                apt_run(repo.root.as_uri() + "/"), workdir / "apt-file", repeat, "apt file"
            ),
            "http": _measure_pair(
                apt_run(base + "apt-repo/"), workdir / "apt-http", repeat, "apt http"
            ),
        }
        result["python_tuf"] = {
            "file": _measure_pair(
                tuf_run(meta_dir.as_uri() + "/"), workdir / "tuf-file", repeat, "tuf file"
            ),
            "http": _measure_pair(
                tuf_run(base + "tuf-repo/metadata/"),
                workdir / "tuf-http",
                repeat,
                "tuf http",
            ),
        }
    result["sha256_bytes_per_s"] = round(sha256_throughput(sha_mb))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build, measure, print the JSON result on stdout."""
    parser = argparse.ArgumentParser(
        description="Measure the apt-get / python-tuf anchors repotool is compared to."
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=10000,
        help="apt package stanzas (and TUF targets unless --targets)",
    )
    parser.add_argument(
        "--targets",
        type=int,
        default=None,
        help="TUF targets in the one targets role (default: --entries)",
    )
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layout", choices=("flat", "dists"), default="flat")
    parser.add_argument("--stanza", choices=("lean", "debian"), default="lean")
    parser.add_argument("--sha-mb", type=int, default=256)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="build and keep everything here (default: a temp dir, removed)",
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="anchors-")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        res = run_all(
            workdir,
            args.entries,
            args.projects,
            repeat=args.repeat,
            targets=args.targets,
            layout=args.layout,
            stanza=args.stanza,
            sha_mb=args.sha_mb,
        )
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
