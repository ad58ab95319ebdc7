"""Golden tier: the notebooks `build --notebook` writes are valid, deterministic nbformat 4.5, parameters first."""

import json
import subprocess

import pytest

from compilers.notebook import Cell, notebook_json, split_cells
from compilers.project import build_packages, import_package
from tests.conftest import REPO, SPECS

NOTEBOOKS = sorted((REPO / "generated").glob("*/notebook.ipynb"))


def test_every_committed_package_carries_its_notebook():
    packages = sorted(path.name for path in (REPO / "generated").iterdir() if (path / "__init__.py").exists())
    assert [path.parent.name for path in NOTEBOOKS] == packages and len(packages) == len(SPECS)


def test_a_plain_build_adds_no_notebook_and_notebook_true_adds_only_it():
    plain, with_notebook = build_packages(SPECS[:1]), build_packages(SPECS[:1], notebook=True)
    assert "notebook.ipynb" not in plain[0].files
    assert with_notebook[0].files.keys() - plain[0].files.keys() == {"notebook.ipynb"}
    assert all(plain[0].files[name] == with_notebook[0].files[name] for name in plain[0].files)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.parent.name)
def test_notebook_is_nbformat_4_5_without_outputs_with_numbered_ids(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    assert [cell["id"] for cell in notebook["cells"]] == [f"cell-{n:02d}" for n in range(1, len(notebook["cells"]) + 1)]
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["id"]
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    # Byte for byte what Jupyter itself would write back, so opening and saving it changes nothing.
    assert nbformat.writes(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)) + "\n" == path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.parent.name)
def test_first_code_cell_is_tagged_parameters_and_sets_epochs_train_limit_seed(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    first = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert first["metadata"] == {"tags": ["parameters"]}
    values: dict = {}
    exec("".join(first["source"]), values)  # plain assignments, as papermill expects to replace
    recipe = import_package(path.parent).RECIPE
    assert (values["epochs"], values["train_limit"], values["seed"]) == (recipe["epochs"], None, recipe["seed"])


def test_notebook_code_passes_ruff():
    from ruff.__main__ import find_ruff_bin

    command = [find_ruff_bin(), "check", "--isolated", "--select=E,F,W,I", "--line-length=100", *map(str, NOTEBOOKS)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_split_cells_reads_kinds_tags_and_markdown_comments():
    script = 'dropped\n# %% [markdown]\n# # Title\n#\n# text\n\n# %% tags=["parameters"]\nx = 1\n\n# %%\nprint(x)\n'
    assert split_cells(script) == [
        Cell("markdown", "# Title\n\ntext"),
        Cell("code", "x = 1", ("parameters",)),
        Cell("code", "print(x)"),
    ]


def test_notebook_json_is_sorted_and_stable():
    cells = [Cell("code", "a = 1\nb = 2", ("parameters",)), Cell("markdown", "# T")]
    text = notebook_json(cells)
    assert text == notebook_json(cells) and text.endswith("}\n")
    notebook = json.loads(text)
    assert list(notebook) == sorted(notebook)
    assert notebook["cells"][0]["source"] == ["a = 1\n", "b = 2"]
    assert notebook["cells"][1] == {"cell_type": "markdown", "id": "cell-02", "metadata": {}, "source": ["# T"]}
