"""The package's architecture, checked (docs/architecture.md).

Every ``import`` in ``repotool/`` — at module level, inside a function or under
``TYPE_CHECKING``, since a lazy import is still a dependency — must respect the floors
in ``LAYERS``: a package imports only itself and the floors below it. There are no
import cycles between modules, no module imports a private name (``_x``) from another
module, and no module is over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "repotool"
MAX_LINES = 400

# A unit (the first component under repotool/) → the units it may import. Keep in step
# with the picture in docs/architecture.md.
FLOOR = {"errors", "__init__", "progress"}  # __init__: the version, lazyimports installed
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "lazyimports": set(),  # stdlib only; installed by __init__
    "progress": {"errors"},  # progress bars on a terminal; rich lazily
    "storage": FLOOR,
    "format": FLOOR,
    "transport": FLOOR | {"storage"},
    "keys": FLOOR | {"storage"},
    "signers": FLOOR | {"storage", "keys"},
    "trust": FLOOR | {"storage", "transport", "format"},
    "publish": FLOOR | {"storage", "transport", "format", "keys", "signers", "trust"},
    "client": FLOOR | {"storage", "transport", "format", "keys", "signers", "trust"},
    "pip": FLOOR | {"storage", "transport", "format", "client"},
    "cli": FLOOR | {"storage", "transport", "format", "keys", "signers", "trust", "publish",
                    "client", "pip"},
    "__main__": {"cli"},
    "__init__": {"lazyimports"},
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(name: str, path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [a.name for a in node.names], node.lineno


def targets(target: str, names: list[str]) -> list[str]:
    """The modules an import statement depends on: ``from repotool.pkg import mod`` (and
    ``from repotool import keys``) imports the submodule when there is one."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in ALL]
    return subs or [target]


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


ALL = dict(modules())


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in ALL}
    for mod, path in ALL.items():
        for target, names, _ in imports(mod, path):
            if not target.startswith("repotool"):
                continue
            for t in targets(target, names):
                if t in ALL and t != mod:
                    graph[mod].add(t)
    return graph


def test_every_unit_is_in_the_architecture() -> None:
    assert {unit(m) for m in ALL} <= set(LAYERS), "add the new package to LAYERS and docs"


@pytest.mark.parametrize("mod", sorted(ALL))
def test_no_upward_or_sideways_import(mod: str) -> None:
    own = unit(mod)
    bad = []
    for target, names, line in imports(mod, ALL[mod]):
        if not (target.startswith("repotool.") or target == "repotool"):
            continue
        for t in targets(target, names):
            other = unit(t)
            if other != own and other not in LAYERS[own]:
                bad.append(f"{ALL[mod]}:{line} imports {t} ({own} → {other})")
    assert bad == []


@pytest.mark.parametrize("mod", sorted(ALL))
def test_no_private_name_from_another_module(mod: str) -> None:
    bad = []
    for target, names, line in imports(mod, ALL[mod]):
        if not target.startswith("repotool") or target == mod:
            continue
        for n in names:
            if n.startswith("_") and not n.startswith("__"):
                bad.append(f"{ALL[mod]}:{line} takes {n} from {target}")
    assert bad == []


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t):], t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


@pytest.mark.parametrize("mod", sorted(ALL))
def test_modules_stay_readable(mod: str) -> None:
    lines = len(ALL[mod].read_text().splitlines())
    assert lines <= MAX_LINES, f"{ALL[mod]} has {lines} lines: split it by concern"
