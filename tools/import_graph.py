"""Read ganscope's imports with `ast` and check them against the house's layers and sizes.

    python tools/import_graph.py            # the check: exit 1 on any broken rule below
    python tools/import_graph.py --show     # every module with its layer and what it imports
    python tools/import_graph.py --dot      # the graph for Graphviz

The layers are docs/architecture.md's (and ../shared/design/layers.md's): a module imports
only modules of its own layer or a lower one, the graph has no circle, and an import inside a
function is allowed only with a comment on the same line or the line above that says why
(an optional dependency, or a heavy one that `--help` should not pay for). No module is
longer than MAX_MODULE_LINES, no function than MAX_FUNCTION_LINES. CI runs this script
(.ci/run, and tests/test_house.py, which also shows that it fails on a broken house).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "ganscope"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# The six layers, lowest first. A module not listed here fails the check: a new module
# takes its place in the house on purpose, never by default.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "errors",
        "progress",
        "atomic",
        "checks",
        "source",
        "config",
        "data",
        "models",
        "models.mlp",
        "models.cnn",
        "models.conditional",
        "metrics",
        "devices",
        "cuda_graph",
        "distributed",
        "presets",
        "options",
        "space",
        "batching",
    ),
    "method": ("objective", "state", "logbook", "training"),
    "run folder": ("runs", "checkpoints", "lock", "metrics_log", "foreign", "pretrained"),
    "products": (
        "sampling",
        "plots",
        "gallery",
        "classifier",
        "evaluation",
        "directions",
        "boundaries",
        "styles",
        "readings",
        "methods",
        "tensorboard_log",
        "trainer",
        "importer",
        "sweep",
    ),
    "documents": (
        "text",
        "document",
        "summary",
        "comparison",
        "methods_text",
        "conditioning",
        "report",
        "analysis",
        "reproduce",
        "sweep_report",
    ),
    "interfaces": ("cli", "web_requests", "web", "export", "bench", "__main__", "__init__"),
}
LAYER_OF = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
LAYER_NAMES = list(LAYERS)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "training"
    target: str  # the imported module, e.g. "config"
    line: int
    in_function: bool
    reason: str  # the comment that says why an import inside a function is there


def module_name(path: Path, source_dir: Path = SOURCE) -> str:
    relative = path.relative_to(source_dir).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _resolve(
    source: str, node: ast.ImportFrom | ast.Import, is_package: bool, source_dir: Path
) -> list[str]:
    """The ganscope modules one import statement names (relative or absolute)."""
    if isinstance(node, ast.Import):
        return [
            alias.name.removeprefix(PACKAGE + ".")
            for alias in node.names
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + ".")
        ]
    if node.level == 0:
        if node.module is None or not (node.module + ".").startswith(PACKAGE + "."):
            return []
        base = node.module.removeprefix(PACKAGE).lstrip(".")
    else:
        package = [] if source == "__init__" else source.split(".")
        package = package if is_package else package[:-1]
        package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join([*package, node.module] if node.module else package)
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        # `from . import sampling` names a module; `from .config import TrainConfig` a name.
        targets.append(candidate if _exists(candidate, source_dir) else base)
    return [t for t in targets if t]


def _exists(module: str, source_dir: Path) -> bool:
    path = source_dir.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _comment_near(lines: list[str], line: int) -> str:
    """The comment on an import's line, or on a line of the block of imports it stands in,
    or on the line just above that block (one reason may cover a group of imports)."""
    index = line - 1
    while index >= 0:
        text = lines[index]
        if "#" in text:
            return text.split("#", 1)[1].strip()
        stripped = text.strip()
        if index != line - 1 and not stripped.startswith(("import ", "from ")):
            return ""
        index -= 1
    return ""


def read_imports(source_dir: Path = SOURCE) -> tuple[list[str], list[Import]]:
    """Every module of the package and every import between two of them."""
    modules, imports = [], []
    for path in sorted(source_dir.rglob("*.py")):
        name = module_name(path, source_dir)
        modules.append(name)
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        functions = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        inside = {id(inner) for fn in functions for inner in ast.walk(fn)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if _type_checking_only(tree, node):
                continue
            for target in _resolve(name, node, path.name == "__init__.py", source_dir):
                if target == name:
                    continue
                in_function = id(node) in inside
                reason = _comment_near(lines, node.lineno) if in_function else ""
                imports.append(Import(name, target, node.lineno, in_function, reason))
    return modules, imports


def _type_checking_only(tree: ast.Module, node: ast.AST) -> bool:
    for block in ast.walk(tree):
        if (
            isinstance(block, ast.If)
            and isinstance(block.test, ast.Name | ast.Attribute)
            and "TYPE_CHECKING" in ast.unparse(block.test)
            and any(node is inner for stmt in block.body for inner in ast.walk(stmt))
        ):
            return True
    return False


def cycles(modules: list[str], imports: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def unexplained_imports(source_dir: Path = SOURCE) -> list[str]:
    """Imports of any module (the standard library's and third parties' too) inside a
    function, with no comment on their line or the line above saying why."""
    found = []
    for path in sorted(source_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and not _comment_near(
                    lines, node.lineno
                ):
                    what = (
                        "." * node.level + (node.module or node.names[0].name)
                        if isinstance(node, ast.ImportFrom)
                        else node.names[0].name
                    )
                    found.append(
                        f"{module_name(path, source_dir)}:{node.lineno} imports {what} inside "
                        "a function with no comment saying why"
                    )
    return sorted(set(found))


#: The most lines a module and a function may have (a function: its whole definition).
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def oversized(source_dir: Path = SOURCE) -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES, one line each."""
    found = []
    for path in sorted(source_dir.rglob("*.py")):
        name = module_name(path, source_dir)
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(
                        f"{name}:{node.lineno} {node.name}: {length} lines "
                        f"(at most {MAX_FUNCTION_LINES})"
                    )
    return found


def problems(modules: list[str], imports: list[Import]) -> list[str]:
    """Every broken rule, one line each; empty when the house follows its layers."""
    found = [f"{m}: not placed in a layer (add it to LAYERS)" for m in modules if m not in LAYER_OF]
    seen = set()
    for imp in imports:
        if (imp.source, imp.target, imp.line) in seen:
            continue
        seen.add((imp.source, imp.target, imp.line))
        if imp.source not in LAYER_OF or imp.target not in LAYER_OF:
            continue
        if LAYER_OF[imp.target] > LAYER_OF[imp.source]:
            found.append(
                f"{imp.source}:{imp.line} imports {imp.target} upwards "
                f"({LAYER_NAMES[LAYER_OF[imp.source]]} -> {LAYER_NAMES[LAYER_OF[imp.target]]})"
            )
        if imp.in_function and not imp.reason:
            found.append(
                f"{imp.source}:{imp.line} imports {imp.target} inside a function with no "
                "comment saying why"
            )
    for component in cycles(modules, imports):
        found.append("import circle: " + " <-> ".join(component))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="list modules and their imports")
    parser.add_argument("--dot", action="store_true", help="print the graph for Graphviz")
    args = parser.parse_args(argv)
    modules, imports = read_imports()
    found = problems(modules, imports) + oversized()
    found += [p for p in unexplained_imports() if p not in found]
    if args.dot:
        print("digraph ganscope {")
        for imp in sorted({(i.source, i.target) for i in imports}):
            print(f'  "{imp[0]}" -> "{imp[1]}";')
        print("}")
        return 0
    if args.show:
        for module in sorted(modules, key=lambda m: (LAYER_OF.get(m, -1), m)):
            layer = LAYER_NAMES[LAYER_OF[module]] if module in LAYER_OF else "?"
            targets = sorted({i.target for i in imports if i.source == module})
            print(f"{layer:>11} {module:<16} -> {', '.join(targets)}")
    lazy = sum(1 for i in imports if i.in_function)
    edges = len({(i.source, i.target) for i in imports})
    print(
        f"{len(modules)} modules in {len(LAYERS)} layers, {edges} import arrows ({lazy} of "
        f"them inside functions), no circle: {not cycles(modules, imports)}, "
        f"{len(found)} problems"
    )
    for line in found:
        print("  " + line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
