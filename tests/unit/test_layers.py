"""The import graph of talas/ runs downward: no package imports the CLI, no circle between packages,
and every import goes to the same or a lower layer of LAYERS.

Every module is parsed with ``ast`` (nothing is imported), so imports inside functions and under
``if TYPE_CHECKING`` count like the ones at the top: a circle through a function-level import is
still a circle. A failure lists every offending import with its file and line.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "talas"

# Lowest first; a package may import its own layer and the ones below. The top-level modules
# errors.py and faults.py are the base. "talas" is the package's own __init__ (the public API): only
# the CLI may import it, so it sits just below.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "faults"),
    ("config",),
    ("data", "models", "align", "losses"),
    ("cache",),
    ("teacher",),
    ("methods",),
    ("eval",),
    ("train",),
    ("compare",),
    ("talas",),
    ("cli",),
]


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted ("talas.cache.ensure")
    target: str  # imported module, dotted, as far as it names a module or package
    where: str  # "talas/cache/ensure.py:12"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str, root: Path) -> bool:
    """Whether ``dotted`` (under the package at ``root``) is a module or a subpackage, not a name in one."""
    path = root.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() or path.is_dir()


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import of the package's own modules in ``path``, wherever it stands in the file."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = root.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule sub; `from pkg import name` only pkg.
            targets = [f"{module}.{a.name}" if is_module(f"{module}.{a.name}", root) else module for a in node.names]
        else:
            continue
        where = f"{path.relative_to(root.parent).as_posix()}:{node.lineno}"
        found += [Import(name, t, where) for t in targets if t == top or t.startswith(top + ".")]
    return found


def package_of(dotted: str) -> str:
    """"talas.cache.ensure" -> "cache"; "talas.errors" -> "errors"; "talas" -> "talas" (the root)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_edges(imports: list[Import]) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> where, for imports between different packages."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for imp in dict.fromkeys(imports):  # `from m import a, b` is one import of m
        source, target = package_of(imp.source), package_of(imp.target)
        if source != target:
            edges[(source, target)].append(f"{imp.where} imports {imp.target}")
    return dict(edges)


def circles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan), each sorted; [] when acyclic."""
    graph: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        graph[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted({n for edge in edges for n in edge}):
        if node not in index:
            visit(node)
    return sorted(groups)


def layer_of(layers: list[tuple[str, ...]]) -> dict[str, int]:
    return {package: level for level, packages in enumerate(layers) for package in packages}


def upward(edges: dict[tuple[str, str], list[str]], layers: list[tuple[str, ...]]) -> list[str]:
    """Imports into a higher layer (or of a package LAYERS does not place), one line each."""
    level = layer_of(layers)
    found = []
    for (source, target), where in sorted(edges.items()):
        if source not in level or target not in level:
            unknown = source if source not in level else target
            found += [f"{w} (package {unknown!r} has no layer: add it to LAYERS)" for w in where]
        elif level[target] > level[source]:
            found += [f"{w} ({source}, layer {level[source]} -> {target}, layer {level[target]})" for w in where]
    return found


def describe_circles(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    lines = []
    for group in circles(edges):
        lines.append("circle: " + ", ".join(group))
        lines += [f"  {w}" for (s, t), where in sorted(edges.items()) if s in group and t in group for w in where]
    return lines


def project_edges() -> dict[tuple[str, str], list[str]]:
    return package_edges([imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path, PACKAGE)])


def test_no_library_module_imports_the_cli():
    wrong = [w for (source, target), where in sorted(project_edges().items()) if target == "cli" and source != "cli" for w in where]
    assert not wrong, "library code imports the CLI layer:\n" + "\n".join(wrong)


def test_no_circle_between_packages():
    lines = describe_circles(project_edges())
    assert not lines, "circles between packages:\n" + "\n".join(lines)


def test_imports_go_to_the_same_or_a_lower_layer():
    wrong = upward(project_edges(), LAYERS)
    assert not wrong, "imports into a higher layer:\n" + "\n".join(wrong)


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p, PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert packages <= set(layer_of(LAYERS)), f"packages without a layer: {sorted(packages - set(layer_of(LAYERS)))}"
    assert {"config", "cache", "methods", "train", "cli"} <= packages  # the walk found the tree


def test_the_checker_finds_circles_upward_imports_and_function_level_imports(tmp_path):
    root = tmp_path / "pkg"
    for name, text in {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high import b  # upward, inside a function\n",
        "high/__init__.py": "",
        "high/b.py": "from ..low import a\nfrom pkg import low\nimport os\n",
        "side.py": "from pkg.low.a import f\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    imports = [imp for p in sorted(root.rglob("*.py")) for imp in imports_of(p, root)]
    assert {(i.source, i.target) for i in imports} == {
        ("pkg.low.a", "pkg.high.b"), ("pkg.high.b", "pkg.low.a"), ("pkg.high.b", "pkg.low"), ("pkg.side", "pkg.low.a")}
    edges = package_edges(imports)
    assert circles(edges) == [["high", "low"]]
    assert describe_circles(edges)[0] == "circle: high, low"
    wrong = upward(edges, [("low",), ("high",)])
    assert wrong[0] == "pkg/low/a.py:2 imports pkg.high.b (low, layer 0 -> high, layer 1)"
    assert wrong[1].startswith("pkg/side.py:1 imports pkg.low.a (package 'side' has no layer")
    assert circles(package_edges([i for i in imports if i.source != "pkg.low.a"])) == []
