"""The import graph runs one way: lowrank_theory < simulations < figures < cli, with no circle.

The graph is read from the source (``ast``), not from ``sys.modules``, so an import inside a
function counts as much as one at the top of a file: a lazy import is still a dependency. Each
repository folder installs under ``lowrank_theory`` (``pyproject.toml``'s package-dir), and its
layer is the folder's. ``lowrank_theory/__main__.py`` (``python -m lowrank_theory``) is the
command line's entry point and belongs to the cli layer.

Compared: every import edge against the layer order (an edge to a higher layer fails), and the
module graph against its strongly connected components (a component of more than one module, or
a module importing itself, is a circle and fails). The two negative controls build a small tree
with an upward import and a circle and require both to be reported.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lowrank_theory"
#: Layers from the bottom up: (module prefix, repository folder).
LAYERS: tuple[tuple[str, str], ...] = (
    ("lowrank_theory", "lowrank_theory"),
    ("lowrank_theory.simulations", "simulations"),
    ("lowrank_theory.figures", "figures"),
    ("lowrank_theory.cli", "cli"),
)
#: Modules placed in a layer other than their folder's.
LAYER_OF_MODULE = {"lowrank_theory.__main__": "lowrank_theory.cli"}


def module_files(layers: Iterable[tuple[str, str]], root: Path) -> dict[str, Path]:
    """Map each module name to its file, for every ``.py`` file under the layers' folders."""
    out = {}
    for prefix, folder in layers:
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of the project's modules (None: external)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The project modules that ``module`` imports anywhere in its file (functions included).

    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else of
    ``a.b``; relative imports are resolved against the module's package;
    ``importlib.import_module("literal")`` counts too.
    """
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``a.b.c`` if ``c`` is a module, else ``a.b`` (``c`` is a name defined there).
            names = [f"{base}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for name in names:
            target = _resolve(name, modules)
            if target is not None:
                found.add(target)
    found.discard(module)  # ``from . import x`` inside a package names the package too
    return found


def import_graph(layers: Iterable[tuple[str, str]], root: Path) -> dict[str, set[str]]:
    """Module name -> the project modules it imports."""
    modules = module_files(layers, root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer_index(module: str, layers: Iterable[tuple[str, str]],
                overrides: Mapping[str, str] | None = None) -> int:
    """Index of the layer ``module`` belongs to: its override, else its longest prefix."""
    prefixes = [prefix for prefix, _ in layers]
    prefix = (overrides or {}).get(module)
    if prefix is None:
        prefix = max((p for p in prefixes if module == p or module.startswith(p + ".")), key=len)
    return prefixes.index(prefix)


def upward_imports(graph: Mapping[str, set[str]], layers: Iterable[tuple[str, str]],
                   overrides: Mapping[str, str] | None = None) -> list[str]:
    """Every edge ``a -> b`` where ``b`` sits in a higher layer than ``a``."""
    layers = tuple(layers)
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if layer_index(b, layers, overrides) > layer_index(a, layers, overrides))


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a circle in them (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(LAYERS, ROOT)


def test_every_layer_folder_is_read(graph):
    """The graph covers all four folders (a renamed folder would make the test pass empty)."""
    for prefix, _ in LAYERS:
        assert sum(m == prefix or m.startswith(prefix + ".") for m in graph) >= 2, prefix
    assert sum(len(targets) for targets in graph.values()) > 100


def test_imports_run_one_way(graph):
    """No module imports a module of a higher layer (the library never imports its users)."""
    assert upward_imports(graph, LAYERS, LAYER_OF_MODULE) == []


def test_no_import_circles(graph):
    """No two modules import each other, directly or through others."""
    assert circles(graph) == []


def test_packaging_maps_every_folder():
    """pyproject installs every package of the four folders, each under lowrank_theory."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    packages = {m for m, p in module_files(LAYERS, ROOT).items() if p.name == "__init__.py"}
    assert set(config["packages"]) == packages
    assert all(p == PACKAGE or p.startswith(PACKAGE + ".") for p in config["packages"])
    assert config["package-dir"] == {prefix: folder for prefix, folder in LAYERS
                                     if prefix != PACKAGE}


def _toy_tree(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_control_upward_import_is_reported(tmp_path):
    """Negative control: a core module that imports the application layer is reported."""
    _toy_tree(tmp_path, {"core/__init__.py": "", "core/a.py": "def f():\n    import app.b\n",
                         "app/__init__.py": "", "app/b.py": "from core import a\n"})
    layers = (("core", "core"), ("app", "app"))
    found = upward_imports(import_graph(layers, tmp_path), layers)
    assert found == ["core.a -> app.b"]


def test_control_circle_is_reported(tmp_path):
    """Negative control: a relative-import circle of two modules is reported, a chain is not."""
    _toy_tree(tmp_path, {"core/__init__.py": "", "core/a.py": "from .b import g\n",
                         "core/b.py": "from core.c import h\n",
                         "core/c.py": "import importlib\nimportlib.import_module('core.b')\n",
                         "core/d.py": "from . import a\n"})
    graph = import_graph((("core", "core"),), tmp_path)
    assert graph["core.d"] == {"core.a"}
    assert circles(graph) == [["core.b", "core.c"]]
