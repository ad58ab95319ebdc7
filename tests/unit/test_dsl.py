"""Unit tier: the DSL validates, normalises and infers shapes and parameter counts itself."""

import json
import sys

import pytest
import yaml

from dsl import SpecError, infer_shapes, load_spec, parse_spec
from dsl.layers import LAYER_TYPES
from dsl.shapes import same_padding
from tests.conftest import SPECS
from tests.recipes import SMALLEST_SPEC

LENET = (SPECS[0].parent / "lenet5.yaml").read_text()


def totals(spec):
    shapes = infer_shapes(spec)
    return sum(s.trainable for s in shapes), sum(s.non_trainable for s in shapes)


def test_known_parameter_counts():
    assert totals(load_spec(SPECS[0].parent / "lenet5.yaml")) == (61_706, 0)
    assert totals(load_spec(SPECS[0].parent / "mlp.yaml")) == (272_060, 900)


def test_every_example_spec_loads():
    assert {load_spec(path).name for path in SPECS} >= {"lenet5", "mlp", "mlp_adam", "cnn", "best"}


def test_defaults_are_filled_and_pairs_normalised():
    spec = parse_spec("name: a\ninput: [8, 8, 1]\nlayers:\n  - Conv2D: {filters: 2, kernel_size: 3}\n")
    kind, conv = spec.layer_list()[0]
    assert (kind, conv.kernel_size, conv.strides, conv.padding) == ("Conv2D", (3, 3), (1, 1), "valid")
    assert (conv.kernel_initializer, conv.bias_initializer, conv.activation) == ("glorot_uniform", "zeros", "none")


@pytest.mark.parametrize(
    ("size", "window", "stride", "expected"),
    [(28, 3, 2, (0, 1)), (28, 3, 1, (1, 1)), (7, 2, 2, (0, 1)), (5, 1, 3, (0, 0)), (4, 4, 1, (1, 2))],
)
def test_same_padding_follows_tensorflow(size, window, stride, expected):
    assert same_padding(size, window, stride) == expected


def test_same_padding_with_stride_keeps_ceil_of_size_over_stride():
    spec = parse_spec(
        "name: a\ninput: [28, 27, 3]\nlayers:\n"
        "  - Conv2D: {filters: 5, kernel_size: 3, strides: 2, padding: same}\n"
        "  - MaxPool: {pool_size: 3, strides: 2, padding: same}\n"
        "  - BatchNorm: {}\n  - Flatten: {}\n"
    )
    shapes = [s.output_shape for s in infer_shapes(spec)]
    assert shapes == [(14, 14, 5), (7, 7, 5), (7, 7, 5), (245,)]
    assert infer_shapes(spec)[2].non_trainable == 10


BAD_EDITS = [
    ("kernel_size: [5, 5]", "kernel_size: 15", 7, "layers[2].Conv2D.kernel_size", "15 is larger than the 14x14 input"),
    ("units: 120", "units: 0", 10, "layers[5].Dense.units", "greater than 0"),
    ("Flatten: {}", "Flaten: {}", 9, "layers[4]", "unknown layer 'Flaten'"),
    ("kernel_size: 5,", "kernel_size: 5, size: 3,", 5, "layers[0].Conv2D.size", "Extra inputs"),
    ("batch_size: 128", "batch_size: big", 15, "training.batch_size", "valid integer"),
    ("name: lenet5", "name: 9lives", 2, "name", "lowercase Python identifier"),
    ("name: lenet5", "name: keras", 2, "name", "shadow"),
    ("momentum: 0.9", "momentum: 1.5", 14, "training.optimizer.momentum", "less than 1"),
    ("units: 10,", "units: 11,", 12, "layers[7]", "10 class scores"),
    ("- Flatten: {}", "- Dropout: {rate: 1.0}\n  - Flatten: {}", 9, "layers[4].Dropout.rate", "less than 1"),
    ("- Flatten: {}", "- Dense: {units: 5}\n  - Flatten: {}", 9, "layers[4].Dense", "add a Flatten layer"),
    (
        "pool_size: 2}\n  - Flatten",
        "pool_size: 11}\n  - Flatten",
        8,
        "layers[3].MaxPool.pool_size",
        "11 is larger than the 10x10",
    ),
]


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), BAD_EDITS)
def test_bad_spec_names_file_line_and_field(old, new, line, field, words):
    assert old in LENET
    with pytest.raises(SpecError) as caught:
        parse_spec(LENET.replace(old, new, 1), "lenet5.yaml")
    error = caught.value
    assert (error.file, error.line, error.field) == ("lenet5.yaml", line, field)
    assert words in error.message
    assert str(error).startswith(f"lenet5.yaml:{line}: {field}: ")


def test_malformed_yaml_names_its_line():
    with pytest.raises(SpecError) as caught:
        parse_spec("name: a\ninput: [28, 28\nlayers: []\n", "x.yaml")
    assert caught.value.line == 3 and "malformed YAML" in caught.value.message


CANARY_SPEC = SMALLEST_SPEC + "  seed: SEED\n"


def _canary(path) -> tuple[str, str]:
    """A tag that, were Python tags constructed, would create `path` and give 0 (a valid seed); and the spec."""
    tag = f"!!python/object/apply:os.system ['touch {path}']"
    return tag, CANARY_SPEC.replace("SEED", tag)


def test_yaml_is_loaded_safely(tmp_path):
    canary = tmp_path / "canary"
    tag, text = _canary(canary)
    parse_spec(text.replace(tag, "0"))  # the spec is valid but for the tag
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "probe.yaml")
    assert not canary.exists()
    assert str(caught.value).startswith("probe.yaml:8: malformed YAML: could not determine a constructor for the tag")


def test_the_canary_fires_under_an_unsafe_loader(tmp_path, monkeypatch):
    from dsl import document

    canary = tmp_path / "canary"
    monkeypatch.setattr(document, "StrictLoader", yaml.UnsafeLoader)  # the planted bug
    assert parse_spec(_canary(canary)[1]).training.seed == 0 and canary.exists()


def test_json_schema_lists_every_layer(tmp_path):
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "compilers.cli", "schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(result.stdout)
    names = json.dumps(schema)
    for kind in LAYER_TYPES:
        assert f'"{kind}Entry"' in names
    assert schema["additionalProperties"] is False
