"""`fmnist-dsl import` end to end on hand-written models in the style of the source projects, and its refusals.

The command runs in a subprocess (it loads both frameworks); it exits 1 when a twin's outputs differ from the
source's by more than 1e-5 on the 10,000 official test images, so exit 0 is the agreement. The readers' refusals
are checked in-process, each naming the layer, its index and what the DSL lacks.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dsl.lint import lint_file
from runtime.common.imported import ImportRefused
from runtime.interop.importing import keras_file, onnx_file, torch_module
from tests.conftest import REPO
from tests.functional.import_sources import keras_models

SOURCES = Path(__file__).parent / "import_sources"
TORCH_MODELS = SOURCES / "torch_models.py"


def fmnist_dsl(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "compilers.cli", *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def saved_keras(build, path: Path) -> Path:
    """A hand-written Keras model with BatchNorm statistics away from 0 and 1, saved as .keras."""
    model = build()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        for variable in layer.weights:
            if variable.path.endswith(("moving_mean", "moving_variance", "beta", "bias")):
                variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    model.save(path)
    return path


def assert_agrees(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "max abs diff" in line]
    assert len(lines) == 3 and all(line.endswith("predictions that differ 0") for line in lines), result.stdout


def test_keras_mlp_with_rescaling(tmp_path):
    source = saved_keras(keras_models.mlp, tmp_path / "fashion_mlp.keras")
    result = fmnist_dsl("import", str(source), "--out", "out", cwd=tmp_path)
    assert_agrees(result)
    spec = (tmp_path / "out" / "fashion_mlp.yaml").read_text()
    assert "Rescaling(1/255) folded into the DSL's input" in spec
    assert "  - BatchNorm: {}\n  - Dropout: {rate: 0.3}\n" in spec  # Keras's defaults are the DSL's: left out
    evaluated = fmnist_dsl("evaluate", "out/runs/fashion_mlp", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr  # the run folder reloads and gives back its accuracy


def test_keras_cnn_with_same_padding_and_stride_2(tmp_path):
    source = saved_keras(keras_models.strided_cnn, tmp_path / "strided.keras")
    assert_agrees(fmnist_dsl("import", str(source), "--name", "strided_cnn", "--out", ".", cwd=tmp_path))
    spec = (tmp_path / "strided_cnn.yaml").read_text()
    assert "Conv2D: {filters: 16, kernel_size: 3, strides: 2, padding: same, activation: relu}" in spec
    assert "BatchNorm: {momentum: 0.9}" in spec and "Activation: {name: softmax}" in spec
    assert (tmp_path / "runs" / "strided_cnn" / "torch" / "model.pt").exists()


def test_torch_lenet5_with_functional_relu_and_view(tmp_path):
    torch.manual_seed(0)
    torch.save(torch_module._load(TORCH_MODELS, "LeNet5").state_dict(), tmp_path / "lenet.pt")
    result = fmnist_dsl("import", f"{TORCH_MODELS}:LeNet5", "--weights", "lenet.pt", cwd=tmp_path)
    assert_agrees(result)
    spec = (tmp_path / "lenet5.yaml").read_text()
    assert "Conv2D: {filters: 6, kernel_size: 5, padding: same, activation: relu}" in spec
    assert "  - Flatten: {}\n  - Dense: {units: 120, activation: relu}\n" in spec


def saved_torch(name: str, path: Path) -> Path:
    """A hand-written PyTorch model's state_dict with BatchNorm statistics away from 0 and 1."""
    model = torch_module._load(TORCH_MODELS, name)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                tensor.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), path)
    return path


def test_torch_cnn_keeps_batchnorm_meaning_and_flatten_order(tmp_path):
    saved_torch("SmallCNN", tmp_path / "cnn.pt")
    result = fmnist_dsl("import", f"{TORCH_MODELS}:SmallCNN", "--weights", "cnn.pt", "--name", "cnn", cwd=tmp_path)
    assert_agrees(result)
    spec = (tmp_path / "cnn.yaml").read_text()
    assert spec.count("BatchNorm: {momentum: 0.9, epsilon: 1.0e-05}") == 2  # PyTorch's 0.1 and 1e-5, said by the DSL
    assert "Dense: {units: 10, activation: log_softmax}" in spec
    assert "# training differs: layers[1]: layer 'bn1'" in spec and "training differs: layer 'bn2'" in result.stderr
    batch_norm_lines = [n for n, line in enumerate(spec.splitlines(), start=1) if line.startswith("  - BatchNorm")]
    findings = lint_file(tmp_path / "cnn.yaml")  # the header's `training differs` lines, read back by lint
    assert [finding.line for finding in findings if finding.code == "FM112"] == batch_norm_lines


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Branchy", r"torch_models.py:Branchy: its forward is not one straight line .*control flow"),
        ("CeilPool", r"layer 'pool' \(index 2, MaxPool2d\): ceil_mode=True is not in the DSL"),
        ("WithLSTM", r"layer 'rnn' \(index 2, LSTM\): the DSL has no LSTM"),
        ("Residual", r"add in forward \(index \d\): its shortcut Conv2D \(layer 'conv' .*\) is not the DSL's: nothing"),
        (
            "TorchDefaultProjection",
            r"layer 'block2.shortcut.1' \(index \d+, BatchNorm2d\): epsilon=1e-05 in a projection",
        ),
        ("AveragePool", r"layer 'pool' \(index 1, AvgPool2d\): count_include_pad=True with padding counts the padded"),
        ("Missing", r"torch_models.py: defines no 'Missing'"),
    ],
)
def test_torch_refusals_name_the_layer(name, message):
    with pytest.raises(ImportRefused, match=message):
        torch_module.read(TORCH_MODELS, name, None)


def test_keras_refusal_names_the_layer(tmp_path):
    keras_models.with_lstm().save(tmp_path / "lstm.keras")
    with pytest.raises(ImportRefused, match=r"layer 'lstm' \(index 1, LSTM\): the DSL has no LSTM layer"):
        keras_file.read(tmp_path / "lstm.keras")


def test_keras_functional_chain_reads_and_a_sum_that_is_no_residual_block_is_refused(tmp_path):
    import keras

    inputs = keras.Input(shape=(28, 28, 1))
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(features)).save(tmp_path / "chain.keras")
    imported = keras_file.read(tmp_path / "chain.keras")
    assert [layer.kind for layer in imported.layers] == ["Conv2D", "Flatten", "Dense"]
    assert imported.layers[2].weights["kernel"].shape == (26 * 26 * 4, 10)
    convolutions = [keras.layers.Conv2D(1, 3, padding="same", name=f"conv_{n}")(inputs) for n in "ab"]
    keras.Model(inputs, keras.layers.Flatten()(keras.layers.Add(name="sum")(convolutions))).save(tmp_path / "sum.keras")
    with pytest.raises(ImportRefused, match=r"layer 'sum' \(index 3, Add\): its shortcut Conv2D \(layer 'conv_b'"):
        keras_file.read(tmp_path / "sum.keras")
    tripled = keras.layers.Add()([keras.layers.Conv2D(1, 3, padding="same")(inputs) for _ in range(3)])
    keras.Model(inputs, keras.layers.Flatten()(tripled)).save(tmp_path / "three.keras")
    with pytest.raises(ImportRefused, match=r"\(index \d, Conv2D\): its input also feeds 2 other ops: a model with"):
        keras_file.read(tmp_path / "three.keras")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("CeilPool", r"node '/pool/MaxPool' \(index 1, MaxPool\): ceil_mode=1 is not in the DSL"),
        ("Residual", r"node '/conv/Conv' \(index \d, Conv\): kernel_size=\(3, 3\) in a projection shortcut: the DSL's"),
        ("AveragePool", r"node '/pool/AveragePool' \(index \d+, AveragePool\): count_include_pad=1 with pads"),
    ],
)
def test_onnx_refusals_name_the_node(name, message, tmp_path):
    model = torch_module._load(TORCH_MODELS, name).eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(tmp_path / "model.onnx"), dynamo=False)
    with pytest.raises(ImportRefused, match=message):
        onnx_file.read(tmp_path / "model.onnx")


def padded_convolutions(count: int):
    """An ONNX graph the way an exporter writes asymmetric `same` padding: each Conv's pad widths come from a
    Constant node, so every other node is folded into a constant before the chain is read."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, previous = [], "images"
    for index in range(count):
        pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64))
        nodes += [
            helper.make_node("Constant", [], [f"pads{index}"], value=pads),
            helper.make_node("Pad", [previous, f"pads{index}"], [f"padded{index}"]),
            helper.make_node("Conv", [f"padded{index}", "kernel", "bias"], [f"conv{index}"], kernel_shape=[3, 3]),
        ]
        previous = f"conv{index}"
    nodes.append(helper.make_node("Flatten", [previous], ["output"]))
    weights = [
        numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "kernel"),
        numpy_helper.from_array(np.zeros(1, np.float32), "bias"),
    ]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, 28, 28])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 784])
    graph = helper.make_graph(nodes, "padded", [images], [output], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_folded_nodes_are_tracked_by_position(tmp_path):
    """Protobuf hands out a new wrapper object each time a node is read, so `id(node)` is reused between nodes: a
    reader that remembered folded nodes by id skipped or refused a random one (about 1 read in 6 for this graph)."""
    import onnx

    onnx.save(padded_convolutions(8), tmp_path / "model.onnx")
    for _ in range(40):
        imported = onnx_file.read(tmp_path / "model.onnx")
        assert [layer.kind for layer in imported.layers] == ["Conv2D"] * 8 + ["Flatten"]


def test_torch_module_instance():
    """NAME may be a module instance of the file (`model = LeNet5()`), read with its own weights."""
    imported = torch_module.read(TORCH_MODELS, "model", None)
    assert [layer.kind for layer in imported.layers] == ["Conv2D", "MaxPool", "Conv2D", "MaxPool", "Flatten"] + [
        "Dense"
    ] * 3
    assert "no --weights" in imported.notes[-1]


def test_torch_weights_that_do_not_fit(tmp_path):
    torch.save({"fc1.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ImportRefused, match=r"other.pt: does not fit the architecture: .*Missing key"):
        torch_module.read(TORCH_MODELS, "LeNet5", tmp_path / "other.pt")


@pytest.mark.parametrize("broken", ["not a model", "truncated", "pickle", "weights beside a .keras"])
def test_bad_files_exit_2_in_one_line_writing_nothing(broken, tmp_path):
    if broken == "not a model":
        (tmp_path / "notes.keras").write_text("just text\n")
        argv = ["notes.keras"]
    elif broken == "truncated":
        keras_models.mlp().save(tmp_path / "model.keras")
        data = (tmp_path / "model.keras").read_bytes()
        (tmp_path / "model.keras").write_bytes(data[: len(data) // 2])
        argv = ["model.keras"]
    elif broken == "weights beside a .keras":
        keras_models.mlp().save(tmp_path / "model.keras")
        argv = ["model.keras", "--weights", "model.keras"]
    else:  # a weights file holding an object: weights_only refuses to build it
        torch.save({"conv1.weight": Path("x")}, tmp_path / "evil.pt")
        argv = [f"{TORCH_MODELS}:LeNet5", "--weights", "evil.pt"]
    before = sorted(tmp_path.iterdir())
    result = fmnist_dsl("import", *argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("fmnist-dsl: "), result.stderr
    assert sorted(tmp_path.iterdir()) == before
