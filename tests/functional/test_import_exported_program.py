"""`fmnist-dsl import model.pt2`: a PyTorch exported program (`torch.export.save`) read through the same tables as
`file.py:NAME`, its ATen ops turned back into the modules and functions they stand for."""

import numpy as np
import pytest
import torch

from compilers.project import build_and_import
from dsl import load_spec
from runtime.common.data import load_split_arrays
from runtime.common.imported import ImportRefused
from runtime.common.rundir import RunFileError
from runtime.interop.importing import exported_program, torch_module
from tests.conftest import SPECS
from tests.functional.test_import_cli import TORCH_MODELS
from tests.functional.test_import_round_trip import assert_same_weights, normalised, said, trained_like_models


def test_exported_program_round_trip(tmp_path):
    """The `cnn` example's PyTorch model, exported with a free batch size: the same spec (its BiasedVarBatchNorm2d
    recorded by the export, so no training change) and the same weights in both twins."""
    spec_path = next(path for path in SPECS if path.stem == "cnn")
    package = build_and_import(spec_path, tmp_path / "package")
    torch_model, keras_model = trained_like_models(package)
    batch = torch.export.Dim("batch")
    program = torch.export.export(torch_model.eval(), (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "cnn.pt2")
    imported = exported_program.read(tmp_path / "cnn.pt2")
    assert said(imported, package.NAME, keep_initializers=False) == normalised(load_spec(spec_path), False)
    assert imported.training_changes == []
    assert_same_weights(package, imported, torch_model, keras_model)


@pytest.mark.parametrize("name", ["SmallCNN", "Vocabulary"])
def test_hand_written_programs_read_as_their_files(name, tmp_path):
    """Exported for batches of 4, a hand-written model reads as its file.py:NAME does, with the same training changes
    (nn.BatchNorm2d's unbiased running variance, nn.AdaptiveMaxPool2d's tie gradient), and its source runs in batches
    of 4 (the last one filled up) with the eager model's outputs."""
    model = torch_module._load(TORCH_MODELS, name).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(4, 1, 28, 28),)), tmp_path / "model.pt2")
    imported = exported_program.read(tmp_path / "model.pt2")
    by_file = torch_module.read(TORCH_MODELS, name, None)
    assert [(x.kind, x.arguments) for x in imported.layers] == [(x.kind, x.arguments) for x in by_file.layers]
    assert imported.training_changes == by_file.training_changes != []
    images = load_split_arrays().test_images[:10]
    with torch.no_grad():
        expected = model(torch.tensor(images.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(imported.predict(images), expected, rtol=0, atol=1e-6)


def test_exported_program_refusals(tmp_path):
    """An op with no DSL counterpart is refused naming it; a file that is not an exported program in one line."""
    model = torch_module._load(TORCH_MODELS, "Scaled").eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 28, 28),)), tmp_path / "scaled.pt2")
    with pytest.raises(ImportRefused, match=r"scaled.pt2: op aten.mul.Tensor \(index \d+\): an exported program"):
        exported_program.read(tmp_path / "scaled.pt2")
    (tmp_path / "notes.pt2").write_text("just text\n")
    with pytest.raises(RunFileError, match=r"notes.pt2"):
        exported_program.read(tmp_path / "notes.pt2")
