"""docs/notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel, on tiny settings.

SCRIPTRNN_NOTEBOOK_TINY=1 makes each run a few steps of a tiny network; everything else (the
built-in corpus, the API calls, the plot, the table, fine-tuning the built-in model) is what a
reader runs. Any cell that raises fails the test with that cell's error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRIPTRNN_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("SCRIPTRNN_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell that failed
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the loss curve was not drawn inline"
    assert any("text/markdown" in o.get("data", {}) for o in outputs), "the text report table is missing"
    assert (tmp_path / "runs" / "kitchen-tuned" / "README.md").exists()
