"""A ``make_published`` factory with 4 hash bins instead of 256: the same code paths
(succinct delegation, every bin listed in every snapshot), a fraction of the signing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import KeyPair, Published, make_key

from repotool.publish.workspace import Repository, RoleKeys


def factory(tmp_path: Path) -> Any:
    counter = iter(range(1000))

    def make(name: str = "demo", projects: dict[str, list[str]] | None = None,
             key: KeyPair | None = None) -> Published:
        base = tmp_path / f"small{next(counter)}"
        key = key or make_key(base / "keys", "k")
        pk = key.public_key()
        Repository.init(base / "repo", name, RoleKeys([pk], 1, [pk], 1, [pk]),
                        now=datetime.now(UTC), bin_bits=2)
        pub = Published(base / "repo", key, base / "dist")
        for project, versions in (projects or {"demo-pkg": ["1.0"]}).items():
            for v in versions:
                pub.add_wheel(project, v)
        pub.sign()
        return pub

    return make
