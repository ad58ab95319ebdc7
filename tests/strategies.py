"""Hypothesis strategies: random valid architectures using every DSL layer kind."""

import yaml
from hypothesis import strategies as st

from dsl.layers import Function, Initializer
from dsl.shapes import spatial_output

ACTIVATIONS = st.sampled_from(("none", *Function.__args__))
INITIALIZERS = st.sampled_from(Initializer.__args__)


def _window(draw, shape, limit: int) -> tuple[list[int], list[int], str]:
    padding = draw(st.sampled_from(["valid", "same"]))
    window = [draw(st.integers(1, min(limit, n))) for n in shape[:2]]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    return window, strides, padding


def _spatial(shape, window, strides, padding) -> tuple[int, int]:
    return tuple(spatial_output(n, k, s, padding) for n, k, s in zip(shape[:2], window, strides))


def _shape_keeping_layer(draw) -> dict:
    kind = draw(st.sampled_from(["BatchNorm", "Dropout", "Activation"]))
    if kind == "BatchNorm":
        return {
            "BatchNorm": {
                "momentum": draw(st.sampled_from([0.9, 0.99])),
                "epsilon": draw(st.sampled_from([1e-3, 1e-5])),
            }
        }
    if kind == "Dropout":
        return {"Dropout": {"rate": draw(st.sampled_from([0.0, 0.3]))}}
    return {"Activation": {"name": draw(st.sampled_from(Function.__args__))}}


def _feature_map_layer(draw, shape) -> tuple[dict, tuple[int, ...]]:
    kind = draw(st.sampled_from(["Conv2D", "Conv2D", "MaxPool", "other"]))
    if kind == "Conv2D":
        window, strides, padding = _window(draw, shape, 5)
        filters = draw(st.integers(1, 6))
        args = {"filters": filters, "kernel_size": window, "strides": strides, "padding": padding}
        args |= {
            "activation": draw(ACTIVATIONS),
            "use_bias": draw(st.booleans()),
            "kernel_initializer": draw(INITIALIZERS),
        }
        return {"Conv2D": args}, (*_spatial(shape, window, strides, padding), filters)
    if kind == "MaxPool":
        window, strides, padding = _window(draw, shape, 3)
        return {"MaxPool": {"pool_size": window, "strides": strides, "padding": padding}}, (
            *_spatial(shape, window, strides, padding),
            shape[2],
        )
    return _shape_keeping_layer(draw), shape


def _dense_layer(draw) -> dict:
    if draw(st.booleans()):
        args = {"units": draw(st.integers(1, 12)), "activation": draw(ACTIVATIONS), "use_bias": draw(st.booleans())}
        return {"Dense": args | {"kernel_initializer": draw(INITIALIZERS), "bias_initializer": draw(INITIALIZERS)}}
    return _shape_keeping_layer(draw)


@st.composite
def architectures(draw, classes: int | None = None) -> str:
    """Spec text: feature-map layers, Flatten, then flat layers; ends in `classes` units if given."""
    shape = (draw(st.integers(5, 14)), draw(st.integers(5, 14)), draw(st.integers(1, 3)))
    spec = {"name": "prop", "input": list(shape), "layers": []}
    for _ in range(draw(st.integers(0, 4))):
        layer, shape = _feature_map_layer(draw, shape)
        spec["layers"].append(layer)
    spec["layers"].append({"Flatten": {}})
    spec["layers"] += [_dense_layer(draw) for _ in range(draw(st.integers(0, 4)))]
    if classes:
        spec["layers"].append(
            {"Dense": {"units": classes, "activation": draw(st.sampled_from(["none", "softmax", "log_softmax"]))}}
        )
    return yaml.safe_dump(spec, sort_keys=False)
