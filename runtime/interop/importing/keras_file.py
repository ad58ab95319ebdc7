"""Read a Keras `.keras` file as data: the architecture from its config.json, the weights from model.weights.h5.

No code of the file runs: the config is JSON read here layer by layer through KERAS_LAYERS, and the weights are
HDF5 arrays read with h5py. Keras stores a layer's weights under `layers/<class name in snake case>[_N]/vars/<i>`,
numbered in the model's layer order (keras.src.saving.saving_lib), trainable variables first.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from runtime.common import branches
from runtime.common import imported as said
from runtime.common.imported import ImportedLayer, ImportRefused, refuse
from runtime.common.rundir import one_line

INITIALIZERS = {"GlorotUniform": "glorot_uniform", "HeNormal": "he_normal", "HeUniform": "he_uniform", "Zeros": "zeros"}
# Options the DSL has no counterpart of (weight decay is the optimizer's), for every kernel a layer may hold.
UNSAID = tuple(
    f"{weight}_{option}"
    for weight in ("kernel", "depthwise", "pointwise", "bias", "gamma", "beta")
    for option in ("regularizer", "constraint")
) + ("activity_regularizer",)


class _Layer:
    """One entry of the config's layer list, with where it is for messages."""

    def __init__(self, entry: dict, index: int, notes: list[str]):
        self.kind, self.config, self.notes = entry.get("class_name"), entry.get("config", {}), notes
        self.where = f"layer {self.config.get('name')!r} (index {index}, {self.kind})"

    def expect(self, option: str, allowed, shown: str | None = None) -> None:
        value = self.config.get(option, allowed[0])
        value = tuple(value) if isinstance(value, list) else value
        if value not in allowed:
            raise refuse(self.where, f"{option}={value!r} is not in the DSL (it says {shown or allowed[0]!r})")

    def activation(self) -> str:
        name = self.config.get("activation", "linear")
        if not isinstance(name, str):
            raise refuse(self.where, "a custom activation object is not in the DSL")
        return said.activation(name, self.where)

    def initializer(self, options: tuple[str, ...], default: str, known=INITIALIZERS) -> str:
        """The DSL's initialiser said by all of `options` (a separable convolution's two kernels share one)."""
        found = {(self.config.get(option) or {}).get("class_name") for option in options}
        if len(found) == 1 and next(iter(found)) in known:
            return known[next(iter(found))]
        said_found = ", ".join(f"{option} {(self.config.get(option) or {}).get('class_name')}" for option in options)
        self.notes.append(f"{self.where}: {said_found} is not in the DSL; {default} written (training only)")
        return default

    def check_unsaid(self) -> None:
        for option in UNSAID:
            if self.config.get(option) is not None:
                raise refuse(self.where, f"{option} is not in the DSL (weight decay is the optimizer's)")

    def weighted(self, kind: str, kernels: tuple[str, ...] = ("kernel_initializer",), **arguments) -> ImportedLayer:
        self.check_unsaid()
        initializers = {"kernel_initializer": self.initializer(kernels, "glorot_uniform")}
        initializers["bias_initializer"] = self.initializer(("bias_initializer",), "zeros")
        arguments |= {"use_bias": bool(self.config.get("use_bias", True))}
        return said.dense_or_conv(kind, self.where, self.activation(), **arguments, **initializers)

    def pair(self, option: str) -> tuple[int, int]:
        value = self.config[option]
        return (value, value) if isinstance(value, int) else tuple(value)

    def window(self) -> dict:
        """A convolution's window: kernel, strides, padding, dilation (channels_last)."""
        self.expect("data_format", ("channels_last",))
        self.expect("padding", ("valid", "same"))
        window = {"kernel_size": self.pair("kernel_size"), "strides": self.pair("strides")}
        return window | {"padding": self.config["padding"], "dilation_rate": self.pair("dilation_rate")}


def _dense(layer: _Layer) -> ImportedLayer:
    return layer.weighted("Dense", units=layer.config["units"])


def _conv(layer: _Layer) -> ImportedLayer:
    arguments = {"filters": layer.config["filters"], "groups": layer.config.get("groups", 1)}
    return layer.weighted("Conv2D", **arguments, **layer.window())


def _depthwise_conv(layer: _Layer) -> ImportedLayer:
    arguments = {"depth_multiplier": layer.config["depth_multiplier"], **layer.window()}
    return layer.weighted("DepthwiseConv2D", ("depthwise_initializer",), **arguments)


def _separable_conv(layer: _Layer) -> ImportedLayer:
    arguments = {"filters": layer.config["filters"], "depth_multiplier": layer.config["depth_multiplier"]}
    kernels = ("depthwise_initializer", "pointwise_initializer")
    return layer.weighted("SeparableConv2D", kernels, **arguments, **layer.window())


def _pool(kind: str):
    def read(layer: _Layer) -> ImportedLayer:
        layer.expect("data_format", ("channels_last",))
        layer.expect("padding", ("valid", "same"))
        pool = layer.pair("pool_size")
        strides = tuple(layer.config.get("strides") or pool)
        return ImportedLayer(kind, {"pool_size": pool, "strides": strides, "padding": layer.config["padding"]}, "")

    return read


def _global_pool(kind: str):
    def read(layer: _Layer) -> ImportedLayer:
        layer.expect("data_format", ("channels_last",))
        layer.expect("keepdims", (False,))
        return ImportedLayer(kind, {}, "")

    return read


def _zero_padding(layer: _Layer) -> ImportedLayer:
    layer.expect("data_format", ("channels_last",))
    padding = layer.config["padding"]
    padding = [padding, padding] if isinstance(padding, int) else padding
    sides = tuple((side, side) if isinstance(side, int) else tuple(side) for side in padding)
    return ImportedLayer("ZeroPadding", {"padding": sides}, "")


def _upsampling(layer: _Layer) -> ImportedLayer:
    layer.expect("data_format", ("channels_last",))
    layer.expect("interpolation", ("nearest", "bilinear"))
    return ImportedLayer("UpSampling", {"size": layer.pair("size"), "interpolation": layer.config["interpolation"]}, "")


def _layer_norm(layer: _Layer) -> ImportedLayer:
    layer.expect("axis", (-1, (-1,)), "-1, the channel (or feature) axis")
    layer.expect("rms_scaling", (False,))
    layer.check_unsaid()
    layer.initializer(("gamma_initializer",), "ones", {"Ones": "ones"})
    layer.initializer(("beta_initializer",), "zeros", {"Zeros": "zeros"})
    arguments = {"epsilon": float(layer.config["epsilon"])}
    return ImportedLayer("LayerNorm", arguments | {o: bool(layer.config[o]) for o in ("center", "scale")}, "")


def _batch_norm(layer: _Layer) -> ImportedLayer:
    layer.expect("axis", (-1, 3, 1, (-1,), (3,), (1,)), "-1")  # the channel (or feature) axis
    for option in ("center", "scale"):
        layer.expect(option, (True,))
    for option in ("renorm",):
        layer.expect(option, (False,))
    arguments = {"momentum": float(layer.config["momentum"]), "epsilon": float(layer.config["epsilon"])}
    return ImportedLayer("BatchNorm", arguments, "")


def _dropout(layer: _Layer) -> ImportedLayer:
    layer.expect("noise_shape", (None,))
    return ImportedLayer("Dropout", {"rate": float(layer.config["rate"])}, "")


def _flatten(layer: _Layer) -> ImportedLayer:
    layer.expect("data_format", ("channels_last", None))
    return ImportedLayer("Flatten", {}, "")


# Keras layer class -> its DSL layer; an activation layer is added by _read_layers (it may fold into the last layer).
KERAS_LAYERS = {
    "Dense": _dense,
    "Conv2D": _conv,
    "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv2D": _separable_conv,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AvgPool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAvgPool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "ZeroPadding2D": _zero_padding,
    "UpSampling2D": _upsampling,
    "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm,
    "Dropout": _dropout,
    "Flatten": _flatten,
}
KERAS_ACTIVATIONS = {"Activation": None, "ReLU": "relu", "Softmax": "softmax"}
# A DSL layer's weights in the order Keras stores them (a bias, gamma or beta the layer does not have left out).
WEIGHT_VARIABLES = {
    "Dense": ("kernel", "bias"),
    "Conv2D": ("kernel", "bias"),
    "DepthwiseConv2D": ("kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "LayerNorm": ("gamma", "beta"),
    "BatchNorm": said.BATCHNORM_VARIABLES,
}
OPTIONAL_VARIABLES = {"bias": "use_bias", "gamma": "scale", "beta": "center"}  # each there when its option is true


def _snake_case(name: str) -> str:
    """Keras's name for a class in a weights file (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _input_shape(entries: list[dict], model_config: dict) -> tuple[int, int, int]:
    shape = None
    if entries and entries[0].get("class_name") == "InputLayer":
        shape = entries[0]["config"].get("batch_shape")
    shape = shape or (model_config.get("build_input_shape") or [None])
    shape = tuple(shape[1:])
    if len(shape) == 2:  # (height, width) grey images: the same values as one channel
        shape = (*shape, 1)
    if len(shape) != 3 or not all(isinstance(n, int) for n in shape):
        raise ImportRefused(f"the model's input shape {shape} is not an image (height, width, channels)")
    return shape


def _activation_layer(layer: _Layer) -> str:
    if layer.kind == "ReLU":
        for option, allowed in (("max_value", (None,)), ("negative_slope", (0, 0.0)), ("threshold", (0, 0.0))):
            layer.expect(option, allowed)
    if layer.kind == "Softmax":
        layer.expect("axis", (-1, (-1,)), "-1")
    fixed = KERAS_ACTIVATIONS[layer.kind]
    return fixed or layer.activation()


def _rescaling(layer: _Layer, index: int, notes: list[str]) -> float:
    """The input scale a first Rescaling(1/255) layer folds into: the source model takes pixels in [0, 255]."""
    scale, offset = layer.config.get("scale"), layer.config.get("offset", 0.0)
    if index != 0 or offset != 0 or not isinstance(scale, float) or abs(scale * 255 - 1) > 1e-6:
        raise refuse(layer.where, "only a first Rescaling(1/255) is in the DSL: its input is already x / 255")
    notes.append(f"{layer.where}: Rescaling(1/255) folded into the DSL's input, floats in [0, 1] (x / 255)")
    return 255.0


def _groups(entries: list[dict]) -> list[str]:
    """The h5 group of each entry: its class in snake case, numbered from the second of its class on."""
    groups, counts = [], {}
    for entry in entries:
        group = _snake_case(str(entry.get("class_name")))
        counts[group] = counts.get(group, -1) + 1
        groups.append(group if counts[group] == 0 else f"{group}_{counts[group]}")
    return groups


def _inputs(entry: dict) -> list[str]:
    return re.findall(r'"keras_history": \["([^"]+)"', json.dumps(entry.get("inbound_nodes")))


def _items(model: dict, notes: list[str]) -> list:
    """The entries' indices (and branches.Block of them) in the order they compute: a Sequential's as listed, a
    Functional's along its graph from its input."""
    entries = model["config"]["layers"]
    if model.get("class_name") != "Functional":
        return [index for index, entry in enumerate(entries) if entry.get("class_name") != "InputLayer"]
    index_of = {entry["config"]["name"]: index for index, entry in enumerate(entries)}
    inputs = [[index_of[name] for name in _inputs(entry) if name in index_of] for entry in entries]
    users = [[j for j, taken in enumerate(inputs) if i in taken] for i in range(len(entries))]
    graph = branches.Graph(
        users=users.__getitem__,
        inputs=inputs.__getitem__,
        is_join=lambda i: entries[i].get("class_name") == "Add" and len(inputs[i]) == 2,
        where=lambda i: _Layer(entries[i], i, notes).where,
    )
    starts = [i for i, entry in enumerate(entries) if entry.get("class_name") == "InputLayer"]
    if len(starts) != 1:
        raise ImportRefused(f"the model takes {len(starts)} inputs; the DSL's takes one image")
    return branches.chain(graph, starts[0])


class _Reader:
    """Reads the items into DSL layers, noting each weighted layer's h5 group."""

    def __init__(self, entries: list[dict], notes: list[str]):
        self.entries, self.notes, self.groups = entries, notes, _groups(entries)
        self.weighted: list[tuple[ImportedLayer, str]] = []
        self.scale = 1.0

    def read(self, items: list, top: bool) -> list[ImportedLayer]:
        layers = []
        for item in items:
            if isinstance(item, branches.Block):
                where = _Layer(self.entries[item.join], item.join, self.notes).where
                layers.append(said.residual(self.read(item.block, False), self.read(item.shortcut, False), where))
                self._note_projection(layers[-1])
                continue
            layer = _Layer(self.entries[item], item, self.notes)
            if layer.kind == "Rescaling":
                self.scale = _rescaling(layer, len(layers) if top else -1, self.notes)
            elif layer.kind in KERAS_ACTIVATIONS:
                said.add_activation(layers, _activation_layer(layer), layer.where, fold=False)
            elif layer.kind in KERAS_LAYERS:
                imported = KERAS_LAYERS[layer.kind](layer)
                imported.source = layer.where
                layers.append(imported)
                if imported.kind in WEIGHT_VARIABLES:
                    self.weighted.append((imported, self.groups[item]))
            else:
                raise refuse(layer.where, f"the DSL has no {layer.kind} layer")
        return layers

    def _note_projection(self, residual: ImportedLayer) -> None:
        """The DSL's projection draws its kernel from glorot_uniform: another initialiser is named in the header."""
        conv = residual.shortcut[0] if residual.shortcut else None
        if conv is not None and conv.arguments["kernel_initializer"] != "glorot_uniform":
            self.notes.append(
                f"{conv.source}: a projection's kernel_initializer {conv.arguments['kernel_initializer']} is not the "
                "DSL's (its projection draws from glorot_uniform; training only)"
            )


def _read_weights(h5_path, weighted: list[tuple[ImportedLayer, str]]) -> None:
    import h5py

    with h5py.File(h5_path, "r") as store:
        for layer, group in weighted:
            names = [v for v in WEIGHT_VARIABLES[layer.kind] if layer.arguments.get(OPTIONAL_VARIABLES.get(v), True)]
            stored = store[f"layers/{group}/vars"]
            if len(stored) != len(names):
                raise ImportRefused(f"{layer.source}: {len(stored)} weight arrays in the file, {len(names)} expected")
            layer.weights = {name: np.asarray(stored[str(i)], dtype=np.float32) for i, name in enumerate(names)}


def read(path: Path) -> said.ImportedModel:
    """The `.keras` file as DSL layers and weights; ImportRefused for what the DSL cannot say or a broken file."""
    try:
        with zipfile.ZipFile(path) as archive:
            model = json.loads(archive.read("config.json"))
            h5 = archive.open("model.weights.h5")
            return _read(path, model, h5)
    except ImportRefused:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as error:
        raise ImportRefused(f"{path}: not a readable .keras model file: {one_line(error)}") from error


def _read(path: Path, model: dict, h5) -> said.ImportedModel:
    kind = model.get("class_name")
    if kind not in ("Sequential", "Functional"):
        raise ImportRefused(f"{path}: a {kind} model; only Sequential and Functional models are read")
    entries, notes = model["config"]["layers"], []
    input_shape = _input_shape(entries, model["config"])
    reader = _Reader(entries, notes)
    layers = reader.read(_items(model, notes), top=True)
    _read_weights(h5, reader.weighted)
    return said.ImportedModel(str(path), input_shape, layers, _predictor(path, reader.scale), notes)


def _predictor(path: Path, scale: float):
    """The source model itself, for the proof: Keras builds it from the same config in safe mode (no Lambda code)."""

    def predict(images: np.ndarray) -> np.ndarray:
        import keras

        from runtime.common.constants import EVAL_BATCH

        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        return model.predict(images * scale, batch_size=EVAL_BATCH, verbose=0)

    return predict
