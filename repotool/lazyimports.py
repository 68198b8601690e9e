"""Keep securesystemslib's optional signer backends out of every command's start-up.

``securesystemslib.signer`` (imported by python-tuf, so by every command that reads
trust metadata) imports each cloud and token backend it supports when that backend is
installed: with boto3 present — as on any machine that publishes to S3 — that alone
costs about 0.4 s per command, several times a no-change ``update``.

While, and only while, ``securesystemslib.signer`` itself is being imported, the
backends in :data:`BACKENDS` are loaded through :class:`importlib.util.LazyLoader`: the
module object exists (so the backend counts as installed) and runs on first use, e.g.
when an ``awskms:`` signer signs. Anything else imports as usual, a backend that is not
installed is still missing, and a module that cannot be loaded lazily (an extension
module) is imported as it would have been.
"""

from __future__ import annotations

import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["BACKENDS", "install"]

#: top-level packages of the backends made lazy: AWS's, the one a publisher to S3 has
#: installed anyway (the Google and Azure clients read their modules at import time, and
#: pkcs11's submodules are read through attributes the lazy parent would not bind)
BACKENDS = frozenset({"boto3", "botocore"})
_IMPORTER = "securesystemslib.signer"


class _Finder:
    """A ``sys.meta_path`` finder (duck-typed: importlib.abc alone costs 13 ms)."""

    def __init__(self) -> None:
        self.depth = 0  # > 0 while securesystemslib.signer is being executed

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == _IMPORTER:
            spec = self._others(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = cast("Loader", _Scoped(spec.loader, self))
            return spec
        if self.depth and fullname.partition(".")[0] in BACKENDS:
            spec = self._others(fullname, path, target)
            if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                from importlib.util import LazyLoader

                spec.loader = LazyLoader(spec.loader)
                return spec
        return None

    def _others(self, fullname: str, path: Sequence[str] | None,
                target: ModuleType | None) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


class _Scoped:
    """``securesystemslib.signer``'s own loader, with backends lazy while it runs."""

    def __init__(self, loader: Any, finder: _Finder) -> None:
        self._loader, self._finder = loader, finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._finder.depth += 1
        try:
            self._loader.exec_module(module)
        finally:
            self._finder.depth -= 1


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once; a no-op after signer is loaded)."""
    if _IMPORTER in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
