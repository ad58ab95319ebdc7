"""The generated packages' LAYERS and WEIGHTS rows: read by field name, and a package built for other columns fails
when it is imported, naming the row's field, not later in training."""

import subprocess
import sys

import pytest

from compilers.render import table_row
from dsl.tables import LayerRow, WeightRow
from generated import lenet5
from tests.conftest import REPO

ROW = LayerRow("conv1", "Conv2D", "act1", (28, 28, 6), 156, 0)


def test_a_printed_row_is_the_call_that_makes_it_again():
    assert table_row(ROW) == "LayerRow('conv1', 'Conv2D', 'act1', (28, 28, 6), 156, 0)"
    assert eval(table_row(ROW)) == ROW  # noqa: S307  -- our own literal, printed by ascii()
    assert all(eval(table_row(row)) == row for row in lenet5.WEIGHTS)  # noqa: S307


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LayerRow("conv1", "Conv2D", "act1", (28, 28, 6), 156), "missing 1 required positional argument"),
        (lambda: LayerRow("conv1", "Conv2D", "act1", (28, 28, 6), 156, 0, 7), "takes 7 positional arguments"),
        (lambda: LayerRow("conv1", "Conv2D", (28, 28, 6), "act1", 156, 0), r"LayerRow.output_attr: \(28, 28, 6\)"),
        (lambda: WeightRow("fc", "kernel", (64, 64), None, "glorot_uniform"), "WeightRow.initializer: None"),
        (lambda: WeightRow("fc", "kernel", (64, 64.0), "zeros", None), r"WeightRow.shape: \(64, 64.0\)"),
    ],
    ids=["a column short", "a column more", "columns swapped", "initialiser and map swapped", "a float in a shape"],
)
def test_a_row_of_other_columns_is_refused_naming_its_field(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_a_package_printed_for_other_columns_fails_at_import(tmp_path):
    """A copy of lenet5 whose LAYERS rows lack the last column: importing the package fails, before any training."""
    package = tmp_path / "stale"
    package.mkdir()
    source = (REPO / "generated/lenet5/__init__.py").read_text()
    source = source.replace(
        'LayerRow("fc3", "Dense", "act5", (10,), 850, 0)', 'LayerRow("fc3", "Dense", "act5", (10,), 850)'
    )
    (package / "__init__.py").write_text(source)
    result = subprocess.run(
        [sys.executable, "-c", "import stale"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1
    assert "LayerRow.__init__() missing 1 required positional argument: 'non_trainable'" in result.stderr
