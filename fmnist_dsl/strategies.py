"""Hypothesis strategies: random valid architectures using every DSL layer kind (Residual blocks nested two deep
included), and building what they draw.

Every drawn spec is valid by construction (the strategy follows the shapes), so no test filters examples away. A key
whose drawn value is the DSL's default is left out half the time, so the defaults are exercised as written.
"""

from pathlib import Path

import yaml
from hypothesis import strategies as st

from compilers.project import build_and_import
from dsl.layers import Function, Initializer
from dsl.shapes import projection_strides, spatial_output

PROBABILITIES = ("softmax", "log_softmax")
# Inside a network (the linter warns of it) these give outputs far from 1 in size, or constants over a single value:
# numerical tests leave them to the output layer, where float32 comparisons and gradients mean something.
INNER = tuple(f for f in Function.__args__ if f not in PROBABILITIES)
INITIALIZERS = st.sampled_from(Initializer.__args__)
PADDINGS = st.sampled_from(["valid", "same"])
HEADS = st.sampled_from(["none", "softmax", "log_softmax"])


def _args(draw, values: dict, defaults: dict) -> dict:
    """`values` without some of the keys that hold their default (the DSL fills those in)."""
    return {key: value for key, value in values.items() if value != defaults.get(key) or draw(st.booleans())}


def _pair(draw, pair: tuple[int, int]):
    """A pair as the spec may write it: an int when both sides agree, half the time."""
    return pair[0] if pair[0] == pair[1] and draw(st.booleans()) else list(pair)


def _window(draw, shape, limit: int) -> tuple[tuple[int, int], tuple[int, int]]:
    window = tuple(draw(st.integers(1, min(limit, n))) for n in shape[:2])
    return window, tuple(draw(st.integers(1, 3)) for _ in range(2))


def _spatial(shape, window, strides, padding) -> tuple[int, int]:
    return tuple(spatial_output(n, k, s, padding) for n, k, s in zip(shape[:2], window, strides))


def _shape_keeping_layer(draw, functions: tuple[str, ...]) -> dict:
    kind = draw(st.sampled_from(["BatchNorm", "Dropout", "Activation", "LayerNorm"]))
    if kind == "LayerNorm":
        values = {"epsilon": draw(st.sampled_from([1e-3, 0.1])), "center": draw(st.booleans())}
        values |= {"scale": draw(st.booleans())}
        return {"LayerNorm": _args(draw, values, {"epsilon": 1e-3, "center": True, "scale": True})}
    if kind == "BatchNorm":
        values = {"momentum": draw(st.sampled_from([0.5, 0.9, 0.99]))}
        values |= {"epsilon": draw(st.sampled_from([1e-3, 1e-5, 0.1]))}
        return {"BatchNorm": _args(draw, values, {"momentum": 0.99, "epsilon": 1e-3})}
    if kind == "Dropout":
        return {"Dropout": {"rate": draw(st.sampled_from([0.0, 0.3, 0.5]))}}
    return {"Activation": {"name": draw(st.sampled_from(functions))}}


def _kernel_args(draw, functions: tuple[str, ...]) -> tuple[dict, dict]:
    """The arguments every convolution shares besides its window: (values, defaults)."""
    values = {"activation": draw(st.sampled_from(("none", *functions))), "use_bias": draw(st.booleans())}
    values |= {"kernel_initializer": draw(INITIALIZERS), "bias_initializer": draw(INITIALIZERS)}
    defaults = {"strides": (1, 1), "padding": "valid", "activation": "none", "use_bias": True, "dilation_rate": (1, 1)}
    return values, defaults | {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros", "groups": 1}


def _dilation(draw, shape, window, strides, padding) -> tuple[int, int]:
    """A dilation of 2 where Keras takes one (stride 1) and the dilated kernel still fits a `valid` input."""
    if strides != (1, 1) or not draw(st.booleans()):
        return (1, 1)
    fits = all(padding == "same" or 2 * (k - 1) + 1 <= n for k, n in zip(window, shape[:2]))
    return (2, 2) if fits else (1, 1)


def _conv(draw, shape, functions: tuple[str, ...], kind: str = "Conv2D") -> tuple[dict, tuple[int, ...]]:
    window, strides = _window(draw, shape, 5 if kind == "Conv2D" else 3)
    padding = draw(PADDINGS)
    values, defaults = _kernel_args(draw, functions)
    if kind != "Conv2D":  # TensorFlow's depthwise convolution takes equal strides only
        strides = (strides[0], strides[0])
        # A zero depthwise kernel makes every later value constant: the frameworks' figures would compare noise.
        values["kernel_initializer"] = draw(st.sampled_from([i for i in Initializer.__args__ if i != "zeros"]))
    dilation = _dilation(draw, shape, window, strides, padding)
    values |= {"kernel_size": window, "strides": strides, "padding": padding, "dilation_rate": dilation}
    if kind == "Conv2D":
        groups = draw(st.sampled_from([g for g in range(1, shape[2] + 1) if shape[2] % g == 0]))
        channels = groups * draw(st.integers(1, 6 // groups))
        values |= {"filters": channels, "groups": groups}
    else:
        multiplier = draw(st.integers(1, 2))
        values["depth_multiplier"] = multiplier
        channels = shape[2] * multiplier
        if kind == "SeparableConv2D":
            channels = values["filters"] = draw(st.integers(1, 6))
    args = _args(draw, values, defaults | {"depth_multiplier": 1})
    args |= {key: _pair(draw, args[key]) for key in ("kernel_size", "strides", "dilation_rate") if key in args}
    span = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
    return {kind: args}, (*_spatial(shape, span, strides, padding), channels)


def _pool(draw, shape, kind: str = "MaxPool") -> tuple[dict, tuple[int, ...]]:
    window, strides = _window(draw, shape, 3)
    padding = draw(PADDINGS)
    values = {"pool_size": window, "strides": None if draw(st.booleans()) else strides, "padding": padding}
    args = _args(draw, values, {"pool_size": (2, 2), "strides": None, "padding": "valid"})
    args |= {key: _pair(draw, args[key]) for key in ("pool_size", "strides") if args.get(key) is not None}
    output = _spatial(shape, window, values["strides"] or window, padding)
    return {kind: args}, (*output, shape[2])


def _resizing(draw, shape) -> tuple[dict, tuple[int, ...]]:
    """ZeroPadding, or an UpSampling kept small (maps of at most 8x8 grow, by at most 2)."""
    if max(shape[:2]) > 8 or draw(st.booleans()):
        sides = tuple(tuple(draw(st.integers(0, 2)) for _ in range(2)) for _ in range(2))
        grown = (shape[0] + sum(sides[0]), shape[1] + sum(sides[1]), shape[2])
        return {"ZeroPadding": {"padding": [list(side) for side in sides]}}, grown
    size = tuple(draw(st.integers(1, 2)) for _ in range(2))
    values = {"size": size, "interpolation": draw(st.sampled_from(["nearest", "bilinear"]))}
    args = _args(draw, values, {"size": (2, 2), "interpolation": "nearest"})
    if "size" in args:
        args["size"] = _pair(draw, size)
    return {"UpSampling": args}, (shape[0] * size[0], shape[1] * size[1], shape[2])


def _same_conv(draw, filters: int, functions: tuple[str, ...]) -> dict:
    """A Conv2D keeping height and width: stride 1, `same` padding."""
    values = {"filters": filters, "kernel_size": draw(st.integers(1, 3)), "padding": "same"}
    values |= {"activation": draw(st.sampled_from(("none", *functions))), "use_bias": draw(st.booleans())}
    return {"Conv2D": _args(draw, values, {"activation": "none", "use_bias": True})}


def _shortcuts(shape, out) -> list[str]:
    """The shortcuts that match a block taking `shape` to `out`: identity where it keeps the shape, projection where
    it reduces height and width by whole factors (dsl.shapes.projection_strides)."""
    projected = projection_strides(shape, out) is not None
    return (["identity"] if out == shape else []) + (["projection"] if projected else [])


def _residual(draw, shape, functions: tuple[str, ...], depth: int) -> tuple[dict, tuple[int, ...]]:
    """A Residual of one or two feature-map layers (another Residual among them, one level down at most); a block
    that no shortcut matches is replaced by one `same` Conv2D, which a projection matches."""
    block, out = [], shape
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):  # a layer keeping the shape, half the time, so that identity shortcuts are drawn too
            keep = (
                _same_conv if draw(st.booleans()) else lambda draw, _, functions: _shape_keeping_layer(draw, functions)
            )
            layer = keep(draw, out[2], functions)
        else:
            layer, out = _feature_map_layer(draw, out, functions, depth + 1)
        block.append(layer)
    if not _shortcuts(shape, out):
        out = (*shape[:2], draw(st.integers(1, 4)))
        block = [_same_conv(draw, out[2], functions)]
    values = {"layers": block, "shortcut": draw(st.sampled_from(_shortcuts(shape, out)))}
    values["activation"] = draw(st.sampled_from(("none", *functions)))
    return {"Residual": _args(draw, values, {"shortcut": "identity", "activation": "none"})}, out


def _feature_map_layer(draw, shape, functions: tuple[str, ...], depth: int = 0) -> tuple[dict, tuple[int, ...]]:
    kinds = ["Conv2D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPool", "AvgPool", "resize", "other"]
    kind = draw(st.sampled_from(kinds + ["Residual"] * (2 - depth)))
    if kind == "Residual":
        return _residual(draw, shape, functions, depth)
    if kind.endswith("Conv2D"):
        return _conv(draw, shape, functions, kind)
    if kind.endswith("Pool"):
        return _pool(draw, shape, kind)
    if kind == "resize":
        return _resizing(draw, shape)
    return _shape_keeping_layer(draw, functions), shape


def _flat_layer(draw, functions: tuple[str, ...]) -> dict:
    if draw(st.booleans()):
        activation = draw(st.sampled_from(("none", *functions)))
        values = {"units": draw(st.integers(1, 12)), "activation": activation, "use_bias": draw(st.booleans())}
        values |= {"kernel_initializer": draw(INITIALIZERS), "bias_initializer": draw(INITIALIZERS)}
        defaults = {"activation": "none", "use_bias": True, "kernel_initializer": "glorot_uniform"}
        return {"Dense": _args(draw, values, defaults | {"bias_initializer": "zeros"})}
    return _shape_keeping_layer(draw, functions)


@st.composite
def architectures(draw, classes: int | None = None, name: str = "arch", inner_probabilities: bool = False) -> dict:
    """A spec as a dict: feature-map layers, Flatten or a global pool, then flat layers; ends in a `classes`-way Dense
    if given.

    `inner_probabilities`: let softmax and log_softmax appear before the last layer too (for tests of shapes).
    """
    functions = Function.__args__ if inner_probabilities else INNER
    shape = (draw(st.integers(5, 14)), draw(st.integers(5, 14)), draw(st.integers(1, 3)))
    spec = {"name": name, "input": list(shape), "layers": []}
    for _ in range(draw(st.integers(0, 4))):
        layer, shape = _feature_map_layer(draw, shape, functions)
        spec["layers"].append(layer)
    spec["layers"].append({draw(st.sampled_from(["Flatten", "Flatten", "GlobalAvgPool", "GlobalMaxPool"])): {}})
    spec["layers"] += [_flat_layer(draw, functions) for _ in range(draw(st.integers(0, 4)))]
    if classes:
        spec["layers"].append({"Dense": {"units": classes, "activation": draw(HEADS)}})
    return spec


def as_yaml(spec: dict) -> str:
    """The spec file's text."""
    return yaml.safe_dump(spec, sort_keys=False)


def build_architecture(spec: dict, folder: Path):
    """The generated package of a drawn spec, built under `folder` and imported."""
    spec_file = folder / f"{spec['name']}.yaml"
    spec_file.write_text(as_yaml(spec))
    return build_and_import(spec_file, folder / "out")
