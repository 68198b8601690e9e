#!/usr/bin/env python3
"""Build tiny, real wheels for the quickstart: ``make_wheels.py OUT NAME==VER[:DEP,DEP] ...``.

A wheel is a zip with ``NAME-VER.dist-info/{METADATA,WHEEL,RECORD}`` and the code;
this writes exactly that (stdlib only), so the quickstart needs no build tools.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(out: Path, name: str, version: str, deps: list[str]) -> Path:
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: {name}, a quickstart example\n"
            + "".join(f"Requires-Dist: {d}\n" for d in deps)
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: make_wheels\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{p},{_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    path = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), d)
    return path


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for spec in argv[1:]:
        head, _, deps = spec.partition(":")
        name, _, version = head.partition("==")
        print(make_wheel(out, name, version, [d for d in deps.split(",") if d]))


if __name__ == "__main__":
    main(sys.argv[1:])
