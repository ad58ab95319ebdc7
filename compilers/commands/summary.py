"""`fmnist-dsl summary`: the layer table, the DSL's inference beside both frameworks' own figures."""

import tempfile
from pathlib import Path

from compilers.lowering import lower
from compilers.project import build_and_import
from dsl import infer_shapes, load_spec


def register(subparsers) -> None:
    summary = subparsers.add_parser("summary", help="layer table: output shapes and parameters in both frameworks")
    summary.add_argument("spec", type=Path, metavar="SPEC")
    summary.set_defaults(run=run)


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A PyTorch NCHW feature shape in the DSL's channels-last order."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def summary_rows(spec_path: Path) -> list[dict]:
    """One row per DSL layer: its name, and shape and parameters per the DSL, PyTorch and Keras."""
    from runtime import introspect

    spec = load_spec(spec_path)
    model = lower(spec, spec_path.name)
    with tempfile.TemporaryDirectory() as folder:
        package = build_and_import(spec_path, Path(folder))
        torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    height, width, channels = model.input_shape
    torch_shapes = introspect.torch_output_shapes(
        torch_model, (channels, height, width), [op.output_attr for op in model.ops]
    )
    keras_shapes = introspect.keras_output_shapes(keras_model)
    rows = []
    for op, inferred in zip(model.ops, infer_shapes(spec)):
        torch_counts = [introspect.torch_parameter_counts(getattr(torch_model, attr)) for attr in op.attrs]
        rows.append(
            {
                "layer": op.name,
                "kind": inferred.kind,
                "dsl": (inferred.output_shape, inferred.trainable, inferred.non_trainable),
                "torch": (_nhwc(torch_shapes[op.output_attr]), *map(sum, zip(*torch_counts))),
                "keras": (keras_shapes[op.name], *introspect.keras_parameter_counts(keras_model.get_layer(op.name))),
            }
        )
    return rows


def _cell(shape, trainable, frozen) -> str:
    params = f"{trainable:,}" + (f" + {frozen:,}" if frozen else "")
    return f"{str(shape):<14} {params:>12}"


def run(args) -> int:
    rows = summary_rows(args.spec)
    header = f"{'layer':<10} {'kind':<10} | {'DSL':^27} | {'PyTorch (as NHWC)':^27} | {'Keras':^27}"
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = " | ".join(_cell(*row[side]) for side in ("dsl", "torch", "keras"))
        print(f"{row['layer']:<10} {row['kind']:<10} | {cells}")
    totals = [[sum(row[side][i] for row in rows) for i in (1, 2)] for side in ("dsl", "torch", "keras")]
    print("-" * len(header))
    print(f"{'total':<21} | " + " | ".join(_cell("", *total) for total in totals))
    print("(parameters: trainable + non-trainable state such as BatchNorm moving statistics)")
    return 0
