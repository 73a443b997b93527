"""The house's floors, checked: no import runs up a layer, and no two modules import each other.

Every module of edgecam/ is parsed with ast (nothing is imported, so the check needs none of the
optional dependencies). Both module-level imports and imports inside functions count: a
function-level import is still a dependency - it only runs later - and moving an import into a
function to hide a circle is exactly the shortcut this test exists to refuse. Imports under
`if TYPE_CHECKING:` count too, for the same reason: they say one module's words are spelt in
another's.

The layers, bottom-up (a module may import its own layer and those below it):

    errors, dependencies, common -> core -> config -> picam, models, sources
    -> snapshots, web -> outputs -> pipeline (the assembly) -> fleet -> daemon, doctor
    -> cli, __main__

`python tests/unit/test_layers.py` prints every violation, one a line, as
`a.b -> c.d (layer X above Y)` (those still allowed marked so) and `cycle: a <-> b`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgecam"

#: Bottom-up; the names on one floor may import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "dependencies", "common"),
    ("core",),
    ("config",),
    ("picam", "models", "sources"),
    ("snapshots", "web"),
    ("outputs",),
    ("pipeline",),
    ("fleet",),
    ("daemon", "doctor"),
    ("cli", "__main__"),
)
FLOOR = {name: level for level, names in enumerate(LAYERS) for name in names}

#: Imports allowed to run up a layer: none. The list stays (and the test that an entry is still
#: in the tree) so that an exception, if one is ever argued for, is written down with its reason.
ALLOWED: frozenset[tuple[str, str]] = frozenset()
#: The ground floor speaks only the language below it: what it may import of edgecam.
CORE_MAY_IMPORT = ("errors", "common", "core")


def module_name(path: Path) -> str:
    """`edgecam/a/b.py` -> `edgecam.a.b`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a `from ... import` names (relative imports made absolute)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    for _ in range(node.level - 1):
        base.pop()
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every edgecam module `module` imports, anywhere in its body.

    `from edgecam.x import y` names the module edgecam.x.y when there is one, else edgecam.x.
    """
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "edgecam":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target.split(".")[0] != "edgecam":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def package_of(module: str) -> str:
    """The floor's name: `edgecam.core.stats` -> `core`, `edgecam.errors` -> `errors`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges: dict[str, set[str]] = {}
    for module, path in found.items():
        edges[module] = {t for t in imports(module, path, known) if t in known and t != module}
    return edges


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every import from a floor to one above it (the package `edgecam` itself is exempt)."""
    bad = []
    for source, targets in edges.items():
        here = FLOOR.get(package_of(source))
        for target in targets:
            there = FLOOR.get(package_of(target))
            if here is not None and there is not None and there > here:
                bad.append((source, target))
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected component of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(source: str, target: str) -> str:
    return (
        f"{source} -> {target} "
        f"(layer {package_of(target)} above {package_of(source)})"
    )


def violations() -> list[str]:
    edges = graph()
    lines = [describe(s, t) + (" [allowed]" if (s, t) in ALLOWED else "")
             for s, t in upward(edges)]
    lines += ["cycle: " + " <-> ".join(component) for component in cycles(edges)]
    return lines


def test_no_import_runs_up_a_layer() -> None:
    edges = graph()
    bad = [describe(s, t) for s, t in upward(edges) if (s, t) not in ALLOWED]
    assert not bad, "imports up a layer:\n" + "\n".join(bad)


def test_no_import_circle() -> None:
    circles = cycles(graph())
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_ground_floor_imports_only_errors_and_common() -> None:
    edges = graph()
    bad = [f"{s} -> {t}" for s, t in sorted((s, t) for s in edges for t in edges[s])
           if package_of(s) == "core" and package_of(t) not in CORE_MAY_IMPORT]
    assert not bad, "core imports beyond errors and common:\n" + "\n".join(bad)


def test_allowlist_only_names_imports_still_there() -> None:
    """A stale allowance would let the import come back unseen: the list must shrink with the tree."""
    stale = ALLOWED - set(upward(graph()))
    assert not stale, f"remove from ALLOWED (no longer imported): {sorted(stale)}"


def test_every_package_has_a_floor() -> None:
    """A new package must be given its place, not slip past the check."""
    floorless = {package_of(m) for m in modules()} - set(FLOOR) - {"__init__"}
    assert not floorless, f"give these packages a layer in LAYERS: {sorted(floorless)}"
    # setup.cfg's `packages = find:` installs only folders with an __init__.py
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    bare = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert not bare, f"add an __init__.py (else the installed package lacks them): {bare}"


if __name__ == "__main__":
    for line in violations():
        print(line)
