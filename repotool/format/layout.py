"""Where things live in a repository directory (docs/format.md §Layout).

    DIR/metadata/N.root.json, root.json, timestamp.json, N.snapshot.json,
                 N.targets.json, N.bins-XX.json          TUF metadata (consistent snapshots)
    DIR/index/SHA256.XX.json                             index shards (targets of 'targets')
    DIR/simple/SHA256.index.{html,json}, index.{html,json}
    DIR/simple/PROJECT/SHA256.index.{html,json}, index.{html,json}
    DIR/files/PROJECT/SHA256.FILENAME, FILENAME          distributions
    DIR/.repotool/                                       the publisher's workspace (not served)

Every target is stored under its hash-prefixed name (TUF consistent snapshots); the
simple pages and distributions also under their plain names, for plain pip and uv.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

__all__ = [
    "BINS_PREFIX",
    "REPO_FIELD",
    "hashed_name",
    "plain_target_path",
    "project_page_paths",
    "target_disk_path",
]

BINS_PREFIX = "bins"
REPO_FIELD = "x-repotool"  # unrecognized field of root's "signed": {"name": ..., "format": 1}
ROOT_PAGES = ("simple/index.html", "simple/index.json")
METADATA_DIR = "metadata"
WORK_DIR = ".repotool"


def hashed_name(target_path: str, sha256: str) -> str:
    """``files/p/x.whl`` → ``files/p/SHA256.x.whl`` (TUF's consistent-snapshot target name)."""
    head, base = posixpath.split(target_path)
    return posixpath.join(head, f"{sha256}.{base}")


def target_disk_path(root: Path, target_path: str, sha256: str) -> Path:
    return root.joinpath(*hashed_name(target_path, sha256).split("/"))


def plain_target_path(root: Path, target_path: str) -> Path:
    return root.joinpath(*target_path.split("/"))


def dist_target_path(project: str, filename: str) -> str:
    return f"files/{project}/{filename}"


def project_page_paths(project: str) -> tuple[str, str]:
    return f"simple/{project}/index.html", f"simple/{project}/index.json"
