"""Read a PyTorch model from a Python file: `file.py:NAME` (an nn.Module subclass or instance) and a state_dict.

This runs the user's file, as `python file.py` would. Its module is traced with torch.fx, so what `forward` does is
seen op by op (`F.relu`, `view`, `torch.flatten` as much as submodules); a value-dependent branch does not trace and
is refused, and so is a graph that is not a chain with residual blocks (runtime.common.branches: `body(x) + x`, two
inputs). Each op maps to a DSL layer through the tables below, one entry per PyTorch module type, function or tensor
method. Shapes come from running the traced graph once on an image batch (torch.fx's ShapeProp), so padding and
flatten order are judged at the real sizes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import sys
from pathlib import Path

import numpy as np

from dsl.dataset import IMAGE_SHAPE
from runtime.common import branches
from runtime.common.imported import (
    BATCHNORM_VARIABLES,
    ImportedLayer,
    ImportedModel,
    ImportRefused,
    LayerChain,
    Pad,
    activation,
    conv_kind,
    dense_or_conv,
    dilated_span,
    padding_meaning,
    refuse,
    residual,
)
from runtime.common.layouts import to_keras_layout
from runtime.common.rundir import one_line, reading

DEFAULT_INIT_NOTE = (
    "PyTorch's default initialisers (weights kaiming_uniform_(a=sqrt(5)), biases alike: a uniform bound "
    "1 / sqrt(fan_in)) are not in the DSL, which has no record of a model's initialiser: the spec names the DSL's "
    "defaults (glorot_uniform, zeros); the imported weights are the source's, only training from scratch draws anew"
)
UNBIASED_VARIANCE = (
    "{where}: PyTorch's BatchNorm tracks the unbiased running variance, the DSL the biased one: the imported "
    "inference is exact; training the spec tracks each batch's biased variance, (n - 1) / n of the unbiased one "
    "for a batch of n"
)
TIED_MAXIMA = (
    "nn.AdaptiveMaxPool2d gives a tied maximum's whole gradient to one position, the DSL's GlobalMaxPool shares it "
    "equally: the inference is exact, a training step differs only where a channel's maximum is tied"
)


def _shape(node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _window_pads(where, walk, node, padding, window, stride, fill, name=None) -> str:
    """`valid` or `same` for a conv or pool with symmetric `padding` after any explicit pad."""
    _, _, height, width = _shape(node.args[0])
    if isinstance(padding, str):
        return walk.named_padding(where, padding)
    symmetric = _pair(padding)
    pads = (symmetric[0], symmetric[0], symmetric[1], symmetric[1])
    return walk.window_padding(where, name, (height, width), window, stride, pads, fill)


def _check_options(where: str, *options) -> None:
    """Refuse any (option, value, the DSL's value) whose value is not the DSL's."""
    for option, value, wanted in options:
        if value != wanted:
            raise refuse(where, f"{option}={value!r} is not in the DSL (it says {wanted!r})")


def _conv_window(walk: LayerChain, node, conv, where: str, name: str) -> dict:
    """A convolution's window arguments: kernel, strides, padding (of the dilated span), dilation."""
    _check_options(where, ("padding_mode", conv.padding_mode, "zeros"))
    kernel, stride, dilation = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    span = dilated_span(kernel, dilation)
    padding = _window_pads(where, walk, node, conv.padding, span, stride, 0.0, name)
    return {"kernel_size": kernel, "strides": stride, "padding": padding, "dilation_rate": dilation}


def _conv(walk: LayerChain, node, module, where: str) -> None:
    from torch import nn

    if type(module) is not nn.Conv2d:
        raise refuse(where, f"the DSL has no {type(module).__name__}")
    kind, arguments = conv_kind(module.in_channels, module.out_channels, module.groups)
    arguments |= _conv_window(walk, node, module, where, node.target)
    layer = dense_or_conv(kind, where, use_bias=module.bias is not None, **arguments)
    shape = (*arguments["kernel_size"], module.in_channels, module.out_channels // module.in_channels)
    layer.weights = _weights(module, ("kernel", "bias"), shape=shape if kind == "DepthwiseConv2D" else None)
    walk.add(layer)


def _separable_conv(walk: LayerChain, node, module, where: str) -> None:
    """runtime.torch.layers.SeparableConv2d, the generated spelling of Keras's SeparableConv2D."""
    depthwise, pointwise = module.depthwise, module.pointwise
    arguments = _conv_window(walk, node, depthwise, where, node.target)
    multiplier = depthwise.out_channels // depthwise.in_channels
    arguments |= {"filters": pointwise.out_channels, "depth_multiplier": multiplier}
    layer = dense_or_conv("SeparableConv2D", where, use_bias=pointwise.bias is not None, **arguments)
    shape = (*arguments["kernel_size"], depthwise.in_channels, multiplier)
    pointwise_weights = _weights(pointwise, ("kernel", "bias"))
    layer.weights = {"depthwise_kernel": _weights(depthwise, ("kernel",), shape=shape)["kernel"]}
    layer.weights |= {"pointwise_kernel": pointwise_weights.pop("kernel"), **pointwise_weights}
    walk.add(layer)


def _linear(walk: LayerChain, node, module, where: str) -> None:
    layer = dense_or_conv("Dense", where, units=module.out_features, use_bias=module.bias is not None)
    layer.weights = _weights(module, ("kernel", "bias"), walk.flattened)
    walk.flattened = None
    walk.add(layer)


def _batch_norm(walk: LayerChain, node, module, where: str) -> None:
    from runtime.torch.layers import BiasedVarBatchNorm1d, BiasedVarBatchNorm2d

    if module.momentum is None:
        raise refuse(where, "momentum=None (a cumulative average) is not in the DSL, whose momentum is a decay")
    if not module.affine or not module.track_running_stats:
        raise refuse(where, "BatchNorm without affine weights or running statistics is not in the DSL")
    if not isinstance(module, (BiasedVarBatchNorm1d, BiasedVarBatchNorm2d)):
        walk.changes.append(UNBIASED_VARIANCE.format(where=where))
    momentum = float(f"{1 - module.momentum:.12g}")  # the weight of the old average, Keras's convention
    layer = ImportedLayer("BatchNorm", {"momentum": momentum, "epsilon": float(module.eps)}, where)
    layer.weights = _weights(module, BATCHNORM_VARIABLES, walk.flattened)
    walk.add(layer)


def _layer_norm(walk: LayerChain, node, module, where: str) -> None:
    """nn.LayerNorm on a flat vector (its one normalised axis is the features), or the generated ChannelLayerNorm."""
    from torch import nn

    rank = len(_shape(node))
    if isinstance(module, nn.LayerNorm) and (rank != 2 or len(module.normalized_shape) != 1):
        raise refuse(
            where,
            f"it normalises the trailing axes {tuple(module.normalized_shape)} of a rank-{rank} tensor; the DSL's "
            "LayerNorm normalises each position's channel vector",
        )
    arguments = {"epsilon": float(module.eps), "center": module.bias is not None, "scale": module.weight is not None}
    layer = ImportedLayer("LayerNorm", arguments, where)
    layer.weights = _weights(module, ("gamma", "beta"), walk.flattened)
    walk.add(layer)


def _max_pool(walk: LayerChain, node, module, where: str) -> None:
    options = {"dilation": module.dilation, "ceil_mode": module.ceil_mode, "return_indices": module.return_indices}
    _pool(walk, node, where, module.kernel_size, module.stride, module.padding, **options, name=node.target)


def _pool(walk, node, where, kernel, stride, padding, dilation=1, ceil_mode=False, return_indices=False, name=None):
    _check_options(where, ("dilation", _pair(dilation), (1, 1)), ("ceil_mode", ceil_mode, False))
    if return_indices:
        raise refuse(where, "return_indices=True is not in the DSL")
    kernel = _pair(kernel)
    stride = _pair(stride) if stride else kernel
    padding = _window_pads(where, walk, node, padding, kernel, stride, -math.inf, name)
    walk.add(ImportedLayer("MaxPool", {"pool_size": kernel, "strides": stride, "padding": padding}, where))


def _avg_module(walk: LayerChain, node, module, where: str) -> None:
    options = (module.ceil_mode, module.count_include_pad, module.divisor_override)
    _avg_pool(walk, node, where, module.kernel_size, module.stride, module.padding, *options)


def _avg_pool(walk, node, where, kernel, stride, padding, ceil_mode=False, count_pad=True, divisor=None) -> None:
    """The DSL's AvgPool leaves padded cells out of each mean (TensorFlow's `same`); PyTorch's default counts them."""
    _check_options(where, ("ceil_mode", ceil_mode, False), ("divisor_override", divisor, None))
    if count_pad and any(_pair(padding)):
        raise refuse(where, "count_include_pad=True with padding counts the padded zeros: not in the DSL's AvgPool")
    kernel = _pair(kernel)
    stride = _pair(stride) if stride else kernel
    padding = _window_pads(where, walk, node, padding, kernel, stride, None)
    walk.add(ImportedLayer("AvgPool", {"pool_size": kernel, "strides": stride, "padding": padding}, where))


def _same_pad_avg_pool(walk: LayerChain, node, module, where: str) -> None:
    """runtime.torch.layers.SamePadAvgPool2d: TensorFlow's asymmetric `same`, padded cells left out."""
    _, _, height, width = _shape(node.args[0])
    left, right, top, bottom = module.pad
    stride = _pair(module.stride)
    walk.flush()
    kernel = _pair(module.kernel_size)
    if padding_meaning((height, width), kernel, stride, (top, bottom, left, right)) != "same":
        raise refuse(where, f"pad {module.pad} is not TensorFlow's `same` for this input and stride")
    walk.add(ImportedLayer("AvgPool", {"pool_size": kernel, "strides": stride, "padding": "same"}, where))


def _global_pool(kind: str, adaptive: bool):
    """runtime.torch.layers.GlobalMaxPool2d, or an adaptive pool to (1, 1) (its map flattened next)."""

    def read(walk: LayerChain, node, module, where: str) -> None:
        if adaptive and getattr(module, "return_indices", False):
            raise refuse(where, "return_indices=True is not in the DSL")
        _add_global_pool(walk, kind, where, module.output_size if adaptive else None)

    return read


def _add_global_pool(walk: LayerChain, kind: str, where: str, output_size) -> None:
    """The DSL's global pool; an adaptive pool's `output_size` must be 1, and the flatten after it drops its map."""
    if output_size is not None:
        _check_options(where, ("output_size", _pair(output_size), (1, 1)))
        if kind == "GlobalMaxPool":
            walk.changes.append(f"{where}: {TIED_MAXIMA}")
    walk.add(ImportedLayer(kind, {}, where))
    walk.pooled = where if output_size is not None else None


def _pad(walk: LayerChain, node, module, where: str) -> None:
    left, right, top, bottom = module.padding if len(module.padding) == 4 else (*module.padding,) * 2
    _explicit_pad(walk, node, where, (top, bottom, left, right), float(getattr(module, "value", 0.0)), node.target)


def _explicit_pad(walk: LayerChain, node, where: str, pads, fill: float, name: str | None) -> None:
    _, _, height, width = _shape(node.args[0])
    walk.flush()
    walk.pad = Pad(tuple(pads), fill, (height, width), where, name)


def _upsample_module(walk: LayerChain, node, module, where: str) -> None:
    _upsample(walk, node, where, module.mode, module.align_corners)


def _upsample(walk: LayerChain, node, where: str, mode: str, align_corners) -> None:
    """nearest (rows and columns repeated) or bilinear with half-pixel centres, by a whole factor per axis."""
    if mode not in ("nearest", "bilinear"):
        raise refuse(where, f"mode={mode!r} is not in the DSL (nearest or bilinear)")
    if align_corners:
        raise refuse(where, "align_corners=True stretches the corners; the DSL's bilinear has half-pixel centres")
    (_, _, height, width), (_, _, out_height, out_width) = _shape(node.args[0]), _shape(node)
    if out_height % height or out_width % width:
        raise refuse(where, f"scaling {(height, width)} to {(out_height, out_width)} is not by a whole factor")
    size = (out_height // height, out_width // width)
    walk.add(ImportedLayer("UpSampling", {"size": size, "interpolation": mode}, where))


def _dropout(walk: LayerChain, node, module, where: str) -> None:
    walk.add(ImportedLayer("Dropout", {"rate": float(module.p)}, where))


def _flatten_module(walk: LayerChain, node, module, where: str) -> None:
    if (module.start_dim, module.end_dim) != (1, -1):
        raise refuse(where, f"flattening dims {module.start_dim}..{module.end_dim} is not the DSL's Flatten")
    _flatten(walk, node, where)


def _flatten(walk: LayerChain, node, where: str) -> None:
    """A flatten of every axis but the batch: the DSL's Flatten; the next Dense reads it in PyTorch's order."""
    before, after = _shape(node.args[0]), _shape(node)
    if len(after) != 2 or after[0] != before[0] or after[1] != math.prod(before[1:]):
        raise refuse(where, f"reshaping {before[1:]} to {after[1:]} is not a flatten of each image")
    if len(before) == 2:
        return  # already flat: nothing to say
    channels, height, width = before[1:]
    walk.flatten((height, width, channels), where)


def _activation_module(name: str):
    def read(walk: LayerChain, node, module, where: str) -> None:
        if name in ("softmax", "log_softmax"):
            _check_dim(where, module.dim, len(_shape(node)))
        if name == "elu" and module.alpha != 1.0:
            raise refuse(where, f"alpha={module.alpha} is not in the DSL (ELU's alpha is 1)")
        if name == "gelu" and module.approximate != "none":
            raise refuse(where, f"approximate={module.approximate!r} is not in the DSL (its GELU is exact)")
        walk.activation(activation(name, where), where)

    return read


def _check_dim(where: str, dim, rank: int) -> None:
    if dim not in (1, -1 if rank == 2 else 1):
        raise refuse(where, f"dim={dim} is not the channel axis, the one the DSL's softmax acts on")


def _module_table() -> dict:
    """PyTorch module type -> its reader; a subclass (BiasedVarBatchNorm2d, say) reads as its base."""
    from torch import nn

    from runtime.torch import layers

    table = {
        nn.Linear: _linear,
        nn.Conv2d: _conv,
        layers.SeparableConv2d: _separable_conv,
        nn.BatchNorm1d: _batch_norm,
        nn.BatchNorm2d: _batch_norm,
        nn.LayerNorm: _layer_norm,
        layers.ChannelLayerNorm: _layer_norm,
        nn.MaxPool2d: _max_pool,
        nn.AvgPool2d: _avg_module,
        layers.SamePadAvgPool2d: _same_pad_avg_pool,
        nn.AdaptiveAvgPool2d: _global_pool("GlobalAvgPool", adaptive=True),
        nn.AdaptiveMaxPool2d: _global_pool("GlobalMaxPool", adaptive=True),
        layers.GlobalMaxPool2d: _global_pool("GlobalMaxPool", adaptive=False),
        nn.ZeroPad2d: _pad,
        nn.ConstantPad2d: _pad,
        nn.Upsample: _upsample_module,
        nn.Dropout: _dropout,
        nn.Flatten: _flatten_module,
        nn.Identity: lambda *_: None,
    }
    activations = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ELU: "elu", nn.GELU: "gelu"}
    activations |= {nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax"}
    return table | {kind: _activation_module(name) for kind, name in activations.items()}


def _argument(node, index: int, keyword: str, default=None):
    return node.args[index] if len(node.args) > index else node.kwargs.get(keyword, default)


def _function_activation(name: str):
    def read(walk: LayerChain, node, where: str) -> None:
        if name in ("softmax", "log_softmax"):
            _check_dim(where, _argument(node, 1, "dim"), len(_shape(node)))
        if name == "elu" and _argument(node, 1, "alpha", 1.0) != 1.0:
            raise refuse(where, "an alpha other than 1 is not in the DSL")
        if name == "gelu" and node.kwargs.get("approximate", "none") != "none":
            raise refuse(where, "the tanh approximation is not in the DSL (its GELU is exact)")
        walk.activation(activation(name, where), where)

    return read


def _function_dropout(walk: LayerChain, node, where: str) -> None:
    walk.add(ImportedLayer("Dropout", {"rate": float(_argument(node, 1, "p", 0.5))}, where))


def _arguments(node, names_and_defaults) -> list:
    """A function call's arguments after the input, by position or keyword."""
    return [_argument(node, i, key, default) for i, (key, default) in enumerate(names_and_defaults, start=1)]


def _function_pool(walk: LayerChain, node, where: str) -> None:
    _pool(walk, node, where, *_arguments(node, POOL_ARGUMENTS))


def _function_avg_pool(walk: LayerChain, node, where: str) -> None:
    _avg_pool(walk, node, where, *_arguments(node, AVG_POOL_ARGUMENTS))


def _function_pad(walk: LayerChain, node, where: str) -> None:
    pad, mode, value = _arguments(node, (("pad", None), ("mode", "constant"), ("value", None)))
    if mode != "constant" or len(pad) != 4:
        raise refuse(where, f"a {mode} pad of {len(pad) // 2} axes is not in the DSL (zeros around height and width)")
    left, right, top, bottom = pad
    _explicit_pad(walk, node, where, (top, bottom, left, right), float(value or 0.0), None)


def _function_upsample(walk: LayerChain, node, where: str) -> None:
    mode, align_corners = _argument(node, 3, "mode", "nearest"), _argument(node, 4, "align_corners")
    _upsample(walk, node, where, mode, align_corners)


def _function_adaptive(kind: str):
    def read(walk: LayerChain, node, where: str) -> None:
        if _argument(node, 2, "return_indices", False):
            raise refuse(where, "return_indices=True is not in the DSL")
        _add_global_pool(walk, kind, where, _argument(node, 1, "output_size"))

    return read


def _function_reduce(kind: str):
    """`x.mean((2, 3))`, `x.amax(dim=(2, 3))`: a global pool over height and width."""

    def read(walk: LayerChain, node, where: str) -> None:
        dims, keepdim = _argument(node, 1, "dim"), _argument(node, 2, "keepdim", False)
        rank = len(_shape(node.args[0]))
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if rank != 4 or sorted(d % rank for d in dims) != [2, 3]:
            raise refuse(where, f"a reduction over dims {dims} of a rank-{rank} tensor is not a pool over the map")
        walk.add(ImportedLayer(kind, {}, where))
        walk.pooled = where if keepdim else None

    return read


SHAPE_QUERIES = ("size", getattr)  # x.size(0), x.shape: values for a view, not layers
POOL_ARGUMENTS = (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False))
AVG_POOL_ARGUMENTS = (*POOL_ARGUMENTS[:3], ("ceil_mode", False), ("count_include_pad", True))
AVG_POOL_ARGUMENTS += (("divisor_override", None),)


def _function_table() -> dict:
    """torch functions and tensor methods (by name) -> their reader."""
    import torch
    import torch.nn.functional as F

    activations = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "elu": "elu", "gelu": "gelu"}
    activations |= {"softmax": "softmax", "log_softmax": "log_softmax"}
    table = {}
    for function_name, name in activations.items():
        for owner in (F, torch):
            if hasattr(owner, function_name):
                table[getattr(owner, function_name)] = _function_activation(name)
        table[function_name] = _function_activation(name)  # x.relu(), x.softmax(dim=1)
    table |= {F.dropout: _function_dropout, F.max_pool2d: _function_pool, torch.max_pool2d: _function_pool}
    table |= {F.avg_pool2d: _function_avg_pool, F.pad: _function_pad, F.interpolate: _function_upsample}
    table |= {F.adaptive_avg_pool2d: _function_adaptive("GlobalAvgPool")}
    table |= {F.adaptive_max_pool2d: _function_adaptive("GlobalMaxPool")}
    for owner, reduction, kind in ((torch, "mean", "GlobalAvgPool"), (torch, "amax", "GlobalMaxPool")):
        table[getattr(owner, reduction)] = table[reduction] = _function_reduce(kind)
    flatten = lambda walk, node, where: _flatten(walk, node, where)  # noqa: E731
    table |= {torch.flatten: flatten, "flatten": flatten, "view": flatten, "reshape": flatten, torch.reshape: flatten}
    return table | {"contiguous": lambda *_: None}


def _weights(module, names: tuple[str, ...], flattened=None, shape=None) -> dict[str, np.ndarray]:
    """The module's weights in Keras's layout, by Keras's names (a bias it does not have left out); `shape`: a
    depthwise kernel's in Keras's layout."""
    torch_names = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
    torch_names |= {"moving_mean": "running_mean", "moving_variance": "running_var"}
    found = {}
    for name in names:
        tensor = getattr(module, torch_names[name])
        if tensor is not None:
            per_feature = name != "bias" or type(module).__name__.startswith(("BatchNorm", "BiasedVar"))
            array = tensor.detach().cpu().numpy().astype(np.float32)
            found[name] = to_keras_layout(array, flattened if per_feature else None, shape)
    return found


def _load(file: Path, name: str):
    """The nn.Module NAME of `file`: an instance, or a subclass built with no arguments. Runs the file."""
    from torch import nn

    if not file.is_file():
        raise ImportRefused(f"{file}: no such file")
    spec = importlib.util.spec_from_file_location(f"_fmnist_import_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent.resolve()))
    try:
        spec.loader.exec_module(module)
        found = getattr(module, name)
        model = found() if isinstance(found, type) and issubclass(found, nn.Module) else found
    except AttributeError:
        raise ImportRefused(f"{file}: defines no {name!r}") from None
    except (Exception, SystemExit) as error:
        raise ImportRefused(f"{file}: running it to build {name} failed: {one_line(error)}") from None
    finally:
        sys.path.remove(str(file.parent.resolve()))
    if not isinstance(model, nn.Module):
        raise ImportRefused(f"{file}: {name} is a {type(model).__name__}, not an nn.Module subclass or instance")
    return model


def _load_weights(model, weights: Path) -> None:
    import torch

    with reading(weights):
        state = torch.load(weights, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ImportRefused(f"{weights}: not a state_dict but a {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ImportRefused(f"{weights}: does not fit the architecture: {one_line(error)}") from None


def _trace(model, source: str, module_table: dict, function_table: dict, batch: int):
    """The traced graph with every tensor's shape; an op without a reader is refused before anything runs."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    height, width, channels = IMAGE_SHAPE

    class Tracer(torch.fx.Tracer):
        """Stops at every module the table reads (a subclass of nn.BatchNorm2d too), as it does at torch.nn's."""

        def is_leaf_module(self, module, name: str) -> bool:
            return super().is_leaf_module(module, name) or any(kind in module_table for kind in type(module).__mro__)

    try:
        graph = torch.fx.GraphModule(model, Tracer().trace(model))
    except Exception as error:
        raise _not_traced(source, error) from None
    modules = dict(graph.named_modules())
    for index, node in enumerate(graph.graph.nodes):
        if not _is_add(node):
            _reader(node, _where(node, modules, index), modules, module_table, function_table)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback of a failing op
            ShapeProp(graph).propagate(torch.zeros(batch, channels, height, width))
    except Exception as error:
        raise _not_traced(source, error) from None
    return graph


def _not_traced(source: str, error: Exception) -> ImportRefused:
    height, width, channels = IMAGE_SHAPE
    return ImportRefused(
        f"{source}: its forward is not one straight line of layers on a (N, {channels}, {height}, {width}) "
        f"image batch (a branch on values, or another input?): {one_line(error, 200)}"
    )


def _tensor_inputs(node) -> list:
    return [arg for arg in node.all_input_nodes if "tensor_meta" in arg.meta]


def _is_add(node) -> bool:
    """`a + b`, `a += b`, torch.add(a, b) or a.add(b) without `alpha`: a residual block's join when a and b are
    tensors (shapes tell, once known)."""
    import operator

    import torch

    adds = (operator.add, operator.iadd, torch.add, "add", "add_")
    plain = not node.kwargs and len(node.args) == 2
    return node.op in ("call_function", "call_method") and node.target in adds and plain


def _is_sum(node) -> bool:
    return _is_add(node) and len(_tensor_inputs(node)) == 2


def _walk(graph, module_table: dict, function_table: dict) -> LayerChain:
    """Read the ops, a chain with residual blocks in it, into DSL layers."""
    modules = dict(graph.named_modules())
    nodes = [node for node in graph.graph.nodes if node.op != "output" and "tensor_meta" in node.meta]
    index = {node: i for i, node in enumerate(graph.graph.nodes)}
    starts = [node for node in nodes if node.op == "placeholder"]
    if len(starts) != 1:
        raise ImportRefused(f"input {starts[-1].target!r}: forward takes more than one input")
    counted = set(nodes)
    tree = branches.Graph(
        users=lambda node: [user for user in node.users if user in counted],
        inputs=_tensor_inputs,
        is_join=_is_sum,
        where=lambda node: _where(node, modules, index[node]),
    )
    items = branches.chain(tree, starts[0])

    def read(chain: LayerChain, items: list) -> LayerChain:
        for item in items:
            if isinstance(item, branches.Block):
                block, shortcut = read(LayerChain(), item.block), read(LayerChain(), item.shortcut)
                chain.changes += block.changes + shortcut.changes
                chain.add(residual(block.layers, shortcut.layers, tree.where(item.join)))
                continue
            reader = _reader(item, tree.where(item), modules, module_table, function_table)
            if reader is not None:
                reader(chain)
        chain.finish()
        return chain

    return read(LayerChain(), items)


def _where(node, modules: dict, index: int) -> str:
    if node.op == "call_module":
        return f"layer {node.target!r} (index {index}, {type(modules[node.target]).__name__})"
    label = getattr(node.target, "__name__", node.target)
    return f"{label} in forward (index {index})"


def _reader(node, where, modules, module_table, function_table):
    """The table entry that reads `node`; None for the input and the output; a refusal for an op the DSL lacks."""
    if node.op in ("placeholder", "output"):
        return None
    if node.op == "call_module":
        module = modules[node.target]
        reader = next((module_table[kind] for kind in type(module).__mro__ if kind in module_table), None)
        if reader is None:
            raise refuse(where, f"the DSL has no {type(module).__name__}")
        return lambda walk: reader(walk, node, module, where)
    reader = function_table.get(node.target) if node.op in ("call_function", "call_method") else None
    if reader is None and node.target not in SHAPE_QUERIES:
        if len(node.all_input_nodes) > 1:
            raise refuse(where, f"it combines {len(node.all_input_nodes)} results: {branches.BRANCHES}")
        raise refuse(where, f"the DSL has no counterpart of {getattr(node.target, '__name__', node.target)}")
    return reader and (lambda walk: reader(walk, node, where))


def read(file: Path, name: str, weights: Path | None) -> ImportedModel:
    """The module as DSL layers with its weights; ImportRefused for what the DSL cannot say or a broken file."""
    from runtime.common.frameworks import guard_triton

    guard_triton()
    model = _load(file, name)
    if weights is not None:
        _load_weights(model, weights)
    model.eval()
    notes = [DEFAULT_INIT_NOTE] + ([] if weights else [f"no --weights: the weights are {name}()'s own"])
    label = f"{file}:{name}" + (f" with {weights}" if weights else "")
    return read_model(model, label, lambda images: _predict(model, images), notes)


def read_model(model, source: str, predict, notes: list[str], batch: int = 2) -> ImportedModel:
    """An nn.Module in eval mode as DSL layers with its weights, traced on a `batch` of images; `source` names it
    in messages and the header, `predict` runs the source model for the proof."""
    module_table, function_table = _module_table(), _function_table()
    graph = _trace(model, source, module_table, function_table, batch)
    walk = _walk(graph, module_table, function_table)
    return ImportedModel(source, IMAGE_SHAPE, walk.layers, predict, notes, walk.changes)


def _predict(model, images: np.ndarray) -> np.ndarray:
    from runtime.interop.export import torch_predict

    return torch_predict(model, images)
