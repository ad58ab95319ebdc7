"""Read an ONNX file of the DSL's vocabulary: its graph read as data, node by node, through ONNX_OPS.

No code runs: the graph is a protobuf, its weights initialisers, every tensor's shape from ONNX's shape inference.
onnxruntime runs the source model for the proof. An ONNX graph is in PyTorch's layout (NCHW, flatten in
(channel, height, width) order, Gemm weights (out, in)), so the weights move to the DSL's as from PyTorch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from runtime.common import branches
from runtime.common import imported as said
from runtime.common.imported import ImportedLayer, ImportRefused, LayerChain, Pad, dilated_span, refuse
from runtime.common.layouts import to_channels_first, to_keras_layout
from runtime.common.rundir import one_line

INFERENCE_GRAPH = (
    "an ONNX graph exported for inference has its BatchNorm folded into the convolution before it and no Dropout: "
    "the spec says the graph as it is"
)


class _Graph:
    """The model's nodes, initialisers and shapes."""

    def __init__(self, model):
        import onnx
        from onnx import numpy_helper, shape_inference

        self.constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        # Indices, not id(node): protobuf hands out a fresh wrapper object on each access, so an id can be reused.
        self.folded = {index for index, node in enumerate(model.graph.node) if self._fold(node)}
        # Shapes inferred once the folded values are initialisers, so a computed pad's output size is known too.
        plain = onnx.ModelProto()
        plain.CopyFrom(model)
        del plain.graph.node[:]
        kept = [node for index, node in enumerate(model.graph.node) if index not in self.folded]
        plain.graph.node.extend(kept)
        stored = {t.name for t in model.graph.initializer}
        used = {name for node in kept for name in node.input} - stored
        plain.graph.initializer.extend(
            numpy_helper.from_array(np.asarray(self.constants[name]), name)
            for name in sorted(used & self.constants.keys())
        )
        inferred = shape_inference.infer_shapes(plain)
        self.shapes = {}
        for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
            dims = value.type.tensor_type.shape.dim
            self.shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        self.attributes = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _fold(self, node) -> bool:
        """Compute a node whose inputs are all constants (an exporter's arithmetic on pad widths, say) and keep its
        outputs as constants; True when it was one."""
        from onnx.reference import ReferenceEvaluator

        if any(name and name not in self.constants for name in node.input):
            return False
        values = ReferenceEvaluator(node).run(None, {name: self.constants[name] for name in node.input if name})
        self.constants.update(zip(node.output, values))
        return True

    def weights(self, node, names: tuple[str, ...], flattened=None, transposed=True, shape=None) -> dict:
        """A node's weight inputs in Keras's layout, by Keras's names; `shape`: a depthwise kernel's there."""
        found = {}
        for name, tensor in zip(names, node.input[1:]):
            array = self.constants[tensor].astype(np.float32)
            array = array if transposed or array.ndim != 2 else array.T  # Gemm transB=0 holds (in, out)
            per_feature = name != "bias" or node.op_type == "BatchNormalization"
            found[name] = to_keras_layout(array, flattened if per_feature else None, shape)
        return found


def _module_path(node) -> list[str]:
    """`/sepconv1/depthwise/Conv` -> ['sepconv1', 'depthwise']: the PyTorch submodule an exported node came from."""
    return node.name.strip("/").split("/")[:-1]


def _module_name(node) -> str:
    """`/conv2_pad/Pad` -> `conv2_pad`: the PyTorch submodule an exported node came from ('' for a function)."""
    path = _module_path(node)
    return path[-1] if path else ""


def _conv(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise refuse(where, "auto_pad is not in the DSL")
    weight = graph.constants[node.input[1]]
    in_channels = graph.shapes[node.input[0]][1]
    kind, arguments = said.conv_kind(in_channels, weight.shape[0], attributes.get("group", 1))
    dilation = tuple(attributes.get("dilations", [1, 1]))
    kernel, stride, padding = _window(chain, graph, node, attributes, where, 0.0, dilation)
    arguments |= {"kernel_size": kernel, "strides": stride, "padding": padding, "dilation_rate": dilation}
    layer = said.dense_or_conv(kind, where, use_bias=len(node.input) > 2, **arguments)
    shape = (*kernel, in_channels, weight.shape[0] // in_channels) if kind == "DepthwiseConv2D" else None
    layer.weights = graph.weights(node, ("kernel", "bias"), shape=shape)
    if _module_path(node)[-1:] == ["pointwise"] and _separable(chain, layer, _module_path(node)[:-1]):
        return
    chain.add(layer)


def _separable(chain: LayerChain, pointwise: ImportedLayer, parent: list[str]) -> bool:
    """A 1x1 convolution of submodule `X.pointwise` right after a bias-free depthwise one of `X.depthwise` is the
    generated SeparableConv2d X, the DSL's SeparableConv2D: merge the two into it."""
    depthwise = chain.layers[-1] if chain.layers and chain.pad is None else None
    if (
        depthwise is None
        or depthwise.kind != "DepthwiseConv2D"
        or depthwise.weights.keys() != {"kernel"}
        or f"/{'/'.join(parent)}/depthwise/" not in depthwise.source
        or pointwise.kind != "Conv2D"
        or (pointwise.arguments["kernel_size"], pointwise.arguments["strides"]) != ((1, 1), (1, 1))
        or (pointwise.arguments["groups"], pointwise.arguments["padding"]) != (1, "valid")
    ):
        return False
    arguments = {k: v for k, v in depthwise.arguments.items() if k != "use_bias"}
    arguments |= {"filters": pointwise.arguments["filters"], "use_bias": pointwise.arguments["use_bias"]}
    chain.layers[-1] = said.dense_or_conv("SeparableConv2D", f"{depthwise.source} and {pointwise.source}", **arguments)
    chain.layers[-1].weights = {"depthwise_kernel": depthwise.weights["kernel"]}
    chain.layers[-1].weights |= {"pointwise_kernel": pointwise.weights.pop("kernel"), **pointwise.weights}
    return True


def _window(chain, graph, node, attributes, where, fill, dilation=(1, 1)):
    kernel = tuple(attributes["kernel_shape"])
    stride = tuple(attributes.get("strides", [1, 1]))
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    _, _, height, width = graph.shapes[node.input[0]]
    span = dilated_span(kernel, dilation)
    name = _module_name(node) or None
    pads = (top, bottom, left, right)
    return kernel, stride, chain.window_padding(where, name, (height, width), span, stride, pads, fill)


def _gemm(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0 or attributes.get("transA", 0):
        raise refuse(where, "a scaled or transposed-input Gemm is not the DSL's Dense")
    transposed = bool(attributes.get("transB", 0))  # MatMul has no attributes: (in, out)
    weight = graph.constants[node.input[1]]
    units = weight.shape[0] if transposed else weight.shape[1]
    layer = said.dense_or_conv("Dense", where, units=units, use_bias=len(node.input) > 2)
    layer.weights = graph.weights(node, ("kernel", "bias"), chain.flattened, transposed)
    chain.flattened = None
    chain.add(layer)


def _batch_norm(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    # ONNX's momentum is Keras's convention: running = running * momentum + batch * (1 - momentum).
    arguments = {"momentum": float(f"{attributes.get('momentum', 0.9):.7g}")}
    arguments["epsilon"] = float(f"{attributes.get('epsilon', 1e-5):.7g}")  # float32 attributes: 7 digits
    layer = ImportedLayer("BatchNorm", arguments, where)
    layer.weights = graph.weights(node, said.BATCHNORM_VARIABLES, chain.flattened)
    chain.add(layer)


def _pool(kind: str, fill: float | None):
    """MaxPool (padded with -inf) or AveragePool (padded cells left out of each mean, TensorFlow's `same`)."""

    def read(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
        if attributes.get("ceil_mode", 0):
            raise refuse(where, "ceil_mode=1 is not in the DSL")
        if any(d != 1 for d in attributes.get("dilations", [1, 1])) or len(node.output) > 1:
            raise refuse(where, "dilation or indices are not in the DSL")
        if attributes.get("count_include_pad", 0) and any(attributes.get("pads", [0])):
            raise refuse(where, "count_include_pad=1 with pads counts the padded zeros: not in the DSL's AvgPool")
        kernel, stride, padding = _window(chain, graph, node, attributes, where, fill)
        chain.add(ImportedLayer(kind, {"pool_size": kernel, "strides": stride, "padding": padding}, where))

    return read


def _global_pool(kind: str):
    """GlobalAveragePool / GlobalMaxPool keep a (1, 1) map; a ReduceMean / ReduceMax over (2, 3) may not."""

    def read(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
        rank = len(graph.shapes[node.input[0]])
        if node.op_type.startswith("Reduce"):
            axes = attributes.get("axes")
            axes = graph.constants[node.input[1]].tolist() if axes is None and len(node.input) > 1 else axes
            if sorted(a % rank for a in axes or ()) != [2, 3]:
                raise refuse(where, f"a reduction over axes {axes} is not a pool over the feature map")
        chain.add(ImportedLayer(kind, {}, where))
        chain.pooled = where if len(graph.shapes[node.output[0]]) == 4 else None

    return read


def _pad(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("mode", b"constant") not in (b"constant", "constant"):
        raise refuse(where, "only constant padding is in the DSL")
    pads = graph.constants[node.input[1]].tolist()
    value = float(graph.constants[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0.0
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise refuse(where, f"pads {pads} are not a padding of height and width")
    _, _, height, width = graph.shapes[node.input[0]]
    chain.flush()
    chain.pad = Pad((pads[2], pads[6], pads[3], pads[7]), value, (height, width), where, _module_name(node) or None)


def _resize(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    """UpSampling: nearest as PyTorch exports it (asymmetric, floor), bilinear with half-pixel centres."""
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in attributes.items()}
    mode, transform = text.get("mode", "nearest"), text.get("coordinate_transformation_mode", "half_pixel")
    meanings = {
        ("nearest", "asymmetric", "floor"): "nearest",
        ("linear", "half_pixel"): "bilinear",
        ("linear", "pytorch_half_pixel"): "bilinear",  # the same but for an output of one pixel, which is no upscale
    }
    key = (mode, transform, text.get("nearest_mode", "round_prefer_floor")) if mode == "nearest" else (mode, transform)
    if key not in meanings or text.get("antialias", 0) or text.get("exclude_outside", 0):
        raise refuse(where, f"a {mode} resize with {transform} coordinates is not the DSL's UpSampling")
    (_, _, height, width), (_, _, out_height, out_width) = graph.shapes[node.input[0]], graph.shapes[node.output[0]]
    if out_height % height or out_width % width:
        raise refuse(where, f"resizing {(height, width)} to {(out_height, out_width)} is not by a whole factor")
    size = (out_height // height, out_width // width)
    chain.add(ImportedLayer("UpSampling", {"size": size, "interpolation": meanings[key]}, where))


def _layer_norm(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    rank = len(graph.shapes[node.input[0]])
    if rank != 2 or attributes.get("axis", -1) not in (-1, 1):
        raise refuse(where, "a LayerNormalization other than over a flat vector's features is not read yet")
    center = len(node.input) > 2 and bool(node.input[2])
    arguments = {"epsilon": float(f"{attributes.get('epsilon', 1e-5):.7g}"), "center": center, "scale": True}
    layer = ImportedLayer("LayerNorm", arguments, where)
    layer.weights = graph.weights(node, ("gamma", "beta"), chain.flattened)
    chain.add(layer)


def _flatten(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    before, after = graph.shapes[node.input[0]], graph.shapes[node.output[0]]
    if len(after) != 2 or math.prod(before[1:]) != after[1]:
        raise refuse(where, f"reshaping {before[1:]} to {after[1:]} is not a flatten of each image")
    if len(before) == 4:
        channels, height, width = before[1:]
        chain.flatten((height, width, channels), where)


def _dropout(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    rate = attributes.get("ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        rate = float(graph.constants[node.input[1]])
    chain.add(ImportedLayer("Dropout", {"rate": float(f"{rate:.7g}")}, where))


def _activation(name: str):
    def read(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
        if name in ("softmax", "log_softmax") and attributes.get("axis", -1) not in (1, -1):
            raise refuse(where, f"axis={attributes['axis']} is not the channel axis")
        if name == "elu" and attributes.get("alpha", 1.0) != 1.0:
            raise refuse(where, "an alpha other than 1 is not in the DSL")
        if name == "gelu" and attributes.get("approximate", b"none") not in (b"none", "none"):
            raise refuse(where, "the tanh approximation is not in the DSL (its GELU is exact)")
        chain.activation(said.activation(name, where), where)

    return read


# ONNX operator -> its reader; anything else is refused.
ONNX_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _gemm,  # a Linear without bias: its weight stored (in, out)
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "MaxPool": _pool("MaxPool", -math.inf),
    "AveragePool": _pool("AvgPool", None),
    "GlobalAveragePool": _global_pool("GlobalAvgPool"),
    "GlobalMaxPool": _global_pool("GlobalMaxPool"),
    "ReduceMean": _global_pool("GlobalAvgPool"),
    "ReduceMax": _global_pool("GlobalMaxPool"),
    "Pad": _pad,
    "Resize": _resize,
    "Flatten": _flatten,
    "Reshape": _flatten,
    "Dropout": _dropout,
    "Identity": lambda *_: None,
    **{op: _activation(name) for op, name in (("Relu", "relu"), ("Tanh", "tanh"), ("Sigmoid", "sigmoid"))},
    **{op: _activation(name) for op, name in (("Elu", "elu"), ("Gelu", "gelu"), ("Softmax", "softmax"))},
    "LogSoftmax": _activation("log_softmax"),
}


def _input(model, graph: _Graph) -> str:
    inputs = [value for value in model.graph.input if value.name not in graph.constants]
    if len(inputs) != 1 or len(graph.shapes[inputs[0].name]) != 4:
        raise ImportRefused("the model does not take one (N, channels, height, width) image batch")
    return inputs[0].name


def _where(model, index: int) -> str:
    node = model.graph.node[index]
    return f"node {node.name or node.op_type!r} (index {index}, {node.op_type})"


def _tree(model, graph: _Graph, start: str) -> branches.Graph:
    """The nodes that are not folded, by index; -1 is the input."""
    kept = [index for index in range(len(model.graph.node)) if index not in graph.folded]
    producer = {start: -1} | {model.graph.node[i].output[0]: i for i in kept}
    inputs = {i: [name for name in model.graph.node[i].input if name and name not in graph.constants] for i in kept}
    for index, names in inputs.items():
        if any(name not in producer for name in names):
            raise refuse(_where(model, index), "it takes a result that is not a node's first output")
    inputs = {index: [producer[name] for name in names] for index, names in inputs.items()}
    users = {i: [j for j in kept if i in inputs[j]] for i in [-1, *kept]}
    return branches.Graph(
        users=users.__getitem__,
        inputs=inputs.__getitem__,
        is_join=lambda i: model.graph.node[i].op_type == "Add" and len(inputs[i]) == 2,
        where=lambda i: _where(model, i),
    )


def _read_items(model, graph: _Graph, items: list) -> LayerChain:
    chain = LayerChain()
    for item in items:
        if isinstance(item, branches.Block):
            block, shortcut = (_read_items(model, graph, part).layers for part in (item.block, item.shortcut))
            chain.add(said.residual(block, shortcut, _where(model, item.join), folded=True))
            continue
        node, where = model.graph.node[item], _where(model, item)
        if node.op_type not in ONNX_OPS:
            raise refuse(where, f"the DSL has no counterpart of {node.op_type}")
        ONNX_OPS[node.op_type](chain, graph, node, graph.attributes(node), where)
    chain.finish()
    return chain


def read(path: Path) -> said.ImportedModel:
    """The ONNX file as DSL layers and weights; ImportRefused for what the DSL cannot say or a broken file."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        graph = _Graph(model)
    except Exception as error:
        raise ImportRefused(f"{path}: not a readable ONNX model: {one_line(error)}") from None
    start = _input(model, graph)
    _, channels, height, width = graph.shapes[start]
    chain = _read_items(model, graph, branches.chain(_tree(model, graph, start), -1))
    predict = lambda images: _predict(path, images)  # noqa: E731
    return said.ImportedModel(str(path), (height, width, channels), chain.layers, predict, [INFERENCE_GRAPH])


def _predict(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    from runtime.common.constants import EVAL_BATCH

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    nchw = to_channels_first(images.astype(np.float32))
    return np.concatenate(
        [session.run(None, {name: nchw[i : i + EVAL_BATCH]})[0] for i in range(0, len(nchw), EVAL_BATCH)]
    )
