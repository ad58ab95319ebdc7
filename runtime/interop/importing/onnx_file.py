"""Read an ONNX file of the DSL's vocabulary: its graph read as data, node by node, through ONNX_OPS.

No code runs: the graph is a protobuf, its weights initialisers, every tensor's shape from ONNX's shape inference.
onnxruntime runs the source model for the proof. An ONNX graph is in PyTorch's layout (NCHW, flatten in
(channel, height, width) order, Gemm weights (out, in)), so the weights move to the DSL's as from PyTorch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from runtime.common import imported as said
from runtime.common.imported import ImportedLayer, ImportRefused, LayerChain, refuse
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

    def weights(self, node, names: tuple[str, ...], flattened=None, transposed=True) -> dict[str, np.ndarray]:
        found = {}
        for name, tensor in zip(names, node.input[1:]):
            array = self.constants[tensor].astype(np.float32)
            array = array if transposed or array.ndim != 2 else array.T  # Gemm transB=0 holds (in, out)
            per_feature = name != "bias" or node.op_type == "BatchNormalization"
            found[name] = to_keras_layout(array, flattened if per_feature else None)
        return found


def _conv(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("group", 1) != 1 or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise refuse(where, "groups or auto_pad are not in the DSL")
    if any(d != 1 for d in attributes.get("dilations", [1, 1])):
        raise refuse(where, "dilation is not in the DSL")
    kernel, stride, padding = _window(chain, graph, node, attributes, where, 0.0)
    filters = graph.constants[node.input[1]].shape[0]
    arguments = {"filters": filters, "kernel_size": kernel, "strides": stride, "padding": padding}
    layer = said.dense_or_conv("Conv2D", where, use_bias=len(node.input) > 2, **arguments)
    layer.weights = graph.weights(node, ("kernel", "bias"))
    chain.add(layer)


def _window(chain, graph, node, attributes, where, fill):
    kernel = tuple(attributes["kernel_shape"])
    stride = tuple(attributes.get("strides", [1, 1]))
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    _, _, height, width = graph.shapes[node.input[0]]
    return (
        kernel,
        stride,
        chain.window_padding(where, (height, width), kernel, stride, (top, bottom, left, right), fill),
    )


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


def _max_pool(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("ceil_mode", 0):
        raise refuse(where, "ceil_mode=1 is not in the DSL")
    if any(d != 1 for d in attributes.get("dilations", [1, 1])) or len(node.output) > 1:
        raise refuse(where, "dilation or indices are not in the DSL")
    kernel, stride, padding = _window(chain, graph, node, attributes, where, -math.inf)
    chain.add(ImportedLayer("MaxPool", {"pool_size": kernel, "strides": stride, "padding": padding}, where))


def _pad(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    if attributes.get("mode", b"constant") not in (b"constant", "constant"):
        raise refuse(where, "only constant padding is in the DSL")
    pads = graph.constants[node.input[1]].tolist()
    value = float(graph.constants[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0.0
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise refuse(where, f"pads {pads} are not a padding of height and width")
    _, _, height, width = graph.shapes[node.input[0]]
    chain.pad = (pads[2], pads[6], pads[3], pads[7], value, (height, width), where)


def _flatten(chain: LayerChain, graph: _Graph, node, attributes: dict, where: str) -> None:
    before, after = graph.shapes[node.input[0]], graph.shapes[node.output[0]]
    if len(after) != 2 or math.prod(before[1:]) != after[1]:
        raise refuse(where, f"reshaping {before[1:]} to {after[1:]} is not a flatten of each image")
    if len(before) == 4:
        channels, height, width = before[1:]
        chain.flattened = (height, width, channels)
        chain.add(ImportedLayer("Flatten", {}, where))


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
        # As from PyTorch, whose graph this is: an activation right after a Dense or Conv2D is the layer's own.
        said.add_activation(chain.layers, said.activation(name, where), where, fold=True)

    return read


# ONNX operator -> its reader; anything else is refused.
ONNX_OPS = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _gemm,  # a Linear without bias: its weight stored (in, out)
    "BatchNormalization": _batch_norm,
    "MaxPool": _max_pool,
    "Pad": _pad,
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


def read(path: Path) -> said.ImportedModel:
    """The ONNX file as DSL layers and weights; ImportRefused for what the DSL cannot say or a broken file."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        graph = _Graph(model)
    except Exception as error:
        raise ImportRefused(f"{path}: not a readable ONNX model: {one_line(error)}") from None
    previous = _input(model, graph)
    _, channels, height, width = graph.shapes[previous]
    chain = LayerChain()
    for index, node in enumerate(model.graph.node):
        where = f"node {node.name or node.op_type!r} (index {index}, {node.op_type})"
        if index in graph.folded:
            continue
        if [name for name in node.input if name and name not in graph.constants] != [previous]:
            raise refuse(where, "it does not take just the result of the node before it: a model with branches")
        if node.op_type not in ONNX_OPS:
            raise refuse(where, f"the DSL has no counterpart of {node.op_type}")
        ONNX_OPS[node.op_type](chain, graph, node, graph.attributes(node), where)
        previous = node.output[0]
    if chain.pad is not None:
        raise refuse(chain.pad[-1], "a pad at the end of the model is not in the DSL")
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
