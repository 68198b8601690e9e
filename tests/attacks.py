"""Helpers for the client's attack tests: serving a repository over each transport,
forging metadata, and fingerprinting trusted state.

(PYTEST_DONT_REWRITE: test modules import it before pytest_plugins registers it.)

Public API::

    TRANSPORTS = ("path", "file", "http", "https")
    Locations(tmp_path, ca)        .serve(root, kind) -> Location; .close()
    Location                       .url, .kind, .server (None for path/file),
                                   .add_args (e.g. ["--ca-cert", F]), .env
    tree_digest(path) -> dict      relative path -> sha256 of every file under path
    keyring_digest(home, name)     tree_digest of HOME/sources/NAME/keyring
    load_md(path) / write_md(path, md)         python-tuf Metadata on disk (compact)
    resign(md, *signers)           clear signatures and sign again
    flip_signed_byte(path)         change one byte of the signed payload, keep valid JSON
    strip_signatures(path)
    shard_files(root) -> dict      shard id -> hashed file path the *current* targets names
    wheel_path(root, project, filename) -> Path   the hash-prefixed file
    role_separated_repo(base, name, projects) -> RolePub   offline root, targets, online key
    forge_targets(root, mutate, *signers)      a new targets/snapshot/timestamp chain
    run_repotool(*args, timeout=) -> CompletedProcess   in a subprocess
    popen_repotool(*args) -> Popen

Fixtures (``pytest_plugins = ["attacks"]`` in a test module): ``ca`` (session trustme
CA), ``locations`` (a ``Locations`` whose servers stop at teardown), ``pubs`` (like
conftest's ``make_published``, but each distinct repository is built once per session
and copied: ``pubs(name=, projects=, keyname=)``; different key names, different keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import build_wheel
from conftest import KeyPair, Published, make_key
from servers import RepoServer, tls_ca, write_ca_bundle
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from repotool.format.layout import dist_target_path, hashed_name
from repotool.publish.workspace import Repository, RoleKeys

TRANSPORTS = ("path", "file", "http", "https")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Location:
    kind: str
    url: str
    server: RepoServer | None = None
    add_args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None


class Locations:
    """Serves repository directories over a transport; ``close()`` stops every server."""

    def __init__(self, tmp_path: Path, ca: Any) -> None:
        self.tmp_path = tmp_path
        self.ca = ca
        self.servers: list[RepoServer] = []
        self._ca_file: Path | None = None

    @property
    def ca_file(self) -> Path:
        if self._ca_file is None:
            self._ca_file = write_ca_bundle(self.ca, self.tmp_path / "ca" / "ca.pem")
        return self._ca_file

    def server(self, root: Path, *, https: bool = False) -> RepoServer:
        srv = RepoServer(root, ca=self.ca if https else None, slow_interval=0.5).start()
        self.servers.append(srv)
        return srv

    def serve(self, root: Path, kind: str) -> Location:
        if kind == "path":
            return Location(kind, str(root))
        if kind == "file":
            return Location(kind, root.resolve().as_uri())
        srv = self.server(root, https=kind == "https")
        loc = Location(kind, srv.url, srv)
        if kind == "https":
            loc.add_args = ["--ca-cert", str(self.ca_file)]
        return loc

    def close(self) -> None:
        for s in self.servers:
            s.stop()
        errors = [e for s in self.servers for e in s.errors]
        assert not errors, errors


# ---- trusted state ------------------------------------------------------------------------


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under ``path`` (relative name → sha256); empty if it does not exist."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def keyring_digest(home: Path, name: str) -> dict[str, str]:
    return tree_digest(home / "sources" / name / "keyring")


def source_config(home: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((home / "sources" / name / "source.json").read_bytes())
    return doc


# ---- forging metadata ---------------------------------------------------------------------


def load_md(path: Path) -> Metadata[Any]:
    return Metadata.from_bytes(path.read_bytes())


def write_md(path: Path, md: Metadata[Any]) -> None:
    path.write_bytes(md.to_bytes(JSONSerializer(compact=True)))


def resign(md: Metadata[Any], *signers: Any) -> Metadata[Any]:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    return md


def flip_signed_byte(path: Path) -> None:
    """Change the signed payload (its ``expires`` year, + 1) keeping the JSON valid and
    the signatures as they were: only the signature check can notice."""
    data = path.read_bytes()
    doc = json.loads(data)
    year = int(doc["signed"]["expires"][:4])
    doc["signed"]["expires"] = str(year + 1) + doc["signed"]["expires"][4:]
    path.write_bytes(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())


def strip_signatures(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    doc["signatures"] = []
    path.write_bytes(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())


def current_targets(root: Path) -> Metadata[Any]:
    meta = root / "metadata"
    ts = load_md(meta / "timestamp.json")
    snap = load_md(meta / f"{ts.signed.snapshot_meta.version}.snapshot.json")
    tv = snap.signed.meta["targets.json"].version
    return load_md(meta / f"{tv}.targets.json")


def current_files(root: Path) -> dict[str, Path]:
    """Role name → the metadata file the current timestamp leads to."""
    meta = root / "metadata"
    ts = load_md(meta / "timestamp.json")
    sv = ts.signed.snapshot_meta.version
    snap = load_md(meta / f"{sv}.snapshot.json")
    tv = snap.signed.meta["targets.json"].version
    return {
        "timestamp": meta / "timestamp.json",
        "snapshot": meta / f"{sv}.snapshot.json",
        "targets": meta / f"{tv}.targets.json",
    }


def shard_files(root: Path) -> dict[str, Path]:
    """Shard id → the hash-prefixed shard file the current targets names."""
    out = {}
    for path, tf in current_targets(root).signed.targets.items():
        if path.startswith("index/"):
            out[path[len("index/"):-len(".json")]] = root / hashed_name(path, tf.hashes["sha256"])
    return out


def wheel_path(root: Path, project: str, filename: str) -> Path:
    """The hash-prefixed (consistent snapshot) copy of a published distribution."""
    data = (root / "files" / project / filename).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return root / hashed_name(dist_target_path(project, filename), sha)


def wheel_url_path(root: Path, project: str, filename: str) -> str:
    return "/" + str(wheel_path(root, project, filename).relative_to(root))


# ---- a role-separated repository -----------------------------------------------------------


@dataclass
class RolePub:
    root: Path
    root_key: KeyPair
    targets_key: KeyPair
    online_key: KeyPair
    dist: Path

    @property
    def repo(self) -> Repository:
        return Repository(self.root)

    def signers(self) -> list[Any]:
        return [self.root_key.signer(), self.targets_key.signer(), self.online_key.signer()]

    def add_wheel(self, name: str, version: str) -> Path:
        whl = build_wheel(self.dist, name, version)
        self.repo.add([whl], now=datetime.now(UTC))
        return whl


def role_separated_repo(base: Path, name: str = "sep",
                        projects: dict[str, list[str]] | None = None) -> RolePub:
    keys = base / "keys"
    rk, tk, ok = make_key(keys, "root"), make_key(keys, "targets"), make_key(keys, "online")
    Repository.init(
        base / "repo", name,
        RoleKeys([rk.public_key()], 1, [tk.public_key()], 1, [ok.public_key()]),
        now=datetime.now(UTC),
    )
    pub = RolePub(base / "repo", rk, tk, ok, base / "dist")
    for project, versions in (projects or {"demo-pkg": ["1.0"]}).items():
        for v in versions:
            pub.add_wheel(project, v)
    pub.repo.sign(pub.signers(), now=datetime.now(UTC))
    return pub


# ---- subprocesses -------------------------------------------------------------------------


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_repotool(*args: str | Path, timeout: float = 60,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m repotool ARGS`` in a subprocess (raises TimeoutExpired past ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "repotool", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=subprocess_env(env),
        check=False,
    )


def popen_repotool(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "repotool", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(env),
    )


# ---- fixtures (pytest_plugins = ["attacks"] in a test module) --------------------------------


@pytest.fixture(scope="session")
def ca() -> Any:
    return tls_ca()


@pytest.fixture
def locations(tmp_path: Path, ca: Any):  # type: ignore[no-untyped-def]
    locs = Locations(tmp_path, ca)
    yield locs
    locs.close()


_TEMPLATES: dict[tuple[Any, ...], tuple[Path, KeyPair]] = {}
_TEMPLATE_DIR: list[Path] = []


@pytest.fixture
def pubs(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Like conftest's ``make_published`` but fast: each distinct (name, projects, keyname)
    is built once per session and copied. ``keyname`` picks the signing key: repositories
    with different key names never share a key."""
    counter = iter(range(1000))

    def factory(name: str = "demo", projects: dict[str, list[str]] | None = None,
                keyname: str | None = None) -> Published:
        projects = projects or {"demo-pkg": ["1.0"]}
        keyname = keyname or name
        spec = (name, tuple((p, tuple(v)) for p, v in sorted(projects.items())), keyname)
        if not _TEMPLATE_DIR:
            _TEMPLATE_DIR.append(tmp_path_factory.mktemp("templates"))
        if spec not in _TEMPLATES:
            base = _TEMPLATE_DIR[0] / f"t{len(_TEMPLATES)}"
            keys_dir = _TEMPLATE_DIR[0] / "keys"
            kp = (KeyPair(keys_dir / f"{keyname}.key", keys_dir / f"{keyname}.pub", "")
                  if (keys_dir / f"{keyname}.pub").exists() else make_key(keys_dir, keyname))
            if not kp.fingerprint:
                kp = KeyPair(kp.private, kp.public, kp.public_key().keyid)
            pk = kp.public_key()
            Repository.init(base / "repo", name, RoleKeys([pk], 1, [pk], 1, [pk]),
                            now=datetime.now(UTC))
            tpub = Published(base / "repo", kp, base / "dist")
            for project, versions in projects.items():
                for v in versions:
                    tpub.add_wheel(project, v)
            tpub.sign()
            _TEMPLATES[spec] = (base, kp)
        base, kp = _TEMPLATES[spec]
        dest = tmp_path / f"pub{next(counter)}"
        shutil.copytree(base, dest, symlinks=True)
        return Published(dest / "repo", kp, dest / "dist")

    return factory


def forge_targets(root: Path, mutate: Any, *signers: Any) -> None:
    """Publish a new targets version changed by ``mutate(targets_signed)``, with a new
    snapshot and timestamp naming it, all signed by ``signers`` (the attacker's keys)."""
    from tuf.api.metadata import MetaFile

    meta = root / "metadata"
    files = current_files(root)
    tmd = load_md(files["targets"])
    mutate(tmd.signed)
    tmd.signed.version += 1
    tpath = meta / f"{tmd.signed.version}.targets.json"
    write_md(tpath, resign(tmd, *signers))
    snap = load_md(files["snapshot"])
    snap.signed.version += 1
    snap.signed.meta["targets.json"] = MetaFile.from_data(
        tmd.signed.version, tpath.read_bytes(), ["sha256"])
    spath = meta / f"{snap.signed.version}.snapshot.json"
    write_md(spath, resign(snap, *signers))
    ts = load_md(meta / "timestamp.json")
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile.from_data(
        snap.signed.version, spath.read_bytes(), ["sha256"])
    write_md(meta / "timestamp.json", resign(ts, *signers))
