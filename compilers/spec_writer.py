"""Write a spec as a person would: one flow mapping per layer, defaults left out, a header comment on top.

`fmnist-dsl import` hands this the layers it read from a model file, every argument written out; the text it
returns is validated like any spec file before anything is written.
"""

from pydantic_core import PydanticUndefined

from dsl import parse_spec
from dsl.layers import LAYER_TYPES


def _default(kind: str, field: str):
    default = LAYER_TYPES[kind].model_fields[field].default
    return None if default is PydanticUndefined else default


def _scalar(value) -> str:
    """A YAML scalar the loader reads back as the same value: `1e-05` would be a string, `1.0e-05` is a float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else text
    return str(value)


def _value(value) -> str:
    if isinstance(value, (tuple, list)):
        if value and all(isinstance(item, (tuple, list)) and item[0] == item[1] for item in value):
            return _value([item[0] for item in value])  # ZeroPadding's [[t, t], [l, l]] is [t, l]
        if len(value) == 2 and value[0] == value[1] and not isinstance(value[0], (tuple, list)):
            return _scalar(value[0])  # an [n, n] pair is said as n
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return _scalar(value)


def layer_arguments(kind: str, arguments: dict) -> dict:
    """The arguments a person would write: those that differ from the DSL's defaults (a pool's strides default to
    its pool size)."""
    kept = {}
    for field in LAYER_TYPES[kind].model_fields:
        if field not in arguments:
            continue
        value = arguments[field]
        value = tuple(value) if isinstance(value, list) else value
        default = _default(kind, field)
        if kind in ("MaxPool", "AvgPool") and field == "strides":
            default = tuple(arguments.get("pool_size", _default(kind, "pool_size")))
        if value != (tuple(default) if isinstance(default, list) else default):
            kept[field] = value
    return kept


def _layer_lines(layers: list[tuple[str, dict]], indent: str) -> list[str]:
    """One flow mapping per layer; a Residual as a block mapping, its options, then its `layers` one level in."""
    lines = []
    for kind, arguments in layers:
        kept = layer_arguments(kind, arguments)
        if kind != "Residual":
            flow = ", ".join(f"{field}: {_value(value)}" for field, value in kept.items())
            lines.append(f"{indent}- {kind}: {{{flow}}}")
            continue
        lines.append(f"{indent}- {kind}:")
        lines += [f"{indent}    {field}: {_value(value)}" for field, value in kept.items() if field != "layers"]
        lines += [f"{indent}    layers:", *_layer_lines(arguments["layers"], indent + "      ")]
    return lines


def spec_text(name: str, input_shape: tuple[int, int, int], layers: list[tuple[str, dict]], header: list[str]) -> str:
    """The spec's YAML text; raises SpecError if it is not a valid spec (the caller then writes nothing)."""
    lines = [f"# {line}".rstrip() for line in header]
    lines += [f"name: {name}", f"input: [{', '.join(str(n) for n in input_shape)}]", "layers:"]
    lines += _layer_lines(layers, "  ")
    text = "\n".join(lines) + "\n"
    parse_spec(text, f"{name}.yaml")
    return text
