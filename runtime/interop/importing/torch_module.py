"""Read a PyTorch model from a Python file: `file.py:NAME` (an nn.Module subclass or instance) and a state_dict.

This runs the user's file, as `python file.py` would. Its module is traced with torch.fx, so what `forward` does is
seen op by op (`F.relu`, `view`, `torch.flatten` as much as submodules); a value-dependent branch does not trace and
is refused, and so is a graph that is not one chain (a residual sum, two inputs). Each op maps to a DSL layer through
the tables below, one entry per PyTorch module type, function or tensor method. Shapes come from running the traced
graph once on an image batch (torch.fx's ShapeProp), so padding and flatten order are judged at the real sizes.
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
from runtime.common.imported import (
    BATCHNORM_VARIABLES,
    ImportedLayer,
    ImportedModel,
    ImportRefused,
    LayerChain,
    activation,
    add_activation,
    dense_or_conv,
    refuse,
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
    "inference is exact; training the spec moves the running variance by n / (n - 1) less per batch"
)


def _shape(node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _window_pads(where, walk, node, padding, kernel, stride, fill) -> str:
    """`valid` or `same` for a conv or pool with symmetric `padding` after any explicit pad."""
    _, _, height, width = _shape(node.args[0])
    if isinstance(padding, str):
        return walk.named_padding(where, padding)
    symmetric = _pair(padding)
    pads = (symmetric[0], symmetric[0], symmetric[1], symmetric[1])
    return walk.window_padding(where, (height, width), kernel, stride, pads, fill)


def _conv(walk: LayerChain, node, module, where: str) -> None:
    from torch import nn

    if type(module) is not nn.Conv2d:
        raise refuse(where, f"the DSL has no {type(module).__name__}")
    for option, value, wanted in (
        ("dilation", _pair(module.dilation), (1, 1)),
        ("groups", module.groups, 1),
        ("padding_mode", module.padding_mode, "zeros"),
    ):
        if value != wanted:
            raise refuse(where, f"{option}={value!r} is not in the DSL (it says {wanted!r})")
    kernel, stride = _pair(module.kernel_size), _pair(module.stride)
    padding = _window_pads(where, walk, node, module.padding, kernel, stride, 0.0)
    arguments = {"filters": module.out_channels, "kernel_size": kernel, "strides": stride, "padding": padding}
    layer = dense_or_conv("Conv2D", where, use_bias=module.bias is not None, **arguments)
    layer.weights = _weights(module, ("kernel", "bias"))
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


def _max_pool(walk: LayerChain, node, module, where: str) -> None:
    options = {"dilation": module.dilation, "ceil_mode": module.ceil_mode, "return_indices": module.return_indices}
    _pool(walk, node, where, module.kernel_size, module.stride, module.padding, **options)


def _pool(walk, node, where, kernel, stride, padding, dilation=1, ceil_mode=False, return_indices=False) -> None:
    for option, value, wanted in (("dilation", _pair(dilation), (1, 1)), ("ceil_mode", ceil_mode, False)):
        if value != wanted:
            raise refuse(where, f"{option}={value!r} is not in the DSL (it says {wanted!r})")
    if return_indices:
        raise refuse(where, "return_indices=True is not in the DSL")
    kernel = _pair(kernel)
    stride = _pair(stride) if stride else kernel
    padding = _window_pads(where, walk, node, padding, kernel, stride, -math.inf)
    walk.add(ImportedLayer("MaxPool", {"pool_size": kernel, "strides": stride, "padding": padding}, where))


def _pad(walk: LayerChain, node, module, where: str) -> None:
    left, right, top, bottom = module.padding if len(module.padding) == 4 else (*module.padding,) * 2
    _, _, height, width = _shape(node.args[0])
    walk.pad = (top, bottom, left, right, float(getattr(module, "value", 0.0)), (height, width), where)


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
    walk.flattened = (height, width, channels)
    walk.add(ImportedLayer("Flatten", {}, where))


def _activation_module(name: str):
    def read(walk: LayerChain, node, module, where: str) -> None:
        if name in ("softmax", "log_softmax"):
            _check_dim(where, module.dim, len(_shape(node)))
        if name == "elu" and module.alpha != 1.0:
            raise refuse(where, f"alpha={module.alpha} is not in the DSL (ELU's alpha is 1)")
        if name == "gelu" and module.approximate != "none":
            raise refuse(where, f"approximate={module.approximate!r} is not in the DSL (its GELU is exact)")
        # PyTorch has one spelling for a layer's own activation and an Activation after it: the former is read.
        add_activation(walk.layers, activation(name, where), where, fold=True)

    return read


def _check_dim(where: str, dim, rank: int) -> None:
    if dim not in (1, -1 if rank == 2 else 1):
        raise refuse(where, f"dim={dim} is not the channel axis, the one the DSL's softmax acts on")


def _module_table() -> dict:
    """PyTorch module type -> its reader; a subclass (BiasedVarBatchNorm2d, say) reads as its base."""
    from torch import nn

    table = {
        nn.Linear: _linear,
        nn.Conv2d: _conv,
        nn.BatchNorm1d: _batch_norm,
        nn.BatchNorm2d: _batch_norm,
        nn.MaxPool2d: _max_pool,
        nn.ZeroPad2d: _pad,
        nn.ConstantPad2d: _pad,
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
        add_activation(walk.layers, activation(name, where), where, fold=True)

    return read


def _function_dropout(walk: LayerChain, node, where: str) -> None:
    walk.add(ImportedLayer("Dropout", {"rate": float(_argument(node, 1, "p", 0.5))}, where))


def _function_pool(walk: LayerChain, node, where: str) -> None:
    values = [_argument(node, i, key, default) for i, (key, default) in enumerate(POOL_ARGUMENTS, start=1)]
    _pool(walk, node, where, *values)


BRANCHES = "a model with branches (a residual sum, a concatenation): the import reads chains only"
SHAPE_QUERIES = ("size", getattr)  # x.size(0), x.shape: values for a view, not layers
POOL_ARGUMENTS = (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False))


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
    flatten = lambda walk, node, where: _flatten(walk, node, where)  # noqa: E731
    table |= {torch.flatten: flatten, "flatten": flatten, "view": flatten, "reshape": flatten, torch.reshape: flatten}
    return table | {"contiguous": lambda *_: None}


def _weights(module, names: tuple[str, ...], flattened=None) -> dict[str, np.ndarray]:
    """The module's weights in Keras's layout, by Keras's names (a bias it does not have left out)."""
    torch_names = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
    torch_names |= {"moving_mean": "running_mean", "moving_variance": "running_var"}
    found = {}
    for name in names:
        tensor = getattr(module, torch_names[name])
        if tensor is not None:
            per_feature = name != "bias" or type(module).__name__.startswith(("BatchNorm", "BiasedVar"))
            array = tensor.detach().cpu().numpy().astype(np.float32)
            found[name] = to_keras_layout(array, flattened if per_feature else None)
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


def _trace(model, file: Path, name: str, module_table: dict, function_table: dict):
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
        raise _not_traced(file, name, error) from None
    modules = dict(graph.named_modules())
    for index, node in enumerate(graph.graph.nodes):
        _reader(node, _where(node, modules, index), modules, module_table, function_table)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback of a failing op
            ShapeProp(graph).propagate(torch.zeros(2, channels, height, width))
    except Exception as error:
        raise _not_traced(file, name, error) from None
    return graph


def _not_traced(file: Path, name: str, error: Exception) -> ImportRefused:
    height, width, channels = IMAGE_SHAPE
    return ImportRefused(
        f"{file}:{name}: its forward is not one straight line of layers on a (N, {channels}, {height}, {width}) "
        f"image batch (a branch on values, or another input?): {one_line(error, 200)}"
    )


def _walk(graph, module_table: dict, function_table: dict) -> LayerChain:
    """Read the op chain, in order, into DSL layers."""
    modules = dict(graph.named_modules())
    walk, previous = LayerChain(), None
    for index, node in enumerate(graph.graph.nodes):
        if node.op == "placeholder":
            if previous is not None:
                raise ImportRefused(f"input {node.target!r}: forward takes more than one input")
            previous = node
            continue
        if node.op == "output" or "tensor_meta" not in node.meta:
            continue  # the result, or a size: not a layer
        inputs = [arg for arg in node.all_input_nodes if "tensor_meta" in arg.meta]
        where = _where(node, modules, index)
        if inputs != [previous]:
            raise refuse(where, f"it does not take just the result of the op before it: {BRANCHES}")
        reader = _reader(node, where, modules, module_table, function_table)
        if reader is not None:
            reader(walk)
        previous = node
    return walk


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
            raise refuse(where, f"it combines {len(node.all_input_nodes)} results: {BRANCHES}")
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
    module_table, function_table = _module_table(), _function_table()
    graph = _trace(model, file, name, module_table, function_table)
    walk = _walk(graph, module_table, function_table)
    if walk.pad is not None:
        raise ImportRefused(f"{file}:{name}: a pad at the end of forward is not in the DSL")
    notes = [DEFAULT_INIT_NOTE] + ([] if weights else [f"no --weights: the weights are {name}()'s own"])
    return ImportedModel(
        f"{file}:{name}" + (f" with {weights}" if weights else ""),
        IMAGE_SHAPE,
        walk.layers,
        lambda images: _predict(model, images),
        notes,
        walk.changes,
    )


def _predict(model, images: np.ndarray) -> np.ndarray:
    from runtime.interop.export import torch_predict

    return torch_predict(model, images)
