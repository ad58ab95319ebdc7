"""Read a PyTorch exported program (`torch.export.save`'s `.pt2`) through the same torch.fx path as `file.py:NAME`.

An exported program holds ATen ops (`aten.conv2d`, `aten.relu`, ...) and its weights, no Python source. Each op is
turned back into what a hand-written module would have called, then read by torch_module's tables: an op with
weights into the nn module it stands for (`aten.conv2d` -> nn.Conv2d holding the weights, `aten.batch_norm` -> the
BatchNorm class the export recorded), an activation or pad that came from a submodule into that submodule (so a
generated `<layer>_pad` keeps its meaning), any other op into its torch.nn.functional call. An op with no such
counterpart (a runtime layer the export decomposed into arithmetic, say) is refused, naming the op and the submodule
it came from. torch.export.load may unpickle parts of the file: as with file.py, import only files you trust.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path

import numpy as np

from runtime.common.imported import ImportedModel, ImportRefused
from runtime.common.layouts import to_channels_first
from runtime.common.rundir import reading
from runtime.interop.importing import torch_module

DECOMPOSED = (
    "an exported program holds only ATen ops; this one has no DSL counterpart (a runtime layer such as "
    "ChannelLayerNorm or SamePadAvgPool2d is exported as arithmetic): import its file.py:NAME instead"
)


def read(path: Path) -> ImportedModel:
    """The `.pt2` file as DSL layers and weights; ImportRefused for what the DSL cannot say or a broken file."""
    import torch

    from runtime.common.frameworks import guard_triton

    guard_triton()
    with reading(path):
        program = torch.export.load(path)
    source = program.module()
    batch = source.graph.find_nodes(op="placeholder")[0].meta["val"].shape[0]
    static = batch if isinstance(batch, int) else None  # a static batch size stays; a dynamic one is any
    if not MODULE_OPS:
        _tables()
    rebuilt = _rebuild(source, path)
    predict = lambda images: _predict(source, images, static)  # noqa: E731
    return torch_module.read_model(rebuilt, str(path), predict, [torch_module.DEFAULT_INIT_NOTE], static or 2)


def _rebuild(source, path: Path):
    """An nn.Module whose forward calls submodules and functions as a hand-written one would: the exported graph
    with each ATen op replaced by its module or function."""
    import torch
    from torch import nn

    root, graph, values = nn.Module(), torch.fx.Graph(), {}
    for index, node in enumerate(source.graph.nodes):
        if node.op == "placeholder":
            values[node] = graph.placeholder(node.name)
        elif node.op == "output":
            graph.output(torch.fx.map_arg(node.args[0], values.__getitem__))
        elif node.op == "call_function" and str(node.target) in IDENTITIES:
            values[node] = values[node.args[0]]
        elif node.op == "call_function" and node.target is operator.getitem and str(node.args[0].target) in PAIRED:
            if node.args[1] != 0 and node.users:
                raise ImportRefused(f"{path}: {_where(node, index)}: a pool's indices are not in the DSL")
            values[node] = values[node.args[0]]  # its values: the rebuilt call returns only those
        elif node.op == "call_function" and str(node.target) not in CHECKS:
            where = f"{path}: {_where(node, index)}"
            values[node] = _rebuild_op(root, graph, _arguments(source, node, values, where), node, where)
    return torch.fx.GraphModule(root, graph).eval()


def _arguments(source, node, values: dict, where: str) -> dict:
    """The op's arguments by their schema names, defaults filled in: weights as tensors, results as new nodes."""
    import torch
    from torch.fx.operator_schemas import normalize_function

    def value(arg):
        if arg.op == "get_attr":
            return functools.reduce(getattr, arg.target.split("."), source).detach().clone()
        if arg not in values:
            raise ImportRefused(f"{where}: it reads a value that is not the chain's ({arg.name})")
        return values[arg]

    args, kwargs = torch.fx.map_arg((node.args, node.kwargs), value)
    normalized = normalize_function(node.target, args, kwargs, normalize_to_only_use_kwargs=True)
    if normalized is None:
        raise ImportRefused(f"{where}: {DECOMPOSED}")
    return normalized.kwargs


def _where(node, index: int) -> str:
    path, kind = _module(node)
    return f"op {node.target} (index {index})" + (f" in module {path!r} ({kind.rsplit('.', 1)[-1]})" if path else "")


def _module(node) -> tuple[str | None, str]:
    """The submodule the op came from, by its path and class name; (None, '') for the model's own forward."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    return (stack[-1][0], str(stack[-1][1])) if stack and stack[-1][0] else (None, "")


def _rebuild_op(root, graph, a: dict, node, where: str):
    """The new graph's node for one ATen op: a call of a rebuilt submodule, or of a function."""
    op = str(node.target)
    path, _ = _module(node)
    module = None
    if op in MODULE_OPS:
        module = MODULE_OPS[op](a, node)
    elif path is not None and op in SUBMODULE_OPS:
        module = SUBMODULE_OPS[op](a)
    if module is not None:
        name = _unique(root, (path or "layer").replace(".", "_"))
        root.add_module(name, module)
        return graph.call_module(name, (a["input"] if "input" in a else a["self"],))
    if op not in FUNCTION_OPS:
        raise ImportRefused(f"{where}: {DECOMPOSED}")
    function, args, kwargs = FUNCTION_OPS[op](a)
    if isinstance(function, str):
        return graph.call_method(function, args, kwargs)
    return graph.call_function(function, args, kwargs)


def _unique(root, name: str) -> str:
    taken = dict(root.named_children())
    suffixes = (f"{name}_{i}" for i in range(2, len(taken) + 3))
    return name if name not in taken else next(n for n in suffixes if n not in taken)


def _conv(a: dict, node):
    from torch import nn

    weight, bias = a["weight"], a["bias"]
    out_channels, in_per_group, *kernel = weight.shape
    conv = nn.Conv2d(
        in_per_group * a["groups"],
        out_channels,
        tuple(kernel),
        stride=a["stride"],
        padding=a["padding"],
        dilation=a["dilation"],
        groups=a["groups"],
        bias=bias is not None,
    )
    return _filled(conv, weight=weight, bias=bias)


def _linear(a: dict, node):
    from torch import nn

    weight, bias = a["weight"], a["bias"]
    return _filled(nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None), weight=weight, bias=bias)


def _batch_norm(a: dict, node):
    """The BatchNorm class the export recorded: the generated models' BiasedVarBatchNorm keeps its meaning."""
    from torch import nn

    from runtime.torch import layers

    features = node.args[0].meta["val"]
    rank = features.dim()
    biased = _module(node)[1].endswith(("BiasedVarBatchNorm1d", "BiasedVarBatchNorm2d"))
    classes = {(2, False): nn.BatchNorm1d, (4, False): nn.BatchNorm2d}
    classes |= {(2, True): layers.BiasedVarBatchNorm1d, (4, True): layers.BiasedVarBatchNorm2d}
    norm = classes[(rank, biased)](
        features.shape[1],
        eps=a["eps"],
        momentum=a["momentum"],
        affine=a["weight"] is not None,
        track_running_stats=a["running_mean"] is not None,
    )
    return _filled(
        norm, weight=a["weight"], bias=a["bias"], running_mean=a["running_mean"], running_var=a["running_var"]
    )


def _layer_norm(a: dict, node):
    from torch import nn

    weight, bias = a["weight"], a["bias"]
    norm = nn.LayerNorm(
        tuple(a["normalized_shape"]), eps=a["eps"], elementwise_affine=weight is not None, bias=bias is not None
    )
    return _filled(norm, weight=weight, bias=bias)


def _filled(module, **tensors):
    import torch

    with torch.no_grad():
        for name, tensor in tensors.items():
            if tensor is not None:
                getattr(module, name).copy_(tensor)
    return module


def _tables() -> None:
    """Fill the op tables (torch imported only when a .pt2 is read)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    MODULE_OPS.update(
        {
            "aten.conv2d.default": _conv,
            "aten.conv2d.padding": _conv,
            "aten.linear.default": _linear,
            "aten.batch_norm.default": _batch_norm,
            "aten.layer_norm.default": _layer_norm,
        }
    )
    SUBMODULE_OPS.update(
        {
            "aten.relu.default": lambda a: nn.ReLU(),
            "aten.tanh.default": lambda a: nn.Tanh(),
            "aten.sigmoid.default": lambda a: nn.Sigmoid(),
            "aten.elu.default": lambda a: nn.ELU(a["alpha"]) if (a["scale"], a["input_scale"]) == (1, 1) else None,
            "aten.gelu.default": lambda a: nn.GELU(approximate=a["approximate"]),
            "aten.softmax.int": lambda a: nn.Softmax(a["dim"]),
            "aten._softmax.default": lambda a: nn.Softmax(a["dim"]),
            "aten.log_softmax.int": lambda a: nn.LogSoftmax(a["dim"]),
            "aten._log_softmax.default": lambda a: nn.LogSoftmax(a["dim"]),
            "aten.pad.default": lambda a: _pad_module(a["pad"], a["mode"], a["value"]),
            "aten.adaptive_max_pool2d.default": lambda a: nn.AdaptiveMaxPool2d(a["output_size"]),
            "aten.constant_pad_nd.default": lambda a: _pad_module(a["pad"], "constant", a["value"]),
        }
    )
    x = "input"
    FUNCTION_OPS.update(
        {
            "aten.relu.default": lambda a: (F.relu, (a[x],), {}),
            "aten.tanh.default": lambda a: (torch.tanh, (a[x],), {}),
            "aten.sigmoid.default": lambda a: (torch.sigmoid, (a[x],), {}),
            "aten.elu.default": lambda a: (F.elu, (a[x], a["alpha"]), {}),
            "aten.gelu.default": lambda a: (F.gelu, (a[x],), {"approximate": a["approximate"]}),
            "aten.softmax.int": lambda a: (F.softmax, (a[x], a["dim"]), {}),
            "aten._softmax.default": lambda a: (F.softmax, (a[x], a["dim"]), {}),
            "aten.log_softmax.int": lambda a: (F.log_softmax, (a[x], a["dim"]), {}),
            "aten._log_softmax.default": lambda a: (F.log_softmax, (a[x], a["dim"]), {}),
            "aten.dropout.default": lambda a: (F.dropout, (a[x], a["p"], False), {}),
            "aten.max_pool2d.default": lambda a: (
                F.max_pool2d,
                (a[x], a["kernel_size"], a["stride"] or None, a["padding"], a["dilation"], a["ceil_mode"]),
                {},
            ),
            "aten.avg_pool2d.default": lambda a: (
                F.avg_pool2d,
                (a[x], a["kernel_size"], a["stride"] or None, a["padding"], a["ceil_mode"]),
                {"count_include_pad": a["count_include_pad"], "divisor_override": a["divisor_override"]},
            ),
            "aten.adaptive_avg_pool2d.default": lambda a: (F.adaptive_avg_pool2d, (a[x], a["output_size"]), {}),
            "aten.adaptive_max_pool2d.default": lambda a: (F.adaptive_max_pool2d, (a[x], a["output_size"]), {}),
            "aten.mean.dim": lambda a: (torch.mean, (a[x], a["dim"], a["keepdim"]), {}),
            "aten.amax.default": lambda a: (torch.amax, (a[x], a["dim"], a["keepdim"]), {}),
            "aten.flatten.using_ints": lambda a: (torch.flatten, (a[x], a["start_dim"], a["end_dim"]), {}),
            "aten.view.default": lambda a: (torch.reshape, (a[x], a["size"]), {}),
            "aten.reshape.default": lambda a: (torch.reshape, (a[x], a["shape"]), {}),
            "aten._unsafe_view.default": lambda a: (torch.reshape, (a[x], a["size"]), {}),
            "aten.sym_size.int": lambda a: ("size", (a[x], a["dim"]), {}),
            # A sum of two results: a residual block's join (an `alpha` kept, so that it is not one).
            "aten.add.Tensor": lambda a: (
                (operator.add, (a[x], a["other"]), {})
                if a["alpha"] == 1
                else (torch.add, (a[x], a["other"]), {"alpha": a["alpha"]})
            ),
            "aten.pad.default": lambda a: (F.pad, (a[x], a["pad"], a["mode"], a["value"]), {}),
            "aten.constant_pad_nd.default": lambda a: (F.pad, (a[x], a["pad"], "constant", a["value"]), {}),
            "aten.upsample_nearest2d.vec": lambda a: (
                F.interpolate,
                (a[x], a["output_size"], a["scale_factors"], "nearest"),
                {},
            ),
            "aten.upsample_bilinear2d.vec": lambda a: (
                F.interpolate,
                (a[x], a["output_size"], a["scale_factors"], "bilinear", a["align_corners"]),
                {},
            ),
        }
    )


def _pad_module(pad, mode: str, value):
    from torch import nn

    return nn.ConstantPad2d(tuple(pad), float(value or 0.0)) if mode == "constant" and len(pad) == 4 else None


# ATen op (by name) -> the nn module holding its weights, built from its arguments and the recorded module class.
MODULE_OPS: dict = {}
# ATen op -> the submodule it stands for when it came from one (an activation, a pad); None when it cannot be.
SUBMODULE_OPS: dict = {}
# ATen op -> (function or tensor method name, args, kwargs) of the call a hand-written forward would make.
FUNCTION_OPS: dict = {}
# Ops that pass their input on, and checks an export adds; neither is a layer.
# Ops returning (values, indices), read through a getitem of their values.
PAIRED = ("aten.adaptive_max_pool2d.default",)
IDENTITIES = ("aten.clone.default", "aten.alias.default", "aten.contiguous.default", "aten.detach.default")
CHECKS = (
    "aten._assert_tensor_metadata.default",
    "aten._assert_scalar.default",
    "aten.sym_constrain_range_for_size.default",
)


def _predict(source, images: np.ndarray, batch: int | None) -> np.ndarray:
    """The exported program's outputs; a program exported for one batch size runs in batches of it, the last one
    filled up with blank images."""
    import torch

    from runtime.common.constants import EVAL_BATCH

    size, count = batch or EVAL_BATCH, len(images)
    nchw = to_channels_first(np.concatenate([images, np.zeros((-count % size, *images.shape[1:]), images.dtype)]))
    outputs = []
    with torch.no_grad():
        for start in range(0, len(nchw), size):
            # Fresh strides: a stride numpy leaves on the one-channel axis makes the program's aten.view refuse.
            chunk = torch.empty(nchw[start : start + size].shape).copy_(torch.from_numpy(nchw[start : start + size]))
            outputs.append(source(chunk))
    return torch.cat(outputs).numpy()[:count]
