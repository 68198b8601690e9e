#!/usr/bin/env python3
"""Generate repotool's golden repository and forgeries, byte for byte reproducibly.

    python tests/vectors/generate.py            # rewrites tests/vectors/{keys,golden,forgeries}
    python tests/vectors/generate.py OUT_DIR    # somewhere else (tests compare the two)

Everything is a function of fixed inputs: Ed25519 TEST KEYS from fixed 32-byte seeds,
fixed publication times, deterministic wheels/sdists (tests/builders.py), and expiry on
2100-01-01 so the vectors never expire. Ed25519 signatures are deterministic, so running
this twice gives identical bytes. See README.md for what each file is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: builders
sys.path.insert(0, str(HERE.parent.parent))  # the checkout: repotool

from builders import build_sdist, build_wheel  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from tuf.api.metadata import Metadata, MetaFile, TargetFile  # noqa: E402
from tuf.api.serialization.json import JSONSerializer  # noqa: E402

from repotool import keys  # noqa: E402
from repotool.format.index import Shard, shard_of, shard_path  # noqa: E402
from repotool.format.index2 import layout_of  # noqa: E402
from repotool.format.layout import hashed_name  # noqa: E402
from repotool.publish.workspace import Repository, RoleKeys  # noqa: E402

KEY_NAMES = ("root", "targets", "online", "online2", "attacker")
T1 = datetime(2025, 1, 1, tzinfo=UTC)  # first publication
T2 = datetime(2025, 1, 2, tzinfo=UTC)  # demo-pkg 1.1 added, 1.0 yanked
T3 = datetime(2025, 1, 3, tzinfo=UTC)  # online key rotated: root version 2
T4 = datetime(2025, 1, 4, tzinfo=UTC)  # timestamp re-signed by the new online key
T5 = datetime(2025, 1, 5, tzinfo=UTC)  # golden-v2: 'repo migrate' to format 2
EXPIRES = datetime(2100, 1, 1, tzinfo=UTC)
BIN_BITS = 2  # 4 bins keep the vectors small; clients must read bit_length, not assume 8
SERIALIZER = JSONSerializer(compact=True)
WHEEL = "files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"


def seed(name: str) -> bytes:
    return hashlib.sha256(f"repotool test vector key {name} - TEST KEY, NOT SECRET".encode()
                          ).digest()


def write_keys(out: Path) -> dict[str, Path]:
    """``keys/NAME.key`` (unencrypted PKCS#8) and ``keys/NAME.pub`` for every TEST KEY."""
    kdir = out / "keys"
    kdir.mkdir(parents=True)
    paths = {}
    for name in KEY_NAMES:
        k = Ed25519PrivateKey.from_private_bytes(seed(name))
        (kdir / f"{name}.key").write_bytes(k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (kdir / f"{name}.pub").write_bytes(k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        paths[name] = kdir / name
    return paths


def lifetime(now: datetime) -> int:
    return int((EXPIRES - now).total_seconds())


def publish(work: Path, kp: dict[str, Path]) -> tuple[Path, bytes]:
    """The golden repository's history; returns its directory and the timestamp that T4
    superseded (validly signed, older: the rollback forgery)."""
    signer = {n: keys.load_signer(Path(f"{p}.key"), lambda: None) for n, p in kp.items()}
    pub = {n: keys.public_from_file(Path(f"{p}.pub")) for n, p in kp.items()}
    repo = Repository.init(
        work / "golden", "golden",
        RoleKeys([pub["root"]], 1, [pub["targets"]], 1, [pub["online"]]),
        now=T1, bin_bits=BIN_BITS)
    d1 = work / "dist1"
    build_wheel(d1, "demo-pkg", "1.0", requires_python=">=3.8", summary="A demo package")
    build_sdist(d1, "demo-pkg", "1.0", requires_python=">=3.8", summary="A demo package")
    build_wheel(d1, "dep-a", "2.0", summary="Dependency A")
    repo.add([d1], now=T1)
    repo.sign([signer["root"], signer["targets"], signer["online"]], now=T1,
              expires=lifetime(T1))
    d2 = work / "dist2"
    build_wheel(d2, "demo-pkg", "1.1", requires_dist=["dep-a>=2"], summary="A demo package")
    repo.add([d2], now=T2)
    repo.yank("demo-pkg", "1.0", "use 1.1")
    repo.sign([signer["targets"], signer["online"]], now=T2, expires=lifetime(T2))
    repo.rotate("online", [pub["online2"]], [pub["online"].keyid], None,
                [signer["root"], signer["targets"], signer["online2"]], now=T3,
                expires=lifetime(T3))
    superseded = (repo.root / "metadata" / "timestamp.json").read_bytes()
    repo.sign([signer["online2"]], now=T4, expires=lifetime(T4))
    return repo.root, superseded


def md_bytes(md: Metadata[Any]) -> bytes:
    return bytes(md.to_bytes(SERIALIZER))


def current(golden: Path) -> dict[str, Any]:
    meta = golden / "metadata"
    ts = Metadata.from_bytes((meta / "timestamp.json").read_bytes())
    snap_name = f"{ts.signed.snapshot_meta.version}.snapshot.json"
    snap = Metadata.from_bytes((meta / snap_name).read_bytes())
    tv = snap.signed.meta["targets.json"].version
    targets = Metadata.from_bytes((meta / f"{tv}.targets.json").read_bytes())
    return {"timestamp": ts, "snapshot": snap, "snapshot_name": snap_name, "targets": targets,
            "targets_name": f"{tv}.targets.json"}


def forge(golden: Path, out: Path, kp: dict[str, Path], superseded: bytes) -> dict[str, Any]:
    """Overlay directories: each holds only the files that replace golden's."""
    attacker = keys.load_signer(Path(f"{kp['attacker']}.key"), lambda: None)
    cur = current(golden)
    made: dict[str, Any] = {}

    def put(name: str, rel: str, data: bytes) -> None:
        p = out / "forgeries" / name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    # (1) a tampered wheel of the same size, under both of its names
    tf = cur["targets"]  # the wheel's entry is in a bin; its sha256 is in the shard too
    sid = shard_of("demo-pkg")
    shard_tf = tf.signed.targets[shard_path(sid)]
    shard_rel = hashed_name(shard_path(sid), shard_tf.hashes["sha256"])
    shard = Shard.from_bytes((golden / shard_rel).read_bytes(), sid)
    entry = next(f for f in shard.projects["demo-pkg"].files
                 if f.filename == WHEEL.rsplit("/", 1)[1])
    data = bytearray((golden / hashed_name(WHEEL, entry.sha256)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    put("tampered-wheel", hashed_name(WHEEL, entry.sha256), bytes(data))
    put("tampered-wheel", WHEEL, bytes(data))
    made["tampered-wheel"] = {
        "description": "demo_pkg-1.0-py3-none-any.whl with one byte flipped (same size), "
                       "under its hash-prefixed and plain names",
        "refused_by": "download of demo-pkg==1.0 (sha256 differs from the shard's and the "
                      "bin's); repo check",
        "update": 0, "download": 3, "check": 3,
    }

    # (2) the current targets metadata, same signed bytes, signed by a key root never named
    t = Metadata.from_bytes(md_bytes(cur["targets"]))
    t.sign(attacker, append=False)
    put("targets-wrong-key", f"metadata/{cur['targets_name']}", md_bytes(t))
    made["targets-wrong-key"] = {
        "description": f"metadata/{cur['targets_name']} re-signed by the attacker TEST KEY "
                       "instead of the targets key",
        "refused_by": "update (snapshot's hash of targets differs; the signature is not by a "
                      "targets key); repo check",
        "update": 3, "check": 3,
    }

    # (3) the attacker publishes a whole new chain with its own key: targets → snapshot →
    #     timestamp, each one version up and consistent by hash — but not signed by the keys
    #     root certifies
    evil_shard = Shard(sid, {"demo-pkg": shard.projects["demo-pkg"]})
    evil_shard.projects["demo-pkg"].summary = "owned"
    evil = evil_shard.to_bytes()
    evil_tf = TargetFile.from_data(shard_path(sid), evil, ["sha256"])
    put("attacker-chain", hashed_name(shard_path(sid), evil_tf.hashes["sha256"]), evil)
    t = Metadata.from_bytes(md_bytes(cur["targets"]))
    t.signed.targets[shard_path(sid)] = evil_tf
    t.signed.version += 1
    t.sign(attacker, append=False)
    put("attacker-chain", f"metadata/{t.signed.version}.targets.json", md_bytes(t))
    s = Metadata.from_bytes(md_bytes(cur["snapshot"]))
    s.signed.meta["targets.json"] = MetaFile.from_data(t.signed.version, md_bytes(t), ["sha256"])
    s.signed.version += 1
    s.sign(attacker, append=False)
    put("attacker-chain", f"metadata/{s.signed.version}.snapshot.json", md_bytes(s))
    ts = Metadata.from_bytes(md_bytes(cur["timestamp"]))
    ts.signed.snapshot_meta = MetaFile.from_data(s.signed.version, md_bytes(s), ["sha256"])
    ts.signed.version += 1
    ts.sign(attacker, append=False)
    put("attacker-chain", "metadata/timestamp.json", md_bytes(ts))
    made["attacker-chain"] = {
        "description": "a new targets (naming a changed shard), snapshot and timestamp, each "
                       "one version up and consistent by hash, all signed by the attacker "
                       "TEST KEY",
        "refused_by": "update (timestamp not signed by the online key root names); repo check",
        "update": 3, "check": 3,
    }

    # (4) the current shard of demo-pkg, replaced under its own (hash) name
    put("shard-mismatch", shard_rel, evil)
    made["shard-mismatch"] = {
        "description": f"{shard_rel} replaced by a valid shard with other bytes (the summary "
                       "of demo-pkg changed)",
        "refused_by": "update (sha256 of the shard differs from the one targets signed); "
                      "repo check",
        "update": 3, "check": 3,
    }

    # (5) rollback: an older timestamp, validly signed by the current online key
    put("timestamp-rollback", "metadata/timestamp.json", superseded)
    old = Metadata.from_bytes(superseded).signed.version
    made["timestamp-rollback"] = {
        "description": f"metadata/timestamp.json replaced by timestamp version {old}, validly "
                       f"signed by the current online key, after a client accepted version "
                       f"{cur['timestamp'].signed.version}",
        "refused_by": "update by a client that already accepted the golden repository "
                      "(a fresh client, and repo check, cannot tell: the older state is "
                      "complete and valid)",
        "update_after_golden": 3, "check": 0,
    }
    return made


def migrate(built: Path, work: Path, kp: dict[str, Path]) -> Path:
    """golden-v2: a copy of golden's history (workspace included), then step 5:
    'repo migrate' to format 2 by the targets and online keys (root is not re-signed)."""
    dest = work / "golden-v2"
    shutil.copytree(built, dest)
    signer = {n: keys.load_signer(Path(f"{kp[n]}.key"), lambda: None)
              for n in ("targets", "online2")}
    Repository(dest).migrate([signer["targets"], signer["online2"]], now=T5,
                             expires=lifetime(T5))
    return dest


def forge_v2(golden_v2: Path, golden: Path, out: Path, kp: dict[str, Path]) -> dict[str, Any]:
    """Overlays on golden-v2: what format 2 adds, attacked."""
    attacker = keys.load_signer(Path(f"{kp['attacker']}.key"), lambda: None)
    online2 = keys.load_signer(Path(f"{kp['online2']}.key"), lambda: None)
    cur = current(golden_v2)
    made: dict[str, Any] = {}

    def put(name: str, rel: str, data: bytes) -> None:
        p = out / "forgeries-v2" / name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    # (1) the online key (compromised) publishes a targets with another index layout,
    #     signed by the attacker instead of the targets key
    t = Metadata.from_bytes(md_bytes(cur["targets"]))
    t.signed.unrecognized_fields["x-repotool"]["index_bits"] = 3
    t.signed.version += 1
    t.sign(attacker, append=False)
    put("layout-not-signed-by-targets", f"metadata/{t.signed.version}.targets.json",
        md_bytes(t))
    s = Metadata.from_bytes(md_bytes(cur["snapshot"]))
    s.signed.meta["targets.json"] = MetaFile.from_data(t.signed.version, md_bytes(t), ["sha256"])
    s.signed.version += 1
    s.sign(online2, append=False)
    put("layout-not-signed-by-targets", f"metadata/{s.signed.version}.snapshot.json",
        md_bytes(s))
    ts = Metadata.from_bytes(md_bytes(cur["timestamp"]))
    ts.signed.snapshot_meta = MetaFile.from_data(s.signed.version, md_bytes(s), ["sha256"])
    ts.signed.version += 1
    ts.sign(online2, append=False)
    put("layout-not-signed-by-targets", "metadata/timestamp.json", md_bytes(ts))
    made["layout-not-signed-by-targets"] = {
        "description": "targets one version up with x-repotool.index_bits 3, signed by the "
                       "attacker TEST KEY; snapshot and timestamp naming it, validly signed "
                       "by the online key (a compromised online key)",
        "refused_by": "update (targets not signed by the targets key); repo check",
        "update": 3, "check": 3,
    }

    # (2) the format 2 shard replaced under its own (hash) name
    layout = layout_of(cur["targets"].signed.unrecognized_fields)
    (path, stf), = [(p, tf) for p, tf in cur["targets"].signed.targets.items()
                    if p.startswith("index/")]
    rel = hashed_name(path, stf.hashes["sha256"])
    data = (golden_v2 / rel).read_bytes()
    put("shard-mismatch", rel, data.replace(b"A demo package", b"A demo packagE", 1))
    made["shard-mismatch"] = {
        "description": f"{rel} (format 2, {layout.bits} bits) replaced by the same bytes "
                       "with one letter of a summary changed",
        "refused_by": "update (sha256 differs from the signed one, although a format 2 "
                      "client decodes entries only when used); repo check",
        "update": 3, "check": 3,
    }

    # (3) back to format 1: golden's (format 1) timestamp, validly signed and older
    put("format-rollback", "metadata/timestamp.json",
        (golden / "metadata" / "timestamp.json").read_bytes())
    made["format-rollback"] = {
        "description": "metadata/timestamp.json replaced by golden's (format 1, version "
                       f"{current(golden)['timestamp'].signed.version}), after a client "
                       f"accepted golden-v2 (version {cur['timestamp'].signed.version})",
        "refused_by": "update by a client that already accepted golden-v2",
        "update_after_golden": 3, "check": 0,
    }
    return made


def generate(out: Path) -> None:
    for sub in ("keys", "golden", "forgeries", "golden-v2", "forgeries-v2", "vectors.json"):
        p = out / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    kp = write_keys(out)
    with tempfile.TemporaryDirectory(prefix="repotool-vectors-") as tmp:
        built, superseded = publish(Path(tmp), kp)
        built_v2 = migrate(built, Path(tmp), kp)
        golden, golden_v2 = out / "golden", out / "golden-v2"
        for b, g in ((built, golden), (built_v2, golden_v2)):
            for src in sorted(b.rglob("*")):
                rel = src.relative_to(b)
                if rel.parts[0] == ".repotool" or not src.is_file():
                    continue  # the publisher's workspace is not part of the repository
                dest = g / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(src.read_bytes())
    forgeries = forge(golden, out, kp, superseded)
    forgeries_v2 = forge_v2(golden_v2, golden, out, kp)
    cur2 = current(golden_v2)
    cur = current(golden)
    manifest = {
        "note": "repotool test vectors; every key under keys/ is a TEST KEY (fixed seed, "
                "public knowledge) and must never sign anything real",
        "keys": {n: keys.fingerprint_of_file(Path(f"{p}.pub")) for n, p in kp.items()},
        "golden": {
            "name": "golden",
            "root_key": "keys/root.pub",
            "versions": {
                "root": 2,
                "timestamp": cur["timestamp"].signed.version,
                "snapshot": cur["snapshot"].signed.version,
                "targets": cur["targets"].signed.version,
            },
            "expires": "2100-01-01T00:00:00Z",
            "bin_bit_length": BIN_BITS,
            "projects": {"demo-pkg": ["1.0", "1.1"], "dep-a": ["2.0"]},
            "yanked": {"demo-pkg": {"1.0": "use 1.1"}},
        },
        "forgeries": forgeries,
        "golden_v2": {
            "name": "golden",
            "root_key": "keys/root.pub",
            "migrated_from": "golden (step 5, 2025-01-05: repo migrate by the targets and "
                             "online2 keys; root unchanged)",
            "versions": {
                "root": 2,
                "timestamp": cur2["timestamp"].signed.version,
                "snapshot": cur2["snapshot"].signed.version,
                "targets": cur2["targets"].signed.version,
            },
            "x-repotool": cur2["targets"].signed.unrecognized_fields["x-repotool"],
            "bin_bit_length": BIN_BITS,
            "projects": {"demo-pkg": ["1.0", "1.1"], "dep-a": ["2.0"]},
        },
        "forgeries_v2": forgeries_v2,
    }
    (out / "vectors.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
