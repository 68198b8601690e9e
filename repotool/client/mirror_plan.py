"""One mirror run's verified view of a repository at one location (steps 1 and 2 of
repotool/client/mirror.py): the root chain, timestamp, snapshot, targets and every
delegated role, verified through python-tuf from the source's keyring, and the target
files TUF would resolve."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from repotool.client.home import SourceConfig
from repotool.client.mirror_walk import (
    verify_delegated,
    verify_root_chain,
    walk_delegations,
    winning_targets,
)
from repotool.errors import DownloadError, RepotoolError, UserError, VerificationError

__all__ = ["ROLES", "Plan"]

ROLES = ("root", "timestamp", "snapshot", "targets")


class Plan:
    """One run's verified view of the repository at one location."""

    def __init__(self, cfg: SourceConfig, url: str, dest: Path, work: Path,
                 root_bytes: bytes, marks: dict[str, int], fetcher: Any,
                 now: datetime) -> None:
        self.cfg, self.url, self.dest, self.work = cfg, url, dest, work
        self.root_bytes, self.marks, self.fetcher = root_bytes, marks, fetcher
        self.ref = now - timedelta(seconds=cfg.clock_skew)
        self.meta = dest / "metadata"
        self.versions: dict[str, int] = {}
        self.files: dict[str, bytes] = {}  # metadata file name in DEST -> verified bytes
        self.targets: dict[str, Any] = {}  # target path -> TargetFile
        self.reported: list[str] = []  # locations that failed a file another served

    # ---- metadata ----------------------------------------------------------------------

    def _seed(self, meta_dir: Path) -> None:
        """DEST's current metadata as python-tuf's local copies (it verifies them)."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            ts = (self.meta / "timestamp.json").read_bytes()
            (meta_dir / "timestamp.json").write_bytes(ts)
            v = json.loads(ts)["signed"]["meta"]["snapshot.json"]["version"]
            snap = (self.meta / f"{int(v)}.snapshot.json").read_bytes()
            (meta_dir / "snapshot.json").write_bytes(snap)
            v = json.loads(snap)["signed"]["meta"]["targets.json"]["version"]
            shutil.copyfile(self.meta / f"{int(v)}.targets.json", meta_dir / "targets.json")

    def verify_metadata(self) -> None:
        from tuf.api import exceptions as tuf_exc
        from tuf.api.metadata import Metadata

        from repotool.transport.fetcher import translate_download_error
        from repotool.trust.updater import make_updater

        meta_dir = self.work / "tuf"
        meta_dir.mkdir()
        self._seed(meta_dir)
        name = self.cfg.name
        try:
            up = make_updater(meta_dir, f"{self.url}metadata/", self.url, self.root_bytes,
                              self.fetcher, self.ref)
            up.refresh()
        except tuf_exc.ExpiredMetadataError as e:
            raise VerificationError(f"{name}: metadata expired ({str(e)[:200]})",
                                    "ask the publisher to re-sign") from None
        except tuf_exc.RepositoryError as e:
            where = f" {self.fetcher.last_url}" if self.fetcher.last_url else ""
            raise VerificationError(f"{name}: metadata refused:{where}: {str(e)[:200]}") \
                from None
        except tuf_exc.DownloadError as e:
            raise translate_download_error(e) from None
        except (ValueError, TypeError, KeyError) as e:
            raise VerificationError(f"{name}: metadata refused: {str(e)[:200]}") from None
        raw = {r: (meta_dir / f"{r}.json").read_bytes() for r in ROLES}
        md = {r: Metadata.from_bytes(raw[r]) for r in ROLES}
        self.versions = {r: md[r].signed.version for r in ROLES}
        for role, v in self.versions.items():
            if v < int(self.marks.get(role, 0)):
                raise VerificationError(
                    f"{name}: rollback: {role} version {v} is older than version "
                    f"{self.marks[role]} accepted before")
        field_ = md["root"].signed.unrecognized_fields.get("x-repotool")
        repo_name = field_.get("name") if isinstance(field_, dict) else ""
        if (repo_name or "") != self.cfg.repo_name:
            raise VerificationError(
                f"{name}: the repository's name changed from {self.cfg.repo_name!r} to "
                f"{repo_name!r}", f"run 'repotool update {name} --allow-name-change' first")
        if not md["root"].signed.consistent_snapshot:
            raise UserError(f"{name}: the repository does not use consistent snapshots; "
                            "only such repositories can be mirrored")
        self._roots(meta_dir, md["root"].signed.version)
        snap = md["snapshot"].signed
        self.files[f"{snap.version}.snapshot.json"] = raw["snapshot"]
        self.files[f"{md['targets'].signed.version}.targets.json"] = raw["targets"]
        roles = walk_delegations(md["targets"].signed, snap, self._delegated)
        self.targets = {p: tf for p, (_r, tf) in winning_targets(roles).items()}
        self.files["timestamp.json"] = raw["timestamp"]  # last, see _copy

    def _roots(self, meta_dir: Path, newest: int) -> None:
        """Every root version, 1 to ``newest``, verified as one chain."""
        from tuf.api.metadata import Metadata

        trusted_v = Metadata.from_bytes(self.root_bytes).signed.version
        older = [self._get(f"{v}.root.json", self.fetcher.limits.metadata_max_length)
                 for v in range(1, trusted_v)]
        verify_root_chain([*older, self.root_bytes], self.root_bytes,
                          f"{self.url}metadata/")
        chain = [*older, self.root_bytes]
        for v in range(trusted_v + 1, newest + 1):  # verified by python-tuf
            chain.append((meta_dir / "root_history" / f"{v}.root.json").read_bytes())
        for v, data in enumerate(chain, 1):
            self.files[f"{v}.root.json"] = data
        self.files["root.json"] = chain[-1]

    def _get(self, name: str, cap: int, meta: Any = None) -> bytes:
        """Metadata file ``name``: DEST's copy when it has the signed bytes, else fetched."""
        with contextlib.suppress(OSError, ValueError):
            data = (self.meta / name).read_bytes()
            if meta is None or _matches(meta, data):
                return data
        from repotool.transport.fetcher import translate_download_error

        url = f"{self.url}metadata/{name}"
        try:
            return bytes(self.fetcher.download_bytes(url, cap))
        except Exception as e:
            err = translate_download_error(e, url)
            raise err if isinstance(err, RepotoolError) else DownloadError(
                f"{url}: {str(err)[:200]}") from None

    def _delegated(self, role: str, parent: Any, meta: Any) -> Any:
        from urllib.parse import quote

        name = f"{meta.version}.{quote(role, '')}.json"
        cap = meta.length or self.fetcher.limits.metadata_max_length
        data = self._get(name, cap, meta)
        signed = verify_delegated(role, data, parent, meta, self.ref,
                                  f"{self.url}metadata/{name}")
        self.files[name] = data
        return signed


def _matches(meta: Any, data: bytes) -> bool:
    try:
        meta.verify_length_and_hashes(data)
    except Exception:
        return False
    return bool(meta.hashes)  # without a signed hash, DEST's copy is not trusted
