"""Numbers as people and json.dumps write them: `1e-8` is a float, and every spec.json loads back to its spec."""

import pytest

from dsl import load_spec, parse_spec
from tests.conftest import REPO, SPECS


def test_exponent_without_a_dot_is_a_float():
    text = (REPO / "specs" / "mlp_adam.yaml").read_text()
    spec = parse_spec(text.replace("name: adam", "name: adam, epsilon: 1e-7", 1), "adam.yaml")
    assert spec.training.optimizer.epsilon == 1e-7


@pytest.mark.parametrize("spec_file", SPECS, ids=[path.stem for path in SPECS])
def test_the_normalised_spec_json_loads_back_to_the_same_spec(spec_file):
    spec = load_spec(spec_file)
    assert load_spec(REPO / "generated" / spec.name / "spec.json").model_dump() == spec.model_dump()
