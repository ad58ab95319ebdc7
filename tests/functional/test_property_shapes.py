"""Functional tier: over random architectures, both frameworks build what the DSL inferred."""

from hypothesis import given

from compilers.project import build_and_import
from dsl import infer_shapes, parse_spec
from dsl.shapes import flat_shapes
from fmnist_dsl.strategies import architectures, as_yaml
from runtime.commands.summary import summary_rows
from tests.conftest import REPO


@given(architectures(inner_probabilities=True).map(as_yaml))
def test_shapes_and_parameter_counts_agree_across_frameworks(tmp_path_factory, spec_text):
    spec_file = tmp_path_factory.mktemp("spec") / "arch.yaml"
    spec_file.write_text(spec_text)
    rows = summary_rows(build_and_import(spec_file, spec_file.parent / "out"))
    inferred = flat_shapes(infer_shapes(parse_spec(spec_text)))
    assert [row["kind"] for row in rows] == [layer.kind for layer in inferred]
    for row, layer in zip(rows, inferred):
        dsl_shape, dsl_trainable, dsl_state = row["dsl"]
        # The package's table is the DSL's own inference, printed; a Residual's weights are in its layers' rows.
        own = (0, 0) if layer.kind == "Residual" else (layer.trainable, layer.non_trainable)
        assert (dsl_shape, dsl_trainable, dsl_state) == (layer.output_shape, *own)
        assert row["torch"] == (dsl_shape, dsl_trainable, dsl_state), row
        assert row["keras"] == (dsl_shape, dsl_trainable, dsl_state), row


def test_known_totals_from_the_live_models(tmp_path):
    for name, expected in (("lenet5", (61_706, 0)), ("mlp", (272_060, 900))):
        rows = summary_rows(build_and_import(REPO / "specs" / f"{name}.yaml", tmp_path / name))
        for side in ("torch", "keras"):
            assert (sum(r[side][1] for r in rows), sum(r[side][2] for r in rows)) == expected, (name, side)
