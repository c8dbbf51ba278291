"""docs/lab.ipynb, the lab report as a notebook: executed top to bottom (its quick profile),
a cell that raises fails the test; kept in the repository without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "lab.ipynb"

pytestmark = pytest.mark.slow


def test_the_notebook_is_kept_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


def test_the_notebook_runs_top_to_bottom(tmp_path, fashion_dir, monkeypatch):
    monkeypatch.setenv("GANSCOPE_DATA_DIR", str(fashion_dir))
    monkeypatch.setenv("GANSCOPE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANSCOPE_LAB_OUT", str(tmp_path / "lab-runs"))
    # the kernel's torch threads: 2, or a pytest-xdist worker's share of the cores (conftest)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError with the cell and its traceback
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # two loss curves, two sample grids, five latent figures, the class shifts, two shipped grids
    assert len(images) == 12
    text = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| mlp |" in text and "| cnn |" in text and "| cnn-improved |" in text
    for dim in (20, 50, 60, 70, 90):
        assert f"dim {dim}" in text
    assert (tmp_path / "lab-runs" / "cnn" / "analysis" / "dims.json").is_file()
