"""The house's rules (tools/import_graph.py): layers, no import circle, sizes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools/import_graph.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ganscope_follows_its_layers_with_no_circle_and_no_oversized_code(graph):
    modules, imports = graph.read_imports()
    assert len(modules) > 30 and len(imports) > 150  # the real package was read
    assert graph.problems(modules, imports) == []
    assert graph.oversized() == []
    assert graph.unexplained_imports() == []
    assert graph.main([]) == 0


def test_every_module_has_a_layer_and_the_layers_are_the_documented_ones(graph):
    modules, _ = graph.read_imports()
    assert set(modules) == set(graph.LAYER_OF)
    architecture = (ROOT / "docs/architecture.md").read_text()
    for layer, members in graph.LAYERS.items():
        assert layer in architecture
        for module in members:
            assert f"`{module.removeprefix('models.')}" in architecture, module


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_circle_an_upward_import_and_a_hidden_import_are_each_found(graph, tmp_path):
    source = _package(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "from . import data\n",  # foundation -> foundation: a circle
            "data.py": "from .errors import GanscopeError\n",
            "training.py": "from .runs import Run\n",  # method -> run folder: upwards
            "runs.py": "def f():\n    from . import cli\n",  # no reason given
            "cli.py": "def g():\n    from . import web  # heavy: fastapi\n",  # one given
            "web.py": "",
        },
    )
    modules, imports = graph.read_imports(source)
    found = graph.problems(modules, imports)
    assert "import circle: data <-> errors" in found
    assert any("training:1 imports runs upwards (method -> run folder)" in p for p in found)
    assert any("runs:2 imports cli" in p and "no comment" in p for p in found)
    assert not any(p.startswith("cli:") for p in found)  # its reason is on the line
    assert any("runs:2 imports cli upwards" in p for p in found)
    hidden = graph.unexplained_imports(source)
    assert hidden == ["runs:2 imports .cli inside a function with no comment saying why"]


def test_oversized_modules_and_functions_are_found(graph, tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(graph.MAX_FUNCTION_LINES))
    source = _package(
        tmp_path,
        {
            "long.py": "def long():\n" + body + "\n",
            "big.py": "\n".join(f"y{i} = {i}" for i in range(graph.MAX_MODULE_LINES + 1)),
            "fine.py": "def short():\n    return 1\n",
        },
    )
    found = graph.oversized(source)
    assert found == [
        f"big: {graph.MAX_MODULE_LINES + 1} lines (at most {graph.MAX_MODULE_LINES})",
        f"long:1 long: {graph.MAX_FUNCTION_LINES + 1} lines (at most {graph.MAX_FUNCTION_LINES})",
    ]
