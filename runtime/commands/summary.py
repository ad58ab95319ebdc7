"""`fmnist-dsl summary`: the layer table, the DSL's inference beside both frameworks' own figures."""

from runtime.common.constants import FRAMEWORKS
from runtime.common.frameworks import require
from runtime.interop import introspect

SIDES = ("dsl", "torch", "keras")


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A PyTorch NCHW feature shape in the DSL's channels-last order."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def summary_rows(package) -> list[dict]:
    """One row per DSL layer: its name, and shape and parameters per the DSL, PyTorch and Keras."""
    torch_model, keras_model = package.build_torch_model(), package.build_keras_model()
    height, width, channels = package.INPUT_SHAPE
    output_attrs = [row.output_attr for row in package.LAYERS if row.output_attr]
    torch_shapes = introspect.torch_output_shapes(torch_model, (channels, height, width), output_attrs)
    keras_shapes = introspect.keras_output_shapes(keras_model)
    submodules = dict(torch_model.named_children())
    rows, torch_shape = [], None
    for row in package.LAYERS:
        # A Residual without activation outputs `x + shortcut`, a line of forward: the sum has the shape of its
        # addends, the row before it (its block's last layer or its projection), as PyTorch's addition ran.
        torch_shape = _nhwc(torch_shapes[row.output_attr]) if row.output_attr else torch_shape
        # A layer's weights live in the submodule of its own name (padding and activation hold none; a Residual's
        # are in its layers' rows).
        module = submodules.get(row.name)
        rows.append(
            {
                "layer": row.name,
                "kind": row.kind,
                "dsl": (row.output_shape, row.trainable, row.non_trainable),
                "torch": (torch_shape, *(introspect.torch_parameter_counts(module) if module else (0, 0))),
                "keras": (keras_shapes[row.name], *introspect.keras_parameter_counts(keras_model.get_layer(row.name))),
            }
        )
    return rows


def _cell(shape, trainable, frozen) -> str:
    params = f"{trainable:,}" + (f" + {frozen:,}" if frozen else "")
    return f"{str(shape):<14} {params:>12}"


def run(args, build) -> int:
    """Print the table of the spec's package."""
    require(*FRAMEWORKS, purpose="summary")
    rows = summary_rows(build(args.spec))
    # As wide as the longest name and kind (a Residual's layers are named after it: res1_res1_conv1).
    name_width = max(10, *(len(row["layer"]) for row in rows))
    kind_width = max(10, *(len(row["kind"]) for row in rows))
    header = f"{'layer':<{name_width}} {'kind':<{kind_width}} | {'DSL':^27} | {'PyTorch (as NHWC)':^27} | {'Keras':^27}"
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = " | ".join(_cell(*row[side]) for side in SIDES)
        print(f"{row['layer']:<{name_width}} {row['kind']:<{kind_width}} | {cells}")
    totals = [[sum(row[side][i] for row in rows) for i in (1, 2)] for side in SIDES]
    print("-" * len(header))
    print(f"{'total':<{name_width + kind_width + 1}} | " + " | ".join(_cell("", *total) for total in totals))
    print("(parameters: trainable + non-trainable state such as BatchNorm moving statistics)")
    return 0
