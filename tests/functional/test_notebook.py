"""The generated notebook runs top to bottom, with its parameters injected as papermill injects them."""

import json
from pathlib import Path

import pytest

from compilers.project import build_packages, write_packages
from tests.conftest import REPO

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")


def with_parameters(notebook, **values) -> None:
    """Replace the source of the cell tagged `parameters` by the given assignments."""
    cell = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    cell.source = "\n".join(f"{name} = {value!r}" for name, value in values.items())


def stdout_of(notebook) -> str:
    return "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )


@pytest.mark.needs_data
def test_the_mlp_notebook_trains_both_frameworks_plots_and_checks_parity(tmp_path: Path) -> None:
    package_dir = write_packages(build_packages([REPO / "specs" / "mlp.yaml"], notebook=True), tmp_path / "out")[0]
    notebook = nbformat.read(package_dir / "notebook.ipynb", as_version=4)
    run_dir = tmp_path / "run"
    with_parameters(notebook, epochs=1, train_limit=500, seed=0, run_dir=str(run_dir))
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(package_dir)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    printed = stdout_of(notebook)
    for framework in ("torch", "keras"):
        metrics = json.loads((run_dir / framework / "metrics.json").read_text())
        assert len(json.loads((run_dir / framework / "history.json").read_text())) == 1
        # One epoch on 500 images: measured 0.40 (PyTorch), 0.46 (Keras); chance is 0.1.
        assert metrics["test_accuracy"] > 0.35, metrics["test_accuracy"]
        assert f"{framework}: test accuracy {metrics['test_accuracy']:.4f}" in printed
    assert "500 training, 6000 validation, 10000 test images" in printed  # the injected limit reached the data
    assert "fc1         Dense       (300,)               235,500     235,500     235,500" in printed
    assert printed.count(": ok") == 4 and "FAILED" not in printed  # shapes, forward, gradients, trajectory
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 3  # curves, two confusion matrices
    assert (run_dir / "compare.png").stat().st_size > 0
