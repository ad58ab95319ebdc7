"""Functional tier: over random architectures, both frameworks build what the DSL inferred."""

from hypothesis import given

from compilers.commands.summary import summary_rows
from tests.strategies import architectures


@given(architectures())
def test_shapes_and_parameter_counts_agree_across_frameworks(tmp_path_factory, spec_text):
    spec_file = tmp_path_factory.mktemp("spec") / "prop.yaml"
    spec_file.write_text(spec_text)
    for row in summary_rows(spec_file):
        dsl_shape, dsl_trainable, dsl_state = row["dsl"]
        assert row["torch"] == (dsl_shape, dsl_trainable, dsl_state), row
        assert row["keras"] == (dsl_shape, dsl_trainable, dsl_state), row


def test_known_totals_from_the_live_models():
    from tests.conftest import REPO

    for name, expected in (("lenet5", (61_706, 0)), ("mlp", (272_060, 900))):
        rows = summary_rows(REPO / "specs" / f"{name}.yaml")
        for side in ("torch", "keras"):
            assert (sum(r[side][1] for r in rows), sum(r[side][2] for r in rows)) == expected, (name, side)
